//! The dynamic symbols of an object and their versions, read as the loader reads them: through
//! the dynamic section (DT_SYMTAB, DT_STRTAB, DT_VERSYM, DT_VERDEF, DT_VERNEED), with the number
//! of symbols taken from DT_HASH or DT_GNU_HASH, never from section headers (which a stripped
//! object may lack and the loader never reads).
//!
//! Every count and offset is bounded by the bytes the segments map, so hostile input gives an
//! error or fewer symbols, never a panic or an allocation beyond the file.

use std::collections::HashMap;

use super::parse::{Reader, Segment, dynamic_entries, read_mapped};
use super::{Class, ElfError};

const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;

const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const STB_LOCAL: u8 = 0;
const STB_WEAK: u8 = 2;
const STT_SECTION: u8 = 3;
const STT_FILE: u8 = 4;
const STT_TLS: u8 = 6;
/// The hidden bit of a `.gnu.version` entry: the definition is not the default version.
const VERSYM_HIDDEN: u16 = 0x8000;
const VER_FLG_BASE: u16 = 1;
const VER_FLG_WEAK: u16 = 2;

/// Bounds on what one object may make us read: no real object comes near them.
const MAX_SYMBOLS: u64 = 1 << 22;
const MAX_VERSION_ENTRIES: u64 = 1 << 16;
const MAX_TABLE_BYTES: u64 = 256 << 20;

/// One definition of a name: its version, as `.gnu.version` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    /// The version index (1 global/unversioned, 2.. a `.gnu.version_d` entry); None when the
    /// object has no `.gnu.version` at all.
    pub index: Option<u16>,
    /// Not the default version (`name@VER`, not `name@@VER`).
    pub hidden: bool,
}

/// An undefined symbol the object needs bound at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    /// The version it was linked against: an index into [`Symbols::needs`].
    pub need: Option<usize>,
}

/// A version the object requires of one of its libraries (`.gnu.version_r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNeed {
    /// The library's soname as the link editor recorded it.
    pub file: String,
    pub version: String,
    /// `VER_FLG_WEAK`: glibc only warns when it is missing.
    pub weak: bool,
    /// Its index in `.gnu.version` (`vna_other`).
    pub index: u16,
}

/// What one object defines and needs, by symbol and version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    /// Defined, exported names with each definition, sorted by name (a name with several
    /// versions has several entries).
    pub defined: Vec<(String, Definition)>,
    /// Undefined, non-weak references (weak ones may stay unbound).
    pub references: Vec<Reference>,
    pub needs: Vec<VersionNeed>,
    /// The versions the object defines (`.gnu.version_d`), by index, the base entry included.
    pub versions: Vec<(u16, String)>,
    /// Whether the object has a `.gnu.version_d` table: glibc checks required versions only
    /// against objects that define versions.
    pub has_version_table: bool,
}

impl Symbols {
    /// Whether the object defines the version `name` (the base entry, its own soname, aside).
    pub fn defines_version(&self, name: &str) -> bool {
        self.versions.iter().any(|(i, v)| *i >= 2 && v == name)
    }

    /// The name of a version index, as the loader numbers them: the definitions' and the
    /// requirements' indexes share one space (a program's copy-relocated `stdout` is defined at
    /// the index of the GLIBC_2.2.5 it requires of libc).
    pub fn version_name(&self, index: u16) -> Option<&str> {
        self.versions
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, n)| n.as_str())
            .or_else(|| {
                self.needs
                    .iter()
                    .find(|n| n.index == index)
                    .map(|n| n.version.as_str())
            })
    }

    /// Whether `name` at `version` (None: unversioned) is defined here in a way the loader's
    /// lookup accepts (glibc's `check_match`): a versioned reference takes the definition of
    /// that version, or an unversioned one that is not hidden; an unversioned reference takes
    /// a definition of index 1 or 2, or a versioned one that is not hidden.
    pub fn defines(&self, name: &str, version: Option<&str>) -> bool {
        let start = self.defined.partition_point(|(n, _)| n.as_str() < name);
        self.defined[start..]
            .iter()
            .take_while(|(n, _)| n == name)
            .any(|(_, d)| {
                let Some(index) = d.index else {
                    return true;
                };
                match version {
                    Some(v) => (index <= 1 && !d.hidden) || self.version_name(index) == Some(v),
                    None => index <= 2 || !d.hidden,
                }
            })
    }
}

