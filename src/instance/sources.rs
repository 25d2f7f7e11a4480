//! Where the runtime files of a new instance come from.
//!
//! `occlum new` reads them from hard-coded host paths and from the Occlum
//! installation. Host paths are resolved under `host_root` so that tests can
//! fake the host; the installation is its own directory.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::NewOptions;
use crate::error::{Error, Result, Status};

/// Occlum's musl toolchain libraries on the host.
const MUSL_LIB_DIR: &str = "/usr/local/occlum/x86_64-linux-musl/lib";

/// The source locations for one `create_instance` call.
pub(super) struct Sources {
    host_root: PathBuf,
    occlum_dir: PathBuf,
    os_lib_dir: PathBuf,
}

impl Sources {
    pub(super) fn new(opts: &NewOptions) -> Self {
        let host_root = opts.host_root.clone();
        let os_lib_dir = os_lib_dir(&host_root);
        Sources {
            host_root,
            occlum_dir: opts.occlum_dir.clone(),
            os_lib_dir,
        }
    }

    /// A hard-coded absolute host path, read under `host_root`.
    pub(super) fn host(&self, absolute: &str) -> PathBuf {
        self.host_root.join(absolute.trim_start_matches('/'))
    }

    /// A path inside the Occlum installation.
    pub(super) fn occlum(&self, relative: &str) -> PathBuf {
        self.occlum_dir.join(relative)
    }

    /// A library of Occlum's musl toolchain.
    pub(super) fn musl_lib(&self, name: &str) -> PathBuf {
        self.host(MUSL_LIB_DIR).join(name)
    }

    /// A library of Occlum's glibc.
    pub(super) fn glibc_lib(&self, name: &str) -> PathBuf {
        self.occlum("glibc/lib").join(name)
    }

    /// A library of the host OS (the directory depends on the distribution).
    pub(super) fn os_lib(&self, name: &str) -> PathBuf {
        self.os_lib_dir.join(name)
    }

    /// Whether the installation ships glibc: the original creates the
    /// glibc part of the image only then.
    pub(super) fn has_glibc(&self) -> bool {
        self.occlum("glibc/lib").is_dir()
    }

    /// The files of the AECS client toolchain, sorted by name, or `None` when
    /// the toolchain is not installed. Subdirectories are skipped, as the
    /// original's non-recursive `cp` skips them.
    pub(super) fn aecs_client_files(&self) -> Result<Option<Vec<PathBuf>>> {
        let dir = self.occlum("toolchains/aecs_client");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(&dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| unreadable(&dir, e))?.path();
            if !path.is_dir() {
                files.push(path);
            }
        }
        files.sort();
        Ok(Some(files))
    }
}

fn unreadable(dir: &Path, e: std::io::Error) -> Error {
    Error::new(
        Status::FileCopy,
        format!("cannot list \"{}\"", dir.display()),
    )
    .with_path(dir)
    .with_source(e)
}

/// Ubuntu keeps libstdc++ and libgcc_s in /usr/lib/x86_64-linux-gnu, the
/// other supported distributions in /usr/lib64 (the original's rule).
fn os_lib_dir(host_root: &Path) -> PathBuf {
    let os_release = fs::read_to_string(host_root.join("etc/os-release")).unwrap_or_default();
    let dir = if is_ubuntu(&os_release) {
        "usr/lib/x86_64-linux-gnu"
    } else {
        "usr/lib64"
    };
    host_root.join(dir)
}

fn is_ubuntu(os_release: &str) -> bool {
    os_release.lines().any(|line| {
        line.trim()
            .strip_prefix("NAME=")
            .is_some_and(|value| value.trim_matches(|c| c == '"' || c == '\'') == "Ubuntu")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_is_recognised_by_its_name_line_only() {
        assert!(is_ubuntu("PRETTY_NAME=\"Ubuntu 22.04\"\nNAME=\"Ubuntu\"\n"));
        assert!(is_ubuntu("NAME=Ubuntu"));
        assert!(!is_ubuntu("NAME=\"Debian GNU/Linux\"\nID_LIKE=ubuntu\n"));
        assert!(!is_ubuntu("PRETTY_NAME=\"Ubuntu\"\n"));
        assert!(!is_ubuntu(""));
    }

    #[test]
    fn host_paths_are_read_under_the_host_root() {
        let mut opts = NewOptions::new("x");
        opts.host_root = PathBuf::from("/fake");
        let sources = Sources::new(&opts);
        assert_eq!(
            sources.host("/etc/localtime"),
            PathBuf::from("/fake/etc/localtime")
        );
        assert_eq!(
            sources.musl_lib("libc.so"),
            PathBuf::from("/fake/usr/local/occlum/x86_64-linux-musl/lib/libc.so")
        );
        assert_eq!(
            sources.os_lib("libz.so.1"),
            PathBuf::from("/fake/usr/lib64/libz.so.1")
        );
    }
}
