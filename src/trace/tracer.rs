//! The ptrace loop: runs a program and every process and thread it starts, stopping each at the
//! entry and exit of its system calls (`PTRACE_GET_SYSCALL_INFO`, so the arguments and results
//! come from the kernel in one call), and records the paths of the calls that succeed.
//!
//! Paths are read at entry (an `execve` that succeeds replaces the memory they were in) and
//! kept when the exit says the call worked. A relative path is made absolute with the caller's
//! working directory or directory descriptor, read from `/proc/PID/cwd` and `/proc/PID/fd/N` at
//! entry, before the call can change them.
//!
//! `PTRACE_O_EXITKILL` kills every tracee if copy_bom itself dies, so none is left stopped.
//! When the traced program ends, processes it left running (daemons) are stopped with SIGSTOP,
//! detached with that stop suppressed, and go on untraced: trace returns with the program.

use std::collections::HashSet;

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// What a call did with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Use {
    /// Opened for reading (or mapped, listed).
    Read,
    /// Executed.
    Exec,
    /// Looked at without opening: `stat`, `access`, `readlink`.
    Probe,
    /// Opened for writing or created.
    Write,
}

/// One use of a path by a traced process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub path: PathBuf,
    pub how: Use,
    /// The program the process was running (its last `execve`), when known.
    pub by: Option<PathBuf>,
    /// False when the call failed because the path is not there (`ENOENT`, `ENOTDIR`): a
    /// lookup that `run` reports. Calls that fail for other reasons are not recorded.
    pub found: bool,
}

/// How the traced program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
}

impl Ending {
    /// The shell's convention: the status, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Ending::Exited(c) => c,
            Ending::Signaled(s) => 128 + s,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const AUDIT_ARCH: u32 = 0xc000_003e;
    pub const OPEN: u64 = 2;
    pub const STAT: u64 = 4;
    pub const LSTAT: u64 = 6;
    pub const ACCESS: u64 = 21;
    pub const EXECVE: u64 = 59;
    pub const READLINK: u64 = 89;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
    pub const NEWFSTATAT: u64 = 262;
    pub const READLINKAT: u64 = 267;
    pub const FACCESSAT: u64 = 269;
    pub const EXECVEAT: u64 = 322;
    pub const STATX: u64 = 332;
    pub const OPENAT2: u64 = 437;
    pub const FACCESSAT2: u64 = 439;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const AUDIT_ARCH: u32 = 0xc000_00b7;
    pub const OPEN: u64 = u64::MAX;
    pub const STAT: u64 = u64::MAX;
    pub const LSTAT: u64 = u64::MAX;
    pub const ACCESS: u64 = u64::MAX;
    pub const EXECVE: u64 = 221;
    pub const READLINK: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX;
    pub const OPENAT: u64 = 56;
    pub const NEWFSTATAT: u64 = 79;
    pub const READLINKAT: u64 = 78;
    pub const FACCESSAT: u64 = 48;
    pub const EXECVEAT: u64 = 281;
    pub const STATX: u64 = 291;
    pub const OPENAT2: u64 = 437;
    pub const FACCESSAT2: u64 = 439;
}

/// The calls the tracer stops at: those of [`path_call`].
const TRACED_CALLS: [u64; 15] = [
    nr::OPEN,
    nr::CREAT,
    nr::OPENAT,
    nr::OPENAT2,
    nr::EXECVE,
    nr::EXECVEAT,
    nr::STAT,
    nr::LSTAT,
    nr::ACCESS,
    nr::READLINK,
    nr::NEWFSTATAT,
    nr::READLINKAT,
    nr::FACCESSAT,
    nr::FACCESSAT2,
    nr::STATX,
];

