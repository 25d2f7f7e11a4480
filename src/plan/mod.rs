//! The plan: every bom turned into ordered, deduplicated operations with
//! destinations confined to the image, sources checked and hashes verified,
//! before anything is written (SPEC A§2, A§3, B2).

mod dedup;
pub mod image;
mod sources;
mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bom::{Bom, CopyEntry, FileEntry, LoadedBoms, Located, Target};
use crate::elf::Priority;
use crate::error::{Error, Result, SourceLoc, Status, Warning, WarningKind};
use crate::fs::{Excludes, ImagePath, TreeEntry, scan_tree};
use crate::implied::Generated;
pub use sources::{inside_sysroot, workspace_dir};
pub use validate::validate;

/// What the planner needs besides the boms.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The `--root` string as given (W is derived from it).
    pub root: PathBuf,
    /// Take absolute sources inside this directory.
    pub sysroot: Option<PathBuf>,
}

/// One operation on the image. Destinations are normalised image paths
/// (absolute from the image's `/`); sources are host paths.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Mkdir {
        dest: ImagePath,
    },
    Link {
        target: String,
        dest: ImagePath,
    },
    CopyDir {
        src: PathBuf,
        dest: ImagePath,
        contents_only: bool,
        /// The scanned source tree (relative to `dest`).
        #[serde(skip)]
        entries: Vec<TreeEntry>,
    },
    CopyFile {
        src: PathBuf,
        dest: ImagePath,
        #[serde(skip)]
        autodep: bool,
    },
    CopyLibrary {
        src: PathBuf,
        dest: ImagePath,
        name: String,
        needed_by: PathBuf,
        /// Requested by a `.note.dlopen` entry of this priority, not by DT_NEEDED.
        #[serde(skip_serializing_if = "Option::is_none")]
        dlopen: Option<Priority>,
    },
    /// A file the image's C library (or libcrypto) opens for a function the image's objects
    /// import (`--implicit`): copied from the host, or generated.
    Implied {
        content: ImpliedContent,
        dest: ImagePath,
        /// Why: the topic, and which object imports which function.
        why: String,
    },
    /// A file copy_bom writes to record what the image holds (`--dpkg-status`).
    Record {
        dest: ImagePath,
        text: String,
        why: String,
    },
}

/// What an implied file holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpliedContent {
    /// The host file at this path (links followed).
    Copy(PathBuf),
    /// Text copy_bom writes (account files, NSS configuration), never the host's.
    Generated(Generated),
}

impl Op {
    /// The image path the operation creates.
    pub fn dest(&self) -> &ImagePath {
        match self {
            Op::Mkdir { dest }
            | Op::Link { dest, .. }
            | Op::CopyDir { dest, .. }
            | Op::CopyFile { dest, .. }
            | Op::CopyLibrary { dest, .. }
            | Op::Implied { dest, .. }
            | Op::Record { dest, .. } => dest,
        }
    }
}

/// An operation with the bom (index into [`Plan::boms`]) and entry it came from.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedOp {
    pub bom: usize,
    /// `file:line:column` of the bom entry; None for libraries.
    pub at: Option<String>,
    #[serde(flatten)]
    pub op: Op,
}

/// The complete plan, in execution order (per bom: mkdirs, links, dir copies,
/// file copies, libraries).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub boms: Vec<PathBuf>,
    pub ops: Vec<PlannedOp>,
    /// Entries of copied dirs that are skipped, and why.
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

/// Turns loaded boms into a deduplicated, validated plan (without libraries:
/// see [`crate::deps`]). Fails on the first invalid entry.
pub fn build(loaded: &LoadedBoms, opts: &PlanOptions) -> Result<Plan> {
    let w = workspace_dir(&opts.root);
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    for (index, bom) in loaded.boms.iter().enumerate() {
        BomPlanner {
            bom,
            index,
            w: &w,
            sysroot: opts.sysroot.as_deref(),
            ops: &mut ops,
            warnings: &mut warnings,
        }
        .plan()?;
    }
    Ok(Plan {
        boms: loaded.boms.iter().map(|b| b.path.clone()).collect(),
        ops: dedup::dedup(ops),
        warnings,
    })
}

/// Plans one bom, appending to `ops` in the per-bom operation order.
struct BomPlanner<'a> {
    bom: &'a Bom,
    index: usize,
    w: &'a Path,
    sysroot: Option<&'a Path>,
    ops: &'a mut Vec<PlannedOp>,
    warnings: &'a mut Vec<Warning>,
}

