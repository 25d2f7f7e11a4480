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
mod place;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::elf::{self, DlopenDep, ET_DYN, ET_EXEC, ElfFile, Priority};
use crate::error::Result;
use crate::fs::{self, EntryKind, ImagePath};
use crate::implied::{self, Importer, Imports, LibcFacts, OpensslFacts, Process, Topic};
use crate::ldso::{Flavor, LoaderSpec, Resolution, Resolver, ResolverOptions, default_interp};
use crate::plan::image::{ImageMap, NodeKind};
use crate::plan::{ImpliedContent, Op, Plan, PlannedOp, inside_sysroot};
pub use loader_config::{ConfiguredLoader, LoaderConfig};
use place::Placer;

/// How libraries are looked up.
#[derive(Debug, Clone, Default)]
pub struct DepsOptions {
    /// Absolute (the build makes it so): every path the loader sees lies in it.
    pub sysroot: Option<PathBuf>,
    pub library_path: Vec<String>,
    pub config: LoaderConfig,
    /// The `.note.dlopen` entries loaded like DT_NEEDED (see [`ResolverOptions::dlopen`]).
    pub dlopen: Option<Priority>,
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
    /// Where the boms place a file of that name, none of which the image's
    /// loader searches for this file.
    pub shipped_at: Vec<ImagePath>,
}

/// A library the host does not have but the image being built does: the
/// boms place it where the image's loader will look, or in the same copied
/// tree as the object that needs it (its program loads it first).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Provided {
    pub name: String,
    pub needed_by: PathBuf,
    /// Where the image holds it.
    pub at: ImagePath,
}

/// What autodep found besides the library operations it added to the plan.
#[derive(Debug, Default)]
pub struct LibraryReport {
    pub missing: Vec<Missing>,
    pub provided: Vec<Provided>,
    pub warnings: Vec<String>,
    /// ELF files analysed.
    pub analysed: usize,
    /// What reading each analysed file's source found, by its place in the
    /// image: its ELF header when it is an executable or shared object, None
    /// when it is not. The final check reuses these for the copies instead of
    /// reading every file again.
    pub headers: KnownHeaders,
}

/// ELF headers already known for image paths (None: not an executable or
/// shared object), so files just copied need not be read again.
pub type KnownHeaders = HashMap<ImagePath, Option<ElfFile>>;

/// One ELF file of the image to analyse: a node of the image map whose
/// content comes from a listed file (with autodep) or a copied dir.
pub(crate) struct Subject {
    pub bom: usize,
    /// Host path of the source.
    pub src: PathBuf,
    /// Where it lands in the image.
    pub dest: ImagePath,
    /// The dir copy it comes from (index into the plan), if any.
    pub dir_op: Option<usize>,
    pub listed: bool,
    pub elf: ElfFile,
}

/// Finds the libraries of every ELF file the image will hold, judges each in
/// the image being built (satisfied by a host file, which is then placed
/// where the image's loader will find it, or by what the boms place there)
/// and adds the copies to the plan and the map, in a deterministic order.
pub fn add_libraries(
    plan: &mut Plan,
    map: &mut ImageMap,
    headers: SourceHeaders,
    opts: &DepsOptions,
) -> Result<LibraryReport> {
    let mut report = LibraryReport::default();
    let subjects = collect_subjects(plan, map, headers, &mut report);
    report.analysed = subjects.len();
    let resolver = Resolver::new(ResolverOptions {
        sysroot: opts.sysroot.clone().unwrap_or_else(|| PathBuf::from("/")),
        library_path: opts.library_path.clone(),
        use_cache: true,
        dlopen: opts.dlopen,
        ..ResolverOptions::default()
    });
    let sysroot = opts.sysroot.as_deref();
    let defaults = default_interps(&subjects);
    let resolved: Vec<_> = subjects
        .par_iter()
        .map(|s| {
            let interp = infer_interp(&s.elf, defaults.get(&s.bom));
            let spec = interp.as_deref().map(|i| loader_spec(i, &opts.config));
            let res = resolver.resolve(&inside_of(sysroot, &s.src), spec.as_ref());
            (interp, spec, res)
        })
        .collect();
    let mut placer = Placer::new(plan, map, sysroot, &opts.config);
    let mut libs: Vec<Vec<PlannedOp>> = vec![Vec::new(); plan.boms.len()];
    for (s, (interp, spec, res)) in subjects.iter().zip(resolved) {
        match res {
            Ok(res) => {
                let loader = Loader {
                    interp: interp.as_deref(),
                    spec: spec.as_ref(),
                };
                let found = placer.place(s, &loader, &res, &mut report);
                if let Some(v) = libs.get_mut(s.bom) {
                    v.extend(found);
                }
            }
            Err(e) => report.warnings.push(format!(
                "cannot find the libraries of {}: {e}",
                s.src.display()
            )),
        }
    }
    report.missing.sort();
    report.missing.dedup();
    report.provided.sort();
    report.provided.dedup();
    let renumbered = insert_per_bom(plan, libs);
    map.renumber(&renumbered);
    for (i, p) in plan.ops.iter().enumerate() {
        if let Op::CopyLibrary { src, dest, .. } = &p.op {
            map.place_library(dest.clone(), src.clone(), i);
        }
    }
    Ok(report)
}