/// A seccomp program that stops the tracee (`SECCOMP_RET_TRACE`) at the calls that name paths
/// and lets every other call run without a stop: the tracer then costs two stops per such call
/// instead of two per call of any kind.
///
/// Only for runs whose processes all end with the program (`run`: they die with its PID
/// namespace). A filter cannot be removed, and once its tracer is gone a `SECCOMP_RET_TRACE`
/// call fails with `ENOSYS`: a daemon that `trace` detaches would no longer open a file.
fn seccomp_filter() -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let calls: Vec<u32> = TRACED_CALLS
        .iter()
        .filter_map(|&n| u32::try_from(n).ok())
        .collect();
    let n = calls.len();
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut prog = vec![
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 4),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            1,
            0,
            nr::AUDIT_ARCH,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
    ];
    for (i, call) in calls.iter().enumerate() {
        // Jump over the remaining tests and the ALLOW to the TRACE at the end.
        let to_trace = u8::try_from(n - i).unwrap_or(u8::MAX);
        prog.push(op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            to_trace,
            0,
            *call,
        ));
    }
    prog.push(op(
        libc::BPF_RET | libc::BPF_K,
        0,
        0,
        libc::SECCOMP_RET_ALLOW,
    ));
    prog.push(op(
        libc::BPF_RET | libc::BPF_K,
        0,
        0,
        libc::SECCOMP_RET_TRACE,
    ));
    prog
}

/// Whether the process runs under a seccomp filter (`Seccomp: 2` in its status).
fn has_filter(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('2'))
    })
}

/// Where a call's path is: which argument holds the directory descriptor (if any) and which the
/// path, and what the call does with it (`flags_arg`: the open flags decide read or write).
struct PathCall {
    dirfd: Option<usize>,
    path: usize,
    how: Use,
    flags: Option<usize>,
}

fn path_call(number: u64) -> Option<PathCall> {
    let call = |dirfd, path, how, flags| {
        Some(PathCall {
            dirfd,
            path,
            how,
            flags,
        })
    };
    match number {
        nr::OPEN => call(None, 0, Use::Read, Some(1)),
        nr::CREAT => call(None, 0, Use::Write, None),
        nr::OPENAT => call(Some(0), 1, Use::Read, Some(2)),
        // openat2's flags are in a struct: the first u64 of it.
        nr::OPENAT2 => call(Some(0), 1, Use::Read, None),
        nr::EXECVE => call(None, 0, Use::Exec, None),
        nr::EXECVEAT => call(Some(0), 1, Use::Exec, None),
        nr::STAT | nr::LSTAT | nr::ACCESS | nr::READLINK => call(None, 0, Use::Probe, None),
        nr::NEWFSTATAT | nr::READLINKAT | nr::FACCESSAT | nr::FACCESSAT2 | nr::STATX => {
            call(Some(0), 1, Use::Probe, None)
        }
        _ => None,
    }
}

/// A call seen at its entry, waiting for its exit.
struct Pending {
    path: PathBuf,
    how: Use,
}

/// What to start under the tracer.
pub struct Launch<'a> {
    /// The program: looked up in `PATH` when it has no `/` and `env` is None (trace, on the
    /// host); executed as given otherwise (run has found it in the image already).
    pub program: &'a OsStr,
    /// The arguments after the program's name.
    pub args: &'a [OsString],
    /// The whole environment (`NAME=VALUE`), or None to inherit copy_bom's.
    pub env: Option<&'a [OsString]>,
    /// Stop only at the calls that name paths, with a seccomp filter (see [`seccomp_filter`]
    /// for when that is safe).
    pub filter: bool,
}

fn c_string(s: &OsStr, what: &str) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("a NUL in {what}")))
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut out: Vec<_> = strings.iter().map(|a| a.as_ptr()).collect();
    out.push(std::ptr::null());
    out
}

