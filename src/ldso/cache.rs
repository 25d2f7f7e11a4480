//! Reader for glibc's `/etc/ld.so.cache` (new format, with the optional
//! old "compat" prefix skipped, hwcaps entries and the extension directory).
//! Every read is bounds-checked: a malformed cache is reported as an error
//! string and the caller ignores the cache.

use crate::elf::Endian;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const EXTENSION_MAGIC: u32 = 0xEAA4_2174;
const EXTENSION_HWCAPS: u32 = 1;
const HWCAP_MARKER: u64 = 1 << 62;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    flags: u32,
    key: String,
    value: String,
    /// Index into the glibc-hwcaps name table, for hwcaps entries.
    hwcaps: Option<usize>,
    /// A legacy hwcap/platform mask (non-zero and not a hwcaps index).
    legacy: bool,
}

/// A parsed cache: its entries in file order and the hwcaps name table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LdCache {
    entries: Vec<Entry>,
    hwcaps_names: Vec<String>,
    endian: Endian,
}

struct Bytes<'a> {
    data: &'a [u8],
    endian: Endian,
}

impl Bytes<'_> {
    fn u32(&self, at: usize) -> Result<u32, String> {
        let raw: [u8; 4] = at
            .checked_add(4)
            .and_then(|end| self.data.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("offset {at} is beyond the end of the cache"))?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    fn u64(&self, at: usize) -> Result<u64, String> {
        let (a, b) = (u64::from(self.u32(at)?), u64::from(self.u32(at + 4)?));
        Ok(match self.endian {
            Endian::Little => a | (b << 32),
            Endian::Big => (a << 32) | b,
        })
    }

    fn string(&self, at: usize) -> Result<String, String> {
        let tail = self
            .data
            .get(at..)
            .ok_or_else(|| format!("string offset {at} is beyond the end of the cache"))?;
        let end = tail
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("string at {at} is not terminated"))?;
        Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
    }
}

impl LdCache {
    /// Parses a whole cache file.
    pub(crate) fn parse(file: &[u8]) -> Result<LdCache, String> {
        let base = new_format_offset(file)?;
        let data = file.get(base..).ok_or("the cache is truncated")?;
        if !data.starts_with(NEW_MAGIC) || data.len() < NEW_HEADER {
            return Err("no glibc-ld.so.cache1.1 header".into());
        }
        let endian = match data[28] {
            0 | 2 => Endian::Little,
            3 => Endian::Big,
            v => return Err(format!("the cache's byte-order flag is {v}")),
        };
        let b = Bytes { data, endian };
        let nlibs = b.u32(20)? as usize;
        nlibs
            .checked_mul(NEW_ENTRY)
            .and_then(|n| n.checked_add(NEW_HEADER))
            .filter(|end| *end <= data.len())
            .ok_or("the entry count exceeds the cache size")?;
        let entries = (0..nlibs)
            .map(|i| entry(&b, NEW_HEADER + i * NEW_ENTRY))
            .collect::<Result<Vec<_>, _>>()?;
        let hwcaps_names = hwcaps_names(&b, b.u32(32)? as usize)?;
        Ok(LdCache {
            entries,
            hwcaps_names,
            endian,
        })
    }

    /// The path the loader takes from the cache for `name`: the best
    /// supported glibc-hwcaps entry, else the first plain entry.
    /// `supported` lists hwcaps names best first.
    pub(crate) fn lookup(
        &self,
        name: &str,
        cache_id: u32,
        endian: Endian,
        supported: &[&str],
    ) -> Option<&str> {
        if endian != self.endian {
            return None;
        }
        let matching = self
            .entries
            .iter()
            .filter(|e| e.key == name && (e.flags == 1 || e.flags == cache_id));
        let mut best: Option<(usize, &Entry)> = None;
        let mut plain: Option<&Entry> = None;
        for e in matching {
            match e.hwcaps {
                Some(index) => {
                    let hw = self.hwcaps_names.get(index).map(String::as_str);
                    let rank = supported.iter().position(|s| Some(*s) == hw);
                    if let Some(rank) = rank
                        && best.is_none_or(|(r, _)| rank < r)
                    {
                        best = Some((rank, e));
                    }
                }
                None if !e.legacy && plain.is_none() => plain = Some(e),
                None => {}
            }
        }
        best.map(|(_, e)| e).or(plain).map(|e| e.value.as_str())
    }
}

/// Where the new-format header starts: 0, or after the old compat table.
fn new_format_offset(file: &[u8]) -> Result<usize, String> {
    if !file.starts_with(OLD_MAGIC) {
        return Ok(0);
    }
    let b = Bytes {
        data: file,
        endian: Endian::Little,
    };
    let nlibs = b.u32(12)? as usize;
    let end = nlibs
        .checked_mul(12)
        .and_then(|n| n.checked_add(16))
        .ok_or("the old-format entry count overflows")?;
    Ok(end.div_ceil(8) * 8)
}

