//! The image the plan produces, as a map from image path to what ends up
//! there. Built from the ordered operations with the precedence rules of SPEC
//! A§2/B2 (a later writer wins; an auto-copied library never replaces anything
//! a bom lists; a path cannot be both a directory and a file), it is what
//! validation checks and what `apply` writes, in path order so that parents
//! always come before their children.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Op, Plan};
use crate::error::{Error, Result, Status};
use crate::fs::EntryKind;

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
}

/// A path of the image and the operation (index into [`Plan::ops`]) that put it
/// there; `entry` indexes the dir copy's scanned entries when it came from one.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub op: usize,
    pub entry: Option<usize>,
}

/// Every path the plan writes, sorted (parents first).
#[derive(Debug, Default)]
pub struct ImageMap {
    pub nodes: BTreeMap<PathBuf, Node>,
}

impl ImageMap {
    /// Lays the plan's operations over each other in order.
    pub fn build(plan: &Plan) -> Result<ImageMap> {
        let mut map = ImageMap::default();
        for (i, p) in plan.ops.iter().enumerate() {
            match &p.op {
                Op::Mkdir { dest } => map.put(plan, dest.clone(), NodeKind::Dir, i, None)?,
                Op::Link { target, dest } => {
                    let kind = NodeKind::Link {
                        target: PathBuf::from(target),
                    };
                    map.put(plan, dest.clone(), kind, i, None)?
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
                        map.put(plan, dest.join(&entry.rel), kind, i, Some(e))?;
                    }
                }
                Op::CopyFile { src, dest, .. } => {
                    let kind = NodeKind::File { src: src.clone() };
                    map.put(plan, dest.clone(), kind, i, None)?
                }
                Op::CopyLibrary { src, dest, .. } => {
                    if !map.nodes.contains_key(dest) {
                        let kind = NodeKind::File { src: src.clone() };
                        map.nodes.insert(
                            dest.clone(),
                            Node {
                                kind,
                                op: i,
                                entry: None,
                            },
                        );
                    }
                }
            }
        }
        map.check_parents(plan)?;
        Ok(map)
    }

    fn put(
        &mut self,
        plan: &Plan,
        dest: PathBuf,
        kind: NodeKind,
        op: usize,
        entry: Option<usize>,
    ) -> Result<()> {
        let new = Node { kind, op, entry };
        match self.nodes.get_mut(&dest) {
            None => {
                self.nodes.insert(dest, new);
            }
            Some(old) => match (&old.kind, &new.kind) {
                // A dir stays a dir; a dir copy's metadata (if any) is the latest.
                (NodeKind::Dir, NodeKind::Dir) => {
                    if new.entry.is_some() {
                        *old = new;
                    }
                }
                (NodeKind::Dir, _) | (_, NodeKind::Dir) => {
                    return Err(conflict(plan, &dest, old.op, op));
                }
                _ => *old = new,
            },
        }
        Ok(())
    }

    /// A path whose parent is a file cannot be created.
    fn check_parents(&self, plan: &Plan) -> Result<()> {
        for (path, node) in &self.nodes {
            let mut up = path.parent();
            while let Some(parent) = up {
                if let Some(p) = self.nodes.get(parent) {
                    if matches!(p.kind, NodeKind::File { .. } | NodeKind::Special) {
                        return Err(conflict(plan, parent, p.op, node.op));
                    }
                    break;
                }
                up = parent.parent();
            }
        }
        Ok(())
    }
}

fn describe(plan: &Plan, op: usize) -> String {
    let Some(p) = plan.ops.get(op) else {
        return String::from("?");
    };
    match (&p.at, &p.op) {
        (Some(at), _) => at.clone(),
        (None, Op::CopyLibrary { needed_by, .. }) => {
            format!("a library of {}", needed_by.display())
        }
        (None, _) => plan
            .boms
            .get(p.bom)
            .map(|b| b.display().to_string())
            .unwrap_or_default(),
    }
}

fn conflict(plan: &Plan, dest: &Path, first: usize, second: usize) -> Error {
    Error::new(
        Status::InvalidBom,
        format!(
            "{}: conflicting entries for {}: one makes it a directory and the other a file or link (see also {})",
            describe(plan, second),
            dest.display(),
            describe(plan, first)
        ),
    )
}
