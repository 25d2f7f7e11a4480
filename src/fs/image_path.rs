//! Image paths, and how a path resolves inside a root.
//!
//! [`ImagePath`] is the one type for a path *inside* an image (or a sysroot): absolute from the
//! image's `/`, normalised, never holding `..`, built only by [`ImagePath::parse`] and the methods
//! that derive one image path from another. Host paths stay `Path`/`PathBuf`.
//!
//! [`resolve_in_root_with`] is the one walk that follows symlinks *in a root's terms* (an absolute
//! target starts again at the root, `..` stops at the root, 40 links at most). It asks a lookup
//! function what each prefix is, so the same rules serve a directory on disk (a `--sysroot`, the
//! image `check` reads) and the image being planned (planned links laid over the root's state).

use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::Deref;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::rooted::MAX_LINK_HOPS;

/// A path that climbs above the image's "/" with "..", or that holds a NUL byte: rejected before
/// anything is written (SPEC B2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("{0:?} leads outside the image root")]
    Climbs(String),
    #[error("{0:?} holds a NUL byte, which no file name can")]
    Nul(String),
}

/// An absolute, normalised path inside an image: "/" then names, no ".", "..", or empty components.
///
/// Being normalised, two image paths are equal exactly when their bytes are, so they compare,
/// order and hash as bytes: much faster than `Path`'s component-wise comparison in the maps that
/// hold a whole image. Byte order still puts every directory before everything below it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ImagePath(PathBuf);

impl ImagePath {
    fn bytes(&self) -> &[u8] {
        self.0.as_os_str().as_bytes()
    }
}

impl PartialEq for ImagePath {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for ImagePath {}

impl PartialOrd for ImagePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ImagePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl std::hash::Hash for ImagePath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state)
    }
}

impl ImagePath {
    /// The image's "/".
    pub fn root() -> ImagePath {
        ImagePath(PathBuf::from("/"))
    }

    /// Normalises `p` as a path inside the image: "." and empty components are dropped, ".."
    /// removes the previous component, and a relative path is taken from the image root.
    ///
    /// Unlike the kernel (where "/.." is "/"), a ".." above "/" is an error: in a bom it means the
    /// author expected to leave the root, and silently clamping would write somewhere else.
    pub fn parse(p: impl AsRef<OsStr>) -> Result<ImagePath, EscapeError> {
        let p = p.as_ref();
        let bytes = p.as_bytes();
        if bytes.contains(&0) {
            return Err(EscapeError::Nul(p.to_string_lossy().into_owned()));
        }
        if is_normal(bytes) {
            return Ok(ImagePath(PathBuf::from(p)));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in bytes.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(EscapeError::Climbs(p.to_string_lossy().into_owned()));
                    }
                }
                name => parts.push(name),
            }
        }
        Ok(ImagePath::from_names(
            parts.into_iter().map(OsStr::from_bytes),
        ))
    }

    /// `rel` taken from this directory (an absolute `rel` starts at the image's "/").
    pub fn join(&self, rel: impl AsRef<OsStr>) -> Result<ImagePath, EscapeError> {
        let rel = rel.as_ref();
        if rel.as_bytes().starts_with(b"/") {
            return ImagePath::parse(rel);
        }
        let mut joined = self.0.clone().into_os_string();
        joined.push("/");
        joined.push(rel);
        if is_normal(joined.as_bytes()) {
            return Ok(ImagePath(PathBuf::from(joined)));
        }
        ImagePath::parse(joined)
    }

    /// The parent directory; None for "/".
    pub fn parent(&self) -> Option<ImagePath> {
        self.0.parent().map(|p| ImagePath(p.to_path_buf()))
    }

    /// The parent directory's bytes, borrowed ("" for "/"): a key to group paths by directory
    /// without building each parent.
    pub fn parent_key(&self) -> &[u8] {
        self.0
            .parent()
            .map_or(&[][..], |d| d.as_os_str().as_bytes())
    }

    /// The names below "/", in order.
    pub fn names(&self) -> impl DoubleEndedIterator<Item = &OsStr> {
        self.0.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
    }

    /// The path without its leading "/", to join onto the host directory that holds the image.
    pub fn relative(&self) -> &Path {
        self.0.strip_prefix("/").unwrap_or(&self.0)
    }

    /// The host path of this image path in the directory `root`, without following anything.
    pub fn on_host(&self, root: &Path) -> PathBuf {
        root.join(self.relative())
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    fn from_names<'a>(names: impl Iterator<Item = &'a OsStr>) -> ImagePath {
        let mut out = PathBuf::from("/");
        out.extend(names);
        ImagePath(out)
    }

    /// This directory's entry `name` (a single normal name: no "/", ".", "..").
    pub(crate) fn child(&self, name: &OsStr) -> ImagePath {
        ImagePath(self.0.join(name))
    }
}

/// Whether `bytes` is already an image path as [`ImagePath::parse`] makes it: "/" and names, no
/// empty, "." or ".." component, no trailing "/", no NUL. Most paths are, and need no rebuilding.
fn is_normal(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return false;
    }
    match bytes.strip_prefix(b"/") {
        Some(b"") => true,
        Some(rest) => rest
            .split(|b| *b == b'/')
            .all(|part| !matches!(part, b"" | b"." | b"..")),
        None => false,
    }
}

impl Deref for ImagePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ImagePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::fmt::Display for ImagePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.display().fmt(f)
    }
}

