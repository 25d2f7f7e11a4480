//! "Did you mean" suggestions for unknown bom keys, by edit distance.

/// The known key closest to `unknown`, if it is close enough to be a typo
/// (`file` → `files`, `tagret` → `target`, `nam` → `name`).
pub(super) fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let unknown = unknown.to_lowercase();
    let limit = if unknown.chars().count() <= 3 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &[&str] = &["from", "dirs", "files"];

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tagret", "target"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(closest("file", COPY), Some("files"));
        assert_eq!(closest("dir", COPY), Some("dirs"));
        assert_eq!(closest("Files", COPY), Some("files"));
        assert_eq!(
            closest("nam", &["name", "hash", "autodep", "rename"]),
            Some("name")
        );
        assert_eq!(closest("tagret", &["target", "mkdirs"]), Some("target"));
        assert_eq!(
            closest("createlink", &["createlinks", "copy"]),
            Some("createlinks")
        );
    }

    #[test]
    fn far_keys_get_no_suggestion() {
        assert_eq!(closest("colour", COPY), None);
        assert_eq!(closest("x", COPY), None);
    }
}
