//! rsync's wildcard language, matched exactly: `*` stops at '/', `**` crosses it, `?` and `[...]`
//! never match '/', and `**/` needs at least one '/' (no "zero directories" shortcut as in globset).
//! A dynamic-programming match keeps every pattern linear in the name's length, whatever its stars.

/// A compiled rsync wildcard pattern.
#[derive(Debug, Clone)]
pub(crate) struct Wildmatch {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone)]
enum Token {
    Byte(u8),
    /// `?`
    AnyByte,
    /// `*`
    Star,
    /// `**` (or more stars)
    DoubleStar,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(u8, u8),
    Named(NamedClass),
}

#[derive(Debug, Clone, Copy)]
enum NamedClass {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl Wildmatch {
    /// Compile `pattern`; without any of `*?[` it is a literal string (backslashes included), as in
    /// rsync, which then compares with strcmp.
    pub(crate) fn new(pattern: &[u8]) -> Result<Wildmatch, String> {
        if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            let tokens = pattern.iter().map(|&b| Token::Byte(b)).collect();
            return Ok(Wildmatch { tokens });
        }
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let (token, next) = match pattern[i] {
                b'\\' if i + 1 < pattern.len() => (Token::Byte(pattern[i + 1]), i + 2),
                b'?' => (Token::AnyByte, i + 1),
                b'*' => {
                    let end = i + pattern[i..].iter().take_while(|&&b| b == b'*').count();
                    let token = if end - i > 1 {
                        Token::DoubleStar
                    } else {
                        Token::Star
                    };
                    (token, end)
                }
                b'[' => parse_class(pattern, i + 1)?,
                byte => (Token::Byte(byte), i + 1),
            };
            tokens.push(token);
            i = next;
        }
        Ok(Wildmatch { tokens })
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        // reach[j]: the tokens seen so far can match text[..j].
        let mut reach = vec![false; text.len() + 1];
        reach[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                next[j] = match token {
                    Token::Star => reach[j] || (j > 0 && next[j - 1] && text[j - 1] != b'/'),
                    Token::DoubleStar => reach[j] || (j > 0 && next[j - 1]),
                    single => j > 0 && reach[j - 1] && single.matches_byte(text[j - 1]),
                };
            }
            reach = next;
        }
        reach[text.len()]
    }
}

impl Token {
    fn matches_byte(&self, byte: u8) -> bool {
        match self {
            Token::Byte(b) => *b == byte,
            Token::AnyByte => byte != b'/',
            Token::Class { negated, items } => {
                byte != b'/' && items.iter().any(|item| item.contains(byte)) != *negated
            }
            Token::Star | Token::DoubleStar => false,
        }
    }
}

impl ClassItem {
    fn contains(&self, b: u8) -> bool {
        match self {
            ClassItem::Range(lo, hi) => (*lo..=*hi).contains(&b),
            ClassItem::Named(class) => class.contains(b),
        }
    }
}

impl NamedClass {
    fn from_name(name: &[u8]) -> Option<NamedClass> {
        Some(match name {
            b"alnum" => NamedClass::Alnum,
            b"alpha" => NamedClass::Alpha,
            b"blank" => NamedClass::Blank,
            b"cntrl" => NamedClass::Cntrl,
            b"digit" => NamedClass::Digit,
            b"graph" => NamedClass::Graph,
            b"lower" => NamedClass::Lower,
            b"print" => NamedClass::Print,
            b"punct" => NamedClass::Punct,
            b"space" => NamedClass::Space,
            b"upper" => NamedClass::Upper,
            b"xdigit" => NamedClass::Xdigit,
            _ => return None,
        })
    }

