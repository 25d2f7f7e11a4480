//! Atomic, incremental copies into the image, with `rsync -a` semantics: a destination with the same
//! size and mtime as its source is left alone; otherwise the new content is written under a temporary
//! name in the destination's directory and renamed over it (DESIGN invariant 3: no partial files).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown, lchown, symlink};
use std::path::Path;

use filetime::FileTime;

use super::tree::TreeEntry;
use super::{path_error, path_problem};

/// Mode bits copied from a source: permissions plus setuid, setgid and sticky.
const MODE_BITS: u32 = 0o7777;

/// How much of a source's metadata a copy keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyOptions {
    /// Keep owner and group (only root may give files away, so set this when running as root).
    pub preserve_owner: bool,
}

/// What a copy did, so the caller can report copied versus unchanged files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The destination was written; `bytes` of file content (0 for a symlink).
    Copied { bytes: u64 },
    /// The destination was already up to date (its mode or owner may have been re-applied).
    Unchanged,
}

/// Copy the file `src` (symlinks followed, like `rsync -L`) to the host path `dest`, whose parent must
/// exist. A regular file at `dest` with the source's size and mtime is kept (its mode and owner are
/// re-applied if they differ); anything else at `dest` except a directory is replaced atomically, and
/// a symlink there is replaced, never followed.
pub fn copy_file(src: &Path, dest: &Path, opts: &CopyOptions) -> io::Result<Outcome> {
    let src_meta = fs::metadata(src).map_err(|err| path_error(src, err))?;
    if src_meta.is_dir() {
        let reason = "is a directory (copy it as a directory)";
        return Err(path_problem(src, io::ErrorKind::IsADirectory, reason));
    }
    if !src_meta.is_file() {
        // A FIFO would block the open below; devices and sockets have no content to copy.
        let reason = "not a regular file";
        return Err(path_problem(src, io::ErrorKind::InvalidInput, reason));
    }
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            let reason = "is a directory, will not replace it with a file";
            Err(path_problem(dest, io::ErrorKind::IsADirectory, reason))
        }
        Ok(meta) if meta.is_file() && same_stamp(&meta, &src_meta) => {
            refresh_attributes(dest, &meta, &src_meta, opts)?;
            Ok(Outcome::Unchanged)
        }
        Ok(_) => write_atomically(src, dest, opts),
        Err(err) if err.kind() == io::ErrorKind::NotFound => write_atomically(src, dest, opts),
        Err(err) => Err(path_error(dest, err)),
    }
}

/// rsync's quick check: same size and same modification time means same content.
fn same_stamp(dest: &Metadata, src: &Metadata) -> bool {
    dest.len() == src.len()
        && FileTime::from_last_modification_time(dest) == FileTime::from_last_modification_time(src)
}

/// Re-apply owner and mode on an up-to-date destination (chown first: it may clear setuid bits).
fn refresh_attributes(
    dest: &Path,
    dest_meta: &Metadata,
    src: &Metadata,
    opts: &CopyOptions,
) -> io::Result<()> {
    let mut chowned = false;
    if opts.preserve_owner && (dest_meta.uid(), dest_meta.gid()) != (src.uid(), src.gid()) {
        lchown(dest, Some(src.uid()), Some(src.gid())).map_err(|err| path_error(dest, err))?;
        chowned = true;
    }
    if chowned || dest_meta.mode() & MODE_BITS != src.mode() & MODE_BITS {
        let perms = Permissions::from_mode(src.mode() & MODE_BITS);
        fs::set_permissions(dest, perms).map_err(|err| path_error(dest, err))?;
    }
    Ok(())
}

/// Write `src` to a temporary file beside `dest`, give it the source's metadata, rename it over
/// `dest`. The temporary file is removed on every error path (dropping it deletes it).
fn write_atomically(src: &Path, dest: &Path, opts: &CopyOptions) -> io::Result<Outcome> {
    let mut input = File::open(src).map_err(|err| path_error(src, err))?;
    // The metadata of the bytes actually read, not of whatever `src` named a moment ago.
    let src_meta = input.metadata().map_err(|err| path_error(src, err))?;
    let mut temp = tempfile::Builder::new()
        .prefix(&temp_prefix(dest)?)
        .rand_bytes(TEMP_RAND)
        .tempfile_in(parent_dir(dest))
        .map_err(|err| path_error(dest, err))?;
    let bytes = io::copy(&mut input, temp.as_file_mut()).map_err(|err| {
        let reason = format!("copying from {}: {err}", src.display());
        path_problem(dest, err.kind(), &reason)
    })?;
    apply_metadata(temp.as_file(), &src_meta, opts).map_err(|err| path_error(temp.path(), err))?;
    temp.persist(dest)
        .map_err(|err| path_error(dest, err.error))?;
    Ok(Outcome::Copied { bytes })
}

fn apply_metadata(file: &File, src: &Metadata, opts: &CopyOptions) -> io::Result<()> {
    if opts.preserve_owner {
        fchown(file, Some(src.uid()), Some(src.gid()))?;
    }
    file.set_permissions(Permissions::from_mode(src.mode() & MODE_BITS))?;
    let mtime = FileTime::from_last_modification_time(src);
    filetime::set_file_handle_times(file, None, Some(mtime))
}