/// What reading the sources of a plan found, per operation (indexed like [`Plan::ops`]) and, for
/// a dir copy, per entry of its scan (None for entries that are not regular files).
pub struct SourceHeaders(Vec<Vec<Option<ElfRead>>>);

type ElfRead = std::result::Result<Option<ElfFile>, elf::ElfError>;

impl SourceHeaders {
    /// Reads the head of every source that may be ELF: listed files with autodep and the files
    /// of copied dirs. It needs only the plan, so it runs while the image map is being built;
    /// a file that another entry replaces in the map is read for nothing, and not analysed.
    pub fn read(plan: &Plan) -> SourceHeaders {
        let sources: Vec<(usize, Option<usize>, &Path)> = plan
            .ops
            .iter()
            .enumerate()
            .flat_map(|(i, p)| -> Box<dyn Iterator<Item = _> + '_> {
                match &p.op {
                    Op::CopyFile {
                        src, autodep: true, ..
                    }
                    | Op::Implied {
                        content: ImpliedContent::Copy(src),
                        ..
                    } => Box::new(std::iter::once((i, None, src.as_path()))),
                    Op::CopyDir { entries, .. } => {
                        Box::new(entries.iter().enumerate().filter_map(move |(e, entry)| {
                            match &entry.kind {
                                EntryKind::File { src } => Some((i, Some(e), src.as_path())),
                                _ => None,
                            }
                        }))
                    }
                    _ => Box::new(std::iter::empty()),
                }
            })
            .collect();
        let paths: Vec<&Path> = sources.iter().map(|s| s.2).collect();
        let mut read = fs::map_opened(&paths, elf::read_opened).into_iter();
        let mut by_op: Vec<Vec<Option<ElfRead>>> = plan
            .ops
            .iter()
            .map(|p| match &p.op {
                Op::CopyDir { entries, .. } => (0..entries.len()).map(|_| None).collect(),
                Op::CopyFile { autodep: true, .. }
                | Op::Implied {
                    content: ImpliedContent::Copy(_),
                    ..
                } => vec![None],
                _ => Vec::new(),
            })
            .collect();
        for (op, entry, _) in sources {
            if let Some(slot) = by_op
                .get_mut(op)
                .and_then(|v| v.get_mut(entry.unwrap_or(0)))
            {
                *slot = read.next();
            }
        }
        SourceHeaders(by_op)
    }

    /// What was read for an operation's file (`entry` of a dir copy), taken out.
    fn take(&mut self, op: usize, entry: Option<usize>) -> Option<ElfRead> {
        self.0.get_mut(op)?.get_mut(entry.unwrap_or(0))?.take()
    }
}

