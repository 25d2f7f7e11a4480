//! `check`: is every ELF file in an image complete inside that image? Each
//! file's libraries are resolved with the image as the sysroot, as its loader
//! would see the image at run time (the image's own ld.so.cache if it has one,
//! never the host's), and every symlink is followed inside the image.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::deps::{LoaderConfig, Missing};
use crate::elf::{self, ET_DYN, ET_EXEC, ElfFile};
use crate::error::{Error, Result, Status};
use crate::fs::ImageRoot;
use crate::ldso::{Flavor, LoaderSpec, Resolver, ResolverOptions, Via};

/// A symlink in the image whose target does not exist inside the image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DanglingLink {
    pub link: PathBuf,
    pub target: PathBuf,
}

/// What `check` found. Paths are image paths.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub elf_files: usize,
    pub missing: Vec<Missing>,
    /// (file, interpreter) pairs whose interpreter is not in the image.
    pub missing_interpreters: Vec<(PathBuf, String)>,
    pub dangling_links: Vec<DanglingLink>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when nothing is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.missing_interpreters.is_empty()
    }
}

/// ELF headers already known for image paths (None: not an executable or
/// shared object), so files just copied need not be read again.
pub type KnownHeaders = HashMap<PathBuf, Option<ElfFile>>;

/// Checks the image at `root`. With a loader config, a file whose
/// interpreter is configured searches the configured lib dirs (inside the
/// image) first, as the Occlum loader would. Files in `known` are not read.
pub fn check_image(
    root: &Path,
    config: &LoaderConfig,
    known: &KnownHeaders,
) -> Result<CheckReport> {
    if !root.is_dir() {
        return Err(Error::new(
            Status::NotFound,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut report = CheckReport::default();
    let (files, links) = walk(root, &mut report.warnings);
    let image =
        ImageRoot::open_existing(root).map_err(|e| Error::new(Status::NotFound, e.to_string()))?;
    report.dangling_links = links
        .par_iter()
        .filter_map(|l| dangling(&image, l))
        .collect();
    let elves: Vec<_> = files
        .par_iter()
        .filter_map(|p| {
            if let Some(k) = known.get(p) {
                return k.clone().map(|e| Ok((p.clone(), e)));
            }
            match elf::read_file(&root.join(p.strip_prefix("/").unwrap_or(p))) {
                Ok(Some(e)) if e.kind == ET_EXEC || e.kind == ET_DYN => Some(Ok((p.clone(), e))),
                Ok(_) => None,
                Err(e) => Some(Err(format!("{}: {e}", p.display()))),
            }
        })
        .collect();
    let mut subjects = Vec::new();
    for e in elves {
        match e {
            Ok(s) => subjects.push(s),
            Err(w) => report.warnings.push(w),
        }
    }
    report.elf_files = subjects.len();
    let interps: BTreeSet<&str> = subjects
        .iter()
        .filter_map(|(_, e)| e.interp.as_deref())
        .collect();
    // Files without an interpreter use the one the image's programs agree on.
    let default_interp = match interps.len() {
        1 => interps.first().map(|s| s.to_string()),
        _ => None,
    };
    let resolver = Resolver::new(ResolverOptions {
        sysroot: root.to_path_buf(),
        library_path: Vec::new(),
        use_cache: true,
    });
    let results: Vec<_> = subjects
        .par_iter()
        .map(|(path, e)| {
            let interp = e.interp.clone().or_else(|| default_interp.clone());
            let spec = interp.as_deref().map(|i| spec_in_image(i, config));
            (path, interp, resolver.resolve(path, spec.as_ref()))
        })
        .collect();
    let mut missing = BTreeSet::new();
    let mut no_interp = BTreeSet::new();
    for (path, interp, res) in results {
        match res {
            Ok(res) => {
                for d in res.libs.iter().filter(|d| d.path.is_none()) {
                    if matches!(d.via, Via::Loader) {
                        no_interp.insert((path.clone(), interp.clone().unwrap_or_default()));
                    } else {
                        missing.insert(Missing {
                            name: d.name.clone(),
                            needed_by: d.needed_by.clone(),
                            searched: d.searched.clone(),
                            listed: true,
                        });
                    }
                }
            }
            Err(e) => report.warnings.push(format!("{}: {e}", path.display())),
        }
    }
    report.missing = dedup_by_needer(missing);
    report.missing_interpreters = no_interp.into_iter().collect();
    Ok(report)
}

/// The same library missing for the same requester is reported once.
fn dedup_by_needer(missing: BTreeSet<Missing>) -> Vec<Missing> {
    let mut seen = HashSet::new();
    missing
        .into_iter()
        .filter(|m| seen.insert((m.name.clone(), m.needed_by.clone())))
        .collect()
}

/// Inside the image the interpreter path already holds the (Occlum) loader,
/// and the libraries copy_bom found in the configured lib dirs sit beside it
/// (`dirname(O)`, the Occlum loader's own library dir): that is searched first.
fn spec_in_image(interp: &str, config: &LoaderConfig) -> LoaderSpec {
    LoaderSpec {
        interp: interp.to_string(),
        flavor: Flavor::of_interp(interp),
        library_path: config
            .for_interp(interp)
            .map(|c| vec![c.image_lib_dir().to_string_lossy().into_owned()]),
    }
}

/// Regular files and symlinks of the image, as image paths, sorted.
fn walk(root: &Path, warnings: &mut Vec<String>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut links = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(e.to_string());
                continue;
            }
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let image_path = Path::new("/").join(rel);
        if entry.path_is_symlink() {
            links.push(image_path);
        } else if entry.file_type().is_file() {
            files.push(image_path);
        }
    }
    (files, links)
}

/// Follows `link` inside the image (as the image would, with
/// [`ImageRoot`]); Some when the chain ends nowhere or loops.
fn dangling(image: &ImageRoot, link: &Path) -> Option<DanglingLink> {
    let end = match image.stat_followed(link) {
        Ok(Some(_)) => return None,
        // Where the chain ends, in the image.
        Ok(None) => image
            .resolve(link, true)
            .unwrap_or_else(|_| link.to_path_buf()),
        // A loop: report the link itself.
        Err(_) => link.to_path_buf(),
    };
    Some(DanglingLink {
        link: link.to_path_buf(),
        target: end,
    })
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
