//! Safe reading of the ELF facts the dynamic loader looks at: identity
//! (class, byte order, OS ABI, machine, type), the interpreter, and the
//! dynamic entries that drive library search.
//!
//! ELF input is untrusted (DESIGN invariant 4): every offset and count is
//! checked against the file size, so a malformed file gives an [`ElfError`],
//! never a panic and never an allocation larger than the file.

mod notes;
mod parse;
mod symbols;

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

pub use notes::{DlopenDep, Priority};
pub use symbols::{Definition, Reference, Symbols, VersionNeed};

/// `e_type` of a shared object or position-independent executable.
pub const ET_DYN: u16 = 3;
/// `e_type` of a fixed-address executable.
pub const ET_EXEC: u16 = 2;

/// `EI_CLASS`: the word size of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Class {
    Elf32,
    Elf64,
}

/// `EI_DATA`: the byte order of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Endian {
    Little,
    Big,
}

/// The loader-relevant content of one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFile {
    pub class: Class,
    pub data: Endian,
    pub osabi: u8,
    pub abiversion: u8,
    pub machine: u16,
    pub flags: u32,
    /// `e_type` (ET_EXEC, ET_DYN, ...).
    pub kind: u16,
    /// PT_INTERP up to its first NUL.
    pub interp: Option<String>,
    /// Whether the file has a PT_DYNAMIC segment: without one the loader
    /// has nothing to do (a static executable).
    pub dynamic: bool,
    /// DT_NEEDED in file order.
    pub needed: Vec<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub soname: Option<String>,
    /// DF_1_NODEFLIB in DT_FLAGS_1: skip the cache and the system directories.
    pub nodeflib: bool,
    /// DF_1_PIE in DT_FLAGS_1: the object is a position-independent
    /// executable, not a library (see [`ElfFile::is_static_pie`]).
    pub pie: bool,
    /// DT_FILTER entries.
    pub filters: Vec<String>,
    /// DT_AUXILIARY entries.
    pub auxiliary: Vec<String>,
    /// The libraries the object says it may `dlopen` (its `.note.dlopen` notes).
    pub dlopen: Vec<DlopenDep>,
}

/// What is wrong with a file that starts like an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (no ELF magic)")]
    NotElf,
    #[error("truncated ELF file: {0} lies beyond the end of the file")]
    Truncated(&'static str),
    #[error("invalid ELF {field}: {value}")]
    Invalid { field: &'static str, value: u64 },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
}

impl ElfFile {
    /// Parses the bytes of a whole ELF file.
    pub fn parse(bytes: &[u8]) -> Result<ElfFile, ElfError> {
        parse::parse(parse::Bytes::Mem(bytes))
    }

    /// A static-pie executable (`gcc -static-pie`): ET_DYN with a PT_DYNAMIC
    /// (it relocates itself) and DF_1_PIE, but no PT_INTERP. The kernel runs
    /// it without a loader and it loads no library, so it needs neither:
    /// `ldd` says "statically linked". A shared library has no PT_INTERP
    /// either but lacks DF_1_PIE; a dynamic PIE has a PT_INTERP.
    pub fn is_static_pie(&self) -> bool {
        self.kind == ET_DYN && self.interp.is_none() && self.dynamic && self.pie
    }

    /// Whether the loader has nothing to load for this file: no PT_DYNAMIC
    /// (a static executable) or a static-pie.
    pub fn needs_no_loader(&self) -> bool {
        !self.dynamic || self.is_static_pie()
    }
}

/// Whether `bytes` start with the ELF magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The first bytes of every ELF file.
const MAGIC: &[u8] = b"\x7fELF";

/// How much of a file is read at once to find the magic and the headers.
const HEAD_BYTES: usize = 1024;

/// Reads and parses `path`.
///
/// Returns `Ok(None)` when the file is not ELF at all (no magic, or shorter
/// than the magic) so that callers walking whole trees can skip data files
/// at the cost of one small read; `Err` when it is ELF but malformed or
/// cannot be read.
pub fn read_file(path: &Path) -> Result<Option<ElfFile>, ElfError> {
    read_opened(path, fs::File::open(path))
}

/// [`read_file`] of a file the caller opened (e.g. relative to its
/// directory); `path` names it in errors.
pub fn read_opened(path: &Path, file: io::Result<fs::File>) -> Result<Option<ElfFile>, ElfError> {
    let io = |e: io::Error| ElfError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut file = file.map_err(io)?;
    // One read brings the magic and, for most files, every header; parsing
    // reads further itself. Reading stops early only to get the magic whole.
    let mut head = [0u8; HEAD_BYTES];
    let mut got = 0;
    while got < MAGIC.len() {
        match file.read(&mut head[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    let head = &head[..got];
    if !has_magic(head) {
        return Ok(None);
    }
    let len = file.metadata().map_err(io)?.len();
    let head = &head[..head.len().min(usize::try_from(len).unwrap_or(usize::MAX))];
    parse::parse(parse::Bytes::File {
        file: &file,
        len,
        head,
    })
    .map(Some)
}

/// Reads the dynamic symbols and symbol versions of the ELF file at `path`, as the loader binds
/// them. `Ok(None)`: the file has no dynamic symbol table (a static program).
pub fn read_symbols(path: &Path) -> Result<Option<Symbols>, ElfError> {
    let io = |e: io::Error| ElfError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    parse::symbols(parse::Bytes::File {
        file: &file,
        len,
        head: &[],
    })
}

#[cfg(test)]
mod tests;
