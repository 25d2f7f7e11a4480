//! Judging an image as its loaders will see it: first each program's whole
//! closure (its load scope), then each object no program loads, alone.
//!
//! A library that a program loads is judged only in that program's scope:
//! its RPATH chain and the objects already loaded there decide, so a
//! library found through its program's RUNPATH (systemd's
//! `libsystemd-core`) is complete although it would not resolve alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image::{FileId, Image, Object};
use super::implied;
use super::symbols::{self, Scope};
use super::{CheckOptions, CheckReport, LoadedFirst, MissingLibrary, ObjectVerdict, Role};
use crate::deps::LoaderConfig;
use crate::elf::{Class, ET_DYN, ET_EXEC, ElfFile};
use crate::instance::config::OcclumConfig;
use crate::ldso::{Dep, Flavor, LoaderSpec, Resolver, ResolverOptions, Via};

/// Directories that hold a whole system rather than one installed tree:
/// the walk up from an object to its tree stops before them.
const SYSTEM_PREFIXES: [&str; 3] = ["/", "/usr", "/usr/local"];

/// One root's closure as its loader would load it inside the image.
struct Closure {
    /// Index in `Image::objects`.
    root: usize,
    role: Role,
    interp: Option<String>,
    interp_missing: bool,
    /// Every object loaded, the root included.
    ids: HashSet<FileId>,
    /// Libraries not found (first requester, where searched).
    missing: Vec<Dep>,
    /// The root could not be resolved at all.
    error: Option<String>,
}

impl Closure {
    fn missing_names(&self) -> HashSet<&str> {
        self.missing.iter().map(|d| d.name.as_str()).collect()
    }
}

/// The role of an object before any resolution: a program has PT_INTERP;
/// a static program (static, or static-pie: ET_DYN with DF_1_PIE and no
/// PT_INTERP) needs nothing; anything else is a library.
fn role_of(elf: &ElfFile) -> Role {
    match (&elf.interp, elf.kind) {
        (Some(_), _) => Role::Program,
        (None, ET_EXEC) => Role::StaticProgram,
        (None, ET_DYN) if elf.pie => Role::StaticProgram,
        (None, _) => Role::Library,
    }
}

