//! The main job: boms → plan → libraries → validation → image. Every check
//! runs before the first write, so bad input leaves the root untouched.

use std::path::{Path, PathBuf};

use filetime::FileTime;

use crate::apply::{self, Summary};
use crate::bom;
use crate::check::{self, CheckReport, KnownHeaders};
use crate::deps::{self, DepsOptions, LoaderConfig, Missing, SourceHeaders};
use crate::digest;
use crate::elf::Priority;
use crate::error::{Error, Result, Status, Warning, WarningKind};
use crate::fs::{CopyOptions, ImageRoot, RootLock};
use crate::implied;
use crate::instance::config::OcclumConfig;
use crate::manifest;
use crate::plan::image::ImageMap;
use crate::plan::{self, Op, Plan, PlanOptions, PlannedOp};
use crate::provenance::sbom::{self, SbomFormat};
use crate::provenance::{self, Database, status_d};
use crate::report;

/// Everything the main job needs (the command line, minus presentation).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub bom: PathBuf,
    pub root: PathBuf,
    pub include_dirs: Vec<PathBuf>,
    pub dry_run: bool,
    pub sysroot: Option<PathBuf>,
    pub loader_config: Option<PathBuf>,
    pub library_path: Vec<String>,
    /// Missing libraries of listed files are warnings, not errors.
    pub allow_missing: bool,
    /// Missing libraries of files in copied dirs are errors, not warnings.
    pub strict: bool,
    /// Write a JSON manifest of the image here.
    pub manifest: Option<PathBuf>,
    /// After writing, check that every ELF file in the image finds its
    /// libraries inside the image.
    pub check: bool,
    /// Add the files the image's C library opens for the functions its programs import.
    pub implicit: bool,
    /// Compute the digest of the image written (always done with a manifest).
    pub digest: bool,
    /// `SOURCE_DATE_EPOCH` (see [`source_date_epoch`]): no mtime in the image is later, and
    /// the directories created do not depend on the umask.
    pub source_date_epoch: Option<i64>,
    /// Write a software bill of materials of the image here (after writing it).
    pub sbom: Option<PathBuf>,
    pub sbom_format: SbomFormat,
    /// Write the dpkg records of the image's packages into it (`var/lib/dpkg/status.d/`).
    pub dpkg_status: bool,
}

/// The result of a run that got as far as a plan.
#[derive(Debug)]
pub struct BuildOutcome {
    pub plan: Plan,
    pub warnings: Vec<Warning>,
    pub missing: Vec<Missing>,
    /// None for a dry run.
    pub summary: Option<Summary>,
    /// The final check of the written image, when asked for.
    pub check: Option<CheckReport>,
    /// The digest of the image written (`sha256:...`), when asked for (`digest`, `manifest`).
    pub digest: Option<String>,
}

/// Plans the image and, unless it is a dry run, writes it. `progress` is
/// called once per file written.
pub fn build_image(opts: &BuildOptions, progress: &(dyn Fn() + Sync)) -> Result<BuildOutcome> {
    let Planned {
        plan,
        map,
        mut warnings,
        missing,
        config,
        headers,
        mut provenance,
    } = plan_image(opts)?;
    let mut check = None;
    let mut image_digest = None;
    let summary = if opts.dry_run {
        None
    } else {
        let epoch = opts
            .source_date_epoch
            .map(|secs| FileTime::from_unix_time(secs, 0));
        // Restored when the build ends; from here on it decides the mode of every new directory.
        let _umask = epoch.map(|_| Umask::set(0o022));
        let root = ImageRoot::open(&opts.root)
            .map_err(|e| Error::new(Status::Dir, format!("cannot create the root: {e}")))?;
        // One run at a time per root: the lock is on the root directory itself.
        let _lock = RootLock::acquire(&root).map_err(|e| Error::new(Status::Dir, e.to_string()))?;
        let copy = CopyOptions {
            preserve_owner: is_root_user(),
            epoch,
        };
        let summary = apply::apply(&plan, &map, &root, &copy, progress)?;
        if let Some(epoch) = epoch {
            // Last: what copy_bom made itself (directories, links, generated files, the root)
            // got the time of this build, and each directory's mtime is final only now.
            root.clamp_mtimes(epoch).map_err(|e| {
                Error::new(
                    Status::Dir,
                    format!("SOURCE_DATE_EPOCH: cannot set mtimes: {e}"),
                )
            })?;
        }
        let attribution = provenance
            .as_mut()
            .map(|p| attribute(&plan, &map, &mut p.database));
        image_digest = digest_and_manifest(opts, &plan, &map, &root, attribution.as_ref())?;
        if let (Some(path), Some(p), Some(a)) = (&opts.sbom, &provenance, &attribution) {
            write_sbom(path, opts, &root, &p.created, a, image_digest.as_deref())?;
        }
        if opts.check {
            let report = check::check_image(&opts.root, &config, &headers)?;
            final_check_verdict(&report, opts.strict, &mut warnings)?;
            check = Some(report);
        }
        Some(summary)
    };
    Ok(BuildOutcome {
        plan,
        warnings,
        missing,
        summary,
        check,
        digest: image_digest,
    })
}

