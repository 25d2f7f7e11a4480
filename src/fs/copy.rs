//! Atomic, incremental writes into the image, with `rsync -a` semantics: a destination with the
//! same size and mtime as its source is left alone; otherwise the new content is written under a
//! temporary name in the destination's directory and renamed over it (DESIGN invariant 3: no
//! partial files). Every operation works on a descriptor of the destination's parent directory
//! ([`ImageRoot::parent_for_write`]) and one name in it, and never follows a link at that name: a
//! link there is replaced (or changed itself), never written through.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use filetime::FileTime;

use super::root::{ImageRoot, split};
use super::sys::{self, FileKind, Stat};
use super::tree::{EntryKind, TreeEntry};
use super::{path_error, path_problem};

/// Mode bits copied from a source: permissions plus setuid, setgid and sticky.
const MODE_BITS: u32 = 0o7777;

/// How much of a source's metadata a copy keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyOptions {
    /// Keep owner and group (only root may give files away, so set this when running as root).
    pub preserve_owner: bool,
    /// `SOURCE_DATE_EPOCH`: no mtime given to anything is later than this.
    pub epoch: Option<FileTime>,
}

impl CopyOptions {
    /// The mtime a copy of a source with mtime `t` gets: `t`, clamped to the epoch if there is
    /// one. The quick check compares a destination with this, so that a rerun of a reproducible
    /// build finds its own copies up to date.
    fn mtime(&self, t: FileTime) -> FileTime {
        match self.epoch {
            Some(epoch) if t > epoch => epoch,
            _ => t,
        }
    }
}

/// What a write did, so the caller can report copied versus unchanged files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The destination was written; `bytes` of file content (0 for a link or a special file).
    Copied { bytes: u64 },
    /// The destination was already up to date (its mode, owner or mtime may have been re-applied).
    Unchanged,
}

/// The metadata a copy carries over from its source.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: FileTime,
}

impl From<&Metadata> for Attrs {
    fn from(m: &Metadata) -> Attrs {
        Attrs {
            mode: m.mode() & MODE_BITS,
            uid: m.uid(),
            gid: m.gid(),
            mtime: FileTime::from_last_modification_time(m),
        }
    }
}

impl From<&TreeEntry> for Attrs {
    fn from(e: &TreeEntry) -> Attrs {
        Attrs {
            mode: e.mode & MODE_BITS,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
        }
    }
}

/// A directory of the image held open while a batch of files is written into it.
///
/// It is reached like every other directory of a write ([`ImageRoot::dir_for_write`]:
/// `openat2(RESOLVE_IN_ROOT)` or the `O_NOFOLLOW` walk, created if missing), so it is a directory
/// inside the root when it is opened, and each file of the batch lands in that directory, as a
/// write of that file alone, reached at the same moment, would. Holding it for one batch saves a
/// resolution per file; nothing outlives the batch.
pub struct ImageDir {
    fd: OwnedFd,
}

/// What the scan of a dir copy saw of a source file: enough for rsync's quick check without
/// a second `stat` of the source.
#[derive(Debug, Clone, Copy)]
pub struct Scanned {
    size: u64,
    attrs: Attrs,
}

impl Scanned {
    /// The scanned metadata of a regular file of a dir copy; None for anything else.
    pub fn of(entry: &TreeEntry) -> Option<Scanned> {
        matches!(entry.kind, EntryKind::File { .. }).then(|| Scanned {
            size: entry.size,
            attrs: Attrs::from(entry),
        })
    }
}

impl ImageRoot {
    /// Opens the image directory `dir` (created with its parents if missing) for a batch of
    /// [`ImageRoot::copy_file_in`] calls.
    pub fn open_dir(&self, dir: &Path) -> io::Result<ImageDir> {
        Ok(ImageDir {
            fd: self.dir_for_write(dir)?,
        })
    }

