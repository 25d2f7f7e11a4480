//! Text the binary prints: the dry-run plan, missing-library lists and the
//! final summary. Kept in the library so tests can check it without a process.

use std::fmt::Write;
use std::time::Duration;

use crate::apply::Summary;
use crate::check::{CheckReport, Role};
use crate::deps::Missing;
use crate::plan::{Op, Plan};

/// The plan, one operation a line, in execution order.
pub fn plan_lines(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.ops {
        let line = match &p.op {
            Op::Mkdir { dest } => format!("mkdir {}", dest.display()),
            Op::Link { target, dest } => format!("link {} -> {target}", dest.display()),
            Op::CopyDir {
                src,
                dest,
                contents_only,
                entries,
            } => format!(
                "copy-dir {}{} -> {} ({} entries)",
                src.display(),
                if *contents_only { "/" } else { "" },
                dest.display(),
                entries.len()
            ),
            Op::CopyFile { src, dest, .. } => {
                format!("copy {} -> {}", src.display(), dest.display())
            }
            Op::CopyLibrary {
                src,
                dest,
                name,
                needed_by,
            } => format!(
                "library {} -> {} ({name}, needed by {})",
                src.display(),
                dest.display(),
                needed_by.display()
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

/// A list of missing libraries: each with the file that needs it and where it
/// was looked for.
pub fn missing_lines(missing: &[&Missing]) -> String {
    let mut out = String::new();
    for m in missing {
        let searched: Vec<_> = m.searched.iter().map(|p| p.display().to_string()).collect();
        let _ = write!(out, "\n  {} (needed by {})", m.name, m.needed_by.display());
        if !searched.is_empty() {
            let _ = write!(out, "; searched {}", searched.join(":"));
        }
    }
    out
}

/// The verdict of `check`, for people: each problem with who needs what,
/// in which program's scope it was judged and where it was searched; the
/// libraries a tree's program loads first as information.
pub fn check_lines(r: &CheckReport) -> String {
    let mut out = String::new();
    for (file, interp) in &r.missing_interpreters {
        let _ = writeln!(
            out,
            "missing interpreter {interp} (needed by {})",
            file.display()
        );
    }
    for m in &r.missing {
        let _ = write!(
            out,
            "missing {} (needed by {}",
            m.name,
            m.needed_by.display()
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
    for l in &r.dangling_links {
        let _ = writeln!(
            out,
            "dangling link {} -> {}",
            l.link.display(),
            l.target.display()
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
        let _ = writeln!(out, "warning: {w}");
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
        "{} ELF files checked ({programs} programs, {alone} objects no program loads): {verdict} \
         ({} missing libraries, {} missing interpreters, {} dangling links)",
        r.elf_files,
        r.missing.len(),
        r.missing_interpreters.len(),
        r.dangling_links.len()
    );
    out
}

/// One line: files copied / unchanged, libraries, links, dirs, bytes, time.
pub fn summary_line(s: &Summary, warnings: usize, elapsed: Duration) -> String {
    format!(
        "copy_bom: {} files copied, {} unchanged ({} libraries), {} links, {} dirs, {}, {} warnings, {:.2}s",
        s.files_copied,
        s.files_unchanged,
        s.libraries,
        s.links,
        s.dirs,
        human_bytes(s.bytes),
        warnings,
        elapsed.as_secs_f64()
    )
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
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 1), "5.0 MiB");
    }
}
