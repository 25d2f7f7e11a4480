//! Autodep: which files get their libraries found, which loader they use, and
//! where each library lands in the image (SPEC A§4, B1, B2).
//!
//! Every ELF file a bom copies is analysed from its source, listed files
//! (unless `autodep: false`) and files inside copied dirs alike. A file
//! without an interpreter uses the loader the other ELF files of its bom
//! agree on, else the default loader for its class and machine. With a
//! loader config, the configured Occlum loader replaces the interpreter and
//! libraries found in its lib dirs go beside it in the image.

pub mod loader_config;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::elf::{self, ET_DYN, ET_EXEC, ElfFile};
use crate::error::Result;
use crate::fs::EntryKind;
use crate::ldso::{Dep, LoaderSpec, Resolution, Resolver, ResolverOptions, Via};
use crate::plan::{Op, Plan, PlannedOp};
pub use loader_config::{ConfiguredLoader, LoaderConfig};

/// How libraries are looked up.
#[derive(Debug, Clone, Default)]
pub struct DepsOptions {
    pub sysroot: Option<PathBuf>,
    pub library_path: Vec<String>,
    pub config: LoaderConfig,
}

/// A library nobody could find.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    pub name: String,
    pub needed_by: PathBuf,
    pub searched: Vec<PathBuf>,
    /// True when the file that needs it (directly or not) is listed in a bom's
    /// `files`; false when it only lies in a copied dir.
    pub listed: bool,
}

/// What autodep found besides the library operations it added to the plan.
#[derive(Debug, Default)]
pub struct LibraryReport {
    pub missing: Vec<Missing>,
    pub warnings: Vec<String>,
    /// ELF files analysed.
    pub analysed: usize,
    /// What reading each source found: its ELF header when it is an
    /// executable or shared object, None when it is not. The final check
    /// reuses these for the copies instead of reading every file again.
    pub headers: HashMap<PathBuf, Option<ElfFile>>,
}

/// One ELF file to analyse.
struct Subject {
    bom: usize,
    src: PathBuf,
    listed: bool,
    elf: ElfFile,
}

/// The sysroot in which paths of the resolver live.
struct Sysroot(Option<PathBuf>);

impl Sysroot {
    /// Host path of a path inside the sysroot.
    fn host(&self, p: &Path) -> PathBuf {
        match &self.0 {
            Some(s) => s.join(p.strip_prefix("/").unwrap_or(p)),
            None => p.to_path_buf(),
        }
    }

    /// Path inside the sysroot of a host source file.
    fn inside(&self, host: &Path) -> PathBuf {
        let abs = std::path::absolute(host).unwrap_or_else(|_| host.to_path_buf());
        match &self.0 {
            Some(s) => match abs.strip_prefix(s) {
                Ok(rel) => Path::new("/").join(rel),
                Err(_) => abs,
            },
            None => abs,
        }
    }
}

/// Finds the libraries of every ELF file in the plan and appends them to
/// their bom's operations, in a deterministic order.
pub fn add_libraries(plan: &mut Plan, opts: &DepsOptions) -> Result<LibraryReport> {
    let mut report = LibraryReport::default();
    let subjects = collect_subjects(plan, &mut report.warnings, &mut report.headers);
    report.analysed = subjects.len();
    let resolver = Resolver::new(ResolverOptions {
        sysroot: opts.sysroot.clone().unwrap_or_else(|| PathBuf::from("/")),
        library_path: opts.library_path.clone(),
        use_cache: true,
    });
    let sysroot = Sysroot(opts.sysroot.clone());
    let defaults = default_interps(&subjects);
    let resolved: Vec<_> = subjects
        .par_iter()
        .map(|s| {
            let interp = s
                .elf
                .interp
                .clone()
                .or_else(|| defaults.get(&s.bom).cloned());
            let spec = interp.as_deref().map(|i| loader_spec(i, &opts.config));
            let res = resolver.resolve(&sysroot.inside(&s.src), spec.as_ref());
            (interp, res)
        })
        .collect();
    let provided = DirSources::new(plan);
    let mut libs: Vec<Vec<PlannedOp>> = vec![Vec::new(); plan.boms.len()];
    for (s, (interp, res)) in subjects.iter().zip(resolved) {
        match res {
            Ok(res) => {
                let placer = Placer {
                    sysroot: &sysroot,
                    config: &opts.config,
                    interp: interp.as_deref(),
                    provided: &provided,
                };
                libs[s.bom].extend(placer.place(s, &res, &mut report.missing));
            }
            Err(e) => report.warnings.push(format!(
                "cannot find the libraries of {}: {e}",
                s.src.display()
            )),
        }
    }
    report.missing.sort();
    report.missing.dedup();
    insert_per_bom(plan, libs);
    Ok(report)
}

