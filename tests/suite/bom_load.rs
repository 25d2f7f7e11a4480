//! Loading boms through the public API: schema, locations, warnings, errors,
//! includes, processing order, cycles and variables.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use copy_bom::bom::{Bom, LoadedBoms, load};
use copy_bom::error::{Error, Status};
use tempfile::TempDir;

fn no_vars(_: &str) -> Option<String> {
    None
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

/// Loads a single bom written in a fresh temp dir.
fn load_text(text: &str) -> (TempDir, Result<LoadedBoms, Error>) {
    let dir = TempDir::new().unwrap();
    let top = write(dir.path(), "app.yaml", text);
    let result = load(&top, &[], &no_vars);
    (dir, result)
}

fn one(text: &str) -> (Bom, Vec<copy_bom::bom::Warning>) {
    let (_dir, result) = load_text(text);
    let mut loaded = result.unwrap();
    assert_eq!(loaded.boms.len(), 1);
    (loaded.boms.remove(0), loaded.warnings)
}

/// The error of loading `text`, with the temp dir prefix replaced by `DIR`.
fn error(text: &str) -> (Status, String) {
    let (dir, result) = load_text(text);
    let err = result.unwrap_err();
    let prefix = dir.path().display().to_string();
    (err.status, err.message.replace(&prefix, "DIR"))
}

fn names(loaded: &LoadedBoms) -> Vec<String> {
    loaded
        .boms
        .iter()
        .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_schema_element_with_locations() {
    let (bom, warnings) = one("includes: []\n\
         excludes: ['*.pyc', /tmp/]\n\
         targets:\n\
         \x20 - target: /bin\n\
         \x20   mkdirs: [sub, other]\n\
         \x20   createlinks:\n\
         \x20     - src: ../hello\n\
         \x20       linkname: hello_link\n\
         \x20   copy:\n\
         \x20     - from: /usr\n\
         \x20       dirs: [lib/x]\n\
         \x20       files:\n\
         \x20         - bin/ls\n\
         \x20         - name: bin/cat\n\
         \x20           hash: ABCD\n\
         \x20           autodep: false\n\
         \x20           rename: kitty\n");
    assert!(warnings.is_empty());
    assert!(bom.includes.is_empty());
    assert_eq!(bom.excludes, vec!["*.pyc", "/tmp/"]);
    let t = &bom.targets[0];
    assert_eq!(t.target.value, "/bin");
    assert_eq!((t.target.loc.line, t.target.loc.column), (4, 13));
    let mkdirs: Vec<_> = t.mkdirs.iter().map(|m| m.value.as_str()).collect();
    assert_eq!(mkdirs, vec!["sub", "other"]);
    assert_eq!((t.mkdirs[1].loc.line, t.mkdirs[1].loc.column), (5, 19));
    assert_eq!(t.createlinks[0].src.value, "../hello");
    assert_eq!(t.createlinks[0].linkname.value, "hello_link");
    assert_eq!(t.createlinks[0].linkname.loc.line, 8);
    let c = &t.copy[0];
    assert_eq!(c.loc.line, 10);
    assert_eq!(c.from.as_ref().unwrap().value, "/usr");
    assert_eq!(c.dirs.as_ref().unwrap()[0].value, "lib/x");
    let files = c.files.as_ref().unwrap();
    assert_eq!(files[0].name.value, "bin/ls");
    assert!(files[0].autodep && files[0].hash.is_none() && files[0].rename.is_none());
    assert_eq!(files[1].name.value, "bin/cat");
    assert_eq!((files[1].name.loc.line, files[1].name.loc.column), (14, 19));
    assert_eq!(files[1].hash.as_ref().unwrap().value, "ABCD");
    assert!(!files[1].autodep);
    assert_eq!(files[1].rename.as_ref().unwrap().value, "kitty");
    assert!(c.loc.file.ends_with("app.yaml"));
}

#[test]
fn plain_scalars_are_strings_with_their_exact_text() {
    let (bom, _) = one(
        "targets:\n  - target: 1\n    mkdirs: [2021, true, 010, 1.50]\n    copy:\n      - files: ['010', \"2021\"]\n",
    );
    let t = &bom.targets[0];
    assert_eq!(t.target.value, "1");
    let mkdirs: Vec<_> = t.mkdirs.iter().map(|m| m.value.as_str()).collect();
    assert_eq!(mkdirs, vec!["2021", "true", "010", "1.50"]);
    let files: Vec<_> = t.copy[0]
        .files
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.value.as_str())
        .collect();
    assert_eq!(files, vec!["010", "2021"]);
}

#[test]
fn unquoted_numbers_and_booleans_are_not_files_items() {
    // SPEC A1: a files item is a string or a map with `name` (the original
    // rejects an int item as "did not match any variant"), kept by B1.
    for item in ["010", "2021", "false", "1.5"] {
        let (status, msg) = error(&format!(
            "targets:\n  - target: /\n    copy:\n      - files: [a, {item}]\n"
        ));
        assert_eq!(status, Status::InvalidBom, "{msg}");
        assert!(msg.starts_with("DIR/app.yaml:4:"), "{msg}");
        assert!(msg.contains(&format!("`{item}`")), "{msg}");
    }
}

#[test]
fn null_means_absent() {
    let (bom, _) = one(
        "includes: ~\nexcludes: null\ntargets:\n  - target: /\n    mkdirs:\n    createlinks: ~\n    copy:\n      - from: ~\n        files: [a]\n        dirs: ~\n      - files:\n          - name: b\n            autodep: ~\n            hash: ~\n",
    );
    let t = &bom.targets[0];
    assert!(t.mkdirs.is_empty() && t.createlinks.is_empty());
    assert!(t.copy[0].from.is_none() && t.copy[0].dirs.is_none());
    let b = &t.copy[1].files.as_ref().unwrap()[0];
    assert!(b.autodep && b.hash.is_none());
    let (bom, _) = one("targets: ~\n");
    assert!(bom.targets.is_empty());
}

#[test]
fn copy_entry_needs_from_files_or_dirs() {
    let (status, msg) = error("targets:\n  - target: /\n    copy:\n      - from: ~\n");
    assert_eq!(status, Status::InvalidBom);
    assert_eq!(
        msg,
        "DIR/app.yaml:4:9: copy entry needs from, files or dirs"
    );
    // An empty list counts as present.
    let (bom, _) = one("targets:\n  - target: /\n    copy:\n      - files: []\n");
    assert_eq!(bom.targets[0].copy[0].files.as_ref().map(Vec::len), Some(0));
}

#[test]
fn unknown_keys_warn_with_location_and_suggestion() {
    let (bom, warnings) = one(
        "include: [x]\ntargets:\n  - tagret: /a\n    target: /b\n    mkdir: [c]\n    createlink: []\n    copy:\n      - file: [a]\n        dir: [d]\n        colour: red\n        files:\n          - nam: x\n            name: y\n",
    );
    assert_eq!(bom.targets[0].target.value, "/b");
    let got: Vec<String> = warnings
        .iter()
        .map(|w| format!("{}:{}: {}", w.loc.line, w.loc.column, w.message))
        .collect();
    assert_eq!(
        got,
        vec![
            "1:1: unknown key `include` in bom ignored; did you mean `includes`?",
            "3:5: unknown key `tagret` in target ignored; did you mean `target`?",
            "5:5: unknown key `mkdir` in target ignored; did you mean `mkdirs`?",
            "6:5: unknown key `createlink` in target ignored; did you mean `createlinks`?",
            "8:9: unknown key `file` in copy entry ignored; did you mean `files`?",
            "9:9: unknown key `dir` in copy entry ignored; did you mean `dirs`?",
            "10:9: unknown key `colour` in copy entry ignored",
            "12:13: unknown key `nam` in files entry ignored; did you mean `name`?",
        ]
    );
    assert!(warnings[0].loc.file.ends_with("app.yaml"));
}

#[test]
fn required_keys_are_reported_at_their_map() {
    let cases = [
        (
            "targets:\n  - mkdirs: [a]\n",
            "DIR/app.yaml:2:5: a target needs `target`",
        ),
        (
            "targets:\n  - target: /\n    createlinks:\n      - linkname: l\n",
            "DIR/app.yaml:4:9: a createlinks entry needs `src`",
        ),
        (
            "targets:\n  - target: /\n    createlinks:\n      - src: s\n",
            "DIR/app.yaml:4:9: a createlinks entry needs `linkname`",
        ),
        (
            "targets:\n  - target: /\n    copy:\n      - files:\n          - nam: x\n",
            "DIR/app.yaml:5:13: a files entry needs `name`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            error(text),
            (Status::InvalidBom, expected.to_string()),
            "{text}"
        );
    }
}

#[test]
fn autodep_must_be_a_real_boolean() {
    let text = |value: &str| {
        format!(
            "targets:\n  - target: /\n    copy:\n      - files:\n          - name: x\n            autodep: {value}\n"
        )
    };
    for value in ["no", "\"false\"", "'true'", "yes", "0"] {
        let (status, msg) = error(&text(value));
        assert_eq!(status, Status::InvalidBom, "{value}");
        assert!(
            msg.starts_with("DIR/app.yaml:6:22: autodep must be true or false (unquoted), not "),
            "{value}: {msg}"
        );
    }
    let (status, msg) = error(&text("[true]"));
    assert_eq!(status, Status::InvalidBom);
    assert!(msg.starts_with("DIR/app.yaml:6:"), "{msg}");
    let (bom, _) = one(
        "targets:\n  - target: /\n    copy:\n      - files:\n          - name: x\n            autodep: True\n",
    );
    assert!(bom.targets[0].copy[0].files.as_ref().unwrap()[0].autodep);
}

#[test]
fn wrong_types_give_a_location() {
    let cases = [
        ("targets: /bin\n", "DIR/app.yaml:1:10: "),
        ("targets:\n  - target: [a]\n", "DIR/app.yaml:2:13: "),
        (
            "targets:\n  - target: /\n    mkdirs: a\n",
            "DIR/app.yaml:3:13: ",
        ),
        (
            "targets:\n  - target: /\n    mkdirs: [a, ~]\n",
            "DIR/app.yaml:3:17: ",
        ),
        (
            "targets:\n  - target: /\n    copy:\n      - files: [~]\n",
            "DIR/app.yaml:4:17: ",
        ),
        ("- a\n- b\n", "DIR/app.yaml:1:1: "),
    ];
    for (text, prefix) in cases {
        let (status, msg) = error(text);
        assert_eq!(status, Status::InvalidBom, "{text}");
        assert!(msg.starts_with(prefix), "{text}: {msg}");
        assert!(msg.len() > prefix.len() + 5, "{msg}");
    }
}

#[test]
fn parser_messages_are_reworded() {
    let cases = [
        ("targets: /bin\n", "DIR/app.yaml:1:10: expected a list"),
        ("targets:\n  - 5\n", "DIR/app.yaml:2:5: expected a map"),
        (
            "targets:\n  - target: [a]\n",
            "DIR/app.yaml:2:13: expected a string",
        ),
        (
            "targets: [{target: a, target: b}]\n",
            "DIR/app.yaml:1:23: duplicate key `target`",
        ),
        (
            "targets: []\n---\ntargets: []\n",
            "DIR/app.yaml:3:1: a bom must be a single YAML document",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            error(text),
            (Status::InvalidBom, expected.to_string()),
            "{text}"
        );
    }
}

#[test]
fn syntax_errors_give_a_location() {
    let (status, msg) = error("targets:\n  - target: 'unclosed\n");
    assert_eq!(status, Status::InvalidBom);
    assert!(msg.starts_with("DIR/app.yaml:2:13: "), "{msg}");
    let (status, msg) = error("targets:\n  - target: /\n   bad: [\n");
    assert_eq!(status, Status::InvalidBom);
    assert!(msg.starts_with("DIR/app.yaml:3:"), "{msg}");
}

#[test]
fn empty_boms_are_invalid() {
    for text in ["", "---\n", "# only a comment\n", "~\n"] {
        assert_eq!(
            error(text),
            (Status::InvalidBom, "DIR/app.yaml: empty bom".to_string()),
            "{text:?}"
        );
    }
}

#[test]
fn non_utf8_is_invalid_with_its_position() {
    let dir = TempDir::new().unwrap();
    let top = dir.path().join("app.yaml");
    fs::write(&top, b"targets:\n  - target: /b\xffin\n").unwrap();
    let err = load(&top, &[], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::InvalidBom);
    assert_eq!(
        err.message,
        format!("{}:2:15: the bom is not valid UTF-8", top.display())
    );
}

#[test]
fn unreadable_bom_is_not_found_with_reason() {
    let dir = TempDir::new().unwrap();
    let top = dir.path().join("missing.yaml");
    let err = load(&top, &[], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::NotFound);
    assert!(
        err.message
            .starts_with(&format!("{}: cannot read bom file: ", top.display()))
    );
    assert!(err.message.contains("No such file"), "{}", err.message);
    let err = load(dir.path(), &[], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::NotFound);
}

#[test]
fn includes_look_in_own_dir_before_include_dirs_in_order() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(d, "app/top.yaml", "includes: [a.yaml, b.yaml, c.yaml]\n");
    write(d, "app/a.yaml", "targets: [{target: own-a}]\n");
    write(d, "inc1/a.yaml", "targets: [{target: inc1-a}]\n");
    write(d, "inc1/b.yaml", "targets: [{target: inc1-b}]\n");
    write(d, "inc2/b.yaml", "targets: [{target: inc2-b}]\n");
    write(d, "inc2/c.yaml", "targets: [{target: inc2-c}]\n");
    let loaded = load(&top, &[d.join("inc1"), d.join("inc2")], &no_vars).unwrap();
    let targets: Vec<_> = loaded.boms[1..]
        .iter()
        .map(|b| b.targets[0].target.value.clone())
        .collect();
    assert_eq!(targets, vec!["own-a", "inc1-b", "inc2-c"]);
    assert_eq!(loaded.boms[1].path, d.join("app/a.yaml"));
    assert_eq!(loaded.boms[2].path, d.join("inc1/b.yaml"));
}

