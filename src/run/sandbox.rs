//! The processes of a run and what each does.
//!
//! copy_bom stays on the host and reads the result from a pipe. Its child ("the keeper") leaves
//! the host's namespaces (user when not root, mount, PID, IPC, network unless `--net host`)
//! and starts "the init", PID 1 of the new PID namespace. The init makes the image the root
//! (a throw-away overlay over it, or a read-only bind when overlays are refused), mounts a
//! fresh `/proc`, a minimal `/dev` and a private `/tmp`, detaches the host's tree, and runs the
//! program under the tracer, as its parent. It sends what the program looked for and did not
//! find, and how it ended, through the pipe.
//!
//! Nothing outlives a run: each process dies with its parent (`PR_SET_PDEATHSIG`), every
//! process of the namespace dies with the init, and the mounts die with the namespace.
//!
//! copy_bom forks while it has one thread (nothing before `run` starts a thread), so the
//! children may allocate.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{Net, Request};
use crate::trace::tracer::{self, Access, Ending, Launch, Use};

/// What the init reports, in order: notes and misses while it works, then one ending or one
/// failure.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// Something the user should know about how the image was entered.
    Note(String),
    /// A path looked for and not found in the image.
    Miss {
        path: PathBuf,
        how: Use,
        by: Option<PathBuf>,
    },
    /// The program ended.
    Ended(Ending),
    /// The run could not go on: the exit status to give and why.
    Failed(u8, String),
}

/// The statuses of a run that never reached the program.
pub(super) const CANNOT_ENTER: u8 = 125;
pub(super) const REFUSED: u8 = 126;

/// Starts the keeper and returns the messages of the run, once the pipe is closed (the init
/// is gone).
pub(super) fn enter(req: &Request) -> io::Result<Vec<Message>> {
    let mut fds = [0; 2];
    // SAFETY: a pipe into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    let parent = unsafe { libc::getpid() };
    // SAFETY: see the module's doc: one thread at the fork.
    let keeper = unsafe { libc::fork() };
    if keeper < 0 {
        return Err(io::Error::last_os_error());
    }
    if keeper == 0 {
        drop(reader);
        let mut out = Sender(std::fs::File::from(writer));
        keep(req, &mut out, parent, uid, gid);
    }
    drop(writer);
    let mut bytes = Vec::new();
    let read = std::fs::File::from(reader).read_to_end(&mut bytes);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(keeper, &mut status, 0) };
    read?;
    Ok(decode(&bytes))
}

/// The keeper: leaves the host's namespaces, starts the init, waits for it. Never returns.
fn keep(req: &Request, out: &mut Sender, parent: libc::pid_t, uid: u32, gid: u32) -> ! {
    die_with_parent(Some(parent));
    ignore_interrupts();
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
    if req.net != Net::Host {
        flags |= libc::CLONE_NEWNET;
    }
    let as_root = uid == 0;
    if !as_root {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: plain system call.
    if unsafe { libc::unshare(flags) } < 0 {
        out.fail(
            CANNOT_ENTER,
            format!(
                "cannot create the namespaces of the run: {}{}",
                io::Error::last_os_error(),
                if as_root {
                    ""
                } else {
                    " (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone or user.max_user_namespaces)"
                }
            ),
        );
    }
    if !as_root {
        let maps = [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("0 {uid} 1")),
            ("/proc/self/gid_map", format!("0 {gid} 1")),
        ];
        for (file, text) in maps {
            if let Err(e) = std::fs::write(file, text) {
                out.fail(CANNOT_ENTER, format!("cannot write {file}: {e}"));
            }
        }
    }
    // SAFETY: one thread (the module's doc).
    let init = unsafe { libc::fork() };
    if init < 0 {
        out.fail(
            CANNOT_ENTER,
            format!(
                "cannot start the run's init: {}",
                io::Error::last_os_error()
            ),
        );
    }
    if init == 0 {
        die_with_parent(None);
        // SAFETY: the init's work ends with _exit.
        init_main(req, out, as_root);
    }
    // The pipe is the init's now: copy_bom sees its end when the init is gone.
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(out.0.as_raw_fd()) };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(init, &mut status, 0) };
    unsafe { libc::_exit(0) }
}

