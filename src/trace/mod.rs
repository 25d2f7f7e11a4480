//! `copy_bom trace`: runs a program on the host under ptrace and writes what it (and every
//! process it starts) used as a bom fragment, so that an image built from it holds what the
//! program opens at run time and no ELF header names: python's modules, a shell script's
//! programs, data files.
//!
//! [`tracer`] records the successful calls; this module decides which of the paths belong in
//! an image and writes them as a valid bom (`includes:`-able), grouped by target directory and
//! sorted.

pub(crate) mod tracer;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub use tracer::{Access, Ending, Use};

use crate::error::{Error, Result, Status};

/// Where nothing of an image belongs: the kernel's and the run's own file systems.
const LEFT_OUT: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/tmp"];

/// The host's loader configuration: the image's cache is built for the image (ldconfig), and
/// a preload list is never copied.
pub(crate) const LOADER_FILES: [&str; 2] = ["/etc/ld.so.cache", "/etc/ld.so.preload"];

/// What `trace` does besides running the program.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Also keep paths under /proc, /sys, /dev, /run and /tmp.
    pub keep_system: bool,
}

/// What a trace found.
#[derive(Debug)]
pub struct Traced {
    pub ending: Ending,
    /// The files for the image: regular files the program read or executed (never wrote), by
    /// real path (every link resolved), with the first program that used each.
    pub files: BTreeMap<PathBuf, Option<PathBuf>>,
    /// The paths the program used for each file, when they differ from its real path.
    pub names: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// The links each file was reached through.
    pub through: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// The links the program's paths went through (`/lib` -> `usr/lib`, `/usr/bin/python3` ->
    /// `python3.11`): link path -> its target, verbatim.
    pub links: BTreeMap<PathBuf, PathBuf>,
    /// Paths left out: written by the program, or under the left-out trees.
    pub left_out: usize,
}

/// Runs `command` (program and arguments) under ptrace.
pub fn trace(command: &[OsString], opts: &TraceOptions) -> Result<Traced> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::new(Status::Usage, "trace: no program to run"));
    };
    let launch = tracer::Launch {
        program,
        args,
        env: None,
        filter: false,
    };
    let (accesses, ending) = tracer::run(&launch).map_err(|e| {
        Error::new(
            Status::NotFound,
            format!("trace: cannot run {}: {e}", Path::new(program).display()),
        )
    })?;
    Ok(select(accesses, ending, opts))
}

/// The accessed paths that belong in an image.
pub(crate) fn select(accesses: Vec<Access>, ending: Ending, opts: &TraceOptions) -> Traced {
    let written: std::collections::HashSet<&Path> = accesses
        .iter()
        .filter(|a| a.found && a.how == Use::Write)
        .map(|a| a.path.as_path())
        .collect();
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut names: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut through: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut left_out = 0;
    for a in &accesses {
        if !a.found || a.how == Use::Write || files.contains_key(&a.path) {
            continue;
        }
        let system = LEFT_OUT.iter().any(|t| a.path.starts_with(t))
            || LOADER_FILES.iter().any(|f| a.path == Path::new(f));
        if written.contains(a.path.as_path()) || (system && !opts.keep_system) {
            left_out += 1;
            continue;
        }
        // Only what is a regular file now: directories come with their files, and a path that
        // was only probed and does not exist is not part of the image.
        if !std::fs::metadata(&a.path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Some((real, chain)) = resolve(&a.path) {
            let via = through.entry(real.clone()).or_default();
            for (link, target) in chain {
                if !via.contains(&link) {
                    via.push(link.clone());
                }
                links.insert(link, target);
            }
            if real != a.path {
                let seen = names.entry(real.clone()).or_default();
                if !seen.contains(&a.path) {
                    seen.push(a.path.clone());
                }
            }
            files.entry(real).or_insert_with(|| a.by.clone());
        }
    }
    Traced {
        ending,
        files,
        names,
        through,
        links,
        left_out,
    }
}

impl Traced {
    /// Leaves out what an image already holds (`planned`: its paths, e.g. from
    /// [`crate::build::planned_paths`]): a file planned under its real path or under any path
    /// the program used for it, a link planned at its path. Returns how many were left out.
    pub fn without(&mut self, planned: &[PathBuf]) -> usize {
        let has = |p: &Path| planned.binary_search_by(|q| q.as_path().cmp(p)).is_ok();
        let before = self.files.len() + self.links.len();
        let names = &self.names;
        self.files.retain(|real, _| {
            !(has(real) || names.get(real).is_some_and(|ns| ns.iter().any(|n| has(n))))
        });
        // The links still needed: those the kept files were reached through.
        let needed: std::collections::HashSet<&PathBuf> = self
            .files
            .keys()
            .filter_map(|f| self.through.get(f))
            .flatten()
            .collect();
        self.links
            .retain(|link, _| needed.contains(link) && !has(link));
        let gone = before - self.files.len() - self.links.len();
        self.left_out += gone;
        gone
    }
}

/// The real path of `path` and every link met on the way, each as (link, target), resolved one
/// component at a time as the kernel does; None when it loops or a component is gone.
fn resolve(path: &Path) -> Option<(PathBuf, Vec<(PathBuf, PathBuf)>)> {
    use std::collections::VecDeque;
    use std::path::Component;
    let names = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut rest: VecDeque<_> = names(path).into();
    let mut done = PathBuf::from("/");
    let mut links = Vec::new();
    let mut hops = 0;
    while let Some(name) = rest.pop_front() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        let meta = std::fs::symlink_metadata(&next).ok()?;
        if !meta.file_type().is_symlink() {
            done = next;
            continue;
        }
        hops += 1;
        if hops > 40 {
            return None;
        }
        let target = std::fs::read_link(&next).ok()?;
        if target.is_absolute() {
            done = PathBuf::from("/");
        }
        let mut ahead: VecDeque<_> = names(&target).into();
        ahead.extend(rest);
        rest = ahead;
        links.push((next, target));
    }
    Some((done, links))
}

