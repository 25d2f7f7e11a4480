//! The main job end to end: every schema element and rule of SPEC B1/B2,
//! through the real binary, in temporary workspaces.

use crate::common::{Ws, copy_bom, snapshot};
use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn files_dirs_links_mkdirs_and_rename() {
    let ws = Ws::new();
    ws.write("src/app", "app");
    ws.write("src/data/a.txt", "a");
    ws.write("src/data/sub/b.txt", "b");
    ws.write(
        "app.yaml",
        r#"
targets:
  - target: /bin
    mkdirs: [cache, /var/log]
    createlinks:
      - src: app
        linkname: app-link
    copy:
      - from: ../src
        files:
          - app
          - name: app
            rename: renamed
      - dirs: [../src/data]
  - target: /opt
    copy:
      - dirs: [../src/data/]
"#,
    );
    ws.run("app.yaml", &[]).success();
    let r = ws.root();
    assert_eq!(ws.image_file("bin/app"), "app");
    assert_eq!(ws.image_file("bin/renamed"), "app");
    assert_eq!(
        std::fs::read_link(r.join("bin/app-link")).unwrap().to_str(),
        Some("app")
    );
    assert!(r.join("bin/cache").is_dir());
    assert!(
        r.join("var/log").is_dir(),
        "absolute mkdirs are taken inside the root"
    );
    // No trailing slash: the dir itself; trailing slash: its contents.
    assert_eq!(ws.image_file("bin/data/sub/b.txt"), "b");
    assert_eq!(ws.image_file("opt/a.txt"), "a");
    assert_eq!(ws.image_file("opt/sub/b.txt"), "b");
}

#[test]
fn include_order_and_dedup_across_three_boms() {
    let ws = Ws::new();
    for n in ["top", "a", "b", "c"] {
        ws.write(&format!("src/{n}/x"), n);
    }
    // top→[a,b], a→[c], b→[c] gives top,a,b,c: the last copy of /out/x is c's.
    ws.write("top.yaml", "includes: [a.yaml, b.yaml]\ntargets:\n  - target: /out\n    copy: [{from: ../src/top, files: [x]}]\n");
    ws.write("a.yaml", "includes: [c.yaml]\ntargets:\n  - target: /out\n    copy: [{from: ../src/a, files: [x]}]\n    createlinks: [{src: from-a, linkname: l}]\n");
    ws.write("b.yaml", "includes: [c.yaml]\ntargets:\n  - target: /out\n    copy: [{from: ../src/b, files: [x]}]\n");
    ws.write(
        "c.yaml",
        "targets:\n  - target: /out\n    copy: [{from: ../src/c, files: [x]}]\n",
    );
    ws.run("top.yaml", &[]).success();
    assert_eq!(ws.image_file("out/x"), "c");
    assert_eq!(
        std::fs::read_link(ws.root().join("out/l"))
            .unwrap()
            .to_str(),
        Some("from-a")
    );
    // The dry-run plan shows one copy of /out/x, from c.
    let out = ws
        .run("top.yaml", &["--dry-run"])
        .success()
        .get_output()
        .stdout
        .clone();
    let plan = String::from_utf8(out).unwrap();
    let copies: Vec<_> = plan
        .lines()
        .filter(|l| l.starts_with("copy ") && l.ends_with("/out/x"))
        .collect();
    assert_eq!(copies.len(), 1, "{plan}");
    assert!(copies[0].contains("src/c/x"), "{plan}");
}

#[test]
fn include_dirs_in_order_and_the_embedded_base() {
    let ws = Ws::new();
    ws.write("inc1/t.yaml", "targets: [{target: /one}]\n");
    ws.write("inc2/t.yaml", "targets: [{target: /two}]\n");
    ws.write("app.yaml", "includes: [t.yaml, base.yaml]\n");
    ws.run("app.yaml", &["--include-dir", "../inc1", "../inc2"])
        .success();
    assert!(ws.root().join("one").is_dir());
    assert!(!ws.root().join("two").exists());
    for d in [
        "bin", "dev", "etc", "host", "lib", "lib64", "opt", "proc", "root", "sys", "tmp", "sbin",
        "ext2",
    ] {
        assert!(ws.root().join(d).is_dir(), "base.yaml should create /{d}");
    }
    // -i is accepted, as the original's docs advertise.
    let ws2 = Ws::new();
    ws2.write("inc/t.yaml", "targets: [{target: /i}]\n");
    ws2.write("app.yaml", "includes: [t.yaml]\n");
    ws2.run("app.yaml", &["-i", "../inc"]).success();
    assert!(ws2.root().join("i").is_dir());
}