/// The init: makes the image the root, runs the program, reports. Never returns.
fn init_main(req: &Request, out: &mut Sender, as_root: bool) -> ! {
    if let Err(e) = enter_image(req, out, as_root) {
        out.fail(CANNOT_ENTER, e);
    }
    if req.net == Net::Loopback
        && let Err(e) = loopback_up()
    {
        out.fail(
            CANNOT_ENTER,
            format!("cannot bring up the loopback interface: {e}"),
        );
    }
    let Some(program) = find_program(req, out) else {
        out.send(&Message::Ended(Ending::Exited(127)));
        unsafe { libc::_exit(0) }
    };
    if let Some(entry_points) = &req.entry_points
        && !entry_points.iter().any(|e| program.starts_with(e))
    {
        out.fail(
            REFUSED,
            format!(
                "{} is outside the instance's entry_points ({}): Occlum would refuse to run it",
                program.display(),
                entry_points.join(", ")
            ),
        );
    }
    let launch = Launch {
        program: program.as_os_str(),
        args: &req.args,
        env: Some(&req.env),
        // Every process of the run ends with it: the filter is safe (see the tracer).
        filter: true,
    };
    match tracer::run(&launch) {
        Ok((accesses, ending)) => {
            for m in misses(&accesses) {
                out.send(&m);
            }
            out.send(&Message::Ended(ending));
        }
        Err(e) => out.fail(CANNOT_ENTER, format!("cannot run the program: {e}")),
    }
    unsafe { libc::_exit(0) }
}

/// Ends this process when its parent ends, or at once when it has already ended (`parent`
/// None: the parent is outside this PID namespace, and the keeper waits for the init anyway).
fn die_with_parent(parent: Option<libc::pid_t>) {
    // SAFETY: plain system calls.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if parent.is_some_and(|p| libc::getppid() != p) {
            libc::_exit(CANNOT_ENTER as i32);
        }
    }
}

/// ^C and ^\ are the program's to handle: copy_bom and its helpers wait for its end.
pub(super) fn ignore_interrupts() {
    // SAFETY: plain system calls.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

pub(super) fn restore_interrupts() {
    // SAFETY: plain system calls.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
    }
}

/// Where the new root is assembled: a tmpfs over the host's `/tmp`, in this mount namespace
/// only (the host's `/tmp` is untouched and, once the root is switched, out of sight).
const STAGE: &str = "/tmp";

/// The devices of the image's `/dev`, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn enter_image(req: &Request, out: &mut Sender, as_root: bool) -> Result<(), String> {
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| format!("cannot make the mounts private: {e}"))?;
    // Held open: the image may lie under the staging directory.
    let image = std::fs::File::open(&req.image)
        .map_err(|e| format!("cannot open {}: {e}", req.image.display()))?;
    let image_path = format!("/proc/self/fd/{}", image.as_raw_fd());
    mount(Some("tmpfs"), STAGE, Some("tmpfs"), 0, Some("mode=0700"))
        .map_err(|e| format!("cannot mount a tmpfs on {STAGE}: {e}"))?;
    let root = format!("{STAGE}/root");
    for d in ["upper", "work", "root"] {
        std::fs::create_dir(format!("{STAGE}/{d}")).map_err(|e| format!("{STAGE}/{d}: {e}"))?;
    }
    let options = format!(
        "lowerdir={image_path},upperdir={STAGE}/upper,workdir={STAGE}/work{}",
        if as_root { "" } else { ",userxattr" }
    );
    let writable = match mount(Some("overlay"), &root, Some("overlay"), 0, Some(&options)) {
        Ok(()) => true,
        Err(e) => {
            out.send(&Message::Note(format!(
                "the image is mounted read-only (an overlay over it was refused: {e})"
            )));
            mount(
                Some(&image_path),
                &root,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| format!("cannot bind {}: {e}", req.image.display()))?;
            mount(
                None,
                &root,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )
            .map_err(|e| format!("cannot make the image read-only: {e}"))?;
            false
        }
    };
    drop(image);
    let place = |name: &str, out: &mut Sender| -> Option<String> {
        let at = format!("{root}/{name}");
        let is_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
        if is_dir || (writable && std::fs::create_dir(&at).is_ok()) {
            return Some(at);
        }
        out.send(&Message::Note(format!(
            "the image has no /{name} directory to mount on; the program runs without /{name}"
        )));
        None
    };
    if let Some(proc) = place("proc", out) {
        mount(
            Some("proc"),
            &proc,
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
        .map_err(|e| format!("cannot mount /proc: {e}"))?;
        if as_root {
            // The host's kernel settings stay out of reach of a program running as root.
            for p in ["sys", "sysrq-trigger"] {
                let at = format!("{proc}/{p}");
                if !Path::new(&at).exists() {
                    continue;
                }
                mount(Some(&at), &at, None, libc::MS_BIND, None)
                    .and_then(|()| {
                        mount(
                            None,
                            &at,
                            None,
                            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                            None,
                        )
                    })
                    .map_err(|e| format!("cannot make /proc/{p} read-only: {e}"))?;
            }
        }
    }
    if let Some(dev) = place("dev", out) {
        make_dev(&dev)?;
    }
    if let Some(tmp) = place("tmp", out) {
        mount(
            Some("tmpfs"),
            &tmp,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=1777"),
        )
        .map_err(|e| format!("cannot mount /tmp: {e}"))?;
    }
    switch_root(&root)
}

