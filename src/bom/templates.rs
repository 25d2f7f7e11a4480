//! The original Occlum template boms, embedded so that `includes: [base.yaml]`
//! resolves even when no `--include-dir` holds them (SPEC B1).

use std::path::{Path, PathBuf};

/// An embedded template bom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Template {
    pub name: &'static str,
    pub text: &'static str,
}

const TEMPLATES: &[Template] = &[
    Template {
        name: "base.yaml",
        text: include_str!("../../templates/base.yaml"),
    },
    Template {
        name: "java-11-alibaba-dragonwell.yaml",
        text: include_str!("../../templates/java-11-alibaba-dragonwell.yaml"),
    },
    Template {
        name: "java-11-openjdk-amd64.yaml",
        text: include_str!("../../templates/java-11-openjdk-amd64.yaml"),
    },
    Template {
        name: "java-11-openjdk.yaml",
        text: include_str!("../../templates/java-11-openjdk.yaml"),
    },
    Template {
        name: "java-8-openjdk-amd64.yaml",
        text: include_str!("../../templates/java-8-openjdk-amd64.yaml"),
    },
    Template {
        name: "java-8-openjdk.yaml",
        text: include_str!("../../templates/java-8-openjdk.yaml"),
    },
];

/// The prefix of an embedded template's path in messages and in `Bom::path`.
pub(super) const EMBEDDED_PREFIX: &str = "<embedded>";

impl Template {
    /// The path shown for this template, e.g. `<embedded>/base.yaml`.
    pub fn path(&self) -> PathBuf {
        Path::new(EMBEDDED_PREFIX).join(self.name)
    }
}

/// The embedded template whose name is the file name of `include`.
pub(super) fn find(include: &str) -> Option<Template> {
    let name = Path::new(include).file_name()?;
    TEMPLATES.iter().copied().find(|t| name == t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_templates_by_file_name() {
        assert_eq!(find("base.yaml").map(|t| t.name), Some("base.yaml"));
        assert_eq!(
            find("/opt/occlum/etc/template/java-11-openjdk-amd64.yaml").map(|t| t.name),
            Some("java-11-openjdk-amd64.yaml")
        );
        assert!(find("nope.yaml").is_none());
        assert!(find("").is_none());
        assert_eq!(
            find("base.yaml").map(|t| t.path()),
            Some(PathBuf::from("<embedded>/base.yaml"))
        );
    }
}
