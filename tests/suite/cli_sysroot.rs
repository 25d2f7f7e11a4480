//! `--sysroot DIR`: sources, library search and ld.so.cache come from an
//! unpacked root file system, never from the host. The sysroot built here
//! holds a gcc-built `/bin/cat` (not the host's) that needs `libpriv.so`,
//! which exists only in the sysroot, in a directory only its ld.so.conf
//! names; its libc lives only under `usr/lib/x86_64-linux-gnu`. The truth
//! for resolution is the real loader run inside the sysroot with chroot.

use crate::common::{Ws, copy_bom, gcc};
use assert_cmd::assert::OutputAssertExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const LD: &str = "/lib64/ld-linux-x86-64.so.2";
const PRIV_DIR: &str = "opt/sysonly/lib";
const MULTIARCH: &str = "usr/lib/x86_64-linux-gnu";
const PRIV: &str = "int priv(void) { return 7; }\n";
const CAT: &str = "#include <stdio.h>\nint priv(void);\nint main(void) { printf(\"sysroot cat %d\\n\", priv()); return 0; }\n";

/// A sysroot in `ws/sys`; `cached` tells whether `ldconfig -r` built its cache.
struct Sysroot {
    dir: PathBuf,
    cached: bool,
}

fn make_sysroot(ws: &Ws) -> Sysroot {
    let s = ws.path().join("sys");
    let privdir = s.join(PRIV_DIR);
    gcc(
        PRIV,
        &privdir.join("libpriv.so"),
        &["-shared", "-fPIC", "-Wl,-soname,libpriv.so"],
    );
    let cat = s.join("bin/cat");
    gcc(CAT, &cat, &[&format!("-L{}", privdir.display()), "-lpriv"]);
    std::fs::create_dir_all(s.join("lib64")).unwrap();
    std::fs::copy(LD, s.join(LD.trim_start_matches('/'))).unwrap();
    // The libraries the real loader finds for it on the host, flattened into
    // the sysroot's multiarch dir.
    let multiarch = s.join(MULTIARCH);
    std::fs::create_dir_all(&multiarch).unwrap();
    for (name, path) in real_loader_list(None, &cat, Some(&privdir)) {
        if name != "libpriv.so" {
            std::fs::copy(&path, multiarch.join(&name)).unwrap();
        }
    }
    ws.write("sys/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n");
    ws.write(
        "sys/etc/ld.so.conf.d/x.conf",
        &format!("/{MULTIARCH}\n/{PRIV_DIR}\n"),
    );
    let cached = Command::new("ldconfig")
        .arg("-r")
        .arg(&s)
        .status()
        .is_ok_and(|st| st.success())
        && s.join("etc/ld.so.cache").is_file();
    Sysroot { dir: s, cached }
}