/// `/dev`: a tmpfs with the host's harmless devices bound in, `/dev/fd` and the standard
/// streams as links into `/proc`, and a `/dev/shm`.
fn make_dev(dev: &str) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|e| format!("cannot mount /dev: {e}"))?;
    for name in DEVICES {
        let host = format!("/dev/{name}");
        if !Path::new(&host).exists() {
            continue;
        }
        let at = format!("{dev}/{name}");
        std::fs::write(&at, b"").map_err(|e| format!("{at}: {e}"))?;
        mount(Some(&host), &at, None, libc::MS_BIND, None)
            .map_err(|e| format!("cannot bind {host}: {e}"))?;
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, format!("{dev}/{name}"))
            .map_err(|e| format!("{dev}/{name}: {e}"))?;
    }
    let shm = format!("{dev}/shm");
    std::fs::create_dir(&shm).map_err(|e| format!("{shm}: {e}"))?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(|e| format!("cannot mount /dev/shm: {e}"))
}

/// Makes `root` the root of this mount namespace and lets the host's tree go.
fn switch_root(root: &str) -> Result<(), String> {
    std::env::set_current_dir(root).map_err(|e| format!("cannot enter {root}: {e}"))?;
    let dot = c".";
    // SAFETY: plain system calls; pivot_root(".", ".") stacks the old root under the new one,
    // and the detach takes it away.
    unsafe {
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) < 0 {
            return Err(format!(
                "cannot make the image the root: {}",
                io::Error::last_os_error()
            ));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) < 0 {
            return Err(format!(
                "cannot detach the host's root: {}",
                io::Error::last_os_error()
            ));
        }
    }
    std::env::set_current_dir("/").map_err(|e| format!("cannot enter /: {e}"))
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let source = source.map(c).transpose()?;
    let target = c(target)?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: NUL-terminated strings or null pointers, as mount(2) takes them.
    let r = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ip link set lo up`, with the interface ioctls.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket we close below, and an ifreq we own.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = OwnedFd::from_raw_fd(s);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The program in the image: as given when it has a `/` (relative to `/`), else the first
/// executable file of that name in the directories of the run's `PATH`. None (after sending
/// the paths looked at as misses and saying so) when there is none.
fn find_program(req: &Request, out: &mut Sender) -> Option<PathBuf> {
    let name = Path::new(&req.program);
    let candidates: Vec<PathBuf> = if req.program.as_bytes().contains(&b'/') {
        vec![Path::new("/").join(name)]
    } else {
        let path = req
            .env
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(b"");
        path.split(|&b| b == b':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(OsStr::from_bytes(d)).join(name))
            .collect()
    };
    for c in &candidates {
        let Ok(file) = CString::new(c.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: a NUL-terminated path.
        let executable = unsafe { libc::access(file.as_ptr(), libc::X_OK) } == 0;
        if executable && std::fs::metadata(c).is_ok_and(|m| m.is_file()) {
            return Some(c.clone());
        }
    }
    for c in candidates {
        out.send(&Message::Miss {
            path: c,
            how: Use::Exec,
            by: None,
        });
    }
    let _ = writeln!(
        io::stderr(),
        "copy_bom run: {}: not found in the image",
        name.display()
    );
    None
}

/// The loader's hardware-capability subdirectories (glibc's `glibc-hwcaps/<level>`, and the
/// legacy platform and feature names): the loader looks at each in every library directory,
/// and their absence is normal.
const HWCAP_DIRS: [&str; 8] = [
    "glibc-hwcaps",
    "tls",
    "haswell",
    "avx512_1",
    "x86_64",
    "xeon_phi",
    "i686",
    "sse2",
];

/// The lookups worth reporting: paths not found, unless the same path turned up later (the
/// program made it), a file of the same name was read or run from elsewhere (a search along
/// a path list: the loader's directories, python's), it is the loader's own optional file
/// (`ld.so.cache`, `ld.so.preload`) or one of its hardware-capability directories looked at.
/// An executable that exists but could not
/// start names what it lacks: its ELF interpreter or its `#!` interpreter.
fn misses(accesses: &[Access]) -> Vec<Message> {
    let found_paths: HashSet<&Path> = accesses
        .iter()
        .filter(|a| a.found)
        .map(|a| a.path.as_path())
        .collect();
    let found_names: HashSet<&OsStr> = accesses
        .iter()
        .filter(|a| a.found && matches!(a.how, Use::Read | Use::Exec))
        .filter_map(|a| a.path.file_name())
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for a in accesses.iter().filter(|a| !a.found) {
        let mut path = a.path.clone();
        if a.how == Use::Exec && path.is_file() {
            match interpreter(&path) {
                Some(interp) if !interp.exists() => path = interp,
                _ => continue,
            }
        }
        let later = found_paths.contains(path.as_path())
            || path.file_name().is_some_and(|n| found_names.contains(n));
        let loader = crate::trace::LOADER_FILES
            .iter()
            .any(|f| path == Path::new(f))
            || hwcap_lookup(&path, a.how);
        if later || loader {
            continue;
        }
        if seen.insert(path.clone()) {
            out.push(Message::Miss {
                path,
                how: a.how,
                by: a.by.clone(),
            });
        }
    }
    out
}

