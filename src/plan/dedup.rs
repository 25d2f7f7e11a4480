//! Deduplication across boms (SPEC A§2 with the fixes of B2): a mkdir keeps its
//! first occurrence; a link and a file copy keep their last per destination; a
//! dir copy keeps its last per (source, destination, trailing slash), so two
//! dirs that only share a base name are two copies (A§7.4). Kept operations
//! stay in their own bom's slot.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{Op, PlannedOp};
use crate::fs::ImagePath;

#[derive(Hash, PartialEq, Eq)]
enum Key {
    Mkdir(ImagePath),
    Link(ImagePath),
    Dir(PathBuf, ImagePath, bool),
    File(ImagePath),
    Library(ImagePath),
}

fn key(op: &Op) -> Key {
    match op {
        Op::Mkdir { dest } => Key::Mkdir(dest.clone()),
        Op::Link { dest, .. } => Key::Link(dest.clone()),
        Op::CopyDir {
            src,
            dest,
            contents_only,
            ..
        } => Key::Dir(src.clone(), dest.clone(), *contents_only),
        Op::CopyFile { dest, .. } => Key::File(dest.clone()),
        Op::CopyLibrary { dest, .. } | Op::Implied { dest, .. } | Op::Record { dest, .. } => {
            Key::Library(dest.clone())
        }
    }
}

fn keeps_first(op: &Op) -> bool {
    matches!(
        op,
        Op::Mkdir { .. } | Op::CopyLibrary { .. } | Op::Implied { .. } | Op::Record { .. }
    )
}

/// Removes duplicates, preserving the order of the kept operations.
pub fn dedup(ops: Vec<PlannedOp>) -> Vec<PlannedOp> {
    let mut keep = vec![false; ops.len()];
    let mut seen = HashSet::new();
    for (i, p) in ops.iter().enumerate() {
        if keeps_first(&p.op) {
            keep[i] = seen.insert(key(&p.op));
        }
    }
    for (i, p) in ops.iter().enumerate().rev() {
        if !keeps_first(&p.op) {
            keep[i] = seen.insert(key(&p.op));
        }
    }
    ops.into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(bom: usize, op: Op) -> PlannedOp {
        PlannedOp { bom, at: None, op }
    }

    fn file(src: &str, dest: &str) -> Op {
        Op::CopyFile {
            src: src.into(),
            dest: ImagePath::parse(dest).unwrap(),
            autodep: true,
        }
    }

    fn dir(src: &str, dest: &str, contents_only: bool) -> Op {
        Op::CopyDir {
            src: src.into(),
            dest: ImagePath::parse(dest).unwrap(),
            contents_only,
            entries: vec![],
        }
    }

    #[test]
    fn first_mkdir_last_file_and_link() {
        let ops = vec![
            op(
                0,
                Op::Mkdir {
                    dest: ImagePath::parse("/bin").unwrap(),
                },
            ),
            op(0, file("a/x", "/bin/x")),
            op(
                0,
                Op::Link {
                    target: "a".into(),
                    dest: ImagePath::parse("/l").unwrap(),
                },
            ),
            op(
                1,
                Op::Mkdir {
                    dest: ImagePath::parse("/bin").unwrap(),
                },
            ),
            op(1, file("b/x", "/bin/x")),
            op(
                1,
                Op::Link {
                    target: "b".into(),
                    dest: ImagePath::parse("/l").unwrap(),
                },
            ),
        ];
        let kept: Vec<_> = dedup(ops)
            .into_iter()
            .map(|p| (p.bom, format!("{:?}", p.op)))
            .collect();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].0, 0);
        assert!(kept[1].1.contains("b/x") && kept[1].0 == 1);
        assert!(kept[2].1.contains("target: \"b\""));
    }

    #[test]
    fn same_base_name_dirs_are_two_copies() {
        let ops = vec![
            op(0, dir("a/lib", "/", false)),
            op(0, dir("b/lib", "/", true)),
            op(1, dir("a/lib", "/", false)),
        ];
        let kept = dedup(ops);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].bom, 0);
        assert_eq!(kept[1].bom, 1);
    }
}
