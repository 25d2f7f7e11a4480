//! copy_file, make_symlink and copy_dir_metadata: atomic, incremental, never following a
//! destination link, never leaving a temporary file behind.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use copy_bom::fs::{
    CopyOptions, EntryKind, Outcome, TreeEntry, copy_dir_metadata, copy_file, make_symlink,
};
use filetime::FileTime;
use tempfile::TempDir;

const OPTS: CopyOptions = CopyOptions {
    preserve_owner: false,
};

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fx = Fixture {
            dir: TempDir::new().unwrap(),
        };
        fs::create_dir_all(fx.path("src")).unwrap();
        fs::create_dir_all(fx.path("dest")).unwrap();
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A source file with known content, mode and mtime.
    fn source(&self, name: &str, content: &str, mode: u32, mtime: i64) -> PathBuf {
        let path = self.path(&format!("src/{name}"));
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        filetime::set_file_mtime(&path, FileTime::from_unix_time(mtime, 123_456_789)).unwrap();
        path
    }
}

/// Temporary files left in `dir` by an interrupted or failed copy.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".copy_bom-"))
        .collect()
}

fn mtime(path: &Path) -> FileTime {
    FileTime::from_last_modification_time(&fs::metadata(path).unwrap())
}

#[test]
fn a_new_file_gets_content_mode_and_mtime() {
    let fx = Fixture::new();
    let src = fx.source("app", "hello", 0o4751, 1_600_000_000);
    let dest = fx.path("dest/app");
    assert_eq!(
        copy_file(&src, &dest, &OPTS).unwrap(),
        Outcome::Copied { bytes: 5 }
    );
    assert_eq!(fs::read_to_string(&dest).unwrap(), "hello");
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o4751);
    assert_eq!(mtime(&dest), mtime(&src));
    assert!(leftovers(&fx.path("dest")).is_empty());
}

#[test]
fn same_size_and_mtime_is_left_alone() {
    let fx = Fixture::new();
    let src = fx.source("lib.so", "abc", 0o644, 1_600_000_000);
    let dest = fx.path("dest/lib.so");
    copy_file(&src, &dest, &OPTS).unwrap();
    let inode = fs::metadata(&dest).unwrap().ino();
    assert_eq!(copy_file(&src, &dest, &OPTS).unwrap(), Outcome::Unchanged);
    assert_eq!(fs::metadata(&dest).unwrap().ino(), inode, "not rewritten");
    // rsync's quick check trusts size and mtime, even when the bytes differ.
    fs::write(&src, "xyz").unwrap();
    filetime::set_file_mtime(&src, mtime(&dest)).unwrap();
    assert_eq!(copy_file(&src, &dest, &OPTS).unwrap(), Outcome::Unchanged);
    assert_eq!(fs::read_to_string(&dest).unwrap(), "abc");
}

