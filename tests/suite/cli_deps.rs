//! `copy_bom deps`: ldd-style lines, `--tree` with the reason of each find,
//! `--json`, several files, files that are not dynamic ELF files, and musl's
//! rules in a sysroot. Where glibc resolution is concerned the real loader
//! (`ld.so --list`) on the same machine is the truth.

use crate::common::{Ws, copy_bom, gcc};
use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::PredicateBooleanExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LD: &str = "/lib64/ld-linux-x86-64.so.2";
const MUSL_LD: &str = "/lib/ld-musl-x86_64.so.1";

fn deps(args: &[&str], files: &[&Path]) -> Output {
    copy_bom()
        .arg("deps")
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `NAME => PATH` pairs of ldd-style text (ours or the real loader's).
fn pairs(text: &str) -> BTreeMap<String, PathBuf> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next()?;
            Some((name.to_string(), PathBuf::from(path)))
        })
        .filter(|(name, _)| name != "linux-vdso.so.1")
        .collect()
}

fn real_loader(file: &Path) -> BTreeMap<String, PathBuf> {
    let out = Command::new(LD)
        .arg("--list")
        .arg(file)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    pairs(&stdout(&out))
}

/// In `ws/`: `d1/liba.so` needs `d2/libb.so`; `rpath` (RPATH d1) and
/// `runpath` (RUNPATH d1) need liba, which has RUNPATH d2: libb is found
/// through liba's own RUNPATH (an object with a RUNPATH ignores inherited RPATHs).
fn rpath_runpath_fixture(ws: &Ws) -> (PathBuf, PathBuf) {
    let d1 = ws.path().join("d1");
    let d2 = ws.path().join("d2");
    gcc(
        "int b(void) { return 2; }\n",
        &d2.join("libb.so"),
        &["-shared", "-fPIC"],
    );
    gcc(
        "int b(void); int a(void) { return b(); }\n",
        &d1.join("liba.so"),
        &[
            "-shared",
            "-fPIC",
            &format!("-L{}", d2.display()),
            "-lb",
            &format!("-Wl,--enable-new-dtags,-rpath,{}", d2.display()),
        ],
    );
    let main = "int a(void); int main(void) { return a() - 2; }\n";
    let rpath = ws.path().join("bin/rpath");
    let runpath = ws.path().join("bin/runpath");
    let link = |out: &Path, dtags: &str| {
        gcc(
            main,
            out,
            &[
                &format!("-L{}", d1.display()),
                "-la",
                &format!("-Wl,-rpath-link,{}", d2.display()),
                &format!("-Wl,{dtags},-rpath,{}", d1.display()),
            ],
        )
    };
    link(&rpath, "--disable-new-dtags");
    link(&runpath, "--enable-new-dtags");
    (rpath, runpath)
}

#[test]
fn default_output_matches_the_real_loader() {
    let ws = Ws::new();
    let (rpath, runpath) = rpath_runpath_fixture(&ws);
    for prog in [&rpath, &runpath] {
        let out = deps(&[], &[prog]);
        assert!(out.status.success(), "{out:?}");
        let ours = pairs(&stdout(&out));
        assert_eq!(ours, real_loader(prog), "{}", prog.display());
        assert!(
            stdout(&out).lines().last() == Some(&format!("\t{LD}")),
            "interpreter last, as ldd prints it: {}",
            stdout(&out)
        );
    }
}

