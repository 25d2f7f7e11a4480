//! Writing inside an image root: every path the boms name is an *image* path, confined to the root
//! and resolved as the image itself would resolve it (symlinks inside the root are followed relative
//! to the root, never onto the host). Files are copied atomically (temporary name, then rename) and
//! incrementally (same size and mtime → left alone), like `rsync -a`, without running any program.
//!
//! Every `io::Error` returned here already names its path ("PATH: reason"), so it can be printed
//! as is: image paths for what is in the image, host paths for sources.
//!
//! A writer uses it in this order: [`ImagePath::parse`] each destination (rejecting escapes
//! before any write), [`ImageRoot::open`] the root and take its [`RootLock`], then
//! [`ImageRoot::create_dir_all`], [`ImageRoot::make_symlink`], [`ImageRoot::make_special`] and
//! [`ImageRoot::copy_file`] with image paths (each creates its missing parents). A dir copy is
//! [`scan_tree`], its entries written parents first, then [`ImageRoot::copy_dir_metadata`] on
//! each directory children first (writing a child changes its parent's mtime); a reproducible
//! build ends with [`ImageRoot::clamp_mtimes`]. Readers (the validation, `check`) use
//! [`ImageRoot::lstat`], [`ImageRoot::stat_followed`] and [`ImageRoot::resolve`], or
//! [`rooted::resolve_in_root`] for a tree that is not being written; [`ImageRoot::walk_post_order`]
//! reads the whole image (the digest).

mod copy;
mod excludes;
mod image_path;
pub mod lock;
mod reading;
mod root;
pub mod rooted;
mod sys;
mod tree;
mod walk;
mod wildmatch;

pub use copy::{CopyOptions, ImageDir, Outcome, Scanned};
pub use excludes::Excludes;
pub use image_path::{EscapeError, ImagePath, Lookup, lookup_on_disk, resolve_in_root_with};
pub use lock::RootLock;
pub use reading::map_opened;
pub use root::ImageRoot;
pub use rooted::resolve_in_root;
pub use sys::{FileKind, Stat};
pub use tree::{EntryKind, TreeEntry, TreeScan, scan_tree};
pub use walk::Visit;

use std::io;
use std::path::Path;

/// Give an I/O error the path it concerns, keeping its kind, so the CLI can print it unchanged.
pub(crate) fn path_error(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {}", path.display(), err))
}

/// An error of `kind` about `path`, for conditions the OS does not report by itself.
pub(crate) fn path_problem(path: &Path, kind: io::ErrorKind, reason: &str) -> io::Error {
    io::Error::new(kind, format!("{}: {}", path.display(), reason))
}
