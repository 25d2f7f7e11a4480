//! Two concurrent runs of the binary into one root serialize on the root's
//! lock (src/fs/lock.rs, whose unit tests live with it) and give a clean image.

use crate::safety_support::{diff, exact_snapshot, temp_files};
use std::path::Path;
use std::process::{Command, Stdio};

/// A build with many files, so that two runs overlap: the python tree when present, else a
/// generated tree of small files.
fn bom(ws: &Path) -> String {
    if Path::new("/usr/lib/python3.11").is_dir() {
        return "includes: [base.yaml]\ntargets:\n  - target: /usr/bin\n    copy: [{files: [/usr/bin/python3]}]\n  - target: /usr/lib\n    copy: [{dirs: [/usr/lib/python3.11]}]\n".into();
    }
    for i in 0..2000 {
        let p = ws.join(format!("tree/d{}/f{i}", i % 40));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{i}").repeat(100)).unwrap();
    }
    "targets:\n  - target: /data\n    copy: [{dirs: [../tree/]}]\n".into()
}

fn build(ws: &Path, root: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy_bom"));
    cmd.current_dir(ws.join("inst"))
        .args(["-f", "../bom.yaml", "--root", root])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Two runs into the same (new, then existing) root at the same moment both succeed, and the
/// image is the image of one clean run.
#[test]
fn two_simultaneous_runs_into_one_root_give_the_clean_image() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("inst")).unwrap();
    std::fs::write(ws.join("bom.yaml"), bom(ws)).unwrap();
    assert!(build(ws, "clean").status().unwrap().success());
    let clean = exact_snapshot(&ws.join("inst/clean"));
    for round in 0..3 {
        let root = format!("shared{round}");
        if round == 2 {
            // An existing, partly stale root: both runs find work to do.
            assert!(build(ws, &root).status().unwrap().success());
            std::fs::remove_dir_all(ws.join("inst").join(&root).join("usr/lib")).ok();
            std::fs::remove_dir_all(ws.join("inst").join(&root).join("data")).ok();
        }
        let a = build(ws, &root).spawn().unwrap();
        let b = build(ws, &root).spawn().unwrap();
        for (who, child) in [("first", a), ("second", b)] {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}, {who} run: {stderr}");
        }
        let image = ws.join("inst").join(&root);
        let got = exact_snapshot(&image);
        assert!(got == clean, "round {round}: {}", diff(&clean, &got));
        assert!(temp_files(&image).is_empty(), "round {round}");
    }
}

/// The lock reserves no name in the image: a listed file renamed to the old lock file's name
/// (`.copy_bom.lock`) is in the image after the run, and again after a second run.
#[test]
fn a_listed_file_named_like_the_old_lock_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("inst")).unwrap();
    std::fs::write(ws.join("payload"), "mine").unwrap();
    std::fs::write(
        ws.join("bom.yaml"),
        "targets: [{target: /, copy: [{files: [{name: ../payload, rename: .copy_bom.lock}]}]}, \
         {target: /etc, copy: [{files: [{name: ../payload, rename: .copy_bom.lock}]}]}]\n",
    )
    .unwrap();
    for run in 0..2 {
        let out = build(ws, "image").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run}: {stderr}");
        for at in ["image/.copy_bom.lock", "image/etc/.copy_bom.lock"] {
            let got = std::fs::read_to_string(ws.join("inst").join(at));
            assert_eq!(got.ok().as_deref(), Some("mine"), "run {run}: {at}");
        }
        let names: Vec<_> = std::fs::read_dir(ws.join("inst/image"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [".copy_bom.lock", "etc"], "run {run}");
    }
}

/// While a run holds the root, another waits: the directory itself is locked (flock on the
/// root's descriptor), so a run started meanwhile finishes after the holder releases it.
#[test]
fn a_run_waits_while_the_root_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("inst/image")).unwrap();
    std::fs::write(ws.join("payload"), "x").unwrap();
    std::fs::write(
        ws.join("bom.yaml"),
        "targets: [{target: /, copy: [{files: [../payload]}]}]\n",
    )
    .unwrap();
    let image = copy_bom::fs::ImageRoot::open(&ws.join("inst/image")).unwrap();
    let held = copy_bom::fs::RootLock::acquire(&image).unwrap();
    let mut child = build(ws, "image").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "did not wait for the lock"
    );
    assert!(
        !ws.join("inst/image/payload").exists(),
        "wrote while locked"
    );
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.join("inst/image/payload").is_file());
}
