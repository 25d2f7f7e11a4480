//! The dpkg database of a root file system (the host's `/`, or a `--sysroot`): which packages
//! are installed (`var/lib/dpkg/status`) and which paths each one owns
//! (`var/lib/dpkg/info/NAME.list`, or `NAME:ARCH.list` for a `Multi-Arch: same` package).
//!
//! dpkg records paths as the package shipped them. On a merged-/usr system (`/lib -> usr/lib`)
//! a list says `/lib/x86_64-linux-gnu/libc.so.6` for the file a loader finds as
//! `/usr/lib/x86_64-linux-gnu/libc.so.6`, and the reverse happens too; so every listed path is
//! keyed by its canonical spelling (its directories' links followed inside the root), and so is
//! every path looked up.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::control::{self, Paragraph};
use crate::fs::ImageRoot;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    #[error(
        "cannot read the dpkg database {path}: {source} (attribution needs dpkg's status file)"
    )]
    Status { path: PathBuf, source: io::Error },
    #[error("cannot read the dpkg database's file list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("cannot open {root} to read its dpkg database: {source}")]
    Root { root: PathBuf, source: io::Error },
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Its paragraph of the status file, verbatim: what `--dpkg-status` writes.
    pub control: String,
    /// The paths its list file names, canonical (directories included).
    pub paths: Vec<PathBuf>,
}

/// The installed packages of one root and the owner of every path they list.
#[derive(Debug)]
pub struct Database {
    root: PathBuf,
    /// Sorted by name, then architecture.
    pub packages: Vec<Package>,
    /// Canonical path → index into `packages` (the first in that order when several list it:
    /// only directories are shared, and diverted files).
    owners: HashMap<PathBuf, usize>,
    canonical: Canonical,
}

impl Database {
    /// Reads the database of the root file system at `root` ("/" for the host). The list files
    /// (a thousand or more on a desktop system) are read in parallel.
    pub fn read(root: &Path) -> Result<Database, DpkgError> {
        let admin = root.join("var/lib/dpkg");
        let status_path = admin.join("status");
        let status = std::fs::read(&status_path).map_err(|source| DpkgError::Status {
            path: status_path.clone(),
            source,
        })?;
        let mut packages: Vec<Package> = control::paragraphs(&String::from_utf8_lossy(&status))
            .iter()
            .filter_map(installed)
            .collect();
        packages.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
        packages.dedup_by(|a, b| (&a.name, &a.architecture) == (&b.name, &b.architecture));
        let lists = read_lists(&admin.join("info"), &packages)?;
        let image = ImageRoot::open_existing(root).map_err(|source| DpkgError::Root {
            root: root.to_path_buf(),
            source,
        })?;
        let mut canonical = Canonical::new(image);
        let mut owners = HashMap::new();
        for (index, listed) in lists {
            let paths: Vec<PathBuf> = listed.iter().map(|p| canonical.path(p, false)).collect();
            for p in &paths {
                owners.entry(p.clone()).or_insert(index);
            }
            if let Some(package) = packages.get_mut(index) {
                package.paths = paths;
            }
        }
        // Lists were read in any order; the owner of a shared path must not depend on it.
        for (index, package) in packages.iter().enumerate() {
            for p in &package.paths {
                if let Some(owner) = owners.get_mut(p) {
                    *owner = (*owner).min(index);
                }
            }
        }
        Ok(Database {
            root: root.to_path_buf(),
            packages,
            owners,
            canonical,
        })
    }

    /// The root file system this database describes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The package owning the content of `path` (a path inside the root): the file a link there
    /// finally leads to, so that a program reached through `/usr/bin/redis-server ->
    /// redis-check-rdb` is attributed to the package that ships `redis-check-rdb`. When no
    /// package owns the content, the package owning the link itself, if any.
    pub fn owner(&mut self, path: &Path) -> Option<usize> {
        let content = self.canonical.path(path, true);
        if let Some(i) = self.owners.get(&content) {
            return Some(*i);
        }
        let own = self.canonical.path(path, false);
        self.owners.get(&own).copied()
    }

    /// The canonical spelling of `path` inside the root, links followed (the last one too).
    pub fn content_path(&mut self, path: &Path) -> PathBuf {
        self.canonical.path(path, true)
    }

    /// How many regular files the package has in the root (its list also names directories and
    /// links; those are not counted).
    pub fn regular_files(&self, index: usize) -> usize {
        let Some(package) = self.packages.get(index) else {
            return 0;
        };
        package
            .paths
            .par_iter()
            .filter(|p| {
                // Canonical paths hold no links in their directories: this stays in the root.
                std::fs::symlink_metadata(self.on_host(p)).is_ok_and(|m| m.is_file())
            })
            .count()
    }

    /// The license of a package as its machine-readable copyright file (DEP-5) states it for
    /// all its files (the `License:` of the `Files: *` paragraph); None when the file is
    /// missing or not in that format.
    pub fn license(&mut self, index: usize) -> Option<String> {
        let name = &self.packages.get(index)?.name;
        let doc = Path::new("/usr/share/doc").join(name).join("copyright");
        let at = self.canonical.path(&doc, true);
        let text = std::fs::read(self.on_host(&at)).ok()?;
        dep5_license(&String::from_utf8_lossy(&text))
    }

