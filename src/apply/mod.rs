//! Writing the planned image, once `plan::validate` has passed it: stale
//! temporary files of an interrupted run removed, then directories, links and
//! special files, files (in parallel, a directory at a time) and finally
//! directory metadata. Every write goes through [`ImageRoot`], whose directory
//! descriptors keep it inside the root whatever links the root holds, already
//! or created by this very run.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result, Status};
use crate::fs::{CopyOptions, ImageDir, ImageRoot, Outcome, Scanned, TreeEntry};
use crate::plan::image::{ImageMap, Node, NodeKind};
use crate::plan::{Op, Plan};

/// What a run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub files_copied: u64,
    pub files_unchanged: u64,
    pub libraries: u64,
    pub links: u64,
    pub dirs: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    copied: AtomicU64,
    unchanged: AtomicU64,
    libraries: AtomicU64,
    bytes: AtomicU64,
}

/// Writes `map` into `root`. `progress` is called once per file written or
/// found unchanged.
pub fn apply(
    plan: &Plan,
    map: &ImageMap,
    root: &ImageRoot,
    opts: &CopyOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Summary> {
    let mut summary = Summary::default();
    remove_stale_temps(map, root)?;
    for (path, node) in &map.nodes {
        if node.kind == NodeKind::Dir {
            mkdir(root, path)?;
            summary.dirs += 1;
        }
    }
    for (path, node) in &map.nodes {
        match &node.kind {
            NodeKind::Link { target } => {
                link(plan, root, path, node, target, opts)?;
                summary.links += 1;
            }
            NodeKind::Special => special(plan, root, path, node, opts)?,
            _ => {}
        }
    }
    let counters = Counters::default();
    let mut files: Vec<_> = map
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n.kind, NodeKind::File { .. } | NodeKind::Generated { .. }))
        .collect();
    // The files of one directory are written by one thread through one descriptor of it: two
    // threads creating and renaming in one directory mostly wait for each other's lock on it.
    files.sort_by_cached_key(|n| n.0.parent_key());
    let batches: Vec<_> = files
        .chunk_by(|a, b| a.0.parent_key() == b.0.parent_key())
        .collect();
    batches.par_iter().try_for_each(|batch| {
        let Some(&(first, first_node)) = batch.first() else {
            return Ok(());
        };
        let dir = root
            .open_dir(first.parent().as_deref().unwrap_or(first))
            .map_err(|e| write_error(root, &first_node.kind, first, e))?;
        for (path, node) in batch.iter() {
            match &node.kind {
                NodeKind::File { src } => copy(plan, root, &dir, path, node, src, opts, &counters)?,
                NodeKind::Generated { text } => {
                    let outcome = root
                        .write_generated_in(&dir, text.as_bytes(), path, opts)
                        .map_err(|e| write_error(root, &node.kind, path, e))?;
                    count(&counters, outcome, path, "write");
                }
                _ => {}
            }
            progress();
        }
        Ok::<(), Error>(())
    })?;
    set_dir_metadata(plan, map, root, opts)?;
    summary.files_copied = counters.copied.into_inner();
    summary.files_unchanged = counters.unchanged.into_inner();
    summary.libraries = counters.libraries.into_inner();
    summary.bytes = counters.bytes.into_inner();
    Ok(summary)
}

/// A killed run leaves temporary files beside the files it was writing: a
/// rerun (holding the root's lock) removes them from every directory it writes.
fn remove_stale_temps(map: &ImageMap, root: &ImageRoot) -> Result<()> {
    let mut dirs: Vec<&[u8]> = map
        .nodes
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Dir)
        .map(|(p, _)| p.parent_key())
        .filter(|dir| !dir.is_empty())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.par_iter().try_for_each(|dir| {
        let dir = Path::new(OsStr::from_bytes(dir));
        let removed = root
            .remove_stale_temp_files(dir)
            .map_err(|e| write_error(root, &NodeKind::Dir, dir, e))?;
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary files of an interrupted run in {}",
                dir.display()
            );
        }
        Ok(())
    })
}

