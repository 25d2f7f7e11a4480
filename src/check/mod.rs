//! `check`: will the image's programs load inside the image? Judged as
//! their loaders would at run time (LOADER.md): each program's closure in
//! its own load scope (RPATH chain, RUNPATH, tokens, hwcaps), the image's
//! own `ld.so.cache` if it has one (never the host's, never `ld.so.conf`,
//! which glibc does not read at run time), then the interpreter's system
//! directories. Objects no program loads (plugins, extension modules) are
//! judged alone with the loader the image's programs agree on. Every
//! symlink is followed inside the image.

mod image;
mod implied;
mod judge;
mod symbols;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::deps::KnownHeaders;
use crate::deps::LoaderConfig;
use crate::error::{Error, Result, Status};
use crate::implied::Topic;
use crate::instance::config::{ConfigProblem, OcclumConfig};

/// A symlink in the image whose target does not exist inside the image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DanglingLink {
    pub link: PathBuf,
    pub target: PathBuf,
}

/// How an ELF object of the image was judged.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
pub enum Role {
    /// Has PT_INTERP: its whole closure is its load scope.
    Program,
    /// Static, or static-pie: needs no loader and no library.
    StaticProgram,
    /// Loaded by at least one program: judged in those programs' scopes.
    Library,
    /// Loaded by no program (a plugin, an extension module): judged alone.
    Alone,
}

/// The verdict on one ELF object (one per name; hard links appear once
/// per name).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ObjectVerdict {
    pub path: PathBuf,
    pub role: Role,
    /// The loader it was judged with: its PT_INTERP, or for an object
    /// judged alone the inferred one; None for libraries and static programs.
    pub interp: Option<String>,
    /// Program: it will load. Library: no program misses a library it
    /// needs. Alone: it would load into a program of the image.
    pub complete: bool,
}

/// A library that will not be found at run time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MissingLibrary {
    pub name: String,
    /// The object that requests it, as its loader spells that path.
    pub needed_by: PathBuf,
    /// The programs whose load fails for it; for `alone`, the objects
    /// judged alone that it is missing for.
    pub scopes: Vec<PathBuf>,
    /// Judged alone (no program loads `needed_by`).
    pub alone: bool,
    /// Every directory searched.
    pub searched: Vec<PathBuf>,
    /// A link of that name in a searched directory whose target is not in
    /// the image: the likely cause.
    pub dangling_link: Option<PathBuf>,
}

/// A library missing from an object's search path that the object's
/// installed tree holds under that exact name: the tree's program loads it
/// before the object (information, not a problem).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoadedFirst {
    pub name: String,
    /// The file of that name in the tree (image path).
    pub provider: PathBuf,
    /// The installed tree (see `judge::tree_of`).
    pub tree: PathBuf,
    pub needed_by: Vec<PathBuf>,
}

/// What is wrong with one object's symbols in a load scope.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SymbolFinding {
    /// A version the object requires of a library that library does not define: the loader
    /// stops with "version `VERSION' not found".
    Version {
        version: String,
        /// The library's soname, as the object's requirement names it.
        library: String,
        /// The file the loader picked for it in the image.
        provider: PathBuf,
    },
    /// An undefined symbol no object of the scope defines (with that version): the loader
    /// stops with "undefined symbol" when it binds it.
    Symbol {
        name: String,
        version: Option<String>,
        /// The library the version was taken from when the object was linked.
        library: Option<String>,
    },
    /// An object built for one C library in a program of the other.
    ForeignLibc { object: String, program: String },
}

/// A symbol finding, with every scope it was found in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SymbolProblem {
    pub needed_by: PathBuf,
    pub finding: SymbolFinding,
    /// The programs whose load fails for it; for `alone`, the objects judged alone.
    pub scopes: Vec<PathBuf>,
    /// Judged alone (no program loads `needed_by`).
    pub alone: bool,
}

/// A file the image's C library (or libcrypto) will open for a call its objects make, and which
/// the image lacks. A warning: the program may never make the call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImpliedMissing {
    /// What is missing: an image path, or the file name of a module the library dlopens.
    pub what: String,
    pub topic: Topic,
    /// The first object found importing the function (or linking the library).
    pub importer: PathBuf,
    /// The function imported, or the library linked.
    pub cause: String,
    /// The host file `--implicit` would copy (the same path on this host), if there is one.
    pub source: Option<PathBuf>,
    /// `--implicit` writes it (account files, NSS configuration) rather than copying it.
    pub generated: bool,
    /// A bom entry that adds it (flow YAML), when a host file can be named.
    pub bom: Option<String>,
}

