//! Image paths: absolute paths inside the image, normalised lexically before anything is resolved.

use std::path::PathBuf;

/// A path that climbs above the image's "/" with "..": rejected before anything is written (SPEC B2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: '..' leads outside the image root")]
pub struct EscapeError {
    /// The path as it was given.
    pub path: String,
}

/// Normalise `p` as a path inside the image: "." and empty components are dropped, ".." removes the
/// previous component, and a relative path is taken from the image root ("lib" is "/lib").
///
/// Unlike the kernel (where "/.." is "/"), a ".." above "/" is an error: in a bom it means the author
/// expected to leave the root, and silently clamping would write somewhere they did not intend.
pub fn normalize_image_path(p: &str) -> Result<PathBuf, EscapeError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(EscapeError {
                        path: p.to_string(),
                    });
                }
            }
            name => parts.push(name),
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(parts);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        normalize_image_path(p).unwrap().display().to_string()
    }

    #[test]
    fn removes_dots_and_double_slashes() {
        assert_eq!(norm("/usr//lib/./x86_64/"), "/usr/lib/x86_64");
        assert_eq!(norm("//"), "/");
        assert_eq!(norm(""), "/");
        assert_eq!(norm("."), "/");
    }

    #[test]
    fn dot_dot_pops_a_component() {
        assert_eq!(norm("/usr/lib/../bin"), "/usr/bin");
        assert_eq!(norm("/a/b/../../c"), "/c");
        assert_eq!(norm("/a/.."), "/");
    }

    #[test]
    fn relative_paths_start_at_the_root() {
        assert_eq!(norm("lib"), "/lib");
        assert_eq!(norm("./opt/app"), "/opt/app");
    }

    #[test]
    fn climbing_above_the_root_is_an_error() {
        let err = normalize_image_path("/a/../../etc").unwrap_err();
        assert_eq!(err.path, "/a/../../etc");
        assert!(err.to_string().contains("outside the image root"));
        assert!(normalize_image_path("..").is_err());
        assert!(normalize_image_path("../x").is_err());
    }
}