/// Every file of the image that may be ELF: listed files with autodep, and
/// the files of copied dirs, as the map has them (a file another entry
/// replaces is not analysed). Non-ELF files and objects that are neither
/// executables nor shared objects are skipped; every file read is recorded in
/// the report's headers for the final check.
fn collect_subjects(
    plan: &Plan,
    map: &ImageMap,
    mut read: SourceHeaders,
    report: &mut LibraryReport,
) -> Vec<Subject> {
    let mut subjects = Vec::new();
    for (dest, node) in &map.nodes {
        let NodeKind::File { src } = &node.kind else {
            continue;
        };
        let Some(p) = plan.ops.get(node.op) else {
            continue;
        };
        let (listed, dir_op) = match &p.op {
            Op::CopyFile { autodep: true, .. } => (true, None),
            // Modules the C library opens: their libraries are found like a dir copy's.
            Op::Implied { .. } => (false, None),
            Op::CopyDir { .. } => (false, Some(node.op)),
            _ => continue,
        };
        let r = match read.take(node.op, node.entry) {
            Some(r) => r,
            None => elf::read_file(src),
        };
        match r {
            Ok(Some(elf)) if elf.kind == ET_EXEC || elf.kind == ET_DYN => {
                report.headers.insert(dest.clone(), Some(elf.clone()));
                subjects.push(Subject {
                    bom: p.bom,
                    src: src.clone(),
                    dest: dest.clone(),
                    dir_op,
                    listed,
                    elf,
                })
            }
            Ok(_) => {
                report.headers.insert(dest.clone(), None);
            }
            Err(e) => report
                .warnings
                .push(format!("{}: not a usable ELF file: {e}", src.display())),
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

/// The interpreter of a file: its own PT_INTERP; for a file without one (a
/// library, a module), musl's when the object needs musl's libc, else the one
/// its bom's programs agree on (A§4.2), else the platform's default.
fn infer_interp(elf: &ElfFile, bom_default: Option<&String>) -> Option<String> {
    let flavor = Flavor::of_object(elf);
    elf.interp
        .clone()
        .or_else(|| match flavor {
            Some(Flavor::Musl) => default_interp(elf, Flavor::Musl),
            _ => None,
        })
        .or_else(|| bom_default.cloned())
        .or_else(|| default_interp(elf, flavor.unwrap_or(Flavor::Glibc)))
}

/// The loader of one file: the interpreter it names (or the one inferred for
/// it), and the rules that apply (the configured Occlum loader's, if any).
pub(crate) struct Loader<'a> {
    pub interp: Option<&'a str>,
    pub spec: Option<&'a LoaderSpec>,
}

/// The loader whose rules apply to a file with interpreter `interp`.
fn loader_spec(interp: &str, config: &LoaderConfig) -> LoaderSpec {
    let (path, library_path) = match config.for_interp(interp) {
        Some(c) => (c.path.clone(), Some(c.lib_dirs.clone())),
        None => (interp.to_string(), None),
    };
    LoaderSpec {
        flavor: Flavor::of_interp(&path),
        interp: path,
        library_path,
    }
}

/// The path the loader sees (inside the sysroot) for a host source.
fn inside_of(sysroot: Option<&Path>, host: &Path) -> PathBuf {
    let abs = std::path::absolute(host).unwrap_or_else(|_| host.to_path_buf());
    match sysroot.map(|s| abs.strip_prefix(s)) {
        Some(Ok(rel)) => Path::new("/").join(rel),
        _ => abs,
    }
}

/// The host file to read for a path the loader sees: inside a sysroot, its
/// links are followed inside the sysroot, never onto the host.
fn host_of(sysroot: Option<&Path>, inside: &Path) -> PathBuf {
    match sysroot {
        Some(s) => inside_sysroot(s, &s.join(inside.strip_prefix("/").unwrap_or(inside))),
        None => inside.to_path_buf(),
    }
}

/// Appends each bom's libraries after its own operations. Returns, for each
/// old operation index, its new index.
fn insert_per_bom(plan: &mut Plan, mut libs: Vec<Vec<PlannedOp>>) -> Vec<usize> {
    let old = std::mem::take(&mut plan.ops);
    let mut renumbered = Vec::with_capacity(old.len());
    let mut out = Vec::with_capacity(old.len());
    let mut iter = old.into_iter().peekable();
    for (bom, lib) in libs.iter_mut().enumerate() {
        while let Some(p) = iter.next_if(|p| p.bom == bom) {
            renumbered.push(out.len());
            out.push(p);
        }
        out.append(lib);
    }
    for p in iter {
        renumbered.push(out.len());
        out.push(p);
    }
    plan.ops = out;
    renumbered
}

/// Options of `copy_bom deps`.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    pub sysroot: Option<PathBuf>,
    pub loader_config: Option<PathBuf>,
    pub library_path: Vec<String>,
    /// Also find the files each closure's C library opens for the functions it imports.
    pub implied: bool,
}

/// A file a closure's C library (or libcrypto) opens for a function it imports.
#[derive(Debug, Clone, Serialize)]
pub struct ImpliedNote {
    /// An image path, or the file name of a module the library dlopens.
    pub what: String,
    pub topic: Topic,
    /// The object that imports the function (or links the library), as the loader sees it.
    pub importer: PathBuf,
    pub cause: String,
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
    /// The file's own `.note.dlopen` entries.
    pub dlopen: Vec<DlopenDep>,
    /// With [`ResolveOptions::implied`]: the files its closure's C library opens by itself.
    pub implied: Vec<ImpliedNote>,
}

impl FileDeps {
    /// True when a library (or the interpreter) was not found.
    pub fn has_missing(&self) -> bool {
        self.resolution
            .as_ref()
            .is_some_and(|r| r.libs.iter().any(|d| d.path.is_none()))
    }
}

/// What the closure of `file` (host path `host`) implies: its C library and libcrypto as found,
/// the imports of every object loaded, and the `nsswitch.conf` the C library names (on the
/// host, or in the sysroot).
fn implied_of(resolver: &Resolver, host: &Path, res: &Resolution) -> Vec<ImpliedNote> {
    let found: Vec<(PathBuf, PathBuf)> = std::iter::once((
        res.libs
            .first()
            .map_or_else(|| host.to_path_buf(), |d| d.needed_by.clone()),
        host.to_path_buf(),
    ))
    .chain(
        res.libs
            .iter()
            .filter_map(|d| Some((d.path.clone()?, d.host.clone()?))),
    )
    .collect();
    let read: Vec<_> = found
        .par_iter()
        .filter_map(|(seen, host)| {
            let elf = elf::read_file(host).ok()??;
            let imports = Imports::of(elf::read_symbols(host).ok().flatten().as_ref());
            Some((seen, host, imports, elf))
        })
        .collect();
    let libc = read.iter().find_map(|(seen, host, _, elf)| {
        let flavor = implied::libc_flavor(seen, elf)?;
        Some(LibcFacts::read(&std::fs::read(host).ok()?, flavor))
    });
    let openssl = read
        .iter()
        .find(|(_, _, _, e)| {
            e.soname
                .as_deref()
                .is_some_and(|s| s.starts_with("libcrypto.so"))
        })
        .and_then(|(_, host, _, _)| std::fs::read(host).ok())
        .map(|b| OpensslFacts::read(&b));
    let nsswitch = libc
        .as_ref()
        .and_then(|l| l.paths.nsswitch.as_ref())
        .and_then(|p| resolver.host_path(p))
        .and_then(|h| std::fs::read_to_string(h).ok());
    let process = Process {
        libc: libc.as_ref(),
        openssl: openssl.as_ref(),
        nsswitch: nsswitch.as_deref(),
        tz: None,
        importers: read
            .iter()
            .map(|(seen, _, syms, elf)| Importer {
                path: seen.as_path(),
                imports: syms,
                needed: &elf.needed,
            })
            .collect(),
    };
    implied::needs(&[process])
        .into_iter()
        .map(|n| ImpliedNote {
            what: n.item.shown(),
            topic: n.topic,
            importer: n.importer,
            cause: n.cause,
        })
        .collect()
}

/// Resolves each file's libraries (paths inside the sysroot, if any) with
/// one shared resolver, so each library is parsed once.
pub fn resolve_files(files: &[PathBuf], opts: &ResolveOptions) -> Result<Vec<FileDeps>> {
    let config = LoaderConfig::load(opts.loader_config.as_deref())?;
    let resolver = Resolver::new(ResolverOptions {
        sysroot: opts.sysroot.clone().unwrap_or_else(|| PathBuf::from("/")),
        library_path: opts.library_path.clone(),
        use_cache: true,
        ..ResolverOptions::default()
    });
    let out = files
        .par_iter()
        .map(|file| {
            // Read through the resolver: links inside a sysroot resolve inside it.
            let host = resolver.host_path(file).unwrap_or_else(|| file.clone());
            let read =
                regular_file(&host).and_then(|()| elf::read_file(&host).map_err(|e| e.to_string()));
            let dlopen = match &read {
                Ok(Some(e)) => e.dlopen.clone(),
                _ => Vec::new(),
            };
            let (resolution, error) = match read {
                Ok(Some(e)) => {
                    // A file without PT_INTERP (a library alone) takes the
                    // standard loader of the C library it needs.
                    let interp = e.interp.clone().or_else(|| {
                        Flavor::of_object(&e).and_then(|f| crate::ldso::default_interp(&e, f))
                    });
                    let spec = interp.as_deref().map(|i| loader_spec(i, &config));
                    match resolver.resolve(file, spec.as_ref()) {
                        Ok(r) => (Some(r), None),
                        Err(err) => (None, Some(err.to_string())),
                    }
                }
                Ok(None) => (None, Some("not an ELF file".to_string())),
                Err(err) => (None, Some(err)),
            };
            let implied = match (&resolution, opts.implied) {
                (Some(res), true) => implied_of(&resolver, &host, res),
                _ => Vec::new(),
            };
            FileDeps {
                file: file.clone(),
                resolution,
                error,
                dlopen,
                implied,
            }
        })
        .collect();
    Ok(out)
}
