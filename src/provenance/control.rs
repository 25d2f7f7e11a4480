//! Debian's control-file syntax (deb822): paragraphs of `Field: value` lines separated by blank
//! lines, a value continued on lines that start with a space or a tab. The dpkg status file and
//! the machine-readable copyright files (DEP-5) are both written in it.

/// One paragraph: its text as read (for copying it verbatim) and its fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    /// The paragraph's lines, each ending in a newline.
    pub text: String,
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `name` (field names compare case-insensitively, as dpkg's do); continuation
    /// lines are kept, joined by newlines, without their leading space.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The paragraphs of `text`. Lines that are neither a field nor a continuation (a stray line
/// in a hand-edited file) are kept in the text and otherwise ignored: a damaged entry must not
/// hide the others.
pub fn paragraphs(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut current = Paragraph {
        text: String::new(),
        fields: Vec::new(),
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.text.is_empty() {
                out.push(std::mem::replace(
                    &mut current,
                    Paragraph {
                        text: String::new(),
                        fields: Vec::new(),
                    },
                ));
            }
            continue;
        }
        current.text.push_str(line);
        current.text.push('\n');
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.fields.last_mut() {
                let more = line.trim();
                // A lone "." stands for an empty line inside a value.
                value.push('\n');
                value.push_str(if more == "." { "" } else { more });
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current
                .fields
                .push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.text.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_continuations_and_paragraphs() {
        let text = "Package: a\nDescription: short\n long\n .\n more\n\n\nPackage: b\nstray\n";
        let ps = paragraphs(text);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].field("package"), Some("a"));
        assert_eq!(ps[0].field("Description"), Some("short\nlong\n\nmore"));
        assert_eq!(ps[1].field("Package"), Some("b"));
        assert_eq!(ps[1].text, "Package: b\nstray\n");
        assert_eq!(ps[1].field("stray"), None);
    }
}
