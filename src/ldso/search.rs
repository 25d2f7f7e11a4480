//! One resolution: the loader's breadth-first walk over DT_NEEDED and the
//! per-name search order of glibc (`_dl_map_object`) and musl
//! (`load_library`), as LOADER.md states them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, warn};

use super::loader::LoaderFacts;
use super::resolver::{Resolver, join};
use super::{Dep, FileId, Flavor, Resolution, Via, machine};
use crate::elf::{ET_DYN, ElfFile};

/// musl serves these library names (`lib<name>.…`) from the ldso itself.
const MUSL_RESERVED: [&str; 7] = ["c", "pthread", "rt", "m", "dl", "util", "xnet"];
/// musl's search path when `ld-musl-$ARCH.path` is missing.
const MUSL_DEFAULT: [&str; 3] = ["/lib", "/usr/local/lib", "/usr/lib"];

/// A loaded (or, when `elf` is None, faked not-found) object.
struct Object {
    path: String,
    /// Names it is already loaded under.
    names: Vec<String>,
    elf: Option<Arc<ElfFile>>,
    id: Option<FileId>,
    /// What `$ORIGIN` expands to in its own paths.
    origin: Option<String>,
    /// The object that first requested it (glibc's `l_loader`, musl's `needed_by`).
    loader: Option<usize>,
}

/// A file that passed the candidate checks.
struct Candidate {
    path: String,
    elf: Arc<ElfFile>,
    id: FileId,
}

enum Outcome {
    Found(Candidate, Via),
    Missing(Vec<String>),
}

pub(crate) struct Search<'r> {
    r: &'r Resolver,
    target: Arc<ElfFile>,
    interp: Option<String>,
    flavor: Flavor,
    facts: Arc<LoaderFacts>,
    library_path: Vec<String>,
    hwcaps: Vec<&'static str>,
    legacy: Vec<&'static str>,
    platform: Option<&'static str>,
    cache_id: u32,
    objects: Vec<Object>,
    interp_index: Option<usize>,
    deps: Vec<Dep>,
}