/// Judges every object of `image` and fills the report.
pub(super) fn judge(
    image: &Image,
    config: &LoaderConfig,
    options: &CheckOptions,
    instance: Option<&OcclumConfig>,
    report: &mut CheckReport,
) {
    let resolver = Resolver::new(ResolverOptions {
        sysroot: image.root.clone(),
        // An Occlum instance's programs run with its env.default, LD_LIBRARY_PATH included.
        library_path: instance.map(|c| c.library_path.clone()).unwrap_or_default(),
        use_cache: true,
        // At run time glibc reads only the cache, never ld.so.conf.
        conf_without_cache: false,
        ..ResolverOptions::default()
    });
    let objects = &image.objects;
    let mut roles: Vec<Role> = objects.iter().map(|o| role_of(&o.elf)).collect();
    let programs: Vec<usize> = (0..objects.len())
        .filter(|&i| roles[i] == Role::Program)
        .collect();
    let all_programs: Vec<Closure> = programs
        .par_iter()
        .map(|&i| {
            let interp = objects[i].elf.interp.clone();
            let spec = interp.as_deref().map(|i| spec_in_image(i, config));
            closure(image, &resolver, i, Role::Program, spec)
        })
        .collect();
    let (program_closures, demoted) = demote_runnable_libraries(objects, all_programs);
    for i in demoted {
        roles[i] = Role::Library;
    }
    // Every object some program loads.
    let in_programs: HashSet<FileId> = program_closures
        .iter()
        .flat_map(|c| c.ids.iter().copied())
        .collect();
    let agreed = agreed_interps(objects, &program_closures);
    let lone: Vec<usize> = (0..objects.len())
        .filter(|&i| roles[i] == Role::Library && !in_programs.contains(&objects[i].id))
        .collect();
    let lone_closures: Vec<Closure> = lone
        .par_iter()
        .map(|&i| {
            let interp = inferred_interp(&objects[i].elf, &agreed);
            let spec = interp.as_deref().map(|i| spec_in_image(i, config));
            closure(image, &resolver, i, Role::Alone, spec)
        })
        .collect();

    let mut missing: BTreeMap<(String, PathBuf, bool), MissingLibrary> = BTreeMap::new();
    let mut failing_needers: HashSet<FileId> = HashSet::new();
    for c in &program_closures {
        let program = &objects[c.root].path;
        if c.interp_missing {
            let interp = c.interp.clone().unwrap_or_default();
            report.missing_interpreters.push((program.clone(), interp));
        }
        for d in &c.missing {
            if let Some(y) = image.id_of(&d.needed_by) {
                failing_needers.insert(y);
            }
            record(&mut missing, d, program, false);
        }
    }

    let judge_alone = Alone {
        image,
        closures: &lone_closures,
        in_programs: &in_programs,
        by_id: lone_by_id(&lone_closures),
        missing_names: lone_closures.iter().map(Closure::missing_names).collect(),
    };
    let mut loaded_first: BTreeMap<(String, PathBuf), LoadedFirst> = BTreeMap::new();
    let mut lone_complete = vec![true; lone_closures.len()];
    let mut verdicts: HashMap<(String, PathBuf), Verdict> = HashMap::new();
    for (k, c) in lone_closures.iter().enumerate() {
        for d in &c.missing {
            let verdict = verdicts
                .entry((d.name.clone(), d.needed_by.clone()))
                .or_insert_with(|| judge_alone.verdict(d))
                .clone();
            match verdict {
                Verdict::Satisfied => {}
                Verdict::LoadedFirst { tree, provider } => {
                    let entry = loaded_first
                        .entry((d.name.clone(), provider.clone()))
                        .or_insert_with(|| LoadedFirst {
                            name: d.name.clone(),
                            provider,
                            tree,
                            needed_by: Vec::new(),
                        });
                    if !entry.needed_by.contains(&d.needed_by) {
                        entry.needed_by.push(d.needed_by.clone());
                    }
                }
                Verdict::Missing => {
                    lone_complete[k] = false;
                    record(&mut missing, d, &objects[c.root].path, true);
                }
            }
        }
    }

    // Symbols are judged in the scopes that load all their libraries.
    let whole = |c: &&Closure| c.missing.is_empty() && !c.interp_missing && c.error.is_none();
    let scopes: Vec<Scope> = program_closures
        .iter()
        .filter(whole)
        .map(|c| Scope {
            root: c.root,
            ids: &c.ids,
            program: true,
            musl: loaded_by_musl(c),
        })
        .chain(lone_closures.iter().filter(whole).map(|c| Scope {
            root: c.root,
            ids: &c.ids,
            program: false,
            musl: loaded_by_musl(c),
        }))
        .collect();
    if options.symbols {
        let musl = scopes.iter().any(|s| s.musl);
        let warnings = &mut report.warnings;
        let (tables, providers) = rayon::join(
            || symbols::Tables::read(image, musl, warnings),
            || implied::read_providers(image, &scopes),
        );
        symbols::judge(image, &tables, &scopes, report);
        let tz = instance.and_then(|c| c.tz.as_deref());
        implied::judge(image, &tables, &scopes, &providers, tz, report);
    }

    for c in program_closures.iter().chain(&lone_closures) {
        if let Some(e) = &c.error {
            report.warnings.push(e.clone());
        }
    }
    report.missing = missing.into_values().collect();
    report.loaded_first = loaded_first.into_values().collect();
    report.objects = verdicts_of(
        objects,
        &roles,
        &program_closures,
        &lone_closures,
        &lone_complete,
        &failing_needers,
    );
    // An object with a symbol problem does not load, nor do the programs it was found in.
    let failing: HashSet<&Path> = report
        .symbols
        .iter()
        .flat_map(|p| p.scopes.iter().chain([&p.needed_by]).map(PathBuf::as_path))
        .collect();
    for v in &mut report.objects {
        if failing.contains(v.path.as_path()) {
            v.complete = false;
        }
    }
}

