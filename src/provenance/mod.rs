//! Provenance: where every file of the image comes from. Each regular file is attributed to the
//! Debian package owning its source (read from the dpkg database of the host, or of the
//! `--sysroot`), or marked unpackaged with the reason it is in the image (its bom entry, the
//! program that needs it as a library, `--implicit`). The SBOM writers ([`sbom`]) and
//! `--dpkg-status` ([`status_d`]) are built on it.
//!
//! Only regular files are attributed: directories and links carry no content a package could
//! be said to ship (a link copied from a package is attributed through the file it leads to).

mod control;
pub mod dpkg;
pub mod sbom;
pub mod status_d;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use dpkg::{Database, DpkgError, Package};

use crate::fs::ImagePath;
use crate::manifest;
use crate::plan::Plan;
use crate::plan::image::{ImageMap, NodeKind};

/// A package of which the image holds files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUse {
    pub package: Package,
    /// The `License:` of its DEP-5 copyright file for all its files; None when not stated.
    pub license: Option<String>,
    /// Its distinct files in the image (a file copied to two places counts once).
    pub files_in_image: usize,
    /// Its regular files in the root it was read from.
    pub files_in_package: usize,
}

impl PackageUse {
    /// Only some of the package's files were copied (most images take no documentation).
    pub fn partial(&self) -> bool {
        self.files_in_image < self.files_in_package
    }
}

/// A regular file of the image and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub path: ImagePath,
    /// The host (or sysroot) file copied; None for a file copy_bom writes itself.
    pub source: Option<PathBuf>,
    /// Index into [`Attribution::packages`]; None when no package owns the source.
    pub package: Option<usize>,
    /// Why the file is in the image: its bom entry (`file:line:column`) or the library's
    /// reason, as in the manifest.
    pub why: String,
}

/// Every regular file of a planned image, attributed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// The packages with files in the image, by name then architecture.
    pub packages: Vec<PackageUse>,
    /// By image path.
    pub files: Vec<ImageFile>,
}

/// Attributes every regular file of `map` with `db`. Sources outside the database's root (a
/// relative source beside a sysroot) are unpackaged.
pub fn attribute(plan: &Plan, map: &ImageMap, db: &mut Database) -> Attribution {
    let root = std::path::absolute(db.root()).unwrap_or_else(|_| db.root().to_path_buf());
    let mut nodes = Vec::new();
    let mut queries = Vec::new();
    for (path, node) in &map.nodes {
        let source = match &node.kind {
            NodeKind::File { src } => Some(src.clone()),
            NodeKind::Generated { .. } => None,
            _ => continue,
        };
        let query = source.as_deref().and_then(|s| in_root(&root, s));
        if let Some(q) = &query {
            queries.push(q.clone());
        }
        nodes.push((path.clone(), source, query.is_some(), node.op));
    }
    let mut found = db.owners(&queries).into_iter();
    let mut owned: BTreeMap<usize, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut files = Vec::new();
    for (path, source, queried, op) in nodes {
        let owner = if queried {
            found.next().flatten()
        } else {
            None
        };
        let owner = owner.map(|o| {
            owned.entry(o.package).or_default().insert(o.content);
            o.package
        });
        files.push((path, source, owner, manifest::why(plan, op)));
    }
    // Database indexes → indexes of the packages the image uses.
    let used: Vec<usize> = owned.keys().copied().collect();
    let counts: Vec<usize> = used.iter().map(|i| db.regular_files(*i)).collect();
    let packages = used
        .iter()
        .zip(counts)
        .filter_map(|(i, files_in_package)| {
            Some(PackageUse {
                package: db.packages.get(*i)?.clone(),
                license: db.license(*i),
                files_in_image: owned.get(i).map_or(0, BTreeSet::len),
                // A file the root no longer holds is still one of the package's.
                files_in_package: files_in_package.max(owned.get(i).map_or(0, BTreeSet::len)),
            })
        })
        .collect();
    let files = files
        .into_iter()
        .map(|(path, source, owner, why)| ImageFile {
            path,
            source,
            package: owner.and_then(|o| used.binary_search(&o).ok()),
            why,
        })
        .collect();
    Attribution { packages, files }
}

/// The path inside `root` of the host path `source` (made absolute first).
fn in_root(root: &Path, source: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(source).ok()?;
    let rel = abs.strip_prefix(root).ok()?;
    Some(Path::new("/").join(rel))
}