/// A look at one of the loader's hardware-capability directories, or for a library in one.
fn hwcap_lookup(path: &Path, how: Use) -> bool {
    let hwcap = |c: std::path::Component| HWCAP_DIRS.iter().any(|h| c.as_os_str() == *h);
    let mut components = path.components();
    let last = components.next_back();
    components.any(hwcap) || how == Use::Probe && last.is_some_and(hwcap)
}

/// The interpreter an executable names: its ELF `PT_INTERP`, or its `#!` line's program.
fn interpreter(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    if let Some(line) = head[..n].strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next()?;
        let prog = line
            .split(|&b| b == b' ' || b == b'\t')
            .find(|w| !w.is_empty())?;
        return Some(PathBuf::from(OsStr::from_bytes(prog)));
    }
    crate::elf::read_file(path)
        .ok()
        .flatten()?
        .interp
        .map(PathBuf::from)
}

/// The write end of the pipe, in the init (and the keeper, for its own failures).
struct Sender(std::fs::File);

impl Sender {
    fn send(&mut self, m: &Message) {
        // A closed pipe means copy_bom is gone: nothing is left to tell.
        let _ = self.0.write_all(&encode(m));
    }

    /// Reports a failure and ends the process.
    fn fail(&mut self, status: u8, why: String) -> ! {
        self.send(&Message::Failed(status, why));
        unsafe { libc::_exit(i32::from(status)) }
    }
}

// The wire: one tag byte, then fields; strings end with a NUL (paths hold none).
const NOTE: u8 = b'N';
const MISS: u8 = b'M';
const EXITED: u8 = b'E';
const SIGNALED: u8 = b'S';
const FAILED: u8 = b'F';

