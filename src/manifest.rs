//! `--manifest FILE`: the digest of the image written (see [`crate::digest`]) and one JSON record
//! per path the plan put in it, with why it is there, in path order:
//! `{"digest": "sha256:...", "paths": [...]}`. The files' SHA-256 come from the digest, which
//! hashed every file of the image once (in parallel); only a manifest or `--digest` pays for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::digest::ImageDigest;
use crate::error::{Error, Result, Status};
use crate::fs::{ImagePath, ImageRoot};
use crate::plan::image::{ImageMap, Node, NodeKind};
use crate::plan::{Op, Plan};
use crate::provenance::Attribution;

/// One path of the image.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    pub path: PathBuf,
    /// "dir", "file", "link" or "special".
    pub kind: &'static str,
    /// The host file copied, or the link's target.
    pub source: Option<PathBuf>,
    /// The bom entry (`file:line:column`), or the library's reason.
    pub why: String,
    pub size: u64,
    pub mode: u32,
    pub sha256: Option<String>,
    /// With `--sbom` or `--dpkg-status` (the dpkg database is read then): the Debian package
    /// owning a regular file's content, or null when none does. Absent otherwise: reading the
    /// database is not paid for by a plain manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<Option<PackageRef>>,
}

/// A Debian package, as the manifest names it.
#[derive(Debug, Serialize, PartialEq, Eq, Clone)]
pub struct PackageRef {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// The whole manifest: what `--manifest` writes.
#[derive(Debug, Serialize)]
pub struct Manifest<'a> {
    /// The digest of the whole image (every path under the root, not only those listed).
    pub digest: &'a str,
    pub paths: &'a [Record],
}

/// Describes every path of `map` as written under `root`, and the parent
/// directories created on the way (the image root itself excepted). The files'
/// hashes are taken from `digest`, made of the same image.
pub fn records(
    plan: &Plan,
    map: &ImageMap,
    root: &ImageRoot,
    digest: &ImageDigest,
    attribution: Option<&Attribution>,
) -> Result<Vec<Record>> {
    let mut paths: BTreeMap<ImagePath, Option<&Node>> = BTreeMap::new();
    for (path, node) in &map.nodes {
        paths.insert(path.clone(), Some(node));
        let mut up = path.parent();
        while let Some(parent) = up {
            if parent == ImagePath::root() || paths.contains_key(&parent) {
                break;
            }
            up = parent.parent();
            let node = map.nodes.get(&parent);
            paths.insert(parent, node);
        }
    }
    paths.remove(&ImagePath::root());
    let paths: Vec<_> = paths.into_iter().collect();
    let mut records: Vec<Record> = paths
        .par_iter()
        .map(|(path, node)| record(plan, root, digest, path, *node))
        .collect::<Result<_>>()?;
    if let Some(a) = attribution {
        let owners: BTreeMap<&Path, Option<PackageRef>> = a
            .files
            .iter()
            .map(|f| {
                let package = f
                    .package
                    .and_then(|i| a.packages.get(i))
                    .map(|u| PackageRef {
                        name: u.package.name.clone(),
                        version: u.package.version.clone(),
                        architecture: u.package.architecture.clone(),
                    });
                (f.path.as_path(), package)
            })
            .collect();
        for r in &mut records {
            if let Some(p) = owners.get(r.path.as_path()) {
                r.package = Some(p.clone());
            }
        }
    }
    Ok(records)
}

fn record(
    plan: &Plan,
    root: &ImageRoot,
    digest: &ImageDigest,
    path: &Path,
    node: Option<&Node>,
) -> Result<Record> {
    let meta = root
        .lstat(path)
        .map_err(|e| fail(path, e))?
        .ok_or_else(|| fail(path, std::io::ErrorKind::NotFound.into()))?;
    let (kind, source, sha256) = match node.map(|n| &n.kind) {
        None | Some(NodeKind::Dir) => ("dir", None, None),
        Some(NodeKind::Link { target }) => ("link", Some(target.clone()), None),
        Some(NodeKind::Special) => ("special", None, None),
        Some(NodeKind::Generated { .. }) => ("file", None, Some(file_hash(digest, path)?)),
        Some(NodeKind::File { src }) => ("file", Some(src.clone()), Some(file_hash(digest, path)?)),
    };
    Ok(Record {
        path: path.to_path_buf(),
        kind,
        source,
        why: match node {
            Some(n) => why(plan, n.op),
            None => "parent directory".to_string(),
        },
        size: if kind == "file" { meta.size } else { 0 },
        mode: meta.mode,
        sha256,
        package: None,
    })
}

/// The SHA-256 the digest found for the regular file at `path`.
fn file_hash(digest: &ImageDigest, path: &Path) -> Result<String> {
    match digest.files.get(path) {
        Some(h) => Ok(h.clone()),
        None => Err(fail(path, std::io::ErrorKind::NotFound.into())),
    }
}

/// Writes the manifest as JSON.
pub fn write(path: &Path, manifest: &Manifest<'_>) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::new(Status::FileCopy, format!("manifest: {e}")))?;
    std::fs::write(path, text + "\n").map_err(|e| {
        Error::new(
            Status::FileCopy,
            format!("cannot write manifest {}: {e}", path.display()),
        )
    })
}

/// Why the operation `op` is in the plan: its bom entry (`file:line:column`), or the reason
/// copy_bom added it (a library, an implied file, a record).
pub fn why(plan: &Plan, op: usize) -> String {
    match plan.ops.get(op) {
        Some(p) => match (&p.at, &p.op) {
            (Some(at), _) => at.clone(),
            (
                None,
                Op::CopyLibrary {
                    name,
                    needed_by,
                    dlopen,
                    ..
                },
            ) => {
                let how = match dlopen {
                    Some(p) => format!(" (.note.dlopen, {})", p.name()),
                    None => String::new(),
                };
                format!("library {name}{how} needed by {}", needed_by.display())
            }
            (None, Op::Implied { why, .. }) => format!("implied: {why}"),
            (None, Op::Record { why, .. }) => why.clone(),
            (None, _) => String::new(),
        },
        None => String::new(),
    }
}

fn fail(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        Status::FileCopy,
        format!("manifest: cannot read {} in the image: {e}", path.display()),
    )
}
