//! Text the binary prints: the dry-run plan, missing-library lists and the
//! final summary. Kept in the library so tests can check it without a process.

use std::fmt::Write;
use std::time::Duration;

use crate::apply::Summary;
use crate::check::CheckReport;
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

/// The verdict of `check`, for people.
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
        let _ = writeln!(
            out,
            "missing {} (needed by {})",
            m.name,
            m.needed_by.display()
        );
    }
    for l in &r.dangling_links {
        let _ = writeln!(
            out,
            "dangling link {} -> {}",
            l.link.display(),
            l.target.display()
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
    let _ = writeln!(
        out,
        "{} ELF files checked: {verdict} ({} missing libraries, {} missing interpreters, {} dangling links)",
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