fn entry(b: &Bytes, at: usize) -> Result<Entry, String> {
    let hwcap = b.u64(at + 16)?;
    let is_hwcaps = ((hwcap >> 32) & !0x3ff) == (HWCAP_MARKER >> 32);
    Ok(Entry {
        flags: b.u32(at)?,
        key: b.string(b.u32(at + 4)? as usize)?,
        value: b.string(b.u32(at + 8)? as usize)?,
        hwcaps: is_hwcaps.then_some(hwcap as u32 as usize),
        legacy: !is_hwcaps && hwcap != 0,
    })
}

/// The glibc-hwcaps name table from the extension directory, if any.
fn hwcaps_names(b: &Bytes, offset: usize) -> Result<Vec<String>, String> {
    if offset == 0 || !offset.is_multiple_of(4) || b.u32(offset).ok() != Some(EXTENSION_MAGIC) {
        return Ok(Vec::new());
    }
    let count = b.u32(offset + 4)? as usize;
    for i in 0..count.min(b.data.len() / 16) {
        let at = offset + 8 + i * 16;
        if b.u32(at)? != EXTENSION_HWCAPS {
            continue;
        }
        let (start, size) = (b.u32(at + 8)? as usize, b.u32(at + 12)? as usize);
        return (0..(size / 4).min(b.data.len() / 4))
            .map(|k| b.string(b.u32(start + 4 * k)? as usize))
            .collect();
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a new-format cache with the given (flags, key, value, hwcap)
    /// entries and hwcaps names.
    fn build(entries: &[(u32, &str, &str, u64)], hwcaps: &[&str]) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut put = |s: &str| {
            let at = strings_at + strings.len();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at as u32
        };
        let rows: Vec<_> = entries
            .iter()
            .map(|(f, k, v, h)| (*f, put(k), put(v), *h))
            .collect();
        let names: Vec<u32> = hwcaps.iter().map(|n| put(n)).collect();
        let mut out = NEW_MAGIC.to_vec();
        out.extend((entries.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend([2, 0, 0, 0]);
        let ext_at = (strings_at + strings.len()).div_ceil(4) * 4;
        out.extend((ext_at as u32).to_le_bytes());
        out.extend([0; 12]);
        for (f, k, v, h) in rows {
            out.extend(f.to_le_bytes());
            out.extend(k.to_le_bytes());
            out.extend(v.to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend(h.to_le_bytes());
        }
        out.extend(&strings);
        out.resize(ext_at, 0);
        let table_at = ext_at + 8 + 16;
        out.extend(EXTENSION_MAGIC.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for v in [EXTENSION_HWCAPS, 0, table_at as u32, 4 * names.len() as u32] {
            out.extend(v.to_le_bytes());
        }
        for n in names {
            out.extend(n.to_le_bytes());
        }
        out
    }

    #[test]
    fn prefers_supported_hwcaps_then_plain_entry() {
        let bytes = build(
            &[
                (0x0303, "libz.so.1", "/v3/libz.so.1", HWCAP_MARKER | 1),
                (0x0303, "libz.so.1", "/v2/libz.so.1", HWCAP_MARKER),
                (0x0303, "libz.so.1", "/base/libz.so.1", 0),
                (0x0a03, "libq.so", "/arm/libq.so", 0),
            ],
            &["x86-64-v2", "x86-64-v3"],
        );
        let cache = LdCache::parse(&bytes).unwrap();
        let le = Endian::Little;
        let both = ["x86-64-v3", "x86-64-v2"];
        assert_eq!(
            cache.lookup("libz.so.1", 0x0303, le, &both),
            Some("/v3/libz.so.1")
        );
        assert_eq!(
            cache.lookup("libz.so.1", 0x0303, le, &["x86-64-v2"]),
            Some("/v2/libz.so.1")
        );
        assert_eq!(
            cache.lookup("libz.so.1", 0x0303, le, &[]),
            Some("/base/libz.so.1")
        );
        assert_eq!(cache.lookup("libq.so", 0x0303, le, &[]), None);
        assert_eq!(cache.lookup("libz.so.1", 0x0303, Endian::Big, &[]), None);
    }

    #[test]
    fn skips_old_compat_prefix() {
        let new = build(&[(0x0303, "liba.so", "/x/liba.so", 0)], &[]);
        let mut old = OLD_MAGIC.to_vec();
        old.push(0);
        old.extend(1u32.to_le_bytes());
        old.extend([0u8; 12]);
        old.resize(old.len().div_ceil(8) * 8, 0);
        old.extend(new);
        let cache = LdCache::parse(&old).unwrap();
        assert_eq!(
            cache.lookup("liba.so", 0x0303, Endian::Little, &[]),
            Some("/x/liba.so")
        );
    }

    #[test]
    fn malformed_caches_are_errors_not_panics() {
        let good = build(&[(0x0303, "liba.so", "/x/liba.so", 0)], &["x86-64-v2"]);
        for len in 0..good.len() {
            let _ = LdCache::parse(&good[..len]);
        }
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&huge).is_err());
    }

    #[test]
    fn reads_the_host_cache_when_present() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            return;
        };
        let cache = LdCache::parse(&bytes).unwrap();
        let libc = cache.lookup("libc.so.6", 0x0303, Endian::Little, &[]);
        assert!(libc.is_some_and(|p| p.ends_with("/libc.so.6")));
    }
}
