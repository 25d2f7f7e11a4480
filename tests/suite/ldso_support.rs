//! Fixture building and the real loader's answer, shared by the ldso tests.
#![allow(dead_code)] // each test binary uses a subset of the helpers

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use copy_bom::ldso::{Resolution, Via};

/// Compiles `src` into a shared object `path` with extra linker args.
pub fn lib(path: &Path, src: &str, args: &[&str]) {
    build(path, src, &["-shared", "-fPIC"], args);
}

/// Compiles `src` into an executable `path` with extra linker args.
pub fn exe(path: &Path, src: &str, args: &[&str]) {
    build(path, src, &[], args);
}

fn build(path: &Path, src: &str, kind: &[&str], args: &[&str]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = path.with_extension("c");
    let c = if c == path {
        path.with_file_name("src.c")
    } else {
        c
    };
    fs::write(&c, src).unwrap();
    let out = Command::new("gcc")
        .args(kind)
        .arg("-o")
        .arg(path)
        .arg(&c)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A C function `name` that calls each of `calls`.
pub fn func(name: &str, calls: &[&str]) -> String {
    let decls: String = calls.iter().map(|c| format!("int {c}(void);")).collect();
    let body: String = calls.iter().map(|c| format!("{c}();")).collect();
    format!("{decls} int {name}(void) {{ {body} return 0; }}\n")
}

/// A main program calling each of `calls`.
pub fn main_calling(calls: &[&str]) -> String {
    let decls: String = calls.iter().map(|c| format!("int {c}(void);")).collect();
    let body: String = calls.iter().map(|c| format!("{c}();")).collect();
    format!("{decls} int main(void) {{ {body} return 0; }}\n")
}

/// `NAME => PATH` pairs ("not found" for a missing library; the
/// interpreter as `PATH => PATH`), from the real loader via ldd.
pub fn ldd(
    file: &Path,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> Option<BTreeSet<(String, String)>> {
    let mut cmd = Command::new("ldd");
    cmd.arg(file)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD");
    cmd.envs(env.iter().copied());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        let strip = |s: &str| s.split(" (0x").next().unwrap_or(s).trim().to_string();
        if let Some((name, rest)) = line.split_once(" => ") {
            let path = strip(rest);
            if path.is_empty() {
                continue; // vdso on some systems: "linux-vdso.so.1 =>  (0x...)"
            }
            set.insert((name.to_string(), path));
        } else if line.contains(" (0x") {
            let name = strip(line);
            if name.starts_with("linux-vdso") || name.starts_with("linux-gate") {
                continue;
            }
            set.insert((name.clone(), name));
        } else {
            return None; // "statically linked", "not a dynamic executable", ...
        }
    }
    Some(set)
}

/// The same pairs from a [`Resolution`]. ldd lists the interpreter only
/// when some object names it in DT_NEEDED (libc does); the resolver always
/// reports it, so it is compared only when `truth` lists it.
pub fn pairs_like(
    res: &Resolution,
    truth: &BTreeSet<(String, String)>,
) -> BTreeSet<(String, String)> {
    let mut ours = pairs(res);
    if let Some(i) = &res.interp
        && !truth.iter().any(|(n, _)| n == i)
    {
        ours.retain(|(n, _)| n != i);
    }
    ours
}

fn pairs(res: &Resolution) -> BTreeSet<(String, String)> {
    res.libs
        .iter()
        .map(|d| {
            let path = d
                .path
                .as_ref()
                .map_or("not found".to_string(), |p| p.display().to_string());
            match d.via {
                Via::Loader => (path.clone(), path),
                _ => (d.name.clone(), path),
            }
        })
        .collect()
}

pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Runs `copy_bom deps ARGS FILE` (in `cwd` when given): exit code and stdout.
pub fn deps_cli(args: &[&str], file: &Path, cwd: Option<&Path>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy_bom"));
    cmd.arg("deps").args(args).arg(file);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The pairs of `copy_bom deps` text in [`ldd`]'s form: `NAME => PATH`,
/// and the interpreter line as `PATH => PATH`, kept only when `truth` lists
/// it (ldd shows it only when some object needs it).
pub fn cli_pairs_like(
    text: &str,
    truth: &BTreeSet<(String, String)>,
) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once(" => ") {
                Some((n, p)) => Some((n.to_string(), p.to_string())),
                None if l.starts_with('/') => Some((l.to_string(), l.to_string())),
                None => None,
            }
        })
        .filter(|(n, p)| n != p || truth.iter().any(|(tn, _)| tn == n))
        .collect()
}

/// Runs patchelf with `args` on `file`.
pub fn patchelf(file: &Path, args: &[&str]) {
    let out = Command::new("patchelf")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "patchelf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `src` with musl-gcc into `path` (`kind`: `-shared -fPIC` for a
/// library, nothing for a program).
pub fn musl_build(path: &Path, src: &str, kind: &[&str], args: &[&str]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = path.with_file_name(format!("{}.c", path.file_name().unwrap().to_string_lossy()));
    fs::write(&c, src).unwrap();
    let out = Command::new("musl-gcc")
        .args(kind)
        .arg("-o")
        .arg(path)
        .arg(&c)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "musl-gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// musl's loader.
pub const MUSL_LD: &str = "/lib/ld-musl-x86_64.so.1";

/// `NAME => PATH` pairs from musl's loader (`ld-musl --list FILE`), in
/// [`ldd`]'s form; None when it reports an error.
pub fn musl_list(file: &Path) -> Option<BTreeSet<(String, String)>> {
    let out = Command::new(MUSL_LD)
        .arg("--list")
        .arg(file)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let strip = |s: &str| s.split(" (0x").next().unwrap_or(s).trim().to_string();
    Some(
        text.lines()
            .map(|l| match l.trim().split_once(" => ") {
                Some((n, p)) => (n.to_string(), strip(p)),
                None => (strip(l), strip(l)),
            })
            .collect(),
    )
}
