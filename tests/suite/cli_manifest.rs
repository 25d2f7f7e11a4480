//! `--manifest FILE` against the image actually written (walked, hashed with
//! sha2 here), and the incremental rules of reruns (SPEC B1: like `rsync -a`).

use crate::common::{Ws, gcc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const LIB: &str = "int foo(void) { return 42; }\n";
const APP: &str = "int foo(void);\nint main(void) { return foo() - 42; }\n";

/// A bom with every kind of entry: a listed ELF program with a private
/// library (RPATH), a plain file, a dir copy, mkdirs and a link. Returns the
/// private library's dir.
fn workspace(ws: &Ws) -> PathBuf {
    let libdir = ws.path().join("opt/mylib");
    gcc(LIB, &libdir.join("libfoo.so"), &["-shared", "-fPIC"]);
    gcc(
        APP,
        &ws.path().join("src/app"),
        &[
            &format!("-L{}", libdir.display()),
            "-lfoo",
            &format!("-Wl,-rpath,{}", libdir.display()),
        ],
    );
    ws.write("src/conf.txt", "conf\n");
    ws.write("src/data/a.txt", "a\n");
    ws.write("src/data/sub/b.txt", "b\n");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    mkdirs: [/var/log]\n    createlinks: [{src: app, linkname: app-link}]\n    copy:\n      - from: ../src\n        files:\n          - app\n          - conf.txt\n        dirs: [data]\n",
    );
    libdir
}

fn sha256_hex(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_manifest(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["paths"]
        .as_array()
        .unwrap()
        .clone()
}

/// The records keyed by image path relative to the root (no leading `/`).
fn by_path(records: &[serde_json::Value]) -> BTreeMap<PathBuf, serde_json::Value> {
    records
        .iter()
        .map(|r| {
            let p = r["path"].as_str().unwrap();
            (PathBuf::from(p.trim_start_matches('/')), r.clone())
        })
        .collect()
}

/// Every path of the image except the root itself, relative to the root.
fn walk(root: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

/// Builds the workspace's image with a manifest; returns the records keyed
/// by relative path, checked to be sorted by path without duplicates.
fn build_with_manifest(ws: &Ws) -> BTreeMap<PathBuf, serde_json::Value> {
    let manifest = ws.path().join("manifest.json");
    ws.run("app.yaml", &["--manifest", manifest.to_str().unwrap()])
        .success();
    let records = read_manifest(&manifest);
    let paths: Vec<PathBuf> = records
        .iter()
        .map(|r| PathBuf::from(r["path"].as_str().unwrap()))
        .collect();
    assert!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "records sorted by path, no duplicates: {paths:?}"
    );
    by_path(&records)
}

#[test]
fn manifest_records_match_the_image() {
    let ws = Ws::new();
    workspace(&ws);
    let recs = build_with_manifest(&ws);
    let root = ws.root();
    for (rel, r) in &recs {
        let host = root.join(rel);
        let meta = host.symlink_metadata().unwrap();
        assert_eq!(
            r["mode"].as_u64(),
            Some(u64::from(meta.mode() & 0o7777)),
            "{rel:?}"
        );
        match r["kind"].as_str().unwrap() {
            "file" => {
                assert!(meta.is_file(), "{rel:?}");
                assert_eq!(r["sha256"].as_str(), Some(&*sha256_hex(&host)), "{rel:?}");
                assert_eq!(r["size"].as_u64(), Some(meta.len()), "{rel:?}");
            }
            "dir" => assert!(meta.is_dir(), "{rel:?}"),
            "link" => {
                assert!(meta.file_type().is_symlink(), "{rel:?}");
                assert_eq!(
                    r["source"].as_str().map(PathBuf::from),
                    Some(std::fs::read_link(&host).unwrap()),
                    "{rel:?}"
                );
            }
            other => panic!("unknown kind {other} for {rel:?}"),
        }
    }
    // Every file and link of the image, and every dir the bom names.
    let unrecorded: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| !recs.contains_key(p) && !root.join(p).is_dir())
        .collect();
    assert!(unrecorded.is_empty(), "not in the manifest: {unrecorded:?}");
    for d in ["bin", "bin/data", "bin/data/sub", "var/log"] {
        assert_eq!(recs[Path::new(d)]["kind"], "dir", "{d}");
    }
}

#[test]
fn manifest_has_a_record_for_every_path_of_the_image() {
    let ws = Ws::new();
    workspace(&ws);
    let recs = build_with_manifest(&ws);
    let listed: BTreeSet<PathBuf> = recs.keys().cloned().collect();
    assert_eq!(walk(&ws.root()), listed);
}

#[test]
fn manifest_says_why_each_path_is_there() {
    let ws = Ws::new();
    let libdir = workspace(&ws);
    let manifest = ws.path().join("manifest.json");
    ws.run("app.yaml", &["--manifest", manifest.to_str().unwrap()])
        .success();
    let recs = by_path(&read_manifest(&manifest));
    let why = |p: &str| recs[Path::new(p)]["why"].as_str().unwrap().to_string();
    // Lines of app.yaml: 3 mkdirs, 4 createlinks, 8 app, 9 conf.txt, 10 dirs.
    for (path, line) in [
        ("var/log", 3),
        ("bin/app-link", 4),
        ("bin/app", 8),
        ("bin/conf.txt", 9),
        ("bin/data", 10),
        ("bin/data/sub/b.txt", 10),
    ] {
        let w = why(path);
        assert!(w.contains(&format!("app.yaml:{line}:")), "{path}: {w}");
    }
    let lib = libdir.join("libfoo.so");
    let lib_rel = lib.strip_prefix("/").unwrap().to_str().unwrap();
    // The requester may be spelled unnormalised (`inst/../src/app`).
    let w = why(lib_rel);
    let needer = w
        .strip_prefix("library libfoo.so needed by ")
        .unwrap_or_else(|| panic!("{w}"));
    assert_eq!(
        std::fs::canonicalize(needer).unwrap(),
        std::fs::canonicalize(ws.path().join("src/app")).unwrap()
    );
    assert_eq!(
        recs[Path::new(lib_rel)]["source"].as_str(),
        lib.to_str(),
        "a library's source is the host file"
    );
    let libc = recs
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|n| n == "libc.so.6"))
        .map(|(_, r)| r["why"].as_str().unwrap().to_string())
        .unwrap();
    assert!(libc.starts_with("library libc.so.6 needed by "), "{libc}");
}

