//! Invariant 2: bad input changes nothing. Each class of error (SPEC B1 exit statuses), placed
//! after valid operations in the same bom, leaves a pre-existing image byte for byte unchanged.
//! Then a corpus of malformed YAML: each document gives 253 with `file:line:column` on stderr
//! and writes nothing.

use crate::common;

use crate::common::{Ws, gcc};
use crate::safety_support::{diff, exact_snapshot};
use std::path::Path;

/// Valid operations every bad bom starts with: a naive tool would write these first.
const VALID: &str = "  - target: /new
    mkdirs: [made]
    createlinks: [{src: app, linkname: newlink}]
    copy: [{from: ../src, files: [f], dirs: [d]}]
";

fn workspace() -> Ws {
    let ws = Ws::new();
    ws.write("src/f", "f");
    ws.write("src/d/g", "g");
    ws.write(
        "good.yaml",
        "targets:\n  - target: /bin\n    mkdirs: [dir]\n    createlinks: [{src: f, linkname: l}]\n    copy: [{from: ../src, files: [f], dirs: [d]}]\n",
    );
    ws.run("good.yaml", &[]).success();
    ws
}

/// Runs `bom` (after the valid prefix) and checks the exit code and that nothing changed.
fn refused(ws: &Ws, name: &str, bad_target: &str, code: i32) {
    let bom = format!("targets:\n{VALID}{bad_target}");
    ws.write(&format!("{name}.yaml"), &bom);
    let before = exact_snapshot(ws.path());
    let out = ws.cmd(&format!("{name}.yaml"), &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{name}:\n{bom}\n{stderr}");
    assert!(!stderr.trim().is_empty(), "{name}: no message");
    let after = exact_snapshot(ws.path());
    assert!(before == after, "{name}: changed {}", diff(&before, &after));
}

#[test]
fn each_error_class_leaves_the_image_unchanged() {
    let ws = workspace();
    let lib = ws.path().join("lib/libgone.so");
    gcc("int gone(void){return 1;}", &lib, &["-shared", "-fPIC"]);
    let libdir = lib.parent().unwrap().to_str().unwrap().to_string();
    gcc(
        "int gone(void); int main(void){return gone();}",
        &ws.path().join("bin/app"),
        &[&format!("-L{libdir}"), "-lgone"],
    );
    std::fs::remove_file(&lib).unwrap();
    ws.write("cycle_a.yaml", "includes: [cycle_b.yaml]\n");
    ws.write("cycle_b.yaml", "includes: [cycle_a.yaml]\n");

    let t = |rest: &str| format!("  - target: /bad\n{rest}");
    let cases: Vec<(&str, String, i32)> = vec![
        ("schema", "  - mkdirs: [a]\n".into(), 253),
        (
            "escape",
            t("    copy: [{files: [{name: ../src/f, rename: ../../../x}]}]\n"),
            253,
        ),
        (
            "undefined_var",
            t("    copy: [{files: [../src/$NOPE_X]}]\n"),
            253,
        ),
        (
            "missing_source",
            t("    copy: [{files: [../src/nope]}]\n"),
            255,
        ),
        ("missing_dir", t("    copy: [{dirs: [../src/nope]}]\n"), 255),
        (
            "hash",
            t(&format!(
                "    copy: [{{files: [{{name: ../src/f, hash: {}}}]}}]\n",
                "0".repeat(64)
            )),
            249,
        ),
        (
            "missing_library",
            t("    copy: [{files: [../bin/app]}]\n"),
            248,
        ),
        ("dir_over_file", "  - target: /bin/f/sub\n".into(), 252),
        (
            "link_over_dir",
            "  - target: /bin\n    createlinks: [{src: x, linkname: dir}]\n".into(),
            251,
        ),
        (
            "file_over_dir",
            "  - target: /bin\n    copy: [{files: [{name: ../src/f, rename: dir}]}]\n".into(),
            254,
        ),
    ];
    for (name, bad, code) in &cases {
        refused(&ws, name, bad, *code);
    }

    // Errors found while loading boms rather than targets.
    for (name, bom, code) in [
        ("syntax", format!("targets:\n{VALID}  - target: [\n"), 253),
        (
            "cycle",
            format!("includes: [cycle_a.yaml]\ntargets:\n{VALID}"),
            253,
        ),
        (
            "no_include",
            format!("includes: [nope.yaml]\ntargets:\n{VALID}"),
            255,
        ),
    ] {
        ws.write(&format!("{name}.yaml"), &bom);
        let before = exact_snapshot(ws.path());
        let out = ws.cmd(&format!("{name}.yaml"), &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert_eq!(before, exact_snapshot(ws.path()), "{name}");
    }

    // Unreadable bom and a usage error.
    let before = exact_snapshot(ws.path());
    ws.cmd("absent.yaml", &[]).output().unwrap();
    let absent = ws.cmd("absent.yaml", &[]).status().unwrap().code();
    let usage = ws
        .cmd("good.yaml", &["--no-such-flag"])
        .status()
        .unwrap()
        .code();
    assert_eq!((absent, usage), (Some(255), Some(1)));
    assert_eq!(before, exact_snapshot(ws.path()));
}

// ---- Malformed YAML ----------------------------------------------------------------------------

fn deeply_nested(depth: usize) -> Vec<u8> {
    format!("targets: {}{}\n", "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

fn huge_document() -> Vec<u8> {
    // 200 000 lines, the last one broken: the error must still point at it.
    let mut s = String::from("targets:\n  - target: /t\n    mkdirs:\n");
    for i in 0..200_000 {
        s.push_str(&format!("      - d{i}\n"));
    }
    s.push_str("    copy: [{files: [a}]\n");
    s.into_bytes()
}

fn garbage(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Documents without any node, for which no line and column exist.
const EMPTY: [&str; 3] = ["empty", "only_document_marker", "only_comment"];

/// (name, document). Every one must be refused with 253 and a location.
fn malformed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let s = |t: &str| t.as_bytes().to_vec();
    vec![
        ("empty", vec![]),
        ("only_document_marker", s("---\n")),
        ("only_comment", s("# nothing\n")),
        ("unclosed_flow", s("targets: [{target: /a\n")),
        ("unclosed_quote", s("targets:\n  - target: \"/a\n")),
        (
            "bad_indent",
            s("targets:\n  - target: /a\n   mkdirs: [x]\n"),
        ),
        ("tab_indent", s("targets:\n\t- target: /a\n")),
        (
            "tab_in_mapping",
            s("targets:\n  - target: /a\n  \tmkdirs: [x]\n"),
        ),
        (
            "duplicate_top_key",
            s("targets: []\ntargets: [{target: /a}]\n"),
        ),
        (
            "duplicate_inner_key",
            s("targets:\n  - target: /a\n    target: /b\n"),
        ),
        ("targets_scalar", s("targets: 5\n")),
        ("targets_map", s("targets: {target: /a}\n")),
        ("target_list", s("targets:\n  - target: [a, b]\n")),
        (
            "mkdirs_map",
            s("targets:\n  - target: /a\n    mkdirs: {a: b}\n"),
        ),
        ("missing_target", s("targets:\n  - mkdirs: [x]\n")),
        (
            "link_without_src",
            s("targets:\n  - target: /a\n    createlinks: [{linkname: l}]\n"),
        ),
        (
            "files_map_without_name",
            s("targets:\n  - target: /a\n    copy: [{files: [{nam: x}]}]\n"),
        ),
        (
            "autodep_string",
            s("targets:\n  - target: /a\n    copy: [{files: [{name: x, autodep: \"false\"}]}]\n"),
        ),
        (
            "autodep_no",
            s("targets:\n  - target: /a\n    copy: [{files: [{name: x, autodep: no}]}]\n"),
        ),
        (
            "empty_copy_entry",
            s("targets:\n  - target: /a\n    copy: [{}]\n"),
        ),
        ("includes_scalar_map", s("includes: {a: b}\n")),
        ("top_level_list", s("- a\n- b\n")),
        ("top_level_scalar", s("hello\n")),
        ("anchor_undefined", s("targets: *nope\n")),
        ("two_documents", s("targets: []\n---\ntargets: []\n")),
        ("nul_bytes", s("targets:\n  - target: /a\0\n")),
        ("latin1", b"targets:\n  - target: /caf\xe9\n".to_vec()),
        ("utf16_bom", b"\xff\xfet\x00a\x00".to_vec()),
        ("binary_garbage", garbage(4096)),
        ("deeply_nested", deeply_nested(100_000)),
        ("huge", huge_document()),
    ]
}

fn has_location(stderr: &str) -> bool {
    // "...bom.yaml:LINE:COL"
    stderr.split("bom.yaml:").skip(1).any(|rest| {
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let col = parts.next().unwrap_or("");
        !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
            && !col.is_empty()
            && col.bytes().all(|b| b.is_ascii_digit())
    })
}

#[test]
fn malformed_yaml_is_253_with_a_location_and_writes_nothing() {
    let ws = Ws::new();
    let mut failures = vec![];
    for (name, doc) in malformed_corpus() {
        let path = ws.path().join("bom.yaml");
        std::fs::write(&path, &doc).unwrap();
        let out = ws.cmd("bom.yaml", &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let wrote = Path::new(&ws.root()).exists();
        // A document with no content has no position to point at; the file name must do.
        let located =
            has_location(&stderr) || (EMPTY.contains(&name) && stderr.contains("bom.yaml"));
        if code != Some(253) || !located || wrote {
            let head: String = stderr.chars().take(300).collect();
            failures.push(format!("{name}: exit {code:?}, wrote {wrote}: {head}"));
        }
        assert!(
            stderr.len() < 64 * 1024,
            "{name}: stderr of {} bytes",
            stderr.len()
        );
        if wrote {
            std::fs::remove_dir_all(ws.root()).unwrap();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_unreadable_bom_is_255_naming_the_file() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("adir.yaml")).unwrap();
    let out = ws.cmd("adir.yaml", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(stderr.contains("adir.yaml"), "{stderr}");
    assert!(!ws.root().exists());
}

/// SPEC A1 (kept by B1): a `files` item must be a string or a map with `name`; an int item is a
/// schema error (253). The tool takes `1` as the file name "1" and fails later with 255.
#[test]
fn an_int_files_item_is_a_schema_error() {
    let ws = Ws::new();
    ws.write(
        "bom.yaml",
        "targets:\n  - target: /a\n    copy: [{files: [1]}]\n",
    );
    let out = ws.cmd("bom.yaml", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(253), "{stderr}");
    assert!(has_location(&stderr), "{stderr}");
}

/// Control characters of bom values and file names never reach the terminal
/// raw: an ESC in a missing source's name (an error on stderr) and a newline
/// in a real file's name (the dry-run plan on stdout) are spelled out.
#[test]
fn control_characters_in_names_are_escaped_in_output() {
    let ws = Ws::new();
    ws.write("src/new\nline", "x");
    // YAML double quotes: \e is ESC, \n a newline.
    ws.write(
        "esc.yaml",
        "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [\"gone\\e]0;owned\\a\\ec\"]}]\n",
    );
    let out = ws.cmd("esc.yaml", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        !out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07),
        "{out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r"gone\u{1b}]0;owned\u{7}\u{1b}c"),
        "{stderr}"
    );

    ws.write(
        "nl.yaml",
        "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [\"new\\nline\"]}]\n",
    );
    let out = ws.cmd("nl.yaml", &["--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["mkdir /bin", r"copy ../src/new\nline -> /bin/new\nline"],
        "{stdout}"
    );

    // The same name missing: the error's one line stays one line.
    std::fs::remove_file(ws.path().join("src/new\nline")).unwrap();
    let out = ws.cmd("nl.yaml", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r"new\nline"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `copy_bom deps ... | head -1`: the reader goes away after one line and
/// copy_bom ends quietly with success, without a panic message (before: exit
/// 101, "failed printing to stdout").
#[test]
fn a_closed_stdout_ends_deps_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for format in [&[][..], &["--json"][..]] {
        // About 1 MB of output: far more than a pipe holds.
        let files = vec!["/bin/ls"; 3000];
        let mut child = common::copy_bom()
            .arg("deps")
            .args(format)
            .args(&files)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reading end is closed here, as `head -1` does.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format:?}: {stderr}");
        assert!(stderr.is_empty(), "{format:?}: {stderr}");
    }
}

/// `deps` on a file that does not exist, a FIFO or a device: exit 255 (a
/// source that cannot be used, not a usage error), saying what and why, and
/// never opening the FIFO (which would wait for a writer forever).
#[test]
fn deps_refuses_missing_files_fifos_and_devices() {
    let ws = Ws::new();
    let fifo = ws.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let missing = ws.path().join("missing");
    let cases = [
        (missing.as_path(), "No such file or directory"),
        (fifo.as_path(), "not a regular file (a FIFO)"),
        (
            Path::new("/dev/zero"),
            "not a regular file (a character device)",
        ),
    ];
    for (file, why) in cases {
        let out = common::output_within(common::copy_bom().arg("deps").arg(file), 20);
        assert_eq!(out.status.code(), Some(255), "{file:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(why), "{file:?}: {stderr}");
    }
    // Among good files: the good one is analysed, the status is still 255.
    let out = common::output_within(common::copy_bom().arg("deps").arg("/bin/ls").arg(&fifo), 20);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("libc.so.6 => "));
}

/// `deps` on a file the user cannot read (here: in a dir `nobody` cannot
/// enter) is 255 with the OS reason, not a usage error.
#[test]
#[ignore = "needs root"]
fn deps_on_an_unreadable_file_is_255_with_the_reason() {
    use std::os::unix::process::CommandExt;
    let ws = Ws::new();
    let file = ws.path().join("private/ls");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::copy("/bin/ls", &file).unwrap();
    std::fs::set_permissions(
        file.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = common::output_within(
        common::copy_bom()
            .arg("deps")
            .arg(&file)
            .uid(65534)
            .gid(65534),
        20,
    );
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}
