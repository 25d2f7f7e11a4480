//! `copy_bom run`: a program runs inside an image with nothing of the host visible, its
//! output and status pass through, the image is never modified, and what the program looked
//! for and did not find is named. The truth is the host: files that exist there, the same
//! command's output there, and the processes and mounts left on it afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{copy_bom, snapshot};

/// A directory under /var/tmp (never under /tmp: `run` gives the program a /tmp of its own),
/// readable by every user, for images and fixtures.
fn workdir() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("copy_bom-run")
        .tempdir_in("/var/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// Builds an image of these host programs (and their libraries) at `root`.
fn image_of(root: &Path, programs: &[&str]) {
    let bom = root.with_extension("yaml");
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    let mut text = String::from("targets:\n  - target: /bin\n    copy:\n      - files:\n");
    for p in programs {
        text += &format!("          - {p}\n");
    }
    std::fs::write(&bom, text).unwrap();
    let out = copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(root)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn run_in(root: &Path, command: &[&str]) -> Output {
    copy_bom()
        .arg("run")
        .arg("--root")
        .arg(root)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SHELL: [&str; 6] = [
    "/bin/sh",
    "/bin/ls",
    "/bin/cat",
    "/bin/touch",
    "/bin/rm",
    "/bin/sleep",
];

/// The checks every user gets: host files out of sight, the status back, the image unchanged
/// by a program that writes to /, /bin and /tmp and removes a file.
fn isolated_and_untouched(as_user: Option<u32>) {
    let t = workdir();
    let root = t.path().join("image");
    image_of(&root, &SHELL);
    let secret = t.path().join("secret.txt");
    std::fs::write(&secret, "host data\n").unwrap();
    let before = snapshot(&root);
    let script = format!(
        "cat {} || echo hidden; ls /; set -- /proc/[0-9]*; echo $#; \
         echo a > /new; echo b > /bin/new; echo c > /tmp/new; cat /tmp/new; rm -f /bin/cat; \
         exit 7",
        secret.display()
    );
    let mut cmd = copy_bom();
    if let Some(uid) = as_user {
        cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_copy_bom"),
        ]);
    }
    let out = cmd
        .arg("run")
        .arg("--root")
        .arg(&root)
        .args(["--", "/bin/sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hidden", "{out:?}");
    // The image's own top directories, and the mount points run adds.
    let listed: Vec<&str> = lines[1..]
        .iter()
        .take_while(|l| !l.chars().all(|c| c.is_ascii_digit()))
        .copied()
        .collect();
    for name in &listed {
        assert!(
            ["bin", "lib", "lib64", "usr", "proc", "dev", "tmp"].contains(name),
            "{name} is visible: {out:?}"
        );
    }
    // A fresh /proc: the processes of the run only, not the host's.
    let procs: usize = lines[1 + listed.len()].parse().unwrap();
    assert!(procs < 10, "{procs} processes in /proc: {out:?}");
    if as_user.is_none() {
        assert_eq!(lines.last(), Some(&"c"), "{out:?}");
    }
    assert_eq!(snapshot(&root), before, "the image changed");
    assert!(!secret.with_file_name("new").exists());
}

#[test]
#[ignore = "needs root: namespaces and mounts as root"]
fn as_root_nothing_of_the_host_is_visible_and_the_image_is_untouched() {
    isolated_and_untouched(None);
}

#[test]
#[ignore = "needs root: to run copy_bom as the ordinary user nobody (65534)"]
fn as_an_ordinary_user_nothing_of_the_host_is_visible_and_the_image_is_untouched() {
    isolated_and_untouched(Some(65534));
}

#[test]
#[ignore = "needs root: namespaces and mounts as root"]
fn statuses_come_back_and_a_missing_program_is_named() {
    let t = workdir();
    let root = t.path().join("image");
    image_of(&root, &SHELL);
    let out = run_in(&root, &["/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let out = run_in(&root, &["sh", "-c", "echo found in PATH"]);
    assert_eq!(text(&out.stdout), "found in PATH\n", "{out:?}");
    // The image has no getent: 127, as a shell says, and the host's is named.
    let out = run_in(&root, &["getent", "hosts", "localhost"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("/usr/bin/getent (executed; on the host)"),
        "{err}"
    );
    // An image that cannot be entered: 255 for a root that is not there.
    let out = run_in(&t.path().join("nothing"), &["/bin/sh"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    // Its network is its own: only the loopback interface, up.
    let out = run_in(&root, &["/bin/cat", "/proc/net/dev"]);
    let devices: Vec<String> = text(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    assert_eq!(devices, ["lo"], "{out:?}");
}

/// An image that lacks what the program opens at run time: `/etc/hosts` for getent, and
/// sqlite3's library for python. `run` names them (they are on the host), `--suggest` writes
/// them as a fragment, and the image built with it runs as the host does.
#[test]
#[ignore = "needs root: namespaces and mounts as root"]
fn missing_files_are_named_and_the_suggestion_completes_the_image() {
    let t = workdir();
    let root = t.path().join("image");
    image_of(&root, &["/usr/bin/getent"]);
    let out = run_in(&root, &["/bin/getent", "hosts", "localhost"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("/etc/hosts (opened by /bin/getent; on the host)"),
        "{err}"
    );

    let bom = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python.yaml");
    let py = t.path().join("py");
    let out = copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(&py)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sqlite: Vec<PathBuf> = walkdir::WalkDir::new(&py)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "libsqlite3.so.0")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(!sqlite.is_empty());
    for f in &sqlite {
        std::fs::remove_file(f).unwrap();
    }
    let command = [
        "/usr/bin/python3",
        "-c",
        "import sqlite3; print(sqlite3.sqlite_version)",
    ];
    let suggestion = t.path().join("suggest.yaml");
    let out = copy_bom()
        .arg("run")
        .arg("--root")
        .arg(&py)
        .arg("--suggest")
        .arg(&suggestion)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    let first = err
        .lines()
        .skip_while(|l| !l.starts_with("run: "))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains("libsqlite3.so.0") && first.contains("on the host"),
        "the library comes first: {err}"
    );
    let fragment = std::fs::read_to_string(&suggestion).unwrap();
    assert!(fragment.contains("libsqlite3.so.0"), "{fragment}");
    let out = copy_bom()
        .arg("-f")
        .arg(&suggestion)
        .arg("--root")
        .arg(&py)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let host = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap();
    let fixed = run_in(&py, &command);
    assert!(fixed.status.success(), "{fixed:?}");
    assert_eq!(fixed.stdout, host.stdout);
}

/// An Occlum instance: its `env.default` is the program's environment, and a program outside
/// its `entry_points` is refused (126) before it runs.
#[test]
#[ignore = "needs root: namespaces and mounts as root"]
fn an_instance_gives_the_environment_and_refuses_programs_outside_its_entry_points() {
    let t = workdir();
    let root = t.path().join("inst/image");
    image_of(&root, &SHELL);
    std::fs::write(
        t.path().join("inst/Occlum.json"),
        r#"{"entry_points": ["/bin"], "env": {"default": ["OCCLUM=yes", "PATH=/bin"],
            "untrusted": ["FROM_HOST"]}}"#,
    )
    .unwrap();
    let out = copy_bom()
        .args(["run", "--instance"])
        .arg(t.path().join("inst"))
        .args(["--", "/bin/sh", "-c", "echo $OCCLUM $FROM_HOST $HOME"])
        .env("FROM_HOST", "passed")
        .env("HOME", "/host/home")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "yes passed\n", "{out:?}");
    // /lib64 holds the loader, not a program Occlum would start.
    let out = run_in(&root, &["/lib64/ld-linux-x86-64.so.2", "--version"]);
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(text(&out.stderr).contains("entry_points"), "{out:?}");
}

/// Processes whose command line holds `marker`, with their state.
fn processes_with(marker: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if text(&cmdline).replace('\0', " ").contains(marker) {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let state = status
                .lines()
                .find(|l| l.starts_with("State:"))
                .unwrap_or_default()
                .to_string();
            found.push((e.file_name().to_string_lossy().into_owned(), state));
        }
    }
    found
}

/// The `sleep` programs among them.
fn sleeps_with(marker: &str) -> Vec<String> {
    processes_with(marker)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("sleep"))
        })
        .collect()
}