/// Runs the program under ptrace and returns every use of a path by it and its descendants, in
/// the order the calls returned, and how it ended.
pub fn run(launch: &Launch) -> io::Result<(Vec<Access>, Ending)> {
    let prog = c_string(launch.program, "the program name")?;
    let mut argv_owned = vec![prog.clone()];
    for a in launch.args {
        argv_owned.push(c_string(a, "an argument")?);
    }
    let argv = pointers(&argv_owned);
    let env_owned = match launch.env {
        Some(env) => Some(
            env.iter()
                .map(|e| c_string(e, "the environment"))
                .collect::<io::Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let envp = env_owned.as_deref().map(pointers);
    let use_filter = launch.filter;
    let filter = seccomp_filter();
    let fprog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr().cast_mut(),
    };
    let failed = format!(
        "copy_bom: cannot execute {}\n",
        Path::new(launch.program).display()
    );

    // SAFETY: the child calls only async-signal-safe functions (ptrace, raise, signal, exec,
    // write, _exit) on memory prepared before the fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            // `run` ignores these while the program runs; the program gets its defaults back.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            // The filter (see `seccomp_filter`). Without privileges a filter needs
            // no_new_privs, which changes nothing under ptrace: a traced exec of a set-user-ID
            // program gets no new privileges either. If the filter is refused, every call stops
            // (the tracer sees that no filter is in place).
            if use_filter {
                if libc::geteuid() != 0 {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                }
                libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog);
            }
            libc::raise(libc::SIGSTOP);
            match &envp {
                Some(envp) => libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()),
                None => libc::execvp(prog.as_ptr(), argv.as_ptr()),
            };
            // The shell's statuses: 127 not found, 126 found but not executable.
            let code = match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR => 127,
                _ => 126,
            };
            libc::write(2, failed.as_ptr().cast(), failed.len());
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(child, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let seccomp = use_filter && has_filter(child);
    let options = libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_TRACESECCOMP
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: the child is stopped and traced by us.
    unsafe {
        if libc::ptrace(libc::PTRACE_SETOPTIONS, child, 0, options as libc::c_long) < 0 {
            let e = io::Error::last_os_error();
            libc::kill(child, libc::SIGKILL);
            return Err(e);
        }
        libc::ptrace(Tracer::resume_request(seccomp, false), child, 0, 0);
    }
    Ok(Tracer::new(child, launch.program, seccomp).run())
}

struct Tracer {
    main: libc::pid_t,
    pending: HashMap<libc::pid_t, Option<Pending>>,
    /// The program each process runs.
    programs: HashMap<libc::pid_t, PathBuf>,
    accesses: Vec<Access>,
    ending: Ending,
    /// Every tracee not yet gone or detached.
    live: HashSet<libc::pid_t>,
    /// The program has ended: the tracees left are being detached.
    draining: bool,
    /// The seccomp filter is in place: tracees stop only at the calls that name paths (and
    /// then at their exit), and run on with `PTRACE_CONT` otherwise.
    seccomp: bool,
}

impl Tracer {
    fn new(main: libc::pid_t, program: &OsStr, seccomp: bool) -> Tracer {
        let mut programs = HashMap::new();
        programs.insert(main, PathBuf::from(program));
        Tracer {
            main,
            pending: HashMap::new(),
            programs,
            accesses: Vec::new(),
            ending: Ending::Exited(0),
            live: HashSet::from([main]),
            draining: false,
            seccomp,
        }
    }

    /// How to resume a tracee: to its next call's entry and exit without a filter; with one, to
    /// the exit of the call it stopped at (`awaiting_exit`), or on to the filter's next stop.
    fn resume_request(seccomp: bool, awaiting_exit: bool) -> libc::c_uint {
        if !seccomp || awaiting_exit {
            libc::PTRACE_SYSCALL
        } else {
            libc::PTRACE_CONT
        }
    }

    /// The program has ended: every tracee left gets a SIGSTOP, to be detached at its stop. A
    /// tracee whose first stop (the SIGSTOP the kernel gives a new tracee) has not been seen
    /// yet gets none: it is detached at that one, and a second SIGSTOP would stop it for good
    /// once untraced.
    fn drain(&mut self) {
        self.draining = true;
        for &pid in &self.live {
            if self.pending.contains_key(&pid) {
                // SAFETY: a signal to a tracee (a thread id: tkill reaches that thread).
                unsafe { libc::syscall(libc::SYS_tkill, pid, libc::SIGSTOP) };
            }
        }
    }

