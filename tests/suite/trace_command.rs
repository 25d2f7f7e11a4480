//! `copy_bom trace`: the program runs on the host under ptrace, its output and status pass
//! through, and the fragment lists what it used. The truth is the host: an image built from the
//! fragment alone must give the same output in a chroot as the command gives on the host.

use std::path::Path;
use std::process::Output;

use crate::check_support::Image;
use crate::common::copy_bom;

fn trace(fragment: &Path, command: &[&str]) -> Output {
    copy_bom()
        .arg("trace")
        .arg("-o")
        .arg(fragment)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files of a fragment (its `files` entries), read as a bom.
fn fragment_files(fragment: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(fragment).unwrap();
    let bom: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut files = Vec::new();
    for t in bom["targets"].as_array().into_iter().flatten() {
        for c in t["copy"].as_array().into_iter().flatten() {
            for f in c["files"].as_array().into_iter().flatten() {
                files.push(f.as_str().unwrap().to_string());
            }
        }
    }
    files
}

const PYTHON: &str = "import json, decimal, sqlite3, ssl, lzma, ctypes; \
    print(json.dumps({'a': [1, 2]}), decimal.Decimal('1.1') + 1, sqlite3.sqlite_version_info[0], \
    ssl.OPENSSL_VERSION.split()[0], lzma.decompress(lzma.compress(b'xz')))";

#[test]
fn status_and_output_pass_through_and_writes_are_left_out() {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("f.yaml");
    let out = trace(&frag, &["sh", "-c", "echo hello; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout(&out), "hello\n");
    let out = trace(&frag, &["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");

    // The files may lie under /tmp, which trace leaves out unless --keep-system.
    let d = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(d.path()).unwrap();
    let data = dir.join("data.txt");
    std::fs::write(&data, "read me\n").unwrap();
    let written = dir.join("written.txt");
    let script = format!(
        "cat {} > {} && cat {}",
        data.display(),
        written.display(),
        written.display()
    );
    let out = copy_bom()
        .args(["trace", "--keep-system", "-o"])
        .arg(&frag)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "read me\n", "{out:?}");
    let files = fragment_files(&frag);
    assert!(files.contains(&data.display().to_string()), "{files:?}");
    assert!(
        !files.contains(&written.display().to_string()),
        "written: {files:?}"
    );
    // By default nothing of /proc, /tmp or the host's loader cache.
    let out = trace(&frag, &["sh", "-c", &script]);
    assert!(out.status.success(), "{out:?}");
    let files = fragment_files(&frag);
    assert!(files.contains(&"/usr/bin/cat".to_string()), "{files:?}");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("/proc/") || f.starts_with("/tmp/") || f == "/etc/ld.so.cache"),
        "{files:?}"
    );
    // The fragment is a bom.
    let out = copy_bom()
        .arg("-f")
        .arg(&frag)
        .arg("--root")
        .arg(t.path().join("image"))
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_traced_python_holds_far_fewer_files_than_its_standard_library() {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("py.yaml");
    let out = trace(&frag, &["/usr/bin/python3", "-c", PYTHON]);
    assert!(out.status.success(), "{out:?}");
    let files = fragment_files(&frag);
    assert!(
        files.iter().any(|f| f.ends_with("/json/__init__.py")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.contains("_sqlite3")), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("/tkinter/")), "{files:?}");
    let stdlib = walkdir::WalkDir::new("/usr/lib/python3.11")
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count();
    assert!(
        files.len() * 5 < stdlib,
        "{} files traced, {stdlib} in the stdlib",
        files.len()
    );
}

/// Traces `command` on the host, builds an image from the fragment alone, and runs the same
/// command in a chroot of it and with `copy_bom run`: the output must be the host's.
pub fn same_in_the_image(command: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("f.yaml");
    let host = trace(&frag, command);
    assert!(host.status.success(), "{host:?}");
    assert!(!stdout(&host).is_empty(), "{host:?}");
    let root = t.path().join("image");
    let out = copy_bom()
        .arg("-f")
        .arg(&frag)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let img = Image::new(root);
    let run = img.run(command[0], &command[1..], true);
    assert_eq!(stdout(&run), stdout(&host), "{run:?}");
    assert!(run.status.success(), "{run:?}");
    let run = copy_bom()
        .arg("run")
        .arg("--root")
        .arg(&img.root)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert_eq!(stdout(&run), stdout(&host), "{run:?}");
    assert!(run.status.success(), "{run:?}");
}

#[test]
#[ignore = "needs root: chroot"]
fn getent_traced_on_the_host_runs_from_its_fragment() {
    same_in_the_image(&["/usr/bin/getent", "hosts", "localhost"]);
}

/// A C program that dlopens a library by name (no DT_NEEDED names it; its RUNPATH says
/// where): the loader's search is traced and the library is in the fragment. The fixture lies
/// under /var/tmp, which trace keeps and `run` does not cover with its own /tmp.
#[test]
#[ignore = "needs root: chroot"]
fn a_library_dlopened_by_name_is_traced_and_the_image_runs() {
    let t = tempfile::Builder::new()
        .prefix("copy_bom-dlopen")
        .tempdir_in("/var/tmp")
        .unwrap();
    let dir = std::fs::canonicalize(t.path()).unwrap();
    let lib = dir.join("lib/libplugin.so");
    crate::check_support::shared("gcc", "int plugin_answer(void) { return 42; }\n", &lib, &[]);
    let prog = dir.join("bin/host");
    crate::common::gcc(
        r#"#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *h = dlopen("libplugin.so", RTLD_NOW);
    if (!h) { printf("no plugin: %s\n", dlerror()); return 1; }
    int (*f)(void) = (int (*)(void))dlsym(h, "plugin_answer");
    printf("plugin says %d\n", f());
    return 0;
}
"#,
        &prog,
        &[&format!("-Wl,-rpath,{}", dir.join("lib").display()), "-ldl"],
    );
    same_in_the_image(&[prog.to_str().unwrap()]);
}

