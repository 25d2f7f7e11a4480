//! Autodep through the binary: libraries of listed files and of files in
//! copied dirs, placement by the loader config, missing libraries, and images
//! that run in a chroot (as root).

use crate::common;

use crate::common::{Ws, gcc, snapshot};
use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use std::path::Path;
use std::process::Command;

const LIB: &str = "int foo(void) { return 42; }\n";
const APP: &str = "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"foo=%d\\n\", foo()); return 0; }\n";

/// ws/opt/mylib/libfoo.so and ws/src/app linked to it with an RPATH.
fn app_with_private_lib(ws: &Ws) -> std::path::PathBuf {
    let libdir = ws.path().join("opt/mylib");
    gcc(LIB, &libdir.join("libfoo.so"), &["-shared", "-fPIC"]);
    let app = ws.path().join("src/app");
    let rpath = format!("-Wl,-rpath,{}", libdir.display());
    gcc(
        APP,
        &app,
        &[&format!("-L{}", libdir.display()), "-lfoo", &rpath],
    );
    libdir
}

fn chroot_run(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn listed_file_gets_its_libraries() {
    build_app_image(&Ws::new());
}

#[test]
#[ignore = "needs root"]
fn listed_file_with_its_libraries_runs_in_a_chroot() {
    let ws = Ws::new();
    let r = build_app_image(&ws);
    let out = chroot_run(&r, &["/bin/app"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "foo=42\n", "{out:?}");
}

/// Builds the app of [`app_with_private_lib`] with base.yaml and checks the
/// libraries, the interpreter and `check`; returns the image root.
fn build_app_image(ws: &Ws) -> std::path::PathBuf {
    let libdir = app_with_private_lib(ws);
    ws.write("app.yaml", "includes: [base.yaml]\ntargets:\n  - target: /bin\n    copy: [{from: ../src, files: [app]}]\n");
    ws.run("app.yaml", &[]).success();
    let r = ws.root();
    let lib_in_image = r.join(libdir.strip_prefix("/").unwrap()).join("libfoo.so");
    assert!(
        lib_in_image.is_file(),
        "private lib copied at its host path"
    );
    assert!(
        r.join("lib/x86_64-linux-gnu/libc.so.6").is_file()
            || r.join("usr/lib/x86_64-linux-gnu/libc.so.6").is_file()
    );
    assert!(
        r.join("lib64/ld-linux-x86-64.so.2").is_file(),
        "the interpreter is copied"
    );
    common::copy_bom()
        .args(["check", "--root"])
        .arg(&r)
        .assert()
        .success();
    r
}

#[test]
fn autodep_false_copies_no_libraries() {
    let ws = Ws::new();
    let libdir = app_with_private_lib(&ws);
    ws.write("app.yaml", "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [{name: app, autodep: false}]}]\n");
    ws.run("app.yaml", &["--no-check"]).success();
    assert!(!ws.root().join(libdir.strip_prefix("/").unwrap()).exists());
    assert!(!ws.root().join("lib64").exists());
}

#[test]
fn missing_library_of_a_listed_file_is_248_and_writes_nothing() {
    let ws = Ws::new();
    let libdir = app_with_private_lib(&ws);
    std::fs::remove_file(libdir.join("libfoo.so")).unwrap();
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [app]}]\n",
    );
    ws.run("app.yaml", &[])
        .code(248)
        .stderr(predicate::str::contains("libfoo.so").and(predicate::str::contains("app")));
    assert!(snapshot(&ws.root()).is_empty());
    ws.run("app.yaml", &["--dry-run"]).code(248);
    ws.run("app.yaml", &["--allow-missing", "--no-check"])
        .success()
        .stderr(predicate::str::contains("libfoo.so"));
    assert!(ws.root().join("bin/app").is_file());
}

#[test]
fn shared_objects_in_copied_dirs_get_their_libraries() {
    let ws = Ws::new();
    let dep = ws.path().join("deps/libdep.so");
    gcc("int dep(void) { return 1; }\n", &dep, &["-shared", "-fPIC"]);
    let plugin = ws.path().join("plugins/libplugin.so");
    let rpath = format!("-Wl,-rpath,{}", dep.parent().unwrap().display());
    gcc(
        "int dep(void); int plugin(void) { return dep(); }\n",
        &plugin,
        &[
            "-shared",
            "-fPIC",
            &format!("-L{}", dep.parent().unwrap().display()),
            "-ldep",
            &rpath,
        ],
    );
    ws.write(
        "app.yaml",
        "targets:\n  - target: /opt/plugins\n    copy: [{dirs: [../plugins/]}]\n",
    );
    ws.run("app.yaml", &["--no-check"]).success();
    let r = ws.root();
    assert!(r.join("opt/plugins/libplugin.so").is_file());
    assert!(
        r.join(dep.strip_prefix("/").unwrap()).is_file(),
        "the plugin's dependency is copied"
    );
    assert!(
        r.join("lib64/ld-linux-x86-64.so.2").is_file(),
        "default loader for an interpreter-less object"
    );
    // A missing dependency of a file in a dir is a warning, an error with --strict.
    std::fs::remove_file(&dep).unwrap();
    ws.run("app.yaml", &["--no-check"])
        .success()
        .stderr(predicate::str::contains("libdep.so"));
    ws.run("app.yaml", &["--strict"]).code(248);
}

#[test]
fn loader_config_places_libraries_beside_the_occlum_loader() {
    let ws = Ws::new();
    app_with_private_lib(&ws);
    // A stand-in for Occlum's glibc loader, configured for the host's lib dirs.
    let occlum = ws.path().join("occlum/glibc/lib");
    std::fs::create_dir_all(&occlum).unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        occlum.join("ld-linux-x86-64.so.2"),
    )
    .unwrap();
    let cfg = ws.write(
        "loader.config",
        &format!(
            "{}/ld-linux-x86-64.so.2 {}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu\n",
            occlum.display(),
            occlum.display()
        ),
    );
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [app]}]\n",
    );
    ws.run(
        "app.yaml",
        &["--loader-config", cfg.to_str().unwrap(), "--no-check"],
    )
    .success();
    let r = ws.root();
    let in_image = r.join(occlum.strip_prefix("/").unwrap());
    assert!(
        in_image.join("libc.so.6").is_file(),
        "libc goes beside the configured loader"
    );
    assert!(!r.join("lib/x86_64-linux-gnu/libc.so.6").exists());
    let ld = std::fs::read(r.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert_eq!(
        ld,
        std::fs::read(occlum.join("ld-linux-x86-64.so.2")).unwrap(),
        "the configured loader is copied to the interpreter path"
    );
    // The private lib is not in a configured dir: it keeps its host path.
    assert!(
        r.join(ws.path().strip_prefix("/").unwrap())
            .join("opt/mylib/libfoo.so")
            .is_file()
    );
}

#[test]
fn deps_prints_ldd_style_lines() {
    let ws = Ws::new();
    let libdir = app_with_private_lib(&ws);
    let out = common::copy_bom()
        .args(["deps"])
        .arg(ws.path().join("src/app"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("libfoo.so => {}/libfoo.so", libdir.display())),
        "{text}"
    );
    assert!(text.contains("libc.so.6 => /"), "{text}");
    std::fs::remove_file(libdir.join("libfoo.so")).unwrap();
    common::copy_bom()
        .args(["deps"])
        .arg(ws.path().join("src/app"))
        .assert()
        .code(248)
        .stdout(predicate::str::contains("libfoo.so => not found"));
}
