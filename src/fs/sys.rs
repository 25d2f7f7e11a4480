//! Thin wrappers over the `*at` system calls the confined writer is built from. Each takes a
//! directory descriptor and one name (never a path the kernel would walk on its own, except in
//! [`openat2_in_root`], where the kernel itself keeps the walk inside the root). Errors are the
//! bare OS errors: the callers add the image path they concern.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use filetime::FileTime;

/// A name or relative path as the kernel wants it; a NUL byte cannot name anything.
pub(crate) fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a path component",
        )
    })
}

/// Runs a call returning -1 on error, again while a signal interrupts it.
fn retry(mut call: impl FnMut() -> libc::c_long) -> io::Result<libc::c_long> {
    loop {
        let r = call();
        if r != -1 {
            return Ok(r);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; `dir` is open for the duration of the call.
    let fd = retry(|| unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        ) as libc::c_long
    })?;
    Ok(owned(fd))
}

/// `openat2(dir, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel walks `path`
/// with `dir` as "/" (absolute link targets start at `dir`, ".." stops there) and refuses
/// `/proc` magic links, which could lead anywhere.
pub(crate) fn openat2_in_root(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: all-zero is a valid `open_how` (no flags, mode 0); the fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `how` and `path` outlive the call; the size passed is the size of `how`.
    let fd = retry(|| unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })?;
    Ok(owned(fd))
}

/// What `fstat`/`fstatat` report, as the writer and the validation read it.
pub(crate) fn fstatat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out pointer for the call.
    retry(|| unsafe {
        libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) as libc::c_long
    })?;
    Ok(Stat::from_raw(&st))
}

/// `fstat` on a descriptor (an `O_PATH` one included).
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    fstatat(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
}

/// The target of the symlink `name` in `dir` (an empty name reads the link `dir` itself is
/// open on, with `O_PATH | O_NOFOLLOW`).
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OsString> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the buffer is writable for its whole length.
        let n = retry(|| unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            ) as libc::c_long
        })? as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(OsString::from_vec(buf));
        }
        // Possibly truncated: try again with more room.
        buf.resize(buf.len() * 2, 0);
    }
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    retry(|| unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) as libc::c_long })?;
    Ok(())
}

/// `renameat` within one directory: replaces `to` atomically, never following a link at either
/// name.
pub(crate) fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: valid descriptor and C strings.
    retry(|| unsafe {
        libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) as libc::c_long
    })?;
    Ok(())
}

pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid descriptor and C strings.
    retry(|| unsafe {
        libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) as libc::c_long
    })?;
    Ok(())
}

pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    retry(|| unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) as libc::c_long })?;
    Ok(())
}

pub(crate) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    rdev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    retry(|| unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, rdev) as libc::c_long })?;
    Ok(())
}

/// `fchownat(.., AT_SYMLINK_NOFOLLOW)`: a link at `name` is changed itself, never its target.
pub(crate) fn lchownat(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    retry(|| unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) as libc::c_long
    })?;
    Ok(())
}

/// chmod of `name` in `dir` without following a link there (a link gives EOPNOTSUPP).
/// `fchmodat2` (Linux 6.6) does it in the kernel; before that the C library emulates
/// `AT_SYMLINK_NOFOLLOW` by opening the name with `O_PATH | O_NOFOLLOW` and changing the
/// inode it opened (glibc ≥ 2.32 and musl both do), which never follows a link either.
pub(crate) fn lchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    let r = retry(|| unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    });
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // SAFETY: valid descriptor and C string.
            retry(|| unsafe {
                libc::fchmodat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    mode as libc::mode_t,
                    libc::AT_SYMLINK_NOFOLLOW,
                ) as libc::c_long
            })?;
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

fn times(mtime: FileTime) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.unix_seconds() as libc::time_t,
            tv_nsec: mtime.nanoseconds() as libc::c_long,
        },
    ]
}

/// Sets the mtime of `name` in `dir` (its atime is left alone), never following a link there.
pub(crate) fn set_mtime_at(dir: BorrowedFd<'_>, name: &CStr, mtime: FileTime) -> io::Result<()> {
    let ts = times(mtime);
    // SAFETY: valid descriptor, C string and a two-element timespec array.
    retry(|| unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) as libc::c_long
    })?;
    Ok(())
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    retry(|| unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) as libc::c_long })?;
    Ok(())
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    retry(|| unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) as libc::c_long })?;
    Ok(())
}

pub(crate) fn set_mtime(fd: BorrowedFd<'_>, mtime: FileTime) -> io::Result<()> {
    let ts = times(mtime);
    // SAFETY: valid descriptor and a two-element timespec array.
    retry(|| unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) as libc::c_long })?;
    Ok(())
}

/// `flock(fd, operation)`, retried when a signal interrupts the wait.
pub(crate) fn flock(fd: BorrowedFd<'_>, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: valid descriptor; flock has no memory effects.
    retry(|| unsafe { libc::flock(fd.as_raw_fd(), operation) as libc::c_long })?;
    Ok(())
}

/// The names in the directory `dir` is open on (readable, not `O_PATH`), "." and ".." left out.
pub(crate) fn read_dir_names(dir: OwnedFd) -> io::Result<Vec<OsString>> {
    let raw = dir.as_raw_fd();
    // SAFETY: on success the DIR stream owns the descriptor (closed by closedir below).
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dir);
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: readdir reports its errors through errno, which is cleared first.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is an open DIR stream until closedir.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(err),
            };
        }
        // SAFETY: d_name is a NUL-terminated string inside the entry readdir returned.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsStr::from_bytes(bytes).to_os_string());
        }
    };
    // SAFETY: `stream` is open and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}

/// Fills `buf` with random bytes (for temporary names that others cannot guess).
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the rest of `buf` is writable.
        let n = retry(|| unsafe {
            libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0)
                as libc::c_long
        })?;
        filled += n as usize;
    }
    Ok(())
}

/// The type of a file system object, from its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// The metadata of one object of an image, read without following a link at its name unless
/// asked to (see [`crate::fs::ImageRoot::lstat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileKind,
    /// `st_mode` with the type bits masked off (permissions, setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: FileTime,
    pub dev: u64,
    pub ino: u64,
    /// The device a device node stands for (0 for other objects).
    pub rdev: u64,
}

impl Stat {
    fn from_raw(st: &libc::stat) -> Stat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => FileKind::File,
        };
        Stat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: FileTime::from_unix_time(st.st_mtime, st.st_mtime_nsec as u32),
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: st.st_rdev,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == FileKind::Symlink
    }
}
