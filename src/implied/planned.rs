//! `--implicit` at planning time: what the planned image implies, as operations. The planned
//! image is read like `check` reads a written one: its C libraries and libcrypto from their
//! sources, the imports of every ELF file it will hold, its `nsswitch.conf` if the boms give it
//! one. Every item the boms do not already place becomes an [`Op::Implied`] with its reason;
//! modules go beside the libc that dlopens them, taken from beside that libc's source.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Importer, Imports, Item, LibcFacts, Need, OpensslFacts, Process, libc_flavor, needs};
use crate::deps::KnownHeaders;
use crate::elf::{self, ET_DYN, ET_EXEC, ElfFile};
use crate::fs::ImagePath;
use crate::ldso::Flavor;
use crate::plan::image::{ImageMap, NodeKind};
use crate::plan::{ImpliedContent, Op, Plan, PlannedOp, inside_sysroot};

/// The operations `--implicit` adds, and what it could not add.
#[derive(Debug, Default)]
pub struct Implied {
    pub ops: Vec<PlannedOp>,
    pub warnings: Vec<String>,
}

/// One ELF file of the planned image.
struct Planned {
    dest: ImagePath,
    src: PathBuf,
    elf: ElfFile,
    imports: Imports,
}

/// What the planned image implies that the boms do not place, as operations of the last bom.
pub fn plan_implied(
    plan: &Plan,
    map: &mut ImageMap,
    headers: &KnownHeaders,
    sysroot: Option<&Path>,
    tz: Option<&str>,
) -> Implied {
    let files = planned_elf_files(map, headers);
    let mut out = Implied::default();
    // One process per C library flavor: its first libc (by image path) and the files built
    // for it.
    let mut processes: Vec<(Flavor, &Planned, LibcFacts)> = Vec::new();
    for f in &files {
        let Some(flavor) = libc_flavor(&f.dest, &f.elf) else {
            continue;
        };
        if processes.iter().any(|p| p.0 == flavor) {
            continue;
        }
        match std::fs::read(&f.src) {
            Ok(bytes) => processes.push((flavor, f, LibcFacts::read(&bytes, flavor))),
            Err(e) => out.warnings.push(format!(
                "cannot read the C library {}: {e}",
                f.src.display()
            )),
        }
    }
    let openssl = files
        .iter()
        .find(|f| {
            f.elf
                .soname
                .as_deref()
                .is_some_and(|s| s.starts_with("libcrypto.so"))
        })
        .and_then(|f| std::fs::read(&f.src).ok())
        .map(|bytes| OpensslFacts::read(&bytes));
    let confs: Vec<Option<String>> = processes
        .iter()
        .map(|(_, _, facts)| nsswitch_text(map, facts))
        .collect();
    let mut found: Vec<(Need, Option<&Planned>)> = Vec::new();
    for ((flavor, libc, facts), conf) in processes.iter().zip(&confs) {
        let importers: Vec<Importer> = files
            .iter()
            .filter(|f| Flavor::of_object(&f.elf).unwrap_or(Flavor::Glibc) == *flavor)
            .map(|f| Importer {
                path: f.dest.as_path(),
                imports: &f.imports,
                needed: &f.elf.needed,
            })
            .collect();
        let process = Process {
            libc: Some(facts),
            openssl: openssl.as_ref(),
            nsswitch: conf.as_deref(),
            tz,
            importers,
        };
        for n in needs(&[process]) {
            if !found.iter().any(|(m, _)| m.item == n.item) {
                found.push((n, Some(*libc)));
            }
        }
    }
    let bom = plan.boms.len().saturating_sub(1);
    for (need, libc) in found {
        let why = super::reason(need.topic, &need.importer, &need.cause);
        for (content, dest) in contents(&need.item, libc, sysroot, &mut out.warnings) {
            // What the boms (or the libraries) already put there stays.
            let placed = map
                .resolve(&dest, true)
                .is_ok_and(|at| map.nodes.contains_key(&at));
            if placed || kept_on_disk(map, &dest, &content) {
                continue;
            }
            out.ops.push(PlannedOp {
                bom,
                at: None,
                op: Op::Implied {
                    content,
                    dest,
                    why: why.clone(),
                },
            });
        }
    }
    out
}