#[test]
fn tree_says_why_each_library_was_found_there() {
    let ws = Ws::new();
    let (rpath, runpath) = rpath_runpath_fixture(&ws);
    let d1 = ws.path().join("d1");
    let d2 = ws.path().join("d2");
    let out = deps(&["--tree"], &[&rpath]);
    let tree = stdout(&out);
    assert!(out.status.success(), "{tree}");
    assert!(
        tree.starts_with(&format!("{}\n", rpath.display())),
        "{tree}"
    );
    // liba hangs under the program, libb under liba.
    assert!(
        tree.contains(&format!(
            "\n    liba.so => {0}/liba.so [RPATH {0}]\n",
            d1.display()
        )),
        "{tree}"
    );
    assert!(
        tree.contains(&format!(
            "\n        libb.so => {0}/libb.so [RUNPATH {0}]\n",
            d2.display()
        )),
        "{tree}"
    );
    assert!(
        tree.contains("libc.so.6 => /") && tree.contains("[ld.so.cache]"),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("{LD} => {LD} [interpreter]")),
        "{tree}"
    );
    let tree = stdout(&deps(&["--tree"], &[&runpath]));
    assert!(
        tree.contains(&format!(
            "liba.so => {0}/liba.so [RUNPATH {0}]",
            d1.display()
        )),
        "{tree}"
    );
}

#[test]
fn tree_names_default_dirs_in_a_sysroot_without_a_cache() {
    let ws = Ws::new();
    let sys = ws.path().join("sys");
    let prog = sys.join("bin/hello");
    gcc("int main(void) { return 0; }\n", &prog, &[]);
    std::fs::create_dir_all(sys.join("lib64")).unwrap();
    std::fs::copy(LD, sys.join(LD.trim_start_matches('/'))).unwrap();
    let libdir = sys.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::copy(&real_loader(&prog)["libc.so.6"], libdir.join("libc.so.6")).unwrap();
    let out = deps(
        &["--tree", "--sysroot", sys.to_str().unwrap()],
        &[Path::new("/bin/hello")],
    );
    let tree = stdout(&out);
    assert!(out.status.success(), "{tree}");
    assert!(
        tree.contains(
            "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 [default dir /lib/x86_64-linux-gnu]"
        ),
        "{tree}"
    );
}