    fn contains(self, b: u8) -> bool {
        match self {
            NamedClass::Alnum => b.is_ascii_alphanumeric(),
            NamedClass::Alpha => b.is_ascii_alphabetic(),
            NamedClass::Blank => b == b' ' || b == b'\t',
            NamedClass::Cntrl => b.is_ascii_control(),
            NamedClass::Digit => b.is_ascii_digit(),
            NamedClass::Graph => b.is_ascii_graphic(),
            NamedClass::Lower => b.is_ascii_lowercase(),
            NamedClass::Print => b.is_ascii_graphic() || b == b' ',
            NamedClass::Punct => b.is_ascii_punctuation(),
            NamedClass::Space => b.is_ascii_whitespace() || b == 0x0b,
            NamedClass::Upper => b.is_ascii_uppercase(),
            NamedClass::Xdigit => b.is_ascii_hexdigit(),
        }
    }
}

/// Parse a `[...]` class whose body starts at `start`; returns the token and the index after `]`.
/// `!` or `^` first negates; a `]` first is literal; `a-z` ranges, `[:alpha:]` names, `\x` escapes.
fn parse_class(pattern: &[u8], start: usize) -> Result<(Token, usize), String> {
    let mut i = start;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&byte) = pattern.get(i) else {
            return Err("unterminated '[' character class".to_string());
        };
        if byte == b']' && !first {
            return Ok((Token::Class { negated, items }, i + 1));
        }
        first = false;
        if byte == b'[' && pattern.get(i + 1) == Some(&b':') {
            let body = &pattern[i + 2..];
            let end = body
                .windows(2)
                .position(|w| w == b":]")
                .ok_or_else(|| "unterminated '[:' class name".to_string())?;
            let class = NamedClass::from_name(&body[..end]).ok_or_else(|| {
                format!(
                    "unknown class name [:{}:]",
                    String::from_utf8_lossy(&body[..end])
                )
            })?;
            items.push(ClassItem::Named(class));
            i += 2 + end + 2;
            continue;
        }
        let (low, after) = class_byte(pattern, i)?;
        if pattern.get(after) == Some(&b'-') && pattern.get(after + 1).is_some_and(|&b| b != b']') {
            let (high, after_high) = class_byte(pattern, after + 1)?;
            items.push(ClassItem::Range(low, high));
            i = after_high;
        } else {
            items.push(ClassItem::Range(low, low));
            i = after;
        }
    }
}

/// One (possibly backslash-escaped) byte inside a class, and the index after it.
fn class_byte(pattern: &[u8], i: usize) -> Result<(u8, usize), String> {
    match (pattern.get(i), pattern.get(i + 1)) {
        (Some(b'\\'), Some(&escaped)) => Ok((escaped, i + 2)),
        (Some(&byte), _) => Ok((byte, i + 1)),
        (None, _) => Err("unterminated '[' character class".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Wildmatch::new(pattern.as_bytes())
            .unwrap()
            .matches(text.as_bytes())
    }

    #[test]
    fn star_stays_within_a_component() {
        assert!(m("*.so", "libc.so"));
        assert!(!m("*.so", "lib/libc.so"));
        assert!(m("lib*", "lib"));
    }

    #[test]
    fn double_star_crosses_slashes_but_needs_its_slash() {
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/b"));
        assert!(m("a/**", "a/x/y"));
        assert!(m("**.so", "x/y.so"));
    }

    #[test]
    fn question_mark_and_classes() {
        assert!(m("lib?.so", "liba.so"));
        assert!(!m("lib?.so", "lib/.so"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("[]]", "]"));
        assert!(m("[[:digit:]]*", "7up"));
        assert!(!m("[[:digit:]]*", "up"));
        assert!(!m("[!a]", "/"));
    }

    #[test]
    fn escapes_and_literals() {
        assert!(m("\\*x", "*x") && !m("\\*x?", "ax1"));
        assert!(m("a\\b", "a\\b"), "no wildcards: compared literally");
    }

    #[test]
    fn bad_classes_are_errors() {
        assert!(Wildmatch::new(b"[abc").is_err());
        assert!(Wildmatch::new(b"[[:nope:]]").is_err());
    }

    #[test]
    fn many_stars_stay_fast() {
        let text = "a".repeat(2000);
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &text));
    }
}