#[test]
fn a_touched_source_is_copied_again() {
    let fx = Fixture::new();
    let src = fx.source("data", "one", 0o644, 1_600_000_000);
    let dest = fx.path("dest/data");
    copy_file(&src, &dest, &OPTS).unwrap();
    let inode = fs::metadata(&dest).unwrap().ino();
    fs::write(&src, "two").unwrap();
    filetime::set_file_mtime(&src, FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
    assert_eq!(
        copy_file(&src, &dest, &OPTS).unwrap(),
        Outcome::Copied { bytes: 3 }
    );
    assert_eq!(fs::read_to_string(&dest).unwrap(), "two");
    assert_eq!(mtime(&dest), FileTime::from_unix_time(1_700_000_000, 0));
    assert_ne!(
        fs::metadata(&dest).unwrap().ino(),
        inode,
        "replaced by rename"
    );
}

#[test]
fn a_changed_mode_is_reapplied_without_a_copy() {
    let fx = Fixture::new();
    let src = fx.source("tool", "#!/bin/sh", 0o755, 1_600_000_000);
    let dest = fx.path("dest/tool");
    copy_file(&src, &dest, &OPTS).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(copy_file(&src, &dest, &OPTS).unwrap(), Outcome::Unchanged);
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn a_source_symlink_is_followed() {
    let fx = Fixture::new();
    let real = fx.source("libz.so.1.2", "zlib", 0o644, 1_600_000_000);
    let link = fx.path("src/libz.so.1");
    symlink("libz.so.1.2", &link).unwrap();
    let dest = fx.path("dest/libz.so.1");
    copy_file(&link, &dest, &OPTS).unwrap();
    let meta = fs::symlink_metadata(&dest).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read_to_string(&dest).unwrap(), "zlib");
    assert_eq!(mtime(&dest), mtime(&real));
}

#[test]
fn a_destination_symlink_is_replaced_not_followed() {
    let fx = Fixture::new();
    let victim = fx.path("victim");
    fs::write(&victim, "host file").unwrap();
    let before = fs::metadata(&victim).unwrap();
    let dest = fx.path("dest/passwd");
    symlink(&victim, &dest).unwrap();
    let src = fx.source("passwd", "image file", 0o644, 1_600_000_000);
    assert!(matches!(
        copy_file(&src, &dest, &OPTS).unwrap(),
        Outcome::Copied { .. }
    ));
    assert!(fs::symlink_metadata(&dest).unwrap().is_file());
    assert_eq!(fs::read_to_string(&dest).unwrap(), "image file");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file");
    assert_eq!(fs::metadata(&victim).unwrap().mtime(), before.mtime());
}

#[test]
fn a_destination_directory_is_an_error() {
    let fx = Fixture::new();
    let src = fx.source("lib", "x", 0o644, 1_600_000_000);
    let dest = fx.path("dest/lib");
    fs::create_dir(&dest).unwrap();
    let err = copy_file(&src, &dest, &OPTS).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
    assert!(
        err.to_string().starts_with(&dest.display().to_string()),
        "{err}"
    );
    assert!(leftovers(&fx.path("dest")).is_empty());
}

#[test]
fn source_errors_name_the_source() {
    let fx = Fixture::new();
    let missing = fx.path("src/missing");
    let err = copy_file(&missing, &fx.path("dest/x"), &OPTS).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
    let err = copy_file(&fx.path("src"), &fx.path("dest/x"), &OPTS).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
    let err = copy_file(Path::new("/dev/null"), &fx.path("dest/x"), &OPTS).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn a_failed_read_leaves_no_temporary_file_and_no_destination() {
    let fx = Fixture::new();
    // A regular file whose first read fails (EIO): the error happens after the temp file exists.
    let src = Path::new("/proc/self/mem");
    let dest = fx.path("dest/mem");
    let err = copy_file(src, &dest, &OPTS).unwrap_err();
    assert!(
        err.to_string().contains("copying from /proc/self/mem"),
        "{err}"
    );
    assert!(leftovers(&fx.path("dest")).is_empty());
    assert!(!dest.exists());
}

#[test]
fn owner_is_kept_when_asked() {
    if unsafe { libc::geteuid() } != 0 {
        return; // Only root can give files away; CI runs as root.
    }
    let fx = Fixture::new();
    let src = fx.source("owned", "x", 0o2755, 1_600_000_000);
    std::os::unix::fs::chown(&src, Some(1234), Some(5678)).unwrap();
    // chown clears setgid on an executable: give it back, the copy must keep it.
    fs::set_permissions(&src, fs::Permissions::from_mode(0o2755)).unwrap();
    let dest = fx.path("dest/owned");
    let opts = CopyOptions {
        preserve_owner: true,
    };
    copy_file(&src, &dest, &opts).unwrap();
    let meta = fs::metadata(&dest).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 5678, 0o2755)
    );
    std::os::unix::fs::chown(&dest, Some(0), Some(0)).unwrap();
    assert_eq!(copy_file(&src, &dest, &opts).unwrap(), Outcome::Unchanged);
    let meta = fs::metadata(&dest).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 5678, 0o2755)
    );
}

#[test]
fn make_symlink_creates_keeps_and_replaces() {
    let fx = Fixture::new();
    let link = fx.path("dest/lib64");
    assert_eq!(
        make_symlink(Path::new("/lib"), &link).unwrap(),
        Outcome::Copied { bytes: 0 }
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("/lib"));
    let inode = fs::symlink_metadata(&link).unwrap().ino();
    assert_eq!(
        make_symlink(Path::new("/lib"), &link).unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(fs::symlink_metadata(&link).unwrap().ino(), inode);
    // Same path, different spelling: still a different link content.
    assert!(matches!(
        make_symlink(Path::new("//lib"), &link).unwrap(),
        Outcome::Copied { .. }
    ));
    assert_eq!(fs::read_link(&link).unwrap().as_os_str(), "//lib");
    make_symlink(Path::new("usr/lib"), &link).unwrap();
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("usr/lib"));
    assert!(leftovers(&fx.path("dest")).is_empty());
}

#[test]
fn make_symlink_replaces_a_file_but_not_a_directory() {
    let fx = Fixture::new();
    let file = fx.path("dest/file");
    fs::write(&file, "x").unwrap();
    make_symlink(Path::new("../x"), &file).unwrap();
    assert_eq!(fs::read_link(&file).unwrap(), Path::new("../x"));
    let dir = fx.path("dest/dir");
    fs::create_dir(&dir).unwrap();
    let err = make_symlink(Path::new("x"), &dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IsADirectory);
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert!(dir.is_dir());
    let err = make_symlink(Path::new("x"), &fx.path("missing/link")).unwrap_err();
    assert!(err.to_string().contains("missing/link"), "{err}");
    assert!(leftovers(&fx.path("dest")).is_empty());
}

#[test]
fn copy_dir_metadata_sets_mode_and_mtime() {
    let fx = Fixture::new();
    let dest = fx.path("dest/share");
    fs::create_dir(&dest).unwrap();
    let entry = TreeEntry {
        rel: PathBuf::from("share"),
        kind: EntryKind::Dir,
        mode: 0o40750,
        mtime: FileTime::from_unix_time(1_500_000_000, 42),
        uid: 0,
        gid: 0,
        size: 4096,
    };
    copy_dir_metadata(&entry, &dest, &OPTS).unwrap();
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(mtime(&dest), entry.mtime);
    let file = fx.path("dest/file");
    fs::write(&file, "").unwrap();
    assert_eq!(
        copy_dir_metadata(&entry, &file, &OPTS).unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
}
