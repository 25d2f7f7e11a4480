//! Helpers shared by the integration tests: a scratch workspace, the binary,
//! and tree snapshots for "nothing changed" assertions.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary workspace: `ws/` holds sources and boms, `ws/inst/image` is
/// the root (so W, the parent of the root, is `ws/inst`).
pub struct Ws {
    pub dir: tempfile::TempDir,
}

impl Ws {
    pub fn new() -> Ws {
        Ws {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("inst/image")
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn symlink(&self, target: &str, rel: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// `copy_bom -f BOM --root inst/image` run from `ws/inst` (the documented
    /// flow: boms use `../` for the workspace).
    pub fn run(&self, bom: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
        assert_cmd::assert::OutputAssertExt::assert(&mut self.cmd(bom, extra))
    }

    /// The command `run` runs, to adjust (environment) before running it.
    pub fn cmd(&self, bom: &str, extra: &[&str]) -> Command {
        std::fs::create_dir_all(self.path().join("inst")).unwrap();
        let mut cmd = copy_bom();
        cmd.current_dir(self.path().join("inst"))
            .args(["-f", &format!("../{bom}"), "--root", "image"])
            .args(extra);
        cmd
    }

    /// Reads a file of the image.
    pub fn image_file(&self, p: &str) -> String {
        std::fs::read_to_string(self.root().join(p.trim_start_matches('/'))).unwrap()
    }
}

pub fn copy_bom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_copy_bom"))
}

/// Every path under `dir` with its type, size, mode, mtime and content hash
/// (links: their target), for exact before/after comparisons.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        let desc = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if m.is_dir() {
            format!("dir {:o}", m.mode())
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            format!(
                "file {:o} {} {} {:x?}",
                m.mode(),
                m.len(),
                m.mtime(),
                &bytes[..bytes.len().min(64)]
            )
        };
        out.insert(rel, desc);
    }
    out
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Compiles C source into `out` with extra gcc args.
pub fn gcc(src: &str, out: &Path, args: &[&str]) {
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let c = dir.join(format!("{}.c", out.file_name().unwrap().to_string_lossy()));
    std::fs::write(&c, src).unwrap();
    let st = Command::new("gcc")
        .arg(&c)
        .arg("-o")
        .arg(out)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "gcc failed for {}", out.display());
}

/// Runs `cmd` to completion with piped output, killing it after `secs`
/// seconds: a hang is a test failure, not a stuck suite.
pub fn output_within(cmd: &mut Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} still running after {secs}s: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
