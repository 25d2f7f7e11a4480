//! ImageRoot::copy_file, make_symlink, make_special and copy_dir_metadata: atomic, incremental,
//! never following a destination link, never leaving a temporary file behind. Each test runs with
//! the kernel's openat2 and again with the component walk that replaces it on old kernels.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use copy_bom::fs::{CopyOptions, EntryKind, ImageRoot, Outcome, TreeEntry};
use filetime::FileTime;
use tempfile::TempDir;

const OPTS: CopyOptions = CopyOptions {
    preserve_owner: false,
    epoch: None,
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

thread_local! {
    /// Whether this thread's calls force the component walk (see `both_walks`).
    static WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `test` with openat2, then with the component walk.
fn both_walks(test: impl Fn()) {
    for walk in [false, true] {
        WALK.with(|w| w.set(walk));
        test();
    }
}

/// The image whose root is the `dest` directory above `host`, and `host`'s image path in it.
fn image_of(host: &Path) -> (ImageRoot, PathBuf) {
    let root = host
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "dest"))
        .expect("a path under dest/");
    let image = ImageRoot::open_existing(root).unwrap();
    let image = if WALK.with(|w| w.get()) {
        image.force_component_walk()
    } else {
        image
    };
    (image, Path::new("/").join(host.strip_prefix(root).unwrap()))
}

fn copy_file(src: &Path, dest: &Path, opts: &CopyOptions) -> io::Result<Outcome> {
    let (image, p) = image_of(dest);
    image.copy_file(src, &p, opts)
}

fn make_symlink(target: &Path, link: &Path) -> io::Result<Outcome> {
    let (image, p) = image_of(link);
    image.make_symlink(target, &p, None, &OPTS)
}

fn copy_dir_metadata(entry: &TreeEntry, dest: &Path, opts: &CopyOptions) -> io::Result<()> {
    let (image, p) = image_of(dest);
    image.copy_dir_metadata(&p, entry, opts)
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
    both_walks(|| {
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
    });
}

#[test]
fn same_size_and_mtime_is_left_alone() {
    both_walks(|| {
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
    });
}

#[test]
fn a_touched_source_is_copied_again() {
    both_walks(|| {
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
    });
}

#[test]
fn a_changed_mode_is_reapplied_without_a_copy() {
    both_walks(|| {
        let fx = Fixture::new();
        let src = fx.source("tool", "#!/bin/sh", 0o755, 1_600_000_000);
        let dest = fx.path("dest/tool");
        copy_file(&src, &dest, &OPTS).unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(copy_file(&src, &dest, &OPTS).unwrap(), Outcome::Unchanged);
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o755);
    });
}

#[test]
fn a_source_symlink_is_followed() {
    both_walks(|| {
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
    });
}

#[test]
fn a_destination_symlink_is_replaced_not_followed() {
    both_walks(|| {
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
    });
}

#[test]
fn a_destination_directory_is_an_error() {
    both_walks(|| {
        let fx = Fixture::new();
        let src = fx.source("lib", "x", 0o644, 1_600_000_000);
        let dest = fx.path("dest/lib");
        fs::create_dir(&dest).unwrap();
        let err = copy_file(&src, &dest, &OPTS).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsADirectory);
        assert!(err.to_string().starts_with("/lib:"), "{err}");
        assert!(leftovers(&fx.path("dest")).is_empty());
    });
}

#[test]
fn source_errors_name_the_source() {
    both_walks(|| {
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
    });
}

#[test]
fn a_failed_read_leaves_no_temporary_file_and_no_destination() {
    both_walks(|| {
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
    });
}

