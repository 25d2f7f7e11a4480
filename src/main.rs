//! The `copy_bom` command line: parse, call the library, print, exit with the
//! status of SPEC B1. Nothing else lives here.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use copy_bom::build::{BuildOptions, build_image};
use copy_bom::deps::{FileDeps, LoaderConfig, ResolveOptions};
use copy_bom::error::{Error, Status};
use copy_bom::provenance::sbom::SbomFormat;
use copy_bom::report::{escape, escape_lines};
use copy_bom::{check, ldso, report};

/// Builds the root file system of an Occlum instance (or any minimal Linux
/// root) from a YAML bill of materials, with every shared library the copied
/// files need.
#[derive(Parser)]
#[command(
    name = "copy_bom",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
    /// More log output (-v info, -vv debug); OCCLUM_LOG_LEVEL overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors: no warnings, no summary.
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
    /// Also add the files the image's C library opens for the functions its programs import
    /// (NSS configuration and modules, hosts, generated passwd and group, gconv, libgcc_s,
    /// the time zone, OpenSSL's configuration and modules, the CA bundle).
    #[arg(long)]
    implicit: bool,
    /// Show the digest of the image written in the summary (as `copy_bom digest` computes it;
    /// it reads every file of the image again, so it is not done by default; a manifest has it).
    #[arg(long)]
    digest: bool,
    /// Write a software bill of materials of the image to this file: every file with its hashes
    /// and its Debian package (from the dpkg database of the host, or of --sysroot).
    #[arg(long)]
    sbom: Option<PathBuf>,
    /// The SBOM's format: CycloneDX 1.6 or SPDX 2.3, both JSON.
    #[arg(long, value_enum, default_value_t, requires = "sbom")]
    sbom_format: SbomFormat,
    /// Also write the dpkg records of the image's packages into it, as distroless images do:
    /// var/lib/dpkg/status.d/PACKAGE and PACKAGE.md5sums (the copied files only).
    #[arg(long)]
    dpkg_status: bool,
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
        /// The instance directory to create; it must not exist.
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
        /// The ELF files (programs or libraries) to analyse; with --sysroot,
        /// paths inside the sysroot.
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
    /// Run a program under ptrace and write the files it (and every process it starts) used as
    /// a bom fragment. Exits with the program's status (128 + signal when killed).
    Trace {
        /// Write the fragment here (default: standard error, after the program's end).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Also keep paths under /proc, /sys, /dev, /run and /tmp.
        #[arg(long)]
        keep_system: bool,
        /// Write only what the image this bom builds (libraries and --implicit files included)
        /// would lack.
        #[arg(short = 'f', long = "file")]
        bom: Option<PathBuf>,
        /// With -f: the root the bom is built into (its relative sources are found from the
        /// root's parent, as in a build).
        #[arg(long, default_value = "image", requires = "bom")]
        root: PathBuf,
        /// With -f: directories where included boms are looked up.
        #[arg(short = 'i', long = "include-dir", requires = "bom")]
        include_dir: Vec<PathBuf>,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Run a program inside an image as the enclave will see it (the image as /, nothing of the
    /// host visible), and name every path it looked for and did not find there. Exits with the
    /// program's status; 125 when the image cannot be entered, 126 when an Occlum instance's
    /// entry_points do not hold the program, 127 when the image has no such program.
    Run {
        /// The image root (default with --instance: its image/).
        #[arg(long, required_unless_present = "instance")]
        root: Option<PathBuf>,
        /// An Occlum instance: its Occlum.json gives the environment and the entry points
        /// (default: the one beside --root when --root is an instance's image/).
        #[arg(long)]
        instance: Option<PathBuf>,
        /// The program's network: none, loopback (its own), or host.
        #[arg(long, value_enum, default_value = "loopback")]
        net: copy_bom::run::Net,
        /// NAME=VALUE for the program's environment (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<std::ffi::OsString>,
        /// Write the missing paths that exist on the host as a bom fragment here.
        #[arg(long)]
        suggest: Option<PathBuf>,
        /// The program (a path in the image, or a name looked up in its PATH) and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Check that every ELF file in an image finds its libraries, symbols and symbol versions inside the image.
    Check {
        /// The image root to check (a directory holding the image's /). When it is an Occlum
        /// instance's `image/`, the instance's Occlum.json is judged too.
        #[arg(long, required_unless_present = "instance")]
        root: Option<PathBuf>,
        /// An Occlum instance: its `image/` is checked (unless --root says otherwise) and its
        /// Occlum.json judged (entry points, sizes) and used (LD_LIBRARY_PATH, TZ).
        #[arg(long)]
        instance: Option<PathBuf>,
        /// The Occlum loader config the image was built with, so that its
        /// loaders' configured lib dirs are searched (default:
        /// /opt/occlum/etc/template/occlum_elf_loader.config if present).
        #[arg(long)]
        loader_config: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Do not judge symbols and symbol versions (only libraries and interpreters); implied
        /// files, found from the imported symbols, are then not judged either.
        #[arg(long)]
        no_symbols: bool,
        /// Missing implied files (what the C library opens for the functions the image's
        /// programs import) make the image incomplete (exit 248), not just warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Print the canonical digest of an image tree (`sha256:...`): every path with its type,
    /// mode, owner, size, mtime (seconds) and content or link target; README.md "Image digest"
    /// says how to recompute it.
    Digest {
        /// The image root to digest.
        #[arg(long)]
        root: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Plain text, escaped: clap quotes the arguments it rejects.
            let text = e.render().to_string();
            if !e.use_stderr() {
                // --help, --version: output like any other.
                return match out(&text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                };
            }
            let _ = std::io::stderr()
                .lock()
                .write_all(escape_lines(&text).as_bytes());
            return ExitCode::from(Status::Usage.code());
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        None => run_build(cli.build, cli.quiet),
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
        }) => {
            // The implied files need every object's symbols: only the explaining outputs show them.
            let opts = ResolveOptions {
                implied: tree || json,
                ..resolve_options(resolve)
            };
            run_deps(&files, opts, tree, json)
        }
        Some(Command::Trace {
            output,
            keep_system,
            bom,
            root,
            include_dir,
            command,
        }) => {
            let against = bom.map(|bom| BuildOptions {
                bom,
                root,
                include_dirs: include_dir,
                implicit: true,
                ..BuildOptions::default()
            });
            match run_trace(&command, output, keep_system, against.as_ref()) {
                // The program's own status, whatever it is.
                Ok(status) => return ExitCode::from(status),
                Err(e) => Err(e),
            }
        }
        Some(Command::Run {
            root,
            instance,
            net,
            env,
            suggest,
            command,
        }) => {
            let opts = copy_bom::run::RunOptions {
                root: root
                    .or_else(|| instance.as_ref().map(|d| d.join("image")))
                    .unwrap_or_default(),
                instance: instance.map(|d| d.join("Occlum.json")),
                net,
                env,
                command,
            };
            match run_in_image(&opts, suggest.as_deref(), cli.verbose, cli.quiet) {
                Ok(status) => return ExitCode::from(status),
                Err(e) => Err(e),
            }
        }
        Some(Command::Check {
            root,
            instance,
            loader_config,
            json,
            no_symbols,
            strict,
        }) => {
            let root = root
                .or_else(|| instance.as_ref().map(|d| d.join("image")))
                .unwrap_or_default();
            let options = check::CheckOptions {
                symbols: !no_symbols,
                instance: instance.map(|d| d.join("Occlum.json")),
            };
            run_check(&root, loader_config, json, &options, strict)
        }
        Some(Command::Digest { root }) => {
            copy_bom::digest::digest_image(&root).and_then(|d| out(&format!("{}\n", d.digest)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the error (escaped: [`escape`]) and gives its exit status.
fn fail(e: &Error) -> ExitCode {
    let mut text = format!("copy_bom: error: {}\n", escape(&e.headline()));
    for d in e.details() {
        text += &format!("  {}\n", escape(d));
    }
    // Nothing more can be said if stderr is gone too.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    ExitCode::from(e.status.code())
}

/// Writes to stdout. Text is escaped line by line first ([`escape_lines`]):
/// nothing read from a bom or a file name reaches the terminal raw. A reader
/// that went away (`copy_bom deps ... | head -1`) ends the program quietly
/// with success, as `rg` and `fd` do: the output that was wanted was read.
fn out(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(escape_lines(text).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::new(Status::FileCopy, "cannot write to stdout").with_source(e)),
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
        implied: false,
    }
}

fn run_build(args: BuildArgs, quiet: bool) -> Result<(), Error> {
    let (Some(file), Some(root)) = (args.file, args.root) else {
        return Err(Error::new(Status::Usage, "--file and --root are required"));
    };
    if let Some(jobs) = args.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build_global()
            .map_err(|e| Error::new(Status::Usage, format!("--jobs: {e}")))?;
    }
    let epoch =
        copy_bom::build::source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())?;
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
        implicit: args.implicit,
        digest: args.digest,
        source_date_epoch: epoch,
        sbom: args.sbom,
        sbom_format: args.sbom_format,
        dpkg_status: args.dpkg_status,
    };
    let start = Instant::now();
    let bar = progress_bar();
    let outcome = build_image(&opts, &|| bar.inc(1))?;
    bar.finish_and_clear();
    for w in &outcome.warnings {
        tracing::warn!("{}", escape(&w.to_string()));
    }
    match &outcome.summary {
        None if args.json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&outcome.plan).unwrap_or_default()
        )),
        None => out(&report::plan_lines(&outcome.plan)),
        Some(_) if quiet => Ok(()),
        Some(s) => out(&format!(
            "{}\n",
            report::summary_line(
                s,
                outcome.warnings.len(),
                // A reproducible build's output does not depend on the time either.
                epoch.is_none().then(|| start.elapsed()),
                outcome.digest.as_deref()
            )
        )),
    }
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
    let mut text: String = report
        .missing
        .iter()
        .map(|m| format!("note: {}\n", escape(m)))
        .collect();
    text += &format!(
        "{} initialized as an Occlum instance\n",
        report::shown(&report.dir)
    );
    out(&text)
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
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        ))?;
    } else {
        // One write: thousands of files give tens of thousands of lines.
        let text: String = results
            .iter()
            .map(|r| file_deps_text(r, results.len() > 1, tree))
            .collect();
        out(&text)?;
    }
    // A file that cannot be analysed is a source that cannot be used (255),
    // not a usage error: the command line was right.
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    match errors.as_slice() {
        [] => {}
        [one] => return Err(Error::new(Status::NotFound, one.clone())),
        several => {
            return Err(Error::new(
                Status::NotFound,
                format!("{} files cannot be analysed:", several.len()),
            )
            .with_details(several.to_vec()));
        }
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
    let mut text = String::new();
    if header {
        text = format!("{}:\n", report::shown(&r.file));
    }
    match (&r.resolution, &r.error) {
        (Some(res), _) if tree && !res.libs.is_empty() => text += &ldso::report::tree(res),
        (Some(res), _) => text += &ldso::report::ldd_lines(res),
        // Alone, the error says it all (on stderr).
        (None, Some(e)) if header => text += &format!("\t{e}\n"),
        (None, _) => {}
    }
    for d in &r.dlopen {
        text += &format!("\t{}\n", report::dlopen_line(d));
    }
    for n in &r.implied {
        text += &format!("\t{}\n", report::implied_note_line(n));
    }
    text
}

