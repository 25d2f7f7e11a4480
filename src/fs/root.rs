//! The image root, held as a directory descriptor. Every path given here is an *image* path
//! (absolute inside the image, already normalised: see [`super::normalize_image_path`]); it is
//! resolved relative to the root's descriptor with the image's own view of its links (an absolute
//! target starts at the root, ".." stops there), by the kernel with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or by the component walk of
//! [`super::rooted`] where the kernel lacks `openat2`. No path string is handed to the kernel for
//! a write, and no path is remembered between two calls (only a directory's descriptor, for the
//! files of one batch in it: [`super::ImageDir`]), so a link created or swapped in at any moment
//! (by this run or another process) can only ever lead back inside the root (DESIGN invariant 1).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::rooted::{self, OnMissing};
use super::sys::{self, Stat};
use super::{path_error, path_problem};

/// How many times a resolution is retried when `openat2` reports that a concurrent rename made
/// its result uncertain (`EAGAIN`), before the component walk takes over.
const OPENAT2_RETRIES: usize = 8;

/// A directory on the host that holds an image, opened once. Cheap to share between threads.
#[derive(Debug)]
pub struct ImageRoot {
    root: PathBuf,
    fd: OwnedFd,
    /// Whether to try `openat2` (false once the kernel said ENOSYS, or when a test forces the
    /// component walk). A property of the kernel, not of the tree: nothing stale can hide here.
    use_openat2: AtomicBool,
}

impl ImageRoot {
    /// Opens the image at `root` for writing, creating the directory (and its parents) if it does
    /// not exist yet. A link at `root` itself is followed: the root is what the user named.
    pub fn open(root: &Path) -> io::Result<ImageRoot> {
        std::fs::create_dir_all(root).map_err(|e| path_error(root, e))?;
        Self::open_existing(root)
    }

    /// Opens the existing image at `root` (for reading it, as `check` and the validation do).
    pub fn open_existing(root: &Path) -> io::Result<ImageRoot> {
        let fd = rooted::open_root(root).map_err(|e| path_error(root, e))?;
        Ok(ImageRoot {
            root: root.to_path_buf(),
            fd,
            use_openat2: AtomicBool::new(true),
        })
    }

    /// Never use `openat2`, only the component walk (what runs on kernels older than 5.6 or under
    /// a seccomp filter that refuses the call). For tests of that walk.
    pub fn force_component_walk(self) -> ImageRoot {
        self.use_openat2.store(false, Ordering::Relaxed);
        self
    }

    /// The host directory that holds the image, as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The descriptor of the root directory (`O_PATH`).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The canonical image path of `p`: every link in it followed in image terms (the last one
    /// only if `follow_last`), components from the first missing one on kept as they are. The
    /// same rules as [`rooted::resolve_in_root`], which it shares its walk with.
    pub fn resolve(&self, p: &Path, follow_last: bool) -> io::Result<PathBuf> {
        let walked = rooted::walk(self.fd(), p, follow_last, OnMissing::Keep)
            .map_err(|e| path_error(p, e))?;
        Ok(rooted::image_path(&walked.names))
    }

    /// The metadata of `p` itself (a link at `p` is not followed; links in its parents are, in
    /// image terms), or None when nothing is there.
    pub fn lstat(&self, p: &Path) -> io::Result<Option<Stat>> {
        let (dir, name) = match self.parent(p) {
            Ok(found) => found,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(path_error(p, e)),
        };
        match sys::fstatat(dir.as_fd(), &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(path_error(p, e)),
        }
    }

