//! A hidden sibling directory in which an instance is built, then renamed to
//! its final name in one step: other programs see either no instance or a
//! complete one, and a failure removes everything this run created.

use std::ffi::CString;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Status};

/// How many unique names to try before giving up.
const NAME_ATTEMPTS: u32 = 100;

/// The staging directory; removed on drop unless committed.
pub(super) struct Staging {
    path: PathBuf,
    /// Ancestors of the destination this run created, deepest first.
    created_parents: Vec<PathBuf>,
    committed: bool,
}

impl Staging {
    /// Creates the staging directory beside `dest` (creating missing
    /// parents, as `mkdir -p` did in the original).
    pub(super) fn create(dest: &Path) -> Result<Staging> {
        let name = dest.file_name().ok_or_else(|| {
            Error::new(
                Status::Usage,
                format!("cannot create an instance at \"{}\"", dest.display()),
            )
        })?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut staging = Staging {
            path: PathBuf::new(),
            created_parents: missing_ancestors(&parent),
            committed: false,
        };
        fs::create_dir_all(&parent).map_err(|e| dir_error(&parent, e))?;
        let prefix = format!(
            ".{}.copy_bom-new-{}",
            name.to_string_lossy(),
            std::process::id()
        );
        for attempt in 0..NAME_ATTEMPTS {
            let path = parent.join(format!("{prefix}-{attempt}"));
            match fs::create_dir(&path) {
                Ok(()) => {
                    staging.path = path;
                    return Ok(staging);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(dir_error(&path, e)),
            }
        }
        Err(Error::new(
            Status::Dir,
            format!(
                "cannot find a free temporary name beside \"{}\"",
                dest.display()
            ),
        ))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staging directory to `dest`, never replacing anything that
    /// appeared there in the meantime.
    pub(super) fn commit(mut self, dest: &Path) -> Result<()> {
        match rename_no_replace(&self.path, dest) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(super::already_exists(dest)),
            Err(e) => Err(Error::new(
                Status::Dir,
                format!(
                    "cannot rename \"{}\" to \"{}\"",
                    self.path.display(),
                    dest.display()
                ),
            )
            .with_path(dest)
            .with_source(e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort: a drop cannot report, and the error that made the
        // run give up is the one worth reporting.
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.path);
        }
        // Only empty ones: something else may have been put there meanwhile.
        for dir in &self.created_parents {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The ancestors of `dir` (itself included) that do not exist yet, deepest first.
fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| a.symlink_metadata().is_err())
        .map(Path::to_path_buf)
        .collect()
}

fn dir_error(dir: &Path, e: io::Error) -> Error {
    Error::new(
        Status::Dir,
        format!("cannot create directory \"{}\"", dir.display()),
    )
    .with_path(dir)
    .with_source(e)
}

/// `rename(2)` silently replaces an empty directory; RENAME_NOREPLACE does not.
/// File systems without it get a check-then-rename.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    let c_from = CString::new(from.as_os_str().as_bytes())?;
    let c_to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            if to.symlink_metadata().is_ok() {
                return Err(io::Error::from(ErrorKind::AlreadyExists));
            }
            fs::rename(from, to)
        }
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_staging_removes_itself_and_the_parents_it_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("a/b/inst");
        let staging = Staging::create(&dest).unwrap();
        fs::write(staging.path().join("file"), "x").unwrap();
        assert!(staging.path().starts_with(tmp.path().join("a/b")));
        drop(staging);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_never_replaces_an_existing_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("inst");
        let staging = Staging::create(&dest).unwrap();
        fs::create_dir(&dest).unwrap();
        let err = staging.commit(&dest).unwrap_err();
        assert_eq!(err.status, Status::Usage);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("inst")]);
    }

    #[test]
    fn commit_renames_into_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("inst");
        let staging = Staging::create(&dest).unwrap();
        fs::write(staging.path().join("file"), "x").unwrap();
        staging.commit(&dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("file")).unwrap(), "x");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
