//! Symbols and symbol versions, judged in the load scopes `judge` built, as glibc binds them with
//! `LD_BIND_NOW` (musl always binds at load time):
//! - every version an object requires of a library (`.gnu.version_r`) must be defined by the
//!   library of that soname in the scope, when that library defines versions at all (glibc's
//!   "version `X' not found", fatal at start-up unless the requirement is weak);
//! - every undefined, non-weak symbol of a program's closure must be defined by some object of
//!   the program's global scope with an acceptable version;
//! - an object no program loads is judged only on what it can know alone: its required versions
//!   and its versioned references, never its unversioned ones (python's extension modules take
//!   `Py*` from the program that loads them);
//! - a musl object in a glibc program, or the reverse, is reported;
//! - musl's loader ignores versions: it binds by name, skipping only hidden definitions, and
//!   requires no version of anyone, so a musl scope is judged that way.
//!
//! A scope that misses a library or its interpreter is not judged here: the missing library is
//! the problem to fix, and everything it defines would show up again as missing symbols.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;

use rayon::prelude::*;

use super::image::{FileId, Image};
use super::{CheckReport, SymbolFinding, SymbolProblem};
use crate::elf::{self, Symbols};
use crate::ldso::Flavor;

/// One load scope to judge: its root object (index into `Image::objects`) and every object it
/// loads, the root included.
pub(super) struct Scope<'a> {
    pub root: usize,
    pub ids: &'a HashSet<FileId>,
    /// A program (its whole global scope is known) rather than an object judged alone.
    pub program: bool,
    /// Loaded by musl's loader.
    pub musl: bool,
}

/// The symbol tables of the image's objects, one per identity, and for each undefined reference
/// the objects whose definition the loader would accept for it (computed once: a library's
/// references are the same in every scope that loads it).
pub(super) struct Tables {
    /// Identity → index of its first name in `Image::objects`.
    pub first: HashMap<FileId, usize>,
    /// By index in `Image::objects` (first names only).
    pub symbols: HashMap<usize, Symbols>,
    accepted_by: HashMap<usize, Accepted>,
}

/// For each reference of one object (in `Symbols::references` order), the objects whose
/// definition the loader accepts for it: `acceptors[ranges[k]]` for glibc's lookup, and
/// `acceptors[by_name[k]]` for musl's (by name alone), when some scope is musl's.
struct Accepted {
    ranges: Vec<Range<usize>>,
    by_name: Vec<Range<usize>>,
    acceptors: Vec<usize>,
}

impl Tables {
    /// Reads every object's symbols; `musl` when some scope binds by name alone.
    pub fn read(image: &Image, musl: bool, warnings: &mut Vec<String>) -> Tables {
        let mut first: HashMap<FileId, usize> = HashMap::new();
        for (i, o) in image.objects.iter().enumerate() {
            first.entry(o.id).or_insert(i);
        }
        let mut unique: Vec<usize> = first.values().copied().collect();
        unique.sort_unstable();
        let read: Vec<_> = unique
            .par_iter()
            .map(|&i| {
                let path = &image.objects[i].path;
                let host = image.root.join(path.strip_prefix("/").unwrap_or(path));
                (
                    i,
                    elf::read_symbols(&host).map_err(|e| format!("{}: {e}", path.display())),
                )
            })
            .collect();
        let mut symbols = HashMap::new();
        for (i, r) in read {
            match r {
                Ok(Some(s)) => {
                    symbols.insert(i, s);
                }
                Ok(None) => {}
                Err(w) => warnings.push(format!("cannot read the symbols of {w}")),
            }
        }
        // Name → the objects defining it, names borrowed from the tables.
        let mut definers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (&i, s) in &symbols {
            let mut last = None;
            for (name, _) in &s.defined {
                if last != Some(name.as_str()) {
                    definers.entry(name.as_str()).or_default().push(i);
                    last = Some(name.as_str());
                }
            }
        }
        let accepted_by = symbols
            .par_iter()
            .map(|(&i, s)| {
                let mut acceptors = Vec::new();
                let mut accept =
                    |name: &str, version: Option<&str>| {
                        let start = acceptors.len();
                        if let Some(ds) = definers.get(name) {
                            acceptors.extend(ds.iter().copied().filter(|d| {
                                symbols.get(d).is_some_and(|t| t.defines(name, version))
                            }));
                        }
                        start..acceptors.len()
                    };
                let ranges: Vec<_> = s
                    .references
                    .iter()
                    .map(|r| {
                        let need = r.need.and_then(|n| s.needs.get(n));
                        accept(&r.name, need.map(|n| n.version.as_str()))
                    })
                    .collect();
                let by_name = match musl {
                    true => s.references.iter().map(|r| accept(&r.name, None)).collect(),
                    false => Vec::new(),
                };
                (
                    i,
                    Accepted {
                        ranges,
                        by_name,
                        acceptors,
                    },
                )
            })
            .collect();
        Tables {
            first,
            symbols,
            accepted_by,
        }
    }
}