    /// The metadata of what opening `p` in the image reaches (every link followed in image terms,
    /// the last one included), or None when that does not exist. A loop is an error (`ELOOP`).
    pub fn stat_followed(&self, p: &Path) -> io::Result<Option<Stat>> {
        match self.open_path(p, true, false) {
            Ok(fd) => sys::fstat(fd.as_fd())
                .map(Some)
                .map_err(|e| path_error(p, e)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(path_error(p, e)),
        }
    }

    /// Opens the regular file `p` for reading (a link at `p` is refused, not followed), e.g. to
    /// hash what was written.
    pub fn open_file(&self, p: &Path) -> io::Result<File> {
        let (dir, name) = self.parent(p).map_err(|e| path_error(p, e))?;
        let fd = sys::openat(
            dir.as_fd(),
            &name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
        .map_err(|e| path_error(p, e))?;
        let file = File::from(fd);
        if !file.metadata().map_err(|e| path_error(p, e))?.is_file() {
            return Err(path_problem(
                p,
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// `mkdir -p` inside the image, following existing links in every component (the last one
    /// included) in image terms; a dangling link gets its target created inside the root.
    pub fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        self.dir_for_write(p).map(drop)
    }

    /// A descriptor of the directory `p`, created (with its parents) if missing.
    pub(crate) fn dir_for_write(&self, p: &Path) -> io::Result<OwnedFd> {
        let found = match self.open_path(p, true, true) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rooted::walk(self.fd(), p, true, OnMissing::Create).and_then(|w| {
                    match (w.fd, w.kind) {
                        (Some(fd), Some(sys::FileKind::Dir)) => Ok(fd),
                        _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                    }
                })
            }
            other => other,
        };
        found.map_err(|e| path_error(p, e))
    }

    /// The directory that will hold `p` (created if missing) and `p`'s last name ("." for "/").
    pub(crate) fn parent_for_write(&self, p: &Path) -> io::Result<(OwnedFd, CString)> {
        let (parent, name) = split(p)?;
        Ok((self.dir_for_write(parent)?, name))
    }

    /// The existing directory that holds `p`, and `p`'s last name. Errors are bare (no path).
    pub(crate) fn parent(&self, p: &Path) -> io::Result<(OwnedFd, CString)> {
        let (parent, name) = split(p)?;
        Ok((self.open_path(parent, true, true)?, name))
    }

    /// An `O_PATH` descriptor of `p` in the image (bare errors, `ENOENT` when missing).
    pub(crate) fn open_path(&self, p: &Path, follow_last: bool, dir: bool) -> io::Result<OwnedFd> {
        let mut flags = libc::O_PATH;
        if dir {
            flags |= libc::O_DIRECTORY;
        }
        if !follow_last {
            flags |= libc::O_NOFOLLOW;
        }
        if self.use_openat2.load(Ordering::Relaxed) {
            let rel = relative(p)?;
            for _ in 0..OPENAT2_RETRIES {
                match sys::openat2_in_root(self.fd(), &rel, flags) {
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                        self.use_openat2.store(false, Ordering::Relaxed);
                        break;
                    }
                    // A seccomp filter may answer EPERM for a call it does not know.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => break,
                    other => return other,
                }
            }
        }
        let walked = rooted::walk(self.fd(), p, follow_last, OnMissing::Fail)?;
        match (walked.fd, walked.kind) {
            (Some(fd), Some(kind)) if !dir || kind == sys::FileKind::Dir => Ok(fd),
            (Some(_), _) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            (None, _) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }
}

/// `p` relative to the image's "/" ("." for the root itself), for `openat2`.
fn relative(p: &Path) -> io::Result<CString> {
    let rel = p.strip_prefix("/").unwrap_or(p);
    if rel.as_os_str().is_empty() {
        return Ok(CString::from(c"."));
    }
    sys::cstr(rel.as_os_str())
}

/// The parent of the image path `p` and its last name ("/" is "." in "/").
pub(super) fn split(p: &Path) -> io::Result<(&Path, CString)> {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, sys::cstr(name)?)),
        _ if p.as_os_str().is_empty() || p == Path::new("/") => {
            Ok((Path::new("/"), CString::from(c".")))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a normalised image path",
        )),
    }
}
