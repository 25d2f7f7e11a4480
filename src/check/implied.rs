//! Implied files in `check`: for each load scope the symbols were judged in, what its C library
//! and libcrypto will open for the functions its objects import ([`crate::implied`]), and which
//! of those the image lacks. Each missing item is reported once, with the first object found
//! importing the function, where the host has it, and the bom entry that would add it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image::{Image, Object};
use super::symbols::{Scope, Tables};
use super::{CheckReport, ImpliedMissing};
use crate::elf::Priority;
use crate::implied::{self, Importer, Imports, Item, LibcFacts, OpensslFacts, Process, Topic};
use crate::ldso::{Flavor, default_dirs};

/// The libraries whose facts decide what is implied, read once each, by index of their first
/// name in `Image::objects`.
pub(super) struct Providers {
    libc: HashMap<usize, (LibcFacts, Option<String>)>,
    openssl: HashMap<usize, OpensslFacts>,
}

/// Whether an object is a C library, and which.
fn libc_of(o: &Object) -> Option<Flavor> {
    implied::libc_flavor(&o.path, &o.elf)
}

fn is_libcrypto(o: &Object) -> bool {
    o.elf
        .soname
        .as_deref()
        .is_some_and(|s| s.starts_with("libcrypto.so"))
}

/// Adds the implied files the image lacks to the report.
pub(super) fn judge(
    image: &Image,
    tables: &Tables,
    scopes: &[Scope],
    providers: &Providers,
    tz: Option<&str>,
    report: &mut CheckReport,
) {
    // What each object's imports imply, once: only the objects whose imports or links can imply
    // anything are looked at in each scope.
    let imports: HashMap<usize, Imports> = tables
        .symbols
        .par_iter()
        .filter_map(|(&i, s)| {
            let linked = image.objects[i]
                .elf
                .needed
                .iter()
                .any(|n| n.starts_with("libcrypto.so") || n.starts_with("libssl.so"));
            let imports = Imports::of(Some(s));
            (linked || !imports.is_empty()).then_some((i, imports))
        })
        .collect();
    let found: Vec<Vec<ImpliedMissing>> = scopes
        .par_iter()
        .map(|scope| {
            let mut members: Vec<usize> = scope
                .ids
                .iter()
                .filter_map(|id| tables.first.get(id).copied())
                .collect();
            // The scope's own program (or object) first: it is the one a reason should name.
            members.sort_unstable_by_key(|&i| (i != scope.root, i));
            let libc = members
                .iter()
                .find_map(|i| providers.libc.get(i).map(|f| (*i, f)));
            let openssl = members.iter().find_map(|i| providers.openssl.get(i));
            let importers: Vec<Importer> = members
                .iter()
                .filter_map(|&i| {
                    Some(Importer {
                        path: &image.objects[i].path,
                        imports: imports.get(&i)?,
                        needed: &image.objects[i].elf.needed,
                    })
                })
                .collect();
            if importers.is_empty() {
                return Vec::new();
            }
            let process = Process {
                libc: libc.map(|(_, (f, _))| f),
                openssl,
                nsswitch: libc.and_then(|(_, (_, conf))| conf.as_deref()),
                tz,
                importers,
            };
            implied::needs(&[process])
                .into_iter()
                .filter(|n| !present(image, &n.item, libc.map(|(i, _)| i)))
                .map(|n| missing(image, n, libc.map(|(i, _)| i)))
                .collect()
        })
        .collect();
    let recommended = recommended_missing(image);
    let mut seen: Vec<String> = Vec::new();
    for m in found.into_iter().flatten().chain(recommended) {
        if !seen.contains(&m.what) {
            seen.push(m.what.clone());
            report.implied.push(m);
        }
    }
}

/// The libraries `.note.dlopen` entries recommend that the image does not hold under any of the
/// entry's sonames (required ones are dependencies, judged with the libraries).
fn recommended_missing(image: &Image) -> Vec<ImpliedMissing> {
    let mut out = Vec::new();
    for o in &image.objects {
        for d in o
            .elf
            .dlopen
            .iter()
            .filter(|d| d.priority == Priority::Recommended)
        {
            if d.sonames.iter().any(|s| !image.named(s).is_empty()) {
                continue;
            }
            out.push(ImpliedMissing {
                what: d.sonames.join("|"),
                topic: Topic::Dlopen,
                importer: o.path.clone(),
                cause: d.feature.clone().unwrap_or_else(|| d.sonames.join("|")),
                source: None,
                generated: false,
                bom: None,
            });
        }
    }
    out
}