    /// The host path of a canonical path inside the root.
    fn on_host(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }
}

/// The package of a status paragraph, if it is installed (its files are on disk: not only
/// configuration files left behind, not removed).
fn installed(p: &Paragraph) -> Option<Package> {
    let state = p.field("Status")?.split_whitespace().nth(2)?;
    if matches!(state, "not-installed" | "config-files") {
        return None;
    }
    Some(Package {
        name: p.field("Package")?.to_string(),
        version: p.field("Version")?.to_string(),
        architecture: p.field("Architecture").unwrap_or("all").to_string(),
        control: p.text.clone(),
        paths: Vec::new(),
    })
}

/// Reads every list file of an installed package, in parallel: (package index, listed paths).
fn read_lists(info: &Path, packages: &[Package]) -> Result<Vec<(usize, Vec<PathBuf>)>, DpkgError> {
    let dir = std::fs::read_dir(info).map_err(|source| DpkgError::List {
        path: info.to_path_buf(),
        source,
    })?;
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, p) in packages.iter().enumerate() {
        index.insert(format!("{}:{}", p.name, p.architecture), i);
        // The unqualified name: the first architecture in sort order keeps it.
        index.entry(p.name.clone()).or_insert(i);
    }
    let mut lists: Vec<(usize, PathBuf)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".list")?;
            Some((*index.get(stem)?, e.path()))
        })
        .collect();
    lists.sort();
    lists
        .into_par_iter()
        .map(|(i, path)| {
            let bytes = std::fs::read(&path).map_err(|source| DpkgError::List {
                path: path.clone(),
                source,
            })?;
            let paths = bytes
                .split(|b| *b == b'\n')
                .filter(|l| l.first() == Some(&b'/') && *l != b"/.")
                .map(|l| PathBuf::from(OsStr::from_bytes(l)))
                .collect();
            Ok((i, paths))
        })
        .collect()
}

/// The `License:` short name of the `Files: *` paragraph of a DEP-5 copyright file.
pub fn dep5_license(text: &str) -> Option<String> {
    let ps = control::paragraphs(text);
    ps.first()?.field("Format")?;
    ps.iter()
        .find(|p| {
            p.field("Files")
                .is_some_and(|f| f.split_whitespace().any(|g| g == "*"))
        })?
        .field("License")?
        .lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// Canonical spellings of paths inside a root, each directory resolved once (a list names
/// tens of thousands of paths in a few thousand directories).
#[derive(Debug)]
struct Canonical {
    root: ImageRoot,
    dirs: HashMap<PathBuf, PathBuf>,
}

impl Canonical {
    fn new(root: ImageRoot) -> Canonical {
        Canonical {
            root,
            dirs: HashMap::new(),
        }
    }

    /// `p` with its directories' links followed inside the root (and its last component's,
    /// when `follow_last`). What cannot be resolved (missing, a loop) keeps its spelling.
    fn path(&mut self, p: &Path, follow_last: bool) -> PathBuf {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return PathBuf::from("/");
        };
        let at = self.dir(parent).join(name);
        if follow_last && self.is_link(&at) {
            return self.root.resolve(&at, true).unwrap_or(at);
        }
        at
    }

    fn dir(&mut self, d: &Path) -> PathBuf {
        if let Some(found) = self.dirs.get(d) {
            return found.clone();
        }
        let resolved = match (d.parent(), d.file_name()) {
            (Some(parent), Some(name)) => {
                let at = self.dir(parent).join(name);
                if self.is_link(&at) {
                    self.root.resolve(&at, true).unwrap_or(at)
                } else {
                    at
                }
            }
            _ => PathBuf::from("/"),
        };
        self.dirs.insert(d.to_path_buf(), resolved.clone());
        resolved
    }

    /// Whether `p` (whose directories hold no links) is a link.
    fn is_link(&self, p: &Path) -> bool {
        let host = self.root.root().join(p.strip_prefix("/").unwrap_or(p));
        std::fs::symlink_metadata(host).is_ok_and(|m| m.file_type().is_symlink())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep5_license_of_all_files() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    Upstream-Name: x\n\nFiles: src/*\nLicense: MIT\n\n\
                    Files: debian/* *\nCopyright: me\nLicense: BSD-3-clause\n text of it\n";
        assert_eq!(dep5_license(text).as_deref(), Some("BSD-3-clause"));
        assert_eq!(
            dep5_license("This is free software.\n\nLicense: MIT\n"),
            None
        );
        assert_eq!(dep5_license(""), None);
    }

    #[test]
    fn a_package_is_installed_unless_removed() {
        let ps = control::paragraphs(
            "Package: a\nStatus: install ok installed\nVersion: 1:2.0+b1\nArchitecture: amd64\n\n\
             Package: b\nStatus: deinstall ok config-files\nVersion: 1\n\n\
             Package: c\nVersion: 1\n",
        );
        let found: Vec<Package> = ps.iter().filter_map(installed).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].version, "1:2.0+b1");
        assert!(found[0].control.starts_with("Package: a\n"));
    }
}
