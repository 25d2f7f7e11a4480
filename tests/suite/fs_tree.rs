//! scan_tree: what a dir copy transfers, as `rsync -a --copy-unsafe-links` would.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use copy_bom::fs::{EntryKind, Excludes, TreeScan, scan_tree};
use tempfile::TempDir;

/// a/lib with files, a subdirectory, and links of every kind; a/other beside it.
fn fixture() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let top = dir.path().join("a");
    let lib = top.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    fs::create_dir_all(top.join("other/deep")).unwrap();
    fs::write(lib.join("libz.so.1.2"), "zlib").unwrap();
    fs::write(lib.join("sub/data"), "data").unwrap();
    fs::write(top.join("other/outside.txt"), "outside").unwrap();
    fs::write(top.join("other/deep/f"), "deep").unwrap();
    symlink("libz.so.1.2", lib.join("libz.so.1")).unwrap();
    symlink("../libz.so.1.2", lib.join("sub/up")).unwrap();
    symlink("../other/outside.txt", lib.join("leaves")).unwrap();
    symlink(top.join("other/outside.txt"), lib.join("abs_file")).unwrap();
    symlink(top.join("other"), lib.join("abs_dir")).unwrap();
    symlink("/nonexistent/copy_bom/x", lib.join("dangling")).unwrap();
    symlink("missing-but-inside", lib.join("safe_dangling")).unwrap();
    (dir, lib)
}

fn no_excludes() -> Excludes {
    Excludes::new(&[]).unwrap()
}

fn rels(scan: &TreeScan) -> Vec<String> {
    scan.entries
        .iter()
        .map(|e| e.rel.display().to_string())
        .collect()
}

fn kind<'a>(scan: &'a TreeScan, rel: &str) -> &'a EntryKind {
    &scan
        .entries
        .iter()
        .find(|e| e.rel == Path::new(rel))
        .unwrap()
        .kind
}

#[test]
fn without_a_trailing_slash_entries_start_with_the_dir_name() {
    let (_dir, lib) = fixture();
    let scan = scan_tree(&lib, false, &no_excludes()).unwrap();
    assert_eq!(
        rels(&scan),
        [
            "lib",
            "lib/abs_dir",
            "lib/abs_dir/deep",
            "lib/abs_dir/deep/f",
            "lib/abs_dir/outside.txt",
            "lib/abs_file",
            "lib/leaves",
            "lib/libz.so.1",
            "lib/libz.so.1.2",
            "lib/safe_dangling",
            "lib/sub",
            "lib/sub/data",
            "lib/sub/up",
        ]
    );
    assert_eq!(*kind(&scan, "lib"), EntryKind::Dir);
    assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
    assert!(scan.warnings[0].contains("dangling") && scan.warnings[0].contains("no referent"));
}

#[test]
fn with_a_trailing_slash_entries_are_the_contents() {
    let (_dir, lib) = fixture();
    let scan = scan_tree(&lib, true, &no_excludes()).unwrap();
    let names = rels(&scan);
    assert_eq!(names[0], "abs_dir");
    assert!(names.contains(&"sub/data".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("lib/")));
}

#[test]
fn relative_links_inside_the_tree_are_kept() {
    let (_dir, lib) = fixture();
    for contents_only in [false, true] {
        let scan = scan_tree(&lib, contents_only, &no_excludes()).unwrap();
        let prefix = if contents_only { "" } else { "lib/" };
        let link = |rel: &str| kind(&scan, &format!("{prefix}{rel}")).clone();
        assert_eq!(
            link("libz.so.1"),
            EntryKind::Symlink {
                target: "libz.so.1.2".into()
            }
        );
        assert_eq!(
            link("sub/up"),
            EntryKind::Symlink {
                target: "../libz.so.1.2".into()
            }
        );
        assert_eq!(
            link("safe_dangling"),
            EntryKind::Symlink {
                target: "missing-but-inside".into()
            }
        );
    }
}

