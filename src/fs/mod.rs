//! Writing inside an image root: every path the boms name is an *image* path, confined to the root
//! and resolved as the image itself would resolve it (symlinks inside the root are followed relative
//! to the root, never onto the host). Files are copied atomically (temporary name, then rename) and
//! incrementally (same size and mtime → left alone), like `rsync -a`, without running any program.
//!
//! Every `io::Error` returned here already names its path ("PATH: reason"), so it can be printed as is.
//!
//! An applier uses it in this order: [`normalize_image_path`] each destination (rejecting escapes
//! before any write), [`ImageRoot::host_path`] or [`ImageRoot::create_dir_all`] to find it on the
//! host, then [`copy_file`] / [`make_symlink`]; after creating links call
//! [`ImageRoot::forget_links`], since later paths may now resolve through them. A dir copy is
//! [`scan_tree`], its entries written parents first, then [`copy_dir_metadata`] on each directory
//! children first (writing a child changes its parent's mtime).

mod copy;
mod excludes;
mod image_path;
pub mod lock;
mod root;
mod tree;
mod wildmatch;

pub use copy::{
    CopyOptions, Outcome, copy_dir_metadata, copy_file, make_symlink, remove_stale_temp_files,
};
pub use excludes::Excludes;
pub use image_path::{
    EscapeError, ImagePath, Lookup, MAX_LINK_HOPS, lookup_on_disk, resolve_in_root,
    resolve_in_root_with,
};
pub use lock::RootLock;
pub use root::ImageRoot;
pub use tree::{EntryKind, TreeEntry, TreeScan, scan_tree};

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