/// The digest of the written image when asked for (`--digest`) or needed (`--manifest`, which is
/// written here, its files' hashes taken from the digest's reading of them).
fn digest_and_manifest(
    opts: &BuildOptions,
    plan: &Plan,
    map: &ImageMap,
    root: &ImageRoot,
    attribution: Option<&provenance::Attribution>,
) -> Result<Option<String>> {
    if !opts.digest && opts.manifest.is_none() && opts.sbom.is_none() {
        return Ok(None);
    }
    let digest = digest::digest_root(root)?;
    if let Some(path) = &opts.manifest {
        let paths = manifest::records(plan, map, root, &digest, attribution)?;
        let whole = manifest::Manifest {
            digest: &digest.digest,
            paths: &paths,
        };
        manifest::write(path, &whole)?;
    }
    Ok(Some(digest.digest))
}

/// What the final check found is reported as warnings (the image is written
/// by then); with `--strict` an incomplete image is an error that lists them.
fn final_check_verdict(
    report: &CheckReport,
    strict: bool,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let mut problems: Vec<String> = report
        .missing_interpreters
        .iter()
        .map(|(file, interp)| {
            format!(
                "check: {} needs interpreter {interp}, which is not in the image",
                file.display()
            )
        })
        .collect();
    problems.extend(report.missing.iter().map(|m| {
        format!(
            "check: in the image, {} cannot find {} (searched {}); if the library is in the image, \
             its directory is not on the loader's path there (list the loader's config, e.g. \
             etc/ld.so.cache or etc/ld-musl-*.path, in the bom, or put the library in a default dir)",
            m.needed_by.display(),
            m.name,
            join_paths(&m.searched)
        )
    }));
    problems.extend(
        report
            .symbols
            .iter()
            .map(|p| format!("check: in the image, {}", report::symbol_line(p))),
    );
    problems.extend(report.instance_problems.iter().map(|p| {
        format!(
            "check: {}: {}: {}",
            report
                .instance
                .as_deref()
                .map_or("Occlum.json".into(), |i| i.display().to_string()),
            p.field,
            p.problem
        )
    }));
    // The program may never make the call: a warning, an error only with --strict.
    let implied: Vec<String> = report
        .implied
        .iter()
        .map(|m| format!("check: {}", report::implied_line(m)))
        .collect();
    if strict && !(problems.is_empty() && implied.is_empty()) {
        problems.extend(implied);
        return Err(
            Error::new(Status::MissingLibraries, "the image is incomplete:").with_details(problems),
        );
    }
    warnings.extend(
        problems
            .into_iter()
            .map(|p| Warning::new(WarningKind::IncompleteImage, p)),
    );
    warnings.extend(
        implied
            .into_iter()
            .map(|p| Warning::new(WarningKind::Implied, p)),
    );
    Ok(())
}

fn join_paths(paths: &[PathBuf]) -> String {
    let v: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    if v.is_empty() {
        "nothing".to_string()
    } else {
        v.join(":")
    }
}