/// Traces the command and writes its fragment; returns the program's exit status.
fn run_trace(
    command: &[std::ffi::OsString],
    output: Option<PathBuf>,
    keep_system: bool,
    against: Option<&BuildOptions>,
) -> Result<u8, Error> {
    // The bom is planned first: a bad bom is reported before the program runs.
    let planned = against.map(copy_bom::build::planned_paths).transpose()?;
    let opts = copy_bom::trace::TraceOptions { keep_system };
    let mut traced = copy_bom::trace::trace(command, &opts)?;
    if let Some(planned) = &planned {
        traced.without(planned);
    }
    let text = copy_bom::trace::fragment(&traced, command);
    match &output {
        Some(path) => std::fs::write(path, &text).map_err(|e| {
            Error::new(
                Status::FileCopy,
                format!("trace: cannot write {}: {e}", path.display()),
            )
        })?,
        None => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
    tracing::info!(
        "trace: {} files, {} paths left out",
        traced.files.len(),
        traced.left_out
    );
    Ok(u8::try_from(traced.ending.status().clamp(0, 255)).unwrap_or(255))
}

/// Runs the command in the image, reports what it missed on stderr (and as a fragment with
/// `--suggest`); returns the program's exit status.
fn run_in_image(
    opts: &copy_bom::run::RunOptions,
    suggest: Option<&std::path::Path>,
    verbose: u8,
    quiet: bool,
) -> Result<u8, Error> {
    let outcome = copy_bom::run::run(opts)?;
    if !quiet {
        let limit = if verbose > 0 { usize::MAX } else { 10 };
        let mut text = String::new();
        for line in copy_bom::run::report_lines(&outcome, limit) {
            text += &line;
            text.push('\n');
        }
        let _ = std::io::stderr()
            .lock()
            .write_all(escape_lines(&text).as_bytes());
    }
    if let Some(path) = suggest {
        let text = outcome.suggestion(&opts.root, &opts.command)?;
        std::fs::write(path, text).map_err(|e| {
            Error::new(
                Status::FileCopy,
                format!("run: cannot write {}: {e}", path.display()),
            )
        })?;
    }
    Ok(u8::try_from(outcome.ending.status().clamp(0, 255)).unwrap_or(255))
}

fn run_check(
    root: &std::path::Path,
    loader_config: Option<PathBuf>,
    json: bool,
    options: &check::CheckOptions,
    strict: bool,
) -> Result<(), Error> {
    let config = LoaderConfig::load(loader_config.as_deref())?;
    let rep = check::check_image_with(root, &config, &Default::default(), options)?;
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&rep).unwrap_or_default()
        ))?;
    } else {
        out(&report::check_lines(&rep))?;
    }
    if !rep.is_complete() {
        Err(Error::new(
            Status::MissingLibraries,
            format!("{} is incomplete", report::shown(root)),
        ))
    } else if strict && !rep.implied.is_empty() {
        Err(Error::new(
            Status::MissingLibraries,
            format!(
                "{} lacks {} implied files (--strict)",
                report::shown(root),
                rep.implied.len()
            ),
        ))
    } else {
        Ok(())
    }
}
