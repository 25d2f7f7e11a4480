//! What `check` reads of an image before judging it: every regular file
//! and symlink, the ELF headers of the executables and shared objects, and
//! file identities (device and inode), all followed inside the image.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use super::{DanglingLink, KnownHeaders};
use crate::elf::{self, ET_DYN, ET_EXEC, ElfFile};
use crate::fs::{ImagePath, resolve_in_root};

/// What the walk of an image finds: regular files (image and host paths) and symlinks, and what
/// it could not read.
enum Found {
    File { path: ImagePath, host: PathBuf },
    Link(ImagePath),
    Unreadable(String),
}

/// Below this depth a subtree is walked by one thread.
const PARALLEL_DEPTH: usize = 3;

/// A directory's entries, sorted by name, with their types as the listing gives them.
fn list(host: &Path) -> Result<Vec<(OsString, std::fs::FileType)>, Found> {
    let listed = std::fs::read_dir(host).and_then(|items| {
        items
            .map(|item| {
                let item = item?;
                Ok((item.file_name(), item.file_type()?))
            })
            .collect::<std::io::Result<Vec<_>>>()
    });
    let mut children = listed.map_err(|e| Found::Unreadable(format!("{}: {e}", host.display())))?;
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(children)
}

/// The regular files and links below the image directory `dir` (host path `host`, `depth` below
/// the image's root), depth first, siblings in name order. The first levels' subtrees are walked
/// in parallel and joined in order; deeper ones by one thread with a stack of pending entries,
/// so a deep tree needs no stack frame per level.
fn walk(dir: &ImagePath, host: &Path, depth: usize) -> Vec<Found> {
    if depth >= PARALLEL_DEPTH {
        return walk_sequential(dir, host);
    }
    let children = match list(host) {
        Ok(children) => children,
        Err(e) => return vec![e],
    };
    children
        .into_par_iter()
        .flat_map_iter(|(name, kind)| {
            let path = dir.child(&name);
            let host = host.join(&name);
            if kind.is_symlink() {
                vec![Found::Link(path)]
            } else if kind.is_file() {
                vec![Found::File { path, host }]
            } else if kind.is_dir() {
                walk(&path, &host, depth + 1)
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// An entry of the sequential walk still to visit.
type Pending = (ImagePath, PathBuf, std::fs::FileType);

/// Pushes the entries of a directory so that the first by name is popped first.
fn push_children(dir: &ImagePath, host: &Path, pending: &mut Vec<Pending>, found: &mut Vec<Found>) {
    match list(host) {
        Ok(children) => pending.extend(
            children
                .into_iter()
                .rev()
                .map(|(name, kind)| (dir.child(&name), host.join(&name), kind)),
        ),
        Err(e) => found.push(e),
    }
}

fn walk_sequential(dir: &ImagePath, host: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let mut pending = Vec::new();
    push_children(dir, host, &mut pending, &mut found);
    while let Some((path, host, kind)) = pending.pop() {
        if kind.is_symlink() {
            found.push(Found::Link(path));
        } else if kind.is_file() {
            found.push(Found::File { path, host });
        } else if kind.is_dir() {
            push_children(&path, &host, &mut pending, &mut found);
        }
    }
    found
}

/// Device and inode: two names of one file are one object to the loader.
pub(super) type FileId = (u64, u64);

/// An executable or shared object of the image, at one of its names.
#[derive(Debug)]
pub(super) struct Object {
    /// Image path of a regular file.
    pub path: PathBuf,
    pub id: FileId,
    pub elf: ElfFile,
}

/// The image as `check` sees it.
pub(super) struct Image {
    /// The host directory holding the image.
    pub root: PathBuf,
    /// Every ELF executable or shared object, sorted by path; hard links
    /// appear once per name.
    pub objects: Vec<Object>,
    pub links: Vec<PathBuf>,
    /// Identity → index in `objects` (its first name).
    by_id: HashMap<FileId, usize>,
    /// Image paths → identity, memoized (resolutions name the same few
    /// libraries over and over).
    ids: Mutex<HashMap<PathBuf, Option<FileId>>>,
}

impl Image {
    /// Walks the image at `root`; unreadable entries and malformed ELF
    /// files become warnings.
    pub fn read(root: &Path, known: &KnownHeaders, warnings: &mut Vec<String>) -> Image {
        let mut files = Vec::new();
        let mut links = Vec::new();
        for found in walk(&ImagePath::root(), root, 0) {
            match found {
                Found::File { path, host } => files.push((path, host)),
                Found::Link(path) => links.push(path.to_path_buf()),
                Found::Unreadable(why) => warnings.push(why),
            }
        }
        // Files known not to be ELF objects need no stat and no read: a
        // rebuild of a large data tree costs one directory listing.
        let read: Vec<_> = files
            .into_par_iter()
            .filter_map(|(path, host)| {
                let elf = match known.get(&path) {
                    Some(None) => return None,
                    Some(Some(k)) => Ok(Some(k.clone())),
                    None => elf::read_file(&host).map_err(|e| format!("{path}: {e}")),
                };
                let elf = match elf {
                    Ok(Some(e)) if e.kind == ET_EXEC || e.kind == ET_DYN => e,
                    Ok(_) => return None,
                    Err(w) => return Some(Err(w)),
                };
                match std::fs::symlink_metadata(&host) {
                    Ok(m) => Some(Ok(Object {
                        path: path.to_path_buf(),
                        id: (m.dev(), m.ino()),
                        elf,
                    })),
                    Err(e) => Some(Err(format!("{path}: {e}"))),
                }
            })
            .collect();
        let mut objects = Vec::new();
        for r in read {
            match r {
                Ok(o) => objects.push(o),
                Err(w) => warnings.push(w),
            }
        }
        let mut by_id = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_id.entry(o.id).or_insert(i);
        }
        Image {
            root: root.to_path_buf(),
            objects,
            links,
            by_id,
            ids: Mutex::default(),
        }
    }

    /// The identity of the file an image path reaches, links followed
    /// inside the image; None when it reaches nothing.
    pub fn id_of(&self, path: &Path) -> Option<FileId> {
        let mut memo = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = memo.get(path) {
            return *known;
        }
        let id = self
            .reached(path)
            .and_then(|host| std::fs::symlink_metadata(host).ok())
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()));
        memo.insert(path.to_path_buf(), id);
        id
    }

    /// The index in `objects` of the first name of the object with this identity.
    pub fn index_of(&self, id: FileId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The ELF object with this identity, if the image holds one.
    pub fn object(&self, id: FileId) -> Option<&Object> {
        self.by_id.get(&id).map(|&i| &self.objects[i])
    }

    /// Every name (image path of a regular file) of the object `id`.
    pub fn names_of(&self, id: FileId) -> impl Iterator<Item = &Path> {
        self.objects
            .iter()
            .filter(move |o| o.id == id)
            .map(|o| o.path.as_path())
    }

    /// Whether an image path is a directory, links followed inside the image.
    pub fn is_dir(&self, path: &Path) -> bool {
        self.reached(path)
            .and_then(|host| std::fs::symlink_metadata(host).ok())
            .is_some_and(|m| m.is_dir())
    }

    /// The host path of an image path, links not followed.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// The host path of the regular file an image path reaches, links followed inside the
    /// image; None when it reaches no regular file.
    pub fn file_host_path(&self, path: &Path) -> Option<PathBuf> {
        self.reached(path)
            .filter(|host| std::fs::metadata(host).is_ok_and(|m| m.is_file()))
    }

    /// The host path of what an image path reaches, links followed inside
    /// the image (with the one in-root walk); None when they loop.
    fn reached(&self, path: &Path) -> Option<PathBuf> {
        let at = resolve_in_root(&self.root, path, true).ok()?;
        Some(self.root.join(at.strip_prefix("/").unwrap_or(&at)))
    }

    /// The links whose chain ends nowhere inside the image, or loops.
    pub fn dangling_links(&self) -> Vec<DanglingLink> {
        self.links
            .par_iter()
            .filter_map(|l| dangling(&self.root, l))
            .collect()
    }

    /// Every image path (regular file or link) whose file name is `name`
    /// and which reaches an ELF object, with that object.
    pub fn named(&self, name: &str) -> Vec<(PathBuf, &Object)> {
        self.objects
            .iter()
            .map(|o| &o.path)
            .chain(&self.links)
            .filter(|p| p.file_name().is_some_and(|n| n == name))
            .filter_map(|p| {
                let o = self.object(self.id_of(p)?)?;
                Some((p.clone(), o))
            })
            .collect()
    }
}

/// Follows `link` inside the image; Some when the chain ends nowhere or loops.
fn dangling(root: &Path, link: &Path) -> Option<DanglingLink> {
    let end = match resolve_in_root(root, link, true) {
        Ok(at)
            if root
                .join(at.strip_prefix("/").unwrap_or(&at))
                .symlink_metadata()
                .is_ok() =>
        {
            return None;
        }
        Ok(at) => at,
        // A loop: report the link itself.
        Err(_) => link.to_path_buf(),
    };
    Some(DanglingLink {
        link: link.to_path_buf(),
        target: end,
    })
}
