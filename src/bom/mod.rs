//! Loading bom files: the YAML model with source locations, include
//! resolution, embedded templates and variable expansion (SPEC A§1, A§2, B1, B2).
//!
//! [`load`] reads the top bom and everything it includes, once each, and
//! returns them in the original tool's processing order. Every string that
//! names a path (`target`, `mkdirs`, links, `from`, `dirs`, file names,
//! `rename`) comes back already variable-expanded; `includes`, `excludes` and
//! `hash` do not (the original never expanded them).

mod includes;
mod parse;
mod raw;
mod suggest;
mod templates;
mod vars;

use std::path::PathBuf;

use crate::error::SourceLoc;

pub use includes::load;
pub use vars::{UndefinedVar, expand_vars};

/// A value and where it was written (1-based line and column of the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub loc: SourceLoc,
}

/// One bom file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bom {
    /// The path by which the bom was found (for messages); embedded templates
    /// show as `<embedded>/NAME`.
    pub path: PathBuf,
    pub includes: Vec<Located<String>>,
    /// rsync-style exclude patterns for this bom's dir copies; not expanded.
    pub excludes: Vec<String>,
    pub targets: Vec<Target>,
}

/// One item of `targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub target: Located<String>,
    pub mkdirs: Vec<Located<String>>,
    pub createlinks: Vec<Link>,
    pub copy: Vec<CopyEntry>,
}

/// A symlink `linkname` (inside the target) whose content is `src`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub src: Located<String>,
    pub linkname: Located<String>,
}

/// One item of `copy`; at least one of the three fields is present
/// (an empty list counts as present, null does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEntry {
    pub loc: SourceLoc,
    pub from: Option<Located<String>>,
    pub dirs: Option<Vec<Located<String>>>,
    pub files: Option<Vec<FileEntry>>,
}

/// One item of `files`, in either of its two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: Located<String>,
    /// The expected SHA-256, as written (not expanded).
    pub hash: Option<Located<String>>,
    /// Whether the file's libraries are copied too (default true).
    pub autodep: bool,
    pub rename: Option<Located<String>>,
}

/// Something suspicious but not fatal, such as an unknown key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub loc: SourceLoc,
    pub message: String,
}

/// The boms of one run and the warnings they gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBoms {
    /// Processing order, top first; each bom appears once.
    pub boms: Vec<Bom>,
    /// In the order the boms were first read (breadth-first), each bom's in
    /// source order.
    pub warnings: Vec<Warning>,
}
