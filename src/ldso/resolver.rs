//! The resolver: shared caches, and the entry point that sets up one
//! resolution (which loader, which search context) and runs it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing::warn;

use super::cache::LdCache;
use super::loader::{LoaderFacts, loader_facts};
use super::search::Search;
use super::sysroot::Sysroot;
use super::{
    Cpu, FileId, Flavor, LoaderSpec, Resolution, ResolverOptions, conf, default_interp, machine,
};
use crate::elf::{self, Class, ElfFile, Endian};
use crate::error::{Error, Result, Status};

type LoaderKey = (String, Flavor, Class, Endian, u16);

/// Resolves the libraries of ELF files as their loader would; see the
/// module documentation.
pub struct Resolver {
    pub(crate) opts: ResolverOptions,
    pub(crate) sysroot: Sysroot,
    /// The target's CPU: `opts.cpu`, else this machine's.
    pub(crate) cpu: Cpu,
    /// Each file parsed, or why it is not a loadable ELF file.
    elves: Mutex<HashMap<FileId, std::result::Result<Arc<ElfFile>, String>>>,
    /// Candidate library paths (inside the sysroot) already looked at: most
    /// files of a run ask for the same few libraries in the same places.
    candidates: Mutex<HashMap<String, Probe>>,
    dirs: Mutex<HashMap<String, bool>>,
    cache: OnceLock<Option<LdCache>>,
    conf: OnceLock<Vec<String>>,
    loaders: Mutex<HashMap<LoaderKey, Arc<LoaderFacts>>>,
}

/// A parsed ELF file and its identity.
pub(crate) type Loaded = (FileId, Arc<ElfFile>);

/// What opening a candidate path finds.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// Nothing the loader can open there (no such file, or no permission):
    /// the search goes on.
    Absent,
    /// Something that opens but is not an ELF file the reader accepts: a
    /// text file, a short file, a directory, a malformed object; the
    /// loader's words for it.
    Bad(String),
    Elf(Loaded),
}

/// The smallest file glibc reads an ELF header from (an ELF64 header).
const MIN_ELF: u64 = 64;

