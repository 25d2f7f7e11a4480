//! Files modified by patchelf (defect 11): patchelf prepends a segment that
//! holds the new `.dynstr`, which then runs on into the next PT_LOAD. The
//! libraries `copy_bom deps` reports must be the real loader's (ldd).

use std::path::{Path, PathBuf};

use crate::ldso_support::*;

/// A non-PIE program exporting enough symbols (`-rdynamic`) that its
/// string table, once moved by patchelf, crosses a page and so a segment
/// boundary; it needs `libpe.so` from `d/lib` (RPATH).
fn fixture(d: &Path) -> PathBuf {
    lib(&d.join("lib/libpe.so"), &func("pe", &[]), &[]);
    let mut src: String = (0..120)
        .map(|i| format!("int an_exported_function_with_a_long_name_{i}(void) {{ return {i}; }}\n"))
        .collect();
    src.push_str(&main_calling(&["pe"]));
    let prog = d.join("prog");
    exe(
        &prog,
        &src,
        &[
            "-no-pie",
            "-rdynamic",
            &format!("-L{}", d.join("lib").display()),
            "-lpe",
            &format!("-Wl,--disable-new-dtags,-rpath,{}", d.join("lib").display()),
        ],
    );
    prog
}

/// `copy_bom deps` on the patched file lists exactly what ldd lists. ldd
/// runs its own loader, so it shows the program's interpreter as
/// `INTERP => /lib64/ld-linux-x86-64.so.2`: that line is left out (`interp`).
fn same_as_ldd(file: &Path) -> std::collections::BTreeSet<(String, String)> {
    same_as_ldd_but(file, None)
}

fn same_as_ldd_but(
    file: &Path,
    interp: Option<&str>,
) -> std::collections::BTreeSet<(String, String)> {
    let mut truth = ldd(file, &[], None).expect("ldd accepts the patched file");
    truth.retain(|(n, _)| Some(n.as_str()) != interp);
    let (code, text) = deps_cli(&[], file, None);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cli_pairs_like(&text, &truth), truth, "ours:\n{text}");
    truth
}

#[test]
fn set_rpath_moves_the_string_table_across_segments() {
    let (_t, d) = tmp();
    let prog = fixture(&d);
    let other = d.join("other");
    lib(&other.join("libpe.so"), &func("pe", &[]), &[]);
    patchelf(
        &prog,
        &["--set-rpath", &format!("{}:/nowhere", other.display())],
    );
    let truth = same_as_ldd(&prog);
    assert!(
        truth.contains(&(
            "libpe.so".into(),
            other.join("libpe.so").display().to_string()
        )),
        "{truth:?}"
    );
}

#[test]
fn add_needed() {
    let (_t, d) = tmp();
    let prog = fixture(&d);
    patchelf(&prog, &["--add-needed", "libm.so.6"]);
    let truth = same_as_ldd(&prog);
    assert!(truth.iter().any(|(n, _)| n == "libm.so.6"), "{truth:?}");
}

#[test]
fn replace_needed() {
    let (_t, d) = tmp();
    let prog = fixture(&d);
    lib(&d.join("lib/libpe2.so"), &func("pe", &[]), &[]);
    patchelf(&prog, &["--replace-needed", "libpe.so", "libpe2.so"]);
    let truth = same_as_ldd(&prog);
    assert!(truth.iter().any(|(n, _)| n == "libpe2.so"), "{truth:?}");
}

#[test]
fn set_interpreter_to_a_long_path() {
    let (_t, d) = tmp();
    let prog = fixture(&d);
    // A long interpreter path that is a real loader, so the program still runs.
    let long = d.join("x".repeat(200)).join("ld-linux-x86-64.so.2");
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/lib64/ld-linux-x86-64.so.2", &long).unwrap();
    patchelf(&prog, &["--set-interpreter", long.to_str().unwrap()]);
    // Moving the interpreter alone may leave .dynstr in place; a new RPATH
    // as well moves it.
    patchelf(
        &prog,
        &["--set-rpath", &d.join("lib").display().to_string()],
    );
    assert!(
        std::process::Command::new(&prog)
            .status()
            .unwrap()
            .success()
    );
    same_as_ldd_but(&prog, long.to_str());
    let (_, text) = deps_cli(&[], &prog, None);
    assert!(
        text.lines().any(|l| l.trim() == long.display().to_string()),
        "the interpreter is the patched one:\n{text}"
    );
}
