//! Loader rules of issue 9 (defect 12 and the resolver side of 4 and 5),
//! each compared with the real loader on this machine: glibc's `ldd`,
//! `ld.so --list`, `LD_DEBUG=libs`; musl's loader run on the program or as
//! `ld-musl-x86_64.so.1 --list`.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ldso_support::*;

const LD: &str = "/lib64/ld-linux-x86-64.so.2";

fn rpath(dirs: &str) -> String {
    format!("-Wl,--disable-new-dtags,-rpath,{dirs}")
}

/// `LD: --list FILE` run in `cwd`: exit code, stdout and stderr.
fn ld_so_list(file: &Path, cwd: Option<&Path>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(LD);
    cmd.arg("--list").arg(file).env_remove("LD_LIBRARY_PATH");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ldd's pairs with relative found paths (the loader opened them relative
/// to its current directory `cwd`) made absolute.
fn absolute_pairs(truth: BTreeSet<(String, String)>, cwd: &Path) -> BTreeSet<(String, String)> {
    truth
        .into_iter()
        .map(|(n, p)| {
            if p.starts_with('/') || p == "not found" {
                (n, p)
            } else {
                (n, cwd.join(&p).display().to_string())
            }
        })
        .collect()
}

// ---- static-pie (defect 12) ----

#[test]
fn static_pie_is_statically_linked_and_needs_no_loader() {
    let (_t, d) = tmp();
    let prog = d.join("spie");
    exe(&prog, "int main(void) { return 0; }\n", &["-static-pie"]);
    let (code, out, _) = ld_so_list(&prog, None);
    assert_eq!((code, out.trim()), (Some(0), "statically linked"));
    let (code, text) = deps_cli(&[], &prog, None);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text, "\tstatically linked\n");
    let elf = copy_bom::elf::read_file(&prog).unwrap().unwrap();
    assert!(elf.is_static_pie());
    // Told to use a loader (the build does, for files without PT_INTERP),
    // the resolver still loads nothing.
    let spec = copy_bom::ldso::LoaderSpec {
        interp: LD.into(),
        flavor: copy_bom::ldso::Flavor::Glibc,
        library_path: None,
    };
    let res = copy_bom::ldso::Resolver::new(Default::default())
        .resolve(&prog, Some(&spec))
        .unwrap();
    assert!(res.libs.is_empty() && res.interp.is_none(), "{res:?}");
    // A shared library has no PT_INTERP either, but is not a static-pie.
    lib(&d.join("libs.so"), &func("s", &[]), &[]);
    let so = copy_bom::elf::read_file(&d.join("libs.so"))
        .unwrap()
        .unwrap();
    assert!(!so.is_static_pie());
}

// ---- a musl shared object alone ----

#[test]
fn a_musl_library_alone_is_resolved_with_musl_rules() {
    let (_t, d) = tmp();
    musl_build(
        &d.join("sub/libmb.so"),
        &func("mb", &[]),
        &["-shared", "-fPIC"],
        &[],
    );
    let liba = d.join("libma.so");
    musl_build(
        &liba,
        &func("ma", &["mb"]),
        &["-shared", "-fPIC"],
        &[
            &format!("-L{}", d.join("sub").display()),
            "-lmb",
            "-Wl,-rpath,$ORIGIN/sub",
        ],
    );
    let truth = musl_list(&liba).expect("musl's loader lists the library");
    assert!(
        truth.contains(&("libc.so".into(), MUSL_LD.into())),
        "{truth:?}"
    );
    let (code, text) = deps_cli(&[], &liba, None);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cli_pairs_like(&text, &truth), truth, "ours:\n{text}");
    assert!(!text.contains("libc.so.6"), "{text}");
    let elf = copy_bom::elf::read_file(&liba).unwrap().unwrap();
    assert_eq!(
        copy_bom::ldso::Flavor::of_object(&elf),
        Some(copy_bom::ldso::Flavor::Musl)
    );
    assert_eq!(
        copy_bom::ldso::default_interp(&elf, copy_bom::ldso::Flavor::Musl).as_deref(),
        Some(MUSL_LD)
    );
}

// ---- musl's $ORIGIN of the main program ----

#[test]
fn musl_main_program_origin_is_its_real_path() {
    let (_t, d) = tmp();
    let real = d.join("real/bin");
    musl_build(
        &real.join("lib/libmq.so"),
        &func("mq", &[]),
        &["-shared", "-fPIC"],
        &[],
    );
    let prog = real.join("prog");
    musl_build(
        &prog,
        &main_calling(&["mq"]),
        &[],
        &[
            &format!("-L{}", real.join("lib").display()),
            "-lmq",
            "-Wl,-rpath,$ORIGIN/lib",
        ],
    );
    fs::create_dir_all(d.join("links")).unwrap();
    let link = d.join("links/prog");
    symlink("../real/bin/prog", &link).unwrap();
    assert!(!d.join("links/lib").exists());
    // Run through the link, the program starts: musl took $ORIGIN from
    // /proc/self/exe, the real path.
    let out = Command::new(&link).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, text) = deps_cli(&[], &link, None);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "libmq.so => {}",
            real.join("lib/libmq.so").display()
        )),
        "{text}"
    );
}