#[test]
#[ignore = "needs root: chroot"]
fn python_traced_on_the_host_runs_from_its_fragment() {
    same_in_the_image(&["/usr/bin/python3", "-c", PYTHON]);
}

#[test]
#[ignore = "needs root: chroot"]
fn a_shell_pipeline_traced_on_the_host_runs_from_its_fragment() {
    same_in_the_image(&[
        "/bin/sh",
        "-c",
        "echo hello world | tr a-z A-Z | sed s/WORLD/IMAGE/ | wc -c",
    ]);
}

/// With `-f BOM`, the fragment holds only what the image of that bom lacks: python's own bom
/// already has the standard library and every library, so none of those is listed again.
#[test]
fn with_a_bom_only_what_its_image_lacks() {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("missing.yaml");
    let bom = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python.yaml");
    let out = copy_bom()
        .arg("trace")
        .arg("-o")
        .arg(&frag)
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(t.path().join("image"))
        .arg("--")
        .args(["/usr/bin/python3", "-c", PYTHON])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let all = t.path().join("all.yaml");
    assert!(
        trace(&all, &["/usr/bin/python3", "-c", PYTHON])
            .status
            .success()
    );
    let missing = fragment_files(&frag);
    let every = fragment_files(&all);
    assert!(missing.len() < every.len() / 2, "{missing:?}");
    for f in &missing {
        assert!(every.contains(f), "{f} is not in the plain trace");
        assert!(
            !(f.starts_with("/usr/lib/python3.11/") && f.ends_with(".py")),
            "the bom has the standard library: {f}"
        );
        assert!(
            !f.contains("libc.so.6") && !f.ends_with("/python3.11"),
            "{f}"
        );
    }
}

/// A program that leaves a daemon behind: trace returns with the program, and the daemon runs
/// on, neither stopped nor traced. A crash is 128 + the signal.
#[test]
fn a_daemon_left_behind_runs_on_untraced_and_a_crash_is_its_signal() {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("f.yaml");
    let pidfile = t.path().join("pid");
    // The daemon lets go of the output pipes, which the test reads to their end.
    let script = format!(
        "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {}",
        pidfile.display()
    );
    let started = std::time::Instant::now();
    let out = trace(&frag, &["sh", "-c", &script]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed().as_secs() < 30,
        "trace waited for the daemon"
    );
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let (state, tracer) = (field("State:"), field("TracerPid:"));
    let _ = std::process::Command::new("kill").arg(&pid).status();
    assert!(
        !state.contains("stopped") && !state.contains("tracing stop"),
        "{state}"
    );
    assert!(tracer.ends_with("\t0"), "{tracer}");

    let out = trace(&frag, &["sh", "-c", "kill -SEGV $$"]);
    assert_eq!(out.status.code(), Some(128 + 11), "{out:?}");
}