#[test]
fn json_has_file_and_each_library_with_name_path_and_reason() {
    let ws = Ws::new();
    let (rpath, _) = rpath_runpath_fixture(&ws);
    let out = deps(&["--json"], &[&rpath]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v.as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["file"], rpath.to_str().unwrap());
    assert!(files[0]["error"].is_null());
    let libs = files[0]["resolution"]["libs"].as_array().unwrap();
    let by_name: BTreeMap<&str, &serde_json::Value> = libs
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l))
        .collect();
    let liba = by_name["liba.so"];
    let d1 = ws.path().join("d1");
    assert_eq!(liba["path"], d1.join("liba.so").to_str().unwrap());
    assert_eq!(liba["via"]["Rpath"], d1.to_str().unwrap());
    assert_eq!(by_name["libc.so.6"]["via"], "Cache");
    assert_eq!(by_name[LD]["via"], "Loader");
    // The same libraries as the default output.
    let json_pairs: BTreeMap<String, PathBuf> = libs
        .iter()
        .filter(|l| l["via"] != "Loader")
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                PathBuf::from(l["path"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(json_pairs, real_loader(&rpath));
}

#[test]
fn several_files_get_a_header_each_in_the_order_given() {
    let ws = Ws::new();
    let (rpath, runpath) = rpath_runpath_fixture(&ws);
    let out = deps(&[], &[&runpath, &rpath]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let h_run = text.find(&format!("{}:\n", runpath.display())).unwrap();
    let h_r = text.find(&format!("{}:\n", rpath.display())).unwrap();
    assert!(h_run < h_r, "{text}");
    let first = &text[h_run..h_r];
    assert!(first.contains("liba.so => "), "{text}");
    let json = deps(&["--json"], &[&runpath, &rpath]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let files: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, [runpath.to_str().unwrap(), rpath.to_str().unwrap()]);
}

#[test]
fn a_file_that_is_not_elf_is_a_clear_error() {
    let ws = Ws::new();
    let txt = ws.write("notes.txt", "just text\n");
    let out = deps(&[], &[&txt]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("not an ELF file"), "{all}");
    // Next to a good file: the good one is still listed, the bad one named.
    let (rpath, _) = rpath_runpath_fixture(&ws);
    let out = deps(&[], &[&rpath, &txt]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("liba.so => "), "{text}");
    let bad = text.find(&format!("{}:\n", txt.display())).unwrap();
    assert!(text[bad..].contains("not an ELF file"), "{text}");
    // A file that does not exist.
    let out = deps(&[], &[&ws.path().join("nope")]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_truncated_elf_file_is_an_error_not_a_crash() {
    let ws = Ws::new();
    let (rpath, _) = rpath_runpath_fixture(&ws);
    let bytes = std::fs::read(&rpath).unwrap();
    let cut = ws.path().join("cut");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let out = deps(&[], &[&cut]);
    assert!(
        matches!(out.status.code(), Some(c) if c != 0 && c != 101),
        "{out:?}"
    );
}

#[test]
fn a_static_binary_has_no_libraries() {
    let ws = Ws::new();
    let prog = ws.path().join("static");
    let c = ws.write("static.c", "int main(void) { return 0; }\n");
    let built = Command::new("gcc")
        .arg(&c)
        .args(["-static", "-o"])
        .arg(&prog)
        .status()
        .is_ok_and(|s| s.success());
    assert!(built, "gcc -static (libc6-dev's libc.a) builds the fixture");
    let out = deps(&[], &[&prog]);
    assert!(out.status.success(), "{out:?}");
    assert!(pairs(&stdout(&out)).is_empty(), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&deps(&["--json"], &[&prog]).stdout).unwrap();
    assert!(v[0]["resolution"]["interp"].is_null(), "{v}");
    assert_eq!(
        v[0]["resolution"]["libs"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
}

/// A sysroot with a fake musl ldso (an ELF shared object: the kernel runs
/// only an ELF interpreter, so a text file would count as missing), a path file naming `/opt/muslish/lib`,
/// `libmfoo.so` there, a decoy `libmfoo.so` in `/usr/lib`, and `/bin/mprog`
/// (interpreter `MUSL_LD`) needing libmfoo, libc and libm.
fn musl_sysroot(ws: &Ws) -> PathBuf {
    let s = ws.path().join("sys");
    gcc(
        "int not_really_musl(void) { return 0; }\n",
        &s.join(MUSL_LD.trim_start_matches('/')),
        &["-shared", "-fPIC"],
    );
    ws.write("sys/etc/ld-musl-x86_64.path", "/opt/muslish/lib\n");
    let real = s.join("opt/muslish/lib");
    gcc(
        "int mfoo(void) { return 3; }\n",
        &real.join("libmfoo.so"),
        &["-shared", "-fPIC"],
    );
    gcc(
        "int mfoo(void) { return 4; }\n",
        &s.join("usr/lib/libmfoo.so"),
        &["-shared", "-fPIC"],
    );
    gcc(
        "#include <math.h>\nint mfoo(void);\nint main(void) { return mfoo() + (int)sqrt(4.0); }\n",
        &s.join("bin/mprog"),
        &[
            &format!("-Wl,--dynamic-linker={MUSL_LD}"),
            &format!("-L{}", real.display()),
            "-lmfoo",
            "-Wl,--no-as-needed",
            "-lm",
        ],
    );
    s
}

#[test]
fn musl_reserved_names_are_the_ldso_and_the_path_file_is_searched() {
    let ws = Ws::new();
    let s = musl_sysroot(&ws);
    let sysroot = ["--sysroot", s.to_str().unwrap()];
    let out = deps(&sysroot, &[Path::new("/bin/mprog")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let found = pairs(&text);
    assert_eq!(found["libc.so.6"], PathBuf::from(MUSL_LD), "{text}");
    assert_eq!(found["libm.so.6"], PathBuf::from(MUSL_LD), "{text}");
    assert_eq!(
        found["libmfoo.so"],
        PathBuf::from("/opt/muslish/lib/libmfoo.so"),
        "the path file, not the default /usr/lib: {text}"
    );
    assert_eq!(
        text.lines().last(),
        Some(&*format!("\t{MUSL_LD}")),
        "{text}"
    );
    let tree = stdout(&deps(
        &["--tree", sysroot[0], sysroot[1]],
        &[Path::new("/bin/mprog")],
    ));
    assert!(
        tree.contains(&format!("libc.so.6 => {MUSL_LD} [musl libc]")),
        "{tree}"
    );
    // Without the path file musl searches /lib:/usr/local/lib:/usr/lib.
    std::fs::remove_file(s.join("etc/ld-musl-x86_64.path")).unwrap();
    let found = pairs(&stdout(&deps(&sysroot, &[Path::new("/bin/mprog")])));
    assert_eq!(found["libmfoo.so"], PathBuf::from("/usr/lib/libmfoo.so"));
    // A path file that names nothing useful: no fallback to the defaults.
    ws.write("sys/etc/ld-musl-x86_64.path", "/nowhere\n");
    let out = deps(&sysroot, &[Path::new("/bin/mprog")]);
    assert_eq!(out.status.code(), Some(248), "{out:?}");
    assert!(stdout(&out).contains("libmfoo.so => not found"), "{out:?}");
}

#[test]
fn a_musl_program_in_a_bom_brings_its_ldso_into_the_image() {
    let ws = Ws::new();
    let s = musl_sysroot(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/mprog]}]\n  - target: /etc\n    copy: [{files: [/etc/ld-musl-x86_64.path]}]\n",
    );
    ws.run("app.yaml", &["--sysroot", s.to_str().unwrap()])
        .success();
    let r = ws.root();
    let same = |inside: &str| {
        let rel = inside.trim_start_matches('/');
        assert_eq!(
            std::fs::read(r.join(rel)).unwrap(),
            std::fs::read(s.join(rel)).unwrap(),
            "{inside}"
        );
    };
    same(MUSL_LD);
    same("/opt/muslish/lib/libmfoo.so");
    same("/bin/mprog");
    assert!(!r.join("usr/lib/libmfoo.so").exists(), "not the decoy");
    let libc_copies: Vec<_> = walkdir::WalkDir::new(&r)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("libc.so"))
        .collect();
    assert!(
        libc_copies.is_empty(),
        "musl's libc is the ldso: {libc_copies:?}"
    );
    assert!(
        !r.join(LD.trim_start_matches('/')).exists(),
        "no glibc loader"
    );
    // Every library and the loader are there...
    copy_bom()
        .args(["check", "--no-symbols", "--root"])
        .arg(&r)
        .assert()
        .success();
    // ...but this stand-in loader defines nothing, so the program's start-up symbol is unbound.
    copy_bom()
        .args(["check", "--root"])
        .arg(&r)
        .assert()
        .code(248)
        .stdout(predicates::str::contains(
            "undefined symbol __libc_start_main@GLIBC_2.34 (from libc.so.6)",
        ));
}

#[test]
fn a_musl_image_without_the_path_file_is_flagged_by_the_final_check() {
    // The library was found through the sysroot's path file; without that
    // file in the image, musl would search /lib:/usr/local/lib:/usr/lib there.
    let ws = Ws::new();
    let s = musl_sysroot(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/mprog]}]\n",
    );
    ws.run("app.yaml", &["--sysroot", s.to_str().unwrap()])
        .success()
        .stderr(predicates::str::contains("libmfoo.so"));
    assert!(ws.root().join("opt/muslish/lib/libmfoo.so").is_file());
    // With --strict the error itself names the library and who needs it.
    ws.run("app.yaml", &["--sysroot", s.to_str().unwrap(), "--strict"])
        .code(248)
        .stderr(
            predicates::str::contains("incomplete")
                .and(predicates::str::contains("libmfoo.so"))
                .and(predicates::str::contains("mprog")),
        );
}
