//! Variable expansion in bom strings (SPEC B2): `$NAME`, `${NAME}`,
//! `${NAME:-default}` and `$$`.
//!
//! The original expanded the joined full paths and silently kept the whole
//! string when a variable was unset; we expand each field's own string and make
//! an unset variable an error, so a typo never turns into a wrong host path.

use std::fmt;

/// A variable that a string uses but that is not defined (and has no default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedVar {
    pub name: String,
}

impl fmt::Display for UndefinedVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undefined variable {}", self.name)
    }
}

impl std::error::Error for UndefinedVar {}

/// Expands the variables of `s`, looking each one up with `vars`.
///
/// `${NAME:-default}` uses `default` (taken literally) when NAME is unset or
/// empty, as the shell does. A `$` followed by anything that does not start a
/// variable (including an unclosed `${`) stays literal.
pub fn expand_vars(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, UndefinedVar> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (expansion, consumed) = expand_one(after, vars)?;
        out.push_str(&expansion);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands the variable reference that follows a `$`; returns the text to emit
/// and how many bytes of `after` it used.
fn expand_one(
    after: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, usize), UndefinedVar> {
    if after.starts_with('$') {
        return Ok(("$".to_string(), 1));
    }
    if let Some(braced) = after.strip_prefix('{') {
        return match braced.find('}') {
            Some(end) if end > 0 => {
                let value = expand_braced(&braced[..end], vars)?;
                Ok((value, end + 2))
            }
            _ => Ok(("$".to_string(), 0)),
        };
    }
    let name_len: usize = after
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if name_len == 0 {
        return Ok(("$".to_string(), 0));
    }
    let name = &after[..name_len];
    let value = vars(name).ok_or_else(|| UndefinedVar {
        name: name.to_string(),
    })?;
    Ok((value, name_len))
}

/// Expands the inside of `${...}`: `NAME` or `NAME:-default`.
fn expand_braced(
    inner: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, UndefinedVar> {
    match inner.split_once(":-") {
        Some((name, default)) => Ok(vars(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())),
        None => vars(inner).ok_or_else(|| UndefinedVar {
            name: inner.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "N_1" => Some("n".into()),
            "é" => Some("accent".into()),
            _ => None,
        }
    }

    fn ex(s: &str) -> Result<String, UndefinedVar> {
        expand_vars(s, &env)
    }

    #[test]
    fn plain_and_braced_names() {
        assert_eq!(ex("/x/$A/y").unwrap(), "/x/alpha/y");
        assert_eq!(ex("$A$N_1").unwrap(), "alphan");
        assert_eq!(ex("${A}_suffix").unwrap(), "alpha_suffix");
        assert_eq!(ex("$é.so").unwrap(), "accent.so");
        assert_eq!(ex("$EMPTY/etc").unwrap(), "/etc");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(ex("${MISSING:-dflt}/x").unwrap(), "dflt/x");
        assert_eq!(ex("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(ex("${A:-dflt}").unwrap(), "alpha");
        assert_eq!(ex("${MISSING:-}").unwrap(), "");
    }

    #[test]
    fn dollar_literals() {
        assert_eq!(ex("a$$b").unwrap(), "a$b");
        assert_eq!(ex("$$A").unwrap(), "$A");
        assert_eq!(ex("a $ b/$").unwrap(), "a $ b/$");
        assert_eq!(ex("a$-b$.c").unwrap(), "a$-b$.c");
        assert_eq!(ex("${unclosed").unwrap(), "${unclosed");
        assert_eq!(ex("${}").unwrap(), "${}");
    }

    #[test]
    fn undefined_variables_are_named() {
        assert_eq!(ex("/opt/$NOPE/x").unwrap_err().name, "NOPE");
        assert_eq!(ex("${NOPE2}").unwrap_err().name, "NOPE2");
        assert_eq!(ex("$5").unwrap_err().name, "5");
        assert_eq!(
            ex("$A/$NOPE3").unwrap_err().to_string(),
            "undefined variable NOPE3"
        );
    }
}
