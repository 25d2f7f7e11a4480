//! Bounded parsing of the ELF header, program headers and dynamic section,
//! the way ld.so reads them: the dynamic string table is found through the
//! PT_LOAD segments (DT_STRTAB is a virtual address), not through sections.

use std::borrow::Cow;
use std::os::unix::fs::FileExt;

use super::{Class, ElfError, ElfFile, Endian, has_magic};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
/// The most bytes of one PT_NOTE segment read (real ones hold a few hundred).
const MAX_NOTES: u64 = 1 << 20;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DT_AUXILIARY: u64 = 0x7fff_fffd;
const DT_FILTER: u64 = 0x7fff_ffff;
const DF_1_NODEFLIB: u64 = 0x800;
const DF_1_PIE: u64 = 0x0800_0000;

/// Where the bytes come from: memory, or a file read at offsets on demand so
/// that only the headers, the dynamic section and its string table are read
/// (a few KiB), never the whole file.
#[derive(Clone, Copy)]
pub(super) enum Bytes<'a> {
    Mem(&'a [u8]),
    /// A file of `len` bytes whose first bytes, `head`, are already read (the
    /// headers usually lie there, saving a read each).
    File {
        file: &'a std::fs::File,
        len: u64,
        head: &'a [u8],
    },
}

impl Bytes<'_> {
    fn len(&self) -> u64 {
        match self {
            Bytes::Mem(b) => b.len() as u64,
            Bytes::File { len, .. } => *len,
        }
    }
}

/// Class- and byte-order-aware reads, each bounded by the source's length.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    bytes: Bytes<'a>,
    pub(super) class: Class,
    data: Endian,
}

impl<'a> Reader<'a> {
    fn slice(&self, offset: u64, len: u64, what: &'static str) -> Result<Cow<'a, [u8]>, ElfError> {
        let end = offset.checked_add(len).ok_or(ElfError::Truncated(what))?;
        if end > self.bytes.len() {
            return Err(ElfError::Truncated(what));
        }
        let start = usize::try_from(offset).map_err(|_| ElfError::Truncated(what))?;
        let len = usize::try_from(len).map_err(|_| ElfError::Truncated(what))?;
        match self.bytes {
            Bytes::Mem(b) => b
                .get(start..start + len)
                .map(Cow::Borrowed)
                .ok_or(ElfError::Truncated(what)),
            Bytes::File { head, .. } if start + len <= head.len() => {
                Ok(Cow::Borrowed(&head[start..start + len]))
            }
            Bytes::File { file, .. } => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|_| ElfError::Truncated(what))?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// `len` bytes from `offset`, when they lie inside the source.
    pub(super) fn bytes_at(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        self.slice(offset, len, "bytes").ok().map(Cow::into_owned)
    }

    /// A reader over bytes already read (a table), with the same class and order.
    pub(super) fn over(&self, bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes: Bytes::Mem(bytes),
            ..*self
        }
    }

    fn uint(&self, offset: u64, size: u64, what: &'static str) -> Result<u64, ElfError> {
        let raw = self.slice(offset, size, what)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Ok(match self.data {
            Endian::Big => raw.iter().fold(0, fold),
            Endian::Little => raw.iter().rev().fold(0, fold),
        })
    }

    pub(super) fn u8(&self, offset: u64, what: &'static str) -> Result<u8, ElfError> {
        // A 1-byte read cannot exceed u8.
        Ok(self.uint(offset, 1, what)? as u8)
    }

    pub(super) fn u16(&self, offset: u64, what: &'static str) -> Result<u16, ElfError> {
        // A 2-byte read cannot exceed u16.
        Ok(self.uint(offset, 2, what)? as u16)
    }

    pub(super) fn u32(&self, offset: u64, what: &'static str) -> Result<u32, ElfError> {
        Ok(self.uint(offset, 4, what)? as u32)
    }

    /// A word: 4 bytes in ELF32, 8 in ELF64.
    pub(super) fn word(&self, offset: u64, what: &'static str) -> Result<u64, ElfError> {
        self.uint(offset, self.word_size(), what)
    }

    pub(super) fn word_size(&self) -> u64 {
        match self.class {
            Class::Elf32 => 4,
            Class::Elf64 => 8,
        }
    }
}

/// One program header, normalised to 64-bit fields.
pub(super) struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    align: u64,
}

