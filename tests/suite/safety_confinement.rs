//! Invariant 1 (SPEC B2): nothing outside the root is ever written. A generated corpus of hostile
//! boms (`..`, absolute paths, `$VAR`s holding `..` or a host path, newlines and control bytes in
//! every path field) is run against roots holding planted symlinks that point outside (absolute,
//! relative, chains, loops), planted before the first run and again between two runs. Whatever the
//! tool does, a snapshot of everything beside the root (a sentinel dir, the sources, the boms) must
//! not change, and the exit status must be a documented one. Then the named cases of SPEC B2.

use crate::common::snapshot;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit statuses SPEC B1 documents for a bom run; anything else (101 = panic, a signal) fails.
const DOCUMENTED: [i32; 8] = [0, 248, 249, 251, 252, 253, 254, 255];

/// A scratch tree: `ws/src` (sources), `ws/inst/image` (the root), `ws/inst/sentinel` (beside
/// the root, must never change).
struct Arena {
    dir: tempfile::TempDir,
}

impl Arena {
    fn new() -> Arena {
        let arena = Arena {
            dir: tempfile::tempdir().unwrap(),
        };
        let ws = arena.ws();
        for (rel, content) in [
            ("src/f", "f"),
            ("src/d/g", "g"),
            ("src/d/sub/h", "h"),
            ("inst/sentinel/s1", "keep"),
            ("inst/sentinel/sd/s2", "keep"),
        ] {
            let p = ws.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let d = ws.join("src/d");
        std::os::unix::fs::symlink("../../inst/sentinel", d.join("up")).unwrap();
        std::os::unix::fs::symlink(arena.sentinel(), d.join("abs")).unwrap();
        std::os::unix::fs::symlink("sub/h", d.join("inner")).unwrap();
        std::fs::create_dir_all(arena.root()).unwrap();
        arena
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn root(&self) -> PathBuf {
        self.ws().join("inst/image")
    }

    fn sentinel(&self) -> PathBuf {
        self.ws().join("inst/sentinel")
    }

    /// Everything in the arena except the root's contents.
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        let mut snap = snapshot(self.dir.path());
        snap.retain(|p, _| !p.starts_with("ws/inst/image") && p != Path::new("bom.yaml"));
        snap
    }

    /// Plants symlinks at image paths, replacing whatever is there.
    fn plant(&self, links: &[(String, String)]) {
        for (at, target) in links {
            let p = self.root().join(at);
            // Planting must not itself go through a link planted earlier (x, then x/y).
            let through_link = p
                .ancestors()
                .skip(1)
                .take_while(|a| *a != self.root())
                .any(|a| a.symlink_metadata().is_ok_and(|m| m.is_symlink()));
            if through_link {
                continue;
            }
            match p.symlink_metadata() {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).unwrap(),
                Ok(_) => std::fs::remove_file(&p).unwrap(),
                Err(_) => {}
            }
            // A file where a parent should be (the previous run put it there): nothing to plant.
            if std::fs::create_dir_all(p.parent().unwrap()).is_err() {
                continue;
            }
            let target = target.replace("@ABS", self.sentinel().to_str().unwrap());
            std::os::unix::fs::symlink(target, p).unwrap();
        }
    }

    /// Runs the bom (written beside `ws`, the one file the snapshot skips) from ws/inst with
    /// `--root image`.
    fn run(&self, bom: &str) -> (i32, String) {
        std::fs::write(self.dir.path().join("bom.yaml"), bom).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_copy_bom"))
            .current_dir(self.ws().join("inst"))
            .args(["-f", "../../bom.yaml", "--root", "image"])
            .env("EVIL", "../../../..")
            .env("EVIL_ABS", self.sentinel())
            .env("EMPTY", "")
            .env_remove("UNSET")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), stderr)
    }
}

