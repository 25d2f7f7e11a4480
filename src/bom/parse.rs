//! Parsing one bom file: YAML → located, checked, variable-expanded [`Bom`].

use std::path::Path;

use serde_saphyr::{Location, MessageFormatter, Spanned};

use super::raw::{
    Fields, Map, RawBom, RawCopy, RawFile, RawFileMap, RawLink, RawTarget, StrictBool, Text,
};
use super::{Bom, CopyEntry, FileEntry, Link, Located, Target, Warning, suggest, vars};
use crate::error::{Error, SourceLoc, Status};

/// Looks a variable up by name.
pub(super) type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses the bytes of the bom found at `path`; returns the bom and the
/// warnings (unknown keys) it gave.
pub(super) fn parse(path: &Path, bytes: &[u8], vars: Vars) -> Result<(Bom, Vec<Warning>), Error> {
    let text = utf8(path, bytes)?;
    let options = serde_saphyr::options! { strict_booleans: true };
    let raw: Option<Spanned<Map<RawBom>>> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_error(path, &e))?;
    let raw = raw
        .ok_or_else(|| Error::new(Status::InvalidBom, format!("{}: empty bom", path.display())))?;
    let mut conv = Converter {
        path,
        text,
        vars,
        warnings: Vec::new(),
    };
    let bom = conv.bom(raw.value)?;
    Ok((bom, conv.warnings))
}

/// The text of a bom, or 253 naming where the first invalid byte is.
fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        let loc = SourceLoc {
            file: path.to_path_buf(),
            line,
            column,
        };
        Error::at(Status::InvalidBom, &loc, "the bom is not valid UTF-8")
    })
}

/// A YAML syntax or type error as 253 `file:line:column: message`.
fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> Error {
    let inner = err.without_snippet();
    let message = serde_saphyr::DefaultMessageFormatter.format_message(inner);
    let message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let message = plain_words(&message);
    match err.location() {
        Some(l) => Error::at(Status::InvalidBom, &source_loc(path, &l), message),
        None => Error::new(Status::InvalidBom, format!("{}: {message}", path.display())),
    }
}

/// Rewords the parser's messages that speak of parser internals or of its API.
fn plain_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if message.starts_with("multiple YAML documents detected") {
        return "a bom must be a single YAML document".to_string();
    }
    message
        .replace("expected sequence start", "expected a list")
        .replace("expected mapping start", "expected a map")
        .replace("expected string scalar", "expected a string")
}

fn source_loc(path: &Path, l: &Location) -> SourceLoc {
    SourceLoc {
        file: path.to_path_buf(),
        line: usize::try_from(l.line()).unwrap_or(usize::MAX),
        column: usize::try_from(l.column()).unwrap_or(usize::MAX),
    }
}

/// Turns the raw schema into the public one, collecting warnings.
struct Converter<'a> {
    path: &'a Path,
    text: &'a str,
    vars: Vars<'a>,
    warnings: Vec<Warning>,
}