/// The largest dynamic string table read (real ones are well under a few MiB;
/// this bounds memory on hostile input).
const MAX_STRTAB: u64 = 32 << 20;

/// The largest ELF header (ELF64).
const EHDR_SIZE: u64 = 64;

/// The ELF header's facts and the program headers, with a reader of the file set to its class
/// and byte order.
struct Layout<'a> {
    reader: Reader<'a>,
    ident: [u8; 16],
    kind: u16,
    machine: u16,
    flags: u32,
    segments: Vec<Segment>,
}

fn layout(bytes: Bytes) -> Result<Layout, ElfError> {
    let head_len = bytes.len().min(EHDR_SIZE);
    let probe = Reader {
        bytes,
        class: Class::Elf64,
        data: Endian::Little,
    };
    let head = probe.slice(0, head_len, "ELF header")?;
    if !has_magic(&head) {
        return Err(ElfError::NotElf);
    }
    let ident: [u8; 16] = head
        .get(..16)
        .and_then(|i| i.try_into().ok())
        .ok_or(ElfError::Truncated("e_ident"))?;
    let class = match ident[4] {
        1 => Class::Elf32,
        2 => Class::Elf64,
        v => return invalid("EI_CLASS", v.into()),
    };
    let data = match ident[5] {
        1 => Endian::Little,
        2 => Endian::Big,
        v => return invalid("EI_DATA", v.into()),
    };
    let file_reader = Reader { bytes, class, data };
    let r = file_reader.over(&head);
    let kind = r.u16(16, "e_type")?;
    let machine = r.u16(18, "e_machine")?;
    let (phoff, flags, phentsize, phnum) = match class {
        Class::Elf32 => (
            r.word(28, "e_phoff")?,
            r.u32(36, "e_flags")?,
            r.u16(42, "e_phentsize")?,
            r.u16(44, "e_phnum")?,
        ),
        Class::Elf64 => (
            r.word(32, "e_phoff")?,
            r.u32(48, "e_flags")?,
            r.u16(54, "e_phentsize")?,
            r.u16(56, "e_phnum")?,
        ),
    };
    let segments = program_headers(&file_reader, phoff, phentsize, phnum)?;
    Ok(Layout {
        reader: file_reader,
        ident,
        kind,
        machine,
        flags,
        segments,
    })
}

/// The dynamic symbols and versions of an object; None without PT_DYNAMIC or a symbol table.
pub(super) fn symbols(bytes: Bytes) -> Result<Option<super::Symbols>, ElfError> {
    let l = layout(bytes)?;
    match l.segments.iter().find(|s| s.kind == PT_DYNAMIC) {
        Some(dynamic) => super::symbols::read(&l.reader, dynamic, &l.segments),
        None => Ok(None),
    }
}

pub(super) fn parse(bytes: Bytes) -> Result<ElfFile, ElfError> {
    let Layout {
        reader: r,
        ident,
        kind,
        machine,
        flags,
        segments,
    } = layout(bytes)?;
    let (class, data) = (r.class, r.data);
    let mut file = ElfFile {
        class,
        data,
        osabi: ident[7],
        abiversion: ident[8],
        machine,
        flags,
        kind,
        interp: None,
        dynamic: false,
        needed: Vec::new(),
        rpath: None,
        runpath: None,
        soname: None,
        nodeflib: false,
        pie: false,
        filters: Vec::new(),
        auxiliary: Vec::new(),
        dlopen: Vec::new(),
    };
    if let Some(seg) = segments.iter().find(|s| s.kind == PT_INTERP) {
        let raw = r.slice(seg.offset, seg.filesz, "PT_INTERP")?;
        // The kernel opens PT_INTERP as a C string: it ends at the first NUL.
        let path = raw.split(|b| *b == 0).next().unwrap_or(&raw);
        file.interp = Some(String::from_utf8_lossy(path).into_owned());
    }
    if let Some(seg) = segments.iter().find(|s| s.kind == PT_DYNAMIC) {
        file.dynamic = true;
        read_dynamic(&r, seg, &segments, &mut file)?;
    }
    for seg in segments.iter().filter(|s| s.kind == PT_NOTE) {
        // Notes are metadata: one the loader would not read does not make the file unusable.
        let Ok(bytes) = r.slice(seg.offset, seg.filesz.min(MAX_NOTES), "PT_NOTE") else {
            continue;
        };
        file.dlopen
            .extend(super::notes::dlopen_notes(&r.over(&bytes), seg.align));
    }
    Ok(file)
}