/// The tables the dynamic section points at, as virtual addresses.
struct Tables {
    symtab: u64,
    syment: u64,
    strtab: u64,
    strsz: u64,
    versym: Option<u64>,
    verdef: Option<(u64, u64)>,
    verneed: Option<(u64, u64)>,
}

/// Reads the symbols of an object whose dynamic section is `dynamic`. `Ok(None)`: the object
/// has no symbol table or no hash table to count its symbols by.
pub(super) fn read(
    r: &Reader,
    dynamic: &Segment,
    segments: &[Segment],
) -> Result<Option<Symbols>, ElfError> {
    let entries = dynamic_entries(r, dynamic)?;
    let value = |tag| entries.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let (Some(symtab), Some(strtab)) = (value(DT_SYMTAB), value(DT_STRTAB)) else {
        return Ok(None);
    };
    let word = r.word_size();
    let syment = value(DT_SYMENT).unwrap_or(if word == 8 { 24 } else { 16 });
    if syment != (if word == 8 { 24 } else { 16 }) {
        return Err(ElfError::Invalid {
            field: "DT_SYMENT",
            value: syment,
        });
    }
    let Some(count) = symbol_count(r, segments, value(DT_HASH), value(DT_GNU_HASH))? else {
        return Ok(None);
    };
    let tables = Tables {
        symtab,
        syment,
        strtab,
        strsz: value(DT_STRSZ)
            .unwrap_or(MAX_TABLE_BYTES)
            .min(MAX_TABLE_BYTES),
        versym: value(DT_VERSYM),
        verdef: value(DT_VERDEF).zip(value(DT_VERDEFNUM)),
        verneed: value(DT_VERNEED).zip(value(DT_VERNEEDNUM)),
    };
    read_tables(r, segments, &tables, count).map(Some)
}

