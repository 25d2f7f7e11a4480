//! The dpkg database of a root file system (the host's `/`, or a `--sysroot`): which packages
//! are installed (`var/lib/dpkg/status`) and which paths each one owns
//! (`var/lib/dpkg/info/NAME.list`, or `NAME:ARCH.list` for a `Multi-Arch: same` package).
//!
//! dpkg records paths as the package shipped them. On a merged-/usr system (`/lib -> usr/lib`)
//! a list says `/lib/x86_64-linux-gnu/libc.so.6` for the file a loader finds as
//! `/usr/lib/x86_64-linux-gnu/libc.so.6`, and the reverse happens too; so listed paths and
//! looked-up paths are compared in their canonical spelling (their directories' links followed
//! inside the root).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    /// The paths its list file names, as dpkg spells them (directories included).
    pub paths: Vec<PathBuf>,
}

/// A package owning a path, and the canonical path it lists (the content, or the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Index into [`Database::packages`].
    pub package: usize,
    pub content: PathBuf,
}

/// The installed packages of one root and the paths they list.
#[derive(Debug)]
pub struct Database {
    root: PathBuf,
    /// Sorted by name, then architecture.
    pub packages: Vec<Package>,
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
        for (index, paths) in read_lists(&admin.join("info"), &packages)? {
            if let Some(package) = packages.get_mut(index) {
                package.paths = paths;
            }
        }
        let image = ImageRoot::open_existing(root).map_err(|source| DpkgError::Root {
            root: root.to_path_buf(),
            source,
        })?;
        Ok(Database {
            root: root.to_path_buf(),
            packages,
            canonical: Canonical::new(image),
        })
    }

    /// The root file system this database describes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The owner of the content of each of `paths` (paths inside the root): the package listing
    /// the file a link there finally leads to, so that a program reached through
    /// `/usr/bin/redis-server -> redis-check-rdb` is attributed to the package that ships
    /// `redis-check-rdb`; when no package lists the content, the package listing the link
    /// itself. Paths compare in canonical spelling, so merged-/usr aliases meet.
    ///
    /// Only the listed paths with the file name of a wanted path are respelled: an image holds
    /// a few thousand files, the lists a hundred thousand paths or more.
    pub fn owners(&mut self, paths: &[PathBuf]) -> Vec<Option<Owned>> {
        let wanted: Vec<(PathBuf, PathBuf)> = paths
            .iter()
            .map(|p| (self.canonical.path(p, true), self.canonical.path(p, false)))
            .collect();
        let names: HashSet<&OsStr> = wanted
            .iter()
            .flat_map(|(content, own)| [content.file_name(), own.file_name()])
            .flatten()
            .collect();
        // In package order: a path several packages list (a diverted file) goes to the first.
        let candidates: Vec<(usize, &PathBuf)> = self
            .packages
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, p)| {
                p.paths
                    .iter()
                    .filter(|l| l.file_name().is_some_and(|n| names.contains(n)))
                    .map(move |l| (i, l))
            })
            .collect();
        let mut listed: HashMap<OsString, usize> = HashMap::new();
        for (i, l) in candidates {
            let at = self.canonical.path(l, false);
            listed.entry(at.into_os_string()).or_insert(i);
        }
        wanted
            .into_iter()
            .map(|(content, own)| {
                let found = |p: &Path| listed.get(p.as_os_str()).copied();
                match (found(&content), found(&own)) {
                    (Some(package), _) => Some(Owned { package, content }),
                    (None, Some(package)) => Some(Owned {
                        package,
                        content: own,
                    }),
                    (None, None) => None,
                }
            })
            .collect()
    }

    /// How many regular files the package has in the root (its list also names directories and
    /// links; those are not counted).
    pub fn regular_files(&mut self, index: usize) -> usize {
        let Some(package) = self.packages.get(index) else {
            return 0;
        };
        let paths: Vec<PathBuf> = package
            .paths
            .iter()
            .map(|p| self.canonical.path(p, false))
            .collect();
        paths
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
    /// Directory → its canonical spelling, keyed by bytes (hashing a `Path` parses its
    /// components: several times slower).
    dirs: HashMap<OsString, PathBuf>,
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
        // A relative source made absolute may hold "..": only a walk in the root's terms can
        // tell where it leads.
        if p.components().any(|c| c == Component::ParentDir) {
            return self
                .root
                .resolve(p, follow_last)
                .unwrap_or_else(|_| p.to_path_buf());
        }
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
        if let Some(found) = self.dirs.get(d.as_os_str()) {
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
        self.dirs
            .insert(d.as_os_str().to_os_string(), resolved.clone());
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