#[test]
fn a_directory_named_like_the_include_is_skipped() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(d, "top.yaml", "includes: [x.yaml]\n");
    fs::create_dir(d.join("x.yaml")).unwrap();
    write(d, "inc/x.yaml", "targets: [{target: from-inc}]\n");
    let loaded = load(&top, &[d.join("inc")], &no_vars).unwrap();
    assert_eq!(loaded.boms[1].targets[0].target.value, "from-inc");
}

#[test]
fn embedded_templates_are_the_last_resort() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(
        d,
        "top.yaml",
        "includes: [base.yaml, java-11-alibaba-dragonwell.yaml]\n",
    );
    let loaded = load(&top, &[d.join("nowhere")], &no_vars).unwrap();
    let base = &loaded.boms[1];
    assert_eq!(base.path, PathBuf::from("<embedded>/base.yaml"));
    assert_eq!(base.targets[0].target.value, "/");
    let mkdirs: Vec<_> = base.targets[0]
        .mkdirs
        .iter()
        .map(|m| m.value.as_str())
        .collect();
    assert_eq!(
        mkdirs,
        vec![
            "bin", "dev", "etc", "host", "lib", "lib64", "opt", "proc", "root", "sys", "tmp",
            "sbin", "ext2"
        ]
    );
    assert_eq!(loaded.boms[2].targets[0].target.value, "/usr/lib/jvm");
    // A base.yaml in an include dir wins over the embedded one.
    write(d, "inc/base.yaml", "targets: [{target: mine}]\n");
    let loaded = load(&top, &[d.join("inc")], &no_vars).unwrap();
    assert_eq!(loaded.boms[1].targets[0].target.value, "mine");
}

