//! Writing the planned image: every check against the root's current state
//! first, then directories, links, files (in parallel) and finally directory
//! metadata. Every write goes through [`ImageRoot`], so it lands inside the
//! root whatever links the root already holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result, Status};
use crate::fs::{self, CopyOptions, ImageRoot, Outcome};
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
    check_existing(map, root)?;
    let mut summary = Summary::default();
    mkdir(root, Path::new("/"))?;
    remove_stale_temps(map, root)?;
    for (path, node) in &map.nodes {
        if node.kind == NodeKind::Dir {
            mkdir(root, path)?;
            summary.dirs += 1;
        }
    }
    for (path, node) in &map.nodes {
        if let NodeKind::Link { target } = &node.kind {
            link(root, path, target)?;
            summary.links += 1;
        }
    }
    let counters = Counters::default();
    let files: Vec<_> = map
        .nodes
        .iter()
        .filter_map(|(p, n)| match &n.kind {
            NodeKind::File { src } => Some((p, n, src)),
            _ => None,
        })
        .collect();
    files.par_iter().try_for_each(|(path, node, src)| {
        copy(plan, root, path, node, src, opts, &counters)?;
        progress();
        Ok::<(), Error>(())
    })?;
    set_dir_metadata(plan, map, root, opts)?;
    summary.files_copied = counters.copied.into_inner();
    summary.files_unchanged = counters.unchanged.into_inner();
    summary.libraries = counters.libraries.into_inner();
    summary.bytes = counters.bytes.into_inner();
    Ok(summary)
}

/// Refuses, before the first write, what would fail halfway: a link or file
/// over an existing directory, a directory over an existing file.
fn check_existing(map: &ImageMap, root: &ImageRoot) -> Result<()> {
    // In parallel, but the error reported is the first in path order.
    let nodes: Vec<_> = map.nodes.iter().collect();
    let results: Vec<Result<()>> = nodes
        .par_iter()
        .map(|(path, node)| check_one(root, path, node))
        .collect();
    results.into_iter().collect()
}

fn check_one(root: &ImageRoot, path: &Path, node: &Node) -> Result<()> {
    let host = root
        .host_path(path)
        .map_err(|e| write_error(&node.kind, path, e))?;
    let Ok(meta) = host.symlink_metadata() else {
        return Ok(());
    };
    // A link in the root is followed inside the image, never on the host.
    let is_dir = meta.is_dir()
        || (meta.file_type().is_symlink()
            && root
                .host_path_followed(path)
                .is_ok_and(|h| h.symlink_metadata().map_or(true, |m| m.is_dir())));
    let problem = match &node.kind {
        NodeKind::Dir if !is_dir => Some("is a file in the root"),
        NodeKind::Link { .. } | NodeKind::File { .. } if meta.is_dir() => {
            Some("is a directory in the root and cannot be replaced")
        }
        _ => None,
    };
    match problem {
        Some(p) => {
            let e = std::io::Error::other(format!("{} {p}", path.display()));
            Err(write_error(&node.kind, path, e))
        }
        None => Ok(()),
    }
}

/// A killed run leaves temporary files beside the files it was writing: a
/// rerun (holding the root's lock) removes them from every directory it writes.
fn remove_stale_temps(map: &ImageMap, root: &ImageRoot) -> Result<()> {
    let dirs: BTreeSet<&Path> = map
        .nodes
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Dir)
        .filter_map(|(p, _)| p.as_path().parent())
        .collect();
    for dir in dirs {
        let host = root
            .host_path_followed(dir)
            .map_err(|e| write_error(&NodeKind::Dir, dir, e))?;
        let removed =
            fs::remove_stale_temp_files(&host).map_err(|e| write_error(&NodeKind::Dir, dir, e))?;
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary files of an interrupted run in {}",
                dir.display()
            );
        }
    }
    Ok(())
}

fn write_error(kind: &NodeKind, path: &Path, e: std::io::Error) -> Error {
    let status = match kind {
        NodeKind::Dir => Status::Dir,
        NodeKind::Link { .. } => Status::Link,
        NodeKind::File { .. } => Status::FileCopy,
    };
    Error::new(
        status,
        format!("cannot create {} in the image: {e}", path.display()),
    )
}

fn mkdir(root: &ImageRoot, path: &Path) -> Result<PathBuf> {
    root.create_dir_all(path)
        .map_err(|e| write_error(&NodeKind::Dir, path, e))
}

fn parent_dir(root: &ImageRoot, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir(root, parent)?;
    }
    Ok(())
}

fn link(root: &ImageRoot, path: &Path, target: &Path) -> Result<()> {
    let kind = NodeKind::Link {
        target: target.to_path_buf(),
    };
    parent_dir(root, path)?;
    let host = root
        .host_path(path)
        .map_err(|e| write_error(&kind, path, e))?;
    if let Outcome::Copied { .. } =
        fs::make_symlink(target, &host).map_err(|e| write_error(&kind, path, e))?
    {
        tracing::info!("ln -s {} {}", target.display(), path.display());
    }
    Ok(())
}

fn copy(
    plan: &Plan,
    root: &ImageRoot,
    path: &Path,
    node: &Node,
    src: &Path,
    opts: &CopyOptions,
    counters: &Counters,
) -> Result<()> {
    parent_dir(root, path)?;
    let host = root
        .host_path(path)
        .map_err(|e| write_error(&node.kind, path, e))?;
    let outcome = fs::copy_file(src, &host, opts).map_err(|e| {
        Error::new(
            Status::FileCopy,
            format!("cannot copy {} to {}: {e}", src.display(), path.display()),
        )
    })?;
    match outcome {
        Outcome::Copied { bytes } => {
            tracing::info!("copy {} {}", src.display(), path.display());
            counters.copied.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        Outcome::Unchanged => {
            tracing::debug!("unchanged {}", path.display());
            counters.unchanged.fetch_add(1, Ordering::Relaxed);
        }
    }
    if matches!(
        plan.ops.get(node.op).map(|p| &p.op),
        Some(Op::CopyLibrary { .. })
    ) {
        counters.libraries.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
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
        let (NodeKind::Dir, Some(e)) = (&node.kind, node.entry) else {
            continue;
        };
        let Some(Op::CopyDir { entries, .. }) = plan.ops.get(node.op).map(|p| &p.op) else {
            continue;
        };
        let Some(entry) = entries.get(e) else {
            continue;
        };
        let host = root
            .host_path(path)
            .map_err(|err| write_error(&node.kind, path, err))?;
        fs::copy_dir_metadata(entry, &host, opts)
            .map_err(|err| write_error(&node.kind, path, err))?;
    }
    Ok(())
}
