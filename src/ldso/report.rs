//! Text output of a [`Resolution`] for `copy_bom deps`: ldd-style lines,
//! an explained tree, and JSON.

use std::fmt::Write;

use super::{Dep, Resolution, Via};

/// ldd's lines without load addresses: `\tNAME => PATH`, `\tNAME => not
/// found`, and the interpreter last as `\t/lib64/ld-linux-x86-64.so.2`;
/// ldd's `\tstatically linked` when nothing is loaded, so every file
/// gets a line. A library the loader stopped at is `\tNAME => not
/// loadable: FILE: REASON` (ldd fails as a whole there).
pub fn ldd_lines(res: &Resolution) -> String {
    let mut out = String::new();
    if res.libs.is_empty() {
        out.push_str("\tstatically linked\n");
    }
    for dep in &res.libs {
        let line = match (&dep.via, &dep.path) {
            (Via::Loader, Some(p)) => format!("\t{}", p.display()),
            (Via::Loader, None) => format!("\t{} => not found", dep.name),
            (Via::Unusable { file, reason }, _) => {
                format!(
                    "\t{} => not loadable: {}: {reason}",
                    dep.name,
                    file.display()
                )
            }
            (_, Some(p)) => format!("\t{} => {}", dep.name, p.display()),
            (_, None) => format!("\t{} => not found", dep.name),
        };
        out.push_str(&line);
        if let Some(p) = dep.dlopen {
            let _ = write!(out, " (dlopen, {})", p.name());
        }
        out.push('\n');
    }
    out
}

/// The closure as a tree under the objects that first requested each
/// library, each line saying why it was found there.
pub fn tree(res: &Resolution) -> String {
    let mut out = String::new();
    let Some(root) = res.libs.first().map(|d| d.needed_by.clone()) else {
        return out;
    };
    let _ = writeln!(out, "{}", root.display());
    write_children(res, &root, 1, &mut out);
    out
}

fn write_children(res: &Resolution, parent: &std::path::Path, depth: usize, out: &mut String) {
    // The closure is a tree: each library hangs under its first requester only once,
    // and depth is bounded by the number of libraries.
    if depth > res.libs.len() {
        return;
    }
    for dep in res
        .libs
        .iter()
        .filter(|d| d.needed_by == parent && d.via != Via::Loader)
    {
        let _ = writeln!(out, "{}{}", "    ".repeat(depth), explain(dep));
        if let Some(path) = &dep.path
            && path != parent
        {
            write_children(res, path, depth + 1, out);
        }
    }
    if depth == 1
        && let Some(loader) = res.libs.iter().find(|d| d.via == Via::Loader)
    {
        let _ = writeln!(out, "    {}", explain(loader));
    }
}

fn explain(dep: &Dep) -> String {
    let why = match &dep.via {
        Via::Rpath(d) => format!("RPATH {}", d.display()),
        Via::LdLibraryPath(d) => format!("LD_LIBRARY_PATH {}", d.display()),
        Via::Runpath(d) => format!("RUNPATH {}", d.display()),
        Via::Cache => "ld.so.cache".to_string(),
        Via::DefaultDir(d) => format!("default dir {}", d.display()),
        Via::Direct => "path".to_string(),
        Via::MuslReserved => "musl libc".to_string(),
        Via::Loader => "interpreter".to_string(),
        Via::Unusable { file, reason } => {
            return format!(
                "{} => not loadable: {}: {reason} [the loader stops there]",
                dep.name,
                file.display()
            );
        }
        Via::NotFound => {
            let dirs: Vec<_> = dep
                .searched
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return format!("{} => not found [searched {}]", dep.name, dirs.join(":"));
        }
    };
    let path = dep
        .path
        .as_ref()
        .map_or("not found".into(), |p| p.display().to_string());
    let mut line = format!("{} => {path} [{why}]", dep.name);
    if let Some(p) = dep.dlopen {
        let _ = write!(line, " (dlopen, {})", p.name());
    }
    if let Some(b) = &dep.baseline {
        let _ = write!(line, " (baseline {})", b.display());
    }
    line
}

/// The resolution as pretty-printed JSON.
pub fn json(res: &Resolution) -> serde_json::Result<String> {
    serde_json::to_string_pretty(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dep(name: &str, path: Option<&str>, by: &str, via: Via) -> Dep {
        Dep {
            name: name.into(),
            path: path.map(PathBuf::from),
            needed_by: by.into(),
            via,
            searched: if path.is_none() {
                vec!["/x".into(), "/y".into()]
            } else {
                vec![]
            },
            baseline: None,
            dlopen: None,
            host: path.map(PathBuf::from),
        }
    }

    fn sample() -> Resolution {
        Resolution {
            interp: Some("/lib64/ld.so".into()),
            libs: vec![
                dep(
                    "liba.so",
                    Some("/r/liba.so"),
                    "/bin/p",
                    Via::Runpath("/r".into()),
                ),
                dep("libc.so.6", Some("/lib/libc.so.6"), "/bin/p", Via::Cache),
                dep("libb.so", None, "/r/liba.so", Via::NotFound),
                dep("/lib64/ld.so", Some("/lib64/ld.so"), "/bin/p", Via::Loader),
            ],
        }
    }

    #[test]
    fn ldd_lines_match_ldd_without_addresses() {
        assert_eq!(
            ldd_lines(&sample()),
            "\tliba.so => /r/liba.so\n\tlibc.so.6 => /lib/libc.so.6\n\tlibb.so => not found\n\t/lib64/ld.so\n"
        );
    }

    #[test]
    fn a_library_the_loader_stops_at_says_why() {
        let mut res = sample();
        res.libs[2] = dep(
            "libb.so",
            None,
            "/r/liba.so",
            Via::Unusable {
                file: "/r/libb.so".into(),
                reason: "invalid ELF header".into(),
            },
        );
        assert!(
            ldd_lines(&res).contains("\tlibb.so => not loadable: /r/libb.so: invalid ELF header\n")
        );
        assert!(tree(&res).contains(
            "libb.so => not loadable: /r/libb.so: invalid ELF header [the loader stops there]"
        ));
        assert_eq!(res.missing().count(), 1);
    }

    #[test]
    fn ldd_lines_say_when_nothing_is_loaded() {
        let res = Resolution {
            interp: None,
            libs: vec![],
        };
        assert_eq!(ldd_lines(&res), "\tstatically linked\n");
    }

    #[test]
    fn tree_nests_and_explains() {
        let expected = "/bin/p\n    liba.so => /r/liba.so [RUNPATH /r]\n        libb.so => not found [searched /x:/y]\n    libc.so.6 => /lib/libc.so.6 [ld.so.cache]\n    /lib64/ld.so => /lib64/ld.so [interpreter]\n";
        assert_eq!(tree(&sample()), expected);
    }

    #[test]
    fn json_names_the_reason() {
        let text = json(&sample()).unwrap();
        assert!(text.contains("\"Runpath\": \"/r\""), "{text}");
        assert!(text.contains("\"NotFound\""), "{text}");
    }
}
