//! Paths inside a sysroot. Every path the loader sees is inside the
//! sysroot; it is prefixed once when the host file system is touched, and
//! symlinks are followed as they would be inside the sysroot (an absolute
//! link target is taken relative to the sysroot, `..` never leaves it).

use std::fs;
use std::path::{Path, PathBuf};

use crate::fs::resolve_in_root;

#[derive(Debug, Clone)]
pub(crate) struct Sysroot {
    root: PathBuf,
    is_host: bool,
}

impl Sysroot {
    pub(crate) fn new(root: &Path) -> Sysroot {
        let is_host =
            root == Path::new("/") || fs::canonicalize(root).is_ok_and(|p| p == Path::new("/"));
        Sysroot {
            root: root.to_path_buf(),
            is_host,
        }
    }

    /// An inside path made absolute: relative paths are taken relative to
    /// the current directory on the host, relative to the root otherwise.
    pub(crate) fn absolute(&self, inside: &Path) -> PathBuf {
        if inside.is_absolute() {
            return inside.to_path_buf();
        }
        match (self.is_host, std::env::current_dir()) {
            (true, Ok(cwd)) => cwd.join(inside),
            _ => Path::new("/").join(inside),
        }
    }

    /// The host path of an inside path, without following symlinks.
    pub(crate) fn prefixed(&self, inside: &Path) -> PathBuf {
        let inside = self.absolute(inside);
        if self.is_host {
            return inside;
        }
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        self.root.join(rel)
    }

    /// The canonical inside path of an existing file (symlinks resolved
    /// inside the sysroot, with the one in-root walk of [`crate::fs`]), or
    /// None when it does not exist or the links loop.
    pub(crate) fn canonical(&self, inside: &Path) -> Option<PathBuf> {
        let inside = self.absolute(inside);
        if self.is_host {
            return fs::canonicalize(inside).ok();
        }
        let found = resolve_in_root(&self.root, &inside, true).ok()?;
        let host = self.root.join(found.strip_prefix("/").unwrap_or(&found));
        host.symlink_metadata().is_ok().then_some(found)
    }

    /// The host path to try for an inside path that may not exist: on the
    /// host the path itself (the caller's stat says whether it exists), in a
    /// sysroot its links resolved inside the sysroot (None when it does not
    /// exist there).
    pub(crate) fn candidate_path(&self, inside: &Path) -> Option<PathBuf> {
        if self.is_host {
            return Some(self.absolute(inside));
        }
        self.open_path(inside)
    }

    /// The host path to open for an inside path, symlinks resolved inside
    /// the sysroot; None when it does not exist.
    pub(crate) fn open_path(&self, inside: &Path) -> Option<PathBuf> {
        if self.is_host {
            let path = self.absolute(inside);
            return path.exists().then_some(path);
        }
        self.canonical(inside).map(|c| self.prefixed(&c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_sysroot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("lib/x")).unwrap();
        fs::write(root.join("lib/x/ld.so"), "").unwrap();
        fs::create_dir_all(root.join("lib64")).unwrap();
        symlink("/lib/x/ld.so", root.join("lib64/ld.so")).unwrap();
        symlink("../../../../../lib/x", root.join("lib/up")).unwrap();
        let s = Sysroot::new(root);
        assert_eq!(
            s.canonical(Path::new("/lib64/ld.so")),
            Some(PathBuf::from("/lib/x/ld.so"))
        );
        assert_eq!(
            s.canonical(Path::new("/lib/up/ld.so")),
            Some(PathBuf::from("/lib/x/ld.so"))
        );
        assert_eq!(
            s.open_path(Path::new("/lib64/ld.so")),
            Some(root.join("lib/x/ld.so"))
        );
        assert_eq!(s.canonical(Path::new("/lib64/missing")), None);
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert_eq!(Sysroot::new(dir.path()).canonical(Path::new("/a")), None);
    }
}
