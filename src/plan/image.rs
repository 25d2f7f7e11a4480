//! The image the plan produces: one map from *resolved* image path to what ends up there.
//!
//! Every planned node (directory, link, file, library) goes in, keyed by the path it will really
//! occupy: the destination is resolved through the links this run plans and the links already in
//! the root, in image terms ([`resolve_in_root_with`]), so `/lib64/x` under a planned link
//! `lib64 -> /opt/l` is the node `/opt/l/x`, and `/lib/libc.so.6` under the root's `lib -> usr/lib`
//! is the node `/usr/lib/libc.so.6`. Two names for one place are one key, and [`Origin`] decides
//! who owns it. That rule lives here and nowhere else (SPEC B2):
//! a listed entry beats a dir entry, which beats a library; among equals a later operation
//! (a later bom, or a later entry of one bom) wins, except that the first library for a place is
//! kept. The result depends only on the plan's order, never on threads.
//!
//! Validation, apply, the manifest and the final check read this map.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ImpliedContent, Op, Plan};
use crate::fs::{EntryKind, ImagePath, Lookup, lookup_on_disk, resolve_in_root_with};

/// What one image path becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File {
        src: PathBuf,
    },
    Link {
        target: PathBuf,
    },
    /// A FIFO, socket or device node of a dir copy (its type and metadata are in the entry).
    Special,
    /// A file copy_bom writes itself (an implied account file or NSS configuration, a
    /// `--dpkg-status` record).
    Generated {
        text: Arc<str>,
    },
}

/// Who put a node there. The order is the precedence: a later variant beats an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A file the image's C library opens for a function its objects import (`--implicit`).
    Implied,
    /// A library found for an ELF file.
    Library,
    /// An entry of a copied directory.
    DirEntry,
    /// A bom's own `mkdirs`, `createlinks`, `files` (and targets).
    Listed,
}

/// A path of the image and the operation (index into [`Plan::ops`]) that put it there; `entry`
/// indexes the dir copy's scanned entries when it came from one.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub origin: Origin,
    pub op: usize,
    pub entry: Option<usize>,
    /// The destination as the bom or the loader named it, when links lead elsewhere.
    pub requested: Option<ImagePath>,
}

/// Two entries that cannot both be: one makes a path a directory and the other something else,
/// or one is planned below a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: ImagePath,
    /// Operation indexes into [`Plan::ops`].
    pub first: usize,
    pub second: usize,
    pub reason: ConflictReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictReason {
    /// One makes the path a directory, the other a file or link.
    DirAndFile,
    /// The second is planned below the first, which is a file.
    UnderAFile,
    /// The path goes through more than 40 links (a loop).
    LinkLoop,
}

/// Every path the plan writes, sorted (parents first), plus the conflicts met while laying the
/// operations over each other (validation reports them all).
#[derive(Debug, Default)]
pub struct ImageMap {
    pub nodes: BTreeMap<ImagePath, Node>,
    pub conflicts: Vec<Conflict>,
    /// The host directory holding the image; its links are followed, in image terms.
    root: PathBuf,
    /// What each resolved prefix is in the root as it is now (planning never writes).
    on_disk: HashMap<ImagePath, Lookup>,
    /// Requested directory → the directory it resolves to, so that the thousands of entries of
    /// one directory walk its path once. Only links change a resolution, so placing or replacing
    /// a planned link clears it.
    resolved_dirs: HashMap<ImagePath, ImagePath>,
}

/// A node waiting to be placed.
struct Pending {
    requested: ImagePath,
    kind: NodeKind,
    origin: Origin,
    op: usize,
    entry: Option<usize>,
}

impl ImageMap {
    /// Lays the plan's bom operations over each other, in order, over the root's current state.
    /// Links go first, so that every other path resolves through all the links of the run.
    pub fn build(plan: &Plan, root: &Path) -> ImageMap {
        let mut map = ImageMap {
            root: root.to_path_buf(),
            ..ImageMap::default()
        };
        let (links, others): (Vec<Pending>, Vec<Pending>) = pending_nodes(plan)
            .into_iter()
            .partition(|p| matches!(p.kind, NodeKind::Link { .. }));
        for p in links.into_iter().chain(others) {
            map.place(p);
        }
        map.check_parents();
        map
    }

