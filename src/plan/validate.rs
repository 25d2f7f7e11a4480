//! The one validation stage between planning and writing: every conflict between entries, and
//! every clash with what the root already holds, found before the first write. A dry run ends
//! here, so it exits with the status the real run would have. Every problem is reported, not
//! only the first.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::Path;

use rayon::prelude::*;

use super::image::{Conflict, ConflictReason, ImageMap, Node, NodeKind};
use super::{Op, Plan};
use crate::error::{Error, Result, Status};
use crate::fs::ImagePath;

/// One reason the plan cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    path: ImagePath,
    status: Status,
    message: String,
}

/// Checks the planned image against itself and against the root's current state.
pub fn validate(plan: &Plan, map: &ImageMap) -> Result<()> {
    let mut problems: Vec<Problem> = map
        .conflicts
        .iter()
        .map(|c| conflict_problem(plan, c))
        .collect();
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let mut nodes: Vec<(&ImagePath, &Node)> = map.nodes.iter().collect();
    // The root's state is read a directory listing at a time, not a stat per planned path.
    nodes.sort_by_cached_key(|n| n.0.parent_key());
    let dirs: Vec<_> = nodes
        .chunk_by(|a, b| a.0.parent_key() == b.0.parent_key())
        .collect();
    let mut on_disk: Vec<Problem> = dirs
        .par_iter()
        .flat_map_iter(|children| {
            let listing = children
                .first()
                .map(|(path, _)| Listing::read(map.root(), path));
            children.iter().filter_map(move |(path, node)| {
                let found = listing.as_ref()?.at(path)?;
                root_problem(plan, path, node, found)
            })
        })
        .collect();
    on_disk.sort_by(|a, b| a.path.cmp(&b.path));
    problems.extend(on_disk);
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let status = first.status;
    Err(match problems.as_slice() {
        [one] => Error::new(status, one.message.clone()),
        many => Error::new(
            status,
            format!("{} problems, nothing was written:", many.len()),
        )
        .with_details(many.iter().map(|p| p.message.clone())),
    })
}

/// What the root holds in one directory: the names and whether each is a directory (from the
/// listing's `d_type`; a link is not followed), or why there is no such directory.
enum Listing {
    Entries(HashMap<OsString, bool>),
    /// Nothing there: everything below can be created.
    Missing,
    /// A file stands where the directory would be.
    UnderAFile,
    /// Unreadable: the write will say why, with its own status.
    Unknown,
}

/// What the root holds at one planned path.
enum OnDisk {
    Nothing,
    Dir,
    NotADir,
    UnderAFile,
}

impl Listing {
    /// Lists the root's directory that holds `child`.
    fn read(root: &Path, child: &ImagePath) -> Listing {
        let Some(dir) = child.parent() else {
            // "/" itself: the root is a directory.
            return Listing::Entries(HashMap::new());
        };
        let read = std::fs::read_dir(dir.on_host(root)).and_then(|items| {
            items
                .map(|item| {
                    let item = item?;
                    Ok((item.file_name(), item.file_type()?.is_dir()))
                })
                .collect::<io::Result<HashMap<_, _>>>()
        });
        match read {
            Ok(entries) => Listing::Entries(entries),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Listing::UnderAFile,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Listing::Missing,
            Err(_) => Listing::Unknown,
        }
    }

    fn at(&self, path: &ImagePath) -> Option<OnDisk> {
        match self {
            Listing::Entries(entries) => Some(match path.file_name().map(|n| entries.get(n)) {
                // "/" itself.
                None => OnDisk::Dir,
                Some(None) => OnDisk::Nothing,
                Some(Some(true)) => OnDisk::Dir,
                Some(Some(false)) => OnDisk::NotADir,
            }),
            Listing::Missing => Some(OnDisk::Nothing),
            Listing::UnderAFile => Some(OnDisk::UnderAFile),
            Listing::Unknown => None,
        }
    }
}

/// What the root holds at a planned path that the plan cannot replace.
fn root_problem(plan: &Plan, path: &ImagePath, node: &Node, found: OnDisk) -> Option<Problem> {
    let reason = match (found, &node.kind) {
        (OnDisk::NotADir, NodeKind::Dir) => "is a file in the root, where a directory is planned",
        (
            OnDisk::Dir,
            NodeKind::Link { .. }
            | NodeKind::File { .. }
            | NodeKind::Generated { .. }
            | NodeKind::Special,
        ) => "is a directory in the root and cannot be replaced",
        (OnDisk::UnderAFile, _) => "cannot be created: one of its parents is a file in the root",
        _ => return None,
    };
    Some(Problem {
        path: path.clone(),
        status: status_of(&node.kind),
        message: format!(
            "{}: {} {reason}",
            describe(plan, node.op),
            shown(path, node.requested.as_ref())
        ),
    })
}

/// The status a write of this kind fails with (SPEC B1).
fn status_of(kind: &NodeKind) -> Status {
    match kind {
        NodeKind::Dir => Status::Dir,
        NodeKind::Link { .. } => Status::Link,
        NodeKind::File { .. } | NodeKind::Generated { .. } | NodeKind::Special => Status::FileCopy,
    }
}

fn conflict_problem(plan: &Plan, c: &Conflict) -> Problem {
    let what = match c.reason {
        ConflictReason::DirAndFile => "one entry makes it a directory and another a file or link",
        ConflictReason::UnderAFile => "it is a file, and another entry is planned below it",
        ConflictReason::LinkLoop => "it goes through more than 40 links",
    };
    let also = if c.first == c.second {
        String::new()
    } else {
        format!(" (see also {})", describe(plan, c.first))
    };
    Problem {
        path: c.path.clone(),
        status: Status::InvalidBom,
        message: format!(
            "{}: conflicting entries for {}: {what}{also}",
            describe(plan, c.second),
            c.path
        ),
    }
}

/// The path, and the name the bom gave it when links lead elsewhere.
fn shown(at: &ImagePath, requested: Option<&ImagePath>) -> String {
    match requested {
        Some(r) => format!("{r} (which is {at} in the image)"),
        None => at.to_string(),
    }
}

/// Where an operation came from: its bom entry, or the file a library is for.
pub(crate) fn describe(plan: &Plan, op: usize) -> String {
    let Some(p) = plan.ops.get(op) else {
        return String::from("?");
    };
    match (&p.at, &p.op) {
        (Some(at), _) => at.clone(),
        (None, Op::CopyLibrary { needed_by, .. }) => {
            format!("a library of {}", needed_by.display())
        }
        (None, Op::Implied { why, .. }) => format!("an implied file ({why})"),
        (None, Op::Record { why, .. }) => format!("a record ({why})"),
        (None, _) => plan
            .boms
            .get(p.bom)
            .map(|b| b.display().to_string())
            .unwrap_or_default(),
    }
}