#[test]
fn manifests_of_two_runs_are_byte_identical() {
    let ws = Ws::new();
    workspace(&ws);
    let m1 = ws.path().join("m1.json");
    let m2 = ws.path().join("m2.json");
    let m3 = ws.path().join("m3.json");
    ws.run("app.yaml", &["--manifest", m1.to_str().unwrap()])
        .success();
    ws.run("app.yaml", &["--manifest", m2.to_str().unwrap()])
        .success();
    assert_eq!(std::fs::read(&m1).unwrap(), std::fs::read(&m2).unwrap());
    std::fs::remove_dir_all(ws.root()).unwrap();
    ws.run("app.yaml", &["--manifest", m3.to_str().unwrap()])
        .success();
    assert_eq!(
        std::fs::read(&m1).unwrap(),
        std::fs::read(&m3).unwrap(),
        "a fresh image gives the same manifest"
    );
}

/// A bom of two plain files (no libraries, so the counts are the files').
fn plain_workspace(ws: &Ws) {
    ws.write("src/a", "a");
    ws.write("src/b", "b");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /x\n    copy: [{from: ../src, files: [a, b]}]\n",
    );
}

fn inode(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

#[test]
fn touched_source_is_recopied_and_unchanged_one_is_not() {
    let ws = Ws::new();
    plain_workspace(&ws);
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicates::str::contains("2 files copied, 0 unchanged"));
    let (a, b) = (ws.root().join("x/a"), ws.root().join("x/b"));
    let (ino_a, ino_b) = (inode(&a), inode(&b));
    // Same size, newer mtime: a quick check by size alone would miss it.
    let later = filetime::FileTime::from_unix_time(2_000_000_000, 0);
    std::fs::write(ws.path().join("src/a"), "A").unwrap();
    filetime::set_file_mtime(ws.path().join("src/a"), later).unwrap();
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicates::str::contains("1 files copied, 1 unchanged"));
    assert_eq!(ws.image_file("x/a"), "A");
    assert_ne!(inode(&a), ino_a, "replaced by rename");
    assert_eq!(inode(&b), ino_b, "the unchanged file is left alone");
    assert_eq!(
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(&a).unwrap()),
        later
    );
}

#[test]
fn changed_mode_of_a_source_is_applied_on_rerun() {
    let ws = Ws::new();
    plain_workspace(&ws);
    ws.run("app.yaml", &[]).success();
    let src = ws.path().join("src/a");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    ws.run("app.yaml", &[]).success();
    let mode = std::fs::metadata(ws.root().join("x/a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640, "rsync -a re-applies permissions");
}

#[test]
fn deleted_image_file_is_restored_on_rerun() {
    let ws = Ws::new();
    plain_workspace(&ws);
    ws.run("app.yaml", &[]).success();
    std::fs::remove_file(ws.root().join("x/b")).unwrap();
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicates::str::contains("1 files copied, 1 unchanged"));
    assert_eq!(ws.image_file("x/b"), "b");
}

#[test]
fn quick_check_compares_size_and_mtime_with_the_image_file() {
    // rsync's quick check: size and mtime equal means unchanged, even when
    // the bytes differ. This pins the documented rule (SPEC B1).
    let ws = Ws::new();
    plain_workspace(&ws);
    ws.run("app.yaml", &[]).success();
    let dest = ws.root().join("x/a");
    let mtime = filetime::FileTime::from_last_modification_time(&std::fs::metadata(&dest).unwrap());
    std::fs::write(&dest, "Z").unwrap();
    filetime::set_file_mtime(&dest, mtime).unwrap();
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicates::str::contains("0 files copied, 2 unchanged"));
    assert_eq!(ws.image_file("x/a"), "Z"); // A different mtime in the image is enough to recopy it.
    let other = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_file_mtime(&dest, other).unwrap();
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicates::str::contains("1 files copied, 1 unchanged"));
    assert_eq!(ws.image_file("x/a"), "a");
}

/// The manifest's digest is the image's (as `copy_bom digest` and the Python reference of
/// README.md compute it); `--digest` shows it in the summary, which has none by default.
#[test]
fn manifest_and_summary_carry_the_image_digest() {
    let ws = Ws::new();
    workspace(&ws);
    let manifest = ws.path().join("manifest.json");
    let out = ws
        .run("app.yaml", &["--manifest", manifest.to_str().unwrap()])
        .success();
    let text = std::fs::read_to_string(&manifest).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["digest", "paths"]);
    let digest = v["digest"].as_str().unwrap();
    assert_eq!(digest, crate::digest::digest(&ws.root()));
    assert_eq!(digest, crate::digest::python_digest(&ws.root()));
    let summary = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        summary.ends_with(&format!(", image {digest}\n")),
        "{summary}"
    );

    let out = ws.run("app.yaml", &[]).success();
    let summary = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(!summary.contains("sha256:"), "{summary}");
    let out = ws.run("app.yaml", &["--digest"]).success();
    let summary = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        summary.ends_with(&format!(", image {digest}\n")),
        "{summary}"
    );
}
