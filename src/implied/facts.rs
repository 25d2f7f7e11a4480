//! What a C library (or OpenSSL's libcrypto) says about the files it opens: the paths compiled
//! into it and, for glibc, its release. Read from the library's bytes, never assumed: a glibc
//! built with another prefix (Occlum's, under `/opt/occlum/glibc`) names other paths, and glibc
//! 2.34 moved the `files` and `dns` NSS services into libc.

use crate::fs::ImagePath;
use crate::ldso::{Flavor, release_version};

/// The paths one C library opens by itself, as compiled into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibcPaths {
    pub nsswitch: Option<ImagePath>,
    pub hosts: Option<ImagePath>,
    pub passwd: Option<ImagePath>,
    pub group: Option<ImagePath>,
    pub localtime: Option<ImagePath>,
    /// The zone directory a `TZ` names files in.
    pub zoneinfo: Option<ImagePath>,
    /// glibc's gconv module directory (its `GCONV_PATH` default).
    pub gconv: Option<ImagePath>,
}

/// Which C library a file is, if it is one: `libc.so.6` is glibc's soname, `libc.so` musl's,
/// whose libc is also its loader (`ld-musl-*.so.1`) or named `libc.musl-*.so.1`. `path` is the
/// name the file is found under.
pub fn libc_flavor(path: &std::path::Path, elf: &crate::elf::ElfFile) -> Option<Flavor> {
    let name = path.file_name()?.to_str()?;
    match elf.soname.as_deref() {
        Some("libc.so.6") => Some(Flavor::Glibc),
        Some("libc.so") => Some(Flavor::Musl),
        _ if name.starts_with("ld-musl-") || name.starts_with("libc.musl-") => Some(Flavor::Musl),
        _ => None,
    }
}

/// One C library of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibcFacts {
    pub flavor: Flavor,
    /// glibc's release (major, minor); None for musl or when the banner is not found.
    pub version: Option<(u32, u32)>,
    pub paths: LibcPaths,
}

impl LibcFacts {
    /// Reads the facts from the bytes of a `libc.so.6` (glibc) or of musl's libc.
    pub fn read(bytes: &[u8], flavor: Flavor) -> LibcFacts {
        let mut paths = LibcPaths::default();
        for s in path_strings(bytes, NAMES) {
            let (dir, name) = s.rsplit_once('/').unwrap_or(("", s));
            let in_etc = dir.ends_with("/etc");
            let slot = match name {
                "nsswitch.conf" if in_etc => &mut paths.nsswitch,
                "hosts" if in_etc => &mut paths.hosts,
                "passwd" if in_etc => &mut paths.passwd,
                "group" if in_etc => &mut paths.group,
                "localtime" if in_etc => &mut paths.localtime,
                "zoneinfo" if dir.ends_with("/share") => &mut paths.zoneinfo,
                "gconv" if flavor == Flavor::Glibc && dir.contains("/lib") => &mut paths.gconv,
                _ => continue,
            };
            if slot.is_none() {
                *slot = ImagePath::parse(s).ok();
            }
        }
        LibcFacts {
            flavor,
            version: match flavor {
                Flavor::Glibc => release_version(bytes),
                Flavor::Musl => None,
            },
            paths,
        }
    }

    /// glibc before 2.34 keeps the `files` and `dns` NSS services in `libnss_files.so.2` and
    /// `libnss_dns.so.2`; from 2.34 they are part of libc.
    pub fn builtin_nss(&self, service: &str) -> bool {
        match self.flavor {
            Flavor::Musl => true,
            Flavor::Glibc => {
                matches!(service, "files" | "dns") && self.version.is_none_or(|v| v >= (2, 34))
            }
        }
    }
}

/// The directories OpenSSL's libcrypto was built with (`OPENSSLDIR`, `MODULESDIR`, `ENGINESDIR`
/// in its version strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpensslFacts {
    pub openssldir: Option<ImagePath>,
    pub modulesdir: Option<ImagePath>,
    pub enginesdir: Option<ImagePath>,
}

impl OpensslFacts {
    pub fn read(bytes: &[u8]) -> OpensslFacts {
        let quoted = |key: &str| {
            let mark = format!("{key}: \"");
            let at = memchr::memmem::find(bytes, mark.as_bytes())? + mark.len();
            let rest = bytes.get(at..)?;
            let end = rest.iter().position(|&b| b == b'"' || b == 0)?;
            let dir = std::str::from_utf8(rest.get(..end)?).ok()?;
            ImagePath::parse(dir).ok()
        };
        OpensslFacts {
            openssldir: quoted("OPENSSLDIR"),
            modulesdir: quoted("MODULESDIR"),
            enginesdir: quoted("ENGINESDIR"),
        }
    }
}

/// The last names of the paths [`LibcFacts::read`] looks for, each with its NUL.
const NAMES: &[&[u8]] = &[
    b"/nsswitch.conf\0",
    b"/hosts\0",
    b"/passwd\0",
    b"/group\0",
    b"/localtime\0",
    b"/zoneinfo\0",
    b"/gconv\0",
];

/// Every NUL-terminated string of the bytes that is a whole absolute path (printable, no
/// spaces, preceded by a NUL) ending in one of `names`, in file order. Found by searching for
/// the names: a C library is megabytes, the strings a few.
fn path_strings<'a>(bytes: &'a [u8], names: &[&[u8]]) -> Vec<&'a str> {
    let mut found: Vec<(usize, &str)> = Vec::new();
    for name in names {
        for end in memchr::memmem::find_iter(bytes, name) {
            let start = memchr::memrchr(0, &bytes[..end]).map_or(0, |nul| nul + 1);
            let Some(s) = bytes.get(start..end + name.len() - 1) else {
                continue;
            };
            let clean = s.len() > 1
                && s.first() == Some(&b'/')
                && s.iter()
                    .all(|b| b.is_ascii_graphic() && !b"%:*\"".contains(b));
            if let (true, Ok(text)) = (clean, std::str::from_utf8(s)) {
                found.push((start, text));
            }
        }
    }
    found.sort_unstable();
    found.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_whole_strings_and_the_first_of_each_kind() {
        let bytes = b"x\0/etc/hosts.equiv\0/etc/hosts\0garbage/etc/passwd\0/opt/g/etc/passwd\0\
            /usr/lib/gconv\0/etc/localtime\0GNU C Library (Debian GLIBC 2.31-1) stable release \
            version 2.31.\0";
        let f = LibcFacts::read(bytes, Flavor::Glibc);
        let p = |s: &str| ImagePath::parse(s).ok();
        assert_eq!(f.paths.hosts, p("/etc/hosts"));
        assert_eq!(f.paths.passwd, p("/opt/g/etc/passwd"));
        assert_eq!(f.paths.gconv, p("/usr/lib/gconv"));
        assert_eq!(f.paths.localtime, p("/etc/localtime"));
        assert_eq!(f.paths.nsswitch, None);
        assert_eq!(f.version, Some((2, 31)));
        assert!(!f.builtin_nss("files"));
    }

    #[test]
    fn openssl_dirs_come_from_the_version_strings() {
        let bytes = b"\0OPENSSLDIR: \"/usr/lib/ssl\"\0MODULESDIR: \"/usr/lib/ossl-modules\"\0";
        let f = OpensslFacts::read(bytes);
        assert_eq!(f.openssldir, ImagePath::parse("/usr/lib/ssl").ok());
        assert_eq!(f.modulesdir, ImagePath::parse("/usr/lib/ossl-modules").ok());
        assert_eq!(f.enginesdir, None);
    }
}