/// `NAME => PATH` pairs of `ld.so --list FILE`, run in `chroot` when given.
fn real_loader_list(
    chroot: Option<&Path>,
    file: &Path,
    library_path: Option<&Path>,
) -> BTreeMap<String, PathBuf> {
    let mut cmd = match chroot {
        Some(r) => {
            let mut c = Command::new("chroot");
            c.arg(r).arg(LD);
            c
        }
        None => Command::new(LD),
    };
    cmd.arg("--list")
        .arg(file)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD");
    if let Some(lp) = library_path {
        cmd.env("LD_LIBRARY_PATH", lp);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next()?;
            Some((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

/// `NAME => PATH` pairs of `copy_bom deps --sysroot S FILE`.
fn copy_bom_deps(sysroot: &Path, file: &str) -> BTreeMap<String, PathBuf> {
    let out = copy_bom()
        .args(["deps", "--sysroot"])
        .arg(sysroot)
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    text.lines()
        .filter_map(|l| {
            let (name, path) = l.trim().split_once(" => ")?;
            Some((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

fn deps_tree(sysroot: &Path, file: &str) -> String {
    let out = copy_bom()
        .args(["deps", "--tree", "--sysroot"])
        .arg(sysroot)
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn deps_in_a_sysroot_lists_paths_inside_it_as_its_loader_does() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    let found = copy_bom_deps(&sys.dir, "/bin/cat");
    assert_eq!(
        found.get("libpriv.so"),
        Some(&PathBuf::from(format!("/{PRIV_DIR}/libpriv.so"))),
        "{found:?}"
    );
    assert_eq!(
        found.get("libc.so.6"),
        Some(&PathBuf::from(format!("/{MULTIARCH}/libc.so.6"))),
        "the sysroot's libc, not the host's /lib/x86_64-linux-gnu one: {found:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn deps_tree_names_the_sysroot_cache_built_by_ldconfig() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    assert!(sys.cached, "ldconfig -r (root) builds the sysroot's cache");
    let tree = deps_tree(&sys.dir, "/bin/cat");
    assert!(
        tree.contains(&format!(
            "libpriv.so => /{PRIV_DIR}/libpriv.so [ld.so.cache]"
        )),
        "{tree}"
    );
}

#[test]
#[ignore = "needs root"]
fn deps_in_a_sysroot_equals_its_loader_run_in_chroot() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    assert!(sys.cached, "ldconfig -r (root) builds the sysroot's cache");
    let found = copy_bom_deps(&sys.dir, "/bin/cat");
    let mut real = real_loader_list(Some(&sys.dir), Path::new("/bin/cat"), None);
    real.remove("linux-vdso.so.1");
    assert_eq!(found, real, "copy_bom deps vs ld.so --list in the sysroot");
}

#[test]
fn without_a_cache_the_sysroot_conf_and_default_dirs_are_searched() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    let _ = std::fs::remove_file(sys.dir.join("etc/ld.so.cache"));
    let tree = deps_tree(&sys.dir, "/bin/cat");
    assert!(
        tree.contains(&format!(
            "libc.so.6 => /{MULTIARCH}/libc.so.6 [default dir /{MULTIARCH}]"
        )),
        "{tree}"
    );
    // glibc itself would not look there without a cache; copy_bom takes the
    // sysroot's ld.so.conf as a stand-in (src/ldso/conf.rs).
    assert!(
        tree.contains(&format!(
            "libpriv.so => /{PRIV_DIR}/libpriv.so [default dir /{PRIV_DIR}]"
        )),
        "{tree}"
    );
    // Without the conf file the private dir is unknown: not found, and the
    // host's dirs are never searched instead.
    std::fs::remove_file(sys.dir.join("etc/ld.so.conf")).unwrap();
    let out = copy_bom()
        .args(["deps", "--sysroot"])
        .arg(&sys.dir)
        .arg("/bin/cat")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(248), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libpriv.so => not found"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn build_takes_sources_and_libraries_from_the_sysroot_and_runs() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/cat]}]\n  - target: /etc\n    copy: [{files: [/etc/ld.so.cache]}]\n",
    );
    assert!(sys.cached, "ldconfig -r (root) builds the sysroot's cache");
    ws.run("app.yaml", &["--sysroot", sys.dir.to_str().unwrap()])
        .success();
    let r = ws.root();
    let same = |inside: &str| {
        let rel = inside.trim_start_matches('/');
        assert_eq!(
            std::fs::read(r.join(rel)).unwrap(),
            std::fs::read(sys.dir.join(rel)).unwrap(),
            "{inside} in the image is the sysroot's"
        );
    };
    same("/bin/cat");
    assert_ne!(
        std::fs::read(r.join("bin/cat")).unwrap(),
        std::fs::read("/bin/cat").unwrap(),
        "not the host's /bin/cat"
    );
    same(&format!("/{PRIV_DIR}/libpriv.so"));
    same(&format!("/{MULTIARCH}/libc.so.6"));
    same(LD);
    assert!(
        !r.join("lib/x86_64-linux-gnu/libc.so.6").exists(),
        "no host library path in the image"
    );
    copy_bom()
        .args(["check", "--root"])
        .arg(&r)
        .assert()
        .success();
    let out = Command::new("chroot")
        .arg(&r)
        .arg("/bin/cat")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sysroot cat 7\n",
        "{out:?}"
    );
}

#[test]
fn a_source_missing_from_the_sysroot_is_not_taken_from_the_host() {
    let ws = Ws::new();
    let sys = make_sysroot(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/ls]}]\n",
    );
    assert!(Path::new("/bin/ls").exists());
    ws.run("app.yaml", &["--sysroot", sys.dir.to_str().unwrap()])
        .code(255)
        .stderr(predicates::str::contains("ls"));
    assert!(!ws.root().join("bin/ls").exists());
}

/// Builds `/bin/cat` from the sysroot into an image without its cache.
fn image_without_the_cache(ws: &Ws) -> Sysroot {
    let sys = make_sysroot(ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/cat]}]\n",
    );
    let sysroot = sys.dir.to_str().unwrap();
    ws.run("app.yaml", &["--sysroot", sysroot])
        .success()
        .stderr(predicates::str::contains("libpriv.so"));
    sys
}

#[test]
fn an_image_without_the_sysroot_cache_is_flagged_by_the_final_check() {
    // libpriv.so was found through the sysroot's cache (or ld.so.conf); the
    // image has neither, so its loader would not find it there.
    let ws = Ws::new();
    image_without_the_cache(&ws);
    assert!(ws.root().join(PRIV_DIR).join("libpriv.so").is_file());
    copy_bom()
        .args(["check", "--root"])
        .arg(ws.root())
        .assert()
        .code(248);
}

#[test]
#[ignore = "needs root"]
fn an_image_without_the_sysroot_cache_does_not_run() {
    let ws = Ws::new();
    image_without_the_cache(&ws);
    let out = Command::new("chroot")
        .arg(ws.root())
        .arg("/bin/cat")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the real loader agrees: {out:?}");
}