#[test]
#[ignore = "needs root"]
fn owner_is_kept_when_asked() {
    both_walks(|| {
        let fx = Fixture::new();
        let src = fx.source("owned", "x", 0o2755, 1_600_000_000);
        std::os::unix::fs::chown(&src, Some(1234), Some(5678)).unwrap();
        // chown clears setgid on an executable: give it back, the copy must keep it.
        fs::set_permissions(&src, fs::Permissions::from_mode(0o2755)).unwrap();
        let dest = fx.path("dest/owned");
        let opts = CopyOptions {
            preserve_owner: true,
            epoch: None,
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
    });
}

#[test]
fn make_symlink_creates_keeps_and_replaces() {
    both_walks(|| {
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
    });
}

#[test]
fn make_symlink_replaces_a_file_but_not_a_directory() {
    both_walks(|| {
        let fx = Fixture::new();
        let file = fx.path("dest/file");
        fs::write(&file, "x").unwrap();
        make_symlink(Path::new("../x"), &file).unwrap();
        assert_eq!(fs::read_link(&file).unwrap(), Path::new("../x"));
        let dir = fx.path("dest/dir");
        fs::create_dir(&dir).unwrap();
        let err = make_symlink(Path::new("x"), &dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsADirectory);
        assert!(err.to_string().starts_with("/dir:"), "{err}");
        assert!(dir.is_dir());
        // Missing parents are created in the image; a file where a parent should be is an error
        // naming the path.
        make_symlink(Path::new("x"), &fx.path("dest/missing/link")).unwrap();
        assert!(fx.path("dest/missing").is_dir());
        fs::write(fx.path("dest/plain"), "x").unwrap();
        let err = make_symlink(Path::new("x"), &fx.path("dest/plain/link")).unwrap_err();
        assert!(err.to_string().contains("/plain"), "{err}");
        assert!(leftovers(&fx.path("dest")).is_empty());
    });
}

#[test]
fn copy_dir_metadata_sets_mode_and_mtime() {
    both_walks(|| {
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
    });
}

fn entry(rel: &str, kind: EntryKind, mode: u32, uid: u32) -> TreeEntry {
    TreeEntry {
        rel: PathBuf::from(rel),
        kind,
        mode,
        mtime: FileTime::from_unix_time(1_400_000_000, 7),
        uid,
        gid: uid + 1,
        size: 0,
    }
}

fn lmtime(path: &Path) -> FileTime {
    FileTime::from_last_modification_time(&fs::symlink_metadata(path).unwrap())
}

#[test]
fn a_link_from_a_dir_copy_gets_its_mtime_even_when_unchanged() {
    both_walks(|| {
        let fx = Fixture::new();
        let link = fx.path("dest/l");
        let source = entry("l", EntryKind::Symlink { target: "t".into() }, 0o120777, 0);
        let (image, p) = image_of(&link);
        let made = image.make_symlink(Path::new("t"), &p, Some(&source), &OPTS);
        assert_eq!(made.unwrap(), Outcome::Copied { bytes: 0 });
        assert_eq!(lmtime(&link), source.mtime);
        // An identical link whose mtime drifted gets it back, and stays the same inode.
        filetime::set_symlink_file_times(&link, source.mtime, FileTime::from_unix_time(5, 0))
            .unwrap();
        let inode = fs::symlink_metadata(&link).unwrap().ino();
        let again = image.make_symlink(Path::new("t"), &p, Some(&source), &OPTS);
        assert_eq!(again.unwrap(), Outcome::Unchanged);
        assert_eq!(lmtime(&link), source.mtime);
        assert_eq!(fs::symlink_metadata(&link).unwrap().ino(), inode);
    });
}

#[test]
#[ignore = "needs root"]
fn a_link_from_a_dir_copy_keeps_its_owner_as_root() {
    both_walks(|| {
        let fx = Fixture::new();
        let link = fx.path("dest/l");
        let source = entry(
            "l",
            EntryKind::Symlink { target: "t".into() },
            0o120777,
            4321,
        );
        let (image, p) = image_of(&link);
        let opts = CopyOptions {
            preserve_owner: true,
            epoch: None,
        };
        image
            .make_symlink(Path::new("t"), &p, Some(&source), &opts)
            .unwrap();
        let meta = fs::symlink_metadata(&link).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    });
}

#[test]
fn a_fifo_is_recreated_with_mode_and_mtime_and_kept_when_unchanged() {
    both_walks(|| {
        let fx = Fixture::new();
        let fifo = fx.path("dest/sub/pipe");
        let source = entry("pipe", EntryKind::Special { rdev: 0 }, 0o10640, 0);
        let (image, p) = image_of(&fifo);
        let made = image.make_special(&p, &source, &OPTS).unwrap();
        assert_eq!(made, Outcome::Copied { bytes: 0 });
        let meta = fs::symlink_metadata(&fifo).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(lmtime(&fifo), source.mtime);
        assert_eq!(
            image.make_special(&p, &source, &OPTS).unwrap(),
            Outcome::Unchanged
        );
        // A file in its place is replaced; a directory is an error.
        fs::remove_file(&fifo).unwrap();
        fs::write(&fifo, "x").unwrap();
        assert!(matches!(
            image.make_special(&p, &source, &OPTS).unwrap(),
            Outcome::Copied { .. }
        ));
        fs::remove_file(&fifo).unwrap();
        fs::create_dir(&fifo).unwrap();
        let err = image.make_special(&p, &source, &OPTS).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsADirectory);
        assert!(leftovers(&fx.path("dest/sub")).is_empty());
    });
}

#[test]
#[ignore = "needs root"]
fn a_char_device_is_recreated_with_its_number_and_owner() {
    both_walks(|| {
        let fx = Fixture::new();
        let dev = fx.path("dest/null");
        let rdev = libc::makedev(1, 3);
        let source = entry("null", EntryKind::Special { rdev }, 0o20666, 12);
        let (image, p) = image_of(&dev);
        let opts = CopyOptions {
            preserve_owner: true,
            epoch: None,
        };
        image.make_special(&p, &source, &opts).unwrap();
        let meta = fs::symlink_metadata(&dev).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &meta.file_type()
        ));
        assert_eq!(meta.rdev(), rdev);
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (12, 13, 0o666)
        );
        // Another device number is another node.
        let other = entry(
            "null",
            EntryKind::Special {
                rdev: libc::makedev(1, 5),
            },
            0o20666,
            12,
        );
        assert!(matches!(
            image.make_special(&p, &other, &opts).unwrap(),
            Outcome::Copied { .. }
        ));
        assert_eq!(
            fs::symlink_metadata(&dev).unwrap().rdev(),
            libc::makedev(1, 5)
        );
    });
}

#[test]
fn dir_metadata_is_never_set_through_a_link() {
    both_walks(|| {
        let fx = Fixture::new();
        let victim = fx.path("victim");
        fs::create_dir_all(&victim).unwrap();
        let before = fs::metadata(&victim).unwrap();
        symlink(&victim, fx.path("dest/share")).unwrap();
        let source = entry("share", EntryKind::Dir, 0o40700, 0);
        let err = copy_dir_metadata(&source, &fx.path("dest/share"), &OPTS).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotADirectory);
        let after = fs::metadata(&victim).unwrap();
        assert_eq!(
            (after.mode(), after.mtime()),
            (before.mode(), before.mtime())
        );
    });
}