/// What `check` found. Paths are image paths.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// ELF executables and shared objects read.
    pub elf_files: usize,
    /// One verdict per ELF object, in walk order (by name in each directory).
    pub objects: Vec<ObjectVerdict>,
    pub missing: Vec<MissingLibrary>,
    /// (program, interpreter) pairs whose interpreter is not in the image.
    pub missing_interpreters: Vec<(PathBuf, String)>,
    pub loaded_first: Vec<LoadedFirst>,
    /// Symbols and versions the loader will not find.
    pub symbols: Vec<SymbolProblem>,
    /// Undefined symbol references judged (in every scope).
    pub symbol_references: usize,
    /// Files the programs' libraries will open that the image lacks (warnings).
    pub implied: Vec<ImpliedMissing>,
    /// The Occlum instance's `Occlum.json` that was read, if any.
    pub instance: Option<PathBuf>,
    /// What is wrong with it: fields `occlum build` refuses, entry points the image lacks.
    pub instance_problems: Vec<ConfigProblem>,
    pub dangling_links: Vec<DanglingLink>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when every program and every object judged alone will load.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self.missing_interpreters.is_empty()
            && self.symbols.is_empty()
            && self.instance_problems.is_empty()
    }

    /// The verdict on the object at an image path.
    pub fn object(&self, path: &Path) -> Option<&ObjectVerdict> {
        self.objects.iter().find(|o| o.path == path)
    }
}

/// What `check` judges besides libraries and interpreters.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Symbols and symbol versions (on unless asked not to: they are what makes an image with
    /// every library still fail at start-up).
    pub symbols: bool,
    /// The Occlum instance's `Occlum.json` (`--instance`); None: the one beside the root when
    /// the root is an instance's `image/`.
    pub instance: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            symbols: true,
            instance: None,
        }
    }
}

/// Checks the image at `root`, symbols included. With a loader config, a
/// file whose interpreter is configured searches the configured lib dirs
/// (inside the image) first, as the Occlum loader would. Files in `known`
/// are not read.
pub fn check_image(
    root: &Path,
    config: &LoaderConfig,
    known: &KnownHeaders,
) -> Result<CheckReport> {
    check_image_with(root, config, known, &CheckOptions::default())
}

/// [`check_image`] with options.
pub fn check_image_with(
    root: &Path,
    config: &LoaderConfig,
    known: &KnownHeaders,
    options: &CheckOptions,
) -> Result<CheckReport> {
    if !root.is_dir() {
        return Err(Error::new(
            Status::NotFound,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut report = CheckReport::default();
    let instance = match options
        .instance
        .clone()
        .or_else(|| OcclumConfig::beside(root))
    {
        Some(path) => {
            report.instance = Some(path.clone());
            match OcclumConfig::read(&path) {
                Ok(c) => Some(c),
                Err(problem) => {
                    report.instance_problems.push(ConfigProblem {
                        field: "Occlum.json".to_string(),
                        problem,
                    });
                    None
                }
            }
        }
        None => None,
    };
    let image = image::Image::read(root, known, &mut report.warnings);
    report.elf_files = image.objects.len();
    report.dangling_links = image.dangling_links();
    if let Some(c) = &instance {
        report.instance_problems.extend(c.problems.iter().cloned());
        for (i, e) in c.entry_points.iter().enumerate() {
            if !image.is_dir(Path::new(e)) {
                report.instance_problems.push(ConfigProblem {
                    field: format!("entry_points[{i}]"),
                    problem: format!("{e} is not a directory in the image"),
                });
            }
        }
    }
    judge::judge(&image, config, options, instance.as_ref(), &mut report);
    for m in &mut report.missing {
        m.dangling_link = report
            .dangling_links
            .iter()
            .find(|d| {
                d.link.file_name().is_some_and(|n| n == m.name.as_str())
                    && d.link
                        .parent()
                        .is_some_and(|p| m.searched.iter().any(|s| s == p))
            })
            .map(|d| d.link.clone());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dangling_links_are_judged_inside_the_image() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("x")).unwrap();
        std::fs::write(root.join("x/file"), "").unwrap();
        symlink("x/file", root.join("ok")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        // Exists on the host, not in the image.
        symlink("/etc/passwd", root.join("abs")).unwrap();
        // `..` stops at the image root, so this is /x/file in the image.
        symlink("../../../../x/file", root.join("x/up")).unwrap();
        symlink("l2", root.join("l1")).unwrap();
        symlink("l1", root.join("l2")).unwrap();
        let report = check_image(root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap();
        let links: Vec<_> = report
            .dangling_links
            .iter()
            .map(|d| (d.link.clone(), d.target.clone()))
            .collect();
        assert_eq!(
            links,
            vec![
                (PathBuf::from("/abs"), PathBuf::from("/etc/passwd")),
                (PathBuf::from("/dangling"), PathBuf::from("/nowhere")),
                (PathBuf::from("/l1"), PathBuf::from("/l1")),
                (PathBuf::from("/l2"), PathBuf::from("/l2")),
            ]
        );
        assert!(
            report.is_complete(),
            "dangling links alone do not make an image incomplete"
        );
    }
}