impl BomPlanner<'_> {
    fn plan(&mut self) -> Result<()> {
        let excludes = Excludes::new(&self.bom.excludes).map_err(|e| {
            Error::new(
                Status::InvalidBom,
                format!("{}: bad exclude pattern: {e}", self.bom.path.display()),
            )
        })?;
        let mut targets = Vec::new();
        for t in &self.bom.targets {
            targets.push((t, image_path(&t.target, None)?));
        }
        // The per-bom order of the original: every mkdir, then links, dirs, files.
        for (t, tp) in &targets {
            self.push(&t.target.loc, Op::Mkdir { dest: tp.clone() });
            for m in &t.mkdirs {
                let dest = image_path(m, Some(tp))?;
                self.push(&m.loc, Op::Mkdir { dest });
            }
        }
        for (t, tp) in &targets {
            for l in &t.createlinks {
                let dest = image_path(&l.linkname, Some(tp))?;
                check_link_target(&l.src)?;
                let target = l.src.value.clone();
                self.push(&l.linkname.loc, Op::Link { target, dest });
            }
        }
        for (t, tp) in &targets {
            for c in &t.copy {
                self.plan_dirs(c, tp, &excludes)?;
            }
        }
        for (t, tp) in &targets {
            self.plan_files(t, tp)?;
        }
        Ok(())
    }

    fn push(&mut self, loc: &SourceLoc, op: Op) {
        self.ops.push(PlannedOp {
            bom: self.index,
            at: Some(loc.to_string()),
            op,
        });
    }

    /// The host path to read for a listed source: inside a sysroot, its links
    /// are followed inside the sysroot (its absolute links stay inside it).
    fn readable(&self, listed: PathBuf) -> PathBuf {
        match self.sysroot {
            Some(s) => sources::inside_sysroot(s, &listed),
            None => listed,
        }
    }

    fn base(&self, c: &CopyEntry) -> PathBuf {
        match &c.from {
            Some(f) => sources::source_path(self.w, &f.value, self.sysroot),
            None => self.w.to_path_buf(),
        }
    }

    fn plan_dirs(&mut self, c: &CopyEntry, tp: &ImagePath, excludes: &Excludes) -> Result<()> {
        let base = self.base(c);
        let mut items: Vec<(PathBuf, bool, SourceLoc)> = Vec::new();
        match (&c.from, &c.dirs, &c.files) {
            // A `from` alone copies the whole directory's contents (resolved
            // against W like every other source, unlike the original: A§7.3).
            (Some(f), None, None) => items.push((base, true, f.loc.clone())),
            _ => {
                for d in c.dirs.iter().flatten() {
                    let contents_only = d.value.ends_with('/');
                    let pattern = sources::source_path(&base, &d.value, self.sysroot);
                    for listed in expand(&pattern, &d.loc)? {
                        let src = self.readable(listed);
                        items.push((src, contents_only, d.loc.clone()));
                    }
                }
            }
        }
        for (src, contents_only, loc) in items {
            self.plan_dir(src, contents_only, &loc, tp, excludes)?;
        }
        Ok(())
    }

    fn plan_dir(
        &mut self,
        src: PathBuf,
        contents_only: bool,
        loc: &SourceLoc,
        tp: &ImagePath,
        excludes: &Excludes,
    ) -> Result<()> {
        match std::fs::metadata(&src) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::at(
                    Status::Dir,
                    loc,
                    format!(
                        "{} is not a directory: list it under `files`",
                        src.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(Error::at(
                    Status::NotFound,
                    loc,
                    format!("source directory {}: {e}", src.display()),
                ));
            }
        }
        let scan = scan_tree(&src, contents_only, excludes).map_err(|e| {
            Error::at(
                Status::Dir,
                loc,
                format!("cannot read {}: {e}", src.display()),
            )
        })?;
        self.warnings.extend(
            scan.warnings
                .into_iter()
                .map(|w| Warning::at(WarningKind::SkippedEntry, loc, w)),
        );
        let op = Op::CopyDir {
            src,
            dest: tp.clone(),
            contents_only,
            entries: scan.entries,
        };
        self.push(loc, op);
        Ok(())
    }

    fn plan_files(&mut self, t: &Target, tp: &ImagePath) -> Result<()> {
        for c in &t.copy {
            let base = self.base(c);
            for f in c.files.iter().flatten() {
                self.plan_file(f, &base, tp)?;
            }
        }
        Ok(())
    }

    fn plan_file(&mut self, f: &FileEntry, base: &Path, tp: &ImagePath) -> Result<()> {
        let pattern = sources::source_path(base, &f.name.value, self.sysroot);
        let srcs = expand(&pattern, &f.name.loc)?;
        if srcs.len() > 1 && f.rename.is_some() {
            return Err(Error::at(
                Status::InvalidBom,
                &f.name.loc,
                format!(
                    "{} matches {} files but `rename` names one",
                    f.name.value,
                    srcs.len()
                ),
            ));
        }
        for listed in srcs {
            let src = self.readable(listed.clone());
            check_file_source(&src, &f.name.loc)?;
            if let Some(h) = &f.hash {
                check_hash(&src, h)?;
            }
            let dest = match &f.rename {
                Some(r) => image_path(r, Some(tp))?,
                None => {
                    // The name the bom gave, not the name links lead to.
                    let Some(name) = listed.file_name() else {
                        return Err(Error::at(
                            Status::InvalidBom,
                            &f.name.loc,
                            format!("{} has no file name to copy it under", listed.display()),
                        ));
                    };
                    tp.join(name)
                        .map_err(|e| Error::at(Status::InvalidBom, &f.name.loc, e))?
                }
            };
            let autodep = f.autodep;
            self.push(&f.name.loc, Op::CopyFile { src, dest, autodep });
        }
        Ok(())
    }
}

