//! Text the binary prints: the dry-run plan, missing-library lists and the
//! final summary, and the escaping that keeps control characters of file
//! names and bom values off the terminal. Kept in the library so tests can
//! check it without a process.

use std::borrow::Cow;
use std::fmt::{Display, Write};
use std::path::Path;
use std::time::Duration;

use crate::apply::Summary;
use crate::check::{CheckReport, ImpliedMissing, Role, SymbolFinding, SymbolProblem};
use crate::deps::{ImpliedNote, Missing};
use crate::elf::DlopenDep;
use crate::implied;
use crate::plan::{ImpliedContent, Op, Plan};

/// The plan, one operation a line, in execution order.
pub fn plan_lines(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.ops {
        let line = match &p.op {
            Op::Mkdir { dest } => format!("mkdir {}", shown(dest)),
            Op::Link { target, dest } => {
                format!("link {} -> {}", shown(dest), escape(target))
            }
            Op::CopyDir {
                src,
                dest,
                contents_only,
                entries,
            } => format!(
                "copy-dir {}{} -> {} ({} entries)",
                shown(src),
                if *contents_only { "/" } else { "" },
                shown(dest),
                entries.len()
            ),
            Op::CopyFile { src, dest, .. } => {
                format!("copy {} -> {}", shown(src), shown(dest))
            }
            Op::Implied { content, dest, why } => match content {
                ImpliedContent::Copy(src) => {
                    format!(
                        "implied {} -> {} ({})",
                        shown(src),
                        shown(dest),
                        escape(why)
                    )
                }
                ImpliedContent::Generated(_) => {
                    format!("implied (generated) -> {} ({})", shown(dest), escape(why))
                }
            },
            Op::Record { dest, why, .. } => format!("write {} ({})", shown(dest), escape(why)),
            Op::CopyLibrary {
                src,
                dest,
                name,
                needed_by,
                dlopen,
            } => format!(
                "library {} -> {} ({}, needed by {}{})",
                shown(src),
                shown(dest),
                escape(name),
                shown(needed_by),
                dlopen.map_or(String::new(), |p| format!(", dlopen {}", p.name()))
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Missing libraries, one item each: with the file that needs it and where
/// it was looked for.
pub fn missing_items(missing: &[&Missing]) -> Vec<String> {
    missing
        .iter()
        .map(|m| {
            let searched: Vec<_> = m.searched.iter().map(|p| shown(p).to_string()).collect();
            let mut item = format!("{} (needed by {})", escape(&m.name), shown(&m.needed_by));
            if !searched.is_empty() {
                let _ = write!(item, "; searched {}", searched.join(":"));
            }
            if !m.shipped_at.is_empty() {
                let at: Vec<String> = m.shipped_at.iter().map(|p| shown(p).to_string()).collect();
                let _ = write!(
                    item,
                    "; the boms place it at {}, where the image's loader does not look for it",
                    at.join(", ")
                );
            }
            item
        })
        .collect()
}

/// `text` with every control character (newline included) spelled out, so
/// that a file name or bom value cannot move the cursor, recolour or retitle
/// the terminal, or fake a line of output: `\n`, `\t`, `\r`, others as
/// `\u{1b}`. Every piece of text the binary prints goes through it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text laid out in lines and columns (`ldd`-style output):
/// line breaks and tabs are kept, every other control character is spelled out.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    let layout = |c: char| c == '\n' || c == '\t';
    if !text.chars().any(|c| c.is_control() && !layout(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut piece = [0u8; 4];
    for c in text.chars() {
        if layout(c) {
            out.push(c);
        } else {
            out.push_str(&escape(c.encode_utf8(&mut piece)));
        }
    }
    Cow::Owned(out)
}

/// A path for a message: lossy UTF-8, control characters escaped.
pub fn shown(path: &Path) -> impl Display + '_ {
    escape(&path.to_string_lossy()).into_owned()
}

/// The verdict of `check`, for people: each problem with who needs what,
/// in which program's scope it was judged and where it was searched; the
/// libraries a tree's program loads first as information.
pub fn check_lines(r: &CheckReport) -> String {
    let mut out = String::new();
    for (file, interp) in &r.missing_interpreters {
        let _ = writeln!(
            out,
            "missing interpreter {} (needed by {})",
            escape(interp),
            shown(file)
        );
    }
    for m in &r.missing {
        let _ = write!(
            out,
            "missing {} (needed by {}",
            escape(&m.name),
            shown(&m.needed_by)
        );
        let first = m.scopes.first().map(|p| p.display().to_string());
        let more = m.scopes.len().saturating_sub(1);
        match (m.alone, first) {
            (true, _) => {
                let _ = write!(out, ", judged alone: no program loads it");
            }
            (false, Some(p)) if more > 0 => {
                let _ = write!(out, ", loading {p} and {more} more programs");
            }
            (false, Some(p)) if p != m.needed_by.display().to_string() => {
                let _ = write!(out, ", loading {p}");
            }
            (false, _) => {}
        }
        let searched: Vec<_> = m.searched.iter().map(|p| p.display().to_string()).collect();
        if !searched.is_empty() {
            let _ = write!(out, "; searched {}", searched.join(":"));
        }
        if let Some(l) = &m.dangling_link {
            let _ = write!(out, "; {} dangles", l.display());
        }
        let _ = writeln!(out, ")");
    }
    for p in &r.symbols {
        let _ = writeln!(out, "{}", symbol_line(p));
    }
    for m in &r.implied {
        let _ = writeln!(out, "{}", implied_line(m));
    }
    for p in &r.instance_problems {
        let file = r
            .instance
            .as_deref()
            .map_or("Occlum.json".into(), |p| p.display().to_string());
        let _ = writeln!(
            out,
            "instance: {}: {}: {}",
            escape(&file),
            escape(&p.field),
            escape(&p.problem)
        );
    }
    for l in &r.dangling_links {
        let _ = writeln!(
            out,
            "dangling link {} -> {}",
            shown(&l.link),
            shown(&l.target)
        );
    }
    for f in &r.loaded_first {
        let more = match f.needed_by.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let _ = writeln!(
            out,
            "info: {}, needed by {}{more}, is not on the search path; its tree {} holds it at {}: \
             the tree's program loads it first",
            f.name,
            f.needed_by
                .first()
                .map_or(String::new(), |p| p.display().to_string()),
            f.tree.display(),
            f.provider.display()
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {}", escape(&w.to_string()));
    }
    let verdict = if r.is_complete() {
        "complete"
    } else {
        "INCOMPLETE"
    };
    let programs = r
        .objects
        .iter()
        .filter(|o| matches!(o.role, Role::Program | Role::StaticProgram))
        .count();
    let alone = r.objects.iter().filter(|o| o.role == Role::Alone).count();
    let _ = writeln!(
        out,
        "{} ELF files checked ({programs} programs, {alone} objects no program loads, {} symbol \
         references): {verdict} ({} missing libraries, {} missing interpreters, {} symbol problems, \
         {} dangling links, {} implied files missing{})",
        r.elf_files,
        r.symbol_references,
        r.missing.len(),
        r.missing_interpreters.len(),
        r.symbols.len(),
        r.dangling_links.len(),
        r.implied.len(),
        match r.instance {
            Some(_) => format!(", {} Occlum.json problems", r.instance_problems.len()),
            None => String::new(),
        }
    );
    out
}

/// One symbol problem: what is missing, who needs it, and in which program's scope.
pub fn symbol_line(p: &SymbolProblem) -> String {
    let what = match &p.finding {
        SymbolFinding::Version {
            version,
            library,
            provider,
        } => format!(
            "version {} of {} not found: {} defines no such version",
            escape(version),
            escape(library),
            shown(provider)
        ),
        SymbolFinding::Symbol {
            name,
            version,
            library,
        } => match (version, library) {
            (Some(v), Some(l)) => format!(
                "undefined symbol {}@{} (from {}): no object of the scope defines it",
                escape(name),
                escape(v),
                escape(l)
            ),
            _ => format!(
                "undefined symbol {}: no object of the scope defines it",
                escape(name)
            ),
        },
        SymbolFinding::ForeignLibc { object, program } => {
            format!("a {object} object in a {program} program")
        }
    };
    let first = p.scopes.first().map(|s| s.display().to_string());
    let more = p.scopes.len().saturating_sub(1);
    let scope = match (p.alone, first) {
        (true, _) => ", judged alone: no program loads it".to_string(),
        (false, Some(s)) if more > 0 => format!(", loading {s} and {more} more programs"),
        (false, Some(s)) if s != p.needed_by.display().to_string() => format!(", loading {s}"),
        (false, _) => String::new(),
    };
    format!("{what} (needed by {}{scope})", shown(&p.needed_by))
}

/// One implied file the image lacks: what, why (who imports which function), and how to add it.
pub fn implied_line(m: &ImpliedMissing) -> String {
    let how = match (&m.bom, m.generated) {
        (_, true) => "build with --implicit to generate it".to_string(),
        (None, false) if m.topic == implied::Topic::Dlopen => {
            "build with --implicit to add it where the loader finds it".to_string()
        }
        (Some(entry), false) => {
            format!("add it with the bom entry {entry}, or build with --implicit")
        }
        (None, false) => "this host has no such file to copy".to_string(),
    };
    format!(
        "implied: {} is missing ({}); {how}",
        escape(&m.what),
        escape(&implied::reason(m.topic, &m.importer, &m.cause))
    )
}

/// A `.note.dlopen` entry of a file: `dlopen (PRIORITY) SONAME|SONAME: FEATURE (DESCRIPTION)`.
pub fn dlopen_line(d: &DlopenDep) -> String {
    let mut line = format!(
        "dlopen ({}) {}",
        d.priority.name(),
        escape(&d.sonames.join("|"))
    );
    if let Some(f) = &d.feature {
        line += &format!(": {}", escape(f));
    }
    if let Some(desc) = &d.description {
        line += &format!(" ({})", escape(desc));
    }
    line
}

/// A file a closure's C library opens by itself: `implied WHAT [TOPIC: WHO imports WHAT]`.
pub fn implied_note_line(n: &ImpliedNote) -> String {
    format!(
        "implied {} [{}]",
        escape(&n.what),
        escape(&implied::reason(n.topic, &n.importer, &n.cause))
    )
}

/// One line: files copied / unchanged, libraries, links, dirs, bytes, time.
/// The one line a build ends with: the time it took when given, the image's digest at its end
/// when it was computed.
pub fn summary_line(
    s: &Summary,
    warnings: usize,
    elapsed: Option<Duration>,
    digest: Option<&str>,
) -> String {
    let mut line = format!(
        "copy_bom: {} files copied, {} unchanged ({} libraries), {} links, {} dirs, {}, {} warnings",
        s.files_copied,
        s.files_unchanged,
        s.libraries,
        s.links,
        s.dirs,
        human_bytes(s.bytes),
        warnings,
    );
    if let Some(t) = elapsed {
        line += &format!(", {:.2}s", t.as_secs_f64());
    }
    if let Some(d) = digest {
        line += &format!(", image {d}");
    }
    line
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_spelled_out() {
        assert_eq!(escape("plain /bin/ls"), "plain /bin/ls");
        assert_eq!(
            escape("a\x1b[31mb\nc\td\u{9b}"),
            "a\\u{1b}[31mb\\nc\\td\\u{9b}"
        );
        assert_eq!(escape_lines("a\x07\n\tb\n"), "a\\u{7}\n\tb\n");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 1), "5.0 MiB");
    }
}