#[test]
fn excludes_follow_rsync_rules() {
    let ws = Ws::new();
    for f in [
        "t/a.pyc",
        "t/keep.py",
        "t/sub/b.pyc",
        "t/top.txt",
        "t/sub/top.txt",
        "t/cache/x",
        "t/sub/cache",
        "t/deep/x/y/z.log",
        "t/q1",
        "t/q22",
    ] {
        ws.write(f, "x");
    }
    ws.write(
        "app.yaml",
        "excludes: ['*.pyc', /top.txt, cache/, 'deep/**/*.log', 'q?']\ntargets:\n  - target: /\n    copy: [{dirs: [../t/]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    let r = ws.root();
    assert!(
        !r.join("a.pyc").exists() && !r.join("sub/b.pyc").exists(),
        "basename at any depth"
    );
    assert!(r.join("keep.py").exists());
    assert!(!r.join("top.txt").exists(), "anchored at the top");
    assert!(
        r.join("sub/top.txt").exists(),
        "anchored pattern only at the top"
    );
    assert!(
        !r.join("cache").exists(),
        "dir-only pattern excludes the dir"
    );
    assert!(
        r.join("sub/cache").is_file(),
        "dir-only pattern keeps a file of that name"
    );
    assert!(!r.join("deep/x/y/z.log").exists(), "** crosses directories");
    assert!(
        !r.join("q1").exists() && r.join("q22").exists(),
        "? is one character"
    );
}

#[test]
fn symlinks_inside_copied_dirs() {
    let ws = Ws::new();
    ws.write("outside.txt", "outside");
    ws.write("t/real.txt", "real");
    ws.write("t/sub/inner.txt", "inner");
    ws.symlink("real.txt", "t/rel-in");
    ws.symlink("../real.txt", "t/sub/rel-up-in");
    ws.symlink("../outside.txt", "t/rel-out");
    let abs = ws.path().join("t/real.txt");
    ws.symlink(abs.to_str().unwrap(), "t/abs");
    ws.symlink("nowhere", "t/dangling-in");
    ws.symlink("/nonexistent/x", "t/dangling-abs");
    ws.symlink(ws.path().join("t/sub").to_str().unwrap(), "t/absdir");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /c\n    copy: [{dirs: [../t/]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    let c = ws.root().join("c");
    let link = |p: &str| {
        std::fs::symlink_metadata(c.join(p))
            .unwrap()
            .file_type()
            .is_symlink()
    };
    assert!(
        link("rel-in") && link("sub/rel-up-in"),
        "relative in-tree links stay links"
    );
    assert!(
        !link("rel-out") && ws.image_file("c/rel-out") == "outside",
        "out-of-tree links are dereferenced"
    );
    assert!(
        !link("abs") && ws.image_file("c/abs") == "real",
        "absolute links are dereferenced"
    );
    assert!(c.join("absdir").is_dir() && ws.image_file("c/absdir/inner.txt") == "inner");
    assert!(
        c.join("dangling-in").symlink_metadata().is_ok(),
        "a dangling in-tree relative link is kept"
    );
    assert!(
        c.join("dangling-abs").symlink_metadata().is_err(),
        "a dangling unsafe link is skipped"
    );
}

#[test]
fn hashes_upper_lower_and_wrong() {
    let ws = Ws::new();
    ws.write("src/f", "hello\n");
    // sha256("hello\n")
    let h = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    for (name, hash) in [("lower", h.to_string()), ("upper", h.to_uppercase())] {
        ws.write(&format!("{name}.yaml"), &format!("targets:\n  - target: /{name}\n    copy: [{{from: ../src, files: [{{name: f, hash: {hash}}}]}}]\n"));
        ws.run(&format!("{name}.yaml"), &[]).success();
        assert_eq!(ws.image_file(&format!("{name}/f")), "hello\n");
    }
    let before = snapshot(&ws.root());
    ws.write("bad.yaml", &format!("targets:\n  - target: /bad\n    mkdirs: [d]\n    copy: [{{from: ../src, files: [{{name: f, hash: {}}}]}}]\n", "0".repeat(64)));
    ws.run("bad.yaml", &[]).code(249).stderr(
        predicate::str::contains("bad.yaml:4:").and(predicate::str::contains(h.to_uppercase())),
    );
    assert_eq!(before, snapshot(&ws.root()), "a wrong hash changes nothing");
}

#[test]
fn variables_set_defaulted_and_undefined() {
    let ws = Ws::new();
    ws.write("src/v1/f", "v1");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /${DEST:-dflt}\n    copy: [{from: ../src/$VERSION, files: [f]}]\n",
    );
    ws.cmd("app.yaml", &[])
        .env("VERSION", "v1")
        .env_remove("DEST")
        .assert()
        .success();
    assert_eq!(ws.image_file("dflt/f"), "v1");
    ws.cmd("app.yaml", &[])
        .env("VERSION", "v1")
        .env("DEST", "set")
        .assert()
        .success();
    assert_eq!(ws.image_file("set/f"), "v1");
    ws.write(
        "undef.yaml",
        "targets:\n  - target: /x\n    copy: [{from: ../src, files: [$NOPE_UNDEFINED/f]}]\n",
    );
    ws.cmd("undef.yaml", &[])
        .env_remove("NOPE_UNDEFINED")
        .assert()
        .code(253)
        .stderr(
            predicate::str::contains("NOPE_UNDEFINED")
                .and(predicate::str::contains("undef.yaml:3:")),
        );
    assert!(!ws.root().join("x").exists());
}

#[test]
fn include_cycle_names_the_chain() {
    let ws = Ws::new();
    ws.write("a.yaml", "includes: [b.yaml]\n");
    ws.write("b.yaml", "includes: [a.yaml]\n");
    ws.run("a.yaml", &[]).code(253).stderr(
        predicate::str::contains("a.yaml")
            .and(predicate::str::contains("b.yaml"))
            .and(predicate::str::contains("cycle")),
    );
    ws.write("self.yaml", "includes: [self.yaml]\n");
    ws.run("self.yaml", &[]).code(253);
    assert!(!ws.root().exists());
}

#[test]
fn syntax_error_has_line_and_column() {
    let ws = Ws::new();
    ws.write(
        "bad.yaml",
        "targets:\n  - target: /x\n    copy: [unclosed\n",
    );
    ws.run("bad.yaml", &[])
        .code(253)
        .stderr(predicate::str::is_match(r"bad\.yaml:\d+:\d+").unwrap());
    ws.run("missing.yaml", &[])
        .code(255)
        .stderr(predicate::str::contains("missing.yaml"));
    assert!(!ws.root().exists());
}

#[test]
fn unknown_keys_warn_with_location_and_suggestion() {
    let ws = Ws::new();
    ws.write("src/f", "f");
    ws.write("app.yaml", "targets:\n  - target: /x\n    copy:\n      - from: ../src\n        file: [f]\n        files: [f]\n");
    ws.run("app.yaml", &[])
        .success()
        .stderr(predicate::str::contains("app.yaml:5:").and(predicate::str::contains("files")));
}

#[test]
fn escapes_are_refused_before_anything_is_written() {
    let ws = Ws::new();
    ws.write("src/f", "f");
    std::fs::create_dir_all(ws.root()).unwrap();
    ws.write("inst/image/keep", "keep");
    let sentinel = ws.path().join("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    let cases = [
        "targets: [{target: /../../sentinel/x}]",
        "targets: [{target: /bin, createlinks: [{src: x, linkname: ../../../sentinel/l}]}]",
        "targets: [{target: /bin, copy: [{from: ../src, files: [{name: f, rename: ../../../sentinel/f}]}]}]",
        "targets: [{target: /bin, mkdirs: [/../sentinel/m]}]",
    ];
    for (i, bom) in cases.iter().enumerate() {
        let before = snapshot(ws.path());
        ws.write(&format!("esc{i}.yaml"), &format!("{bom}\n"));
        ws.run(&format!("esc{i}.yaml"), &[])
            .code(253)
            .stderr(predicate::str::contains("outside the image"));
        let mut after = snapshot(ws.path());
        after.remove(std::path::Path::new(&format!("esc{i}.yaml")));
        assert_eq!(before, after, "case {i} changed something");
    }
}

#[test]
fn links_planted_in_the_root_are_followed_inside_it() {
    let ws = Ws::new();
    ws.write("src/f", "f");
    let outside = ws.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(ws.root()).unwrap();
    std::os::unix::fs::symlink(&outside, ws.root().join("lib")).unwrap();
    std::os::unix::fs::symlink("../../../outside", ws.root().join("rel")).unwrap();
    ws.write("app.yaml", "targets:\n  - target: /lib\n    copy: [{from: ../src, files: [f]}]\n  - target: /rel/sub\n    copy: [{from: ../src, files: [f]}]\n");
    ws.run("app.yaml", &[]).success();
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside the root"
    );
    let inside = ws.root().join(outside.strip_prefix("/").unwrap()).join("f");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "f");
    assert_eq!(
        ws.image_file("outside/sub/f"),
        "f",
        "relative link clamped at the image root"
    );
}

