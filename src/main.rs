//! The `copy_bom` command line: parse, call the library, print, exit with the
//! status of SPEC B1. Nothing else lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use copy_bom::build::{BuildOptions, build_image};
use copy_bom::deps::{FileDeps, LoaderConfig, ResolveOptions};
use copy_bom::error::{Error, Status};
use copy_bom::{check, ldso, report};

/// Builds the root file system of an Occlum instance (or any minimal Linux
/// root) from a YAML bill of materials, with every shared library the copied
/// files need.
#[derive(Parser)]
#[command(
    name = "copy_bom",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
    /// More log output (-v info, -vv debug); OCCLUM_LOG_LEVEL overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Args)]
struct BuildArgs {
    /// The bom file.
    #[arg(short = 'f', long = "file", required = true)]
    file: Option<PathBuf>,
    /// The image root to fill.
    #[arg(long, required = true)]
    root: Option<PathBuf>,
    /// Directories where included boms are looked up (repeatable; takes several values).
    #[arg(short = 'i', long = "include-dir", num_args = 1.., action = clap::ArgAction::Append)]
    include_dir: Vec<PathBuf>,
    /// Show the complete plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    json: bool,
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Missing libraries of listed files are warnings instead of errors.
    #[arg(long, conflicts_with = "strict")]
    allow_missing: bool,
    /// Missing libraries of files in copied dirs are errors instead of warnings.
    #[arg(long)]
    strict: bool,
    /// Write a JSON manifest of every path in the image (with SHA-256) to this file.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Skip the final check that every ELF file in the image finds its libraries there.
    #[arg(long)]
    no_check: bool,
    /// Parallel copy jobs (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
}

/// How libraries are looked up.
#[derive(Args, Clone)]
struct ResolveArgs {
    /// Resolve sources, loader configuration and library search inside this directory.
    #[arg(long)]
    sysroot: Option<PathBuf>,
    /// The Occlum loader config (default: /opt/occlum/etc/template/occlum_elf_loader.config if present).
    #[arg(long)]
    loader_config: Option<PathBuf>,
    /// Extra library dirs, searched like LD_LIBRARY_PATH (colon-separated).
    #[arg(long, value_delimiter = ':')]
    library_path: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an Occlum instance directory (like `occlum new`).
    New {
        dir: PathBuf,
        /// The initfs remote-attestation flavour: grpc_ratls or aecs.
        #[arg(long)]
        init_ra: Option<copy_bom::instance::InitRa>,
        /// Where Occlum is installed.
        #[arg(long, default_value = "/opt/occlum")]
        occlum_dir: PathBuf,
    },
    /// Print the libraries of ELF files as the loader would find them, without running anything.
    Deps {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        resolve: ResolveArgs,
        /// Show why each library was found, as a tree.
        #[arg(long, conflicts_with = "json")]
        tree: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check that every ELF file in an image finds all its libraries inside the image.
    Check {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        loader_config: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        None => run_build(cli.build),
        Some(Command::New {
            dir,
            init_ra,
            occlum_dir,
        }) => run_new(dir, init_ra, occlum_dir),
        Some(Command::Deps {
            files,
            resolve,
            tree,
            json,
        }) => run_deps(&files, resolve_options(resolve), tree, json),
        Some(Command::Check {
            root,
            loader_config,
            json,
        }) => run_check(&root, loader_config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy_bom: error: {e}");
            ExitCode::from(e.status.code())
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = std::env::var("OCCLUM_LOG_LEVEL").unwrap_or_else(|_| level.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

fn resolve_options(r: ResolveArgs) -> ResolveOptions {
    ResolveOptions {
        sysroot: r.sysroot,
        loader_config: r.loader_config,
        library_path: r.library_path,
    }
}

fn run_build(args: BuildArgs) -> Result<(), Error> {
    let (Some(file), Some(root)) = (args.file, args.root) else {
        return Err(Error::new(Status::Usage, "--file and --root are required"));
    };
    if let Some(jobs) = args.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build_global()
            .map_err(|e| Error::new(Status::Usage, format!("--jobs: {e}")))?;
    }
    let opts = BuildOptions {
        bom: file,
        root,
        include_dirs: args.include_dir,
        dry_run: args.dry_run,
        sysroot: args.resolve.sysroot,
        loader_config: args.resolve.loader_config,
        library_path: args.resolve.library_path,
        allow_missing: args.allow_missing,
        strict: args.strict,
        manifest: args.manifest,
        check: !args.no_check,
    };
    let start = Instant::now();
    let bar = progress_bar();
    let outcome = build_image(&opts, &|| bar.inc(1))?;
    bar.finish_and_clear();
    for w in &outcome.warnings {
        tracing::warn!("{w}");
    }
    match &outcome.summary {
        None if args.json => println!(
            "{}",
            serde_json::to_string_pretty(&outcome.plan).unwrap_or_default()
        ),
        None => print!("{}", report::plan_lines(&outcome.plan)),
        Some(s) => println!(
            "{}",
            report::summary_line(s, outcome.warnings.len(), start.elapsed())
        ),
    }
    Ok(())
}

fn run_new(
    dir: PathBuf,
    init_ra: Option<copy_bom::instance::InitRa>,
    occlum_dir: PathBuf,
) -> Result<(), Error> {
    let report = copy_bom::instance::create_instance(&copy_bom::instance::NewOptions {
        dir,
        init_ra,
        occlum_dir,
        host_root: PathBuf::from("/"),
    })?;
    for m in &report.missing {
        println!("note: {m}");
    }
    println!("{} initialized as an Occlum instance", report.dir.display());
    Ok(())
}

/// A spinner with a file count on a terminal; hidden otherwise.
fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} files {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn run_deps(files: &[PathBuf], opts: ResolveOptions, tree: bool, json: bool) -> Result<(), Error> {
    let results = copy_bom::deps::resolve_files(files, &opts)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else {
        // One write: thousands of files give tens of thousands of lines.
        let text: String = results
            .iter()
            .map(|r| file_deps_text(r, results.len() > 1, tree))
            .collect();
        print!("{text}");
    }
    if results.iter().any(|r| r.error.is_some()) {
        return Err(Error::new(
            Status::Usage,
            "some files could not be analysed",
        ));
    }
    if results.iter().any(FileDeps::has_missing) {
        return Err(Error::new(
            Status::MissingLibraries,
            "some libraries were not found",
        ));
    }
    Ok(())
}

fn file_deps_text(r: &FileDeps, header: bool, tree: bool) -> String {
    let mut out = String::new();
    if header {
        out = format!("{}:\n", r.file.display());
    }
    match (&r.resolution, &r.error) {
        (Some(res), _) if tree && !res.libs.is_empty() => out += &ldso::report::tree(res),
        (Some(res), _) => out += &ldso::report::ldd_lines(res),
        (None, Some(e)) => out += &format!("\t{e}\n"),
        (None, None) => {}
    }
    out
}

fn run_check(
    root: &std::path::Path,
    loader_config: Option<PathBuf>,
    json: bool,
) -> Result<(), Error> {
    let config = LoaderConfig::load(loader_config.as_deref())?;
    let rep = check::check_image(root, &config, &Default::default())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
    } else {
        print!("{}", report::check_lines(&rep));
    }
    if rep.is_complete() {
        Ok(())
    } else {
        Err(Error::new(
            Status::MissingLibraries,
            format!("{} is incomplete", root.display()),
        ))
    }
}
