//! Helpers for the safety tests: exact image snapshots (full content hash, mode, owner, mtime,
//! link target) and a search for leftover temporary files.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every entry under `dir` (relative path → description), byte for byte: two images are the
/// same image exactly when their snapshots are equal. Directory mtimes are left out (creating an
/// entry changes them, and the tool does not promise them).
pub fn exact_snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    if dir.symlink_metadata().is_err() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        let owner = format!("{:o} {}:{}", m.mode(), m.uid(), m.gid());
        let desc = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if m.is_dir() {
            format!("dir {owner}")
        } else {
            let digest = Sha256::digest(std::fs::read(e.path()).unwrap());
            format!(
                "file {owner} {} {} {:x?}",
                m.len(),
                m.mtime(),
                digest.as_slice()
            )
        };
        out.insert(rel, desc);
    }
    out
}

/// What differs between two snapshots, for assertion messages (first 20 lines).
pub fn diff(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> String {
    let mut lines = vec![];
    for (k, v) in b {
        if a.get(k) != Some(v) {
            lines.push(format!("+ {} {v}", k.display()));
        }
    }
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        lines.push(format!("- {}", k.display()));
    }
    let n = lines.len();
    lines.truncate(20);
    format!("{n} differences:\n{}", lines.join("\n"))
}

/// Temporary files the copier leaves when interrupted (".NAME.copy_bom-XXXX").
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name.starts_with('.') && name.contains(".copy_bom-")
        })
        .map(|e| e.into_path())
        .collect()
}
