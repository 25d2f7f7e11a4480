//! `copy_bom digest`: the digest of a real image equals the one an independent Python
//! implementation of README.md's "Image digest" computes, and it moves exactly when the image
//! does (one byte, one mode bit, one link target), not when the image is copied with `cp -a`.

use crate::common::{Ws, copy_bom};
use filetime::FileTime;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// README.md's serialisation, written from the README alone (no code shared with copy_bom).
pub const PYTHON_DIGEST: &str = r#"
import hashlib, os, stat, sys
root = os.fsencode(sys.argv[1])
items = []
def visit(host, image):
    st = os.lstat(host)
    items.append((image, host, st))
    if stat.S_ISDIR(st.st_mode):
        for name in os.listdir(host):
            visit(host + b'/' + name, image.rstrip(b'/') + b'/' + name)
visit(root, b'/')
h = hashlib.sha256(b'copy_bom image digest v1\0')
for image, host, st in sorted(items, key=lambda item: item[0]):
    m = st.st_mode
    size, data = 0, b''
    if stat.S_ISDIR(m): kind = b'd'
    elif stat.S_ISLNK(m): kind, data = b'l', os.readlink(host)
    elif stat.S_ISFIFO(m): kind = b'p'
    elif stat.S_ISSOCK(m): kind = b's'
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = b'c' if stat.S_ISCHR(m) else b'b'
        data = b'%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    else:
        kind, size = b'f', st.st_size
        with open(host, 'rb') as f:
            data = hashlib.sha256(f.read()).hexdigest().encode()
    fields = [image, kind, b'%04o' % stat.S_IMODE(m), b'%d' % st.st_uid, b'%d' % st.st_gid,
              b'%d' % size, b'%d' % (st.st_mtime_ns // 10**9), data]
    h.update(b''.join(f + b'\0' for f in fields))
print('sha256:' + h.hexdigest())
"#;

/// The digest the Python reference computes for the tree at `root`.
pub fn python_digest(root: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", PYTHON_DIGEST])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What `copy_bom digest --root ROOT` prints, checked to be exactly one `sha256:` line.
pub fn digest(root: &Path) -> String {
    let out = copy_bom()
        .args(["digest", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.strip_suffix('\n').unwrap();
    let hex = line.strip_prefix("sha256:").unwrap();
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{text:?}"
    );
    line.to_string()
}

/// An image of real programs with their libraries (autodep), a dir copy, links, a setuid file,
/// and names that test the serialisation: a newline, a non-UTF-8 byte, `a-b` beside `a/b`
/// (bytewise order is not component order), a FIFO and a dangling link.
fn image(ws: &Ws) -> std::path::PathBuf {
    ws.write("src/data/a/b", "ab\n");
    ws.write("src/data/a-b", "a-b\n");
    ws.write("src/data/new\nline", "nl\n");
    ws.write("src/data/sub/empty", "");
    ws.symlink("../a/b", "src/data/sub/rel");
    for (name, content) in [(&b"caf\xc3\xa9"[..], "utf-8"), (b"latin\xe9", "latin-1")] {
        let path = ws.path().join("src/data").join(OsStr::from_bytes(name));
        std::fs::write(path, content).unwrap();
    }
    let suid = ws.write("src/suid", "s\n");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    ws.write(
        "app.yaml",
        "targets:\n  - target: /bin\n    createlinks: [{src: ls, linkname: dir}, {src: /nowhere, linkname: dangling}]\n    copy:\n      - files: [/bin/ls, /bin/cat, ../src/suid]\n  - target: /srv\n    mkdirs: [empty]\n    copy: [{from: ../src, dirs: [data]}]\n",
    );
    ws.run("app.yaml", &[]).success();
    let root = ws.root();
    let fifo = std::ffi::CString::new(root.join("srv/fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    root
}

#[test]
fn digest_equals_an_independent_implementation_of_the_readme() {
    let ws = Ws::new();
    let root = image(&ws);
    assert!(root.join("lib").exists() || root.join("usr/lib").exists());
    assert_eq!(digest(&root), python_digest(&root));
}

#[test]
fn digest_moves_with_one_byte_one_mode_bit_one_link_target_and_survives_cp_a() {
    let ws = Ws::new();
    let root = image(&ws);
    let before = digest(&root);
    assert_eq!(digest(&root), before, "nothing changed");

    let copy = ws.path().join("elsewhere/copy");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let st = Command::new("cp").arg("-a").arg(&root).arg(&copy).status();
    assert!(st.unwrap().success());
    assert_eq!(
        digest(&copy),
        before,
        "cp -a keeps everything the digest covers"
    );

    // One byte, the size and mtime kept: only the content hash can see it.
    let file = copy.join("srv/data/a/b");
    let mtime = FileTime::from_last_modification_time(&std::fs::metadata(&file).unwrap());
    std::fs::write(&file, "aB\n").unwrap();
    filetime::set_file_mtime(&file, mtime).unwrap();
    let one_byte = digest(&copy);
    assert_ne!(one_byte, before);
    assert_eq!(one_byte, python_digest(&copy));
    std::fs::write(&file, "ab\n").unwrap();
    filetime::set_file_mtime(&file, mtime).unwrap();
    assert_eq!(digest(&copy), before, "the byte put back");

    // One mode bit.
    let cat = copy.join("bin/cat");
    let mode = std::fs::metadata(&cat).unwrap().permissions().mode();
    std::fs::set_permissions(&cat, std::fs::Permissions::from_mode(mode ^ 0o001)).unwrap();
    assert_ne!(digest(&copy), before);
    std::fs::set_permissions(&cat, std::fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(digest(&copy), before, "the bit put back");

    // One link target, of the same length, the mtimes of the link and its dir kept.
    let link = copy.join("srv/data/sub/rel");
    let relink = |target: &str| {
        let dir = link.parent().unwrap();
        let dir_mtime = FileTime::from_last_modification_time(&std::fs::metadata(dir).unwrap());
        let meta = std::fs::symlink_metadata(&link).unwrap();
        let mtime = FileTime::from_last_modification_time(&meta);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(target, &link).unwrap();
        filetime::set_symlink_file_times(&link, mtime, mtime).unwrap();
        filetime::set_file_mtime(dir, dir_mtime).unwrap();
    };
    relink("../a/c");
    let changed = digest(&copy);
    assert_ne!(changed, before);
    assert_eq!(changed, python_digest(&copy));
    relink("../a/b");
    assert_eq!(digest(&copy), before, "the target put back");
}

#[test]
fn a_missing_root_is_a_clear_error_with_status_255() {
    let ws = Ws::new();
    let missing = ws.path().join("no/such/image");
    let out = copy_bom()
        .args(["digest", "--root"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such/image") && err.contains("not a directory"),
        "{err}"
    );
}