/// One path component, hostile or plain. Without `dotdot`, no component climbs (no `..`, no
/// variable holding one), so the run gets past the containment check and really writes, through
/// planted links, absolute paths and odd names.
fn segment(dotdot: bool) -> BoxedStrategy<String> {
    let climbing = prop_oneof![
        Just(".."),
        Just("$EVIL"),
        Just("${EVIL}"),
        Just("${UNSET:-../..}"),
    ];
    let plain = prop_oneof![
        1 => Just("."),
        4 => Just("x"),
        1 => Just(""),
        2 => Just("sentinel"),
        2 => Just("evil"),
        1 => Just("chain"),
        1 => Just("loop"),
        1 => Just("$EVIL_ABS"),
        1 => Just("${EMPTY}"),
        1 => Just("a\nb"),
        1 => Just("\u{1}\u{7f}z"),
        1 => Just("é\u{200b}"),
        1 => Just("@ABS"),
    ];
    if dotdot {
        prop_oneof![1 => climbing, 3 => plain]
            .prop_map(str::to_string)
            .boxed()
    } else {
        plain.prop_map(str::to_string).boxed()
    }
}

/// A destination-like path: optional leading `/`, a few segments.
fn hostile_path(dotdot: bool) -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(segment(dotdot), 1..4))
        .prop_map(|(abs, segs)| format!("{}{}", if abs { "/" } else { "" }, segs.join("/")))
}

/// A source: mostly real ones (so writes happen), sometimes hostile.
fn source(dotdot: bool) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "../src/f", "../src/d", "../src/d/", "../src/d/up", "../src/d/abs", "f", "d/",
            "../src/d/sub/../g",
        ])
        .prop_map(str::to_string),
        1 => hostile_path(dotdot),
    ]
}

/// A YAML double-quoted scalar for any string (control characters escaped).
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn file_item(dotdot: bool) -> impl Strategy<Value = String> {
    (source(dotdot), prop::option::of(hostile_path(dotdot))).prop_map(|(name, rename)| match rename
    {
        None => q(&name),
        Some(r) => format!("{{name: {}, rename: {}}}", q(&name), q(&r)),
    })
}

fn copy_entry(dotdot: bool) -> impl Strategy<Value = String> {
    (
        prop::option::of(prop_oneof![
            Just("../src".to_string()),
            hostile_path(dotdot)
        ]),
        prop::collection::vec(source(dotdot).prop_map(|s| q(&s)), 0..2),
        prop::collection::vec(file_item(dotdot), 0..3),
    )
        .prop_map(|(from, dirs, files)| {
            let mut fields = vec![];
            if let Some(f) = from {
                fields.push(format!("from: {}", q(&f)));
            }
            if !dirs.is_empty() || fields.is_empty() {
                fields.push(format!("dirs: {}", list(&dirs)));
            }
            if !files.is_empty() {
                fields.push(format!("files: {}", list(&files)));
            }
            format!("{{{}}}", fields.join(", "))
        })
}

fn target(dotdot: bool) -> impl Strategy<Value = String> {
    (
        prop_oneof![
            2 => prop::sample::select(vec!["/", "/bin", "evil", "/x/y"]).prop_map(str::to_string),
            3 => hostile_path(dotdot)
        ],
        prop::collection::vec(hostile_path(dotdot), 0..3),
        prop::collection::vec((hostile_path(dotdot), hostile_path(dotdot)), 0..2),
        prop::collection::vec(copy_entry(dotdot), 0..3),
    )
        .prop_map(|(t, mkdirs, links, copies)| {
            let mkdirs: Vec<String> = mkdirs.iter().map(|m| q(m)).collect();
            let links: Vec<String> = links
                .iter()
                .map(|(s, l)| format!("{{src: {}, linkname: {}}}", q(s), q(l)))
                .collect();
            format!(
                "  - target: {}\n    mkdirs: {}\n    createlinks: {}\n    copy: {}\n",
                q(&t),
                list(&mkdirs),
                list(&links),
                list(&copies)
            )
        })
}

/// Half the boms may climb with `..` (and are mostly refused with 253), half may not (and mostly
/// write).
fn bom() -> impl Strategy<Value = String> {
    any::<bool>().prop_flat_map(|dotdot| {
        prop::collection::vec(target(dotdot), 1..3)
            .prop_map(|ts| format!("targets:\n{}", ts.concat()))
    })
}

/// Symlinks pointing out of the root, as the image sees them or as the host would.
fn planted() -> impl Strategy<Value = Vec<(String, String)>> {
    let all: Vec<(&str, &str)> = vec![
        ("evil", "@ABS"),
        ("x", "../sentinel"),
        ("sentinel", "../../inst/sentinel"),
        ("chain", "chain2"),
        ("chain2", "x/../../.."),
        ("loop", "loop2"),
        ("loop2", "loop"),
        ("bin", "/../../../../.."),
        ("x/y", "@ABS/sd"),
    ];
    prop::sample::subsequence(all, 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    })
}

