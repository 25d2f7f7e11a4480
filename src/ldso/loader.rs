//! Facts about one interpreter (ld.so) read from its file without running
//! it: the system directories compiled into it, `$LIB`, its names, and for
//! musl its path file.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::sysroot::Sysroot;
use super::{FileId, Flavor};
use crate::elf::ElfFile;

#[derive(Debug, Clone)]
pub(crate) struct LoaderFacts {
    /// Default directories, no trailing `/`.
    pub system_dirs: Vec<String>,
    /// What `$LIB` expands to.
    pub lib: String,
    /// Names the interpreter is already loaded under: its path and SONAME.
    pub names: Vec<String>,
    pub id: Option<FileId>,
    /// musl: the directories of `<prefix>/etc/ld-musl-$ARCH.path`, if that file exists.
    pub musl_path: Option<Vec<String>>,
    /// glibc: the loader's version (major, minor), from the banner ld.so
    /// prints for `--version` ("… release version 2.36."), which is stored
    /// as a plain string in it. None when unknown.
    pub glibc_version: Option<(u32, u32)>,
}

/// Reads the facts of `interp` (an inside path). `target` is the object
/// being resolved, used for per-machine fallbacks when the interpreter is
/// missing from the sysroot.
pub(crate) fn loader_facts(
    sysroot: &Sysroot,
    interp: &str,
    flavor: Flavor,
    target: &ElfFile,
) -> LoaderFacts {
    let host = sysroot.open_path(Path::new(interp));
    let bytes = host.as_deref().map(read_interp).unwrap_or_default();
    // The kernel runs only an ELF interpreter: anything else (say
    // PT_INTERP = /proc/self/mem) counts as missing, not as a file to copy.
    let parsed = ElfFile::parse(&bytes).ok();
    let id = host
        .as_deref()
        .and_then(super::file_id)
        .filter(|_| parsed.is_some());
    let soname = parsed.and_then(|e| e.soname);
    let base = interp.rsplit('/').next().unwrap_or(interp).to_string();
    let mut names = vec![interp.to_string(), soname.unwrap_or(base)];
    names.dedup();
    let system_dirs = embedded_system_dirs(&bytes)
        .unwrap_or_else(|| super::machine::fallback_system_dirs(target));
    let lib = system_dirs
        .first()
        .map(|d| d.trim_matches('/').to_string())
        .unwrap_or_else(|| "lib".to_string());
    let (musl_path, glibc_version) = match flavor {
        Flavor::Musl => (musl_path_file(sysroot, interp), None),
        Flavor::Glibc => (None, release_version(&bytes)),
    };
    LoaderFacts {
        system_dirs,
        lib,
        names,
        id,
        musl_path,
        glibc_version,
    }
}

/// A real interpreter is a few hundred KiB; more than this is not one.
const MAX_INTERP_BYTES: u64 = 64 << 20;

/// The bytes of the interpreter file, empty when it is not a regular file.
/// PT_INTERP is untrusted: it may name `/dev/zero`, a FIFO (whose open
/// blocks) or a procfs file that reports size 0 but reads without end, so
/// only regular files are opened and at most their stated size is read.
fn read_interp(host: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let size = match fs::metadata(host) {
        Ok(m) if m.is_file() => m.len().min(MAX_INTERP_BYTES),
        _ => return bytes,
    };
    if let Ok(file) = fs::File::open(host) {
        // A read error leaves a prefix; the facts then fall back to defaults.
        let _ = file.take(size).read_to_end(&mut bytes);
    }
    bytes
}

/// Finds glibc's `SYSTEM_DIRS` string block (`"/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0/usr/lib/\0"`)
/// in an ld.so image: the first run of two or more NUL-separated absolute
/// directory strings that all name a lib directory.
pub(crate) fn embedded_system_dirs(bytes: &[u8]) -> Option<Vec<String>> {
    let mut run: Vec<String> = Vec::new();
    for chunk in bytes.split(|b| *b == 0) {
        let text = chunk
            .rsplit(|b| !b.is_ascii_graphic())
            .next()
            .unwrap_or(chunk);
        let starts_clean = text.len() == chunk.len() || run.is_empty();
        let is_dir = text.len() > 1
            && text.starts_with(b"/")
            && text.ends_with(b"/")
            && text.windows(3).any(|w| w == b"lib");
        if is_dir && starts_clean {
            run.push(String::from_utf8_lossy(&text[..text.len() - 1]).into_owned());
            continue;
        }
        if run.len() >= 2 {
            return Some(run);
        }
        run.clear();
        if is_dir {
            run.push(String::from_utf8_lossy(&text[..text.len() - 1]).into_owned());
        }
    }
    (run.len() >= 2).then_some(run)
}