/// Normalises a destination from a bom: relative values are taken from the
/// target dir `base` (absolute ones, and targets, from the image's `/`); `..`
/// climbing above the image root is an error before anything is written.
fn image_path(v: &Located<String>, base: Option<&ImagePath>) -> Result<ImagePath> {
    let path = match base {
        Some(b) => b.join(&v.value),
        None => ImagePath::parse(&v.value),
    };
    path.map_err(|e| Error::at(Status::InvalidBom, &v.loc, e))
}

/// A link's target is written verbatim, but it must be one the kernel can store.
fn check_link_target(src: &Located<String>) -> Result<()> {
    let problem = if src.value.is_empty() {
        "a link's `src` cannot be empty"
    } else if src.value.contains('\0') {
        "a link's `src` cannot hold a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::at(Status::InvalidBom, &src.loc, problem))
}

/// The sources an entry names: the path itself, or the matches of its
/// wildcards when it does not exist literally (no match is an error; a
/// malformed wildcard is a bom error).
fn expand(pattern: &Path, loc: &SourceLoc) -> Result<Vec<PathBuf>> {
    let text = pattern.to_string_lossy();
    if !sources::has_wildcard(&text) || pattern.symlink_metadata().is_ok() {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let found = sources::expand_glob(pattern).map_err(|e| Error::at(Status::InvalidBom, loc, e))?;
    if found.is_empty() {
        return Err(Error::at(
            Status::NotFound,
            loc,
            format!("no file matches {text}"),
        ));
    }
    Ok(found)
}

/// A listed source must be a regular file (after links): a directory belongs
/// under `dirs`, and a FIFO or device would block or never end when read, so
/// both are refused here, before anything opens them.
fn check_file_source(src: &Path, loc: &SourceLoc) -> Result<()> {
    match std::fs::metadata(src) {
        Ok(m) if m.is_dir() => Err(Error::at(
            Status::FileCopy,
            loc,
            format!(
                "{} is a directory: list it under `dirs` to copy it",
                src.display()
            ),
        )),
        Ok(m) if !m.is_file() => Err(Error::at(
            Status::FileCopy,
            loc,
            format!(
                "{} is not a regular file (a FIFO, socket or device): it cannot be copied",
                src.display()
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::at(
            Status::NotFound,
            loc,
            format!("source file {}: {e}", src.display()),
        )),
    }
}

/// Verifies a `hash` entry: SHA-256 of the (expanded) source, compared
/// case-insensitively.
fn check_hash(src: &Path, expected: &Located<String>) -> Result<()> {
    let actual = sha256_file(src).map_err(|e| {
        Error::at(
            Status::NotFound,
            &expected.loc,
            format!("cannot read {}: {e}", src.display()),
        )
    })?;
    if actual.eq_ignore_ascii_case(expected.value.trim()) {
        return Ok(());
    }
    Err(Error::at(
        Status::HashMismatch,
        &expected.loc,
        format!(
            "the SHA-256 of {} is {}, not {}",
            src.display(),
            actual.to_ascii_uppercase(),
            expected.value
        ),
    ))
}

/// SHA-256 of a file's bytes as lower-case hex, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(std::fs::File::open(path)?)
}

/// SHA-256 of everything `f` reads, as lower-case hex.
pub fn sha256_reader(mut f: impl std::io::Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