    /// While draining: detach at the SIGSTOP (suppressing it), let any other stop run on to it.
    fn drain_stop(&mut self, pid: libc::pid_t, sig: libc::c_int, event: libc::c_int) {
        if sig == libc::SIGSTOP {
            // SAFETY: detaching a tracee in a signal-delivery stop; 0 suppresses the SIGSTOP.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
            self.live.remove(&pid);
            return;
        }
        let real_signal = sig != (libc::SIGTRAP | 0x80) && !(sig == libc::SIGTRAP && event != 0);
        let deliver = if real_signal { sig } else { 0 };
        if event != 0 && sig == libc::SIGTRAP {
            // A fork while draining: the new tracee gets its own SIGSTOP.
            let mut new: libc::c_ulong = 0;
            // SAFETY: reading the new tracee's pid into a local.
            unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0, &mut new) };
            if new != 0 {
                self.live.insert(new as libc::pid_t);
            }
        }
        // SAFETY: resuming a stopped tracee until its SIGSTOP arrives.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver as libc::c_long) };
    }

    fn run(mut self) -> (Vec<Access>, Ending) {
        loop {
            let mut status = 0;
            // SAFETY: waiting for any tracee (__WALL: threads too).
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
            if pid < 0 {
                // ECHILD: nothing is left to trace.
                break;
            }
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.live.remove(&pid);
                if pid == self.main {
                    self.ending = if libc::WIFEXITED(status) {
                        Ending::Exited(libc::WEXITSTATUS(status))
                    } else {
                        Ending::Signaled(libc::WTERMSIG(status))
                    };
                    self.drain();
                }
                self.pending.remove(&pid);
                self.programs.remove(&pid);
                if self.draining && self.live.is_empty() {
                    break;
                }
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = (status >> 16) & 0xff;
            if self.draining {
                self.drain_stop(pid, sig, event);
                if self.live.is_empty() {
                    break;
                }
                continue;
            }
            // A call's entry or exit, or (with the filter) the filter's stop at its entry.
            let call_stop = sig == (libc::SIGTRAP | 0x80)
                || sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_SECCOMP;
            let deliver = if call_stop {
                self.syscall_stop(pid);
                0
            } else if sig == libc::SIGTRAP && event != 0 {
                if event == libc::PTRACE_EVENT_FORK
                    || event == libc::PTRACE_EVENT_VFORK
                    || event == libc::PTRACE_EVENT_CLONE
                {
                    let mut new: libc::c_ulong = 0;
                    // SAFETY: reading the new tracee's pid into a local.
                    unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0, &mut new) };
                    if let Some(p) = self.programs.get(&pid).cloned() {
                        self.programs.insert(new as libc::pid_t, p);
                    }
                    self.live.insert(new as libc::pid_t);
                }
                0
            } else if sig == libc::SIGSTOP && !self.pending.contains_key(&pid) {
                // A new tracee's first stop: not a signal to pass on.
                self.pending.insert(pid, None);
                self.live.insert(pid);
                0
            } else {
                sig
            };
            let awaiting_exit = matches!(self.pending.get(&pid), Some(Some(_)));
            let request = Self::resume_request(self.seccomp, awaiting_exit);
            // SAFETY: resuming a stopped tracee; it may have died meanwhile (ESRCH is fine).
            unsafe { libc::ptrace(request, pid, 0, deliver as libc::c_long) };
        }
        (self.accesses, self.ending)
    }

    fn syscall_stop(&mut self, pid: libc::pid_t) {
        // SAFETY: a zeroed plain-data struct the kernel fills.
        let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::ptrace_syscall_info>();
        // SAFETY: the tracee is in a syscall stop; the kernel writes at most `size` bytes.
        let got = unsafe {
            libc::ptrace(
                libc::PTRACE_GET_SYSCALL_INFO,
                pid,
                size as libc::c_ulong,
                &mut info as *mut libc::ptrace_syscall_info,
            )
        };
        if got <= 0 {
            return;
        }
        match info.op {
            libc::PTRACE_SYSCALL_INFO_ENTRY | libc::PTRACE_SYSCALL_INFO_SECCOMP => {
                // SAFETY: `op` says which member is filled; both begin with the call's number
                // and arguments.
                let (number, args) = unsafe {
                    if info.op == libc::PTRACE_SYSCALL_INFO_ENTRY {
                        (info.u.entry.nr, info.u.entry.args)
                    } else {
                        (info.u.seccomp.nr, info.u.seccomp.args)
                    }
                };
                let pending = (info.arch == nr::AUDIT_ARCH)
                    .then(|| entry_path(pid, number, &args))
                    .flatten();
                self.pending.insert(pid, pending);
            }
            libc::PTRACE_SYSCALL_INFO_EXIT => {
                // SAFETY: `op` says the exit member is the one filled.
                let exit = unsafe { info.u.exit };
                let Some(Some(p)) = self.pending.insert(pid, None) else {
                    return;
                };
                let found = exit.is_error == 0 && exit.sval >= 0;
                let missing =
                    -exit.sval == i64::from(libc::ENOENT) || -exit.sval == i64::from(libc::ENOTDIR);
                if !found && !missing {
                    return;
                }
                if found && p.how == Use::Exec {
                    self.programs.insert(pid, p.path.clone());
                }
                self.accesses.push(Access {
                    by: self.programs.get(&pid).cloned(),
                    path: p.path,
                    how: p.how,
                    found,
                });
            }
            _ => {}
        }
    }
}