impl<'r> Search<'r> {
    pub(crate) fn new(
        r: &'r Resolver,
        file: &Path,
        main: Arc<ElfFile>,
        interp: Option<String>,
        flavor: Flavor,
        facts: Arc<LoaderFacts>,
        library_path: Vec<String>,
    ) -> Search<'r> {
        let arch = machine::arch_of(&main);
        let glibc = flavor == Flavor::Glibc;
        let mut s = Search {
            r,
            interp,
            flavor,
            facts,
            library_path: Vec::new(),
            hwcaps: if glibc {
                machine::supported_hwcaps(&main)
            } else {
                Vec::new()
            },
            legacy: if glibc {
                machine::legacy_subdirs(&main)
            } else {
                Vec::new()
            },
            platform: arch.as_ref().and_then(|a| a.platform),
            cache_id: arch.as_ref().map_or(1, |a| a.cache_id),
            target: main.clone(),
            objects: Vec::new(),
            interp_index: None,
            deps: Vec::new(),
        };
        s.push_main(file, main);
        let separators: &[char] = if glibc { &[':', ';'] } else { &[':'] };
        let main_origin = s.objects[0].origin.clone();
        s.library_path = library_path
            .iter()
            .flat_map(|e| e.split(separators))
            .filter_map(|d| s.dir_entry(d, main_origin.as_deref()))
            .collect();
        s.push_interp();
        s
    }

    fn push_main(&mut self, file: &Path, main: Arc<ElfFile>) {
        let path = self.r.sysroot.absolute(file).to_string_lossy().into_owned();
        let origin = match self.flavor {
            // glibc takes the executable's real directory (/proc/self/exe);
            // resolving it costs a readlink per component, so only when used.
            Flavor::Glibc if uses_origin(&main) => self
                .r
                .sysroot
                .canonical(file)
                .map(|c| c.to_string_lossy().into_owned()),
            Flavor::Glibc | Flavor::Musl => None,
        }
        .map_or_else(|| parent(&path), |c| parent(&c));
        let mut names = Vec::new();
        if self.flavor == Flavor::Glibc {
            names.extend(main.soname.clone());
        }
        let host = self.r.sysroot.open_path(file);
        self.objects.push(Object {
            path,
            names,
            id: host.as_deref().and_then(super::file_id),
            elf: Some(main),
            origin: Some(origin),
            loader: None,
        });
    }

    /// The interpreter counts as loaded before the search starts.
    fn push_interp(&mut self) {
        let Some(interp) = self.interp.clone() else {
            return;
        };
        self.interp_index = Some(self.objects.len());
        self.objects.push(Object {
            path: interp,
            names: self.facts.names.clone(),
            elf: None,
            id: self.facts.id,
            origin: None,
            loader: None,
        });
    }

    /// Loads DT_NEEDED (and filtees) breadth-first, in the loader's order.
    pub(crate) fn run(&mut self) {
        let mut i = 0;
        while i < self.objects.len() {
            if Some(i) != self.interp_index
                && let Some(elf) = self.objects[i].elf.clone()
            {
                for name in elf.needed.iter().chain(&elf.filters) {
                    self.request(i, name, false);
                }
                for name in &elf.auxiliary {
                    self.request(i, name, true);
                }
            }
            i += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Resolution {
        if let Some(interp) = &self.interp {
            self.deps.push(Dep {
                name: interp.clone(),
                path: self.facts.id.map(|_| PathBuf::from(interp)),
                needed_by: PathBuf::from(&self.objects[0].path),
                via: Via::Loader,
                searched: Vec::new(),
                baseline: None,
            });
        }
        Resolution {
            interp: self.interp,
            libs: self.deps,
        }
    }

    fn request(&mut self, requester: usize, name: &str, optional: bool) {
        if self.flavor == Flavor::Musl && self.is_musl_reserved(name) {
            if !self.deps.iter().any(|d| d.name == name) {
                // Served by the ldso: not found when the ldso itself is missing.
                let ldso = self.facts.id.and(self.interp.clone());
                let dep = self.dep(requester, name, ldso, Via::MuslReserved, Vec::new());
                self.deps.push(dep);
            }
            return;
        }
        if self
            .objects
            .iter()
            .any(|o| o.names.iter().any(|n| n == name))
        {
            return;
        }
        match self.find(requester, name) {
            Outcome::Found(c, via) => self.add(requester, name, c, via),
            Outcome::Missing(_) if optional => {}
            Outcome::Missing(searched) => {
                let dep = self.dep(requester, name, None, Via::NotFound, searched);
                self.deps.push(dep);
                self.objects.push(Object {
                    path: name.to_string(),
                    names: vec![name.to_string()],
                    elf: None,
                    id: None,
                    origin: None,
                    loader: Some(requester),
                });
            }
        }
    }

    /// Records a found file, unless it is an object already loaded under
    /// another name (same device and inode).
    fn add(&mut self, requester: usize, name: &str, c: Candidate, via: Via) {
        if let Some(o) = self.objects.iter_mut().find(|o| o.id == Some(c.id)) {
            o.names.push(name.to_string());
            return;
        }
        let dep = self.dep(requester, name, Some(c.path.clone()), via, Vec::new());
        self.deps.push(dep);
        let mut names = vec![name.to_string()];
        if self.flavor == Flavor::Glibc {
            names.push(c.path.clone());
            names.extend(c.elf.soname.clone());
        }
        self.objects.push(Object {
            origin: Some(parent(&c.path)),
            path: c.path,
            names,
            elf: Some(c.elf),
            id: Some(c.id),
            loader: Some(requester),
        });
    }

    fn dep(
        &self,
        requester: usize,
        name: &str,
        path: Option<String>,
        via: Via,
        searched: Vec<String>,
    ) -> Dep {
        Dep {
            name: name.to_string(),
            baseline: path.as_deref().and_then(|p| self.baseline(p)),
            path: path.map(PathBuf::from),
            needed_by: PathBuf::from(&self.objects[requester].path),
            via,
            searched: searched.into_iter().map(PathBuf::from).collect(),
        }
    }

    /// For `D/glibc-hwcaps/X/lib`, the baseline `D/lib` when it exists.
    fn baseline(&self, path: &str) -> Option<PathBuf> {
        let (dir, rest) = path.rsplit_once("/glibc-hwcaps/")?;
        let (_, file) = rest.split_once('/')?;
        let base = join(dir, file);
        self.r
            .sysroot
            .open_path(Path::new(&base))
            .map(|_| PathBuf::from(base))
    }

    fn is_musl_reserved(&self, name: &str) -> bool {
        let reserved = name.strip_prefix("lib").is_some_and(|rest| {
            MUSL_RESERVED
                .iter()
                .any(|r| rest.strip_prefix(r).is_some_and(|t| t.starts_with('.')))
        });
        reserved
            || self
                .interp
                .as_deref()
                .is_some_and(|i| i == name || i.rsplit('/').next() == Some(name))
    }

    fn find(&self, requester: usize, name: &str) -> Outcome {
        if name.contains('/') {
            return self.direct(requester, name);
        }
        match self.flavor {
            Flavor::Glibc => self.find_glibc(requester, name),
            Flavor::Musl => self.find_musl(requester, name),
        }
    }

    /// A name with `/` is opened as a path, never searched.
    fn direct(&self, requester: usize, name: &str) -> Outcome {
        let origin = self.objects[requester].origin.as_deref();
        let Some(expanded) = self.expand(name, origin) else {
            return Outcome::Missing(Vec::new());
        };
        if !expanded.starts_with('/') {
            warn!("{name}: relative DT_NEEDED path, opened relative to the current directory");
        }
        let path = self
            .r
            .sysroot
            .absolute(Path::new(&expanded))
            .to_string_lossy()
            .into_owned();
        match self.try_file(&path) {
            Some(c) => Outcome::Found(c, Via::Direct),
            None => Outcome::Missing(vec![parent(&path)]),
        }
    }

    fn find_glibc(&self, requester: usize, name: &str) -> Outcome {
        let mut searched = Vec::new();
        let req = self.objects[requester].elf.clone();
        let Some(req) = req else {
            return Outcome::Missing(searched);
        };
        if req.runpath.is_none() {
            let mut at = Some(requester);
            while let Some(k) = at {
                let o = &self.objects[k];
                if let Some(e) = &o.elf
                    && e.runpath.is_none()
                    && let Some(rpath) = &e.rpath
                    && let Some(f) =
                        self.try_list(rpath, o.origin.as_deref(), name, &mut searched, Via::Rpath)
                {
                    return f;
                }
                at = o.loader;
            }
        }
        if let Some(f) = self.try_dirs(&self.library_path, name, &mut searched, Via::LdLibraryPath)
        {
            return f;
        }
        if let Some(runpath) = &req.runpath {
            let origin = self.objects[requester].origin.as_deref();
            if let Some(f) = self.try_list(runpath, origin, name, &mut searched, Via::Runpath) {
                return f;
            }
        }
        if req.nodeflib {
            return Outcome::Missing(searched);
        }
        if let Some(f) = self.try_default(name, &mut searched) {
            return f;
        }
        Outcome::Missing(searched)
    }

    /// The cache (or, without one, ld.so.conf's directories), then the
    /// interpreter's system directories.
    fn try_default(&self, name: &str, searched: &mut Vec<String>) -> Option<Outcome> {
        match self.r.ld_cache() {
            Some(cache) => {
                let hit = cache.lookup(name, self.cache_id, self.target.data, &self.hwcaps);
                if let Some(c) = hit.and_then(|p| self.try_file(p)) {
                    return Some(Outcome::Found(c, Via::Cache));
                }
            }
            None if self.r.opts.conf_fallback => {
                let conf = self.r.conf_dirs().to_vec();
                if let Some(f) = self.try_dirs(&conf, name, searched, Via::DefaultDir) {
                    return Some(f);
                }
            }
            None => {}
        }
        self.try_dirs(&self.facts.system_dirs, name, searched, Via::DefaultDir)
    }

    fn find_musl(&self, requester: usize, name: &str) -> Outcome {
        let mut searched = Vec::new();
        if let Some(f) = self.try_dirs(&self.library_path, name, &mut searched, Via::LdLibraryPath)
        {
            return f;
        }
        let mut at = Some(requester);
        while let Some(k) = at {
            let o = &self.objects[k];
            if let Some(e) = &o.elf {
                let list = match (&e.runpath, &e.rpath) {
                    (Some(runpath), _) => Some((runpath, Via::Runpath as fn(PathBuf) -> Via)),
                    (None, Some(rpath)) => Some((rpath, Via::Rpath as fn(PathBuf) -> Via)),
                    (None, None) => None,
                };
                if let Some((list, via)) = list
                    && let Some(f) =
                        self.try_list(list, o.origin.as_deref(), name, &mut searched, via)
                {
                    return f;
                }
            }
            at = o.loader;
        }
        let defaults = match &self.facts.musl_path {
            Some(dirs) => dirs.clone(),
            None => MUSL_DEFAULT.iter().map(|d| d.to_string()).collect(),
        };
        self.try_dirs(&defaults, name, &mut searched, Via::DefaultDir)
            .unwrap_or(Outcome::Missing(searched))
    }

    /// Tries each directory of a `:`-separated DT_RPATH/DT_RUNPATH list.
    fn try_list(
        &self,
        list: &str,
        origin: Option<&str>,
        name: &str,
        searched: &mut Vec<String>,
        via: fn(PathBuf) -> Via,
    ) -> Option<Outcome> {
        let dirs: Vec<String> = list
            .split(':')
            .filter_map(|d| self.dir_entry(d, origin))
            .collect();
        self.try_dirs(&dirs, name, searched, via)
    }

    fn try_dirs(
        &self,
        dirs: &[String],
        name: &str,
        searched: &mut Vec<String>,
        via: fn(PathBuf) -> Via,
    ) -> Option<Outcome> {
        dirs.iter().find_map(|dir| {
            searched.push(dir.clone());
            self.try_dir(dir, name)
                .map(|c| Outcome::Found(c, via(PathBuf::from(dir))))
        })
    }

    /// `D/glibc-hwcaps/X`, then the legacy subdirectories, then `D` itself.
    fn try_dir(&self, dir: &str, name: &str) -> Option<Candidate> {
        if !self.r.dir_exists(dir) {
            return None;
        }
        let hwcaps = self.hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}"));
        let legacy = self.legacy.iter().map(|l| l.to_string());
        hwcaps
            .chain(legacy)
            .map(|sub| join(dir, &sub))
            .filter(|sub| self.r.dir_exists(sub))
            .find_map(|sub| self.try_file(&join(&sub, name)))
            .or_else(|| self.try_file(&join(dir, name)))
    }

    /// Opens a candidate; one that fails the loader's checks is skipped.
    fn try_file(&self, path: &str) -> Option<Candidate> {
        let (id, elf) = self.r.candidate_at(path)?;
        if !self.compatible(&elf) {
            debug!("{path}: skipped, not a compatible shared object");
            return None;
        }
        Some(Candidate {
            path: path.to_string(),
            elf,
            id,
        })
    }

    /// glibc's `open_verify`: same class, byte order and machine as the
    /// program, a SYSV or GNU OS ABI, and a shared object.
    fn compatible(&self, elf: &ElfFile) -> bool {
        const ELFOSABI_SYSV: u8 = 0;
        const ELFOSABI_GNU: u8 = 3;
        /// glibc 2.36's LIBC_ABI_MAX: ABI versions above it need a newer libc.
        const LIBC_ABI_MAX: u8 = 4;
        let t = &self.target;
        let abi_ok = match elf.osabi {
            ELFOSABI_SYSV => elf.abiversion == 0,
            ELFOSABI_GNU => elf.abiversion < LIBC_ABI_MAX,
            _ => false,
        };
        elf.class == t.class
            && elf.data == t.data
            && elf.machine == t.machine
            && abi_ok
            && elf.kind == ET_DYN
    }

    /// One entry of a search list, tokens expanded, trailing `/` removed,
    /// made absolute. None when a token cannot be expanded (the loader
    /// drops such entries) or the entry is empty.
    fn dir_entry(&self, raw: &str, origin: Option<&str>) -> Option<String> {
        let expanded = self.expand(raw, origin)?;
        let trimmed = expanded.trim_end_matches('/');
        let dir = match (trimmed.is_empty(), expanded.is_empty()) {
            (_, true) => return None,
            (true, false) => "/",
            (false, _) => trimmed,
        };
        Some(
            self.r
                .sysroot
                .absolute(Path::new(dir))
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// Expands `$ORIGIN`, and for glibc `$LIB` and `$PLATFORM` (also in
    /// `${…}` form). Unknown tokens stay literal.
    fn expand(&self, s: &str, origin: Option<&str>) -> Option<String> {
        let glibc = self.flavor == Flavor::Glibc;
        let mut out = String::new();
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (token, len) = match after.strip_prefix('{') {
                Some(b) => b.find('}').map_or(("", 0), |e| (&b[..e], e + 2)),
                None => {
                    let e = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..e], e)
                }
            };
            let value = match token {
                "ORIGIN" => Some(origin?),
                "LIB" if glibc => Some(self.facts.lib.as_str()),
                "PLATFORM" if glibc => Some(self.platform?),
                _ => None,
            };
            match value {
                Some(v) => {
                    out.push_str(v);
                    rest = &after[len..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Some(out)
    }
}

/// The directory part of an inside path (`/` for a top-level file).
fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
    }
}

/// Whether any string of the file that the loader expands names `$ORIGIN`.
fn uses_origin(elf: &ElfFile) -> bool {
    let strings = elf.rpath.iter().chain(elf.runpath.iter());
    let names = elf.needed.iter().chain(&elf.filters).chain(&elf.auxiliary);
    strings
        .chain(names)
        .any(|s| s.contains("$ORIGIN") || s.contains("${ORIGIN}"))
}