impl Converter<'_> {
    fn loc(&self, l: &Location) -> SourceLoc {
        source_loc(self.path, l)
    }

    fn bom(&mut self, raw: Map<RawBom>) -> Result<Bom, Error> {
        self.warn_unknown::<RawBom>(&raw.unknown, "bom");
        let RawBom {
            includes,
            excludes,
            targets,
        } = raw.fields;
        let includes = self.texts(includes, "includes")?;
        let excludes = self.texts(excludes, "excludes")?;
        let mut out = Vec::new();
        for target in targets.unwrap_or_default() {
            out.push(self.target(target)?);
        }
        Ok(Bom {
            path: self.path.to_path_buf(),
            includes,
            excludes: excludes.into_iter().map(|e| e.value).collect(),
            targets: out,
        })
    }

    fn target(&mut self, raw: Spanned<Map<RawTarget>>) -> Result<Target, Error> {
        let map_loc = self.loc(&raw.referenced);
        self.warn_unknown::<RawTarget>(&raw.value.unknown, "target");
        let fields = raw.value.fields;
        let target = self.required(fields.target, &map_loc, "a target needs `target`")?;
        let target = self.expand(target)?;
        let mkdirs = self.expand_all(self.texts(fields.mkdirs, "mkdirs")?)?;
        let mut createlinks = Vec::new();
        for link in fields.createlinks.unwrap_or_default() {
            createlinks.push(self.link(link)?);
        }
        let mut copy = Vec::new();
        for entry in fields.copy.unwrap_or_default() {
            copy.push(self.copy_entry(entry)?);
        }
        Ok(Target {
            target,
            mkdirs,
            createlinks,
            copy,
        })
    }

    fn link(&mut self, raw: Spanned<Map<RawLink>>) -> Result<Link, Error> {
        let map_loc = self.loc(&raw.referenced);
        self.warn_unknown::<RawLink>(&raw.value.unknown, "createlinks entry");
        let fields = raw.value.fields;
        let src = self.required(fields.src, &map_loc, "a createlinks entry needs `src`")?;
        let linkname = self.required(
            fields.linkname,
            &map_loc,
            "a createlinks entry needs `linkname`",
        )?;
        Ok(Link {
            src: self.expand(src)?,
            linkname: self.expand(linkname)?,
        })
    }

    fn copy_entry(&mut self, raw: Spanned<Map<RawCopy>>) -> Result<CopyEntry, Error> {
        let loc = self.loc(&raw.referenced);
        self.warn_unknown::<RawCopy>(&raw.value.unknown, "copy entry");
        let RawCopy { from, dirs, files } = raw.value.fields;
        if from.is_none() && dirs.is_none() && files.is_none() {
            return Err(Error::at(
                Status::InvalidBom,
                &loc,
                "copy entry needs from, files or dirs",
            ));
        }
        let from = from.map(|f| self.expand(self.located(f))).transpose()?;
        let dirs = match dirs {
            Some(d) => Some(self.expand_all(self.texts(Some(d), "dirs")?)?),
            None => None,
        };
        let files = match files {
            Some(items) => Some(
                items
                    .into_iter()
                    .map(|f| self.file(f))
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        Ok(CopyEntry {
            loc,
            from,
            dirs,
            files,
        })
    }

    fn file(&mut self, raw: Spanned<RawFile>) -> Result<FileEntry, Error> {
        let loc = self.loc(&raw.referenced);
        let map = match raw.value {
            RawFile::Name(name) => return self.file_named(name, loc),
            // As in the original, a files item must be a string or a map:
            // an unquoted number or boolean is a schema error.
            RawFile::Plain(shown) => {
                let exact = self.source_text(&raw.referenced).unwrap_or(shown);
                return Err(Error::at(
                    Status::InvalidBom,
                    &loc,
                    format!(
                        "a files item must be a file name or a map with `name`, not `{exact}`; quote it (\"{exact}\") to use it as a name"
                    ),
                ));
            }
            RawFile::Map(map) => *map,
        };
        self.warn_unknown::<RawFileMap>(&map.unknown, "files entry");
        let f = map.fields;
        let name = self.required(f.name, &loc, "a files entry needs `name`")?;
        Ok(FileEntry {
            name: self.expand(name)?,
            hash: f.hash.map(|h| self.located(h)),
            autodep: self.autodep(f.autodep)?,
            rename: f.rename.map(|r| self.expand(self.located(r))).transpose()?,
        })
    }

    /// `autodep`, true when absent.
    fn autodep(&self, value: Option<Spanned<StrictBool>>) -> Result<bool, Error> {
        let Some(value) = value else { return Ok(true) };
        match value.value {
            StrictBool::Bool(b) => Ok(b),
            StrictBool::NotBool(found) => Err(Error::at(
                Status::InvalidBom,
                &self.loc(&value.referenced),
                format!("autodep must be true or false (unquoted), not {found}"),
            )),
        }
    }

    fn file_named(&self, name: String, loc: SourceLoc) -> Result<FileEntry, Error> {
        Ok(FileEntry {
            name: self.expand(Located { value: name, loc })?,
            hash: None,
            autodep: true,
            rename: None,
        })
    }

    /// The exact source text of a plain scalar, when the parser knows its bytes.
    fn source_text(&self, l: &Location) -> Option<String> {
        let span = l.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.text
            .get(start..start.checked_add(len)?)
            .map(str::to_string)
    }

    fn located(&self, s: Spanned<String>) -> Located<String> {
        Located {
            loc: self.loc(&s.referenced),
            value: s.value,
        }
    }

    /// A required string field; `what` says what is missing.
    fn required(
        &self,
        value: Option<Spanned<String>>,
        map_loc: &SourceLoc,
        what: &str,
    ) -> Result<Located<String>, Error> {
        value
            .map(|v| self.located(v))
            .ok_or_else(|| Error::at(Status::InvalidBom, map_loc, what))
    }

    /// A list of strings; a null item is an error (null is not a name).
    fn texts(&self, list: Option<Vec<Text>>, field: &str) -> Result<Vec<Located<String>>, Error> {
        let mut out = Vec::new();
        for item in list.unwrap_or_default() {
            let loc = self.loc(&item.referenced);
            match item.value {
                Some(value) => out.push(Located { value, loc }),
                None => {
                    return Err(Error::at(
                        Status::InvalidBom,
                        &loc,
                        format!("a {field} item is null; expected a string"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn expand(&self, s: Located<String>) -> Result<Located<String>, Error> {
        match vars::expand_vars(&s.value, self.vars) {
            Ok(value) => Ok(Located { value, loc: s.loc }),
            Err(e) => Err(Error::at(
                Status::InvalidBom,
                &s.loc,
                format!("{e} in '{}'", s.value),
            )),
        }
    }

    fn expand_all(&self, list: Vec<Located<String>>) -> Result<Vec<Located<String>>, Error> {
        list.into_iter().map(|s| self.expand(s)).collect()
    }

    fn warn_unknown<T: Fields>(&mut self, unknown: &[Spanned<String>], map: &str) {
        for key in unknown {
            let mut message = format!("unknown key `{}` in {map} ignored", key.value);
            if let Some(known) = suggest::closest(&key.value, T::KEYS) {
                message.push_str(&format!("; did you mean `{known}`?"));
            }
            self.warnings.push(Warning {
                loc: self.loc(&key.referenced),
                message,
            });
        }
    }
}