fn encode(m: &Message) -> Vec<u8> {
    let mut v = Vec::new();
    let string = |v: &mut Vec<u8>, s: &[u8]| {
        v.extend(s.iter().filter(|&&b| b != 0));
        v.push(0);
    };
    match m {
        Message::Note(text) => {
            v.push(NOTE);
            string(&mut v, text.as_bytes());
        }
        Message::Miss { path, how, by } => {
            v.push(MISS);
            v.push(match how {
                Use::Read => b'r',
                Use::Exec => b'x',
                Use::Probe => b'p',
                Use::Write => b'w',
            });
            string(&mut v, path.as_os_str().as_bytes());
            string(
                &mut v,
                by.as_deref().map_or(&[][..], |b| b.as_os_str().as_bytes()),
            );
        }
        Message::Ended(Ending::Exited(c)) => {
            v.push(EXITED);
            v.extend(c.to_le_bytes());
        }
        Message::Ended(Ending::Signaled(s)) => {
            v.push(SIGNALED);
            v.extend(s.to_le_bytes());
        }
        Message::Failed(status, text) => {
            v.push(FAILED);
            v.push(*status);
            string(&mut v, text.as_bytes());
        }
    }
    v
}

/// The messages of `bytes`; a message cut short (the init was killed) ends the list.
pub(super) fn decode(mut bytes: &[u8]) -> Vec<Message> {
    fn string(bytes: &mut &[u8]) -> Option<Vec<u8>> {
        let end = bytes.iter().position(|&b| b == 0)?;
        let s = bytes[..end].to_vec();
        *bytes = &bytes[end + 1..];
        Some(s)
    }
    fn int(bytes: &mut &[u8]) -> Option<i32> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(i32::from_le_bytes(*head))
    }
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        let m = match tag {
            NOTE => string(&mut bytes).map(|s| Message::Note(String::from_utf8_lossy(&s).into())),
            MISS => (|| {
                let (&how, rest) = bytes.split_first()?;
                bytes = rest;
                let how = match how {
                    b'r' => Use::Read,
                    b'x' => Use::Exec,
                    b'w' => Use::Write,
                    _ => Use::Probe,
                };
                let path = PathBuf::from(OsString::from_vec(string(&mut bytes)?));
                let by = string(&mut bytes)?;
                let by = (!by.is_empty()).then(|| PathBuf::from(OsString::from_vec(by)));
                Some(Message::Miss { path, how, by })
            })(),
            EXITED => int(&mut bytes).map(|c| Message::Ended(Ending::Exited(c))),
            SIGNALED => int(&mut bytes).map(|s| Message::Ended(Ending::Signaled(s))),
            FAILED => (|| {
                let (&status, rest) = bytes.split_first()?;
                bytes = rest;
                let text = String::from_utf8_lossy(&string(&mut bytes)?).into_owned();
                Some(Message::Failed(status, text))
            })(),
            _ => None,
        };
        match m {
            Some(m) => out.push(m),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pipe_unchanged_and_a_cut_one_ends_the_list() {
        let messages = vec![
            Message::Note("read-only".into()),
            Message::Miss {
                path: PathBuf::from(OsString::from_vec(b"/etc/ho\nsts\xff".to_vec())),
                how: Use::Read,
                by: Some(PathBuf::from("/bin/getent")),
            },
            Message::Miss {
                path: PathBuf::from("/x"),
                how: Use::Exec,
                by: None,
            },
            Message::Ended(Ending::Signaled(9)),
            Message::Failed(125, "no".into()),
        ];
        let bytes: Vec<u8> = messages.iter().flat_map(encode).collect();
        assert_eq!(decode(&bytes), messages);
        assert_eq!(decode(&bytes[..bytes.len() - 2]), messages[..4]);
    }

    #[test]
    fn a_search_that_succeeds_elsewhere_is_not_a_miss() {
        let a = |path: &str, how, found| Access {
            path: PathBuf::from(path),
            how,
            by: None,
            found,
        };
        let accesses = vec![
            a("/lib/tls/libc.so.6", Use::Read, false),
            a("/lib/x86_64-linux-gnu/libc.so.6", Use::Read, true),
            a("/etc/hosts", Use::Read, false),
            a("/etc/hosts", Use::Read, false),
            a("/state", Use::Probe, false),
            a("/state", Use::Write, true),
        ];
        let paths: Vec<_> = misses(&accesses)
            .into_iter()
            .filter_map(|m| match m {
                Message::Miss { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        assert_eq!(paths, vec![PathBuf::from("/etc/hosts")]);
    }
}
