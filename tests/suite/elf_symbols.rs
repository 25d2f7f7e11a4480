//! `elf::read_symbols` against binutils' `readelf` on real objects of the machine: the same
//! defined symbols with the same versions and default/hidden marks, the same undefined strong
//! references with their versions, the same version definitions and requirements.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use copy_bom::elf::{self, Symbols};

/// Objects of every Debian 12 machine (and the test's own toolchain).
const OBJECTS: [&str; 5] = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/usr/bin/ls",
];

fn readelf(args: &[&str], path: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf {args:?} {}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

type Defined = BTreeSet<(String, Option<String>, bool)>;
type Refs = BTreeSet<(String, Option<String>)>;
type VersionDefs = BTreeSet<(u16, String)>;
type VersionNeeds = BTreeSet<(String, String, bool)>;

/// (defined: name, version, hidden), (undefined strong: name, version) from `--dyn-syms`.
fn readelf_symbols(path: &Path) -> (Defined, Refs) {
    let text = readelf(&["--dyn-syms", "-W"], path);
    let (mut defined, mut refs) = (Defined::new(), Refs::new());
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !f[0].ends_with(':') || f[0] == "0:" || f[0] == "Num:" {
            continue;
        }
        let (value, kind, bind, ndx, name) = (f[1], f[3], f[4], f[6], f[7]);
        if matches!(kind, "SECTION" | "FILE") || bind == "LOCAL" {
            continue;
        }
        let (name, version, hidden) = match name.split_once("@@") {
            Some((n, v)) => (n, Some(v.to_string()), false),
            None => match name.split_once('@') {
                Some((n, v)) => (n, Some(v.to_string()), true),
                None => (name, None, false),
            },
        };
        if ndx == "UND" {
            if bind != "WEAK" {
                refs.insert((name.to_string(), version));
            }
        } else if value.trim_start_matches('0').is_empty() && ndx != "ABS" && kind != "TLS" {
            continue;
        } else {
            defined.insert((name.to_string(), version, hidden));
        }
    }
    (defined, refs)
}

fn ours(s: &Symbols) -> (Defined, Refs) {
    let name_of = |index: u16| s.version_name(index).map(str::to_string);
    // readelf marks a definition at a required version's index (a copy-relocated `stdout`) with
    // a single `@`, as if hidden.
    let required = |index: u16| s.needs.iter().any(|n| n.index == index);
    let defined = s
        .defined
        .iter()
        .map(|(n, d)| {
            // readelf names a definition of the global index (1) without a version, and so the
            // absolute symbol that names a version itself (`GLIBC_2.14` at GLIBC_2.14).
            let version = d
                .index
                .filter(|i| *i >= 2)
                .and_then(name_of)
                .filter(|v| v != n);
            (
                n.clone(),
                version,
                d.hidden || d.index.is_some_and(required),
            )
        })
        .collect();
    let refs = s
        .references
        .iter()
        .map(|r| {
            let v = r
                .need
                .and_then(|n| s.needs.get(n))
                .map(|n| n.version.clone());
            (r.name.clone(), v)
        })
        .collect();
    (defined, refs)
}

/// (index, name, base) of the definitions; (file, version, weak) of the requirements.
fn readelf_versions(path: &Path) -> (VersionDefs, VersionNeeds) {
    let text = readelf(&["-V", "-W"], path);
    let (mut defs, mut needs) = (BTreeSet::new(), BTreeSet::new());
    let mut section = "";
    let mut file = String::new();
    for line in text.lines() {
        if line.starts_with("Version definition") {
            section = "d";
        } else if line.starts_with("Version needs") {
            section = "r";
        } else if line.starts_with("Version symbols") {
            section = "";
        }
        let field = |key: &str| {
            line.split("  ")
                .map(str::trim)
                .find_map(|p| p.strip_prefix(key))
                .map(str::trim)
                .map(str::to_string)
        };
        match section {
            "d" => {
                if let (Some(i), Some(n)) = (field("Index:"), field("Name:")) {
                    defs.insert((i.parse().unwrap(), n));
                }
            }
            "r" => {
                if let Some(f) = field("File:") {
                    file = f;
                } else if let (Some(n), Some(flags)) = (field("Name:"), field("Flags:")) {
                    needs.insert((file.clone(), n, flags.contains("WEAK")));
                }
            }
            _ => {}
        }
    }
    (defs, needs)
}

/// Equal sets, or a failure naming the first differences each way.
fn same<T: Ord + std::fmt::Debug>(ours: &BTreeSet<T>, readelf: &BTreeSet<T>, path: &Path) {
    let only_ours: Vec<_> = ours.difference(readelf).take(10).collect();
    let only_readelf: Vec<_> = readelf.difference(ours).take(10).collect();
    assert!(
        only_ours.is_empty() && only_readelf.is_empty(),
        "{}: only ours {only_ours:?}; only readelf's {only_readelf:?}",
        path.display()
    );
}

#[test]
fn symbols_and_versions_are_those_readelf_shows() {
    let mut compared = 0;
    for path in OBJECTS.iter().map(Path::new) {
        assert!(
            path.exists(),
            "{} is on every Debian 12 machine",
            path.display()
        );
        let s = elf::read_symbols(path).unwrap().unwrap();
        let (defined, refs) = ours(&s);
        let (want_defined, want_refs) = readelf_symbols(path);
        assert_eq!(
            defined.len(),
            s.defined.len(),
            "{}: duplicate definitions",
            path.display()
        );
        same(&defined, &want_defined, path);
        same(&refs, &want_refs, path);
        let (want_defs, want_needs) = readelf_versions(path);
        let defs: BTreeSet<(u16, String)> = s.versions.iter().cloned().collect();
        assert_eq!(defs, want_defs, "{}", path.display());
        let needs: BTreeSet<_> = s
            .needs
            .iter()
            .map(|n| (n.file.clone(), n.version.clone(), n.weak))
            .collect();
        assert_eq!(needs, want_needs, "{}", path.display());
        compared += defined.len() + refs.len();
    }
    assert!(compared > 5000, "only {compared} symbols compared");
}

#[test]
fn a_static_program_has_no_symbol_table_to_judge() {
    let t = tempfile::tempdir().unwrap();
    let exe = t.path().join("static");
    crate::check_support::cc("gcc", "int main(void){return 0;}\n", &exe, &["-static"]);
    assert_eq!(elf::read_symbols(&exe).unwrap(), None);
}