fn invalid<T>(field: &'static str, value: u64) -> Result<T, ElfError> {
    Err(ElfError::Invalid { field, value })
}

fn program_headers(
    r: &Reader,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
) -> Result<Vec<Segment>, ElfError> {
    if phoff == 0 || phnum == 0 {
        return Ok(Vec::new());
    }
    let expected = match r.class {
        Class::Elf32 => 32,
        Class::Elf64 => 56,
    };
    if phentsize != expected {
        return invalid("e_phentsize", phentsize.into());
    }
    let size = u64::from(phentsize);
    // One bounded read of the whole table: the allocation is bounded by the file.
    let table = r.slice(phoff, size * u64::from(phnum), "program header table")?;
    let t = r.over(&table);
    (0..u64::from(phnum))
        .map(|i| segment(&t, i * size))
        .collect()
}

fn segment(r: &Reader, at: u64) -> Result<Segment, ElfError> {
    let what = "program header";
    Ok(match r.class {
        Class::Elf32 => Segment {
            kind: r.u32(at, what)?,
            offset: r.word(at + 4, what)?,
            vaddr: r.word(at + 8, what)?,
            filesz: r.word(at + 16, what)?,
            align: r.word(at + 28, what)?,
        },
        Class::Elf64 => Segment {
            kind: r.u32(at, what)?,
            offset: r.word(at + 8, what)?,
            vaddr: r.word(at + 16, what)?,
            filesz: r.word(at + 32, what)?,
            align: r.word(at + 48, what)?,
        },
    })
}

/// Maps a virtual address to its file offset through the PT_LOAD segments,
/// as the loader sees the mapped image: the first segment whose file bytes
/// cover `addr`, and how many of its bytes follow `addr`.
fn vaddr_to_offset(segments: &[Segment], addr: u64) -> Option<(u64, u64)> {
    segments.iter().filter(|s| s.kind == PT_LOAD).find_map(|s| {
        let delta = addr.checked_sub(s.vaddr)?;
        (delta < s.filesz).then(|| (s.offset.saturating_add(delta), s.filesz - delta))
    })
}

/// Up to `len` bytes of the mapped image from virtual address `addr`, read
/// piece by piece through whichever PT_LOAD covers each piece: the loader
/// maps every segment, so a table may start in one and go on in the next
/// (patchelf moves `.dynstr` to the end of a segment it prepends, and the
/// table then runs into the following one). Stops early at the first byte
/// no segment maps from the file, or at the end of the file.
pub(super) fn read_mapped<'a>(
    r: &Reader<'a>,
    segments: &[Segment],
    addr: u64,
    len: u64,
    what: &'static str,
) -> Result<Cow<'a, [u8]>, ElfError> {
    let file_len = r.bytes.len();
    let piece = |at: u64, left: u64| {
        vaddr_to_offset(segments, at).map(|(off, in_seg)| {
            let n = left.min(in_seg).min(file_len.saturating_sub(off));
            (off, n)
        })
    };
    // The usual case: one segment holds the whole table; no copy.
    match piece(addr, len) {
        None | Some((_, 0)) => return Ok(Cow::Borrowed(&[])),
        Some((off, n)) if n == len => return r.slice(off, n, what),
        Some(_) => {}
    }
    let mut out = Vec::new();
    let mut at = addr;
    let end = addr.saturating_add(len);
    while at < end {
        let Some((off, n)) = piece(at, end - at).filter(|(_, n)| *n > 0) else {
            break;
        };
        out.extend_from_slice(&r.slice(off, n, what)?);
        at += n;
    }
    Ok(Cow::Owned(out))
}

