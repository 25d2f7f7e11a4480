//! Two concurrent runs of the binary into one root serialize on the root's
//! lock (src/fs/lock.rs, whose unit tests live with it) and give a clean image.

mod safety_support;

use safety_support::{diff, exact_snapshot, temp_files};
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
