//! `.note.dlopen`: the libraries an object says it may `dlopen` (the ELF dlopen metadata
//! specification of the userspace API group: a note of owner `FDO` and type `0x407c0c0a` whose
//! descriptor is a JSON array of `{"soname": [...], "feature", "description", "priority"}`).
//! Read from the PT_NOTE segments, so a stripped object's notes are found too.

use serde::{Deserialize, Serialize};

use super::parse::Reader;

const NOTE_OWNER: &[u8] = b"FDO\0";
const NOTE_TYPE: u32 = 0x407c_0c0a;

/// How much the object needs a library it dlopens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The object does not work without it: a dependency like DT_NEEDED.
    Required,
    /// The default: a feature most users want.
    Recommended,
    /// An optional feature.
    Suggested,
}

impl Priority {
    /// The name the specification gives it.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Required => "required",
            Priority::Recommended => "recommended",
            Priority::Suggested => "suggested",
        }
    }
}

/// One entry of a `.note.dlopen` array: any one of `sonames` provides the feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlopenDep {
    pub sonames: Vec<String>,
    pub feature: Option<String>,
    pub description: Option<String>,
    pub priority: Priority,
}

#[derive(Deserialize)]
struct Entry {
    soname: Vec<String>,
    feature: Option<String>,
    description: Option<String>,
    priority: Option<Priority>,
}

/// The dlopen entries of the notes in one PT_NOTE segment (`align`: its alignment, 4 or 8).
/// Malformed notes and entries are skipped: they are metadata, and the loader reads none of it.
pub(super) fn dlopen_notes(r: &Reader, align: u64) -> Vec<DlopenDep> {
    let pad = if align == 8 { 8 } else { 4 };
    let up = |n: u64| n.checked_add(pad - 1).map(|v| v / pad * pad);
    let mut out = Vec::new();
    let mut at = 0u64;
    loop {
        let what = "note";
        let (Ok(namesz), Ok(descsz), Ok(kind)) =
            (r.u32(at, what), r.u32(at + 4, what), r.u32(at + 8, what))
        else {
            break;
        };
        let name_at = at + 12;
        let Some(desc_at) = up(u64::from(namesz)).map(|n| name_at + n) else {
            break;
        };
        let Some(next) = up(u64::from(descsz)).map(|d| desc_at + d) else {
            break;
        };
        let owner = r.bytes_at(name_at, u64::from(namesz));
        if kind == NOTE_TYPE && owner.as_deref() == Some(NOTE_OWNER) {
            let desc = r.bytes_at(desc_at, u64::from(descsz)).unwrap_or_default();
            // The descriptor is a NUL-terminated JSON string, possibly padded.
            let text = desc.split(|&b| b == 0).next().unwrap_or(&[]);
            if let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(text) {
                out.extend(
                    entries
                        .into_iter()
                        .filter(|e| !e.soname.is_empty())
                        .map(|e| DlopenDep {
                            sonames: e.soname,
                            feature: e.feature,
                            description: e.description,
                            priority: e.priority.unwrap_or(Priority::Recommended),
                        }),
                );
            }
        }
        if next <= at {
            break;
        }
        at = next;
    }
    out
}
