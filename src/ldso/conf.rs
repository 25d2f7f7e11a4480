//! `/etc/ld.so.conf` of a sysroot, with `include` globs. glibc itself only
//! reads the cache ldconfig built from this file, so the directories are a
//! stand-in used when the sysroot has no cache (an unpacked root file system).

use std::fs;
use std::path::{Path, PathBuf};

use globset::Glob;
use tracing::warn;

use super::sysroot::Sysroot;

/// Bound on nested includes, so an include cycle ends.
const MAX_DEPTH: usize = 16;

/// The library directories listed by `<sysroot>/etc/ld.so.conf`, in order,
/// duplicates removed.
pub(crate) fn conf_dirs(sysroot: &Sysroot) -> Vec<String> {
    let mut dirs = Vec::new();
    read_conf(sysroot, Path::new("/etc/ld.so.conf"), 0, &mut dirs);
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn read_conf(sysroot: &Sysroot, file: &Path, depth: usize, dirs: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        warn!("{}: includes nested too deeply, ignored", file.display());
        return;
    }
    let Some(text) = sysroot
        .open_path(file)
        .and_then(|p| fs::read_to_string(p).ok())
    else {
        return;
    };
    let here = file.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            None => {}
            Some("include") => {
                for pattern in words {
                    for inc in expand_glob(sysroot, &here.join(pattern)) {
                        read_conf(sysroot, &inc, depth + 1, dirs);
                    }
                }
            }
            Some("hwcap") => {}
            Some(_) => dirs.extend(
                line.split([' ', '\t', ',', ':'])
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        d.split('=')
                            .next()
                            .unwrap_or(d)
                            .trim_end_matches('/')
                            .to_string()
                    })
                    .filter(|d| !d.is_empty()),
            ),
        }
    }
}

/// Expands a glob pattern inside the sysroot, component by component, in
/// sorted order as glob(3) returns it.
fn expand_glob(sysroot: &Sysroot, pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for part in pattern.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        let is_glob = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &found {
            if !is_glob {
                next.push(base.join(part.as_ref()));
                continue;
            }
            let Ok(matcher) = Glob::new(&part).map(|g| g.compile_matcher()) else {
                continue;
            };
            let Some(entries) = sysroot.open_path(base).and_then(|d| fs::read_dir(d).ok()) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .filter(|n| matcher.is_match(Path::new(n)))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_includes_relative_to_the_sysroot() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir_all(etc.join("ld.so.conf.d")).unwrap();
        fs::write(
            etc.join("ld.so.conf"),
            "include /etc/ld.so.conf.d/*.conf\n/opt/lib # c\n",
        )
        .unwrap();
        fs::write(etc.join("ld.so.conf.d/b.conf"), "/usr/lib/b/\n").unwrap();
        fs::write(
            etc.join("ld.so.conf.d/a.conf"),
            "# x\n/usr/lib/a, /usr/lib/a2\ninclude a.conf\n",
        )
        .unwrap();
        fs::write(etc.join("ld.so.conf.d/a.txt"), "/nope\n").unwrap();
        let dirs = conf_dirs(&Sysroot::new(dir.path()));
        assert_eq!(
            dirs,
            vec!["/usr/lib/a", "/usr/lib/a2", "/usr/lib/b", "/opt/lib"]
        );
    }
}