/// Create the symlink `link` → `target` (target written verbatim, never resolved). An identical link
/// is left alone; a file or another link is replaced atomically; a directory is an error.
pub fn make_symlink(target: &Path, link: &Path) -> io::Result<Outcome> {
    match fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let current = fs::read_link(link).map_err(|err| path_error(link, err))?;
            // Compare bytes: Path equality would call "a//b" and "a/b" the same link.
            if current.as_os_str() == target.as_os_str() {
                Ok(Outcome::Unchanged)
            } else {
                replace_with_symlink(target, link)
            }
        }
        Ok(meta) if meta.is_dir() => {
            let reason = "is a directory, will not replace it with a symlink";
            Err(path_problem(link, io::ErrorKind::IsADirectory, reason))
        }
        Ok(_) => replace_with_symlink(target, link),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            symlink(target, link).map_err(|err| path_error(link, err))?;
            Ok(Outcome::Copied { bytes: 0 })
        }
        Err(err) => Err(path_error(link, err)),
    }
}

fn replace_with_symlink(target: &Path, link: &Path) -> io::Result<Outcome> {
    let temp = tempfile::Builder::new()
        .prefix(&temp_prefix(link)?)
        .rand_bytes(TEMP_RAND)
        .make_in(parent_dir(link), |temp_path| symlink(target, temp_path))
        .map_err(|err| path_error(link, err))?;
    temp.persist(link)
        .map_err(|err| path_error(link, err.error))?;
    Ok(Outcome::Copied { bytes: 0 })
}

/// Give a copied directory its source's mode and mtime (and owner when asked). Call it after the
/// directory's contents are written, since writing them changes the directory's mtime.
pub fn copy_dir_metadata(src_meta: &TreeEntry, dest: &Path, opts: &CopyOptions) -> io::Result<()> {
    let meta = fs::symlink_metadata(dest).map_err(|err| path_error(dest, err))?;
    if !meta.is_dir() {
        return Err(path_problem(
            dest,
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    // An unchanged directory is left alone: a no-op rebuild writes nothing.
    let owner_ok =
        !opts.preserve_owner || (meta.uid() == src_meta.uid && meta.gid() == src_meta.gid);
    let mode_ok = meta.mode() & MODE_BITS == src_meta.mode & MODE_BITS;
    let mtime_ok = FileTime::from_last_modification_time(&meta) == src_meta.mtime;
    if owner_ok && mode_ok && mtime_ok {
        return Ok(());
    }
    if !owner_ok {
        lchown(dest, Some(src_meta.uid), Some(src_meta.gid))
            .map_err(|err| path_error(dest, err))?;
    }
    let perms = Permissions::from_mode(src_meta.mode & MODE_BITS);
    fs::set_permissions(dest, perms).map_err(|err| path_error(dest, err))?;
    filetime::set_file_mtime(dest, src_meta.mtime).map_err(|err| path_error(dest, err))
}

/// The directory that holds `path` (a bare name lives in the current directory).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The marker between a temporary file's name and its random suffix.
const TEMP_MARK: &[u8] = b".copy_bom-";
/// Length of the random suffix of temporary names.
const TEMP_RAND: usize = 6;

/// True for a name this module gives temporary files (`.NAME.copy_bom-XXXXXX`).
fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    let Some(head) = b.len().checked_sub(TEMP_RAND) else {
        return false;
    };
    b.starts_with(b".")
        && b[..head].ends_with(TEMP_MARK)
        && head > TEMP_MARK.len() + 1
        && b[head..].iter().all(u8::is_ascii_alphanumeric)
}

/// Removes the temporary files a killed run left in `dir` (regular files and
/// symlinks with this module's temporary names); returns how many. Call it
/// only while holding the root's lock, so no other run's files are removed.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(path_error(dir, err)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|err| path_error(dir, err))?;
        let stale = is_temp_name(&entry.file_name())
            && entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink());
        if stale {
            fs::remove_file(entry.path()).map_err(|err| path_error(&entry.path(), err))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// ".NAME.copy_bom-": hidden, recognisable, and short enough that the random suffix still fits in
/// NAME_MAX (255 bytes) for the longest names.
fn temp_prefix(dest: &Path) -> io::Result<OsString> {
    let name = dest
        .file_name()
        .ok_or_else(|| path_problem(dest, io::ErrorKind::InvalidInput, "has no file name"))?;
    let bytes = name.as_bytes();
    let mut prefix = OsString::from(".");
    prefix.push(OsStr::from_bytes(&bytes[..bytes.len().min(200)]));
    prefix.push(OsStr::from_bytes(TEMP_MARK));
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_temp_name(OsStr::new(".libc.so.6.copy_bom-AbC123")));
        assert!(!is_temp_name(OsStr::new("libc.so.6.copy_bom-AbC123")));
        assert!(!is_temp_name(OsStr::new(".copy_bom.lock")));
        assert!(!is_temp_name(OsStr::new(".x.copy_bom-AbC12")));
        assert!(!is_temp_name(OsStr::new(".copy_bom-AbC123")));
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        for n in [".a.copy_bom-x1Y2z3", "a", ".copy_bom.lock"] {
            fs::write(t.path().join(n), "").unwrap();
        }
        fs::create_dir(t.path().join(".d.copy_bom-x1Y2z3")).unwrap();
        assert_eq!(remove_stale_temp_files(t.path()).unwrap(), 1);
        let mut left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                OsString::from(".copy_bom.lock"),
                ".d.copy_bom-x1Y2z3".into(),
                "a".into()
            ]
        );
        assert_eq!(
            remove_stale_temp_files(&t.path().join("missing")).unwrap(),
            0
        );
    }
}
