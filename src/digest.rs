//! `copy_bom digest --root DIR`: one canonical SHA-256 of a whole image tree, so that two images
//! can be compared, and a build proven reproducible, without shipping either.
//!
//! The digest is `sha256:` followed by the lower-case hex SHA-256 of this byte stream (README.md,
//! "Image digest", says the same for anyone who recomputes it):
//!
//! ```text
//! copy_bom image digest v1 NUL
//! then, for every object of the tree, the root included, in bytewise order of PATH:
//! PATH NUL TYPE NUL MODE NUL UID NUL GID NUL SIZE NUL MTIME NUL DATA NUL
//! ```
//!
//! - PATH: the image path, `/` for the root, `/usr/bin/python3` below it (its raw bytes; any byte
//!   but NUL may occur, a newline included, which is why NUL ends every field).
//! - TYPE: one letter: `d` directory, `f` regular file, `l` symbolic link, `p` FIFO, `s` socket,
//!   `c` character device, `b` block device.
//! - MODE: the 07777 bits of `st_mode` as four octal digits (`0755`, `4755`).
//! - UID, GID, SIZE, MTIME: decimal ASCII, MTIME with a `-` when negative. SIZE is `st_size` for
//!   a regular file and `0` for everything else (a directory's size is the file system's
//!   business: ext4 says 4096, tmpfs and btrfs something else for the same names). MTIME is whole
//!   seconds since the epoch (`st_mtime`, nanoseconds dropped): tar, cpio, zip, ISO 9660 and many
//!   file systems keep only seconds, and `SOURCE_DATE_EPOCH` is in seconds, so an image keeps its
//!   digest through them.
//! - DATA: for a regular file the lower-case hex SHA-256 of its content; for a link its target's
//!   raw bytes (never followed); for a device `MAJOR:MINOR` in decimal; empty otherwise.
//!
//! Hard links are not told apart from copies, and extended attributes, ACLs, atimes and ctimes
//! are not part of the digest. The tree is read through descriptors ([`ImageRoot::walk_post_order`]),
//! never following a link below the root, and files are opened with `O_NOFOLLOW`; a file that
//! changes while it is read is an error, not a wrong digest.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, Status};
use crate::fs::{FileKind, ImageRoot, Stat};
use crate::plan::sha256_reader;

/// What the stream starts with: a new rule gets a new version, never the same name.
const HEADER: &[u8] = b"copy_bom image digest v1\0";

/// The digest of an image, and the content hashes it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigest {
    /// `sha256:` and 64 lower-case hex digits.
    pub digest: String,
    /// The SHA-256 (hex) of every regular file, by image path, so that a manifest of the same
    /// image need not read the files again.
    pub files: BTreeMap<PathBuf, String>,
}

/// One object of the tree as it goes into the stream.
struct Object {
    path: PathBuf,
    stat: Stat,
    /// The link target for a link (read at the walk), the content hash for a file (afterwards).
    data: Vec<u8>,
}

/// Digests the tree at `root` (a link at `root` itself is followed: it is what the user named).
pub fn digest_image(root: &Path) -> Result<ImageDigest> {
    if !root.is_dir() {
        return Err(Error::new(
            Status::NotFound,
            format!("{} is not a directory", root.display()),
        ));
    }
    let image = ImageRoot::open_existing(root).map_err(|e| read_error(root, e))?;
    digest_root(&image)
}

/// [`digest_image`] of an image already open (after a build, under its lock).
pub fn digest_root(image: &ImageRoot) -> Result<ImageDigest> {
    let fail = |e| read_error(image.root(), e);
    let mut objects = Vec::new();
    image
        .walk_post_order(&mut |v| {
            let data = match v.stat.kind {
                FileKind::Symlink => v.link_target()?.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            objects.push(Object {
                path: v.path.to_path_buf(),
                stat: *v.stat,
                data,
            });
            Ok(())
        })
        .map_err(fail)?;
    objects
        .par_iter_mut()
        .try_for_each(|o| {
            if o.stat.is_file() {
                o.data = file_hash(image, &o.path, &o.stat)?.into_bytes();
            }
            Ok::<(), io::Error>(())
        })
        .map_err(fail)?;
    objects.sort_unstable_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    let mut hasher = Sha256::new();
    hasher.update(HEADER);
    let mut files = BTreeMap::new();
    for o in objects {
        hasher.update(record(&o));
        if o.stat.is_file() {
            files.insert(o.path, String::from_utf8_lossy(&o.data).into_owned());
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(ImageDigest {
        digest: format!("sha256:{hex}"),
        files,
    })
}

/// The content hash of the regular file the walk saw at `path`; the file opened must be that very
/// one, with the size the walk saw, and still be it after it was read.
fn file_hash(image: &ImageRoot, path: &Path, seen: &Stat) -> io::Result<String> {
    let file = image.open_file(path)?;
    let changed = |now: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        (now.dev(), now.ino(), now.len()) != (seen.dev, seen.ino, seen.size)
    };
    let before = file.metadata()?;
    let hash = sha256_reader(&file)?;
    if changed(&before) || changed(&file.metadata()?) {
        return Err(io::Error::other(format!(
            "{}: changed while the image was being read",
            path.display()
        )));
    }
    Ok(hash)
}

/// The bytes one object adds to the stream (see the module's documentation).
fn record(o: &Object) -> Vec<u8> {
    let st = &o.stat;
    let kind = match st.kind {
        FileKind::Dir => "d",
        FileKind::File => "f",
        FileKind::Symlink => "l",
        FileKind::Fifo => "p",
        FileKind::Socket => "s",
        FileKind::CharDevice => "c",
        FileKind::BlockDevice => "b",
    };
    let size = if st.is_file() { st.size } else { 0 };
    let data = match st.kind {
        FileKind::CharDevice | FileKind::BlockDevice => {
            format!("{}:{}", libc::major(st.rdev), libc::minor(st.rdev)).into_bytes()
        }
        _ => o.data.clone(),
    };
    let mut out = o.path.as_os_str().as_bytes().to_vec();
    out.push(0);
    let fields = format!(
        "{kind}\0{:04o}\0{}\0{}\0{size}\0{}\0",
        st.mode,
        st.uid,
        st.gid,
        st.mtime.unix_seconds()
    );
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(&data);
    out.push(0);
    out
}

fn read_error(root: &Path, e: io::Error) -> Error {
    Error::new(
        Status::NotFound,
        format!("cannot read the image {}: {e}", root.display()),
    )
    .with_source(e)
}
