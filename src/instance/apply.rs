//! Writes a planned instance into a (staging) directory.
//!
//! A source that does not exist is not an error: it becomes a note saying what
//! `occlum build` will still need, because a machine without Occlum is the
//! usual case. A source that exists but cannot be copied is an error.

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::layout::Entry;
use crate::error::{Error, Result, Status};

/// What writing a plan produced.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// (source, destination relative to the instance).
    pub(super) copied: Vec<(PathBuf, PathBuf)>,
    pub(super) missing: Vec<String>,
}

/// Creates every entry of `plan` under `root`, in order.
pub(super) fn apply(plan: &[Entry], root: &Path) -> Result<Applied> {
    let mut applied = Applied::default();
    for entry in plan {
        match entry {
            Entry::Dir(dir) => create_dir(&root.join(dir))?,
            Entry::Write {
                dest,
                contents,
                mode,
            } => write_file(&root.join(dest), contents.as_bytes(), *mode)?,
            Entry::Copy { src, dest, what } => {
                if copy_file(src, &root.join(dest))? {
                    applied.copied.push((src.clone(), dest.clone()));
                } else {
                    applied.missing.push(format!(
                        "{} ({what}) was not created: {} does not exist",
                        dest.display(),
                        src.display()
                    ));
                }
            }
            Entry::Symlink { dest, target } => make_symlink(target, &root.join(dest))?,
            Entry::Missing(note) => applied.missing.push(note.clone()),
        }
    }
    Ok(applied)
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| {
        Error::new(
            Status::Dir,
            format!("cannot create directory \"{}\"", dir.display()),
        )
        .with_path(dir)
        .with_source(e)
    })
}

/// Writes a new file; `mode` (when given) is applied exactly, whatever the umask.
pub(super) fn write_file(dest: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::new(
            Status::FileCopy,
            format!("cannot write \"{}\"", dest.display()),
        )
        .with_path(dest)
        .with_source(e)
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.unwrap_or(0o666))
        .open(dest)
        .map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    if let Some(mode) = mode {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(fail)?;
    }
    Ok(())
}

/// Copies `src` (following symlinks) to `dest`. Returns false when `src`
/// does not exist.
fn copy_file(src: &Path, dest: &Path) -> Result<bool> {
    let fail = || {
        Error::new(
            Status::FileCopy,
            format!(
                "cannot copy \"{}\" to \"{}\"",
                src.display(),
                dest.display()
            ),
        )
        .with_path(src)
    };
    match fs::metadata(src) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail().with_source(e)),
        Ok(meta) if meta.is_dir() => {
            return Err(fail().with_source(io::Error::from(ErrorKind::IsADirectory)));
        }
        Ok(_) => {}
    }
    if let Some(parent) = dest.parent() {
        create_dir(parent)?;
    }
    fs::copy(src, dest).map_err(|e| fail().with_source(e))?;
    Ok(true)
}

fn make_symlink(target: &Path, dest: &Path) -> Result<()> {
    symlink(target, dest).map_err(|e| {
        Error::new(
            Status::Link,
            format!(
                "cannot create symlink \"{}\" -> \"{}\"",
                dest.display(),
                target.display()
            ),
        )
        .with_path(dest)
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_source_becomes_a_note_and_copies_nothing() {
        let root = tempfile::tempdir().unwrap();
        let plan = [Entry::Copy {
            src: root.path().join("nope"),
            dest: PathBuf::from("lib/nope"),
            what: "a test file",
        }];
        let applied = apply(&plan, root.path()).unwrap();
        assert!(applied.copied.is_empty());
        assert_eq!(applied.missing.len(), 1);
        assert!(applied.missing[0].starts_with("lib/nope (a test file) was not created"));
        assert!(!root.path().join("lib").exists());
    }

    #[test]
    fn copy_follows_symlinks() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("real"), "data").unwrap();
        symlink("real", root.path().join("link")).unwrap();
        let plan = [Entry::Copy {
            src: root.path().join("link"),
            dest: PathBuf::from("out/file"),
            what: "a test file",
        }];
        apply(&plan, root.path()).unwrap();
        let out = root.path().join("out/file");
        assert!(out.symlink_metadata().unwrap().file_type().is_file());
        assert_eq!(fs::read_to_string(out).unwrap(), "data");
    }

    #[test]
    fn write_applies_the_exact_mode_and_refuses_to_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("f");
        write_file(&dest, b"x", Some(0o644)).unwrap();
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        let err = write_file(&dest, b"y", None).unwrap_err();
        assert_eq!(err.status, Status::FileCopy);
    }
}
