//! One writer per image root: two `copy_bom` runs into the same root at once would race on the
//! same temporary names and destinations, so a run holds an exclusive `flock` on the root
//! directory itself while it writes, and a second run waits for the first. Locking the directory
//! (not a file in it) reserves no name in the image and leaves nothing behind, even after a
//! SIGKILL: the kernel drops the lock with the last descriptor.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::root::ImageRoot;
use super::{path_error, sys};

/// An exclusive lock on an image root, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RootLock {
    /// A descriptor of its own on the root directory (its own open file description, so the
    /// lock is this run's alone); closing it releases the lock.
    _dir: OwnedFd,
}

impl RootLock {
    /// Locks `root`, waiting as long as another process holds the lock.
    pub fn acquire(root: &ImageRoot) -> io::Result<RootLock> {
        Self::lock(root, libc::LOCK_EX)
    }

    /// Locks `root` if no other process holds the lock, else fails at once with
    /// [`io::ErrorKind::WouldBlock`] and a message saying another run is writing to the root.
    pub fn try_acquire(root: &ImageRoot) -> io::Result<RootLock> {
        Self::lock(root, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn lock(root: &ImageRoot, operation: libc::c_int) -> io::Result<RootLock> {
        let fail = |e| path_error(root.root(), e);
        // Re-open "." of the root's descriptor: the very directory the writer uses, whatever
        // happened to the root's path since, and readable (flock needs more than O_PATH).
        let dir =
            sys::openat(root.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(fail)?;
        match sys::flock(dir.as_fd(), operation) {
            Ok(()) => Ok(RootLock { _dir: dir }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{}: another copy_bom run is writing to this root",
                    root.root().display()
                ),
            )),
            Err(e) => Err(fail(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    fn image(dir: &std::path::Path) -> ImageRoot {
        ImageRoot::open(dir).unwrap()
    }

    #[test]
    fn second_try_acquire_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::try_acquire(&image(dir.path())).unwrap();
        let err = RootLock::try_acquire(&image(dir.path())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("another copy_bom run"), "{err}");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        drop(first);
        RootLock::try_acquire(&image(dir.path())).unwrap();
        // Nothing was created in the root.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn acquire_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(&image(dir.path())).unwrap();
        let root = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let _second = RootLock::acquire(&image(&root)).unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        assert!(waiter.join().unwrap() >= Duration::from_millis(250));
    }

    #[test]
    fn never_two_holders() {
        let dir = tempfile::tempdir().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (root, inside, start) =
                    (dir.path().to_path_buf(), inside.clone(), start.clone());
                std::thread::spawn(move || {
                    let image = image(&root);
                    start.wait();
                    for _ in 0..200 {
                        let _lock = RootLock::acquire(&image).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }

    #[test]
    fn the_lock_follows_the_directory_not_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let held = RootLock::acquire(&image(&root)).unwrap();
        // The locked directory moves away; a new one takes its name: that one is free, the moved
        // one is still locked.
        let moved = dir.path().join("moved");
        std::fs::rename(&root, &moved).unwrap();
        RootLock::try_acquire(&image(&root)).unwrap();
        let err = RootLock::try_acquire(&image(&moved)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(held);
    }
}
