//! `copy_bom new`: creates an Occlum instance directory as `occlum new` does
//! (SPEC A§6, B3), without the original's bugs (SPEC A§7 item 24).
//!
//! The instance is built in a hidden sibling directory and renamed into place
//! at the end, so a failure never leaves a half instance behind, and the status
//! file is the last thing written. Runtime files that come from an Occlum
//! installation are copied when they exist; when they do not (a machine without
//! Occlum), the layout is still created and the report lists, one sentence per
//! file, what `occlum build` will still need.

mod apply;
pub mod config;
mod layout;
mod sources;
mod staging;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result, Status};

/// The name of the status file `occlum` reads to know an instance's state.
const STATUS_FILE: &str = ".__occlum_status";

/// Which remote-attestation init program the instance's initfs gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitRa {
    /// `init_grpc_ratls` with the musl gRPC RA-TLS client libraries.
    GrpcRatls,
    /// `init_aecs` with the glibc AECS client libraries.
    Aecs,
}

impl InitRa {
    /// The spelling used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InitRa::GrpcRatls => "grpc_ratls",
            InitRa::Aecs => "aecs",
        }
    }
}

impl fmt::Display for InitRa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InitRa {
    type Err = Error;

    /// Unlike the original, which silently fell back to the default initfs,
    /// an unknown value is an error that lists the valid ones.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "grpc_ratls" => Ok(InitRa::GrpcRatls),
            "aecs" => Ok(InitRa::Aecs),
            _ => Err(Error::new(
                Status::Usage,
                format!("invalid init-ra value \"{s}\": expected one of grpc_ratls, aecs"),
            )),
        }
    }
}

/// What to create and where the Occlum runtime files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOptions {
    /// The instance directory to create; it must not exist.
    pub dir: PathBuf,
    /// The remote-attestation initfs variant, if any.
    pub init_ra: Option<InitRa>,
    /// The Occlum installation (`/opt/occlum` by default).
    pub occlum_dir: PathBuf,
    /// The host tree the hard-coded host sources (`/etc/localtime`,
    /// `/lib/ld-musl-x86_64.so.1`, ...) are read from: `/` in production, a
    /// fake tree in tests. `occlum_dir` is not under it.
    pub host_root: PathBuf,
}

impl NewOptions {
    /// Options for `dir` with the production defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NewOptions {
            dir: dir.into(),
            init_ra: None,
            occlum_dir: PathBuf::from("/opt/occlum"),
            host_root: PathBuf::from("/"),
        }
    }
}

/// What `create_instance` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    /// The instance directory, as given.
    pub dir: PathBuf,
    /// Files copied into the instance: (source, destination relative to `dir`).
    pub copied: Vec<(PathBuf, PathBuf)>,
    /// Runtime files `occlum build` will still need, one sentence each.
    pub missing: Vec<String>,
}

/// Creates a new Occlum instance at `opts.dir`; nothing is left behind on error.
pub fn create_instance(opts: &NewOptions) -> Result<NewReport> {
    check_destination(&opts.dir)?;
    let plan = layout::plan(opts)?;
    let staging = staging::Staging::create(&opts.dir)?;
    let applied = apply::apply(&plan, staging.path())?;
    // Written last: an instance whose status says "initialized" is complete.
    apply::write_file(&staging.path().join(STATUS_FILE), b"initialized\n", None)?;
    staging.commit(&opts.dir)?;
    Ok(NewReport {
        dir: opts.dir.clone(),
        copied: applied.copied,
        missing: applied.missing,
    })
}

/// Refuses an empty path and any existing entry (dangling symlinks included).
fn check_destination(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::new(Status::Usage, "target directory is not set"));
    }
    match dir.symlink_metadata() {
        Ok(_) => Err(already_exists(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::new(
            Status::Dir,
            format!("cannot check destination \"{}\"", dir.display()),
        )
        .with_path(dir)
        .with_source(e)),
    }
}

fn already_exists(dir: &Path) -> Error {
    Error::new(
        Status::Usage,
        format!("destination \"{}\" already exists", dir.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_ra_parses_the_two_variants() {
        assert_eq!("grpc_ratls".parse::<InitRa>().unwrap(), InitRa::GrpcRatls);
        assert_eq!("aecs".parse::<InitRa>().unwrap(), InitRa::Aecs);
        assert_eq!(InitRa::GrpcRatls.to_string(), "grpc_ratls");
        assert_eq!(InitRa::Aecs.to_string(), "aecs");
    }

    #[test]
    fn init_ra_rejects_unknown_values_listing_the_valid_ones() {
        for bad in ["", "GRPC_RATLS", "grpc-ratls", "x"] {
            let err = bad.parse::<InitRa>().unwrap_err();
            assert_eq!(err.status, Status::Usage);
            assert!(err.message.contains("grpc_ratls, aecs"), "{}", err.message);
        }
    }

    #[test]
    fn empty_destination_is_a_usage_error() {
        let err = check_destination(Path::new("")).unwrap_err();
        assert_eq!(err.status, Status::Usage);
    }

    #[test]
    fn dangling_symlink_counts_as_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("inst");
        std::os::unix::fs::symlink("nowhere", &link).unwrap();
        let err = check_destination(&link).unwrap_err();
        assert_eq!(err.status, Status::Usage);
        assert!(err.message.ends_with("already exists"));
    }
}