/// Names the image path, the image's root on the host (e.g. a read-only root), and the OS reason.
fn write_error(root: &ImageRoot, kind: &NodeKind, path: &Path, e: std::io::Error) -> Error {
    let status = match kind {
        NodeKind::Dir | NodeKind::Special => Status::Dir,
        NodeKind::Link { .. } => Status::Link,
        NodeKind::File { .. } | NodeKind::Generated { .. } => Status::FileCopy,
    };
    Error::new(
        status,
        format!(
            "cannot create {} in the image {}: {e}",
            path.display(),
            root.root().display()
        ),
    )
}

fn mkdir(root: &ImageRoot, path: &Path) -> Result<()> {
    root.create_dir_all(path)
        .map_err(|e| write_error(root, &NodeKind::Dir, path, e))
}

/// The scanned entry of a dir copy a node came from, if it came from one.
fn tree_entry<'a>(plan: &'a Plan, node: &Node) -> Option<&'a TreeEntry> {
    let Some(Op::CopyDir { entries, .. }) = plan.ops.get(node.op).map(|p| &p.op) else {
        return None;
    };
    entries.get(node.entry?)
}

fn link(
    plan: &Plan,
    root: &ImageRoot,
    path: &Path,
    node: &Node,
    target: &Path,
    opts: &CopyOptions,
) -> Result<()> {
    // A link copied from a dir keeps its mtime (and owner), like rsync -a.
    let source = tree_entry(plan, node);
    let outcome = root
        .make_symlink(target, path, source, opts)
        .map_err(|e| write_error(root, &node.kind, path, e))?;
    if let Outcome::Copied { .. } = outcome {
        tracing::info!("ln -s {} {}", target.display(), path.display());
    }
    Ok(())
}

/// A FIFO, socket or device node of a dir copy, recreated like rsync -a does.
fn special(
    plan: &Plan,
    root: &ImageRoot,
    path: &Path,
    node: &Node,
    opts: &CopyOptions,
) -> Result<()> {
    let fail = |e| write_error(root, &node.kind, path, e);
    let source = tree_entry(plan, node).ok_or_else(|| {
        fail(std::io::Error::other(
            "a special file that comes from no dir copy",
        ))
    })?;
    if let Outcome::Copied { .. } = root.make_special(path, source, opts).map_err(fail)? {
        tracing::info!("mknod {}", path.display());
    }
    Ok(())
}

fn copy_error(root: &ImageRoot, src: &Path, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        Status::FileCopy,
        format!(
            "cannot copy {} to {} in the image {}: {e}",
            src.display(),
            path.display(),
            root.root().display()
        ),
    )
}

#[allow(clippy::too_many_arguments)]
fn copy(
    plan: &Plan,
    root: &ImageRoot,
    dir: &ImageDir,
    path: &Path,
    node: &Node,
    src: &Path,
    opts: &CopyOptions,
    counters: &Counters,
) -> Result<()> {
    let scanned = tree_entry(plan, node).and_then(Scanned::of);
    let outcome = root
        .copy_file_in(dir, src, path, scanned, opts)
        .map_err(|e| copy_error(root, src, path, e))?;
    count(counters, outcome, path, &format!("copy {}", src.display()));
    if matches!(
        plan.ops.get(node.op).map(|p| &p.op),
        Some(Op::CopyLibrary { .. })
    ) {
        counters.libraries.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Counts a file written or found unchanged, and logs it (`what`: the action and its source).
fn count(counters: &Counters, outcome: Outcome, path: &Path, what: &str) {
    match outcome {
        Outcome::Copied { bytes } => {
            tracing::info!("{what} {}", path.display());
            counters.copied.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        Outcome::Unchanged => {
            tracing::debug!("unchanged {}", path.display());
            counters.unchanged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Gives the directories of dir copies their source mode and mtime, deepest
/// first, after their contents are written (writing would change the mtime).
fn set_dir_metadata(
    plan: &Plan,
    map: &ImageMap,
    root: &ImageRoot,
    opts: &CopyOptions,
) -> Result<()> {
    for (path, node) in map.nodes.iter().rev() {
        if node.kind != NodeKind::Dir {
            continue;
        }
        let Some(entry) = tree_entry(plan, node) else {
            continue;
        };
        root.copy_dir_metadata(path, entry, opts)
            .map_err(|err| write_error(root, &node.kind, path, err))?;
    }
    Ok(())
}
