//! The one resolver of "a path inside a root": an image being written, an image given to `check`,
//! or a `--sysroot`. It walks a path one component at a time from a descriptor of the root, never
//! letting the kernel follow a link (`openat(O_PATH | O_NOFOLLOW)` on each name), and resolves each
//! link it meets the way the tree itself would see it if it were "/":
//!
//! - an absolute link target starts again at the root;
//! - a relative target is taken from the directory holding the link;
//! - ".." goes back to the directory the walk came from, and at the root stays at the root;
//! - more than 40 links in one resolution (Linux's MAXSYMLINKS) is `ELOOP`;
//! - a component that exists but is not a directory, with more components after it, is `ENOTDIR`;
//! - from the first missing component on, the rest is kept as names (a ".." coming from a link
//!   target cancels the last missing name, and once none is left the walk looks names up again),
//!   which is where `mkdir -p` of the path would create things.
//!
//! This is what `openat2(RESOLVE_IN_ROOT)` does in the kernel; the writer uses that syscall when
//! it can (one call instead of one per component) and this walk where the kernel lacks it. The walk
//! keeps no memory between calls: every resolution reads the tree as it is now.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::path_error;
use super::sys::{self, FileKind};

/// Linux's limit on symlinks followed while resolving one path (MAXSYMLINKS).
pub(crate) const MAX_LINK_HOPS: usize = 40;

/// What the walk does at a name that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnMissing {
    /// Fail with `ENOENT`.
    Fail,
    /// `mkdirat` it and go on (mkdir -p; a dangling link thus creates its target).
    Create,
    /// Keep it and every later component as names (the resolution of a path that does not exist
    /// yet).
    Keep,
}

/// Where a walk ended.
#[derive(Debug)]
pub(crate) struct Walked {
    /// The canonical components below the root (no link, no "." or "..", except names kept
    /// after a missing one).
    pub names: Vec<OsString>,
    /// The object reached (`O_PATH`), None when it does not exist ([`OnMissing::Keep`]).
    pub fd: Option<OwnedFd>,
    pub kind: Option<FileKind>,
}

/// Walks `p` (taken from the root whether or not it starts with "/") from `root`, a descriptor of
/// the root directory. The last component is followed when it is a link only if `follow_last`.
pub(crate) fn walk(
    root: BorrowedFd<'_>,
    p: &Path,
    follow_last: bool,
    on_missing: OnMissing,
) -> io::Result<Walked> {
    let mut dirs: Vec<(OsString, OwnedFd)> = Vec::new();
    let mut pending: Vec<OsString> = Vec::new();
    push_reversed(&mut pending, p);
    let mut missing_tail: Vec<OsString> = Vec::new();
    let mut hops = 0;
    // Bounds the retries when another process keeps removing what `Create` just made.
    let mut creations = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if missing_tail.pop().is_none() {
                dirs.pop();
            }
            continue;
        }
        if !missing_tail.is_empty() {
            missing_tail.push(part);
            continue;
        }
        let is_last = pending.is_empty();
        let cur = dirs.last().map_or(root, |(_, fd)| fd.as_fd());
        let name = sys::cstr(&part)?;
        let fd = match sys::openat(cur, &name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match on_missing {
                OnMissing::Fail => return Err(e),
                OnMissing::Keep => {
                    missing_tail.push(part);
                    continue;
                }
                OnMissing::Create => {
                    creations += 1;
                    if creations > 1000 {
                        return Err(e);
                    }
                    match sys::mkdirat(cur, &name, 0o777) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                        _ => {}
                    }
                    pending.push(part);
                    continue;
                }
            },
            Err(e) => return Err(e),
        };
        let kind = sys::fstat(fd.as_fd())?.kind;
        match kind {
            FileKind::Dir => dirs.push((part, fd)),
            FileKind::Symlink if !is_last || follow_last => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = sys::readlinkat(fd.as_fd(), c"")?;
                let target = Path::new(&target);
                if target.has_root() {
                    dirs.clear();
                }
                push_reversed(&mut pending, target);
            }
            _ if is_last => {
                let mut names: Vec<OsString> = dirs.into_iter().map(|(n, _)| n).collect();
                names.push(part);
                return Ok(Walked {
                    names,
                    fd: Some(fd),
                    kind: Some(kind),
                });
            }
            _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }
    if !missing_tail.is_empty() {
        let mut names: Vec<OsString> = dirs.into_iter().map(|(n, _)| n).collect();
        names.extend(missing_tail);
        return Ok(Walked {
            names,
            fd: None,
            kind: None,
        });
    }
    let fd = match dirs.pop() {
        Some((name, fd)) => {
            let mut names: Vec<OsString> = dirs.into_iter().map(|(n, _)| n).collect();
            names.push(name);
            return Ok(Walked {
                names,
                fd: Some(fd),
                kind: Some(FileKind::Dir),
            });
        }
        None => sys::openat(root, c".", libc::O_PATH | libc::O_DIRECTORY, 0)?,
    };
    Ok(Walked {
        names: Vec::new(),
        fd: Some(fd),
        kind: Some(FileKind::Dir),
    })
}

/// Pushes the components of `p` onto `pending` so that the first one is popped first. "." and a
/// leading "/" carry no name; ".." is kept for the walk to interpret.
fn push_reversed(pending: &mut Vec<OsString>, p: &Path) {
    let start = pending.len();
    for c in p.components() {
        match c {
            Component::Normal(name) => pending.push(name.to_os_string()),
            Component::ParentDir => pending.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    pending[start..].reverse();
}

/// The image path a list of canonical names stands for.
pub(crate) fn image_path(names: &[OsString]) -> PathBuf {
    let mut out = PathBuf::from("/");
    out.extend(names);
    out
}

/// Resolves `p` inside the directory `root` (a sysroot, or an image that is not being written)
/// as if `root` were "/", with the rules of this module's documentation: the result is the
/// canonical path *inside* `root` (starting with "/"), every existing link followed in `root`'s
/// terms (the last component only when `follow_last`), components from the first missing one on
/// kept as they are. `p` is taken from `root` whether or not it starts with "/".
///
/// Errors: `ELOOP` after 40 links, `ENOTDIR` when a file stands where a directory is needed, and
/// any error opening `root` or reading the tree; each names `p` (or `root`).
pub fn resolve_in_root(root: &Path, p: &Path, follow_last: bool) -> io::Result<PathBuf> {
    let fd = open_root(root).map_err(|e| path_error(root, e))?;
    let walked = walk(fd.as_fd(), p, follow_last, OnMissing::Keep).map_err(|e| path_error(p, e))?;
    Ok(image_path(&walked.names))
}

/// A descriptor of the directory `root` (a link there is followed: the root is whatever the
/// user named), usable as the start of walks but not for reading it.
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    Ok(OwnedFd::from(dir))
}