#[test]
fn missing_include_names_where_it_looked() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(d, "top.yaml", "targets: []\nincludes:\n  - nope.yaml\n");
    let err = load(&top, &[d.join("inc")], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::NotFound);
    let msg = err.message.replace(&d.display().to_string(), "DIR");
    assert_eq!(
        msg,
        "DIR/top.yaml:3:5: cannot find included bom nope.yaml (looked in: DIR/nope.yaml, DIR/inc/nope.yaml)"
    );
}

#[test]
fn breadth_first_order_keeps_last_occurrence() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(d, "top.yaml", "includes: [a.yaml, b.yaml]\n");
    write(d, "a.yaml", "includes: [c.yaml]\n");
    write(d, "b.yaml", "includes: [c.yaml]\n");
    write(d, "c.yaml", "targets: []\n");
    let loaded = load(&top, &[], &no_vars).unwrap();
    assert_eq!(
        names(&loaded),
        vec!["top.yaml", "a.yaml", "b.yaml", "c.yaml"]
    );

    // top→[a,b], a→[b]: L = top,a,b,b ⇒ top,a,b; top→[b,a], a→[b]: L = top,b,a,b ⇒ top,a,b.
    write(d, "a.yaml", "includes: [b.yaml]\n");
    write(d, "b.yaml", "targets: []\n");
    write(d, "top.yaml", "includes: [b.yaml, a.yaml]\n");
    assert_eq!(
        names(&load(&top, &[], &no_vars).unwrap()),
        vec!["top.yaml", "a.yaml", "b.yaml"]
    );
    // top→[a,b,c], a→[c,b]: L = top,a,b,c,c,b ⇒ top,a,c,b.
    write(d, "top.yaml", "includes: [a.yaml, b.yaml, c.yaml]\n");
    write(d, "a.yaml", "includes: [c.yaml, b.yaml]\n");
    assert_eq!(
        names(&load(&top, &[], &no_vars).unwrap()),
        vec!["top.yaml", "a.yaml", "c.yaml", "b.yaml"]
    );
}

