//! Where each library lands in the image, judged in the image being built.
//!
//! A library the host (or sysroot) has goes where the image's loader will look for it:
//! - the interpreter goes to the path the program's PT_INTERP names;
//! - a library found through an `$ORIGIN` entry of an object goes where that entry points from
//!   the object's *destination* (a program listed into `/bin` with RPATH `$ORIGIN/../lib` gets
//!   `/lib/libfoo.so`, whatever the host layout);
//! - a library found in a configured Occlum loader's lib dirs goes beside that loader (A§4.4);
//! - any other keeps its path.
//!
//! A library the host does not have is still satisfied when the boms place a file of that name
//! where the image's loader will search for the object that needs it, or in the same copied tree
//! (a plugin whose program loads the library first).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{LibraryReport, Loader, Missing, Provided, Subject, host_of, inside_of};
use crate::deps::LoaderConfig;
use crate::elf::{self, ET_EXEC};
use crate::fs::{EntryKind, ImagePath};
use crate::ldso::{self, Dep, Flavor, LoaderSpec, Resolution, Via};
use crate::plan::image::{ImageMap, NodeKind};
use crate::plan::{Op, Plan, PlannedOp};

/// An object of a closure whose place in the image is known.
#[derive(Debug, Clone)]
struct Placed {
    /// Its directory as the loader sees it (for `$ORIGIN`), normalised.
    dir: ImagePath,
    /// Its directory in the image.
    dest_dir: ImagePath,
    /// Its DT_RPATH and DT_RUNPATH entries.
    entries: Vec<String>,
}

pub(crate) struct Placer<'a> {
    plan: &'a Plan,
    map: &'a mut ImageMap,
    sysroot: Option<&'a Path>,
    config: &'a LoaderConfig,
    /// Places already claimed by a library of this run: the first library keeps its place.
    claimed: HashSet<ImagePath>,
    /// Search-path entries of libraries read so far, by the path the loader sees.
    entries: HashMap<PathBuf, Vec<String>>,
}

