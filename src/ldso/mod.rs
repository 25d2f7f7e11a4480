//! The dynamic loader's rules, applied by reading files instead of running
//! a loader (SPEC B2, LOADER.md): which library each DT_NEEDED name loads,
//! for glibc and for musl, inside a sysroot.
//!
//! [`Resolver`] keeps what is expensive to learn (parsed ELF files, the
//! cache, the interpreters' compiled-in directories, which directories
//! exist) across calls, so resolving many files parses each library once.
//! It is `Send + Sync` so callers can resolve files in parallel.

mod cache;
mod conf;
mod loader;
mod machine;
pub mod report;
mod resolver;
mod search;
mod sysroot;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use resolver::Resolver;

/// Which loader implementation's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Flavor {
    Glibc,
    Musl,
}

impl Flavor {
    /// musl when the interpreter's basename starts with `ld-musl`.
    pub fn of_interp(interp: &str) -> Flavor {
        let base = interp.rsplit('/').next().unwrap_or(interp);
        if base.starts_with("ld-musl") {
            Flavor::Musl
        } else {
            Flavor::Glibc
        }
    }
}

/// What the resolver is told about the world it resolves in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// `/` for the host. Every other path is inside the sysroot and is
    /// prefixed once when the host file system is touched.
    pub sysroot: PathBuf,
    /// Like `LD_LIBRARY_PATH`.
    pub library_path: Vec<String>,
    /// Whether to read `<sysroot>/etc/ld.so.cache` (glibc).
    pub use_cache: bool,
    /// Without a cache, whether the sysroot's ld.so.conf directories stand
    /// in for it. Right for an unpacked sysroot read at build time (its
    /// ldconfig would build the cache from them); wrong for judging an image
    /// at run time, where glibc never reads ld.so.conf.
    pub conf_fallback: bool,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            sysroot: PathBuf::from("/"),
            library_path: Vec::new(),
            use_cache: true,
            conf_fallback: true,
        }
    }
}

/// A loader to resolve with, instead of the file's own PT_INTERP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderSpec {
    /// Path inside the sysroot, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interp: String,
    pub flavor: Flavor,
    /// Overrides [`ResolverOptions::library_path`] when set.
    pub library_path: Option<Vec<String>>,
}

/// The closure of one file as its loader would load it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The interpreter used (inside path); None for a static file.
    pub interp: Option<String>,
    /// Every library of the closure in load (breadth-first) order, the
    /// interpreter last with [`Via::Loader`].
    pub libs: Vec<Dep>,
}

impl Resolution {
    /// The libraries that were not found.
    pub fn missing(&self) -> impl Iterator<Item = &Dep> {
        self.libs.iter().filter(|d| d.path.is_none())
    }
}

/// One library of a closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dep {
    /// The DT_NEEDED string as requested.
    pub name: String,
    /// Where it was found, inside path, spelled as the loader spells it
    /// (not canonicalized); None when not found.
    pub path: Option<PathBuf>,
    /// The first object that requested it.
    pub needed_by: PathBuf,
    pub via: Via,
    /// For a library not found: every directory tried.
    pub searched: Vec<PathBuf>,
    /// The hwcaps trap: when `path` is `D/glibc-hwcaps/X/lib`, the baseline
    /// `D/lib` if it exists (an image needs it too).
    pub baseline: Option<PathBuf>,
}

/// Why a library was found where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Via {
    Rpath(PathBuf),
    LdLibraryPath(PathBuf),
    Runpath(PathBuf),
    Cache,
    /// A system directory (or, without a cache, an ld.so.conf directory).
    DefaultDir(PathBuf),
    /// The name contains `/` and was opened as a path.
    Direct,
    /// musl: a name reserved for libc, served by the ldso itself.
    MuslReserved,
    /// The interpreter itself.
    Loader,
    /// Not found; `searched` says where it was looked for.
    NotFound,
}

/// Device and inode: the identity the loader uses to notice that two
/// names are one file.
pub(crate) type FileId = (u64, u64);

pub(crate) fn file_id(host: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(host).ok()?;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}
