//! The image model (issue 9): links planned in the run are followed in image terms, one
//! precedence rule on resolved paths, one validation stage before any write, libraries judged in
//! the image being built. Each test is one of the confirmed defects, through the binary;
//! where an image must run, the truth is a chroot run of it (root only).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{Ws, gcc, snapshot};
use predicates::prelude::*;

/// Runs `prog` inside `root` with chroot.
fn chroot_run(root: &Path, prog: &str) -> Output {
    Command::new("chroot").arg(root).arg(prog).output().unwrap()
}

fn host_dir(ws: &Ws, rel: &str) -> PathBuf {
    let p = ws.path().join(rel);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn in_image(ws: &Ws, host: &Path) -> PathBuf {
    ws.root().join(host.strip_prefix("/").unwrap())
}

// Defect 1: a write through a link made in the same run lands on the host.
#[test]
fn writes_through_links_made_in_the_same_run_stay_in_the_image() {
    let ws = Ws::new();
    let host = host_dir(&ws, "host");
    let before = snapshot(&host);
    ws.write("src/data", "data");
    ws.write(
        "app.yaml",
        &format!(
            "targets:\n\
             \x20 - target: /\n\
             \x20   createlinks:\n\
             \x20     - {{src: {h}, linkname: lib64}}\n\
             \x20     - {{src: {h}, linkname: l}}\n\
             \x20     - {{src: sub, linkname: l/m}}\n\
             \x20 - target: /bin\n\
             \x20   copy: [{{files: [/bin/true]}}]\n\
             \x20 - target: /\n\
             \x20   copy: [{{files: [{{name: ../src/data, rename: l/x}}]}}]\n\
             \x20 - target: /l/m\n\
             \x20   copy: [{{files: [../src/data]}}]\n",
            h = host.display()
        ),
    );
    ws.run("app.yaml", &["--no-check"]).success();
    assert_eq!(snapshot(&host), before, "nothing was written on the host");
    let inside = in_image(&ws, &host);
    assert!(inside.join("ld-linux-x86-64.so.2").is_file());
    assert_eq!(std::fs::read_to_string(inside.join("x")).unwrap(), "data");
    assert_eq!(
        std::fs::read_to_string(inside.join("sub/data")).unwrap(),
        "data"
    );
    assert_eq!(
        std::fs::read_link(ws.root().join("lib64")).unwrap(),
        host,
        "the link itself is written as the bom says"
    );
}

// Defect 2: validation passes, then the run fails after partial writes.
#[test]
fn an_empty_link_source_or_a_nul_byte_is_refused_before_any_write() {
    for (case, bom) in [
        (
            "empty src",
            "targets:\n  - target: /a\n    createlinks: [{src: '', linkname: l}]\n",
        ),
        (
            "NUL in a name",
            "targets:\n  - target: /a\n    mkdirs: [\"x\\0y\"]\n",
        ),
        (
            "NUL in a link",
            "targets:\n  - target: /a\n    createlinks: [{src: \"x\\0\", linkname: l}]\n",
        ),
    ] {
        let ws = Ws::new();
        ws.write("keep/file", "x");
        ws.write(
            "app.yaml",
            &format!("{bom}  - target: /b\n    copy: [{{files: [../keep/file]}}]\n"),
        );
        ws.run("app.yaml", &[])
            .code(253)
            .stderr(predicate::str::contains("app.yaml:"));
        assert!(!ws.root().exists(), "{case}: nothing written");
    }
}

#[test]
fn paths_under_a_planned_link_resolve_through_it() {
    let ws = Ws::new();
    let host = host_dir(&ws, "x");
    ws.write(
        "app.yaml",
        &format!(
            "targets:\n  - target: /\n    mkdirs: [keep]\n    createlinks: [{{src: {}, linkname: l}}]\n  - target: /l/sub\n",
            host.display()
        ),
    );
    ws.run("app.yaml", &[]).success();
    assert!(!host.join("sub").exists(), "not created on the host");
    assert!(in_image(&ws, &host).join("sub").is_dir());
}

#[test]
fn dry_run_exits_with_the_real_runs_status_and_every_conflict_is_listed() {
    let ws = Ws::new();
    ws.write("inst/image/bin", "a file where the bom wants a directory");
    ws.write("src/f", "f");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [../src/f]}]\n",
    );
    let before = snapshot(&ws.root());
    ws.run("app.yaml", &["--dry-run"]).code(252);
    ws.run("app.yaml", &[])
        .code(252)
        .stderr(predicate::str::contains("/bin"));
    assert_eq!(snapshot(&ws.root()), before);

    let ws = Ws::new();
    ws.write("src/f", "f");
    ws.write(
        "app.yaml",
        "targets:\n\
         \x20 - target: /\n    mkdirs: [d1, d2]\n\
         \x20 - target: /\n    copy: [{files: [{name: ../src/f, rename: d1}, {name: ../src/f, rename: d2}]}]\n",
    );
    ws.run("app.yaml", &["--dry-run"]).code(253);
    ws.run("app.yaml", &[])
        .code(253)
        .stderr(predicate::str::contains("/d1").and(predicate::str::contains("/d2")));
    assert!(!ws.root().exists());
}

