//! The resolver: shared caches, and the entry point that sets up one
//! resolution (which loader, which search context) and runs it.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing::warn;

use super::cache::LdCache;
use super::loader::{LoaderFacts, loader_facts};
use super::search::Search;
use super::sysroot::Sysroot;
use super::{FileId, Flavor, LoaderSpec, Resolution, ResolverOptions, conf, file_id, machine};
use crate::elf::{self, Class, ElfFile, Endian};
use crate::error::{Error, Result, Status};

type LoaderKey = (String, Flavor, Class, Endian, u16);

/// Resolves the libraries of ELF files as their loader would; see the
/// module documentation.
pub struct Resolver {
    pub(crate) opts: ResolverOptions,
    pub(crate) sysroot: Sysroot,
    elves: Mutex<HashMap<FileId, Option<Arc<ElfFile>>>>,
    /// Candidate library paths (inside the sysroot) already looked at: most
    /// files of a run ask for the same few libraries in the same places.
    candidates: Mutex<HashMap<String, Option<Loaded>>>,
    dirs: Mutex<HashMap<String, bool>>,
    cache: OnceLock<Option<LdCache>>,
    conf: OnceLock<Vec<String>>,
    loaders: Mutex<HashMap<LoaderKey, Arc<LoaderFacts>>>,
}

/// A parsed ELF file and its identity.
pub(crate) type Loaded = (FileId, Arc<ElfFile>);

/// Locks a cache map; a poisoned lock only means another thread panicked
/// mid-insert of a memo entry, which leaves the map usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Resolver {
    pub fn new(opts: ResolverOptions) -> Resolver {
        Resolver {
            sysroot: Sysroot::new(&opts.sysroot),
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
    pub fn resolve(&self, file: &Path, loader: Option<&LoaderSpec>) -> Result<Resolution> {
        let main = self.read_main(file)?;
        if !main.dynamic {
            return Ok(Resolution {
                interp: main.interp.clone(),
                libs: Vec::new(),
            });
        }
        let interp = match loader {
            Some(spec) => Some(spec.interp.clone()),
            None => main
                .interp
                .clone()
                .or_else(|| machine::arch_of(&main).map(|a| a.interp.to_string())),
        };
        let flavor = match (loader, &interp) {
            (Some(spec), _) => spec.flavor,
            (None, Some(i)) => Flavor::of_interp(i),
            (None, None) => Flavor::Glibc,
        };
        let library_path = loader
            .and_then(|l| l.library_path.clone())
            .unwrap_or_else(|| self.opts.library_path.clone());
        let facts = self.loader_facts(interp.as_deref(), flavor, &main);
        let mut search = Search::new(self, file, main, interp, flavor, facts, library_path);
        search.run();
        Ok(search.finish())
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

    /// The parsed ELF file at a host path, parsed once per file identity;
    /// None when it is not a (well-formed) ELF file.
    pub(crate) fn elf_at(&self, host: &Path) -> Option<(FileId, Arc<ElfFile>)> {
        let id = file_id(host)?;
        if let Some(cached) = lock(&self.elves).get(&id) {
            return cached.clone().map(|e| (id, e));
        }
        let parsed = match elf::read_file(host) {
            Ok(Some(e)) => Some(Arc::new(e)),
            Ok(None) => None,
            Err(e) => {
                warn!("{}: {e}", host.display());
                None
            }
        };
        lock(&self.elves).insert(id, parsed.clone());
        parsed.map(|e| (id, e))
    }

    /// The ELF file at an inside candidate path, memoized per path; None when
    /// it does not exist or is not a well-formed ELF file.
    pub(crate) fn candidate_at(&self, path: &str) -> Option<Loaded> {
        if let Some(known) = lock(&self.candidates).get(path) {
            return known.clone();
        }
        let found = self
            .sysroot
            .open_path(Path::new(path))
            .and_then(|host| self.elf_at(&host));
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

    /// The sysroot's ld.so.conf directories, read once.
    pub(crate) fn conf_dirs(&self) -> &[String] {
        self.conf.get_or_init(|| conf::conf_dirs(&self.sysroot))
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
