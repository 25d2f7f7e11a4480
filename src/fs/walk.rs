//! Walking a whole image through descriptors, for the readers and writers that concern every
//! object in the root rather than the planned ones: the image digest and the mtime clamp of a
//! reproducible build ([`ImageRoot::clamp_mtimes`]). Each directory is opened from its parent's descriptor with `O_NOFOLLOW`,
//! so a link is never followed and the walk cannot leave the root whatever links it holds; the
//! names of a directory are visited in bytewise order, so nothing depends on readdir's order.

use std::ffi::{CStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use filetime::FileTime;

use super::root::ImageRoot;
use super::sys::{self, Stat};
use super::{path_error, path_problem};

/// One object of the image, as the walk meets it.
pub struct Visit<'a> {
    /// The directory that holds it (the root's own descriptor for the root).
    pub(crate) dir: BorrowedFd<'a>,
    /// Its name in `dir` ("." for the root).
    pub(crate) name: &'a CStr,
    /// Its image path: "/" for the root, "/a/b" below it.
    pub path: &'a Path,
    /// Its metadata (a link's own, never its target's).
    pub stat: &'a Stat,
}

impl Visit<'_> {
    /// The target of the link visited, never followed.
    pub fn link_target(&self) -> io::Result<OsString> {
        sys::readlinkat(self.dir, self.name).map_err(|e| path_error(self.path, e))
    }
}

impl ImageRoot {
    /// Calls `visit` for every object of the image, each directory after everything inside it and
    /// the root last (post-order: a visitor that changes a directory's mtime does it after its
    /// children's). Errors name the image path concerned.
    pub fn walk_post_order(
        &self,
        visit: &mut dyn FnMut(&Visit<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let root = Path::new("/");
        let mut path = b"/".to_vec();
        walk_dir(self.fd(), &mut path, visit)?;
        let stat = sys::fstat(self.fd()).map_err(|e| path_error(root, e))?;
        visit(&Visit {
            dir: self.fd(),
            name: c".",
            path: root,
            stat: &stat,
        })
    }
}

impl ImageRoot {
    /// Gives everything in the image whose mtime is later than `epoch` (`SOURCE_DATE_EPOCH`) that
    /// mtime: files, links (their own, never their targets'), directories after their contents,
    /// the root last. Returns how many were changed.
    pub fn clamp_mtimes(&self, epoch: FileTime) -> io::Result<usize> {
        let mut changed = 0;
        self.walk_post_order(&mut |v| {
            if v.stat.mtime > epoch {
                sys::set_mtime_at(v.dir, v.name, epoch).map_err(|e| path_error(v.path, e))?;
                changed += 1;
            }
            Ok(())
        })?;
        Ok(changed)
    }
}

fn walk_dir(
    dir: BorrowedFd<'_>,
    path: &mut Vec<u8>,
    visit: &mut dyn FnMut(&Visit<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let here = |p: &[u8]| Path::new(std::ffi::OsStr::from_bytes(p)).to_path_buf();
    let readable = sys::openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| path_error(&here(path), e))?;
    let mut names = sys::read_dir_names(readable).map_err(|e| path_error(&here(path), e))?;
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let len = path.len();
        if len > 1 {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let fail = |e| path_error(&here(path), e);
        let c_name = sys::cstr(&name).map_err(fail)?;
        let stat = sys::fstatat(dir, &c_name, libc::AT_SYMLINK_NOFOLLOW).map_err(fail)?;
        if stat.is_dir() {
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let sub = sys::openat(dir, &c_name, flags, 0).map_err(fail)?;
            let opened = sys::fstat(sub.as_fd()).map_err(fail)?;
            if (opened.dev, opened.ino) != (stat.dev, stat.ino) {
                let reason = "replaced while the image was being read";
                return Err(path_problem(&here(path), io::ErrorKind::Other, reason));
            }
            walk_dir(sub.as_fd(), path, visit)?;
        }
        visit(&Visit {
            dir,
            name: &c_name,
            path: &here(path),
            stat: &stat,
        })?;
        path.truncate(len);
    }
    Ok(())
}