/// Every executable and shared object the map will hold, with its imports, in path order.
fn planned_elf_files(map: &ImageMap, headers: &KnownHeaders) -> Vec<Planned> {
    let files: Vec<(&ImagePath, &PathBuf)> = map
        .nodes
        .iter()
        .filter_map(|(dest, n)| match &n.kind {
            NodeKind::File { src } => Some((dest, src)),
            _ => None,
        })
        .filter(|(dest, _)| !matches!(headers.get(*dest), Some(None)))
        .collect();
    files
        .into_par_iter()
        .filter_map(|(dest, src)| {
            let elf = match headers.get(dest) {
                Some(Some(e)) => e.clone(),
                _ => elf::read_file(src).ok()??,
            };
            if elf.kind != ET_EXEC && elf.kind != ET_DYN {
                return None;
            }
            Some(Planned {
                dest: dest.clone(),
                src: src.clone(),
                imports: Imports::of(elf::read_symbols(src).ok().flatten().as_ref()),
                elf,
            })
        })
        .collect()
}

/// The text of the `nsswitch.conf` the boms put where the libc reads it.
fn nsswitch_text(map: &mut ImageMap, facts: &LibcFacts) -> Option<String> {
    let path = facts.paths.nsswitch.as_ref()?;
    let at = map.resolve(path, true).ok()?;
    match &map.nodes.get(&at)?.kind {
        NodeKind::File { src } => std::fs::read_to_string(src).ok(),
        NodeKind::Generated { text } => Some(text.to_string()),
        _ => None,
    }
}

/// A generated file the root already holds with other content (written by hand, or by
/// `copy_bom new`) is the user's: it is kept.
fn kept_on_disk(map: &mut ImageMap, dest: &ImagePath, content: &ImpliedContent) -> bool {
    let ImpliedContent::Generated(g) = content else {
        return false;
    };
    let Ok(at) = map.resolve(dest, true) else {
        return true;
    };
    let host = map
        .root()
        .join(at.as_path().strip_prefix("/").unwrap_or(at.as_path()));
    match std::fs::symlink_metadata(&host) {
        Ok(m) if m.is_file() => std::fs::read(&host).map_or(true, |now| now != g.text().as_bytes()),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// The host path of an image-absolute path on the host (inside the sysroot, links followed
/// there).
fn on_host(sysroot: Option<&Path>, path: &Path) -> PathBuf {
    match sysroot {
        Some(s) => inside_sysroot(s, &s.join(path.strip_prefix("/").unwrap_or(path))),
        None => path.to_path_buf(),
    }
}

/// What to write for an item, and where.
fn contents(
    item: &Item,
    libc: Option<&Planned>,
    sysroot: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Vec<(ImpliedContent, ImagePath)> {
    match item {
        Item::File {
            path,
            generated: Some(g),
        } => vec![(ImpliedContent::Generated(*g), path.clone())],
        Item::File { path, .. } => {
            let host = on_host(sysroot, path);
            if std::fs::metadata(&host).is_ok_and(|m| m.is_file()) {
                vec![(ImpliedContent::Copy(host), path.clone())]
            } else {
                warnings.push(format!(
                    "--implicit: cannot add {path}: {} is not a file",
                    host.display()
                ));
                Vec::new()
            }
        }
        Item::Tree { path, .. } => {
            let host = on_host(sysroot, path);
            let mut found = Vec::new();
            tree_files(&host, Path::new(""), &mut found);
            if found.is_empty() {
                warnings.push(format!(
                    "--implicit: cannot add {path}: {} holds no files",
                    host.display()
                ));
            }
            found
                .into_iter()
                .filter_map(|rel| {
                    let dest = path.join(&rel).ok()?;
                    Some((ImpliedContent::Copy(host.join(rel)), dest))
                })
                .collect()
        }
        Item::Module { name } => {
            let Some(libc) = libc else {
                return Vec::new();
            };
            let (Some(src_dir), Some(dest_dir)) = (libc.src.parent(), libc.dest.parent()) else {
                return Vec::new();
            };
            let src = src_dir.join(name);
            match (std::fs::metadata(&src), dest_dir.join(name)) {
                (Ok(m), Ok(dest)) if m.is_file() => vec![(ImpliedContent::Copy(src), dest)],
                _ => {
                    warnings.push(format!(
                        "--implicit: cannot add {name}: {} has none beside the C library",
                        src_dir.display()
                    ));
                    Vec::new()
                }
            }
        }
    }
}

/// The regular files below `dir` (links to files followed), relative to it, sorted.
fn tree_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(items) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    let mut names: Vec<_> = items
        .filter_map(|i| i.ok())
        .map(|i| i.file_name())
        .collect();
    names.sort();
    for name in names {
        let r = rel.join(&name);
        // Real directories only: a link to a directory could loop.
        match std::fs::symlink_metadata(dir.join(&r)) {
            Ok(m) if m.is_dir() => tree_files(dir, &r, out),
            Ok(_) if std::fs::metadata(dir.join(&r)).is_ok_and(|m| m.is_file()) => out.push(r),
            _ => {}
        }
    }
}