#[test]
fn a_bom_under_two_spellings_is_one_bom() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(
        d,
        "top.yaml",
        "includes: [./a.yaml, sub/../a.yaml, a.yaml]\n",
    );
    fs::create_dir(d.join("sub")).unwrap();
    write(d, "a.yaml", "targets: [{target: /a}]\n");
    let loaded = load(&top, &[], &no_vars).unwrap();
    assert_eq!(loaded.boms.len(), 2);
    assert_eq!(loaded.boms[1].path, d.join("./a.yaml"));
}

#[test]
fn a_dag_with_many_repeated_visits_is_fine() {
    // Each level includes both boms of the next: 2^40 visits if unfolded.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for i in 0..40 {
        let text = format!("includes: [l{0}a.yaml, l{0}b.yaml]\n", i + 1);
        write(d, &format!("l{i}a.yaml"), &text);
        write(d, &format!("l{i}b.yaml"), &text);
    }
    write(d, "l40a.yaml", "targets: []\n");
    write(d, "l40b.yaml", "targets: []\n");
    let loaded = load(&d.join("l0a.yaml"), &[], &no_vars).unwrap();
    let got = names(&loaded);
    assert_eq!(got.len(), 81);
    assert_eq!(got[..3], ["l0a.yaml", "l1a.yaml", "l1b.yaml"]);
    assert_eq!(got[80], "l40b.yaml");
}