/// What one scope found, keyed for merging: (object needing, finding).
type Found = Vec<((usize, SymbolFinding), PathBuf)>;

/// Judges every scope and adds what it finds to the report, one problem per (object, finding)
/// with every scope it was found in.
pub(super) fn judge(image: &Image, tables: &Tables, scopes: &[Scope], report: &mut CheckReport) {
    let found: Vec<(Found, usize, bool)> = scopes
        .par_iter()
        .map(|s| {
            let (found, checked) = judge_scope(image, tables, s);
            (found, checked, !s.program)
        })
        .collect();
    let mut merged: BTreeMap<(usize, SymbolFinding, bool), SymbolProblem> = BTreeMap::new();
    for (problems, checked, alone) in found {
        report.symbol_references += checked;
        for ((object, finding), scope) in problems {
            let entry = merged
                .entry((object, finding.clone(), alone))
                .or_insert_with(|| SymbolProblem {
                    needed_by: image.objects[object].path.clone(),
                    finding,
                    scopes: Vec::new(),
                    alone,
                });
            if !entry.scopes.contains(&scope) {
                entry.scopes.push(scope);
            }
        }
    }
    report.symbols = merged.into_values().collect();
}

/// The problems of one scope, and how many references it judged.
fn judge_scope(image: &Image, tables: &Tables, scope: &Scope) -> (Found, usize) {
    let objects = &image.objects;
    let root_path = &objects[scope.root].path;
    let mut members: Vec<usize> = scope
        .ids
        .iter()
        .filter_map(|id| tables.first.get(id).copied())
        .collect();
    members.sort_unstable();
    let mut in_scope = vec![false; objects.len()];
    for &i in &members {
        in_scope[i] = true;
    }
    let mut found: Found = Vec::new();
    let mut checked = 0;
    if scope.program
        && let Some(interp) = &objects[scope.root].elf.interp
    {
        let program = Flavor::of_interp(interp);
        for &i in &members {
            if let Some(f) = Flavor::of_object(&objects[i].elf).filter(|f| *f != program) {
                let finding = SymbolFinding::ForeignLibc {
                    object: flavor_name(f).to_string(),
                    program: flavor_name(program).to_string(),
                };
                found.push(((i, finding), root_path.clone()));
            }
        }
    }
    // Each loaded library under the names its dependents use for it: its soname, and the
    // name of the file it was loaded from.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for &i in &members {
        let o = &objects[i];
        if let Some(s) = &o.elf.soname {
            by_name.entry(s.as_str()).or_insert(i);
        }
        if let Some(n) = o.path.file_name().and_then(|n| n.to_str()) {
            by_name.entry(n).or_insert(i);
        }
    }
    for &i in &members {
        let (Some(syms), Some(accepted)) = (tables.symbols.get(&i), tables.accepted_by.get(&i))
        else {
            continue;
        };
        let mut missing_versions: HashSet<usize> = HashSet::new();
        let required = syms
            .needs
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.weak && !scope.musl);
        for (n, need) in required {
            let Some(&lib) = by_name.get(need.file.as_str()) else {
                continue;
            };
            let Some(defs) = tables.symbols.get(&lib) else {
                continue;
            };
            if defs.has_version_table && !defs.defines_version(&need.version) {
                missing_versions.insert(n);
                let finding = SymbolFinding::Version {
                    version: need.version.clone(),
                    library: need.file.clone(),
                    provider: objects[lib].path.clone(),
                };
                found.push(((i, finding), root_path.clone()));
            }
        }
        let ranges = if scope.musl {
            &accepted.by_name
        } else {
            &accepted.ranges
        };
        for (r, range) in syms.references.iter().zip(ranges) {
            // Alone, only a versioned reference is the object's own to satisfy.
            if !scope.program && r.need.is_none() {
                continue;
            }
            if r.need.is_some_and(|n| missing_versions.contains(&n)) {
                continue;
            }
            checked += 1;
            let defined = accepted
                .acceptors
                .get(range.clone())
                .is_some_and(|ds| ds.iter().any(|&d| in_scope[d]));
            if !defined {
                let need = r.need.and_then(|n| syms.needs.get(n));
                let finding = SymbolFinding::Symbol {
                    name: r.name.clone(),
                    version: need.map(|n| n.version.clone()),
                    library: need.map(|n| n.file.clone()),
                };
                found.push(((i, finding), root_path.clone()));
            }
        }
    }
    (found, checked)
}

fn flavor_name(f: Flavor) -> &'static str {
    match f {
        Flavor::Glibc => "glibc",
        Flavor::Musl => "musl",
    }
}