fn assert_confined(arena: &Arena, before: &BTreeMap<PathBuf, String>, bom: &str, run: &str) {
    let (code, stderr) = arena.run(bom);
    assert!(
        DOCUMENTED.contains(&code),
        "{run}: undocumented exit {code}\n{bom}\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{run}: panic\n{bom}\n{stderr}"
    );
    let after = arena.outside();
    assert!(
        &after == before,
        "{run}: wrote outside the root (exit {code})\n{bom}\n{stderr}\n{}",
        diff(before, &after)
    );
}

fn diff(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> String {
    let mut out = String::new();
    for (k, v) in b {
        if a.get(k) != Some(v) {
            out.push_str(&format!("+ {} {v}\n", k.display()));
        }
    }
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        out.push_str(&format!("- {}\n", k.display()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_boms_never_write_outside_the_root(
        bom in bom(),
        first in planted(),
        between in planted(),
    ) {
        let arena = Arena::new();
        arena.plant(&first);
        let before = arena.outside();
        assert_confined(&arena, &before, &bom, "first run");
        arena.plant(&between);
        assert_confined(&arena, &before, &bom, "second run");
    }
}

// ---- Named cases of SPEC B2 -------------------------------------------------------------------

/// Runs `bom` in a fresh arena (after planting `links`); returns the arena, exit and stderr, and
/// asserts the outside is unchanged.
fn named(bom: &str, links: &[(&str, &str)]) -> (Arena, i32, String) {
    let arena = Arena::new();
    let links: Vec<(String, String)> = links
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    arena.plant(&links);
    let before = arena.outside();
    let (code, stderr) = arena.run(bom);
    assert_eq!(before, arena.outside(), "wrote outside the root\n{stderr}");
    (arena, code, stderr)
}

fn image_entries(root: &Path) -> Vec<PathBuf> {
    snapshot(root).into_keys().collect()
}

#[test]
fn dotdot_above_the_root_in_each_field_is_253_before_any_write() {
    let fields = [
        "targets: [{target: /../sentinel, mkdirs: [x]}]",
        "targets: [{target: /ok, mkdirs: [a, ../../../sentinel/m]}]",
        "targets: [{target: /ok, createlinks: [{src: /etc, linkname: ../../sentinel/l}]}]",
        "targets: [{target: /ok, copy: [{files: [{name: ../src/f, rename: ../../../sentinel/r}]}]}]",
        "targets: [{target: /ok, mkdirs: [$EVIL/sentinel/v]}]",
        "targets: [{target: \"${EVIL}/sentinel\", mkdirs: [v]}]",
        "targets: [{target: /ok, copy: [{files: [{name: ../src/f, rename: \"${UNSET:-../..}/../sentinel/r\"}]}]}]",
    ];
    for bom in fields {
        // A valid first target proves that nothing is written before the check fails.
        let bom = format!("{bom}\n").replace(
            "targets: [",
            "targets: [{target: /first, mkdirs: [m], copy: [{files: [../src/f]}]}, ",
        );
        let (arena, code, stderr) = named(&bom, &[]);
        assert_eq!(code, 253, "{bom}\n{stderr}");
        assert!(stderr.contains("outside"), "{bom}\n{stderr}");
        assert!(
            image_entries(&arena.root()).len() <= 1,
            "{bom}: wrote into the root"
        );
    }
}

#[test]
fn dotdot_that_stays_inside_is_allowed() {
    let (arena, code, stderr) = named(
        "targets: [{target: /a/../b, mkdirs: [c/../d], copy: [{files: [{name: ../src/f, rename: x/../y}]}]}]\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(arena.root().join("b/d").is_dir());
    assert!(arena.root().join("b/y").is_file());
}

#[test]
fn absolute_mkdirs_linkname_and_rename_land_inside_the_root() {
    let abs = "@ABS";
    let bom = format!(
        "targets: [{{target: /t, mkdirs: [{abs}/m], createlinks: [{{src: /etc, linkname: {abs}/l}}], copy: [{{files: [{{name: ../src/f, rename: {abs}/r}}]}}]}}]\n"
    );
    let arena = Arena::new();
    let sentinel = arena.sentinel();
    let bom = bom.replace(abs, sentinel.to_str().unwrap());
    let before = arena.outside();
    let (code, stderr) = arena.run(&bom);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(before, arena.outside());
    let inside = arena.root().join(sentinel.strip_prefix("/").unwrap());
    assert!(inside.join("m").is_dir(), "{}", inside.display());
    assert!(inside.join("l").symlink_metadata().unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(inside.join("r")).unwrap(), "f");
}

#[test]
fn an_empty_variable_prefix_stays_inside_the_root() {
    let (arena, code, stderr) = named(
        "targets: [{target: /t, copy: [{files: [{name: ../src/f, rename: \"${EMPTY}/etc/x\"}]}]}]\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(arena.root().join("etc/x").is_file());
}

/// Plants `links`, pre-creates `lands` inside the image (`@ABS` = the sentinel's host path),
/// runs a bom copying one file into `/{target}`, and checks it arrived at `lands` in the image.
fn lands_inside(links: &[(&str, &str)], target: &str, lands: &str) {
    let arena = Arena::new();
    let lands = lands.replace("@ABS", arena.sentinel().to_str().unwrap());
    let lands = arena.root().join(lands.trim_start_matches('/'));
    std::fs::create_dir_all(&lands).unwrap();
    let owned: Vec<(String, String)> = links
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    arena.plant(&owned);
    let before = arena.outside();
    let bom = format!("targets: [{{target: /{target}, copy: [{{files: [../src/f]}}]}}]\n");
    let (code, stderr) = arena.run(&bom);
    assert_eq!(code, 0, "{bom}\n{stderr}");
    assert_eq!(before, arena.outside(), "{bom}\n{stderr}");
    assert!(
        lands.join("f").is_file(),
        "{bom}: not at {}",
        lands.display()
    );
}

#[test]
fn planted_symlinks_are_followed_inside_the_image() {
    // An absolute link to a host dir, and a relative one leaving the root, resolve in the image.
    lands_inside(&[("abs", "@ABS")], "abs", "@ABS");
    lands_inside(&[("rel", "../sentinel")], "rel", "sentinel");
    lands_inside(&[("c1", "c2"), ("c2", "sentinel/sd")], "c1", "sentinel/sd");
}

/// In the image `/..` is `/`, so `/up -> ../../x` means `/x`. The tool's pre-write check
/// (`check_existing` in src/apply/mod.rs) asks the HOST whether the link leads to a directory
/// (`host.is_dir()` follows it on the host), so this works only when the same path happens to
/// exist beside the root, and otherwise fails with "/up is a file in the root" (252).
#[test]
fn a_link_climbing_above_the_root_resolves_at_the_root() {
    lands_inside(&[("up", "../../../nothere/sd")], "up", "nothere/sd");
    lands_inside(
        &[("chain", "chain2"), ("chain2", "/../nothere")],
        "chain",
        "nothere",
    );
}

#[test]
fn a_symlink_loop_in_the_root_is_an_error_not_a_hang() {
    let (_arena, code, stderr) = named(
        "targets: [{target: /loop/x, copy: [{files: [../src/f]}]}]\n",
        &[("loop", "loop2"), ("loop2", "loop")],
    );
    assert!(DOCUMENTED.contains(&code) && code != 0, "{code}\n{stderr}");
    assert!(stderr.contains("loop"), "{stderr}");
}

#[test]
fn a_symlink_planted_between_two_runs_is_not_followed_onto_the_host() {
    let arena = Arena::new();
    let bom = "targets: [{target: /data, copy: [{dirs: [../src/d/]}]}, {target: /, copy: [{files: [{name: ../src/f, rename: other}]}]}]\n";
    let before = arena.outside();
    assert_eq!(arena.run(bom).0, 0);
    // Swap the copied dir for a link to the sentinel, and one file for a link to a sentinel file.
    arena.plant(&[
        ("data".to_string(), "@ABS".to_string()),
        ("other".to_string(), "@ABS/s1".to_string()),
    ]);
    let (code, stderr) = arena.run(bom);
    assert!(DOCUMENTED.contains(&code), "{stderr}");
    assert_eq!(before, arena.outside(), "{stderr}");
}

// ---- Links made by the run itself (issue 9, defect 1) -------------------------------------------

/// A bom whose first target creates links and whose later entries write under them: the writes
/// land under the links' targets *inside* the image (or the run is refused before writing), never
/// on the host.
#[test]
fn writes_under_a_link_made_in_the_same_run_stay_inside() {
    let cases = [
        // lib64 -> <host dir>, then a file copied into /lib64.
        "targets: [{target: /, createlinks: [{src: @ABS, linkname: lib64}]}, {target: /lib64, copy: [{files: [../src/f]}]}]\n",
        // rename: l/x under a link l made in the same run.
        "targets: [{target: /, createlinks: [{src: @ABS, linkname: l}], copy: [{files: [{name: ../src/f, rename: l/x}]}]}]\n",
        // a second link l/m under l.
        "targets: [{target: /, createlinks: [{src: @ABS, linkname: l}, {src: /etc, linkname: l/m}]}]\n",
        // a dir copy under l.
        "targets: [{target: /, createlinks: [{src: @ABS, linkname: l}]}, {target: /l, copy: [{dirs: [../src/d]}]}]\n",
    ];
    for case in cases {
        let arena = Arena::new();
        let sentinel = arena.sentinel();
        let bom = case.replace("@ABS", sentinel.to_str().unwrap());
        let before = arena.outside();
        let (code, stderr) = arena.run(&bom);
        assert_eq!(
            before,
            arena.outside(),
            "wrote outside the root\n{bom}\n{stderr}"
        );
        assert!(code == 0 || code == 253, "{code}\n{bom}\n{stderr}");
        if code == 0 {
            // What was written under the link is under its target inside the image.
            let inside = arena.root().join(sentinel.strip_prefix("/").unwrap());
            let names: Vec<_> = std::fs::read_dir(&inside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                !names.is_empty(),
                "{bom}: nothing under {}",
                inside.display()
            );
        }
    }
}

// ---- The writer itself, through the library, with openat2 and with the component walk ---------

mod writer {
    use super::*;
    use copy_bom::apply::apply;
    use copy_bom::fs::{CopyOptions, ImagePath, ImageRoot};
    use copy_bom::plan::image::{ImageMap, Node, NodeKind, Origin};
    use copy_bom::plan::{Op, Plan, PlannedOp};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn images(root: &Path) -> [ImageRoot; 2] {
        [
            ImageRoot::open(root).unwrap(),
            ImageRoot::open(root).unwrap().force_component_walk(),
        ]
    }

    fn plan() -> Plan {
        Plan {
            boms: vec![PathBuf::from("bom.yaml")],
            ops: vec![PlannedOp {
                bom: 0,
                at: Some("bom.yaml:1:1".into()),
                op: Op::Mkdir {
                    dest: ImagePath::root(),
                },
            }],
            warnings: Vec::new(),
        }
    }

    fn map(nodes: Vec<(String, NodeKind)>) -> ImageMap {
        let mut map = ImageMap::default();
        for (path, kind) in nodes {
            map.nodes.insert(
                ImagePath::parse(&path).unwrap(),
                Node {
                    kind,
                    origin: Origin::Listed,
                    op: 0,
                    entry: None,
                    requested: None,
                },
            );
        }
        map
    }

    fn write(root: &ImageRoot, nodes: Vec<(String, NodeKind)>) -> copy_bom::error::Result<()> {
        apply(&plan(), &map(nodes), root, &CopyOptions::default(), &|| {}).map(drop)
    }

    fn link(target: &Path) -> NodeKind {
        NodeKind::Link {
            target: target.to_path_buf(),
        }
    }

    /// The image path `host` has inside the image.
    fn inside(arena: &Arena, host: &Path) -> PathBuf {
        arena.root().join(host.strip_prefix("/").unwrap())
    }

    #[test]
    fn a_link_node_to_a_host_dir_then_a_file_under_it() {
        for i in 0..2 {
            let arena = Arena::new();
            let image = &images(&arena.root())[i];
            let host = arena.sentinel();
            let src = arena.ws().join("src/f");
            let before = arena.outside();
            write(
                image,
                vec![
                    ("/lib64".into(), link(&host)),
                    ("/lib64/x".into(), NodeKind::File { src: src.clone() }),
                    ("/lib64/sub/y".into(), NodeKind::File { src }),
                    ("/lib64/m".into(), link(Path::new("/etc"))),
                ],
            )
            .unwrap();
            assert_eq!(before, arena.outside(), "walk {i}: wrote on the host");
            let at = inside(&arena, &host);
            assert_eq!(std::fs::read_to_string(at.join("x")).unwrap(), "f");
            assert_eq!(std::fs::read_to_string(at.join("sub/y")).unwrap(), "f");
            assert_eq!(std::fs::read_link(at.join("m")).unwrap(), Path::new("/etc"));
        }
    }

    #[test]
    fn a_planted_link_then_a_file_and_a_link_under_it() {
        for i in 0..2 {
            let arena = Arena::new();
            let host = arena.sentinel();
            arena.plant(&[
                ("l".into(), "@ABS".into()),
                ("r".into(), "../../sentinel".into()),
            ]);
            let image = &images(&arena.root())[i];
            let src = arena.ws().join("src/f");
            let before = arena.outside();
            write(
                image,
                vec![
                    ("/l/x".into(), NodeKind::File { src: src.clone() }),
                    ("/l/m".into(), link(Path::new("x"))),
                    ("/r/s1".into(), NodeKind::File { src }),
                ],
            )
            .unwrap();
            assert_eq!(before, arena.outside(), "walk {i}: wrote on the host");
            assert!(inside(&arena, &host).join("x").is_file());
            assert!(inside(&arena, &host).join("m").is_symlink());
            // `..` stops at the image root: r -> ../../sentinel is /sentinel in the image.
            assert!(arena.root().join("sentinel/s1").is_file());
        }
    }

    /// A thread keeps swapping a directory of the image for a link to a host directory (and back)
    /// while files are written under it: whatever happens to the build, the host is unchanged.
    #[test]
    fn swapping_a_dir_for_a_host_link_during_a_build_never_writes_on_the_host() {
        for i in 0..2 {
            let arena = Arena::new();
            let root = arena.root();
            let image = &images(&root)[i];
            let src = arena.ws().join("src/f");
            let nodes: Vec<(String, NodeKind)> = (0..300)
                .map(|n| {
                    (
                        format!("/d/sub{}/f{n}", n % 7),
                        NodeKind::File { src: src.clone() },
                    )
                })
                .collect();
            let before = arena.outside();
            let stop = AtomicBool::new(false);
            let swaps = AtomicUsize::new(0);
            let (mut ok, mut failed) = (0, 0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let d = root.join("d");
                    let parked = root.join("parked");
                    while !stop.load(Ordering::Relaxed) {
                        // A build may recreate d between the link's removal and the rename
                        // back: the parked copy is then stale, and would block every later swap.
                        if parked.symlink_metadata().is_ok() {
                            std::fs::remove_dir_all(&parked).ok();
                        }
                        // d is a real dir: park it and put a link to the host in its place.
                        if std::fs::rename(&d, &parked).is_ok() {
                            std::os::unix::fs::symlink(arena.sentinel(), &d).ok();
                            std::thread::yield_now();
                            std::fs::remove_file(&d).ok();
                            std::fs::rename(&parked, &d).ok();
                            swaps.fetch_add(1, Ordering::Relaxed);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                });
                // At least 20 builds, and more until the swapper has really raced them (a loaded
                // machine may starve it), within a bound.
                let started = std::time::Instant::now();
                while ok + failed < 20
                    || (swaps.load(Ordering::Relaxed) <= 10
                        && started.elapsed() < std::time::Duration::from_secs(120))
                {
                    match write(image, nodes.clone()) {
                        Ok(()) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
            assert_eq!(before, arena.outside(), "walk {i}: wrote on the host");
            let swaps = swaps.into_inner();
            assert!(
                swaps > 10,
                "walk {i}: only {swaps} swaps ({ok} builds ok, {failed} failed)"
            );
            // The writes that went through the link landed in the image's own copy of the path.
            eprintln!("walk {i}: {swaps} swaps, {ok} builds ok, {failed} failed");
        }
    }
}