fn read_tables(
    r: &Reader,
    segments: &[Segment],
    t: &Tables,
    count: u64,
) -> Result<Symbols, ElfError> {
    let strings = read_mapped(r, segments, t.strtab, t.strsz, "dynamic string table")?;
    let string = |offset: u32| -> Result<String, ElfError> {
        let tail = strings
            .get(offset as usize..)
            .ok_or(ElfError::Truncated("dynamic string"))?;
        let end = tail
            .iter()
            .position(|b| *b == 0)
            .ok_or(ElfError::Truncated("dynamic string"))?;
        Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    let symbols = read_mapped(r, segments, t.symtab, count * t.syment, "dynamic symbols")?;
    let versym = match t.versym {
        Some(addr) => Some(read_mapped(
            r,
            segments,
            addr,
            count * 2,
            "symbol versions",
        )?),
        None => None,
    };
    let mut out = Symbols::default();
    if let Some((addr, num)) = t.verdef {
        out.has_version_table = true;
        for (index, flags, name) in version_definitions(r, segments, addr, num)? {
            // The base entry names the object itself, never a version a symbol has.
            let index = if flags & VER_FLG_BASE != 0 { 1 } else { index };
            out.versions.push((index, string(name)?));
        }
    }
    // Version index of a reference → its entry in `needs`.
    let mut needed: HashMap<u16, usize> = HashMap::new();
    if let Some((addr, num)) = t.verneed {
        for (file, index, flags, name) in version_needs(r, segments, addr, num)? {
            needed.insert(index, out.needs.len());
            out.needs.push(VersionNeed {
                file: string(file)?,
                version: string(name)?,
                weak: flags & VER_FLG_WEAK != 0,
                index,
            });
        }
    }
    let syms = r.over(&symbols);
    let vers = versym.as_deref().map(|v| r.over(v));
    // Symbol 0 is the undefined null symbol.
    for i in 1..count.min(symbols.len() as u64 / t.syment) {
        let s = symbol(&syms, i * t.syment)?;
        if s.name == 0 || matches!(s.kind, STT_SECTION | STT_FILE) || s.bind == STB_LOCAL {
            continue;
        }
        let versym = match &vers {
            Some(v) => Some(v.u16(i * 2, "symbol version")?),
            None => None,
        };
        if s.shndx == SHN_UNDEF {
            if s.bind == STB_WEAK {
                continue;
            }
            let need = versym
                .map(|v| v & !VERSYM_HIDDEN)
                .filter(|v| *v >= 2)
                .and_then(|v| needed.get(&v).copied());
            out.references.push(Reference {
                name: string(s.name)?,
                need,
            });
        } else {
            // glibc's lookup skips a definition at address 0 unless absolute or TLS.
            if s.value == 0 && s.shndx != SHN_ABS && s.kind != STT_TLS {
                continue;
            }
            let index = versym.map(|v| v & !VERSYM_HIDDEN);
            if index == Some(0) {
                continue;
            }
            let def = Definition {
                index,
                hidden: versym.is_some_and(|v| v & VERSYM_HIDDEN != 0),
            };
            out.defined.push((string(s.name)?, def));
        }
    }
    out.defined.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

struct Sym {
    name: u32,
    bind: u8,
    kind: u8,
    shndx: u16,
    value: u64,
}

fn symbol(r: &Reader, at: u64) -> Result<Sym, ElfError> {
    let what = "dynamic symbol";
    let (name, info, shndx, value) = match r.class {
        Class::Elf64 => (
            r.u32(at, what)?,
            r.u8(at + 4, what)?,
            r.u16(at + 6, what)?,
            r.word(at + 8, what)?,
        ),
        Class::Elf32 => (
            r.u32(at, what)?,
            r.u8(at + 12, what)?,
            r.u16(at + 14, what)?,
            r.word(at + 4, what)?,
        ),
    };
    Ok(Sym {
        name,
        bind: info >> 4,
        kind: info & 0xf,
        shndx,
        value,
    })
}

/// Reads a chain of version entries starting at `addr`, each followed through its `next`
/// offset, with at most `num` entries; `entry` reads one (at an offset into the table) and
/// returns its value and its `next`.
fn version_chain<T>(
    r: &Reader,
    segments: &[Segment],
    addr: u64,
    num: u64,
    what: &'static str,
    mut entry: impl FnMut(&Reader, u64, &mut Vec<T>) -> Result<u64, ElfError>,
) -> Result<Vec<T>, ElfError> {
    if num > MAX_VERSION_ENTRIES {
        return Err(ElfError::Invalid {
            field: what,
            value: num,
        });
    }
    // The tables are small and their entries packed: one read of a size that holds `num`
    // entries with many names each (what lies beyond is never reached, or gives an error).
    let table = read_mapped(
        r,
        segments,
        addr,
        (num * 1024 + 4096).min(MAX_TABLE_BYTES),
        what,
    )?;
    let t = r.over(&table);
    let mut out = Vec::new();
    let mut at = 0u64;
    for _ in 0..num {
        let next = entry(&t, at, &mut out)?;
        if next == 0 {
            break;
        }
        at = at.checked_add(next).ok_or(ElfError::Truncated(what))?;
    }
    Ok(out)
}

/// `.gnu.version_d`: (index, flags, name offset) of each definition's first name.
fn version_definitions(
    r: &Reader,
    segments: &[Segment],
    addr: u64,
    num: u64,
) -> Result<Vec<(u16, u16, u32)>, ElfError> {
    let what = "version definition";
    version_chain(r, segments, addr, num, what, |t, at, out| {
        let flags = t.u16(at + 2, what)?;
        let index = t.u16(at + 4, what)?;
        let aux = u64::from(t.u32(at + 12, what)?);
        let name = t.u32(at + aux, what)?;
        out.push((index, flags, name));
        Ok(u64::from(t.u32(at + 16, what)?))
    })
}

/// `.gnu.version_r`: (file, version index, flags, version name) of every required version.
fn version_needs(
    r: &Reader,
    segments: &[Segment],
    addr: u64,
    num: u64,
) -> Result<Vec<(u32, u16, u16, u32)>, ElfError> {
    let what = "version requirement";
    version_chain(r, segments, addr, num, what, |t, at, out| {
        let count = t.u16(at + 2, what)?;
        let file = t.u32(at + 4, what)?;
        let mut aux = at + u64::from(t.u32(at + 8, what)?);
        for _ in 0..count {
            let flags = t.u16(aux + 4, what)?;
            let index = t.u16(aux + 6, what)?;
            let name = t.u32(aux + 8, what)?;
            out.push((file, index, flags, name));
            match t.u32(aux + 12, what)? {
                0 => break,
                next => aux += u64::from(next),
            }
        }
        Ok(u64::from(t.u32(at + 12, what)?))
    })
}

/// The number of dynamic symbols: DT_HASH's `nchain`, or for DT_GNU_HASH one past the last
/// symbol its chains reach (the loader needs no count; this is the standard way to find one).
fn symbol_count(
    r: &Reader,
    segments: &[Segment],
    hash: Option<u64>,
    gnu_hash: Option<u64>,
) -> Result<Option<u64>, ElfError> {
    if let Some(addr) = hash {
        let head = read_mapped(r, segments, addr, 8, "DT_HASH")?;
        let count = u64::from(r.over(&head).u32(4, "DT_HASH")?);
        return bounded(count).map(Some);
    }
    let Some(addr) = gnu_hash else {
        return Ok(None);
    };
    let head = read_mapped(r, segments, addr, 16, "DT_GNU_HASH")?;
    let h = r.over(&head);
    let nbuckets = u64::from(h.u32(0, "DT_GNU_HASH")?);
    let symoffset = u64::from(h.u32(4, "DT_GNU_HASH")?);
    let bloom_size = u64::from(h.u32(8, "DT_GNU_HASH")?);
    let buckets_at = 16 + bloom_size * r.word_size();
    let table = read_mapped(
        r,
        segments,
        addr,
        (buckets_at + nbuckets * 4).min(MAX_TABLE_BYTES),
        "DT_GNU_HASH",
    )?;
    let t = r.over(&table);
    let mut last = 0u64;
    for b in 0..nbuckets {
        last = last.max(u64::from(t.u32(buckets_at + b * 4, "DT_GNU_HASH bucket")?));
    }
    if last < symoffset {
        return Ok(Some(symoffset));
    }
    // Walk the last bucket's chain to the entry whose low bit ends it.
    let chain_at = addr + buckets_at + nbuckets * 4;
    let mut index = last;
    loop {
        bounded(index)?;
        let at = chain_at + (index - symoffset) * 4;
        let word = read_mapped(r, segments, at, 4, "DT_GNU_HASH chain")?;
        if word.len() < 4 {
            return Err(ElfError::Truncated("DT_GNU_HASH chain"));
        }
        if r.over(&word).u32(0, "DT_GNU_HASH chain")? & 1 == 1 {
            return Ok(Some(index + 1));
        }
        index += 1;
    }
}

fn bounded(count: u64) -> Result<u64, ElfError> {
    if count > MAX_SYMBOLS {
        return Err(ElfError::Invalid {
            field: "symbol count",
            value: count,
        });
    }
    Ok(count)
}