/// The version in glibc's banner, `"… stable release version 2.36."` (or
/// `development release version`), as embedded in ld.so and libc.so.6.
pub(crate) fn release_version(bytes: &[u8]) -> Option<(u32, u32)> {
    const MARK: &[u8] = b" release version ";
    let at = memchr::memmem::find(bytes, MARK)? + MARK.len();
    let tail = bytes.get(at..at.saturating_add(16).min(bytes.len()))?;
    let text: String = tail
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .map(|b| char::from(*b))
        .collect();
    let mut parts = text.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// musl's `<prefix>/etc/ld-musl-$ARCH.path`, prefix being the ldso's
/// directory minus its last component.
fn musl_path_file(sysroot: &Sysroot, interp: &str) -> Option<Vec<String>> {
    let path = musl_path_file_name(interp)?;
    let text = fs::read_to_string(sysroot.open_path(Path::new(&path))?).ok()?;
    Some(
        text.split([':', '\n'])
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn musl_path_file_name(interp: &str) -> Option<String> {
    let (dir, base) = interp.rsplit_once('/')?;
    let arch = base.strip_prefix("ld-musl-")?.split(".so").next()?;
    let prefix = dir.rsplit_once('/').map_or("", |(p, _)| p);
    Some(format!("{prefix}/etc/ld-musl-{arch}.path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_system_dirs_block() {
        let mut blob = b"\x01\x02junk\0/etc/ld.so.cache\0\x80\x01/lib/x/\0/usr/lib/x/\0/lib/\0/usr/lib/\0\0tail/\0".to_vec();
        assert_eq!(
            embedded_system_dirs(&blob),
            Some(vec![
                "/lib/x".into(),
                "/usr/lib/x".into(),
                "/lib".into(),
                "/usr/lib".into()
            ])
        );
        blob.truncate(30);
        assert_eq!(embedded_system_dirs(&blob), None);
    }

    #[test]
    fn reads_the_host_interpreter_dirs() {
        let bytes = fs::read("/lib64/ld-linux-x86-64.so.2").unwrap();
        let dirs = embedded_system_dirs(&bytes).unwrap();
        assert!(
            dirs.iter().any(|d| d == "/lib" || d == "/lib64"),
            "{dirs:?}"
        );
    }

    #[test]
    fn reads_the_release_version_from_the_banner() {
        let blob =
            b"\0junk\0ld.so (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36.\nCopyright";
        assert_eq!(release_version(blob), Some((2, 36)));
        assert_eq!(release_version(b"release version x"), None);
        let host = fs::read("/lib64/ld-linux-x86-64.so.2").unwrap();
        let banner = std::process::Command::new("/lib64/ld-linux-x86-64.so.2")
            .arg("--version")
            .output()
            .unwrap();
        let banner = String::from_utf8_lossy(&banner.stdout).into_owned();
        let (major, minor) = release_version(&host).unwrap();
        assert!(
            banner.contains(&format!("release version {major}.{minor}.")),
            "{banner}"
        );
    }

    #[test]
    fn reads_only_regular_interpreter_files() {
        assert!(read_interp(Path::new("/dev/zero")).is_empty());
        assert!(read_interp(Path::new("/proc/self/pagemap")).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ld.so");
        fs::write(&file, b"\x7fELF").unwrap();
        assert_eq!(read_interp(&file), b"\x7fELF");
    }

    #[test]
    fn musl_path_file_is_beside_the_prefix() {
        assert_eq!(
            musl_path_file_name("/lib/ld-musl-x86_64.so.1").as_deref(),
            Some("/etc/ld-musl-x86_64.path")
        );
        assert_eq!(
            musl_path_file_name("/usr/local/musl/lib/ld-musl-aarch64.so.1").as_deref(),
            Some("/usr/local/musl/etc/ld-musl-aarch64.path")
        );
    }
}