    /// Places a library found for an ELF file at `dest` unless something already owns that place.
    /// Returns the resolved path when the library was placed.
    pub fn place_library(&mut self, dest: ImagePath, src: PathBuf, op: usize) -> Option<ImagePath> {
        let at = self.place(Pending {
            requested: dest,
            kind: NodeKind::File { src },
            origin: Origin::Library,
            op,
            entry: None,
        })?;
        let owner = self.nodes.get(&at)?;
        (owner.op == op).then_some(at)
    }

    /// Places a file copy_bom writes to record what the image holds (operation `op`, an
    /// [`Op::Record`] appended to the plan after the libraries): it yields to every other entry,
    /// like an implied file.
    pub fn place_record(&mut self, dest: ImagePath, text: &str, op: usize) {
        self.place(Pending {
            requested: dest,
            kind: NodeKind::Generated { text: text.into() },
            origin: Origin::Implied,
            op,
            entry: None,
        });
    }

    /// Follows a renumbering of the plan's operations (`renumbered[old] == new`), after
    /// libraries were inserted among them.
    pub fn renumber(&mut self, renumbered: &[usize]) {
        let new = |op: usize| renumbered.get(op).copied().unwrap_or(op);
        for node in self.nodes.values_mut() {
            node.op = new(node.op);
        }
        for c in &mut self.conflicts {
            c.first = new(c.first);
            c.second = new(c.second);
        }
    }

    /// The path `p` really names in the image being planned: planned links first, then the root's
    /// links, followed in image terms. The last component is followed when `follow_last` is set.
    pub fn resolve(&mut self, p: &ImagePath, follow_last: bool) -> io::Result<ImagePath> {
        // Unfollowed, the last name is kept as it is: the rest is the parent, followed.
        let (false, Some(parent), Some(name)) = (follow_last, p.parent(), p.file_name()) else {
            return resolve_in_root_with(p, follow_last, |q| self.lookup(q));
        };
        let dir = match self.resolved_dirs.get(&parent) {
            Some(dir) => dir.clone(),
            None => {
                let dir = resolve_in_root_with(&parent, true, |q| self.lookup(q))?;
                self.resolved_dirs.insert(parent, dir.clone());
                dir
            }
        };
        Ok(dir.child(name))
    }

    /// The host directory that holds the image.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lookup(&mut self, q: &ImagePath) -> io::Result<Lookup> {
        if let Some(Node {
            kind: NodeKind::Link { target },
            ..
        }) = self.nodes.get(q)
        {
            return Ok(Lookup::Link(target.clone()));
        }
        let disk = match self.on_disk.get(q) {
            Some(l) => l.clone(),
            None => {
                let l = lookup_on_disk(&self.root, q)?;
                self.on_disk.insert(q.clone(), l.clone());
                l
            }
        };
        match disk {
            Lookup::Missing if self.nodes.contains_key(q) => Ok(Lookup::Present),
            other => Ok(other),
        }
    }

    /// Puts one node at its resolved place under the precedence rule; returns that place.
    fn place(&mut self, p: Pending) -> Option<ImagePath> {
        let at = match self.place_for(&p) {
            Ok(at) => at,
            Err(_) => {
                self.conflicts.push(Conflict {
                    path: p.requested.clone(),
                    first: p.op,
                    second: p.op,
                    reason: ConflictReason::LinkLoop,
                });
                return None;
            }
        };
        let new = Node {
            kind: p.kind,
            origin: p.origin,
            op: p.op,
            entry: p.entry,
            requested: (p.requested != at).then_some(p.requested),
        };
        if matches!(new.kind, NodeKind::Link { .. }) {
            self.resolved_dirs.clear();
        }
        let old = match self.nodes.entry(at.clone()) {
            Entry::Vacant(place) => {
                place.insert(new);
                return Some(at);
            }
            Entry::Occupied(place) => place.into_mut(),
        };
        if matches!(old.kind, NodeKind::Link { .. }) {
            self.resolved_dirs.clear();
        }
        match (&old.kind, &new.kind) {
            // A dir stays a dir; a dir copy's metadata (if any) is the latest.
            (NodeKind::Dir, NodeKind::Dir) => {
                if new.entry.is_some() && new.origin >= old.origin {
                    *old = new;
                }
            }
            // A library never displaces anything, and is never in conflict: it is not copied.
            _ if new.origin == Origin::Library => {}
            // Two entries the boms list themselves cannot make one path both a directory and a
            // file; where a copied tree is involved the higher precedence wins, as `rsync -a`
            // replaces a file with a directory (and a directory with a file) of a later copy.
            (NodeKind::Dir, _) | (_, NodeKind::Dir)
                if old.origin == Origin::Listed && new.origin == Origin::Listed =>
            {
                let (first, second) = (old.op, new.op);
                self.conflicts.push(Conflict {
                    path: at.clone(),
                    first,
                    second,
                    reason: ConflictReason::DirAndFile,
                });
            }
            _ => {
                if (new.origin, new.op) >= (old.origin, old.op) {
                    *old = new;
                }
            }
        }
        Some(at)
    }

    /// Where a node goes. A file or a link at a link's name replaces the link. A directory is
    /// made through a link at its own name (`mkdir -p` follows it), unless the link is one this
    /// run plans with less precedence: a later dir copy replaces it, as rsync replaces a
    /// destination link with a directory.
    fn place_for(&mut self, p: &Pending) -> io::Result<ImagePath> {
        let at = self.resolve(&p.requested, false)?;
        if p.kind != NodeKind::Dir {
            return Ok(at);
        }
        match self.nodes.get(&at) {
            Some(old) if matches!(old.kind, NodeKind::Link { .. }) => {
                if (p.origin, p.op) > (old.origin, old.op) && p.origin != Origin::Library {
                    Ok(at)
                } else {
                    self.resolve(&p.requested, true)
                }
            }
            _ => self.resolve(&p.requested, true),
        }
    }

    /// A path whose nearest planned ancestor is a file cannot be created.
    fn check_parents(&mut self) {
        let mut found = Vec::new();
        for (path, node) in &self.nodes {
            let mut up = path.parent();
            while let Some(parent) = up {
                if let Some(p) = self.nodes.get(&parent) {
                    if matches!(p.kind, NodeKind::File { .. } | NodeKind::Special) {
                        found.push(Conflict {
                            path: parent.clone(),
                            first: p.op,
                            second: node.op,
                            reason: ConflictReason::UnderAFile,
                        });
                    }
                    break;
                }
                up = parent.parent();
            }
        }
        self.conflicts.extend(found);
    }
}

