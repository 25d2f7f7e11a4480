//! Whole images of real programs from this machine, built by the binary,
//! checked with `copy_bom check`, and run in a chroot (as root). `check`'s
//! verdict must agree with reality: it passes if and only if the program runs.

use crate::common::copy_bom;
use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn build(bom: &str, root: &Path) {
    copy_bom()
        .args(["-f"])
        .arg(examples().join(bom))
        .arg("--root")
        .arg(root)
        .assert()
        .success();
}

fn check_passes(root: &Path) -> bool {
    copy_bom()
        .args(["check", "--root"])
        .arg(root)
        .output()
        .unwrap()
        .status
        .success()
}

fn runs(root: &Path, args: &[&str]) -> Option<String> {
    runs_with(root, args, &[])
}

fn runs_with(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Option<String> {
    let mut cmd = Command::new("chroot");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg(root).args(args).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

const PY_IMPORTS: &str = "import ssl, sqlite3, json, ctypes, lzma, bz2, readline; print('ok')";

/// The python example image; python3 must be installed (it is on Debian).
fn python_image(t: &Path) -> PathBuf {
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "install python3: no /usr/bin/python3"
    );
    let root = t.join("image");
    build("python.yaml", &root);
    root
}

#[test]
fn python_with_its_standard_library_checks_complete() {
    let t = tempfile::tempdir().unwrap();
    let root = python_image(t.path());
    assert!(check_passes(&root));
}

#[test]
#[ignore = "needs root"]
fn python_runs_and_check_agrees_when_a_library_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let root = python_image(t.path());
    assert!(check_passes(&root));
    let py = ["/usr/bin/python3", "-c", PY_IMPORTS];
    assert_eq!(runs(&root, &py).as_deref(), Some("ok\n"));
    // Remove one library an extension module needs: check names it, and the import fails.
    let ssl = root.join("lib/x86_64-linux-gnu/libssl.so.3");
    assert!(ssl.is_file(), "libssl is in the image");
    std::fs::remove_file(&ssl).unwrap();
    copy_bom()
        .args(["check", "--root"])
        .arg(&root)
        .assert()
        .code(248)
        .stdout(predicate::str::contains("libssl.so.3").and(predicate::str::contains("_ssl")));
    assert_eq!(runs(&root, &py), None);
}

/// The seed's redis flow: `copy_bom new`, then the redis bom built from
/// inside the instance with a relative root; returns the image root.
fn redis_instance(t: &Path) -> PathBuf {
    assert!(
        Path::new("/usr/bin/redis-server").exists(),
        "install redis-server (.ci/run installs it)"
    );
    let inst = t.join("redis_instance");
    copy_bom().arg("new").arg(&inst).assert().success();
    for d in [
        "image/bin",
        "image/lib64",
        "initfs/etc",
        "Occlum.json",
        "app.yaml",
    ] {
        assert!(inst.join(d).exists(), "{d}");
    }
    copy_bom()
        .arg("new")
        .arg(&inst)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    // The documented flow: from inside the instance, relative root, include dir.
    copy_bom()
        .current_dir(&inst)
        .arg("-f")
        .arg(examples().join("redis.yaml"))
        .args([
            "--root",
            "image",
            "--include-dir",
            "/opt/occlum/etc/template",
        ])
        .assert()
        .success();
    inst.join("image")
}

#[test]
#[ignore = "needs redis-server"]
fn the_seed_redis_flow() {
    let t = tempfile::tempdir().unwrap();
    let root = redis_instance(t.path());
    assert!(check_passes(&root));
    // Without its interpreter nothing runs, and check says so.
    std::fs::remove_file(root.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert!(!check_passes(&root));
}

#[test]
#[ignore = "needs root and redis-server"]
fn the_seed_redis_image_runs_exactly_while_check_passes() {
    let t = tempfile::tempdir().unwrap();
    let root = redis_instance(t.path());
    assert!(check_passes(&root));
    let version = runs(&root, &["/bin/redis-server", "--version"]).unwrap_or_default();
    assert!(version.starts_with("Redis server v="), "{version}");
    std::fs::remove_file(root.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert!(!check_passes(&root));
    assert_eq!(runs(&root, &["/bin/redis-server", "--version"]), None);
}

/// An image built for a loader config (a copy of the host's ld.so standing
/// in for Occlum's in its own lib dir): (scratch dir, image root, config
/// file, the configured lib dir).
fn configured_image() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let occlum = t.path().join("occlum/glibc/lib");
    std::fs::create_dir_all(&occlum).unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        occlum.join("ld-linux-x86-64.so.2"),
    )
    .unwrap();
    let cfg = t.path().join("loader.config");
    std::fs::write(
        &cfg,
        format!(
            "{0}/ld-linux-x86-64.so.2 {0}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu\n",
            occlum.display()
        ),
    )
    .unwrap();
    let bom = t.path().join("app.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/cat]}]\n",
    )
    .unwrap();
    let root = t.path().join("image");
    copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(&root)
        .arg("--loader-config")
        .arg(&cfg)
        .assert()
        .success();
    (t, root, cfg, occlum)
}

fn check_with_config(root: &Path, cfg: &Path, expect: i32) -> assert_cmd::assert::Assert {
    copy_bom()
        .args(["check", "--root"])
        .arg(root)
        .arg("--loader-config")
        .arg(cfg)
        .assert()
        .code(expect)
}

#[test]
fn check_reports_a_configured_lib_dir_that_was_not_copied() {
    let (_t, root, cfg, occlum) = configured_image();
    check_with_config(&root, &cfg, 0);
    std::fs::remove_dir_all(root.join(occlum.strip_prefix("/").unwrap())).unwrap();
    check_with_config(&root, &cfg, 248).stdout(predicate::str::contains("libc.so.6"));
}

#[test]
#[ignore = "needs root"]
fn a_configured_image_runs_exactly_while_its_lib_dir_is_there() {
    let (_t, root, cfg, occlum) = configured_image();
    // The host's ld.so stands in for Occlum's, whose own library dir is the
    // configured loader's dir: LD_LIBRARY_PATH gives it that dir.
    let occlum_env = [("LD_LIBRARY_PATH", occlum.as_path())];
    check_with_config(&root, &cfg, 0);
    assert!(runs_with(&root, &["/bin/cat", "--version"], &occlum_env).is_some());
    std::fs::remove_dir_all(root.join(occlum.strip_prefix("/").unwrap())).unwrap();
    check_with_config(&root, &cfg, 248).stdout(predicate::str::contains("libc.so.6"));
    assert!(runs_with(&root, &["/bin/cat", "--version"], &occlum_env).is_none());
}
