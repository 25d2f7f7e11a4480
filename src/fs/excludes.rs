//! rsync `--exclude` patterns (man rsync, "INCLUDE/EXCLUDE PATTERN RULES"), applied to the paths of a
//! dir copy relative to the transfer root. Written here because no crate has rsync's rules: globset
//! lets `**/` match zero directories and has no "match the last N components" rule.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::wildmatch::Wildmatch;

/// The exclude patterns of one bom.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Wildmatch,
    scope: Scope,
    /// A trailing '/' in the pattern: only directories match.
    dir_only: bool,
}

/// Which part of the path a rule is matched against (rsync's `rule_matches`).
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// No '/' and no `**`: the last component, at any depth.
    Basename,
    /// A leading '/', or a leading `**`: the whole path from the transfer root.
    WholePath,
    /// An inner '/' and no `**`: the last `n` components.
    LastComponents(usize),
    /// An unanchored `**` not at the start: the path from its start or from after any '/'.
    AnySuffix,
}

impl Excludes {
    /// Compile rsync exclude patterns. The error names the pattern and says what is wrong with it.
    pub fn new(patterns: &[String]) -> Result<Excludes, String> {
        let mut rules = Vec::new();
        for pattern in patterns {
            let compiled = compile(pattern)
                .map_err(|reason| format!("exclude pattern \"{pattern}\": {reason}"))?;
            rules.extend(compiled);
        }
        Ok(Excludes { rules })
    }

    /// Whether the entry at `rel` (relative to the transfer root: for a copy of "a/lib" without a
    /// trailing '/', "lib" and "lib/…", as rsync sees them) is excluded. An excluded directory's
    /// contents are never looked at, so callers prune it.
    pub fn is_excluded(&self, rel: &Path, is_dir: bool) -> bool {
        let path = rel.as_os_str().as_bytes();
        let path = path.strip_prefix(b"/").unwrap_or(path);
        self.rules
            .iter()
            .any(|rule| (is_dir || !rule.dir_only) && rule.matches(path))
    }
}

impl Rule {
    fn matches(&self, path: &[u8]) -> bool {
        match self.scope {
            Scope::WholePath => self.pattern.matches(path),
            Scope::Basename => self.pattern.matches(last_components(path, 1)),
            Scope::LastComponents(n) => self.pattern.matches(last_components(path, n)),
            Scope::AnySuffix => {
                self.pattern.matches(path)
                    || path
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b'/')
                        .any(|(i, _)| self.pattern.matches(&path[i + 1..]))
            }
        }
    }
}

/// The last `n` '/'-separated components of `path`, or all of it when it has fewer.
fn last_components(path: &[u8], n: usize) -> &[u8] {
    let mut seen = 0;
    for (i, &b) in path.iter().enumerate().rev() {
        if b == b'/' {
            seen += 1;
            if seen == n {
                return &path[i + 1..];
            }
        }
    }
    path
}

