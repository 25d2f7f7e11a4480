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

pub(crate) use loader::release_version;
pub use machine::Cpu;
pub use resolver::Resolver;

use crate::elf::{ElfFile, Priority};

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

    /// The flavor of an object from its own content: its PT_INTERP when it
    /// has one; otherwise (a shared library alone) the C library it needs:
    /// `libc.so` is musl's soname, `libc.so.6` glibc's. None when there is
    /// no such evidence (an object needing no libc).
    pub fn of_object(elf: &ElfFile) -> Option<Flavor> {
        if let Some(interp) = &elf.interp {
            return Some(Flavor::of_interp(interp));
        }
        let needs = |n: &str| elf.needed.iter().any(|x| x == n);
        match (needs("libc.so"), needs("libc.so.6")) {
            (true, false) => Some(Flavor::Musl),
            (false, true) => Some(Flavor::Glibc),
            _ => None,
        }
    }
}

/// The standard interpreter path of `flavor` for `elf`'s class, byte order
/// and machine (`/lib64/ld-linux-x86-64.so.2`, `/lib/ld-musl-x86_64.so.1`),
/// for an object without PT_INTERP; None for an ABI not known here.
pub fn default_interp(elf: &ElfFile, flavor: Flavor) -> Option<String> {
    let arch = machine::arch_of(elf)?;
    Some(match flavor {
        Flavor::Glibc => arch.interp.to_string(),
        Flavor::Musl => format!("/lib/ld-musl-{}.so.1", arch.musl),
    })
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
    /// Whether, in a sysroot without an ld.so.cache, the directories of its
    /// `/etc/ld.so.conf` stand in for the cache (glibc). glibc itself never
    /// reads ld.so.conf at run time, only the cache ldconfig builds from it:
    /// the stand-in suits an unpacked root file system used as a source
    /// (`deps`, the build), where ldconfig was never run; judging whether an
    /// image runs (`check`) must turn it off.
    pub conf_without_cache: bool,
    /// The CPU the target runs on (x86-64: glibc-hwcaps level, `$PLATFORM`
    /// and the legacy subdirectories); None means this machine's CPU, for
    /// the host and for a sysroot alike.
    pub cpu: Option<Cpu>,
    /// The `.note.dlopen` entries loaded like DT_NEEDED: those of this priority or a more
    /// pressing one (`Required`: only what the object cannot work without); None for none.
    pub dlopen: Option<Priority>,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            sysroot: PathBuf::from("/"),
            library_path: Vec::new(),
            use_cache: true,
            conf_without_cache: true,
            cpu: None,
            dlopen: Some(Priority::Required),
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
    /// (not canonicalized); None when not found or not loadable.
    pub path: Option<PathBuf>,
    /// The host path to read for `path`: in a sysroot, `path` with every
    /// symlink resolved inside the sysroot (an absolute link target is
    /// taken relative to the sysroot, never the host's root), then prefixed
    /// with the sysroot; on the host, `path` itself. Copy from this, never
    /// from `path` joined to the sysroot by hand. None when `path` is None.
    pub host: Option<PathBuf>,
    /// The first object that requested it.
    pub needed_by: PathBuf,
    pub via: Via,
    /// For a library not found: every directory tried.
    pub searched: Vec<PathBuf>,
    /// The hwcaps trap: when `path` is `D/glibc-hwcaps/X/lib`, the baseline
    /// `D/lib` if it exists (an image needs it too).
    pub baseline: Option<PathBuf>,
    /// Requested by a `.note.dlopen` entry of this priority, not by DT_NEEDED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlopen: Option<Priority>,
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
    /// The loader opened `file` for this name and cannot load it: glibc
    /// stops at a candidate that is not a loadable object of the right
    /// byte order ("invalid ELF header", "file too short", an executable…)
    /// instead of searching on; musl stops at the first file that opens.
    /// The library counts as missing (`path` is None).
    Unusable {
        file: PathBuf,
        reason: String,
    },
}

/// Device and inode: the identity the loader uses to notice that two
/// names are one file.
pub(crate) type FileId = (u64, u64);

pub(crate) fn file_id(host: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(host).ok()?;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

/// The directories a loader searches last (glibc's system directories, as
/// Debian builds them; musl's built-in default path), as image paths.
pub fn default_dirs(elf: &crate::elf::ElfFile, flavor: Flavor) -> Vec<String> {
    match flavor {
        Flavor::Glibc => machine::fallback_system_dirs(elf),
        Flavor::Musl => ["/lib", "/usr/local/lib", "/usr/lib"]
            .map(String::from)
            .to_vec(),
    }
}
