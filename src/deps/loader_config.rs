//! The Occlum loader configuration (SPEC A§4.1, B1): which loader the image
//! uses in place of an ELF file's interpreter, and which host directories that
//! loader's libraries come from. A library found in one of those directories is
//! placed beside the loader in the image (`dirname(O)/NAME`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Status};

/// Where the original tool looks for its configuration; used when it exists
/// and no `--loader-config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/opt/occlum/etc/template/occlum_elf_loader.config";

/// One configured loader: the Occlum loader `path` (O) and its library dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredLoader {
    pub path: String,
    pub lib_dirs: Vec<String>,
}

impl ConfiguredLoader {
    /// True when `dir` is one of this loader's library dirs. Trailing slashes
    /// are ignored on both sides (the original's exact string compare never
    /// matched a config entry written with a trailing `/`, A§7.22).
    pub fn owns_dir(&self, dir: &Path) -> bool {
        let dir = dir.to_string_lossy();
        let dir = trim_slashes(&dir);
        self.lib_dirs.iter().any(|d| trim_slashes(d) == dir)
    }

    /// The image directory this loader's libraries go to: `dirname(O)`.
    pub fn image_lib_dir(&self) -> PathBuf {
        Path::new(&self.path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    }
}

fn trim_slashes(s: &str) -> &str {
    let t = s.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

/// The parsed configuration, keyed by the loader's file name (a later line
/// overrides an earlier one, as in the original).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderConfig {
    by_name: BTreeMap<String, ConfiguredLoader>,
}

impl LoaderConfig {
    /// Parses the config text. Lines are `LOADER DIR:DIR...`; fields are split
    /// on any run of whitespace (the original split on single spaces), blank
    /// lines and `#` comments are skipped, and a line without a dir list is an
    /// error naming the line (the original panicked).
    pub fn parse(text: &str, origin: &Path) -> Result<LoaderConfig> {
        let mut by_name = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(path), Some(dirs)) = (fields.next(), fields.next()) else {
                return Err(Error::new(
                    Status::InvalidBom,
                    format!(
                        "{}:{}: a loader config line needs a loader path and a colon-separated list of library dirs",
                        origin.display(),
                        n + 1
                    ),
                ));
            };
            let name = Path::new(path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_string());
            let lib_dirs = dirs
                .split(':')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            by_name.insert(
                name,
                ConfiguredLoader {
                    path: path.to_string(),
                    lib_dirs,
                },
            );
        }
        Ok(LoaderConfig { by_name })
    }

    /// Reads the config: `explicit` must exist; otherwise the default path is
    /// used when it exists, else there is no config (host paths are kept).
    pub fn load(explicit: Option<&Path>) -> Result<LoaderConfig> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => PathBuf::from(DEFAULT_CONFIG_PATH),
            None => return Ok(LoaderConfig::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::new(
                Status::NotFound,
                format!("cannot read loader config {}: {e}", path.display()),
            )
        })?;
        LoaderConfig::parse(&text, &path)
    }

    /// The configured loader replacing interpreter `interp`, matched by file name.
    pub fn for_interp(&self, interp: &str) -> Option<&ConfiguredLoader> {
        let name = Path::new(interp).file_name()?.to_string_lossy();
        self.by_name.get(name.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "/opt/occlum/glibc/lib/ld-linux-x86-64.so.2 /opt/occlum/glibc/lib:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu\n\
/lib/ld-musl-x86_64.so.1 /opt/occlum/toolchains/gcc/x86_64-linux-musl/lib\n";

    #[test]
    fn parses_the_shipped_config() {
        let c = LoaderConfig::parse(SHIPPED, Path::new("c")).unwrap();
        let g = c.for_interp("/lib64/ld-linux-x86-64.so.2").unwrap();
        assert_eq!(g.path, "/opt/occlum/glibc/lib/ld-linux-x86-64.so.2");
        assert_eq!(g.image_lib_dir(), PathBuf::from("/opt/occlum/glibc/lib"));
        assert!(g.owns_dir(Path::new("/usr/lib/x86_64-linux-gnu")));
        assert!(g.owns_dir(Path::new("/usr/lib/x86_64-linux-gnu/")));
        assert!(!g.owns_dir(Path::new("/usr/lib")));
        let m = c.for_interp("/lib/ld-musl-x86_64.so.1").unwrap();
        assert_eq!(m.lib_dirs.len(), 1);
        assert!(c.for_interp("/lib/ld-linux.so.2").is_none());
    }

    #[test]
    fn comments_blank_lines_and_runs_of_spaces() {
        let c =
            LoaderConfig::parse("# c\n\n  /l/ld.so   /a:/b/  # tail\n", Path::new("c")).unwrap();
        let l = c.for_interp("/x/ld.so").unwrap();
        assert_eq!(l.lib_dirs, vec!["/a".to_string(), "/b/".to_string()]);
        assert!(l.owns_dir(Path::new("/b")));
    }

    #[test]
    fn one_token_line_is_an_error_with_its_line() {
        let e = LoaderConfig::parse("\n/l/ld.so\n", Path::new("cfg")).unwrap_err();
        assert_eq!(e.status, Status::InvalidBom);
        assert!(e.message.starts_with("cfg:2:"), "{}", e.message);
    }

    #[test]
    fn later_line_overrides() {
        let c = LoaderConfig::parse("/a/ld.so /x\n/b/ld.so /y\n", Path::new("c")).unwrap();
        assert_eq!(c.for_interp("ld.so").unwrap().path, "/b/ld.so");
    }
}
