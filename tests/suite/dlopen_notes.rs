//! `.note.dlopen` (owner `FDO`, type `0x407c0c0a`, a JSON array of sonames with a feature and a
//! priority): a `required` soname is a dependency like DT_NEEDED, a `recommended` one is added by
//! `--implicit` and named by `check`, a `suggested` one is only listed by `deps`. Debian 12's
//! binaries carry no such note yet, so the fixture writes one by hand; `readelf -n` (binutils)
//! confirms the note is what the specification describes, and the truth about the image is the
//! program run in a chroot: it dlopens its required library and reports the recommended one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check_support::{Image, cc, shared};
use crate::common::{Ws, copy_bom};

const PROGRAM: &str = r#"#include <dlfcn.h>
#include <stdio.h>
#define JSON "[{\"soname\":[\"libreq.so.1\"],\"feature\":\"req\",\"description\":\"the core\",\"priority\":\"required\"},{\"soname\":[\"libsug.so.1\"],\"feature\":\"sug\",\"priority\":\"suggested\"},{\"soname\":[\"libmissing.so.9\",\"librec.so.1\"],\"feature\":\"rec\"}]"
struct note { unsigned namesz, descsz, type; char name[4]; char desc[(sizeof(JSON) + 3) / 4 * 4]; };
__attribute__((section(".note.dlopen"), used, aligned(4)))
static const struct note dlopen_note = { 4, sizeof(JSON), 0x407c0c0a, "FDO", JSON };
int main(void) {
    void *h = dlopen("libreq.so.1", RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    int (*f)(void) = (int (*)(void))dlsym(h, "req");
    printf("%d\n", f());
    puts(dlopen("librec.so.1", RTLD_NOW) ? "rec" : "no rec");
    return 0;
}
"#;

/// The program in `dir/bin` with RUNPATH `$ORIGIN/../lib`, where its three libraries are.
fn fixture(dir: &Path) -> PathBuf {
    for name in ["req", "rec", "sug"] {
        let lib = dir.join(format!("lib/lib{name}.so.1"));
        shared(
            "gcc",
            &format!("int {name}(void) {{ return 42; }}\n"),
            &lib,
            &[],
        );
    }
    let prog = dir.join("bin/prog");
    cc(
        "gcc",
        PROGRAM,
        &prog,
        &["-Wl,-rpath,$ORIGIN/../lib", "-ldl"],
    );
    prog
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(ws: &Ws, prog: &Path, extra: &[&str]) {
    let bom = format!(
        "targets:\n  - target: /bin\n    copy:\n      - files: [{}]\n",
        prog.display()
    );
    ws.write("dl.yaml", &bom);
    ws.run("dl.yaml", extra).success();
}

fn check(root: &Path) -> std::process::Output {
    copy_bom()
        .args(["check", "--root"])
        .arg(root)
        .output()
        .unwrap()
}

#[test]
fn the_note_is_what_readelf_shows_and_deps_lists_every_entry() {
    let ws = Ws::new();
    let prog = fixture(ws.path());
    let readelf = Command::new("readelf")
        .arg("-nW")
        .arg(&prog)
        .output()
        .unwrap();
    let notes = stdout(&readelf);
    assert!(
        notes.contains("FDO") && notes.contains("0x407c0c0a"),
        "readelf -n shows no FDO note of type 0x407c0c0a:\n{notes}"
    );
    let out = copy_bom().arg("deps").arg(&prog).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lib = ws.path().join("bin/../lib/libreq.so.1");
    assert!(
        text.contains(&format!(
            "libreq.so.1 => {} (dlopen, required)",
            lib.display()
        )),
        "{text}"
    );
    for line in [
        "dlopen (required) libreq.so.1: req (the core)",
        "dlopen (suggested) libsug.so.1: sug",
        "dlopen (recommended) libmissing.so.9|librec.so.1: rec",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(
        !text.contains("libsug.so.1 =>"),
        "suggested is not loaded:\n{text}"
    );
}

#[test]
#[ignore = "needs root: chroot"]
fn required_is_a_dependency_and_implicit_adds_the_recommended_one() {
    let ws = Ws::new();
    let prog = fixture(ws.path());
    // Plain: the required library is copied, the recommended one is named by check.
    build(&ws, &prog, &[]);
    let img = Image::new(ws.root());
    assert!(img.exists("/lib/libreq.so.1"));
    assert!(!img.exists("/lib/librec.so.1") && !img.exists("/lib/libsug.so.1"));
    let run = img.run("/bin/prog", &[], true);
    assert_eq!(stdout(&run), "42\nno rec\n", "{run:?}");
    let out = check(&img.root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.lines().any(
            |l| l.starts_with("implied: libmissing.so.9|librec.so.1 is missing")
                && l.contains("/bin/prog")
        ),
        "{text}"
    );
    // Without the required library the program fails, and check says so.
    std::fs::remove_file(img.host("/lib/libreq.so.1")).unwrap();
    let run = img.run("/bin/prog", &[], true);
    assert!(!run.status.success(), "{run:?}");
    let out = check(&img.root);
    assert_eq!(out.status.code(), Some(248), "{out:?}");
    assert!(
        stdout(&out).contains("missing libreq.so.1 (needed by /bin/prog"),
        "{out:?}"
    );

    // --implicit: the recommended library too (the first soname found of the entry).
    let ws = Ws::new();
    let prog = fixture(ws.path());
    build(&ws, &prog, &["--implicit"]);
    let img = Image::new(ws.root());
    assert!(img.exists("/lib/librec.so.1"));
    assert!(!img.exists("/lib/libsug.so.1"), "suggested is never added");
    let run = img.run("/bin/prog", &[], true);
    assert_eq!(stdout(&run), "42\nrec\n", "{run:?}");
    let out = check(&img.root);
    assert!(!stdout(&out).contains("implied:"), "{out:?}");
}