/// What a resolved prefix of a path is, as far as a walk needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing there (yet): the rest of the path is taken literally.
    Missing,
    /// A directory, a file, or anything else that is not a symlink.
    Present,
    /// A symlink with this target.
    Link(PathBuf),
}

/// Resolves `p` (absolute, or relative to the root; `..` taken after the links before it, as the
/// kernel does) inside a root the way the kernel would inside a chroot at that root: each symlink
/// met is replaced by its target (absolute targets start again at the root, relative ones at the
/// link's directory), `..` at the root stays at the root, and more than [`MAX_LINK_HOPS`] links is
/// `ELOOP`. The last component is followed only when `follow_last` is set. `lookup` is asked only
/// about resolved prefixes (no link in them); below a missing one it must still answer, since a
/// planned image can hold links under directories the disk does not have yet.
pub fn resolve_in_root_with(
    p: &Path,
    follow_last: bool,
    mut lookup: impl FnMut(&ImagePath) -> io::Result<Lookup>,
) -> io::Result<ImagePath> {
    let mut resolved = ImagePath::root();
    let mut pending: Vec<OsString> = p
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                resolved = resolved.parent().unwrap_or_else(ImagePath::root);
                continue;
            }
            _ => {}
        }
        let next = resolved.child(&part);
        let last = pending.is_empty();
        if last && !follow_last {
            resolved = next;
            continue;
        }
        match lookup(&next)? {
            Lookup::Missing | Lookup::Present => resolved = next,
            Lookup::Link(target) => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                if target.as_os_str().as_bytes().starts_with(b"/") {
                    resolved = ImagePath::root();
                }
                let bytes = target.into_os_string().into_vec();
                for comp in bytes.split(|b| *b == b'/').rev() {
                    pending.push(OsString::from_vec(comp.to_vec()));
                }
            }
        }
    }
    Ok(resolved)
}

/// What `p` is in the directory `root` on disk (not following a link at `p` itself). Only called
/// on resolved prefixes, so every parent of `p` under `root` is a real directory or missing.
pub fn lookup_on_disk(root: &Path, p: &ImagePath) -> io::Result<Lookup> {
    let host = p.on_host(root);
    match std::fs::symlink_metadata(&host) {
        Ok(m) if m.file_type().is_symlink() => Ok(Lookup::Link(std::fs::read_link(&host)?)),
        Ok(_) => Ok(Lookup::Present),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Lookup::Missing),
        // A file used as a directory on the way: nothing below it exists.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(Lookup::Missing),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn norm(p: &str) -> String {
        ImagePath::parse(p).unwrap().to_string()
    }

    #[test]
    fn removes_dots_and_double_slashes() {
        assert_eq!(norm("/usr//lib/./x86_64/"), "/usr/lib/x86_64");
        assert_eq!(norm("//"), "/");
        assert_eq!(norm(""), "/");
        assert_eq!(norm("."), "/");
    }

    #[test]
    fn parsing_is_idempotent_and_keeps_normal_paths_byte_for_byte() {
        for p in ["/", "/a", "/usr/lib/x86_64", "/a/.b/..c/...", "/a b/c\\d"] {
            assert_eq!(norm(p), p);
        }
        for p in ["a//b/", "/./a/../b/.", "x/./y", "/a/...", "//a"] {
            let once = ImagePath::parse(p).unwrap();
            let twice = ImagePath::parse(once.as_os_str()).unwrap();
            assert_eq!(
                once.as_os_str().as_bytes(),
                twice.as_os_str().as_bytes(),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_dot_pops_a_component() {
        assert_eq!(norm("/usr/lib/../bin"), "/usr/bin");
        assert_eq!(norm("/a/b/../../c"), "/c");
        assert_eq!(norm("/a/.."), "/");
    }

    #[test]
    fn relative_paths_start_at_the_root_and_join_from_a_dir() {
        assert_eq!(norm("lib"), "/lib");
        assert_eq!(norm("./opt/app"), "/opt/app");
        let bin = ImagePath::parse("/x/bin").unwrap();
        assert_eq!(
            bin.join("../lib/libfoo.so").unwrap().to_string(),
            "/x/lib/libfoo.so"
        );
        assert_eq!(bin.join("/etc").unwrap().to_string(), "/etc");
    }

    #[test]
    fn climbing_above_the_root_and_nul_bytes_are_errors() {
        assert_eq!(
            ImagePath::parse("/a/../../etc"),
            Err(EscapeError::Climbs("/a/../../etc".into()))
        );
        assert!(ImagePath::parse("..").is_err());
        assert!(ImagePath::parse("a\0b").is_err());
        assert!(ImagePath::parse("/x").unwrap().join("../../y").is_err());
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libc.so"), "").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib/libc.so", root.join("abs")).unwrap();
        symlink("../../../../usr", root.join("usr/up")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let r = |p: &str, follow| {
            resolve_in_root_with(Path::new(p), follow, |q| lookup_on_disk(root, q))
                .map(|p| p.to_string())
        };
        assert_eq!(r("/lib/libc.so", true).unwrap(), "/usr/lib/libc.so");
        assert_eq!(r("/lib", false).unwrap(), "/lib");
        assert_eq!(r("/abs", true).unwrap(), "/usr/lib/libc.so");
        assert_eq!(r("/usr/up/lib/x/y", true).unwrap(), "/usr/lib/x/y");
        // `..` after a link is taken from where the link leads.
        assert_eq!(r("/lib/../bin", true).unwrap(), "/usr/bin");
        assert_eq!(
            r("/loop1", true).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
    }
}
