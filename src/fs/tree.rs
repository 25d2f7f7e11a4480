//! Scanning the source of a dir copy as `rsync -a --copy-unsafe-links` would transfer it: relative
//! links that stay inside the transfer are kept, every other link is replaced by what it points to;
//! FIFOs and sockets are recreated, device nodes too when running as root.
//!
//! rsync judges a link "unsafe" lexically, from where the link sits in the *transfer*: its depth
//! below the transfer root, then each component of its target (a name goes down one level, ".."
//! up one, "." nothing); the link is unsafe when the target is absolute, empty, or climbs above
//! the transfer root at any point. The transfer root is the directory the source's name is taken
//! from: for `dirs: [a/d]` (no trailing slash) it is `a`, so `d/x -> ../sib` (depth 1, then up to
//! 0, then down) is kept, a link to a sibling of the copied dir that dangles in the image unless
//! the sibling is copied too; for `dirs: [a/d/]` it is `d` itself, and the same link is unsafe and
//! replaced by its referent. Checked against rsync 3 in tests/fs_rsync.rs.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;
use rayon::prelude::*;

use super::excludes::Excludes;
use super::{path_error, path_problem};

/// What an entry of a copied tree becomes in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file; `src` is the file to read (for a dereferenced link, its canonical referent).
    File {
        src: PathBuf,
    },
    /// A link kept as a link, its target verbatim.
    Symlink {
        target: PathBuf,
    },
    /// A FIFO, socket or device node (the type is in [`TreeEntry::mode`]), recreated with
    /// `mknod`; `rdev` is the device number of a device node.
    Special {
        rdev: u64,
    },
}

/// One entry of a copied tree, with the source metadata the copy keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The path below the destination directory.
    pub rel: PathBuf,
    pub kind: EntryKind,
    /// `st_mode` as read (file type included; the copy keeps `mode & 0o7777`).
    pub mode: u32,
    pub mtime: FileTime,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// The entries of a dir copy, parents before children, and what was skipped and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeScan {
    pub entries: Vec<TreeEntry>,
    /// "PATH: reason" for each skipped entry (dangling unsafe links, loops, special files).
    pub warnings: Vec<String>,
}

/// A directory's identity, to notice a dereferenced link leading back to one of its ancestors.
type DirId = (u64, u64);

/// A source path still to look at: where it is on the host, where it goes, which dirs contain it,
/// and its own metadata (a link not followed), read beside its name in the directory listing.
struct Visit {
    host: PathBuf,
    rel: PathBuf,
    ancestors: Rc<Vec<DirId>>,
    lmeta: Metadata,
}

