//! One resolution: the loader's breadth-first walk over DT_NEEDED and the
//! per-name search order of glibc (`_dl_map_object`) and musl
//! (`load_library`), as LOADER.md states them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, warn};

use super::loader::LoaderFacts;
use super::resolver::{Probe, Resolver, join};
use super::{Dep, FileId, Flavor, Resolution, Via, machine};
use crate::elf::{ET_DYN, ET_EXEC, ElfFile, Endian, Priority};

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
    /// The loader stopped at `file`, which it cannot load (see [`Via::Unusable`]).
    Unusable {
        file: String,
        reason: String,
        searched: Vec<String>,
    },
}

/// What one candidate path gives: `None` (nothing there, or a file the
/// loader skips) lets the search go on; an error stops it.
type Tried = Option<Result<Candidate, (String, String)>>;

pub(crate) struct Search<'r> {
    r: &'r Resolver,
    target: Arc<ElfFile>,
    interp: Option<String>,
    flavor: Flavor,
    facts: Arc<LoaderFacts>,
    library_path: Vec<String>,
    hwcaps: Vec<&'static str>,
    legacy: Vec<String>,
    platform: Option<String>,
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
        let cpu = &r.cpu;
        // glibc-hwcaps came with 2.33, the legacy subdirectories went with
        // 2.37; an unknown version (no readable ld.so) gets both, as 2.36.
        let version = facts.glibc_version;
        let hwcaps = glibc && version.is_none_or(|v| v >= (2, 33));
        let legacy = glibc && version.is_none_or(|v| v <= (2, 36));
        let mut s = Search {
            r,
            interp,
            flavor,
            library_path: Vec::new(),
            hwcaps: if hwcaps {
                machine::supported_hwcaps(&main, cpu)
            } else {
                Vec::new()
            },
            legacy: if legacy {
                machine::legacy_subdirs(&main, cpu)
            } else {
                Vec::new()
            },
            platform: if glibc {
                machine::platform(&main, cpu)
            } else {
                None
            },
            facts,
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
        // A program the kernel runs (it has PT_INTERP) takes `$ORIGIN` from
        // its real path, symlinks resolved: glibc and musl both read
        // /proc/self/exe. An object without PT_INTERP is analysed as the
        // library it is, whose `$ORIGIN` is the directory as found. Resolving
        // costs a readlink per component, so only when `$ORIGIN` is used.
        let origin = (main.interp.is_some() && uses_origin(&main))
            .then(|| self.r.sysroot.canonical(file))
            .flatten()
            .map_or_else(|| parent(&path), |c| parent(&c.to_string_lossy()));
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
                let wanted = self.r.opts.dlopen;
                for d in elf
                    .dlopen
                    .iter()
                    .filter(|d| wanted.is_some_and(|w| d.priority <= w))
                {
                    self.request_any(i, &d.sonames, d.priority);
                }
            }
            i += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Resolution {
        if let Some(interp) = &self.interp {
            let found = self.facts.id.is_some();
            self.deps.push(Dep {
                name: interp.clone(),
                path: found.then(|| PathBuf::from(interp)),
                host: found.then(|| self.host(interp)).flatten(),
                needed_by: PathBuf::from(&self.objects[0].path),
                via: Via::Loader,
                searched: Vec::new(),
                baseline: None,
                dlopen: None,
            });
        }
        Resolution {
            interp: self.interp,
            libs: self.deps,
        }
    }

    /// A `.note.dlopen` entry: the first of its sonames that is loaded or found; when none is,
    /// the first is missing.
    fn request_any(&mut self, requester: usize, names: &[String], priority: Priority) {
        let loaded =
            |s: &Self, name: &str| s.objects.iter().any(|o| o.names.iter().any(|n| n == name));
        if names.iter().any(|n| loaded(self, n)) {
            return;
        }
        let before = self.deps.len();
        let found = names
            .iter()
            .find_map(|name| match self.find(requester, name) {
                Outcome::Found(c, via) => Some((name, c, via)),
                _ => None,
            });
        match found {
            Some((name, c, via)) => self.add(requester, name, c, via),
            None => match names.first() {
                Some(first) => self.request(requester, first, false),
                None => return,
            },
        }
        for d in self.deps.iter_mut().skip(before) {
            d.dlopen = Some(priority);
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
        let (via, searched) = match self.find(requester, name) {
            Outcome::Found(c, via) => return self.add(requester, name, c, via),
            // An optional (DT_AUXILIARY) filtee that fails is ignored.
            Outcome::Missing(_) | Outcome::Unusable { .. } if optional => return,
            Outcome::Missing(searched) => (Via::NotFound, searched),
            Outcome::Unusable {
                file,
                reason,
                searched,
            } => (
                Via::Unusable {
                    file: PathBuf::from(file),
                    reason,
                },
                searched,
            ),
        };
        // A stand-in object, so that later requests of the name do not
        // search again (the loader would have stopped or failed here).
        let dep = self.dep(requester, name, None, via, searched);
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
            host: path.as_deref().and_then(|p| self.host(p)),
            path: path.map(PathBuf::from),
            needed_by: PathBuf::from(&self.objects[requester].path),
            via,
            searched: searched.into_iter().map(PathBuf::from).collect(),
            dlopen: None,
        }
    }

    /// The host path to read for an inside path ([`Dep::host`]).
    fn host(&self, path: &str) -> Option<PathBuf> {
        // Only asked for paths the search found: no need to stat them again.
        self.r.sysroot.candidate_path(Path::new(path))
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
        let searched = vec![parent(&path)];
        outcome(self.try_file(&path), Via::Direct, searched)
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
                if let Some(tried) = hit.and_then(|p| self.try_file(p)) {
                    return Some(outcome(Some(tried), Via::Cache, searched.clone()));
                }
            }
            None => {
                let conf = self.r.conf_dirs().to_vec();
                if let Some(f) = self.try_dirs(&conf, name, searched, Via::DefaultDir) {
                    return Some(f);
                }
            }
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
                    && musl_expands(list)
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
            let tried = self.try_dir(dir, name)?;
            Some(outcome(
                Some(tried),
                via(PathBuf::from(dir)),
                searched.clone(),
            ))
        })
    }

    /// `D/glibc-hwcaps/X`, then the legacy subdirectories, then `D` itself.
    fn try_dir(&self, dir: &str, name: &str) -> Tried {
        if !self.r.dir_exists(dir) {
            return None;
        }
        let hwcaps = self.hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}"));
        let legacy = self.legacy.iter().cloned();
        hwcaps
            .chain(legacy)
            .map(|sub| join(dir, &sub))
            .filter(|sub| self.r.dir_exists(sub))
            .find_map(|sub| self.try_file(&join(&sub, name)))
            .or_else(|| self.try_file(&join(dir, name)))
    }

    /// Opens a candidate as the loader does: nothing there, or a file the
    /// loader passes over, lets the search go on; a file it cannot load
    /// stops it with the loader's reason.
    fn try_file(&self, path: &str) -> Tried {
        let verdict = match self.r.candidate_at(path) {
            Probe::Absent => return None,
            Probe::Bad(why) => Err(match self.flavor {
                Flavor::Glibc => why,
                // musl reports the errno of its failed read or map.
                Flavor::Musl if why.ends_with("Is a directory") => "Is a directory".into(),
                Flavor::Musl => "Exec format error".into(),
            }),
            Probe::Elf((id, elf)) => match self.verify(&elf) {
                Verdict::Load => Ok(Candidate {
                    path: path.to_string(),
                    elf,
                    id,
                }),
                Verdict::Skip => {
                    debug!("{path}: skipped, built for another machine or class");
                    return None;
                }
                Verdict::Refuse(why) => Err(why),
            },
        };
        Some(verdict.map_err(|why| (path.to_string(), why)))
    }

    /// What the loader does with an ELF candidate. glibc (`open_verify`,
    /// `_dl_map_object_from_fd`) passes over an object of another class or
    /// machine (other ABIs share directories) and refuses, stopping there,
    /// one of the other byte order, OS ABI or ABI version, or one that is
    /// not a shared library (an executable, a PIE, a relocatable file).
    /// musl takes the first file that opens: anything it cannot map is an
    /// error ("Exec format error"), an executable it maps anyway.
    fn verify(&self, elf: &ElfFile) -> Verdict {
        const ELFOSABI_SYSV: u8 = 0;
        const ELFOSABI_GNU: u8 = 3;
        /// glibc 2.36's LIBC_ABI_MAX: ABI versions above it need a newer libc.
        const LIBC_ABI_MAX: u8 = 4;
        let t = &self.target;
        if self.flavor == Flavor::Musl {
            let same_abi = elf.class == t.class && elf.data == t.data && elf.machine == t.machine;
            return if same_abi && (elf.kind == ET_DYN || elf.kind == ET_EXEC) {
                Verdict::Load
            } else {
                Verdict::Refuse("Exec format error".into())
            };
        }
        if elf.class != t.class {
            return Verdict::Skip;
        }
        if elf.data != t.data {
            let order = match t.data {
                Endian::Little => "little",
                Endian::Big => "big",
            };
            return Verdict::Refuse(format!("ELF file data encoding not {order}-endian"));
        }
        match elf.osabi {
            ELFOSABI_SYSV if elf.abiversion != 0 => {
                return Verdict::Refuse("ELF file ABI version invalid".into());
            }
            ELFOSABI_GNU if elf.abiversion >= LIBC_ABI_MAX => {
                return Verdict::Refuse("ELF file ABI version invalid".into());
            }
            ELFOSABI_SYSV | ELFOSABI_GNU => {}
            _ => return Verdict::Refuse("ELF file OS ABI invalid".into()),
        }
        if elf.machine != t.machine {
            return Verdict::Skip;
        }
        match elf.kind {
            ET_DYN if elf.pie => {
                Verdict::Refuse("cannot dynamically load position-independent executable".into())
            }
            ET_DYN => Verdict::Load,
            ET_EXEC => Verdict::Refuse("cannot dynamically load executable".into()),
            _ => Verdict::Refuse("only ET_DYN and ET_EXEC can be loaded".into()),
        }
    }

    /// One entry of a search list, tokens expanded, trailing `/` removed,
    /// made absolute. None when a token cannot be expanded (the loader
    /// drops such entries) or the entry is empty.
    ///
    /// An empty entry (`-rpath :/x`) is the current directory to both
    /// loaders, kept like any relative entry: on the host it is the current
    /// directory of this process, as for `ldd` run here; in a sysroot or
    /// image it is `/`, because the program's working directory there is
    /// unknown when the image is built and `/` is where Occlum (and a
    /// chroot) starts it, not the host's directory.
    fn dir_entry(&self, raw: &str, origin: Option<&str>) -> Option<String> {
        let expanded = self.expand(raw, origin)?;
        let trimmed = expanded.trim_end_matches('/');
        let dir = match (trimmed.is_empty(), expanded.is_empty()) {
            (_, true) => "",
            (true, false) => "/",
            (false, _) => trimmed,
        };
        let abs = self.r.sysroot.absolute(Path::new(dir));
        let abs = abs.to_string_lossy();
        let abs = abs.trim_end_matches('/');
        Some(if abs.is_empty() { "/" } else { abs }.to_string())
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
                "PLATFORM" if glibc => Some(self.platform.as_deref()?),
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

/// What the loader does with an ELF candidate ([`Search::verify`]).
enum Verdict {
    Load,
    Skip,
    Refuse(String),
}

/// The outcome of a search step that tried a candidate.
fn outcome(tried: Tried, via: Via, searched: Vec<String>) -> Outcome {
    match tried {
        Some(Ok(c)) => Outcome::Found(c, via),
        Some(Err((file, reason))) => Outcome::Unusable {
            file,
            reason,
            searched,
        },
        None => Outcome::Missing(searched),
    }
}

/// musl expands only `$ORIGIN` (`${ORIGIN}`) in a path list and ignores a
/// whole list naming any other `$` token (`fixup_rpath`).
fn musl_expands(list: &str) -> bool {
    list.match_indices('$')
        .all(|(i, _)| list[i..].starts_with("$ORIGIN") || list[i..].starts_with("${ORIGIN}"))
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
