//! `check` on symbols and symbol versions. The truth is the real glibc loader: every image is
//! also run in a chroot with `LD_BIND_NOW=1` (the helper sets it), and what `check` says must
//! be what the run shows. Fixtures are built with gcc and version scripts here.

use std::path::{Path, PathBuf};

use crate::check_support::{Image, cc, loader_failure, shared};
use copy_bom::check::{CheckReport, KnownHeaders, SymbolFinding, SymbolProblem, check_image};
use copy_bom::deps::LoaderConfig;

fn check(img: &Image) -> CheckReport {
    check_image(&img.root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap()
}

/// A version script in `dir`, for `-Wl,--version-script`.
fn script(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    format!("-Wl,--version-script={}", p.display())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn findings(r: &CheckReport) -> Vec<(PathBuf, SymbolFinding)> {
    r.symbols
        .iter()
        .map(|p: &SymbolProblem| (p.needed_by.clone(), p.finding.clone()))
        .collect()
}

/// liba.so.1 in two releases: 1 defines `a` at LIBA_1.0; 2 adds `b` at LIBA_2.0.
fn liba(dir: &Path) -> (PathBuf, PathBuf) {
    let old = dir.join("v1/liba.so.1");
    let v1 = script(dir, "v1.map", "LIBA_1.0 { global: a; local: *; };\n");
    shared("gcc", "int a(void){return 1;}\n", &old, &[&v1]);
    let new = dir.join("v2/liba.so.1");
    let v2 = script(
        dir,
        "v2.map",
        "LIBA_1.0 { global: a; local: *; };\nLIBA_2.0 { global: b; } LIBA_1.0;\n",
    );
    shared(
        "gcc",
        "int a(void){return 1;}\nint b(void){return 2;}\n",
        &new,
        &[&v2],
    );
    (old, new)
}

/// A program calling `a` and `b`, linked against liba 2: it requires LIBA_2.0.
fn program_needing_liba_2(dir: &Path, liba_2: &Path) -> PathBuf {
    let prog = dir.join("prog");
    let lib = liba_2.display().to_string();
    cc(
        "gcc",
        "int a(void); int b(void); int main(void){return a() + b() == 3 ? 0 : 1;}\n",
        &prog,
        &[&lib],
    );
    prog
}

/// The real loader refuses to start `program` in the image for want of `version`.
fn fails_on_version(img: &Image, program: &str, version: &str) {
    let out = img.run(program, &[], false);
    assert!(!out.status.success(), "{program} ran");
    let want = format!("version `{version}' not found");
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
#[ignore = "needs root"]
fn a_version_the_library_lacks_is_named_as_the_loader_names_it() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = liba(&t.path().join("build"));
    let prog = program_needing_liba_2(&t.path().join("build"), &new);
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(&prog, "/bin/prog");
    img.copy(&old, "/usr/lib/liba.so.1");

    fails_on_version(&img, "/bin/prog", "LIBA_2.0");
    let r = check(&img);
    assert!(!r.is_complete());
    assert_eq!(
        findings(&r),
        vec![(
            PathBuf::from("/bin/prog"),
            SymbolFinding::Version {
                version: "LIBA_2.0".into(),
                library: "liba.so.1".into(),
                provider: PathBuf::from("/usr/lib/liba.so.1"),
            }
        )]
    );
    assert!(!r.object(Path::new("/bin/prog")).unwrap().complete);
    let text = copy_bom::report::check_lines(&r);
    assert!(
        text.contains("version LIBA_2.0 of liba.so.1 not found"),
        "{text}"
    );

    // The release it was linked against: both say it runs.
    img.copy(&new, "/usr/lib/liba.so.1");
    let out = img.run("/bin/prog", &[], false);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = check(&img);
    assert!(r.is_complete(), "{}", copy_bom::report::check_lines(&r));
    assert!(r.symbol_references > 0);
}

#[test]
#[ignore = "needs root"]
fn a_function_the_library_lacks_is_named_and_binding_it_now_fails() {
    let t = tempfile::tempdir().unwrap();
    let build = t.path().join("build");
    let full = build.join("full/libf.so");
    shared(
        "gcc",
        "int f(void){return 1;}\nint g(void){return 2;}\n",
        &full,
        &[],
    );
    let small = build.join("small/libf.so");
    shared("gcc", "int f(void){return 1;}\n", &small, &[]);
    // `g` is called only with an argument: lazily bound, the program would run; bound at load
    // time (as check judges), it does not.
    let prog = build.join("prog");
    let lib = full.display().to_string();
    cc(
        "gcc",
        "int f(void); int g(void);\nint main(int c, char **v){(void)v; return c > 1 ? g() : f() - 1;}\n",
        &prog,
        &[&lib],
    );
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(&prog, "/bin/prog");
    img.copy(&small, "/usr/lib/libf.so");

    let out = img.run("/bin/prog", &[], false);
    assert!(loader_failure(&out), "{:?} {}", out.status, stderr(&out));
    assert!(
        stderr(&out).contains("undefined symbol: g"),
        "{}",
        stderr(&out)
    );
    let r = check(&img);
    assert_eq!(
        findings(&r),
        vec![(
            PathBuf::from("/bin/prog"),
            SymbolFinding::Symbol {
                name: "g".into(),
                version: None,
                library: None,
            }
        )]
    );
    let text = copy_bom::report::check_lines(&r);
    assert!(text.contains("undefined symbol g"), "{text}");

    img.copy(&full, "/usr/lib/libf.so");
    assert!(img.run("/bin/prog", &[], false).status.success());
    assert!(check(&img).is_complete());
}

#[test]
#[ignore = "needs root"]
fn weak_references_and_symbols_the_program_exports_need_nothing_more() {
    let t = tempfile::tempdir().unwrap();
    let build = t.path().join("build");
    // The library calls back into its program (`hook`, exported because the library uses it).
    let lib = build.join("libh.so");
    shared(
        "gcc",
        "int hook(void);\nint h(void){return hook();}\n",
        &lib,
        &["-Wl,--allow-shlib-undefined"],
    );
    let prog = build.join("prog");
    let l = lib.display().to_string();
    cc(
        "gcc",
        "extern int maybe(void) __attribute__((weak));\nint h(void);\nint hook(void){return 7;}\n\
         int main(void){return (maybe ? maybe() : 0) + h() == 7 ? 0 : 1;}\n",
        &prog,
        &[&l],
    );
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(&prog, "/bin/prog");
    img.copy(&lib, "/usr/lib/libh.so");
    let out = img.run("/bin/prog", &[], false);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = check(&img);
    assert!(r.is_complete(), "{}", copy_bom::report::check_lines(&r));
    assert!(r.symbols.is_empty());
}

#[test]
#[ignore = "needs root"]
fn objects_no_program_loads_are_judged_on_their_versions_only() {
    let t = tempfile::tempdir().unwrap();
    let build = t.path().join("build");
    let (old, new) = liba(&build);
    // A plugin taking `host_fn` from whatever loads it (as python's modules take `Py*`).
    let host_plugin = build.join("host.so");
    shared(
        "gcc",
        "int host_fn(void);\nint plugin(void){return host_fn();}\n",
        &host_plugin,
        &[],
    );
    // A plugin linked against liba 2: it requires LIBA_2.0.
    let versioned = build.join("versioned.so");
    let n = new.display().to_string();
    shared(
        "gcc",
        "int b(void);\nint plugin(void){return b() - 2;}\n",
        &versioned,
        &[&n],
    );
    // The program that loads them by name, with RTLD_NOW, and exports `host_fn`.
    let dl = build.join("dl");
    cc(
        "gcc",
        "#include <dlfcn.h>\n#include <stdio.h>\nint host_fn(void){return 0;}\n\
         int main(int c, char **v){ if (c < 2) return 2; void *h = dlopen(v[1], RTLD_NOW);\n\
         if (!h) { fprintf(stderr, \"%s\\n\", dlerror()); return 3; }\n\
         int (*p)(void) = (int (*)(void))dlsym(h, \"plugin\"); return p();}\n",
        &dl,
        &["-rdynamic"],
    );
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(&dl, "/bin/dl");
    img.copy(&host_plugin, "/opt/plugins/host.so");
    img.copy(&versioned, "/opt/plugins/versioned.so");
    img.copy(&old, "/usr/lib/liba.so.1");

    let out = img.run("/bin/dl", &["/opt/plugins/host.so"], false);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = img.run("/bin/dl", &["/opt/plugins/versioned.so"], false);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("version `LIBA_2.0' not found"),
        "{}",
        stderr(&out)
    );
    let r = check(&img);
    let text = copy_bom::report::check_lines(&r);
    assert_eq!(
        findings(&r),
        vec![(
            PathBuf::from("/opt/plugins/versioned.so"),
            SymbolFinding::Version {
                version: "LIBA_2.0".into(),
                library: "liba.so.1".into(),
                provider: PathBuf::from("/usr/lib/liba.so.1"),
            }
        )],
        "{text}"
    );
    assert!(r.symbols.iter().all(|p| p.alone));
    assert!(text.contains("judged alone"), "{text}");
    assert!(
        r.object(Path::new("/opt/plugins/host.so"))
            .unwrap()
            .complete
    );
    assert!(
        !r.object(Path::new("/opt/plugins/versioned.so"))
            .unwrap()
            .complete
    );
}

#[test]
#[ignore = "needs root"]
fn an_older_libc_is_named_by_the_version_it_lacks() {
    let t = tempfile::tempdir().unwrap();
    let build = t.path().join("build");
    // A libc.so.6 whose versions stop at GLIBC_2.31 (Occlum ships glibc 2.31).
    let stub = build.join("stub/libc.so.6");
    let map = script(
        &build,
        "libc.map",
        "GLIBC_2.2.5 { global: puts; __libc_start_main; local: *; };\n\
         GLIBC_2.31 { global: stub_marker; } GLIBC_2.2.5;\n",
    );
    shared(
        "gcc",
        "int puts(const char *s){(void)s; return 0;}\nint __libc_start_main(void){return 0;}\n\
         int stub_marker;\n",
        &stub,
        &[&map, "-nostdlib"],
    );
    // Built here against glibc 2.36: `__libc_start_main@GLIBC_2.34`.
    let prog = build.join("hello");
    cc(
        "gcc",
        "#include <stdio.h>\nint main(void){puts(\"hi\"); return 0;}\n",
        &prog,
        &[],
    );
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(&prog, "/bin/hello");
    img.copy(&stub, "/lib/x86_64-linux-gnu/libc.so.6");

    fails_on_version(&img, "/bin/hello", "GLIBC_2.34");
    let r = check(&img);
    let text = copy_bom::report::check_lines(&r);
    let lacking: Vec<_> = r
        .symbols
        .iter()
        .filter(|p| p.needed_by == Path::new("/bin/hello"))
        .map(|p| p.finding.clone())
        .collect();
    assert!(
        lacking.contains(&SymbolFinding::Version {
            version: "GLIBC_2.34".into(),
            library: "libc.so.6".into(),
            provider: PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
        }),
        "{text}"
    );
    assert!(
        text.contains("version GLIBC_2.34 of libc.so.6 not found"),
        "{text}"
    );
}

/// Every dynamic program of `/usr/bin` and `/usr/sbin` and python's whole standard library, with
/// the libraries copy_bom finds for them: the host runs all of them, so any symbol finding would
/// be a false alarm.
#[test]
fn the_machine_s_own_programs_raise_no_symbol_finding() {
    let t = tempfile::tempdir().unwrap();
    let bom = t.path().join("host.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /usr\n    copy:\n      - dirs:\n          - /usr/bin\n          - /usr/sbin\n\
         \x20 - target: /usr/lib\n    copy:\n      - dirs:\n          - /usr/lib/python3.11\n",
    )
    .unwrap();
    let root = t.path().join("image");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_copy_bom"))
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(&root)
        .args(["--allow-missing", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let img = Image { root };
    let r = check(&img);
    let text = copy_bom::report::check_lines(&r);
    assert!(r.symbols.is_empty(), "{text}");
    let programs = r.objects.len();
    assert!(programs > 300, "{programs} objects: {text}");
    assert!(r.symbol_references > 50_000, "{text}");
    eprintln!("{}", text.lines().last().unwrap_or_default());
}

/// The build's final check names a version the image's library lacks (the bom ships an older
/// release of the library than the program was linked against): a warning, and with `--strict`
/// an error (248).
#[test]
fn the_final_check_of_a_build_names_a_missing_version() {
    let t = tempfile::tempdir().unwrap();
    let build = t.path().join("build");
    let (old, new) = liba(&build);
    let prog = program_needing_liba_2(&build, &new);
    let bom = t.path().join("app.yaml");
    std::fs::write(
        &bom,
        format!(
            "targets:\n  - target: /bin\n    copy: [{{files: [{}]}}]\n  - target: /usr/lib\n    \
             copy: [{{files: [{}]}}]\n",
            prog.display(),
            old.display()
        ),
    )
    .unwrap();
    let build_with = |root: &str, strict: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_copy_bom"));
        cmd.arg("-f")
            .arg(&bom)
            .arg("--root")
            .arg(t.path().join(root));
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let out = build_with("image", false);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("version LIBA_2.0 of liba.so.1 not found") && err.contains("/bin/prog"),
        "{err}"
    );
    let out = build_with("strict", true);
    assert_eq!(out.status.code(), Some(248), "{}", stderr(&out));
    assert!(stderr(&out).contains("version LIBA_2.0 of liba.so.1 not found"));
}