/// Every regular file that may be ELF: listed files with autodep, and the
/// files of copied dirs. Headers are read in parallel; non-ELF files and
/// objects that are neither executables nor shared objects are skipped.
fn collect_subjects(
    plan: &Plan,
    warnings: &mut Vec<String>,
    headers: &mut HashMap<PathBuf, Option<ElfFile>>,
) -> Vec<Subject> {
    let mut candidates = Vec::new();
    for p in &plan.ops {
        match &p.op {
            Op::CopyFile {
                src, autodep: true, ..
            } => candidates.push((p.bom, src.clone(), true)),
            Op::CopyDir { entries, .. } => {
                for e in entries {
                    if let EntryKind::File { src } = &e.kind {
                        candidates.push((p.bom, src.clone(), false));
                    }
                }
            }
            _ => {}
        }
    }
    let read: Vec<_> = candidates
        .into_par_iter()
        .map(|(bom, src, listed)| {
            let r = elf::read_file(&src);
            (bom, src, listed, r)
        })
        .collect();
    let mut subjects = Vec::new();
    for (bom, src, listed, r) in read {
        match r {
            Ok(Some(elf)) if elf.kind == ET_EXEC || elf.kind == ET_DYN => {
                headers.insert(src.clone(), Some(elf.clone()));
                subjects.push(Subject {
                    bom,
                    src,
                    listed,
                    elf,
                })
            }
            Ok(_) => {
                headers.insert(src, None);
            }
            Err(e) => warnings.push(format!("{}: not a usable ELF file: {e}", src.display())),
        }
    }
    subjects
}

/// Per bom, the interpreter that files without one use: the one interpreter
/// all of the bom's ELF files with an interpreter agree on (A§4.2).
fn default_interps(subjects: &[Subject]) -> HashMap<usize, String> {
    let mut seen: HashMap<usize, BTreeSet<&str>> = HashMap::new();
    for s in subjects {
        if let Some(i) = &s.elf.interp {
            seen.entry(s.bom).or_default().insert(i);
        }
    }
    seen.into_iter()
        .filter(|(_, set)| set.len() == 1)
        .filter_map(|(bom, set)| set.first().map(|i| (bom, i.to_string())))
        .collect()
}

/// The loader whose rules apply to a file with interpreter `interp`.
fn loader_spec(interp: &str, config: &LoaderConfig) -> LoaderSpec {
    let (path, library_path) = match config.for_interp(interp) {
        Some(c) => (c.path.clone(), Some(c.lib_dirs.clone())),
        None => (interp.to_string(), None),
    };
    LoaderSpec {
        flavor: crate::ldso::Flavor::of_interp(&path),
        interp: path,
        library_path,
    }
}

/// The canonical roots of the dirs the plan copies: a library found inside
/// one of them is already in the image. Answers are memoised: most files
/// need the same few libraries.
struct DirSources {
    roots: Vec<PathBuf>,
    seen: RefCell<HashMap<PathBuf, bool>>,
}

impl DirSources {
    fn new(plan: &Plan) -> DirSources {
        let mut roots: Vec<PathBuf> = plan
            .ops
            .iter()
            .filter_map(|p| match &p.op {
                Op::CopyDir { src, .. } => std::fs::canonicalize(src).ok(),
                _ => None,
            })
            .collect();
        roots.sort();
        roots.dedup();
        DirSources {
            roots,
            seen: RefCell::default(),
        }
    }

    fn contains(&self, host: &Path) -> bool {
        if self.roots.is_empty() {
            return false;
        }
        if let Some(known) = self.seen.borrow().get(host) {
            return *known;
        }
        let inside =
            std::fs::canonicalize(host).is_ok_and(|c| self.roots.iter().any(|r| c.starts_with(r)));
        self.seen.borrow_mut().insert(host.to_path_buf(), inside);
        inside
    }
}

/// Places one file's libraries in the image.
struct Placer<'a> {
    sysroot: &'a Sysroot,
    config: &'a LoaderConfig,
    interp: Option<&'a str>,
    provided: &'a DirSources,
}