/// One pattern becomes one rule, or two for "dir/***" (the directory itself, and all inside it).
fn compile(pattern: &str) -> Result<Vec<Rule>, String> {
    if let Some(dir) = pattern
        .strip_suffix("/***")
        .filter(|d| !d.is_empty() && *d != "/")
    {
        let mut rules = compile(&format!("{dir}/"))?;
        rules.extend(compile(&format!("{dir}/**"))?);
        return Ok(rules);
    }
    let dir_only = pattern.ends_with('/');
    let body = pattern.trim_end_matches('/');
    let anchored = body.starts_with('/');
    let body = body.strip_prefix('/').unwrap_or(body);
    if body.is_empty() {
        return Err("matches nothing (empty pattern)".to_string());
    }
    let wild2 = body.contains("**");
    let inner_slashes = body.bytes().filter(|&b| b == b'/').count();
    let scope = if anchored || (wild2 && body.starts_with("**")) {
        Scope::WholePath
    } else if wild2 {
        Scope::AnySuffix
    } else if inner_slashes > 0 {
        Scope::LastComponents(inner_slashes + 1)
    } else {
        Scope::Basename
    };
    let pattern = Wildmatch::new(body.as_bytes())?;
    Ok(vec![Rule {
        pattern,
        scope,
        dir_only,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str]) -> Excludes {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Excludes::new(&patterns).unwrap()
    }

    fn file_excluded(ex: &Excludes, rel: &str) -> bool {
        ex.is_excluded(Path::new(rel), false)
    }

    fn dir_excluded(ex: &Excludes, rel: &str) -> bool {
        ex.is_excluded(Path::new(rel), true)
    }

    #[test]
    fn no_slash_matches_the_basename_at_any_depth() {
        let ex = excludes(&["*.pyc", "cache"]);
        assert!(file_excluded(&ex, "a.pyc"));
        assert!(file_excluded(&ex, "lib/x/a.pyc"));
        assert!(dir_excluded(&ex, "lib/cache"));
        assert!(!file_excluded(&ex, "lib/cache.txt"));
        assert!(!file_excluded(&ex, "lib/a.py"));
    }

    #[test]
    fn leading_slash_anchors_at_the_transfer_root() {
        let ex = excludes(&["/lib/tmp"]);
        assert!(dir_excluded(&ex, "lib/tmp"));
        assert!(!dir_excluded(&ex, "x/lib/tmp"));
        assert!(!dir_excluded(&ex, "lib/x/tmp"));
        let top = excludes(&["/doc"]);
        assert!(dir_excluded(&top, "doc"));
        assert!(!dir_excluded(&top, "share/doc"));
    }

    #[test]
    fn inner_slash_matches_the_path_tail() {
        let ex = excludes(&["share/doc"]);
        assert!(dir_excluded(&ex, "share/doc"));
        assert!(dir_excluded(&ex, "usr/share/doc"));
        assert!(!dir_excluded(&ex, "usr/share/doc/x"));
        assert!(!dir_excluded(&ex, "myshare/doc"));
    }

    #[test]
    fn trailing_slash_matches_directories_only() {
        let ex = excludes(&["build/"]);
        assert!(dir_excluded(&ex, "src/build"));
        assert!(!file_excluded(&ex, "src/build"));
    }

    #[test]
    fn double_star_crosses_directories() {
        let ex = excludes(&["/lib/**/test"]);
        assert!(dir_excluded(&ex, "lib/a/b/test"));
        assert!(
            !dir_excluded(&ex, "lib/test"),
            "rsync's '**/' needs a directory"
        );
        let unanchored = excludes(&["python*/**/tests"]);
        assert!(dir_excluded(&unanchored, "usr/lib/python3/site/x/tests"));
        let prefix = excludes(&["**/*.a"]);
        assert!(file_excluded(&prefix, "lib/x/libz.a"));
        assert!(!file_excluded(&prefix, "libz.a"));
    }

    #[test]
    fn question_mark_and_brackets() {
        let ex = excludes(&["lib?.so", "[0-9]*.log"]);
        assert!(file_excluded(&ex, "x/liba.so"));
        assert!(!file_excluded(&ex, "x/libab.so"));
        assert!(file_excluded(&ex, "9-out.log"));
        assert!(!file_excluded(&ex, "out.log"));
    }

    #[test]
    fn triple_star_suffix_takes_the_dir_and_its_contents() {
        let ex = excludes(&["/doc/***"]);
        assert!(dir_excluded(&ex, "doc"));
        assert!(file_excluded(&ex, "doc/a/b.txt"));
        assert!(
            !file_excluded(&ex, "doc"),
            "the dir part is directories only"
        );
    }

    #[test]
    fn bad_patterns_are_reported_with_the_pattern() {
        let err = Excludes::new(&["ok".to_string(), "[a-".to_string()]).unwrap_err();
        assert!(err.contains("\"[a-\""), "{err}");
        assert!(Excludes::new(&["/".to_string()]).is_err());
        assert!(Excludes::new(&[]).is_ok());
    }
}