#[test]
fn links_leaving_the_tree_or_absolute_are_dereferenced() {
    let (dir, lib) = fixture();
    let scan = scan_tree(&lib, false, &no_excludes()).unwrap();
    let outside = fs::canonicalize(dir.path().join("a/other/outside.txt")).unwrap();
    // Without a trailing slash the transfer root is `a`: a link to the sibling `a/other` stays
    // inside it and is kept, as rsync keeps it (tests/fs_rsync.rs compares with rsync).
    assert_eq!(
        *kind(&scan, "lib/leaves"),
        EntryKind::Symlink {
            target: "../other/outside.txt".into()
        }
    );
    let contents = scan_tree(&lib, true, &no_excludes()).unwrap();
    assert_eq!(
        *kind(&contents, "leaves"),
        EntryKind::File {
            src: outside.clone()
        }
    );
    assert_eq!(
        *kind(&scan, "lib/abs_file"),
        EntryKind::File { src: outside }
    );
    assert_eq!(*kind(&scan, "lib/abs_dir"), EntryKind::Dir);
    let deep = kind(&scan, "lib/abs_dir/deep/f");
    assert!(matches!(deep, EntryKind::File { src } if fs::read_to_string(src).unwrap() == "deep"));
    let entry = contents
        .entries
        .iter()
        .find(|e| e.rel == Path::new("leaves"))
        .unwrap();
    assert_eq!(entry.size, 7, "the referent's metadata");
}

#[test]
fn an_absolute_link_to_an_inside_file_is_dereferenced_too() {
    let (_dir, lib) = fixture();
    symlink(lib.join("sub/data"), lib.join("abs_inside")).unwrap();
    let scan = scan_tree(&lib, true, &no_excludes()).unwrap();
    assert!(matches!(kind(&scan, "abs_inside"), EntryKind::File { .. }));
}

#[test]
fn a_directory_link_loop_terminates_with_a_warning() {
    let (_dir, lib) = fixture();
    symlink("../../lib", lib.join("sub/loop")).unwrap();
    symlink(&lib, lib.join("sub/abs_loop")).unwrap();
    let scan = scan_tree(&lib, true, &no_excludes()).unwrap();
    let names = rels(&scan);
    assert!(
        !names.iter().any(|n| n.starts_with("sub/loop")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("sub/abs_loop")),
        "{names:?}"
    );
    let loops = scan.warnings.iter().filter(|w| w.contains("loop")).count();
    assert_eq!(loops, 2, "{:?}", scan.warnings);
}

#[test]
fn excludes_prune_with_paths_from_the_transfer_root() {
    let (_dir, lib) = fixture();
    let patterns = [
        "sub/".to_string(),
        "/lib/abs_dir/deep".to_string(),
        "*.1".to_string(),
    ];
    let excludes = Excludes::new(&patterns).unwrap();
    let scan = scan_tree(&lib, false, &excludes).unwrap();
    let names = rels(&scan);
    assert!(!names.iter().any(|n| n.starts_with("lib/sub")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("lib/abs_dir/deep")),
        "{names:?}"
    );
    assert!(names.contains(&"lib/abs_dir/outside.txt".to_string()));
    assert!(!names.contains(&"lib/libz.so.1".to_string()));
    assert!(names.contains(&"lib/libz.so.1.2".to_string()));
    let whole = Excludes::new(&["lib".to_string()]).unwrap();
    assert!(scan_tree(&lib, false, &whole).unwrap().entries.is_empty());
}

#[test]
fn excluding_a_dangling_link_silences_its_warning() {
    let (_dir, lib) = fixture();
    let excludes = Excludes::new(&["dangling".to_string()]).unwrap();
    let scan = scan_tree(&lib, true, &excludes).unwrap();
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
}

#[test]
fn a_top_link_is_followed_and_bad_sources_are_errors() {
    let (dir, lib) = fixture();
    let alias = dir.path().join("alias");
    symlink(&lib, &alias).unwrap();
    let scan = scan_tree(&alias, false, &no_excludes()).unwrap();
    assert_eq!(rels(&scan)[0], "alias");
    assert_eq!(
        *kind(&scan, "alias/libz.so.1"),
        EntryKind::Symlink {
            target: "libz.so.1.2".into()
        }
    );
    let missing = dir.path().join("missing");
    let err = scan_tree(&missing, false, &no_excludes()).unwrap_err();
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
    let file = lib.join("libz.so.1.2");
    assert!(scan_tree(&file, true, &no_excludes()).is_err());
}

#[test]
fn fifos_are_kept_as_special_entries() {
    let (_dir, lib) = fixture();
    let fifo = lib.join("pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let scan = scan_tree(&lib, true, &no_excludes()).unwrap();
    assert_eq!(*kind(&scan, "pipe"), EntryKind::Special { rdev: 0 });
    let excludes = Excludes::new(&["pipe".to_string(), "dangling".to_string()]).unwrap();
    let scan = scan_tree(&lib, true, &excludes).unwrap();
    assert!(!rels(&scan).contains(&"pipe".to_string()));
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
}