/// The bom fragment: one target per directory, its files sorted, each with the program that
/// used it as a comment. Paths that are not UTF-8 cannot be written in a bom; they are listed
/// as comments.
pub fn fragment(traced: &Traced, command: &[OsString]) -> String {
    let mut by_dir: BTreeMap<&Path, Vec<(&Path, Option<&PathBuf>)>> = BTreeMap::new();
    for (path, by) in &traced.files {
        let dir = path.parent().unwrap_or(Path::new("/"));
        by_dir.entry(dir).or_default().push((path, by.as_ref()));
    }
    let shown: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut out = format!(
        "# Written by copy_bom trace: the files {} used.\ntargets:\n",
        yaml_comment(&shown.join(" "))
    );
    let mut links_by_dir: BTreeMap<&Path, Vec<(&Path, &Path)>> = BTreeMap::new();
    for (link, target) in &traced.links {
        let dir = link.parent().unwrap_or(Path::new("/"));
        links_by_dir.entry(dir).or_default().push((link, target));
    }
    for (dir, links) in links_by_dir {
        let texts = links.iter().map(|(l, t)| {
            let name = l.file_name().and_then(|n| n.to_str());
            (name, t.to_str())
        });
        let (Some(dir_text), true) = (
            dir.to_str(),
            texts.clone().all(|(n, t)| n.is_some() && t.is_some()),
        ) else {
            let _ = writeln!(
                out,
                "  # links not UTF-8 in {}",
                yaml_comment(&dir.to_string_lossy())
            );
            continue;
        };
        let _ = writeln!(out, "  - target: {}\n    createlinks:", quoted(dir_text));
        for (name, target) in texts {
            if let (Some(n), Some(t)) = (name, target) {
                let _ = writeln!(
                    out,
                    "      - {{src: {}, linkname: {}}}",
                    quoted(t),
                    quoted(n)
                );
            }
        }
    }
    for (dir, files) in by_dir {
        let Some(dir_text) = dir.to_str() else {
            let _ = writeln!(
                out,
                "  # not UTF-8: {}",
                yaml_comment(&dir.to_string_lossy())
            );
            continue;
        };
        let _ = writeln!(
            out,
            "  - target: {}\n    copy:\n      - files:",
            quoted(dir_text)
        );
        for (path, by) in files {
            let by = by.map_or(String::new(), |b| {
                format!("  # used by {}", yaml_comment(&b.to_string_lossy()))
            });
            match path.to_str() {
                Some(p) => {
                    let _ = writeln!(out, "          - {}{by}", quoted(p));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "          # not UTF-8: {}",
                        yaml_comment(&path.to_string_lossy())
                    );
                }
            }
        }
    }
    out
}

/// A YAML double-quoted string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a comment: one line.
fn yaml_comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_left_out_and_the_fragment_is_a_bom() {
        // The temporary dir may lie under /tmp, which trace leaves out unless told to keep it;
        // and it may be reached through a link: its real path is the one listed.
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        let read = dir.join("data \"x\".txt");
        std::fs::write(&read, "x").unwrap();
        let written = dir.join("out.txt");
        std::fs::write(&written, "y").unwrap();
        let access = |path: &Path, how| Access {
            path: path.to_path_buf(),
            how,
            by: Some(PathBuf::from("/bin/prog")),
            found: true,
        };
        let alias = dir.join("alias");
        std::os::unix::fs::symlink("data \"x\".txt", &alias).unwrap();
        let accesses = vec![
            access(&alias, Use::Read),
            access(&read, Use::Read),
            access(&written, Use::Read),
            access(&written, Use::Write),
            access(&dir.join("missing"), Use::Probe),
        ];
        let keep = TraceOptions { keep_system: true };
        let traced = select(accesses, Ending::Exited(0), &keep);
        assert_eq!(traced.files.keys().collect::<Vec<_>>(), vec![&read]);
        assert_eq!(
            traced.links.get(&alias).map(PathBuf::as_path),
            Some(Path::new("data \"x\".txt"))
        );
        // The written file, once for its read.
        assert_eq!(traced.left_out, 1);
        let system = vec![
            access(Path::new("/proc/self/maps"), Use::Read),
            access(Path::new("/etc/ld.so.cache"), Use::Read),
        ];
        let traced = select(system, Ending::Exited(0), &TraceOptions::default());
        assert!(traced.files.is_empty(), "{:?}", traced.files);
        assert_eq!(traced.left_out, 2);
        let traced = select(
            vec![
                access(&alias, Use::Read),
                access(&written, Use::Read),
                access(&written, Use::Write),
            ],
            Ending::Exited(0),
            &keep,
        );
        let text = fragment(&traced, &[OsString::from("prog")]);
        let loaded: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(
            loaded["targets"][0]["createlinks"][0]["src"].as_str(),
            Some("data \"x\".txt")
        );
        assert_eq!(
            loaded["targets"][1]["copy"][0]["files"][0].as_str(),
            read.to_str()
        );
    }
}
