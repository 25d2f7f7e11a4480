//! The error and warning values shared by every stage, and the exit statuses
//! of SPEC B1. The library returns these; only the binary prints them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The class of an error; each maps to one documented exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Command-line usage error (exit 1).
    Usage,
    /// `run` could not enter the image: namespaces refused, a mount failed (exit 125).
    CannotEnter,
    /// `run`: the instance's `entry_points` do not hold the program (exit 126).
    Refused,
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
    /// A bom could not be read, an include or a source was not found or
    /// cannot be used (exit 255).
    NotFound,
}

impl Status {
    /// The process exit status for this class (SPEC B1).
    pub fn code(self) -> u8 {
        match self {
            Status::Usage => 1,
            Status::CannotEnter => 125,
            Status::Refused => 126,
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

/// An error: its exit class, a human-readable message that says what went
/// wrong, and, when known, the path and bom position concerned and the OS
/// error behind it, so that callers can act on them without parsing text.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: Status,
    pub message: String,
    /// Boxed: most errors have none of it, and every `Result` of the crate
    /// carries the size of `Error`.
    context: Option<Box<Context>>,
}

#[derive(Debug, Clone, Default)]
struct Context {
    path: Option<PathBuf>,
    loc: Option<SourceLoc>,
    /// The items of a list the message introduces (every missing library,
    /// every conflict): kept apart so that each is one line however its
    /// values are spelled.
    details: Vec<String>,
    /// Shared so that the error stays `Clone` (`io::Error` is not).
    source: Option<Arc<io::Error>>,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
            context: None,
        }
    }

    /// An error located in a bom file: the message is prefixed with `file:line:column: `.
    pub fn at(status: Status, loc: &SourceLoc, message: impl fmt::Display) -> Self {
        Error::new(status, format!("{loc}: {message}")).with_loc(loc.clone())
    }

    fn context(&mut self) -> &mut Context {
        self.context.get_or_insert_with(Box::default)
    }

    /// The path the error is about (metadata: the message should name it too).
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.context().path = Some(path.as_ref().to_path_buf());
        self
    }

    /// The bom position the error comes from (metadata; see [`Error::at`]).
    pub fn with_loc(mut self, loc: SourceLoc) -> Self {
        self.context().loc = Some(loc);
        self
    }

    /// The OS error behind this one: available as `source()`, and its reason
    /// is shown once after the message (not again if the message has it).
    pub fn with_source(mut self, err: io::Error) -> Self {
        self.context().source = Some(Arc::new(err));
        self
    }

    /// The items of the list the message introduces, one line each.
    pub fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.context().details.extend(details);
        self
    }

    pub fn path(&self) -> Option<&Path> {
        self.context.as_ref()?.path.as_deref()
    }

    pub fn loc(&self) -> Option<&SourceLoc> {
        self.context.as_ref()?.loc.as_ref()
    }

    pub fn details(&self) -> &[String] {
        self.context.as_ref().map_or(&[], |c| &c.details)
    }

    /// The OS error behind this one, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        self.context.as_ref()?.source.as_deref()
    }

    /// The message with the OS reason, without the details: the first line
    /// of [`Display`](fmt::Display).
    pub fn headline(&self) -> String {
        match self.os_error() {
            Some(e) if !self.message.contains(&e.to_string()) => {
                format!("{}: {e}", self.message)
            }
            _ => self.message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        for d in self.details() {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.os_error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Equal when everything a caller can see is equal (the OS errors by kind
/// and number, since `io::Error` has no equality).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        let os = |e: &Error| e.os_error().map(|s| (s.kind(), s.raw_os_error()));
        self.status == other.status
            && self.message == other.message
            && self.path() == other.path()
            && self.loc() == other.loc()
            && self.details() == other.details()
            && os(self) == os(other)
    }
}

impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a warning is about, so that callers can count, filter or escalate
/// warnings without parsing their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WarningKind {
    /// A bom key that is not part of the schema (ignored, as the original does).
    UnknownKey,
    /// An entry of a copied dir that was not copied (a socket, an unreadable file...).
    SkippedEntry,
    /// A file that looks like ELF but cannot be analysed; its libraries are not copied.
    UnusableElf,
    /// A library that was not found, where that is not an error (dirs, `--allow-missing`).
    MissingLibrary,
    /// The final check found that a program of the written image will not load.
    IncompleteImage,
    /// A loader configuration (ld.so.conf, a loader config file) was partly ignored.
    LoaderConfig,
    /// A file the image's C library opens for a function its programs import is missing
    /// (the final check), or `--implicit` could not add it.
    Implied,
}

/// Something suspicious but not fatal, returned by the library as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
    pub loc: Option<SourceLoc>,
    pub path: Option<PathBuf>,
}

impl Warning {
    pub fn new(kind: WarningKind, message: impl Into<String>) -> Self {
        Warning {
            kind,
            message: message.into(),
            loc: None,
            path: None,
        }
    }

    /// A warning located in a bom file (shown as `file:line:column: message`).
    pub fn at(kind: WarningKind, loc: &SourceLoc, message: impl Into<String>) -> Self {
        Warning {
            loc: Some(loc.clone()),
            ..Warning::new(kind, message)
        }
    }

    /// The path the warning is about (metadata: the message should name it too).
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_reason_is_shown_once() {
        let os = || io::Error::from_raw_os_error(libc::ENOENT);
        let bare = Error::new(Status::NotFound, "cannot read /x").with_source(os());
        assert_eq!(
            bare.to_string(),
            format!(
                "cannot read /x: {}",
                io::Error::from_raw_os_error(libc::ENOENT)
            )
        );
        let said = Error::new(Status::NotFound, format!("cannot read /x: {}", os()))
            .with_path("/x")
            .with_source(os());
        assert_eq!(said.to_string(), said.message);
        assert_eq!(said.path(), Some(Path::new("/x")));
        let source = std::error::Error::source(&said).unwrap();
        assert_eq!(source.to_string(), os().to_string());
    }

    #[test]
    fn details_are_one_line_each_after_the_message() {
        let e = Error::new(Status::MissingLibraries, "2 libraries are missing:")
            .with_details(["a".to_string(), "b".to_string()]);
        assert_eq!(e.to_string(), "2 libraries are missing:\n  a\n  b");
        assert_eq!(e.headline(), "2 libraries are missing:");
    }

    #[test]
    fn located_errors_keep_their_position() {
        let loc = SourceLoc {
            file: "b.yaml".into(),
            line: 3,
            column: 5,
        };
        let e = Error::at(Status::InvalidBom, &loc, "bad");
        assert_eq!(e.message, "b.yaml:3:5: bad");
        assert_eq!(e.loc(), Some(&loc));
        let w = Warning::at(WarningKind::UnknownKey, &loc, "unknown key `file`");
        assert_eq!(w.to_string(), "b.yaml:3:5: unknown key `file`");
    }

    /// Every `Result` of the crate carries an `Error`: keep it small.
    #[test]
    fn an_error_is_small() {
        assert!(std::mem::size_of::<Error>() <= 48);
    }
}