/// Whether a closure is loaded by musl's loader (which binds symbols by name only).
fn loaded_by_musl(c: &Closure) -> bool {
    c.interp
        .as_deref()
        .is_some_and(|i| Flavor::of_interp(i) == Flavor::Musl)
}

/// A shared library with PT_INTERP (glibc's `libc.so.6`, `libcap.so.2`)
/// is a program only for whoever runs it by hand: when another program
/// loads it, it is that program's library, judged in its scope (its own
/// closure as a program lacks the RPATH it inherits there). Returns the
/// closures that stay programs, and the objects demoted to libraries.
fn demote_runnable_libraries(
    objects: &[Object],
    closures: Vec<Closure>,
) -> (Vec<Closure>, Vec<usize>) {
    let loaded_by_other = |c: &Closure| {
        let id = objects[c.root].id;
        closures
            .iter()
            .any(|o| o.root != c.root && objects[o.root].id != id && o.ids.contains(&id))
    };
    let demote: Vec<bool> = closures
        .iter()
        .map(|c| {
            let elf = &objects[c.root].elf;
            elf.kind == ET_DYN && elf.soname.is_some() && loaded_by_other(c)
        })
        .collect();
    let mut kept = Vec::new();
    let mut demoted = Vec::new();
    for (c, d) in closures.into_iter().zip(demote) {
        if d {
            demoted.push(c.root);
        } else {
            kept.push(c);
        }
    }
    (kept, demoted)
}

/// Adds a missing library to the report, once per (name, needer, judged
/// alone or not), listing every scope it was missing in.
fn record(
    missing: &mut BTreeMap<(String, PathBuf, bool), MissingLibrary>,
    d: &Dep,
    scope: &Path,
    alone: bool,
) {
    let entry = missing
        .entry((d.name.clone(), d.needed_by.clone(), alone))
        .or_insert_with(|| MissingLibrary {
            name: d.name.clone(),
            needed_by: d.needed_by.clone(),
            scopes: Vec::new(),
            alone,
            searched: d.searched.clone(),
            dangling_link: None,
        });
    if !entry.scopes.iter().any(|s| s == scope) {
        entry.scopes.push(scope.to_path_buf());
    }
}

/// One line per ELF object: its role and whether it will load.
fn verdicts_of(
    objects: &[Object],
    roles: &[Role],
    programs: &[Closure],
    lone: &[Closure],
    lone_complete: &[bool],
    failing_needers: &HashSet<FileId>,
) -> Vec<ObjectVerdict> {
    let mut by_root: HashMap<usize, (&Closure, bool)> = HashMap::new();
    for c in programs {
        let ok = !c.interp_missing && c.missing.is_empty() && c.error.is_none();
        by_root.insert(c.root, (c, ok));
    }
    for (c, ok) in lone.iter().zip(lone_complete) {
        by_root.insert(c.root, (c, *ok && c.error.is_none()));
    }
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let (role, interp, complete) = match (roles[i], by_root.get(&i)) {
                (_, Some((c, ok))) => (c.role, c.interp.clone(), *ok),
                (Role::StaticProgram, None) => (Role::StaticProgram, None, true),
                // A library some program loads: complete when no program
                // misses a library it needs.
                (_, None) => (Role::Library, None, !failing_needers.contains(&o.id)),
            };
            ObjectVerdict {
                path: o.path.clone(),
                role,
                interp,
                complete,
            }
        })
        .collect()
}

