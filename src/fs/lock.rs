//! One writer per image root: two `copy_bom` runs into the same root at once would race on the
//! same temporary names and destinations, so a run holds an exclusive `flock` on
//! `<root>/.copy_bom.lock` while it writes, and the second run waits for the first.
//!
//! The lock file is removed when the lock is released, so a finished image holds no trace of it
//! (an image root is packaged as is). Removing a lock file is only safe with a re-check: a waiter
//! may already hold an open descriptor on the removed inode, so after locking, [`RootLock`]
//! verifies that the path still names the inode it locked and starts over if not. Only the holder
//! of the lock ever removes the file, so at most one process can hold a lock on the inode the path
//! names at any moment.
//!
//! The file is opened without following symlinks and must be a regular file: a symlink planted at
//! that name in the root is refused, never followed onto the host.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The name of the lock file inside the root. An applier and `check` should skip this name if
/// they ever meet it (a run killed with SIGKILL leaves it behind; it is harmless and reused).
pub const LOCK_FILE_NAME: &str = ".copy_bom.lock";

/// An exclusive lock on an image root, released (and its file removed) when dropped.
#[derive(Debug)]
pub struct RootLock {
    /// Holds the lock: closing the descriptor (after `drop` removed the file) releases it.
    _file: File,
    path: PathBuf,
}

impl RootLock {
    /// Locks `root`, waiting as long as another process holds the lock. `root` must exist.
    /// Errors name the lock file and the OS reason (for example a read-only root, or a symlink or
    /// directory planted at the lock file's name).
    pub fn acquire(root: &Path) -> io::Result<RootLock> {
        Self::lock(root, libc::LOCK_EX)
    }

    /// Locks `root` if no other process holds the lock, else fails at once with
    /// [`io::ErrorKind::WouldBlock`] and a message saying another run is writing to the root.
    pub fn try_acquire(root: &Path) -> io::Result<RootLock> {
        Self::lock(root, libc::LOCK_EX | libc::LOCK_NB)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(root: &Path, operation: libc::c_int) -> io::Result<RootLock> {
        let path = root.join(LOCK_FILE_NAME);
        loop {
            let file = open_lock_file(&path)?;
            flock(&file, operation).map_err(|e| lock_error(&path, e))?;
            // The previous holder may have removed the file between our open and our lock.
            if still_named_by(&file, &path)? {
                return Ok(RootLock { _file: file, path });
            }
        }
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no one can lock this inode and believe it is
        // the current one; closing `file` afterwards releases the lock.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Opens (creating if needed) the lock file without following a symlink at its name and without
/// blocking on a FIFO, and insists on a regular file.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| with_path(path, e))?;
    if !file.metadata().map_err(|e| with_path(path, e))?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: not a regular file, cannot lock the root",
                path.display()
            ),
        ));
    }
    Ok(file)
}

/// `flock(2)`, retried when a signal interrupts the wait.
fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor is open for the lifetime of `file`; flock has no memory effects.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether `path` still names the inode `file` is open on.
fn still_named_by(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata().map_err(|e| with_path(path, e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(with_path(path, e)),
    }
}

fn lock_error(path: &Path, err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{}: another copy_bom run is writing to this root",
                path.display()
            ),
        )
    } else {
        with_path(path, err)
    }
}

fn with_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    #[test]
    fn second_try_acquire_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::try_acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE_NAME));
        assert!(first.path().is_file());
        let err = RootLock::try_acquire(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains(LOCK_FILE_NAME), "{err}");
        assert!(err.to_string().contains("another copy_bom run"), "{err}");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE_NAME).exists(), "lock file left");
        RootLock::try_acquire(dir.path()).unwrap();
    }

    #[test]
    fn acquire_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(dir.path()).unwrap();
        let root = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let _second = RootLock::acquire(&root).unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        assert!(waiter.join().unwrap() >= Duration::from_millis(250));
    }

    #[test]
    fn never_two_holders_while_files_are_removed_and_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (root, inside, start) =
                    (dir.path().to_path_buf(), inside.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..200 {
                        let _lock = RootLock::acquire(&root).unwrap();
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
    fn a_symlink_at_the_lock_name_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(LOCK_FILE_NAME)).unwrap();
        let err = RootLock::acquire(&root).unwrap_err();
        assert!(err.to_string().contains(LOCK_FILE_NAME), "{err}");
        assert!(!outside.exists(), "followed the symlink onto the host");
    }

    #[test]
    fn a_directory_or_fifo_at_the_lock_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(LOCK_FILE_NAME)).unwrap();
        assert!(RootLock::acquire(dir.path()).is_err());

        let other = tempfile::tempdir().unwrap();
        let fifo = std::ffi::CString::new(
            other
                .path()
                .join(LOCK_FILE_NAME)
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = RootLock::acquire(other.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_missing_root_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = RootLock::acquire(&dir.path().join("nope")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