// ---- a file the loader cannot load, earlier in the path ----

/// `prog` (RPATH `rp:real`) needs `libzz.so`, which is in `real`; the
/// caller puts something named `libzz.so` in `rp`.
fn shadowed(d: &Path) -> PathBuf {
    lib(&d.join("real/libzz.so"), &func("zz", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["zz"]),
        &[
            &format!("-L{}", d.join("real").display()),
            "-lzz",
            &rpath(&format!(
                "{}:{}",
                d.join("rp").display(),
                d.join("real").display()
            )),
        ],
    );
    fs::create_dir_all(d.join("rp")).unwrap();
    prog
}

/// glibc stops at the shadowing file with `reason` (naming the file, or
/// for a refused object the library); so must we.
fn glibc_stops_at(d: &Path, prog: &Path, reason: &str) {
    let (code, _, err) = ld_so_list(prog, None);
    assert_ne!(code, Some(0));
    let file = d.join("rp/libzz.so");
    assert!(
        err.contains(&format!("{}: {reason}", file.display()))
            || err.contains(&format!("libzz.so: {reason}")),
        "glibc: {err}"
    );
    let (code, text) = deps_cli(&[], prog, None);
    assert_eq!(code, Some(248), "{text}");
    assert!(
        text.contains(&format!(
            "libzz.so => not loadable: {}: {reason}",
            file.display()
        )),
        "{text}"
    );
}

#[test]
fn glibc_stops_at_a_text_file_of_the_needed_name() {
    let (_t, d) = tmp();
    let prog = shadowed(&d);
    fs::write(
        d.join("rp/libzz.so"),
        "INPUT(this is a linker script, long enough to hold an ELF header)\n",
    )
    .unwrap();
    glibc_stops_at(&d, &prog, "invalid ELF header");
}

#[test]
fn glibc_stops_at_a_short_file_and_at_a_directory() {
    let (_t, d) = tmp();
    let prog = shadowed(&d);
    fs::write(d.join("rp/libzz.so"), "hi").unwrap();
    glibc_stops_at(&d, &prog, "file too short");
    fs::remove_file(d.join("rp/libzz.so")).unwrap();
    fs::create_dir(d.join("rp/libzz.so")).unwrap();
    glibc_stops_at(&d, &prog, "cannot read file data");
}

#[test]
fn glibc_stops_at_an_executable_but_passes_over_another_machine() {
    let (_t, d) = tmp();
    let prog = shadowed(&d);
    fs::copy(&prog, d.join("rp/libzz.so")).unwrap();
    glibc_stops_at(
        &d,
        &prog,
        "cannot dynamically load position-independent executable",
    );
    // The same library for another machine (e_machine = EM_AARCH64) is
    // skipped and the search goes on.
    let mut bytes = fs::read(d.join("real/libzz.so")).unwrap();
    bytes[18] = 183;
    bytes[19] = 0;
    fs::write(d.join("rp/libzz.so"), bytes).unwrap();
    let truth = ldd(&prog, &[], None).unwrap();
    assert!(
        truth.contains(&(
            "libzz.so".into(),
            d.join("real/libzz.so").display().to_string()
        )),
        "{truth:?}"
    );
    let (code, text) = deps_cli(&[], &prog, None);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cli_pairs_like(&text, &truth), truth, "{text}");
}

#[test]
fn musl_stops_at_the_first_file_that_opens() {
    let (_t, d) = tmp();
    musl_build(
        &d.join("real/libzz.so"),
        &func("zz", &[]),
        &["-shared", "-fPIC"],
        &[],
    );
    let prog = d.join("prog");
    musl_build(
        &prog,
        &main_calling(&["zz"]),
        &[],
        &[
            &format!("-L{}", d.join("real").display()),
            "-lzz",
            &format!(
                "-Wl,-rpath,{}:{}",
                d.join("rp").display(),
                d.join("real").display()
            ),
        ],
    );
    assert!(Command::new(&prog).status().unwrap().success());
    fs::create_dir_all(d.join("rp")).unwrap();
    fs::write(d.join("rp/libzz.so"), "not a library, but it opens\n").unwrap();
    let out = Command::new(&prog).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Error loading shared library libzz.so: Exec format error"),
        "{out:?}"
    );
    let (code, text) = deps_cli(&[], &prog, None);
    assert_eq!(code, Some(248), "{text}");
    assert!(
        text.contains(&format!(
            "libzz.so => not loadable: {}: Exec format error",
            d.join("rp/libzz.so").display()
        )),
        "{text}"
    );
}

// ---- an empty path entry is the current directory ----