/// Scan the source `src` of a dir copy. With `contents_only` (the bom wrote "src/") entries are
/// relative to the destination directory, which keeps its own metadata; otherwise they start with
/// `src`'s own name ("a/lib" gives "lib", then "lib/…"), as rsync names them.
///
/// The copied tree is `src` itself: a link at `src` is followed. (rsync differs here: without a
/// trailing slash it transfers a relative link at `src`, such as `alias -> real`, as that link,
/// which then dangles in the image; an absolute one it follows, as we do.) A relative link that stays inside
/// the transfer (see the module documentation: the parent of `src` without a trailing '/', `src`
/// with one) is kept; an absolute one or one leading outside is replaced by its referent (a dir is
/// scanned as a dir); a dangling one of those is skipped with a warning, as rsync skips it with
/// "symlink has no referent". Device nodes are skipped with a warning unless the process runs as
/// root (rsync: "skipping non-regular file"); FIFOs and sockets are kept either way, as rsync does.
///
/// `excludes` see the same relative paths as in rsync ("lib/…" for "a/lib", so "/lib/x" is anchored
/// and "lib" alone excludes the whole copy); an excluded directory is not descended into. The order
/// is deterministic: depth first, siblings sorted by name.
pub fn scan_tree(src: &Path, contents_only: bool, excludes: &Excludes) -> io::Result<TreeScan> {
    let meta = fs::metadata(src).map_err(|err| path_error(src, err))?;
    if !meta.is_dir() {
        return Err(path_problem(
            src,
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let devices = is_root_user();
    let mut scan = TreeScan::default();
    let top_rel = match src.file_name() {
        Some(name) if !contents_only => PathBuf::from(name),
        _ => PathBuf::new(),
    };
    if !top_rel.as_os_str().is_empty() {
        if excludes.is_excluded(&top_rel, true) {
            return Ok(scan);
        }
        scan.entries
            .push(entry(top_rel.clone(), EntryKind::Dir, &meta));
    }
    // The subtrees of the top's entries are scanned in parallel, each depth first by one
    // scanner, and joined in name order: the same entries, in the same order, as one scanner.
    let mut children = read_children(src)?;
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let top_id = dir_id(&meta);
    let parts: Vec<io::Result<TreeScan>> = children
        .into_par_iter()
        .map(|(name, lmeta)| {
            let mut scanner = Scanner {
                excludes,
                devices,
                scan: TreeScan::default(),
                stack: vec![Visit {
                    host: src.join(&name),
                    rel: top_rel.join(&name),
                    ancestors: Rc::new(vec![top_id]),
                    lmeta,
                }],
            };
            while let Some(visit) = scanner.stack.pop() {
                scanner.visit(visit)?;
            }
            Ok(scanner.scan)
        })
        .collect();
    for part in parts {
        let mut part = part?;
        scan.entries.append(&mut part.entries);
        scan.warnings.append(&mut part.warnings);
    }
    Ok(scan)
}

struct Scanner<'a> {
    excludes: &'a Excludes,
    /// Whether device nodes can be recreated (only root may `mknod` them).
    devices: bool,
    scan: TreeScan,
    /// Visits still to do, the next one last.
    stack: Vec<Visit>,
}

impl Scanner<'_> {
    fn visit(&mut self, visit: Visit) -> io::Result<()> {
        let host = &visit.host;
        let lmeta = visit.lmeta.clone();
        let (kind, meta) = if lmeta.file_type().is_symlink() {
            let target = fs::read_link(host).map_err(|err| path_error(host, err))?;
            // `rel` is the path below the transfer root, the link's own name last.
            let depth = visit.rel.components().count().saturating_sub(1);
            if stays_inside(&target, depth) {
                (EntryKind::Symlink { target }, lmeta)
            } else {
                match fs::metadata(host) {
                    Ok(meta) => (referent_kind(host, &meta, true)?, meta),
                    // rsync: "see if file is excluded before reporting an error".
                    Err(_) if self.excluded_either_way(&visit.rel) => return Ok(()),
                    Err(err) => {
                        let why = format!(
                            "symlink to {} has no referent ({err}), skipped",
                            target.display()
                        );
                        self.warn(host, &why);
                        return Ok(());
                    }
                }
            }
        } else {
            let kind = referent_kind(host, &lmeta, false)?;
            (kind, lmeta)
        };
        self.add(visit, kind, &meta)
    }

    fn add(&mut self, visit: Visit, kind: EntryKind, meta: &Metadata) -> io::Result<()> {
        let is_dir = kind == EntryKind::Dir;
        if self.excludes.is_excluded(&visit.rel, is_dir) {
            return Ok(());
        }
        let is_device = meta.file_type().is_char_device() || meta.file_type().is_block_device();
        if is_device && !self.devices {
            self.warn(
                &visit.host,
                "a device node, skipped (only root can create one, as with rsync)",
            );
            return Ok(());
        }
        if is_dir && visit.ancestors.contains(&dir_id(meta)) {
            self.warn(
                &visit.host,
                "symlink leads back to a directory being copied (a loop), skipped",
            );
            return Ok(());
        }
        self.scan.entries.push(entry(visit.rel.clone(), kind, meta));
        if is_dir {
            self.push_children(&visit.host, &visit.rel, &visit.ancestors, dir_id(meta))?;
        }
        Ok(())
    }

    /// Queue the children of the directory `host` (whose identity is `id`), sorted by name.
    fn push_children(
        &mut self,
        host: &Path,
        rel: &Path,
        ancestors: &Rc<Vec<DirId>>,
        id: DirId,
    ) -> io::Result<()> {
        let mut chain = Vec::clone(ancestors);
        chain.push(id);
        let chain = Rc::new(chain);
        let mut children = read_children(host)?;
        // Reverse order: the stack pops the first name first.
        children.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (name, lmeta) in children {
            self.stack.push(Visit {
                host: host.join(&name),
                rel: rel.join(&name),
                ancestors: Rc::clone(&chain),
                lmeta,
            });
        }
        Ok(())
    }

    fn excluded_either_way(&self, rel: &Path) -> bool {
        self.excludes.is_excluded(rel, false) || self.excludes.is_excluded(rel, true)
    }

    fn warn(&mut self, path: &Path, reason: &str) {
        self.scan
            .warnings
            .push(format!("{}: {reason}", path.display()));
    }
}

/// The kind of what is at `host`: `meta` is its own metadata, or its referent's when `via_link`.
fn referent_kind(host: &Path, meta: &Metadata, via_link: bool) -> io::Result<EntryKind> {
    if meta.is_dir() {
        Ok(EntryKind::Dir)
    } else if !meta.is_file() {
        Ok(EntryKind::Special { rdev: meta.rdev() })
    } else if via_link {
        let src = fs::canonicalize(host).map_err(|err| path_error(host, err))?;
        Ok(EntryKind::File { src })
    } else {
        Ok(EntryKind::File {
            src: host.to_path_buf(),
        })
    }
}

/// The entries of `dir` with their own metadata (`fstatat` relative to the open directory, links
/// not followed).
fn read_children(dir: &Path) -> io::Result<Vec<(OsString, Metadata)>> {
    let mut children = Vec::new();
    for item in fs::read_dir(dir).map_err(|err| path_error(dir, err))? {
        let item = item.map_err(|err| path_error(dir, err))?;
        let name = item.file_name();
        let meta = item
            .metadata()
            .map_err(|err| path_error(&dir.join(&name), err))?;
        children.push((name, meta));
    }
    Ok(children)
}

/// rsync's lexical safety test: a relative target, read from a link `depth` directories below the top
/// of the copied tree, never climbs above that top.
fn stays_inside(target: &Path, depth: usize) -> bool {
    let mut level = depth;
    for component in target.components() {
        match component {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => match level.checked_sub(1) {
                Some(up) => level = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    !target.as_os_str().is_empty()
}

/// rsync recreates device nodes only when it runs as root (`am_root`); so do we.
fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn dir_id(meta: &Metadata) -> DirId {
    (meta.dev(), meta.ino())
}

fn entry(rel: PathBuf, kind: EntryKind, meta: &Metadata) -> TreeEntry {
    TreeEntry {
        rel,
        kind,
        mode: meta.mode(),
        mtime: FileTime::from_last_modification_time(meta),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
    }
}
