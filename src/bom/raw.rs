//! The bom schema as it is written, with the source location of every value.
//!
//! Each map is read by a visitor that sees every key with its location, so
//! unknown keys become warnings instead of being silently dropped (the
//! original ignored them) and missing required keys can point at their map.
//! `#[serde(flatten)]` and untagged enums would lose the locations, so the few
//! shapes the schema needs are written by hand here.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A scalar where the schema wants a string; `None` is YAML null.
pub(super) type Text = Spanned<Option<String>>;

/// The keys of one kind of map, filled from a YAML mapping.
pub(super) trait Fields: Default {
    /// What the map is, for type errors ("a target map").
    const WHAT: &'static str;
    /// The keys this map knows, for suggestions on unknown keys.
    const KEYS: &'static [&'static str];
    /// Reads the value of `key` into `self`; returns false if the key is unknown.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// A map of known fields plus the unknown keys that were seen (with locations).
#[derive(Debug, Default)]
pub(super) struct Map<T> {
    pub fields: T,
    pub unknown: Vec<Spanned<String>>,
}

impl<'de, T: Fields> Deserialize<'de> for Map<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

struct MapVisitor<T>(PhantomData<T>);

impl<'de, T: Fields> Visitor<'de> for MapVisitor<T> {
    type Value = Map<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::WHAT)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Map<T>, A::Error> {
        let mut out = Map::<T>::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            if !out.fields.read(&key.value, &mut map)? {
                map.next_value::<IgnoredAny>()?;
                out.unknown.push(key);
            }
        }
        Ok(out)
    }
}

/// The top level of a bom file.
#[derive(Debug, Default)]
pub(super) struct RawBom {
    pub includes: Option<Vec<Text>>,
    pub excludes: Option<Vec<Text>>,
    pub targets: Option<Vec<Spanned<Map<RawTarget>>>>,
}

impl Fields for RawBom {
    const WHAT: &'static str = "a bom map (includes, excludes, targets)";
    const KEYS: &'static [&'static str] = &["includes", "excludes", "targets"];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "includes" => self.includes = map.next_value()?,
            "excludes" => self.excludes = map.next_value()?,
            "targets" => self.targets = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One item of `targets`.
#[derive(Debug, Default)]
pub(super) struct RawTarget {
    pub target: Option<Spanned<String>>,
    pub mkdirs: Option<Vec<Text>>,
    pub createlinks: Option<Vec<Spanned<Map<RawLink>>>>,
    pub copy: Option<Vec<Spanned<Map<RawCopy>>>>,
}

impl Fields for RawTarget {
    const WHAT: &'static str = "a target map (target, mkdirs, createlinks, copy)";
    const KEYS: &'static [&'static str] = &["target", "mkdirs", "createlinks", "copy"];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "target" => self.target = map.next_value()?,
            "mkdirs" => self.mkdirs = map.next_value()?,
            "createlinks" => self.createlinks = map.next_value()?,
            "copy" => self.copy = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One item of `createlinks`.
#[derive(Debug, Default)]
pub(super) struct RawLink {
    pub src: Option<Spanned<String>>,
    pub linkname: Option<Spanned<String>>,
}

impl Fields for RawLink {
    const WHAT: &'static str = "a link map (src, linkname)";
    const KEYS: &'static [&'static str] = &["src", "linkname"];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "src" => self.src = map.next_value()?,
            "linkname" => self.linkname = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One item of `copy`.
#[derive(Debug, Default)]
pub(super) struct RawCopy {
    pub from: Option<Spanned<String>>,
    pub dirs: Option<Vec<Text>>,
    pub files: Option<Vec<Spanned<RawFile>>>,
}

impl Fields for RawCopy {
    const WHAT: &'static str = "a copy entry map (from, dirs, files)";
    const KEYS: &'static [&'static str] = &["from", "dirs", "files"];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "from" => self.from = map.next_value()?,
            "dirs" => self.dirs = map.next_value()?,
            "files" => self.files = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The map form of a `files` item.
#[derive(Debug, Default)]
pub(super) struct RawFileMap {
    pub name: Option<Spanned<String>>,
    pub hash: Option<Spanned<String>>,
    pub autodep: Option<Spanned<StrictBool>>,
    pub rename: Option<Spanned<String>>,
}

impl Fields for RawFileMap {
    const WHAT: &'static str = "a file map (name, hash, autodep, rename)";
    const KEYS: &'static [&'static str] = &["name", "hash", "autodep", "rename"];
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "name" => self.name = map.next_value()?,
            "hash" => self.hash = map.next_value()?,
            "autodep" => self.autodep = map.next_value()?,
            "rename" => self.rename = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A `files` item: a name, or a map with `name`.
#[derive(Debug)]
pub(super) enum RawFile {
    /// A string scalar.
    Name(String),
    /// A plain scalar the parser read as a number or boolean: not a valid
    /// item (the caller reports it with its exact text from the source).
    Plain(String),
    Map(Box<Map<RawFileMap>>),
}

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawFileVisitor)
    }
}

struct RawFileVisitor;

impl<'de> Visitor<'de> for RawFileVisitor {
    type Value = RawFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a file name or a map with `name`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawFile, E> {
        Ok(RawFile::Name(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawFile, E> {
        Ok(RawFile::Plain(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawFile, E> {
        Err(E::custom(
            "a files item is null; expected a file name or a map with `name`",
        ))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawFile, E> {
        self.visit_unit()
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawFile, A::Error> {
        MapVisitor(PhantomData)
            .visit_map(map)
            .map(|m| RawFile::Map(Box::new(m)))
    }
}

/// A YAML boolean written as `true` or `false` (unquoted): `autodep: no` or
/// `autodep: "false"` is an error, as in the original. Other scalars are kept
/// as `NotBool` (what was found) so the error can point at the value itself.
#[derive(Debug, Clone)]
pub(super) enum StrictBool {
    Bool(bool),
    NotBool(String),
}

impl<'de> Deserialize<'de> for StrictBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictBoolVisitor)
    }
}

struct StrictBoolVisitor;

impl Visitor<'_> for StrictBoolVisitor {
    type Value = StrictBool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an unquoted boolean, true or false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictBool, E> {
        Ok(StrictBool::Bool(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictBool, E> {
        Ok(StrictBool::NotBool(format!("the string {v:?}")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictBool, E> {
        Ok(StrictBool::NotBool(format!("the number {v}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictBool, E> {
        Ok(StrictBool::NotBool(format!("the number {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictBool, E> {
        Ok(StrictBool::NotBool(format!("the number {v}")))
    }
}