/// The nodes of the bom operations, in plan order.
fn pending_nodes(plan: &Plan) -> Vec<Pending> {
    let mut out = Vec::new();
    for (op, p) in plan.ops.iter().enumerate() {
        let mut push = |requested: ImagePath, kind, origin, entry| {
            out.push(Pending {
                requested,
                kind,
                origin,
                op,
                entry,
            })
        };
        match &p.op {
            Op::Mkdir { dest } => push(dest.clone(), NodeKind::Dir, Origin::Listed, None),
            Op::Link { target, dest } => {
                let kind = NodeKind::Link {
                    target: PathBuf::from(target),
                };
                push(dest.clone(), kind, Origin::Listed, None)
            }
            Op::CopyDir { dest, entries, .. } => {
                for (e, entry) in entries.iter().enumerate() {
                    let kind = match &entry.kind {
                        EntryKind::Dir => NodeKind::Dir,
                        EntryKind::File { src } => NodeKind::File { src: src.clone() },
                        EntryKind::Symlink { target } => NodeKind::Link {
                            target: target.clone(),
                        },
                        EntryKind::Special { .. } => NodeKind::Special,
                    };
                    // Scanned names never hold "..", so joining cannot fail.
                    if let Ok(at) = dest.join(&entry.rel) {
                        push(at, kind, Origin::DirEntry, Some(e));
                    }
                }
            }
            Op::CopyFile { src, dest, .. } => {
                let kind = NodeKind::File { src: src.clone() };
                push(dest.clone(), kind, Origin::Listed, None)
            }
            Op::Implied { content, dest, .. } => {
                let kind = match content {
                    ImpliedContent::Copy(src) => NodeKind::File { src: src.clone() },
                    ImpliedContent::Generated(g) => NodeKind::Generated {
                        text: g.text().into(),
                    },
                };
                push(dest.clone(), kind, Origin::Implied, None)
            }
            Op::Record { dest, text, .. } => {
                let kind = NodeKind::Generated {
                    text: text.as_str().into(),
                };
                push(dest.clone(), kind, Origin::Implied, None)
            }
            // Libraries are placed by `deps`, after the bom operations.
            Op::CopyLibrary { .. } => {}
        }
    }
    out
}