/// The path a call names, made absolute, and what it does with it; None for other calls.
fn entry_path(pid: libc::pid_t, number: u64, args: &[u64; 6]) -> Option<Pending> {
    let call = path_call(number)?;
    let raw = read_string(pid, args[call.path])?;
    let mut how = call.how;
    if let Some(f) = call.flags {
        let flags = args[f] as libc::c_int;
        if flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) != 0 {
            how = Use::Write;
        }
    }
    if number == nr::OPENAT2 {
        // struct open_how { u64 flags; ... }
        let flags = read_u64(pid, args[2])? as libc::c_int;
        if flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) != 0 {
            how = Use::Write;
        }
    }
    let path = PathBuf::from(OsString::from_vec(raw));
    let path = if path.is_absolute() {
        path
    } else {
        let base = match call.dirfd.map(|d| args[d] as i32) {
            Some(fd) if fd != libc::AT_FDCWD => format!("/proc/{pid}/fd/{fd}"),
            _ => format!("/proc/{pid}/cwd"),
        };
        let dir = std::fs::read_link(base).ok()?;
        if path.as_os_str().is_empty() {
            // AT_EMPTY_PATH: the descriptor itself.
            dir
        } else {
            dir.join(path)
        }
    };
    Some(Pending {
        path: normalize(&path),
        how,
    })
}

/// `.` and `..` taken out lexically (`..` of a link is what the kernel resolved, but the
/// fragment names paths, and the image is built from them the same way).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// A NUL-terminated string of the tracee's memory (at most PATH_MAX×4 bytes: longer paths
/// exist, and are read whole up to that bound).
fn read_string(pid: libc::pid_t, addr: u64) -> Option<Vec<u8>> {
    const CHUNK: usize = 256;
    const MAX: usize = 4 * libc::PATH_MAX as usize;
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX {
        let mut buf = [0u8; CHUNK];
        // Do not cross a page boundary in one read: the next page may be unmapped.
        let room = CHUNK.min(4096 - (at as usize % 4096));
        let n = read_memory(pid, at, &mut buf[..room])?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    None
}

fn read_u64(pid: libc::pid_t, addr: u64) -> Option<u64> {
    let mut buf = [0u8; 8];
    (read_memory(pid, addr, &mut buf)? == 8).then(|| u64::from_ne_bytes(buf))
}

fn read_memory(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: reads the tracee's memory into our buffer of `buf.len()` bytes.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (n >= 0).then_some(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter stops at exactly the calls whose paths are read.
    #[test]
    fn the_filter_and_the_path_calls_name_the_same_calls() {
        for number in 0..1024 {
            assert_eq!(
                path_call(number).is_some(),
                TRACED_CALLS.contains(&number),
                "call {number}"
            );
        }
        // Two loads, the architecture test and its ALLOW, a test per call, ALLOW, TRACE.
        let calls = TRACED_CALLS.iter().filter(|&&n| n != u64::MAX).count();
        assert_eq!(seccomp_filter().len(), 4 + calls + 2);
    }
}