/// Reads the facts of every C library and libcrypto loaded in some scope, and the text of each
/// glibc's `nsswitch.conf` in the image. It needs no symbols, so it runs beside their reading.
pub(super) fn read_providers(image: &Image, scopes: &[Scope]) -> Providers {
    let mut wanted: Vec<usize> = scopes
        .iter()
        .flat_map(|s| s.ids.iter().filter_map(|id| image.index_of(*id)))
        .filter(|&i| libc_of(&image.objects[i]).is_some() || is_libcrypto(&image.objects[i]))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let read: Vec<_> = wanted
        .par_iter()
        .filter_map(|&i| {
            let o = &image.objects[i];
            let bytes = std::fs::read(image.host_path(&o.path)).ok()?;
            Some((i, libc_of(o), bytes))
        })
        .collect();
    let mut providers = Providers {
        libc: HashMap::new(),
        openssl: HashMap::new(),
    };
    for (i, flavor, bytes) in read {
        match flavor {
            Some(flavor) => {
                let facts = LibcFacts::read(&bytes, flavor);
                let conf = facts
                    .paths
                    .nsswitch
                    .as_ref()
                    .and_then(|p| image.file_host_path(p))
                    .and_then(|h| std::fs::read_to_string(h).ok());
                providers.libc.insert(i, (facts, conf));
            }
            None => {
                providers.openssl.insert(i, OpensslFacts::read(&bytes));
            }
        }
    }
    providers
}

/// The directories a module the C library dlopens is found in: the library's own directory,
/// then its loader's system directories.
fn module_dirs(image: &Image, libc: Option<usize>) -> Vec<PathBuf> {
    let Some(o) = libc.map(|i| &image.objects[i]) else {
        return Vec::new();
    };
    let flavor = libc_of(o).unwrap_or(Flavor::Glibc);
    o.path
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .chain(default_dirs(&o.elf, flavor).into_iter().map(PathBuf::from))
        .collect()
}

fn present(image: &Image, item: &Item, libc: Option<usize>) -> bool {
    match item {
        Item::File { path, .. } => image.file_host_path(path).is_some(),
        Item::Tree { path, marker } => match marker {
            Some(m) => image.file_host_path(&path.as_path().join(m)).is_some(),
            None => image.is_dir(path),
        },
        Item::Module { name } => module_dirs(image, libc)
            .iter()
            .any(|d| image.file_host_path(&d.join(name)).is_some()),
    }
}

/// A missing item, with where the host has it and the bom entry that would add it.
fn missing(image: &Image, n: implied::Need, libc: Option<usize>) -> ImpliedMissing {
    let on_host = |p: &Path| p.exists().then(|| p.to_path_buf());
    let (source, generated, target, key) = match &n.item {
        Item::File {
            path,
            generated: Some(_),
        } => (None, true, path.parent().map(|p| p.to_path_buf()), "files"),
        Item::File { path, .. } => (
            on_host(path),
            false,
            path.parent().map(|p| p.to_path_buf()),
            "files",
        ),
        Item::Tree { path, .. } => (
            on_host(path),
            false,
            path.parent().map(|p| p.to_path_buf()),
            "dirs",
        ),
        Item::Module { name } => {
            let dir = module_dirs(image, libc).into_iter().next();
            (
                dir.as_ref().and_then(|d| on_host(&d.join(name))),
                false,
                dir,
                "files",
            )
        }
    };
    let bom = match (&source, &target) {
        (Some(src), Some(target)) => Some(format!(
            "{{target: {}, copy: [{{{key}: [{}]}}]}}",
            target.display(),
            src.display()
        )),
        _ => None,
    };
    ImpliedMissing {
        what: n.item.shown(),
        topic: n.topic,
        importer: n.importer,
        cause: n.cause,
        source,
        generated,
        bom,
    }
}