/// Resolves one root's closure in the image.
fn closure(
    image: &Image,
    resolver: &Resolver,
    root: usize,
    role: Role,
    spec: Option<LoaderSpec>,
) -> Closure {
    let obj = &image.objects[root];
    let mut c = Closure {
        root,
        role,
        interp: spec.as_ref().map(|s| s.interp.clone()),
        interp_missing: false,
        ids: HashSet::from([obj.id]),
        missing: Vec::new(),
        error: None,
    };
    let res = match resolver.resolve(&obj.path, spec.as_ref()) {
        Ok(res) => res,
        Err(e) => {
            c.error = Some(e.to_string());
            return c;
        }
    };
    if c.interp.is_none() {
        c.interp = res.interp.clone();
    }
    let mut saw_loader = false;
    for d in res.libs {
        match (&d.path, &d.via) {
            (Some(p), via) => {
                saw_loader |= *via == Via::Loader;
                if let Some(id) = image.id_of(p) {
                    c.ids.insert(id);
                }
            }
            (None, Via::Loader) => {
                saw_loader = true;
                c.interp_missing = true;
            }
            (None, _) => c.missing.push(d),
        }
    }
    if role == Role::Program {
        // A program without PT_DYNAMIC still needs its interpreter.
        if !saw_loader && let Some(i) = &obj.elf.interp {
            c.interp_missing = image.id_of(Path::new(i)).is_none();
        }
        // Without its interpreter nothing is searched (and the directories
        // compiled into it are unknown): the one true problem is the
        // interpreter. For musl it is also libc.
        if c.interp_missing {
            c.missing.clear();
        }
    } else {
        // An object no program loads is loaded by whatever program
        // dlopens it, with that program's loader: not its own to miss.
        c.interp_missing = false;
    }
    c
}

/// Inside the image the interpreter path already holds the (Occlum) loader,
/// and the libraries copy_bom found in the configured lib dirs sit beside it
/// (`dirname(O)`, the Occlum loader's own library dir): that is searched first.
fn spec_in_image(interp: &str, config: &LoaderConfig) -> LoaderSpec {
    LoaderSpec {
        interp: interp.to_string(),
        flavor: Flavor::of_interp(interp),
        library_path: config
            .for_interp(interp)
            .map(|c| vec![c.image_lib_dir().to_string_lossy().into_owned()]),
    }
}

type LoaderKey = (Class, u16, Flavor);

/// For each class, machine and loader flavor, the interpreter most of the
/// image's programs name (ties: the first by name).
fn agreed_interps(objects: &[Object], programs: &[Closure]) -> HashMap<LoaderKey, String> {
    let mut counts: HashMap<LoaderKey, BTreeMap<&str, usize>> = HashMap::new();
    for c in programs {
        let elf = &objects[c.root].elf;
        if let Some(i) = &elf.interp {
            let key = (elf.class, elf.machine, Flavor::of_interp(i));
            *counts.entry(key).or_default().entry(i).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter_map(|(key, by_interp)| {
            // Strictly more wins, so among equals the first by name stays.
            let mut best: Option<(&str, usize)> = None;
            for (i, n) in by_interp {
                if best.is_none_or(|(_, m)| n > m) {
                    best = Some((i, n));
                }
            }
            best.map(|(i, _)| (key, i.to_string()))
        })
        .collect()
}

/// musl's libc is `libc.so`, glibc's `libc.so.6`: an object that needs the
/// first and not the second was linked against musl.
fn is_musl(elf: &ElfFile) -> bool {
    elf.needed.iter().any(|n| n == "libc.so") && !elf.needed.iter().any(|n| n == "libc.so.6")
}

/// The loader an object no program loads would be loaded by: the one the
/// image's programs agree on for its flavor, class and machine; for musl
/// objects without a musl program, musl's standard path. None leaves the
/// choice to the resolver (glibc's standard interpreter for the machine).
fn inferred_interp(elf: &ElfFile, agreed: &HashMap<LoaderKey, String>) -> Option<String> {
    let flavor = if is_musl(elf) {
        Flavor::Musl
    } else {
        Flavor::Glibc
    };
    if let Some(i) = agreed.get(&(elf.class, elf.machine, flavor)) {
        return Some(i.clone());
    }
    match flavor {
        Flavor::Musl => musl_arch(elf).map(|a| format!("/lib/ld-musl-{a}.so.1")),
        Flavor::Glibc => None,
    }
}

/// musl's name for the machine (the `$ARCH` of `ld-musl-$ARCH.so.1`).
fn musl_arch(elf: &ElfFile) -> Option<&'static str> {
    const EM_386: u16 = 3;
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    const EM_RISCV: u16 = 243;
    match (elf.machine, elf.class) {
        (EM_X86_64, Class::Elf64) => Some("x86_64"),
        (EM_386, Class::Elf32) => Some("i386"),
        (EM_AARCH64, Class::Elf64) => Some("aarch64"),
        (EM_RISCV, Class::Elf64) => Some("riscv64"),
        _ => None,
    }
}

fn lone_by_id(closures: &[Closure]) -> HashMap<FileId, Vec<usize>> {
    let mut by_id: HashMap<FileId, Vec<usize>> = HashMap::new();
    for (k, c) in closures.iter().enumerate() {
        for id in &c.ids {
            by_id.entry(*id).or_default().push(k);
        }
    }
    by_id
}

/// What a library missing from an alone closure means.
#[derive(Debug, Clone)]
enum Verdict {
    /// Its requester loads fine in some scope: a program's, or another
    /// alone object's that loads it.
    Satisfied,
    /// Not on the search path, but in the requester's installed tree under
    /// that exact name: the tree's program loads it first (the JDK launcher
    /// loads `lib/server/libjvm.so` before any `lib/*.so` that needs it).
    LoadedFirst {
        tree: PathBuf,
        provider: PathBuf,
    },
    Missing,
}

/// The context for judging objects no program loads.
struct Alone<'a> {
    image: &'a Image,
    closures: &'a [Closure],
    in_programs: &'a HashSet<FileId>,
    /// Identity → alone closures that load it.
    by_id: HashMap<FileId, Vec<usize>>,
    missing_names: Vec<HashSet<&'a str>>,
}

