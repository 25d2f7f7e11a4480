//! What `check` and `run` read of an instance's `Occlum.json`: the entry points (the only
//! directories Occlum runs programs from), the environment (the programs' own under `run`; its
//! `LD_LIBRARY_PATH` is the loader's, its `TZ` picks the zone file), and the sizes
//! `occlum build` must parse.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// The parts of `Occlum.json` that decide whether the image runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcclumConfig {
    pub path: PathBuf,
    pub entry_points: Vec<String>,
    /// `env.default`: every program's environment, in order.
    pub env: Vec<(String, String)>,
    /// `env.untrusted`: the names whose values the host may pass at run time.
    pub untrusted_env: Vec<String>,
    /// `env.default`'s `LD_LIBRARY_PATH`, split on `:`.
    pub library_path: Vec<String>,
    /// `env.default`'s `TZ`, without a leading `:`.
    pub tz: Option<String>,
    /// What is wrong with the file itself (sizes that do not parse, fields of the wrong type).
    pub problems: Vec<ConfigProblem>,
}

/// One field of `Occlum.json` that `occlum build` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The field, as a JSON path (`resource_limits.user_space_size`).
    pub field: String,
    pub problem: String,
}

impl OcclumConfig {
    /// The `Occlum.json` of the instance whose `image/` is `root`, if there is one beside it.
    pub fn beside(root: &Path) -> Option<PathBuf> {
        let abs = std::path::absolute(root).ok()?;
        let is_image = abs.file_name().is_some_and(|n| n == "image");
        let json = abs.parent()?.join("Occlum.json");
        (is_image && json.is_file()).then_some(json)
    }

    /// Reads and judges `path`. Err: it cannot be read or is not JSON.
    pub fn read(path: &Path) -> Result<OcclumConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        Ok(Self::from_value(path, &v))
    }

    fn from_value(path: &Path, v: &Value) -> OcclumConfig {
        let mut c = OcclumConfig {
            path: path.to_path_buf(),
            ..OcclumConfig::default()
        };
        let mut problem = |field: &str, problem: String| {
            c.problems.push(ConfigProblem {
                field: field.to_string(),
                problem,
            })
        };
        let mut entry_points = Vec::new();
        match v.get("entry_points") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => entry_points.push(s.to_string()),
                        None => problem(&format!("entry_points[{i}]"), "is not a string".into()),
                    }
                }
            }
            Some(_) => problem("entry_points", "is not an array".into()),
            None => problem("entry_points", "is missing".into()),
        }
        let mut env = Vec::new();
        match v.pointer("/env/default") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().and_then(|s| s.split_once('=')) {
                        Some((k, val)) => env.push((k.to_string(), val.to_string())),
                        None => problem(&format!("env.default[{i}]"), "is not NAME=VALUE".into()),
                    }
                }
            }
            Some(_) => problem("env.default", "is not an array".into()),
            None => {}
        }
        match v.pointer("/env/untrusted") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(name) => c.untrusted_env.push(name.to_string()),
                        None => problem(&format!("env.untrusted[{i}]"), "is not a string".into()),
                    }
                }
            }
            Some(_) => problem("env.untrusted", "is not an array".into()),
            None => {}
        }
        for section in ["resource_limits", "process"] {
            let Some(Value::Object(fields)) = v.get(section) else {
                continue;
            };
            for (key, value) in fields.iter().filter(|(k, _)| k.ends_with("_size")) {
                let field = format!("{section}.{key}");
                match value.as_str() {
                    Some(s) if parse_size(s).is_some() => {}
                    Some(s) => problem(&field, format!("{s:?} is not a size (e.g. \"32MB\")")),
                    None => problem(&field, "is not a string".into()),
                }
            }
        }
        let var = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
        c.library_path = var("LD_LIBRARY_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        c.tz = var("TZ").map(|t| t.trim_start_matches(':').to_string());
        c.entry_points = entry_points;
        c.env = env;
        c
    }
}

/// Occlum's memory sizes: a number with an optional unit `B`, `KB`, `MB` or `GB`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s.get(..digits)?.parse().ok()?;
    let unit: u64 = match s.get(digits..)?.trim() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_judged_clean_and_bad_fields_are_named() {
        let v: Value = serde_json::from_str(include_str!("../../templates/Occlum.json")).unwrap();
        let c = OcclumConfig::from_value(Path::new("Occlum.json"), &v);
        assert_eq!(c.entry_points, vec!["/bin"]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let v: Value = serde_json::from_str(
            r#"{"entry_points": ["/bin", 3],
                "resource_limits": {"user_space_size": "300 parsecs", "max_num_of_threads": 32},
                "env": {"default": ["OCCLUM=yes", "LD_LIBRARY_PATH=/opt/lib:/usr/local/lib", "TZ=:Asia/Shanghai"]}}"#,
        )
        .unwrap();
        let c = OcclumConfig::from_value(Path::new("Occlum.json"), &v);
        let fields: Vec<_> = c.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["entry_points[1]", "resource_limits.user_space_size"]
        );
        assert_eq!(c.library_path, vec!["/opt/lib", "/usr/local/lib"]);
        assert_eq!(c.tz.as_deref(), Some("Asia/Shanghai"));
        assert_eq!(parse_size("32MB"), Some(32 << 20));
        assert_eq!(parse_size("MB"), None);
    }
}