// Defect 3: aliased destinations race; the winner depends on thread timing.
#[test]
fn a_listed_file_beats_a_library_reached_through_a_root_link_every_time() {
    for jobs in ["1", "2", "4", "8", "2", "4"] {
        let ws = Ws::new();
        std::fs::create_dir_all(ws.root().join("usr/lib/x86_64-linux-gnu")).unwrap();
        symlink("usr/lib", ws.root().join("lib")).unwrap();
        ws.write("src/libc.so.6", "LISTED");
        ws.write(
            "app.yaml",
            "targets:\n\
             \x20 - target: /bin\n    copy: [{files: [/bin/true]}]\n\
             \x20 - target: /usr/lib/x86_64-linux-gnu\n    copy: [{files: [../src/libc.so.6]}]\n",
        );
        ws.run("app.yaml", &["--no-check", "--jobs", jobs])
            .success();
        assert_eq!(
            ws.image_file("usr/lib/x86_64-linux-gnu/libc.so.6"),
            "LISTED",
            "with --jobs {jobs}"
        );
    }
}

#[test]
fn the_later_of_two_listed_files_wins_through_an_alias() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.root().join("usr/lib")).unwrap();
    symlink("usr/lib", ws.root().join("lib")).unwrap();
    ws.write("a/f", "first");
    ws.write("b/f", "second");
    ws.write(
        "app.yaml",
        "targets:\n\
         \x20 - target: /lib\n    copy: [{files: [../a/f]}]\n\
         \x20 - target: /usr/lib\n    copy: [{files: [../b/f]}]\n",
    );
    for _ in 0..4 {
        ws.run("app.yaml", &[]).success();
        assert_eq!(ws.image_file("usr/lib/f"), "second");
    }
}

/// A program in `x/bin` with RPATH `$ORIGIN/../lib` and its library in `x/lib`.
fn origin_fixture(ws: &Ws) -> PathBuf {
    let lib = ws.path().join("x/lib/libfoo.so");
    gcc("int foo(void) { return 7; }\n", &lib, &["-shared", "-fPIC"]);
    let app = ws.path().join("x/bin/app");
    gcc(
        "int foo(void); int main(void) { return foo() == 7 ? 0 : 1; }\n",
        &app,
        &[
            &format!("-L{}", lib.parent().unwrap().display()),
            "-lfoo",
            "-Wl,-rpath,$ORIGIN/../lib",
        ],
    );
    app
}