/// Locks a cache map; a poisoned lock only means another thread panicked
/// mid-insert of a memo entry, which leaves the map usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Resolver {
    /// A relative `opts.sysroot` is made absolute here, once, against the
    /// current directory, so every path the resolver hands out or reads
    /// stays valid whatever the caller's directory later is.
    pub fn new(mut opts: ResolverOptions) -> Resolver {
        if let Ok(abs) = std::path::absolute(&opts.sysroot) {
            opts.sysroot = abs;
        }
        Resolver {
            sysroot: Sysroot::new(&opts.sysroot),
            cpu: opts.cpu.clone().unwrap_or_else(Cpu::host),
            opts,
            elves: Mutex::default(),
            candidates: Mutex::default(),
            dirs: Mutex::default(),
            cache: OnceLock::new(),
            conf: OnceLock::new(),
            loaders: Mutex::default(),
        }
    }

    /// Resolves the whole closure of `file` (a path inside the sysroot) as
    /// the loader named by `loader` would load it; `None` means the file's
    /// own PT_INTERP, or for a file without one (a shared library) the
    /// default loader of its class and machine.
    ///
    /// Errors (status NotFound) when `file` cannot be read or is not a
    /// well-formed ELF file. Libraries that are not found are not errors:
    /// they are [`super::Dep`]s without a path.
    ///
    /// A static executable or a static-pie ([`ElfFile::needs_no_loader`])
    /// gets no libraries and no interpreter whatever `loader` says: the
    /// kernel runs it without one. A file without PT_INTERP otherwise (a
    /// shared library alone) is resolved with the rules of the C library it
    /// needs ([`Flavor::of_object`]; glibc without evidence) and that
    /// flavor's standard interpreter.
    pub fn resolve(&self, file: &Path, loader: Option<&LoaderSpec>) -> Result<Resolution> {
        let main = self.read_main(file)?;
        if main.needs_no_loader() {
            return Ok(Resolution {
                interp: main.interp.clone(),
                libs: Vec::new(),
            });
        }
        let (interp, flavor) = match (loader, &main.interp) {
            (Some(spec), _) => (Some(spec.interp.clone()), spec.flavor),
            (None, Some(i)) => (Some(i.clone()), Flavor::of_interp(i)),
            (None, None) => {
                let flavor = Flavor::of_object(&main).unwrap_or(Flavor::Glibc);
                (default_interp(&main, flavor), flavor)
            }
        };
        let library_path = loader
            .and_then(|l| l.library_path.clone())
            .unwrap_or_else(|| self.opts.library_path.clone());
        let facts = self.loader_facts(interp.as_deref(), flavor, &main);
        let mut search = Search::new(self, file, main, interp, flavor, facts, library_path);
        search.run();
        Ok(search.finish())
    }

    /// The host path to read for a path inside the sysroot (symlinks
    /// resolved inside it, as [`super::Dep::host`]); None when it does not
    /// exist. For the [`super::Dep::baseline`] of a hwcaps library, say.
    pub fn host_path(&self, inside: &Path) -> Option<PathBuf> {
        self.sysroot.open_path(inside)
    }

    fn read_main(&self, file: &Path) -> Result<Arc<ElfFile>> {
        let not_found =
            |why: String| Error::new(Status::NotFound, format!("{}: {why}", file.display()));
        let host = self
            .sysroot
            .open_path(file)
            .ok_or_else(|| not_found("no such file".into()))?;
        match elf::read_file(&host) {
            Ok(Some(e)) => Ok(Arc::new(e)),
            Ok(None) => Err(not_found("not an ELF file".into())),
            Err(e) => Err(not_found(e.to_string())),
        }
    }

    /// The parsed ELF file at a host path, parsed once per file identity, or
    /// why it is not one (in glibc's words where glibc has words for it).
    /// The ELF object of the regular file `host` (whose metadata the caller
    /// has), parsed once per identity. None when it cannot be opened: the
    /// loader's open fails and it searches on.
    fn elf_at(
        &self,
        host: &Path,
        meta: &fs::Metadata,
    ) -> Option<std::result::Result<Loaded, String>> {
        use std::os::unix::fs::MetadataExt;
        let id = (meta.dev(), meta.ino());
        if let Some(cached) = lock(&self.elves).get(&id) {
            return Some(cached.clone().map(|e| (id, e)));
        }
        let parsed = if meta.len() < MIN_ELF {
            Err("file too short".to_string())
        } else {
            match elf::read_file(host) {
                Ok(Some(e)) => Ok(Arc::new(e)),
                Ok(None) => Err("invalid ELF header".to_string()),
                Err(elf::ElfError::Io { .. }) => return None,
                Err(e) => Err(e.to_string()),
            }
        };
        lock(&self.elves).insert(id, parsed.clone());
        Some(parsed.map(|e| (id, e)))
    }

    /// What the loader finds at an inside candidate path, memoized per path.
    /// Only regular files are opened (a FIFO would block).
    pub(crate) fn candidate_at(&self, path: &str) -> Probe {
        if let Some(known) = lock(&self.candidates).get(path) {
            return known.clone();
        }
        // One stat and one open per candidate: this runs for every directory
        // of every search.
        let host = self.sysroot.candidate_path(Path::new(path));
        let found = match host.as_deref().map(|h| (h, fs::metadata(h))) {
            None | Some((_, Err(_))) => Probe::Absent,
            Some((_, Ok(m))) if m.is_dir() => {
                Probe::Bad("cannot read file data: Is a directory".into())
            }
            Some((_, Ok(m))) if !m.is_file() => Probe::Bad("not a regular file".into()),
            Some((h, Ok(m))) => match self.elf_at(h, &m) {
                // Unreadable: the loader's open fails and it searches on.
                None => Probe::Absent,
                Some(Ok(loaded)) => Probe::Elf(loaded),
                Some(Err(why)) => Probe::Bad(why),
            },
        };
        lock(&self.candidates).insert(path.to_string(), found.clone());
        found
    }

    /// Whether an inside directory exists, memoized.
    pub(crate) fn dir_exists(&self, dir: &str) -> bool {
        if let Some(known) = lock(&self.dirs).get(dir) {
            return *known;
        }
        let exists = self
            .sysroot
            .open_path(Path::new(dir))
            .is_some_and(|p| p.is_dir());
        lock(&self.dirs).insert(dir.to_string(), exists);
        exists
    }

    /// `<sysroot>/etc/ld.so.cache`, read once; None when absent, disabled
    /// or malformed (with a warning).
    pub(crate) fn ld_cache(&self) -> Option<&LdCache> {
        self.cache
            .get_or_init(|| {
                if !self.opts.use_cache {
                    return None;
                }
                let host = self.sysroot.open_path(Path::new("/etc/ld.so.cache"))?;
                let bytes = fs::read(&host).ok()?;
                LdCache::parse(&bytes)
                    .map_err(|e| warn!("{}: ignored: {e}", host.display()))
                    .ok()
            })
            .as_ref()
    }

    /// The sysroot's ld.so.conf directories, read once; none unless
    /// [`ResolverOptions::conf_without_cache`] asks for them.
    pub(crate) fn conf_dirs(&self) -> &[String] {
        self.conf.get_or_init(|| {
            if self.opts.conf_without_cache {
                conf::conf_dirs(&self.sysroot)
            } else {
                Vec::new()
            }
        })
    }

    fn loader_facts(
        &self,
        interp: Option<&str>,
        flavor: Flavor,
        main: &ElfFile,
    ) -> Arc<LoaderFacts> {
        let Some(interp) = interp else {
            return Arc::new(LoaderFacts {
                system_dirs: machine::fallback_system_dirs(main),
                lib: "lib".into(),
                names: Vec::new(),
                id: None,
                musl_path: None,
                glibc_version: None,
            });
        };
        let key = (
            interp.to_string(),
            flavor,
            main.class,
            main.data,
            main.machine,
        );
        if let Some(f) = lock(&self.loaders).get(&key) {
            return f.clone();
        }
        let facts = Arc::new(loader_facts(&self.sysroot, interp, flavor, main));
        lock(&self.loaders).insert(key, facts.clone());
        facts
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Inside path of a found library: a `String`, spelled as the loader spells it.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
