//! The error type shared by every stage, and the exit statuses of SPEC B1.

use std::fmt;
use std::path::PathBuf;

/// The class of an error; each maps to one documented exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Command-line usage error (exit 1).
    Usage,
    /// Libraries a listed file needs could not be found (exit 248).
    MissingLibraries,
    /// A `hash` did not match the file (exit 249).
    HashMismatch,
    /// A link could not be created (exit 251).
    Link,
    /// A directory could not be created or copied (exit 252).
    Dir,
    /// The bom is invalid: syntax, schema, include cycle, escape, undefined variable (exit 253).
    InvalidBom,
    /// A file could not be copied (exit 254).
    FileCopy,
    /// A bom could not be read, an include or a source was not found (exit 255).
    NotFound,
}

impl Status {
    /// The process exit status for this class (SPEC B1).
    pub fn code(self) -> u8 {
        match self {
            Status::Usage => 1,
            Status::MissingLibraries => 248,
            Status::HashMismatch => 249,
            Status::Link => 251,
            Status::Dir => 252,
            Status::InvalidBom => 253,
            Status::FileCopy => 254,
            Status::NotFound => 255,
        }
    }
}

/// A position in a bom file, printed as `file:line:column` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLoc {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// An error with its exit class and a complete, human-readable message that
/// already says what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// An error located in a bom file: the message is prefixed with `file:line:column: `.
    pub fn at(status: Status, loc: &SourceLoc, message: impl fmt::Display) -> Self {
        Error::new(status, format!("{loc}: {message}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