/// Every image path the build would produce (nothing is written): each node of the planned
/// image, under the path it really occupies and the one the bom or the loader named.
pub fn planned_paths(opts: &BuildOptions) -> Result<Vec<PathBuf>> {
    let planned = plan_image(opts)?;
    let mut paths: Vec<PathBuf> = planned
        .map
        .nodes
        .iter()
        .flat_map(|(at, node)| {
            std::iter::once(at.to_path_buf()).chain(node.requested.iter().map(|r| r.to_path_buf()))
        })
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Everything planning produced, for the writing and the final check.
struct Planned {
    plan: Plan,
    map: ImageMap,
    warnings: Vec<Warning>,
    missing: Vec<Missing>,
    config: LoaderConfig,
    /// ELF headers of the analysed files, by image path.
    headers: KnownHeaders,
    /// When attribution is asked for (`--sbom`, `--dpkg-status`).
    provenance: Option<Provenance>,
}

/// What attributing the image needs, read and checked before the first write.
struct Provenance {
    database: Database,
    /// The SBOM's creation time (`SOURCE_DATE_EPOCH`, else now).
    created: String,
}

fn plan_image(opts: &BuildOptions) -> Result<Planned> {
    let loaded = bom::load(&opts.bom, &opts.include_dirs, &|v| std::env::var(v).ok())?;
    let mut warnings: Vec<Warning> = loaded
        .warnings
        .iter()
        .map(|w| Warning::at(WarningKind::UnknownKey, &w.loc, w.message.clone()))
        .collect();
    // Every path the loader sees lies in the sysroot: make it absolute once.
    let sysroot = match &opts.sysroot {
        Some(s) => Some(std::path::absolute(s).map_err(|e| {
            Error::new(
                Status::NotFound,
                format!("the sysroot {}: {e}", s.display()),
            )
        })?),
        None => None,
    };
    let mut plan = plan::build(
        &loaded,
        &PlanOptions {
            root: opts.root.clone(),
            sysroot: sysroot.clone(),
        },
    )?;
    warnings.append(&mut plan.warnings);
    let config = LoaderConfig::load(opts.loader_config.as_deref())?;
    let deps_opts = DepsOptions {
        sysroot,
        library_path: opts.library_path.clone(),
        config: config.clone(),
        // What a `.note.dlopen` recommends is an implied file: added with --implicit.
        dlopen: Some(if opts.implicit {
            Priority::Recommended
        } else {
            Priority::Required
        }),
    };
    let bom_plan = opts.implicit.then(|| plan.clone());
    let (mut map, mut libs) = with_libraries(&mut plan, &opts.root, &deps_opts)?;
    if let Some(mut with_implied) = bom_plan {
        // What the image implies is known once its libraries are: the plan is made again with
        // the implied files added, so that their own libraries are found like any file's.
        let implied = implied::planned::plan_implied(
            &plan,
            &mut map,
            &libs.headers,
            deps_opts.sysroot.as_deref(),
            instance_tz(&opts.root).as_deref(),
        );
        warnings.extend(
            implied
                .warnings
                .into_iter()
                .map(|w| Warning::new(WarningKind::Implied, w)),
        );
        if !implied.ops.is_empty() {
            with_implied.ops.extend(implied.ops);
            plan = with_implied;
            (map, libs) = with_libraries(&mut plan, &opts.root, &deps_opts)?;
        }
    }
    // The database is read only when attribution is asked for, and before the first write.
    let mut provenance = if opts.sbom.is_some() || opts.dpkg_status {
        Some(read_provenance(
            deps_opts.sysroot.as_deref(),
            opts.source_date_epoch,
        )?)
    } else {
        None
    };
    if let (true, Some(p)) = (opts.dpkg_status, provenance.as_mut()) {
        add_status_files(&mut plan, &mut map, &mut p.database)?;
    }
    plan::validate(&plan, &map)?;
    warnings.extend(
        libs.warnings
            .into_iter()
            .map(|w| Warning::new(WarningKind::UnusableElf, w)),
    );
    check_missing(&libs.missing, opts)?;
    for m in libs
        .missing
        .iter()
        .filter(|m| !m.listed || opts.allow_missing)
    {
        warnings.push(
            Warning::new(
                WarningKind::MissingLibrary,
                format!(
                    "{} needs {}, which was not found",
                    m.needed_by.display(),
                    m.name
                ),
            )
            .with_path(&m.needed_by),
        );
    }
    Ok(Planned {
        plan,
        map,
        warnings,
        missing: libs.missing,
        config,
        headers: libs.headers,
        provenance,
    })
}

/// Reads the dpkg database of the sysroot (or the host) and the SBOM's creation time.
fn read_provenance(sysroot: Option<&Path>, epoch: Option<i64>) -> Result<Provenance> {
    let root = sysroot.unwrap_or(Path::new("/"));
    let start = std::time::Instant::now();
    let database = Database::read(root).map_err(|e| Error::new(Status::NotFound, e.to_string()))?;
    tracing::info!(
        "provenance: the dpkg database of {} ({} packages) read in {:.0?}",
        root.display(),
        database.packages.len(),
        start.elapsed()
    );
    let created = sbom::creation_time(epoch);
    Ok(Provenance { database, created })
}

/// `--dpkg-status`: the status.d records of the image's packages join the plan (and so the
/// validation and the dry run) as files copy_bom writes.
fn add_status_files(plan: &mut Plan, map: &mut ImageMap, db: &mut Database) -> Result<()> {
    let attribution = provenance::attribute(plan, map, db);
    let files = status_d::status_files(&attribution).map_err(|e| {
        Error::new(
            Status::FileCopy,
            format!("--dpkg-status: cannot read a source: {e}"),
        )
    })?;
    for f in files {
        map.place_record(f.dest.clone(), &f.text, plan.ops.len());
        plan.ops.push(PlannedOp {
            bom: 0,
            at: None,
            op: Op::Record {
                dest: f.dest,
                text: f.text,
                why: f.why,
            },
        });
    }
    Ok(())
}

/// The written image's files, attributed (and timed: the cost is shown with `-v`).
fn attribute(plan: &Plan, map: &ImageMap, db: &mut Database) -> provenance::Attribution {
    let start = std::time::Instant::now();
    let attribution = provenance::attribute(plan, map, db);
    tracing::info!(
        "provenance: {} files attributed to {} packages in {:.0?}",
        attribution.files.len(),
        attribution.packages.len(),
        start.elapsed()
    );
    attribution
}

/// `--sbom`: the written image, attributed and hashed, as CycloneDX or SPDX.
fn write_sbom(
    path: &Path,
    opts: &BuildOptions,
    root: &ImageRoot,
    created: &str,
    attribution: &provenance::Attribution,
    image_digest: Option<&str>,
) -> Result<()> {
    let hashes = sbom::hash_files(root, attribution)
        .map_err(|e| Error::new(Status::FileCopy, e.to_string()))?;
    let name = opts
        .bom
        .file_name()
        .map_or_else(|| "image".to_string(), |n| n.to_string_lossy().into_owned());
    let doc = sbom::Document {
        name: &name,
        created,
        image_digest,
    };
    let text = sbom::document(opts.sbom_format, attribution, &hashes, &doc);
    std::fs::write(path, text).map_err(|e| {
        Error::new(
            Status::FileCopy,
            format!("cannot write the SBOM {}: {e}", path.display()),
        )
    })
}

/// The `TZ` of the Occlum instance whose `image/` the root is: its zone file is the one implied.
fn instance_tz(root: &std::path::Path) -> Option<String> {
    let json = OcclumConfig::beside(root)?;
    OcclumConfig::read(&json).ok()?.tz
}

/// The image map of a plan, with the libraries of its ELF files added to both.
fn with_libraries(
    plan: &mut Plan,
    root: &std::path::Path,
    deps_opts: &DepsOptions,
) -> Result<(ImageMap, deps::LibraryReport)> {
    // The map is built on one thread while the sources' headers are read on the others.
    let (mut map, headers) =
        rayon::join(|| ImageMap::build(plan, root), || SourceHeaders::read(plan));
    let libs = deps::add_libraries(plan, &mut map, headers, deps_opts)?;
    Ok((map, libs))
}

/// Missing libraries of listed files are an error (unless allowed); those of
/// files in copied dirs are an error only with `--strict`.
fn check_missing(missing: &[Missing], opts: &BuildOptions) -> Result<()> {
    let fatal: Vec<&Missing> = missing
        .iter()
        .filter(|m| (m.listed && !opts.allow_missing) || (!m.listed && opts.strict))
        .collect();
    if fatal.is_empty() {
        return Ok(());
    }
    let headline = if fatal.len() == 1 {
        "1 library is missing:"
    } else {
        "libraries are missing:"
    };
    let hint = "hint: ship each where the image's loader looks (its RUNPATH, a system dir \
                such as /lib), add the host dir that holds it with --library-path, or build \
                anyway with --allow-missing";
    let mut details = report::missing_items(&fatal);
    details.push(hint.to_string());
    Err(Error::new(Status::MissingLibraries, headline).with_details(details))
}

/// The value of `SOURCE_DATE_EPOCH` (None when unset), as reproducible-builds.org defines it:
/// whole seconds since 1970 in decimal ASCII digits. Anything else is a usage error, as is a time
/// in the future: what copy_bom creates itself gets the build's time clamped to the epoch, so an
/// epoch later than the build would leave the build's time in the image.
pub fn source_date_epoch(value: Option<&std::ffi::OsStr>) -> Result<Option<i64>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        Error::new(
            Status::Usage,
            format!("SOURCE_DATE_EPOCH={:?} {why}", value.to_string_lossy()),
        )
    };
    let text = value.to_str().unwrap_or_default();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "is not a number of seconds since 1970 (decimal digits only)",
        ));
    }
    let secs: i64 = text.parse().map_err(|_| invalid("is too large"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if u64::try_from(secs).is_ok_and(|s| s > now) {
        return Err(invalid("is in the future"));
    }
    Ok(Some(secs))
}

/// The process's umask, set for as long as this lives and restored after: a reproducible build
/// creates its directories with mode 0755 whatever umask it was started with. The umask belongs
/// to the whole process; a build is the one job of the process while it runs.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask has no preconditions and cannot fail.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { libc::umask(self.0) };
    }
}

fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
