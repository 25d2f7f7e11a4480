//! The main job: boms → plan → libraries → validation → image. Every check
//! runs before the first write, so bad input leaves the root untouched.

use std::path::PathBuf;

use crate::apply::{self, Summary};
use crate::bom;
use crate::deps::{self, DepsOptions, LoaderConfig, Missing};
use crate::error::{Error, Result, Status};
use crate::fs::{CopyOptions, ImageRoot};
use crate::plan::image::ImageMap;
use crate::plan::{self, Plan, PlanOptions};
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
}

/// The result of a run that got as far as a plan.
#[derive(Debug)]
pub struct BuildOutcome {
    pub plan: Plan,
    pub warnings: Vec<String>,
    pub missing: Vec<Missing>,
    /// None for a dry run.
    pub summary: Option<Summary>,
}

/// Plans the image and, unless it is a dry run, writes it. `progress` is
/// called once per file written.
pub fn build_image(opts: &BuildOptions, progress: &(dyn Fn() + Sync)) -> Result<BuildOutcome> {
    let (plan, map, warnings, missing) = plan_image(opts)?;
    let summary = if opts.dry_run {
        None
    } else {
        let root = ImageRoot::new(&opts.root);
        let copy = CopyOptions {
            preserve_owner: is_root_user(),
        };
        Some(apply::apply(&plan, &map, &root, &copy, progress)?)
    };
    Ok(BuildOutcome {
        plan,
        warnings,
        missing,
        summary,
    })
}

type Planned = (Plan, ImageMap, Vec<String>, Vec<Missing>);

fn plan_image(opts: &BuildOptions) -> Result<Planned> {
    let loaded = bom::load(&opts.bom, &opts.include_dirs, &|v| std::env::var(v).ok())?;
    let mut warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.loc, w.message))
        .collect();
    let mut plan = plan::build(
        &loaded,
        &PlanOptions {
            root: opts.root.clone(),
            sysroot: opts.sysroot.clone(),
        },
    )?;
    let deps_opts = DepsOptions {
        sysroot: opts.sysroot.clone(),
        library_path: opts.library_path.clone(),
        config: LoaderConfig::load(opts.loader_config.as_deref())?,
    };
    let libs = deps::add_libraries(&mut plan, &deps_opts)?;
    warnings.extend(libs.warnings);
    check_missing(&libs.missing, opts)?;
    for m in libs.missing.iter().filter(|m| !m.listed || opts.allow_missing) {
        warnings.push(format!(
            "{} needs {}, which was not found",
            m.needed_by.display(),
            m.name
        ));
    }
    let map = ImageMap::build(&plan)?;
    Ok((plan, map, warnings, libs.missing))
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
    Err(Error::new(
        Status::MissingLibraries,
        format!(
            "{} missing: {}",
            if fatal.len() == 1 { "1 library is" } else { "libraries are" },
            report::missing_lines(&fatal)
        ),
    ))
}

fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
