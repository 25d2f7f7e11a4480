//! Where a bom's relative sources come from (SPEC A§1.2) and wildcard
//! expansion of `files`/`dirs` entries (SPEC B2).

use std::path::{Component, Path, PathBuf};

use globset::GlobBuilder;

use crate::fs::resolve_in_root;

/// W, the "workspace dir": the parent of the `--root` string, or `.` when it
/// has none. Relative sources are resolved against it (`--root image` gives
/// the current directory, `--root inst/image` gives `inst`).
pub fn workspace_dir(root: &Path) -> PathBuf {
    match root.parent() {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    }
}

/// Joins a bom source onto `base`; with a sysroot, absolute sources are taken
/// inside it.
pub fn source_path(base: &Path, item: &str, sysroot: Option<&Path>) -> PathBuf {
    let p = Path::new(item);
    match sysroot {
        Some(s) if p.is_absolute() => s.join(p.strip_prefix("/").unwrap_or(p)),
        _ => base.join(p),
    }
}

/// A source under a sysroot, with every link on its way followed inside the
/// sysroot (an absolute link such as `/lib64/ld-linux-x86-64.so.2 ->
/// /lib/x86_64-linux-gnu/...` names the sysroot's file, never the host's).
/// Paths outside the sysroot are returned as they are.
pub fn inside_sysroot(sysroot: &Path, host: &Path) -> PathBuf {
    let Ok(rel) = host.strip_prefix(sysroot) else {
        return host.to_path_buf();
    };
    match resolve_in_root(sysroot, rel, true) {
        Ok(resolved) => sysroot.join(resolved.strip_prefix("/").unwrap_or(&resolved)),
        Err(_) => host.to_path_buf(),
    }
}

/// True when `s` holds a glob metacharacter.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands a wildcard path component by component, in sorted order. Only
/// components holding metacharacters are matched against directory listings;
/// `*` never crosses a `/`. Hidden entries match only patterns that start with
/// a dot, as in the shell.
pub fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let literal = !matches!(comp, Component::Normal(_)) || !has_wildcard(&part);
        let mut next = Vec::new();
        for base in &found {
            if literal {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let glob = GlobBuilder::new(&part)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("bad wildcard {part:?}: {e}"))?
                .compile_matcher();
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| {
                    let hidden = n.to_string_lossy().starts_with('.');
                    (!hidden || part.starts_with('.')) && glob.is_match(n)
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.symlink_metadata().is_ok());
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_dir_follows_the_original() {
        assert_eq!(workspace_dir(Path::new("image")), PathBuf::from(""));
        assert_eq!(workspace_dir(Path::new("image/")), PathBuf::from(""));
        assert_eq!(workspace_dir(Path::new("./image")), PathBuf::from("."));
        assert_eq!(
            workspace_dir(Path::new("inst/image")),
            PathBuf::from("inst")
        );
        assert_eq!(
            workspace_dir(Path::new("/a/inst/image")),
            PathBuf::from("/a/inst")
        );
        assert_eq!(workspace_dir(Path::new("/")), PathBuf::from("."));
    }

    #[test]
    fn sources_with_a_sysroot() {
        let s = Some(Path::new("/sys"));
        assert_eq!(
            source_path(Path::new("w"), "/usr/bin/x", s),
            PathBuf::from("/sys/usr/bin/x")
        );
        assert_eq!(source_path(Path::new("w"), "x", s), PathBuf::from("w/x"));
        assert_eq!(source_path(Path::new(""), "/x", None), PathBuf::from("/x"));
    }

    #[test]
    fn globs_expand_sorted_per_component() {
        let t = tempfile::tempdir().unwrap();
        for f in ["a/x1.so", "a/x2.so", "a/y.txt", "b/x3.so", "a/.xh.so"] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let got = expand_glob(&t.path().join("*/x*.so")).unwrap();
        let rel: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(t.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            rel,
            vec![PathBuf::from("a/x1.so"), "a/x2.so".into(), "b/x3.so".into()]
        );
        assert!(expand_glob(&t.path().join("c/*")).unwrap().is_empty());
    }
}