/// The origin fixture's program listed into `/bin`, built.
fn origin_image() -> Ws {
    let ws = Ws::new();
    origin_fixture(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [../x/bin/app]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    ws
}

// Defect 10: `$ORIGIN` libraries land at their host path.
#[test]
fn origin_libraries_go_where_origin_points_from_the_destination() {
    let ws = origin_image();
    assert!(ws.root().join("lib/libfoo.so").is_file());
    assert!(
        !in_image(&ws, &ws.path().join("x/lib/libfoo.so")).exists(),
        "not at its host path"
    );
}

#[test]
#[ignore = "needs root"]
fn origin_libraries_image_runs_in_a_chroot() {
    let ws = origin_image();
    let out = chroot_run(&ws.root(), "/bin/app");
    assert!(out.status.success(), "{out:?}");
}

// Defect 9: a library under the source of any `dirs` entry is skipped.
#[test]
fn a_library_inside_a_copied_dir_is_still_placed_where_the_loader_looks() {
    let ws = Ws::new();
    let lib = ws.path().join("app/lib/libfoo.so");
    gcc("int foo(void) { return 7; }\n", &lib, &["-shared", "-fPIC"]);
    let libdir = lib.parent().unwrap().display().to_string();
    gcc(
        "int foo(void); int main(void) { return foo() == 7 ? 0 : 1; }\n",
        &ws.path().join("app/bin/app"),
        &[
            &format!("-L{libdir}"),
            "-lfoo",
            &format!("-Wl,-rpath,{libdir}"),
        ],
    );
    ws.write(
        "app.yaml",
        "excludes: [libfoo.so]\n\
         targets:\n\
         \x20 - target: /opt/elsewhere\n    copy: [{dirs: [../app/lib]}]\n\
         \x20 - target: /bin\n    copy: [{files: [../app/bin/app]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    assert!(in_image(&ws, &lib).is_file(), "placed on the RPATH");
}

// Defect 8: libraries the bom itself ships count as missing.
#[test]
fn a_library_the_bom_ships_on_the_loader_path_is_not_missing() {
    let ws = Ws::new();
    let lib = ws.path().join("build/libecdh.so");
    gcc(
        "int ecdh(void) { return 3; }\n",
        &lib,
        &["-shared", "-fPIC"],
    );
    gcc(
        "int ecdh(void); int main(void) { return ecdh() == 3 ? 0 : 1; }\n",
        &ws.path().join("build/app"),
        &[&format!("-L{}", lib.parent().unwrap().display()), "-lecdh"],
    );
    ws.write(
        "app.yaml",
        "targets:\n\
         \x20 - target: /lib\n    copy: [{files: [../build/libecdh.so]}]\n\
         \x20 - target: /bin\n    copy: [{files: [../build/app]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    // Shipped elsewhere than where the loader looks: missing, and the error says so.
    ws.write(
        "other.yaml",
        "targets:\n\
         \x20 - target: /opt/nowhere\n    copy: [{files: [../build/libecdh.so]}]\n\
         \x20 - target: /bin\n    copy: [{files: [../build/app]}]\n",
    );
    ws.run("other.yaml", &[]).code(248).stderr(
        predicate::str::contains("the boms place it at /opt/nowhere/libecdh.so")
            .and(predicate::str::contains("--library-path"))
            .and(predicate::str::contains("--allow-missing")),
    );
}

#[test]
#[ignore = "needs root"]
fn a_musl_program_with_a_library_the_bom_ships_runs() {
    let ws = Ws::new();
    let build = ws.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let musl = |src: &str, out: &str, args: &[&str]| {
        let c = build.join(format!("{out}.c"));
        std::fs::write(&c, src).unwrap();
        let st = Command::new("musl-gcc")
            .arg(&c)
            .arg("-o")
            .arg(build.join(out))
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    };
    musl(
        "int ecdh(void) { return 3; }\n",
        "libecdh.so",
        &["-shared", "-fPIC"],
    );
    let l = format!("-L{}", build.display());
    musl(
        "#include <stdio.h>\nint ecdh(void); int main(void) { puts(\"ok\"); return ecdh() == 3 ? 0 : 1; }\n",
        "app",
        &[&l, "-lecdh"],
    );
    ws.write(
        "app.yaml",
        "targets:\n\
         \x20 - target: /lib\n    copy: [{files: [../build/libecdh.so]}]\n\
         \x20 - target: /bin\n    copy: [{files: [../build/app]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    let out = chroot_run(&ws.root(), "/bin/app");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

/// A sysroot holding copies of the host's loader, libc and `true`, each with a marker appended
/// (still valid ELF), linked the Debian way: `lib64/ld-linux-x86-64.so.2` is an *absolute* link.
fn marked_sysroot(ws: &Ws) -> PathBuf {
    let s = ws.path().join("inst/rootfs");
    let copy = |from: &str, to: &str| {
        let dest = s.join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let mut bytes = std::fs::read(from).unwrap();
        bytes.extend_from_slice(b"SYSROOT-MARKER");
        std::fs::write(&dest, bytes).unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    copy(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libc.so.6",
    );
    copy("/bin/true", "sbin/real-true");
    std::fs::create_dir_all(s.join("lib64")).unwrap();
    std::fs::create_dir_all(s.join("usr/bin")).unwrap();
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        s.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    symlink("/sbin/real-true", s.join("usr/bin/tool")).unwrap();
    s
}

fn marked(p: &Path) -> bool {
    std::fs::read(p).unwrap().ends_with(b"SYSROOT-MARKER")
}

// Defects 4 and 5: a relative --sysroot copies no library; absolute links are followed on the
// host.
#[test]
fn a_relative_sysroot_with_absolute_links_gives_the_sysroots_files() {
    let ws = Ws::new();
    marked_sysroot(&ws);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /usr/bin\n    copy: [{files: [/usr/bin/tool]}]\n",
    );
    ws.run("app.yaml", &["--sysroot", "rootfs", "--no-check"])
        .success();
    let r = ws.root();
    assert!(marked(&r.join("usr/bin/tool")), "the sysroot's program");
    assert!(
        marked(&r.join("lib/x86_64-linux-gnu/libc.so.6")),
        "its libc"
    );
    assert!(
        marked(&r.join("lib64/ld-linux-x86-64.so.2")),
        "the sysroot's loader, not the host's"
    );
}

// Defect 6: with a loader config, the host ld.so replaces Occlum's.
#[test]
fn the_configured_loader_wins_even_when_a_lone_library_comes_first() {
    let ws = Ws::new();
    let occlum = ws.path().join("occlum/glibc/lib");
    std::fs::create_dir_all(&occlum).unwrap();
    let mut ld = std::fs::read("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").unwrap();
    ld.extend_from_slice(b"OCCLUM-LOADER");
    std::fs::write(occlum.join("ld-linux-x86-64.so.2"), ld).unwrap();
    let config = ws.write(
        "loader.config",
        &format!(
            "{}/ld-linux-x86-64.so.2 {}:/lib/x86_64-linux-gnu\n",
            occlum.display(),
            occlum.display()
        ),
    );
    gcc(
        "int plugin(void) { return 1; }\n",
        &ws.path().join("plugins/libplugin.so"),
        &["-shared", "-fPIC"],
    );
    // The top bom is processed first: its lone library comes before any program.
    ws.write(
        "app.yaml",
        "includes: [prog.yaml]\ntargets:\n  - target: /opt/plugins\n    copy: [{dirs: [../plugins/]}]\n",
    );
    ws.write(
        "prog.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [/bin/true]}]\n",
    );
    ws.run(
        "app.yaml",
        &["--loader-config", config.to_str().unwrap(), "--no-check"],
    )
    .success();
    let got = std::fs::read(ws.root().join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert!(got.ends_with(b"OCCLUM-LOADER"), "the Occlum loader");
}

// Defect 13: a FIFO listed in `files` hangs the build forever; an unclosed wildcard exits 254.
#[test]
fn a_fifo_listed_as_a_file_is_refused_without_opening_it() {
    let ws = Ws::new();
    let fifo = ws.path().join("src/pipe");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [../src/pipe]}]\n",
    );
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut cmd = ws.cmd("app.yaml", extra);
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(waited < Duration::from_secs(20), "the run hangs on a FIFO");
            std::thread::sleep(Duration::from_millis(50));
            waited += Duration::from_millis(50);
        };
        assert_eq!(status.code(), Some(254));
    }
    assert!(!ws.root().exists());
}

#[test]
fn an_unclosed_wildcard_is_a_bom_error_with_its_position() {
    let ws = Ws::new();
    ws.write("src/a", "a");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{files: [\"../src/[ab\"]}]\n",
    );
    ws.run("app.yaml", &[])
        .code(253)
        .stderr(predicate::str::contains("app.yaml:3:"));
}