#[test]
fn an_empty_rpath_or_runpath_entry_is_the_current_directory() {
    let (_t, d) = tmp();
    let cwd = d.join("cwd");
    lib(&cwd.join("libcw.so"), &func("cw", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["cw"]),
        &[
            &format!("-L{}", cwd.display()),
            "-lcw",
            &rpath(&format!(":{}", d.join("x").display())),
        ],
    );
    let check = |prog: &Path| {
        let truth = absolute_pairs(ldd(prog, &[], Some(&cwd)).unwrap(), &cwd);
        assert!(
            truth.contains(&(
                "libcw.so".into(),
                cwd.join("libcw.so").display().to_string()
            )),
            "{truth:?}"
        );
        let (code, text) = deps_cli(&[], prog, Some(&cwd));
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(cli_pairs_like(&text, &truth), truth, "{text}");
        // Elsewhere the entry finds nothing, for the loader and for us.
        assert!(
            ldd(prog, &[], Some(&d))
                .unwrap()
                .contains(&("libcw.so".into(), "not found".into()))
        );
        assert_eq!(deps_cli(&[], prog, Some(&d)).0, Some(248));
    };
    check(&prog);
    let patched = d.join("patched");
    fs::copy(&prog, &patched).unwrap();
    patchelf(
        &patched,
        &["--set-rpath", &format!(":{}", d.join("x").display())],
    );
    check(&patched);
}

// ---- $PLATFORM and the legacy platform directories (glibc <= 2.36) ----

/// The subdirectories `LD_DEBUG=libs` shows glibc trying in `rp` before
/// `rp` itself, in order.
fn subdirs_tried(prog: &Path, rp: &Path) -> Vec<String> {
    let out = Command::new(prog)
        .env("LD_DEBUG", "libs")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find_map(|l| l.split("search path=").nth(1))
        .expect("LD_DEBUG shows the search path");
    let prefix = format!("{}/", rp.display());
    line.split_whitespace()
        .next()
        .unwrap()
        .split(':')
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

#[test]
fn legacy_platform_subdirectories_are_searched_as_glibc_does() {
    let (_t, d) = tmp();
    let rp = d.join("rp");
    lib(&rp.join("libpl.so"), &func("pl", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["pl"]),
        &[
            &format!("-L{}", rp.display()),
            "-lpl",
            &rpath(&rp.display().to_string()),
        ],
    );
    let subdirs = subdirs_tried(&prog, &rp);
    let legacy: Vec<&String> = subdirs
        .iter()
        .filter(|s| !s.starts_with("glibc-hwcaps/"))
        .collect();
    assert!(legacy.iter().any(|s| *s == "tls"), "{subdirs:?}");
    // A copy in each legacy subdirectory in turn, from the last tried to the
    // first: glibc takes it over rp's own; so must we.
    for sub in legacy.iter().rev() {
        lib(&rp.join(sub).join("libpl.so"), &func("pl", &[]), &[]);
        let truth = ldd(&prog, &[], None).unwrap();
        let want = rp.join(sub).join("libpl.so").display().to_string();
        assert!(
            truth.contains(&("libpl.so".into(), want)),
            "{sub}: {truth:?}"
        );
        let (code, text) = deps_cli(&[], &prog, None);
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(cli_pairs_like(&text, &truth), truth, "{sub}: {text}");
    }
}

#[test]
fn platform_token_expands_to_the_loaders_platform() {
    let (_t, d) = tmp();
    let diag = Command::new(LD).arg("--list-diagnostics").output().unwrap();
    let diag = String::from_utf8_lossy(&diag.stdout);
    let platform = diag
        .lines()
        .find_map(|l| l.strip_prefix("dl_platform=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("ld.so names its platform")
        .to_string();
    let dir = d.join("p").join(&platform);
    lib(&dir.join("libpt.so"), &func("pt", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["pt"]),
        &[
            &format!("-L{}", dir.display()),
            "-lpt",
            &rpath("$ORIGIN/p/$PLATFORM"),
        ],
    );
    let truth = ldd(&prog, &[], None).unwrap();
    assert!(
        truth.contains(&(
            "libpt.so".into(),
            dir.join("libpt.so").display().to_string()
        )),
        "{truth:?}"
    );
    let (code, text) = deps_cli(&[], &prog, None);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cli_pairs_like(&text, &truth), truth, "{text}");
}

#[test]
fn a_static_pie_in_a_bom_brings_no_loader_into_the_image() {
    let ws = common::Ws::new();
    let prog = ws.path().join("spie");
    exe(&prog, "int main(void) { return 0; }\n", &["-static-pie"]);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [../spie]}]\n",
    );
    ws.run("app.yaml", &["--strict"]).success();
    assert!(ws.root().join("bin/spie").is_file());
    assert!(
        !ws.root().join("lib64/ld-linux-x86-64.so.2").exists(),
        "a static-pie needs no loader"
    );
}