/// The raw (tag, value) pairs of PT_DYNAMIC up to DT_NULL.
pub(super) fn dynamic_entries(r: &Reader, seg: &Segment) -> Result<Vec<(u64, u64)>, ElfError> {
    let table = r.slice(seg.offset, seg.filesz, "PT_DYNAMIC")?;
    let entry = 2 * r.word_size();
    let sub = r.over(&table);
    let mut entries = Vec::new();
    let mut at = 0;
    while at + entry <= table.len() as u64 {
        let tag = sub.word(at, "dynamic entry")?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, sub.word(at + r.word_size(), "dynamic entry")?));
        at += entry;
    }
    Ok(entries)
}

fn read_dynamic(
    r: &Reader,
    seg: &Segment,
    segments: &[Segment],
    file: &mut ElfFile,
) -> Result<(), ElfError> {
    let entries = dynamic_entries(r, seg)?;
    let value = |tag| entries.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let uses_strings = entries.iter().any(|(t, _)| is_string_tag(*t));
    let flags_1 = value(DT_FLAGS_1).unwrap_or(0);
    file.nodeflib = flags_1 & DF_1_NODEFLIB != 0;
    file.pie = flags_1 & DF_1_PIE != 0;
    if !uses_strings {
        return Ok(());
    }
    let strtab = value(DT_STRTAB).ok_or(ElfError::Invalid {
        field: "DT_STRTAB",
        value: 0,
    })?;
    if vaddr_to_offset(segments, strtab).is_none() {
        return invalid("DT_STRTAB", strtab);
    }
    // Without DT_STRSZ the table runs as far as the segments map it, up to
    // MAX_STRTAB. Either way it is never larger than the file.
    let len = value(DT_STRSZ).unwrap_or(MAX_STRTAB).min(r.bytes.len());
    if len > MAX_STRTAB {
        return invalid("DT_STRSZ", len);
    }
    // Only the strings the entries name are read: from the first of them to the last, plus room
    // for the last to end (the whole table is read only if that room is not enough). Big
    // libraries have string tables of megabytes and name a few strings at their start.
    let offsets = entries
        .iter()
        .filter(|(t, _)| is_string_tag(*t))
        .map(|(_, v)| *v);
    let first = offsets.clone().min().unwrap_or(0).min(len);
    let span = offsets.max().unwrap_or(0).saturating_sub(first);
    let window = span.saturating_add(STRING_ROOM).min(len - first);
    let strings = read_mapped(r, segments, strtab + first, window, "dynamic string table")?;
    let whole;
    let (strings, base) = if window < len - first
        && entries
            .iter()
            .filter(|(t, _)| is_string_tag(*t))
            .any(|(_, v)| string_at(&strings, v - first).is_err())
    {
        whole = read_mapped(r, segments, strtab, len, "dynamic string table")?;
        (&whole, 0)
    } else {
        (&strings, first)
    };
    for (tag, val) in &entries {
        let text = || string_at(strings, val.saturating_sub(base));
        match *tag {
            DT_NEEDED => file.needed.push(text()?),
            DT_SONAME => file.soname = Some(text()?),
            DT_RPATH => file.rpath = Some(text()?),
            DT_RUNPATH => file.runpath = Some(text()?),
            DT_FILTER => file.filters.push(text()?),
            DT_AUXILIARY => file.auxiliary.push(text()?),
            _ => {}
        }
    }
    Ok(())
}

/// The dynamic tags whose value is an offset into the dynamic string table that we read.
fn is_string_tag(tag: u64) -> bool {
    matches!(
        tag,
        DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH | DT_FILTER | DT_AUXILIARY
    )
}

/// How far past the last string named a first read of the string table goes, for that string
/// to end within it (paths and sonames are far shorter).
const STRING_ROOM: u64 = 4096;

fn string_at(strings: &[u8], offset: u64) -> Result<String, ElfError> {
    let bad = ElfError::Invalid {
        field: "dynamic string offset",
        value: offset,
    };
    let start = usize::try_from(offset).map_err(|_| bad.clone())?;
    let tail = strings.get(start..).ok_or(bad.clone())?;
    let end = tail.iter().position(|b| *b == 0).ok_or(bad)?;
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}