#[test]
fn second_run_copies_nothing_and_touched_files_are_recopied() {
    let ws = Ws::new();
    ws.write("src/a", "a");
    ws.write("src/d/b", "b");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /x\n    copy: [{from: ../src, files: [a], dirs: [d]}]\n",
    );
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicate::str::contains("2 files copied"));
    let before = snapshot(&ws.root());
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicate::str::contains("0 files copied, 2 unchanged"));
    assert_eq!(before, snapshot(&ws.root()));
    std::thread::sleep(std::time::Duration::from_millis(20));
    ws.write("src/a", "A");
    ws.run("app.yaml", &[])
        .success()
        .stdout(predicate::str::contains("1 files copied, 1 unchanged"));
    assert_eq!(ws.image_file("x/a"), "A");
}

#[test]
fn modes_and_mtimes_are_kept() {
    let ws = Ws::new();
    let f = ws.write("src/tool", "#!/bin/sh\n");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
    let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(&f, t).unwrap();
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    copy: [{from: ../src, files: [tool]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    let m = std::fs::metadata(ws.root().join("bin/tool")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o751);
    assert_eq!(filetime::FileTime::from_last_modification_time(&m), t);
}

#[test]
fn dry_run_shows_the_plan_and_writes_nothing() {
    let ws = Ws::new();
    ws.write("src/f", "f");
    ws.write("app.yaml", "targets:\n  - target: /bin\n    mkdirs: [m]\n    createlinks: [{src: f, linkname: l}]\n    copy: [{from: ../src, files: [f]}]\n");
    let out = ws
        .run("app.yaml", &["--dry-run"])
        .success()
        .get_output()
        .stdout
        .clone();
    let plan = String::from_utf8(out).unwrap();
    assert!(
        plan.contains("mkdir /bin\n") && plan.contains("mkdir /bin/m\n"),
        "{plan}"
    );
    assert!(plan.contains("link /bin/l -> f\n"), "{plan}");
    assert!(plan.contains("-> /bin/f\n"), "{plan}");
    assert!(!ws.root().exists());
    let out = ws
        .run("app.yaml", &["--dry-run", "--json"])
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ops"].as_array().unwrap().len(), 4);
    assert!(!ws.root().exists());
}

#[test]
fn a_directory_in_files_is_an_error_with_a_hint() {
    let ws = Ws::new();
    ws.write("src/d/x", "x");
    ws.write(
        "app.yaml",
        "targets:\n  - target: /x\n    copy: [{from: ../src, files: [d]}]\n",
    );
    ws.run("app.yaml", &[])
        .code(254)
        .stderr(predicate::str::contains("dirs"));
    ws.write(
        "nf.yaml",
        "targets:\n  - target: /x\n    copy: [{from: ../src, files: [nope]}]\n",
    );
    ws.run("nf.yaml", &[])
        .code(255)
        .stderr(predicate::str::contains("nope"));
    assert!(!ws.root().exists());
}

#[test]
fn wildcards_expand_and_rename_creates_subdirs() {
    let ws = Ws::new();
    ws.write("src/lib1.so", "1");
    ws.write("src/lib2.so", "2");
    ws.write("src/other", "o");
    ws.write("app.yaml", "targets:\n  - target: /lib\n    copy: [{from: ../src, files: ['lib*.so', {name: other, rename: deep/er/o}]}]\n");
    ws.run("app.yaml", &[]).success();
    assert_eq!(ws.image_file("lib/lib1.so"), "1");
    assert_eq!(ws.image_file("lib/lib2.so"), "2");
    assert_eq!(ws.image_file("lib/deep/er/o"), "o");
    ws.write(
        "none.yaml",
        "targets:\n  - target: /lib\n    copy: [{from: ../src, files: ['zz*.so']}]\n",
    );
    ws.run("none.yaml", &[])
        .code(255)
        .stderr(predicate::str::contains("zz*.so"));
}

#[test]
fn command_line_usage_errors_exit_1() {
    copy_bom().assert().code(1);
    copy_bom().args(["-f", "x.yaml"]).assert().code(1);
    copy_bom()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("copy_bom 0.1.0"));
    copy_bom()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--include-dir"));
}

/// The summary counts every warning the run gave, the skipped entries of
/// dir copies included (a dangling absolute link: rsync skips it too, "symlink
/// has no referent"); `-q` drops the warnings and the summary, not errors.
#[test]
fn the_summary_counts_skipped_entries_and_quiet_drops_it() {
    let ws = Ws::new();
    ws.write("src/d/f", "f");
    ws.symlink("/nonexistent/target", "src/d/dangling");
    ws.write(
        "bom.yaml",
        "targets:\n  - target: /opt\n    copy: [{from: ../src, dirs: [d]}]\n",
    );
    let out = ws.cmd("bom.yaml", &[]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(", 1 warnings,"), "{stdout}");
    assert!(stderr.contains("dangling"), "{stderr}");
    assert_eq!(ws.image_file("/opt/d/f"), "f");

    let out = ws.cmd("bom.yaml", &["-q"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    ws.write(
        "bad.yaml",
        "targets:\n  - target: /opt\n    copy: [{from: ../src, files: [nope]}]\n",
    );
    let out = ws.cmd("bad.yaml", &["-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );
}

/// The description `--help` gives an option or argument (the text after its
/// name and value placeholder), or None when the line is not there.
fn help_text(help: &str, item: &str) -> Option<String> {
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with(item) || l.contains(&format!(", {item}")))?;
    let after = &line[line.find(item)? + item.len()..];
    let after = after.trim_start();
    // Skip the value placeholder (`<ROOT>`, `<FILES>...`).
    let after = match after.strip_prefix('<') {
        Some(rest) => rest.split_once('>').map_or("", |(_, t)| t),
        None => after,
    };
    Some(after.trim_start_matches('.').trim().to_string())
}

/// Every option and argument of `check` and `deps` says what it is for.
#[test]
fn check_and_deps_options_and_arguments_have_help() {
    let cases: [(&str, &[&str]); 3] = [
        ("check", &["--root", "--loader-config", "--json"]),
        (
            "deps",
            &["<FILES>", "--sysroot", "--loader-config", "--library-path"],
        ),
        ("new", &["<DIR>", "--init-ra", "--occlum-dir"]),
    ];
    for (command, items) in cases {
        let out = copy_bom().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for item in items {
            let text = help_text(&help, item);
            assert!(
                text.as_ref().is_some_and(|t| t.len() > 10),
                "{command} {item}: {text:?}\n{help}"
            );
        }
    }
}

/// A bare `copy_bom` is a usage error (1) whose usage names the subcommands.
#[test]
fn a_bare_copy_bom_shows_a_usage_with_the_subcommands() {
    let out = copy_bom().output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for word in ["--file", "--root", "new", "deps", "check"] {
        assert!(text.contains(word), "{word}: {text}");
    }
}
