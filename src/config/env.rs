//! RoadRunner-style environment substitution on the raw file text, before YAML parsing.
//!
//! Only the braced forms are expanded: `${VAR}` and `${VAR:-default}`. A bare `$VAR` stays as
//! written so that values such as passwords or regexes containing `$` survive untouched.

/// Expands `${VAR}` and `${VAR:-default}` in `text`, reading variables through `lookup`.
///
/// An unset `${VAR}` becomes the empty string, as in RoadRunner. The default is used when the
/// variable is unset or empty; it runs to the first `}` and is not itself expanded. Anything
/// that is not a well-formed reference (no closing brace, a name that is not
/// `[A-Za-z_][A-Za-z0-9_]*`) is copied literally.
pub(crate) fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if is_name(name) {
            let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
            out.push_str(value.as_deref().or(default).unwrap_or(""));
        } else {
            out.push_str(&rest[start..start + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The real process environment, for [`substitute`]. Non-UTF-8 values count as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("0.0.0.0".into()),
            "PORT" => Some("9000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_braced_variables() {
        assert_eq!(substitute("${HOST}:${PORT}", vars), "0.0.0.0:9000");
    }

    #[test]
    fn unset_without_default_is_empty() {
        assert_eq!(substitute("a${NOPE}b", vars), "ab");
    }

    #[test]
    fn default_used_when_unset_or_empty() {
        assert_eq!(substitute("${NOPE:-8080}", vars), "8080");
        assert_eq!(substitute("${EMPTY:-8080}", vars), "8080");
        assert_eq!(substitute("${PORT:-8080}", vars), "9000");
        assert_eq!(substitute("${NOPE:-}", vars), "");
    }

    #[test]
    fn set_but_empty_without_default_is_empty() {
        assert_eq!(substitute("[${EMPTY}]", vars), "[]");
    }

    #[test]
    fn default_may_contain_colons_and_dashes() {
        assert_eq!(
            substitute("${NOPE:-http://x:1/a-b}", vars),
            "http://x:1/a-b"
        );
    }

    #[test]
    fn bare_dollar_is_left_alone() {
        assert_eq!(substitute("pa$$word $HOST $", vars), "pa$$word $HOST $");
    }

    #[test]
    fn malformed_references_are_literal() {
        assert_eq!(substitute("${HOST", vars), "${HOST");
        assert_eq!(substitute("${1X} ${A B} ${}", vars), "${1X} ${A B} ${}");
        assert_eq!(substitute("${HOST}${", vars), "0.0.0.0${");
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(substitute("é${PORT}ü", vars), "é9000ü");
    }

    #[test]
    fn reads_the_process_environment() {
        let name = "RR_CONFIG_ENV_TEST_7F3A";
        std::env::set_var(name, "from-env");
        assert_eq!(substitute(&format!("${{{name}}}"), process_env), "from-env");
        std::env::remove_var(name);
    }
}