impl<'a> Placer<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        map: &'a mut ImageMap,
        sysroot: Option<&'a Path>,
        config: &'a LoaderConfig,
    ) -> Placer<'a> {
        Placer {
            plan,
            map,
            sysroot,
            config,
            claimed: HashSet::new(),
            entries: HashMap::new(),
        }
    }

    /// The library copies one file needs; what it misses (or the image provides) goes to
    /// `report`.
    pub(crate) fn place(
        &mut self,
        s: &Subject,
        loader: &Loader,
        res: &Resolution,
        report: &mut LibraryReport,
    ) -> Vec<PlannedOp> {
        let spec = loader.spec;
        let inside = inside_of(self.sysroot, &s.src);
        let mut objects: HashMap<PathBuf, Placed> = HashMap::new();
        let main = self.subject_placed(s, &inside);
        objects.insert(inside.clone(), main.clone());
        let mut ops = Vec::new();
        for dep in &res.libs {
            let Some(path) = &dep.path else {
                match self.provided(s, spec, dep, &objects, &main) {
                    Some(at) => report.provided.push(Provided {
                        name: dep.name.clone(),
                        needed_by: dep.needed_by.clone(),
                        at,
                    }),
                    None => report.missing.push(Missing {
                        name: dep.name.clone(),
                        needed_by: dep.needed_by.clone(),
                        searched: dep.searched.clone(),
                        listed: s.listed,
                        shipped_at: self.shipped_at(&dep.name),
                    }),
                }
                continue;
            };
            let dest = match &dep.via {
                // The loader goes where the interpreter (named or inferred) says; with a loader
                // config, `path` is the configured loader.
                Via::Loader => loader.interp.and_then(|i| ImagePath::parse(i).ok()),
                _ => self.destination(dep, path, spec, &objects, &main),
            };
            let Some(dest) = dest else {
                continue;
            };
            if let (Some(dir), Some(dest_dir)) = (parent_of(path), dest.parent()) {
                objects.insert(
                    path.clone(),
                    Placed {
                        dir,
                        dest_dir,
                        entries: Vec::new(),
                    },
                );
            }
            self.push(&mut ops, s, dep, path, dest);
            if let Some(base) = &dep.baseline
                && let Some(dest) = self.destination(dep, base, spec, &objects, &main)
            {
                self.push(&mut ops, s, dep, base, dest);
            }
        }
        ops
    }

    fn push(
        &mut self,
        ops: &mut Vec<PlannedOp>,
        s: &Subject,
        dep: &Dep,
        path: &Path,
        dest: ImagePath,
    ) {
        // The first library for a place keeps it; anything a bom puts there beats them all.
        let Ok(at) = self.map.resolve(&dest, false) else {
            return;
        };
        if self.map.nodes.contains_key(&at) || !self.claimed.insert(at) {
            return;
        }
        ops.push(PlannedOp {
            bom: s.bom,
            at: None,
            op: Op::CopyLibrary {
                src: host_of(self.sysroot, path),
                dest,
                name: dep.name.clone(),
                needed_by: dep.needed_by.clone(),
                dlopen: dep.dlopen,
            },
        });
    }

    /// The subject as an object of its own closure: a program's `$ORIGIN` is its real directory
    /// (the loader reads /proc/self/exe), a library's the directory it was found in.
    fn subject_placed(&self, s: &Subject, inside: &Path) -> Placed {
        let is_program = s.elf.interp.is_some() || s.elf.kind == ET_EXEC;
        let seen = if is_program {
            std::fs::canonicalize(&s.src)
                .map(|c| inside_of(self.sysroot, &c))
                .unwrap_or_else(|_| inside.to_path_buf())
        } else {
            inside.to_path_buf()
        };
        Placed {
            dir: parent_of(&seen).unwrap_or_else(ImagePath::root),
            dest_dir: s.dest.parent().unwrap_or_else(ImagePath::root),
            entries: search_entries(&s.elf),
        }
    }

    /// Where a library found at `path` (as the loader sees it) goes in the image.
    fn destination(
        &mut self,
        dep: &Dep,
        path: &Path,
        spec: Option<&LoaderSpec>,
        objects: &HashMap<PathBuf, Placed>,
        main: &Placed,
    ) -> Option<ImagePath> {
        let found = ImagePath::parse(path.as_os_str()).ok()?;
        if matches!(dep.via, Via::Rpath(_) | Via::Runpath(_)) {
            let requester = self.with_entries(objects.get(&dep.needed_by), &dep.needed_by);
            for obj in requester.iter().chain([main]) {
                for rest in origin_rests(&obj.entries) {
                    let Ok(seen_dir) = obj.dir.join(rest) else {
                        continue;
                    };
                    if let Ok(suffix) = found.strip_prefix(seen_dir.as_path()) {
                        return obj.dest_dir.join(rest).ok()?.join(suffix.as_os_str()).ok();
                    }
                }
            }
        }
        let configured = spec.and_then(|sp| self.config.for_interp(&sp.interp));
        match (configured, path.parent()) {
            (Some(c), Some(dir)) if c.owns_dir(dir) && !dep.name.contains('/') => {
                ImagePath::parse(c.image_lib_dir().join(&dep.name).as_os_str()).ok()
            }
            _ => Some(found),
        }
    }

    /// A library the host lacks, found in the image being built: where the image's loader will
    /// search for the object that needs it, or in the same copied tree as the subject.
    fn provided(
        &mut self,
        s: &Subject,
        spec: Option<&LoaderSpec>,
        dep: &Dep,
        objects: &HashMap<PathBuf, Placed>,
        main: &Placed,
    ) -> Option<ImagePath> {
        if dep.name.contains('/') {
            return None;
        }
        let requester = self.with_entries(objects.get(&dep.needed_by), &dep.needed_by);
        let mut dirs: Vec<ImagePath> = Vec::new();
        for obj in requester.iter().chain([main]) {
            for e in &obj.entries {
                let dir = match origin_rest(e) {
                    Some(rest) => obj.dest_dir.join(rest).ok(),
                    None => ImagePath::parse(e).ok(),
                };
                dirs.extend(dir);
            }
        }
        let flavor = spec.map_or(Flavor::Glibc, |sp| sp.flavor);
        if let Some(c) = spec.and_then(|sp| self.config.for_interp(&sp.interp)) {
            dirs.extend(ImagePath::parse(c.image_lib_dir().as_os_str()).ok());
        }
        dirs.extend(
            ldso::default_dirs(&s.elf, flavor)
                .iter()
                .filter_map(|d| ImagePath::parse(d).ok()),
        );
        for dir in dirs {
            let Ok(p) = dir.join(&dep.name) else {
                continue;
            };
            if let Ok(at) = self.map.resolve(&p, true)
                && matches!(
                    self.map.nodes.get(&at).map(|n| &n.kind),
                    Some(NodeKind::File { .. })
                )
            {
                return Some(at);
            }
        }
        self.in_same_tree(s, &dep.name)
    }

    /// Every place the boms put a file called `name`.
    fn shipped_at(&self, name: &str) -> Vec<ImagePath> {
        self.map
            .nodes
            .iter()
            .filter(|(p, n)| {
                matches!(n.kind, NodeKind::File { .. }) && p.file_name().is_some_and(|f| f == name)
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A file named `name` in the dir copy the subject comes from.
    fn in_same_tree(&self, s: &Subject, name: &str) -> Option<ImagePath> {
        let Op::CopyDir { dest, entries, .. } = &self.plan.ops.get(s.dir_op?)?.op else {
            return None;
        };
        entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .find(|e| e.rel.file_name().is_some_and(|n| n == name))
            .and_then(|e| dest.join(&e.rel).ok())
    }

    /// `obj` with its search entries read (libraries are read once, when first needed).
    fn with_entries(&mut self, obj: Option<&Placed>, seen: &Path) -> Option<Placed> {
        let mut obj = obj?.clone();
        if obj.entries.is_empty() {
            let sysroot = self.sysroot;
            obj.entries = self
                .entries
                .entry(seen.to_path_buf())
                .or_insert_with(|| match elf::read_file(&host_of(sysroot, seen)) {
                    Ok(Some(e)) => search_entries(&e),
                    _ => Vec::new(),
                })
                .clone();
        }
        Some(obj)
    }
}

fn parent_of(p: &Path) -> Option<ImagePath> {
    ImagePath::parse(p.parent()?.as_os_str()).ok()
}

/// DT_RPATH and DT_RUNPATH entries, in that order.
fn search_entries(e: &elf::ElfFile) -> Vec<String> {
    [&e.rpath, &e.runpath]
        .into_iter()
        .flatten()
        .flat_map(|s| s.split(':'))
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// What follows `$ORIGIN` in an entry that starts with it, as a relative path.
fn origin_rest(entry: &str) -> Option<&str> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(rest.trim_start_matches('/'))
}

fn origin_rests(entries: &[String]) -> impl Iterator<Item = &str> {
    entries.iter().filter_map(|e| origin_rest(e))
}