#[test]
fn include_cycles_name_the_chain() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let top = write(d, "self.yaml", "includes: [self.yaml]\n");
    let err = load(&top, &[], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::InvalidBom);
    let msg = err.message.replace(&d.display().to_string(), "DIR");
    assert_eq!(
        msg,
        "DIR/self.yaml:1:12: include cycle: DIR/self.yaml → DIR/self.yaml"
    );

    let top = write(d, "top.yaml", "includes: [a.yaml]\n");
    write(d, "a.yaml", "includes: [b.yaml]\n");
    write(d, "b.yaml", "targets: []\nincludes: [base.yaml, a.yaml]\n");
    let err = load(&top, &[], &no_vars).unwrap_err();
    assert_eq!(err.status, Status::InvalidBom);
    let msg = err.message.replace(&d.display().to_string(), "DIR");
    assert_eq!(
        msg,
        "DIR/b.yaml:2:23: include cycle: DIR/a.yaml → DIR/b.yaml → DIR/a.yaml"
    );
}

fn env(name: &str) -> Option<String> {
    HashMap::from([("APP", "/opt/app"), ("EMPTY", ""), ("V", "3")])
        .get(name)
        .map(|v| v.to_string())
}

#[test]
fn variables_are_expanded_per_field() {
    let dir = TempDir::new().unwrap();
    let top = write(
        dir.path(),
        "app.yaml",
        "includes: []\nexcludes: [$APP]\ntargets:\n  - target: $APP/bin\n    mkdirs: ['${MISSING:-dflt}', '${EMPTY:-e}', x$EMPTY]\n    createlinks:\n      - src: $$HOME\n        linkname: a$-b\n    copy:\n      - from: ${APP}\n        dirs: ['v${V}']\n        files:\n          - name: $APP/x\n            hash: $APP\n            rename: y$\n",
    );
    let loaded = load(&top, &[], &env).unwrap();
    let b = &loaded.boms[0];
    assert_eq!(b.excludes, vec!["$APP"]);
    let t = &b.targets[0];
    assert_eq!(t.target.value, "/opt/app/bin");
    let mkdirs: Vec<_> = t.mkdirs.iter().map(|m| m.value.as_str()).collect();
    assert_eq!(mkdirs, vec!["dflt", "e", "x"]);
    assert_eq!(t.createlinks[0].src.value, "$HOME");
    assert_eq!(t.createlinks[0].linkname.value, "a$-b");
    let c = &t.copy[0];
    assert_eq!(c.from.as_ref().unwrap().value, "/opt/app");
    assert_eq!(c.dirs.as_ref().unwrap()[0].value, "v3");
    let f = &c.files.as_ref().unwrap()[0];
    assert_eq!(f.name.value, "/opt/app/x");
    assert_eq!(f.hash.as_ref().unwrap().value, "$APP");
    assert_eq!(f.rename.as_ref().unwrap().value, "y$");
}

#[test]
fn an_undefined_variable_is_an_error_with_location() {
    let dir = TempDir::new().unwrap();
    let top = write(dir.path(), "app.yaml", "includes: [$NOT_EXPANDED]\n");
    // includes are not expanded: the include is simply not found.
    assert_eq!(load(&top, &[], &env).unwrap_err().status, Status::NotFound);
    write(
        dir.path(),
        "app.yaml",
        "targets:\n  - target: /\n    copy:\n      - dirs: [ok, '${NOPE}/x']\n",
    );
    let err = load(&top, &[], &env).unwrap_err();
    assert_eq!(err.status, Status::InvalidBom);
    assert_eq!(
        err.message,
        format!(
            "{}:4:20: undefined variable NOPE in '${{NOPE}}/x'",
            top.display()
        )
    );
}