    /// Copies the host file `src` (links followed, like `rsync -L`) to the image path `dest`,
    /// creating `dest`'s parent directories in the image if needed. A regular file at `dest` with
    /// the source's size and mtime is kept (its mode and owner re-applied if they differ);
    /// anything else there except a directory is replaced atomically, a link included (never
    /// followed). Errors name `src` (reading) or `dest` (writing).
    pub fn copy_file(&self, src: &Path, dest: &Path, opts: &CopyOptions) -> io::Result<Outcome> {
        let (parent, _) = split(dest).map_err(|err| path_error(dest, err))?;
        let dir = self.open_dir(parent)?;
        self.copy_file_in(&dir, src, dest, None, opts)
    }

    /// [`ImageRoot::copy_file`] into `dir`, which must be `dest`'s parent. With `scanned` (what a
    /// dir copy's scan saw of `src`), the quick check uses it instead of a new `stat` of `src`,
    /// as rsync compares against its file list.
    pub fn copy_file_in(
        &self,
        dir: &ImageDir,
        src: &Path,
        dest: &Path,
        scanned: Option<Scanned>,
        opts: &CopyOptions,
    ) -> io::Result<Outcome> {
        let (_, name) = split(dest).map_err(|err| path_error(dest, err))?;
        let want = match scanned {
            Some(s) => s,
            None => {
                let meta = fs::metadata(src).map_err(|err| path_error(src, err))?;
                check_regular(src, &meta)?;
                Scanned {
                    size: meta.len(),
                    attrs: Attrs::from(&meta),
                }
            }
        };
        let dir = dir.fd.as_fd();
        match sys::fstatat(dir, &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.is_dir() => Err(path_problem(
                dest,
                io::ErrorKind::IsADirectory,
                "is a directory, will not replace it with a file",
            )),
            // rsync's quick check: same size and same modification time means same content. A
            // source newer than the epoch has lost its mtime to the clamp: every later change of
            // it would look the same, so its content decides (read, not written, when equal).
            Ok(st)
                if st.is_file()
                    && st.size == want.size
                    && st.mtime == opts.mtime(want.attrs.mtime)
                    && (st.mtime == want.attrs.mtime || same_content(src, dir, &name, dest)?) =>
            {
                refresh(dir, &name, &st, &want.attrs, opts, false)
                    .map_err(|err| path_error(dest, err))?;
                Ok(Outcome::Unchanged)
            }
            Ok(_) => write_atomically(src, dir, &name, dest, opts),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                write_atomically(src, dir, &name, dest, opts)
            }
            Err(err) => Err(path_error(dest, err)),
        }
    }

    /// Writes `content` (a file copy_bom generates, e.g. `/etc/passwd` for `--implicit`) to the
    /// image path `dest` in `dir`, its parent, with mode 0644 (owned by root when `opts` keeps
    /// owners). A regular file there with exactly this content is kept; anything else except a
    /// directory is replaced atomically, a link included (never followed).
    pub fn write_generated_in(
        &self,
        dir: &ImageDir,
        content: &[u8],
        dest: &Path,
        opts: &CopyOptions,
    ) -> io::Result<Outcome> {
        const MODE: u32 = 0o644;
        let (_, name) = split(dest).map_err(|err| path_error(dest, err))?;
        let dir = dir.fd.as_fd();
        match sys::fstatat(dir, &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.is_dir() => {
                return Err(path_problem(
                    dest,
                    io::ErrorKind::IsADirectory,
                    "is a directory, will not replace it with a file",
                ));
            }
            Ok(st) if st.is_file() && st.size == content.len() as u64 => {
                let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                let mut now = Vec::with_capacity(content.len());
                let same = sys::openat(dir, &name, flags, 0)
                    .and_then(|fd| io::Read::read_to_end(&mut File::from(fd), &mut now))
                    .is_ok_and(|_| now == content);
                if same {
                    if st.mode != MODE || (opts.preserve_owner && (st.uid, st.gid) != (0, 0)) {
                        let want = Attrs {
                            mode: MODE,
                            uid: 0,
                            gid: 0,
                            mtime: st.mtime,
                        };
                        refresh(dir, &name, &st, &want, opts, false)
                            .map_err(|err| path_error(dest, err))?;
                    }
                    return Ok(Outcome::Unchanged);
                }
            }
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => return Err(path_error(dest, err)),
        }
        let mut out: Option<OwnedFd> = None;
        let tmp = create_temp(&name, |tmp| {
            let flags = libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY;
            out = Some(sys::openat(dir, tmp, flags, 0o600)?);
            Ok(())
        })
        .map_err(|err| path_error(dest, err))?;
        let Some(out) = out else {
            return Err(path_problem(
                dest,
                io::ErrorKind::Other,
                "no temporary file",
            ));
        };
        let mut out = File::from(out);
        let result = (|| {
            io::Write::write_all(&mut out, content)?;
            if opts.preserve_owner {
                sys::fchown(out.as_fd(), 0, 0)?;
            }
            sys::fchmod(out.as_fd(), MODE)?;
            sys::renameat(dir, &tmp, &name)
        })();
        match result {
            Ok(()) => Ok(Outcome::Copied {
                bytes: content.len() as u64,
            }),
            Err(err) => {
                let _ = sys::unlinkat(dir, &tmp);
                Err(path_error(dest, err))
            }
        }
    }

    /// Creates the link `link` → `target` in the image (target written verbatim, never
    /// resolved), creating `link`'s parent directories if needed. An identical link is left
    /// alone; a file or another link is replaced atomically; a directory is an error. With
    /// `source` (a link copied from a dir), the link also gets its mtime, and its owner when
    /// `opts` says so, as `rsync -a` gives them.
    pub fn make_symlink(
        &self,
        target: &Path,
        link: &Path,
        source: Option<&TreeEntry>,
        opts: &CopyOptions,
    ) -> io::Result<Outcome> {
        let c_target = sys::cstr(target.as_os_str()).map_err(|err| path_error(link, err))?;
        let (dir, name) = self.parent_for_write(link)?;
        let dir = dir.as_fd();
        let attrs = source.map(Attrs::from);
        let fail = |err| path_error(link, err);
        match sys::fstatat(dir, &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.is_symlink() => {
                let current = sys::readlinkat(dir, &name).map_err(fail)?;
                // Compare bytes: Path equality would call "a//b" and "a/b" the same link.
                if current.as_bytes() != c_target.as_bytes() {
                    replace_with(dir, &name, attrs.as_ref(), opts, true, |tmp| {
                        sys::symlinkat(&c_target, dir, tmp)
                    })
                    .map_err(fail)?;
                    return Ok(Outcome::Copied { bytes: 0 });
                }
                if let Some(a) = &attrs {
                    refresh(dir, &name, &st, a, opts, true).map_err(fail)?;
                }
                Ok(Outcome::Unchanged)
            }
            Ok(st) if st.is_dir() => Err(path_problem(
                link,
                io::ErrorKind::IsADirectory,
                "is a directory, will not replace it with a symlink",
            )),
            Ok(_) => {
                replace_with(dir, &name, attrs.as_ref(), opts, true, |tmp| {
                    sys::symlinkat(&c_target, dir, tmp)
                })
                .map_err(fail)?;
                Ok(Outcome::Copied { bytes: 0 })
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                replace_with(dir, &name, attrs.as_ref(), opts, true, |tmp| {
                    sys::symlinkat(&c_target, dir, tmp)
                })
                .map_err(fail)?;
                Ok(Outcome::Copied { bytes: 0 })
            }
            Err(err) => Err(fail(err)),
        }
    }

    /// Recreates the FIFO, socket or device node `source` at the image path `dest` (`mknod`),
    /// with its mode, mtime and (when `opts` says so) owner, as `rsync -a` does. One of the same
    /// type (and device number) already there is kept, its metadata re-applied; a directory
    /// there is an error; anything else is replaced atomically.
    pub fn make_special(
        &self,
        dest: &Path,
        source: &TreeEntry,
        opts: &CopyOptions,
    ) -> io::Result<Outcome> {
        let EntryKind::Special { rdev } = source.kind else {
            let reason = "not a FIFO, socket or device node";
            return Err(path_problem(dest, io::ErrorKind::InvalidInput, reason));
        };
        let kind = source.mode & libc::S_IFMT;
        let (dir, name) = self.parent_for_write(dest)?;
        let dir = dir.as_fd();
        let attrs = Attrs::from(source);
        let fail = |err| path_error(dest, err);
        match sys::fstatat(dir, &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.is_dir() => Err(path_problem(
                dest,
                io::ErrorKind::IsADirectory,
                "is a directory, will not replace it with a special file",
            )),
            Ok(st) if same_special(&st, kind, rdev) => {
                refresh(dir, &name, &st, &attrs, opts, true).map_err(fail)?;
                Ok(Outcome::Unchanged)
            }
            Ok(_) => self.new_special(dir, &name, kind, rdev, &attrs, opts, dest),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                self.new_special(dir, &name, kind, rdev, &attrs, opts, dest)
            }
            Err(err) => Err(fail(err)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_special(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        kind: u32,
        rdev: u64,
        attrs: &Attrs,
        opts: &CopyOptions,
        dest: &Path,
    ) -> io::Result<Outcome> {
        replace_with(dir, name, Some(attrs), opts, false, |tmp| {
            sys::mknodat(dir, tmp, kind | (attrs.mode & 0o777), rdev)
        })
        .map_err(|err| path_error(dest, err))?;
        Ok(Outcome::Copied { bytes: 0 })
    }

    /// Gives the directory `dir` of the image its source's mode and mtime (and owner when asked).
    /// Call it after the directory's contents are written, since writing them changes its mtime.
    /// A link at `dir` is an error, never followed.
    pub fn copy_dir_metadata(
        &self,
        dir: &Path,
        source: &TreeEntry,
        opts: &CopyOptions,
    ) -> io::Result<()> {
        let fail = |err| path_error(dir, err);
        let (parent, name) = self.parent(dir).map_err(fail)?;
        let parent = parent.as_fd();
        let st = sys::fstatat(parent, &name, libc::AT_SYMLINK_NOFOLLOW).map_err(fail)?;
        if !st.is_dir() {
            return Err(path_problem(
                dir,
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        refresh(parent, &name, &st, &Attrs::from(source), opts, true).map_err(fail)
    }

    /// Removes the temporary files a killed run left in the image directory `dir` (regular files
    /// and links with this module's temporary names); returns how many. Call it only while holding
    /// the root's lock, so no other run's files are removed. A missing `dir` holds none.
    pub fn remove_stale_temp_files(&self, dir: &Path) -> io::Result<usize> {
        let fail = |err| path_error(dir, err);
        let fd = match self.open_path(dir, true, true) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(0),
            Err(err) => return Err(fail(err)),
        };
        let readable = sys::openat(fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0);
        let names = sys::read_dir_names(readable.map_err(fail)?).map_err(fail)?;
        let mut removed = 0;
        for name in names.iter().filter(|n| is_temp_name(n)) {
            let c_name = sys::cstr(name).map_err(fail)?;
            let stale = sys::fstatat(fd.as_fd(), &c_name, libc::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.is_file() || st.is_symlink());
            if stale {
                sys::unlinkat(fd.as_fd(), &c_name).map_err(fail)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Whether the host file `src` and the file `name` in `dir` (never followed), the image's `dest`,
/// hold the same bytes.
fn same_content(src: &Path, dir: BorrowedFd<'_>, name: &CStr, dest: &Path) -> io::Result<bool> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    const CHUNK: usize = 256 * 1024;
    let ours = sys::openat(dir, name, flags, 0).map_err(|err| path_error(dest, err))?;
    let ours = File::from(ours);
    let mut ours = io::BufReader::with_capacity(CHUNK, ours);
    let theirs = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(src)
        .map_err(|err| path_error(src, err))?;
    let mut theirs = io::BufReader::with_capacity(CHUNK, theirs);
    loop {
        let a = io::BufRead::fill_buf(&mut ours).map_err(|err| path_error(dest, err))?;
        let b = io::BufRead::fill_buf(&mut theirs).map_err(|err| path_error(src, err))?;
        let n = a.len().min(b.len());
        if n == 0 {
            return Ok(a.is_empty() && b.is_empty());
        }
        if a[..n] != b[..n] {
            return Ok(false);
        }
        io::BufRead::consume(&mut ours, n);
        io::BufRead::consume(&mut theirs, n);
    }
}

/// Only regular files have content to copy (a FIFO would also block the open).
fn check_regular(src: &Path, meta: &Metadata) -> io::Result<()> {
    if meta.is_dir() {
        let reason = "is a directory (copy it as a directory)";
        return Err(path_problem(src, io::ErrorKind::IsADirectory, reason));
    }
    if !meta.is_file() {
        let reason = "not a regular file";
        return Err(path_problem(src, io::ErrorKind::InvalidInput, reason));
    }
    Ok(())
}

fn same_special(st: &Stat, kind: u32, rdev: u64) -> bool {
    let same_kind = matches!(
        (st.kind, kind),
        (FileKind::Fifo, libc::S_IFIFO)
            | (FileKind::Socket, libc::S_IFSOCK)
            | (FileKind::CharDevice, libc::S_IFCHR)
            | (FileKind::BlockDevice, libc::S_IFBLK)
    );
    same_kind && (!matches!(kind, libc::S_IFCHR | libc::S_IFBLK) || st.rdev == rdev)
}

/// Re-applies owner, mode and (with `mtime`) mtime on `name` in `dir` where they differ from
/// `want`, never following a link there (a link's own mode is not changed: Linux has none).
fn refresh(
    dir: BorrowedFd<'_>,
    name: &CStr,
    now: &Stat,
    want: &Attrs,
    opts: &CopyOptions,
    mtime: bool,
) -> io::Result<()> {
    let mut chowned = false;
    if opts.preserve_owner && (now.uid, now.gid) != (want.uid, want.gid) {
        sys::lchownat(dir, name, want.uid, want.gid)?;
        chowned = true;
    }
    // chown clears setuid and setgid bits: the mode goes after it.
    if !now.is_symlink() && (chowned || now.mode != want.mode) {
        sys::lchmodat(dir, name, want.mode)?;
    }
    if mtime && now.mtime != opts.mtime(want.mtime) {
        sys::set_mtime_at(dir, name, opts.mtime(want.mtime))?;
    }
    Ok(())
}

/// Creates a new object under a fresh temporary name beside `name` with `create`, gives it
/// `attrs` (owner only when `opts` says so; mode unless it is a link), and renames it over `name`.
/// The temporary name is removed on every error path.
fn replace_with(
    dir: BorrowedFd<'_>,
    name: &CStr,
    attrs: Option<&Attrs>,
    opts: &CopyOptions,
    is_link: bool,
    create: impl Fn(&CStr) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = create_temp(name, |tmp| create(tmp))?;
    let result = (|| {
        if let Some(a) = attrs {
            if opts.preserve_owner {
                sys::lchownat(dir, &tmp, a.uid, a.gid)?;
            }
            if !is_link {
                sys::lchmodat(dir, &tmp, a.mode)?;
            }
            sys::set_mtime_at(dir, &tmp, opts.mtime(a.mtime))?;
        }
        sys::renameat(dir, &tmp, name)
    })();
    if result.is_err() {
        let _ = sys::unlinkat(dir, &tmp);
    }
    result
}

/// Writes `src` to a temporary file in `dir`, gives it the source's metadata and renames it
/// over `name`. The temporary file is removed on every error path.
fn write_atomically(
    src: &Path,
    dir: BorrowedFd<'_>,
    name: &CStr,
    dest: &Path,
    opts: &CopyOptions,
) -> io::Result<Outcome> {
    // O_NONBLOCK: if `src` was swapped for a FIFO since it was checked, do not hang on it.
    let mut input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(src)
        .map_err(|err| path_error(src, err))?;
    // The metadata of the bytes actually read, not of whatever `src` named a moment ago.
    let src_meta = input.metadata().map_err(|err| path_error(src, err))?;
    check_regular(src, &src_meta)?;
    let mut out: Option<OwnedFd> = None;
    let tmp = create_temp(name, |tmp| {
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY;
        out = Some(sys::openat(dir, tmp, flags, 0o600)?);
        Ok(())
    })
    .map_err(|err| path_error(dest, err))?;
    let Some(out) = out else {
        return Err(path_problem(
            dest,
            io::ErrorKind::Other,
            "no temporary file",
        ));
    };
    let mut out = File::from(out);
    let result = (|| {
        let bytes = io::copy(&mut input, &mut out).map_err(|err| {
            let reason = format!("copying from {}: {err}", src.display());
            path_problem(dest, err.kind(), &reason)
        })?;
        let attrs = Attrs::from(&src_meta);
        let fd = out.as_fd();
        let set = || -> io::Result<()> {
            if opts.preserve_owner {
                sys::fchown(fd, attrs.uid, attrs.gid)?;
            }
            sys::fchmod(fd, attrs.mode)?;
            sys::set_mtime(fd, opts.mtime(attrs.mtime))?;
            sys::renameat(dir, &tmp, name)
        };
        set().map_err(|err| path_error(dest, err))?;
        Ok(bytes)
    })();
    match result {
        Ok(bytes) => Ok(Outcome::Copied { bytes }),
        Err(err) => {
            let _ = sys::unlinkat(dir, &tmp);
            Err(err)
        }
    }
}

/// The marker between a temporary file's name and its random suffix.
const TEMP_MARK: &[u8] = b".copy_bom-";
/// Length of the random suffix of temporary names.
const TEMP_RAND: usize = 6;
const TEMP_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Calls `create` with fresh temporary names beside `name` (`.NAME.copy_bom-XXXXXX`) until one
/// does not exist yet; returns the name it created.
fn create_temp(
    name: &CStr,
    mut create: impl FnMut(&CStr) -> io::Result<()>,
) -> io::Result<CString> {
    let bytes = name.to_bytes();
    // Short enough that the random suffix still fits in NAME_MAX (255 bytes) for long names.
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(&bytes[..bytes.len().min(200)]);
    prefix.extend_from_slice(TEMP_MARK);
    for _ in 0..100 {
        let mut random = [0u8; TEMP_RAND];
        sys::random_bytes(&mut random)?;
        let mut candidate = prefix.clone();
        candidate.extend(
            random
                .iter()
                .map(|b| TEMP_CHARS[*b as usize % TEMP_CHARS.len()]),
        );
        let candidate = sys::cstr(OsStr::from_bytes(&candidate))?;
        match create(&candidate) {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(err) => return Err(err),
            Ok(()) => return Ok(candidate),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

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
    fn created_temp_names_are_recognised() {
        let name = create_temp(c"libc.so.6", |_| Ok(())).unwrap();
        assert!(is_temp_name(OsStr::from_bytes(name.to_bytes())), "{name:?}");
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        for n in [".a.copy_bom-x1Y2z3", "a", ".copy_bom.lock"] {
            fs::write(t.path().join(n), "").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", t.path().join(".b.copy_bom-x1Y2z3")).unwrap();
        fs::create_dir(t.path().join(".d.copy_bom-x1Y2z3")).unwrap();
        let image = ImageRoot::open_existing(t.path()).unwrap();
        assert_eq!(image.remove_stale_temp_files(Path::new("/")).unwrap(), 2);
        let mut left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, [".copy_bom.lock", ".d.copy_bom-x1Y2z3", "a"]);
        let missing = image.remove_stale_temp_files(Path::new("/missing"));
        assert_eq!(missing.unwrap(), 0);
    }
}