impl Placer<'_> {
    fn place(&self, s: &Subject, res: &Resolution, missing: &mut Vec<Missing>) -> Vec<PlannedOp> {
        let configured = self.interp.and_then(|i| self.config.for_interp(i));
        let mut ops = Vec::new();
        for dep in &res.libs {
            let Some(path) = &dep.path else {
                missing.push(Missing {
                    name: dep.name.clone(),
                    needed_by: dep.needed_by.clone(),
                    searched: dep.searched.clone(),
                    listed: s.listed,
                });
                continue;
            };
            let dest = match (&dep.via, self.interp) {
                // The loader goes where the ELF file's interpreter names it.
                (Via::Loader, Some(i)) => PathBuf::from(i),
                _ => placement(dep, path, configured),
            };
            let src = self.sysroot.host(path);
            if !matches!(dep.via, Via::Loader) && self.provided.contains(&src) {
                continue;
            }
            ops.push(lib_op(s, dep, src, dest));
            if let Some(base) = &dep.baseline {
                let dest = placement(dep, base, configured);
                ops.push(lib_op(s, dep, self.sysroot.host(base), dest));
            }
        }
        ops
    }
}

/// SPEC A§4.4: a library found in one of the configured loader's lib dirs
/// goes to `dirname(O)/NAME`; any other keeps its path.
fn placement(dep: &Dep, found: &Path, configured: Option<&ConfiguredLoader>) -> PathBuf {
    match (configured, found.parent()) {
        (Some(c), Some(dir)) if c.owns_dir(dir) && !dep.name.contains('/') => {
            c.image_lib_dir().join(&dep.name)
        }
        _ => found.to_path_buf(),
    }
}

fn lib_op(s: &Subject, dep: &Dep, src: PathBuf, dest: PathBuf) -> PlannedOp {
    PlannedOp {
        bom: s.bom,
        at: None,
        op: Op::CopyLibrary {
            src,
            dest,
            name: dep.name.clone(),
            needed_by: dep.needed_by.clone(),
        },
    }
}

/// Appends each bom's libraries after its own operations; the first library
/// for a destination wins.
fn insert_per_bom(plan: &mut Plan, libs: Vec<Vec<PlannedOp>>) {
    let mut seen = BTreeSet::new();
    let mut libs: Vec<Vec<PlannedOp>> = libs
        .into_iter()
        .map(|v| {
            v.into_iter()
                .filter(|p| seen.insert(p.op.dest().to_path_buf()))
                .collect()
        })
        .collect();
    let old = std::mem::take(&mut plan.ops);
    let mut out = Vec::with_capacity(old.len());
    let mut iter = old.into_iter().peekable();
    for (bom, lib) in libs.iter_mut().enumerate() {
        while let Some(p) = iter.next_if(|p| p.bom == bom) {
            out.push(p);
        }
        out.append(lib);
    }
    out.extend(iter);
    plan.ops = out;
}

/// Options of `copy_bom deps`.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    pub sysroot: Option<PathBuf>,
    pub loader_config: Option<PathBuf>,
    pub library_path: Vec<String>,
}

/// Refuses anything but a regular file (links followed) before it is opened:
/// opening a FIFO waits for a writer forever, opening a device can act on it.
fn regular_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(format!("{}: not a regular file ({what})", path.display()))
}

/// The libraries of one file given to `copy_bom deps`.
#[derive(Debug, Serialize)]
pub struct FileDeps {
    pub file: PathBuf,
    /// None when the file is not a dynamic ELF file or could not be read.
    pub resolution: Option<Resolution>,
    pub error: Option<String>,
}

impl FileDeps {
    /// True when a library (or the interpreter) was not found.
    pub fn has_missing(&self) -> bool {
        self.resolution
            .as_ref()
            .is_some_and(|r| r.libs.iter().any(|d| d.path.is_none()))
    }
}

/// Resolves each file's libraries (paths inside the sysroot, if any) with
/// one shared resolver, so each library is parsed once.
pub fn resolve_files(files: &[PathBuf], opts: &ResolveOptions) -> Result<Vec<FileDeps>> {
    let config = LoaderConfig::load(opts.loader_config.as_deref())?;
    let resolver = Resolver::new(ResolverOptions {
        sysroot: opts.sysroot.clone().unwrap_or_else(|| PathBuf::from("/")),
        library_path: opts.library_path.clone(),
        use_cache: true,
    });
    let sysroot = Sysroot(opts.sysroot.clone());
    let out = files
        .par_iter()
        .map(|file| {
            let host = sysroot.host(file);
            let read =
                regular_file(&host).and_then(|()| elf::read_file(&host).map_err(|e| e.to_string()));
            let (resolution, error) = match read {
                Ok(Some(e)) => {
                    let spec = e.interp.as_deref().map(|i| loader_spec(i, &config));
                    match resolver.resolve(file, spec.as_ref()) {
                        Ok(r) => (Some(r), None),
                        Err(err) => (None, Some(err.to_string())),
                    }
                }
                Ok(None) => (None, Some("not an ELF file".to_string())),
                Err(err) => (None, Some(err)),
            };
            FileDeps {
                file: file.clone(),
                resolution,
                error,
            }
        })
        .collect();
    Ok(out)
}