fn gone_within(marker: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if processes_with(marker).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Killing `run`, `trace` or the program leaves no process (stopped or not) behind, and the
/// host's mounts are what they were.
#[test]
#[ignore = "needs root: namespaces and mounts as root"]
fn killing_run_trace_or_the_program_leaves_nothing_behind() {
    let t = workdir();
    let root = t.path().join("image");
    image_of(&root, &SHELL);
    let mounts_before = mounts();
    for (i, sub) in ["run", "trace"].iter().enumerate() {
        // The marker is an unusual duration, so that only our sleeps match it.
        let marker = format!("61.{}{}", std::process::id(), i);
        let mut cmd = copy_bom();
        cmd.arg(sub);
        if *sub == "run" {
            cmd.arg("--root").arg(&root);
        }
        let mut child = cmd
            .args(["--", "/bin/sh", "-c"])
            .arg(format!("sleep {marker} & sleep {marker}; wait"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while sleeps_with(&marker).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            sleeps_with(&marker).len(),
            2,
            "{sub}: the sleeps did not start"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            gone_within(&marker, 10),
            "{sub} killed: left {:?}",
            processes_with(&marker)
        );
    }
    // The program killed from outside: run returns with its signal at once.
    let marker = format!("62.{}", std::process::id());
    let mut child = copy_bom()
        .arg("run")
        .arg("--root")
        .arg(&root)
        .args(["--", "/bin/sleep", &marker])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sleeps_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // copy_bom's own command line holds the marker too: kill the sleep only.
    let sleep = sleeps_with(&marker).pop().expect("the program runs");
    Command::new("kill").arg("-9").arg(&sleep).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(gone_within(&marker, 10), "{:?}", processes_with(&marker));
    assert_eq!(mounts(), mounts_before, "the host's mounts changed");
}