impl Alone<'_> {
    fn verdict(&self, d: &Dep) -> Verdict {
        let Some(y) = self.image.id_of(&d.needed_by) else {
            return Verdict::Missing;
        };
        // Judged in the scopes of the programs that load it, never alone.
        if self.in_programs.contains(&y) {
            return Verdict::Satisfied;
        }
        let found_somewhere = self.by_id.get(&y).is_some_and(|ks| {
            ks.iter().any(|&k| {
                self.closures[k].error.is_none() && !self.missing_names[k].contains(d.name.as_str())
            })
        });
        if found_somewhere {
            return Verdict::Satisfied;
        }
        match self.in_tree(y, &d.name) {
            Some((tree, provider)) => Verdict::LoadedFirst { tree, provider },
            None => Verdict::Missing,
        }
    }

    /// A shared object named `name`, of the requester's class and machine,
    /// inside the installed tree of any of the requester's names.
    fn in_tree(&self, y: FileId, name: &str) -> Option<(PathBuf, PathBuf)> {
        let needer = self.image.object(y)?;
        let named = self.image.named(name);
        self.image.names_of(y).find_map(|path| {
            let tree = tree_of(self.image, path)?;
            named
                .iter()
                .find(|(p, o)| {
                    p.starts_with(&tree)
                        && o.id != y
                        && o.elf.kind == ET_DYN
                        && o.elf.class == needer.elf.class
                        && o.elf.machine == needer.elf.machine
                })
                .map(|(p, _)| (tree, p.clone()))
        })
    }
}

/// The installed tree an object belongs to: the nearest directory, from
/// the object's own upwards, that holds a `bin/` or `lib/` directory
/// (a JDK's home, a conda or `/opt/app` prefix), stopping before the system
/// prefixes `/`, `/usr` and `/usr/local`, which hold everything. Python's
/// `lib-dynload` under `/usr/lib/python3.x` thus belongs to no tree: its
/// modules need only system libraries, and a missing one is a true warning.
fn tree_of(image: &Image, path: &Path) -> Option<PathBuf> {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if SYSTEM_PREFIXES.iter().any(|s| d == Path::new(s)) {
            return None;
        }
        if image.is_dir(&d.join("bin")) || image.is_dir(&d.join("lib")) {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}
