//! Label matchers (`name="value"`, `!=`, `=~`, `!~`), as Alertmanager writes them: used by
//! routes, inhibition rules and silences.

use std::collections::BTreeMap;

use crate::config::Regex;

/// A label matcher: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"` (quotes
/// optional; regexes fully anchored). A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    /// The compiled pattern, for `=~` and `!~`.
    regex: Option<Regex>,
}

/// A matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl Matcher {
    /// Parses one matcher.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let (at, op, len) = ["=~", "!~", "!=", "="]
            .iter()
            .filter_map(|op| text.find(op).map(|i| (i, *op, op.len())))
            .min_by_key(|(i, op, _)| (*i, std::cmp::Reverse(op.len())))
            .ok_or_else(|| format!("`{text}` has no =, !=, =~ or !~"))?;
        let name = text[..at].trim();
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!("`{name}` is not a label name"));
        }
        let raw = text[at + len..].trim();
        let value = raw
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(raw)
            .to_owned();
        let op = match op {
            "=" => MatchOp::Eq,
            "!=" => MatchOp::Ne,
            "=~" => MatchOp::Re,
            _ => MatchOp::NotRe,
        };
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(Regex::new(&value)?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(r)) => r.is_match(v),
            (MatchOp::NotRe, Some(r)) => !r.is_match(v),
            _ => false,
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// Whether `labels` satisfy every matcher of `matchers` (true for none).
pub(crate) fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_and_match() {
        let labels: BTreeMap<String, String> =
            [("severity".to_owned(), "critical".to_owned())].into();
        for (text, expect) in [
            ("severity=\"critical\"", true),
            ("severity=critical", true),
            ("severity!=critical", false),
            ("severity=~\"crit.*\"", true),
            ("severity=~crit", false),
            ("severity!~\"warn.*\"", true),
            ("team=\"\"", true),
        ] {
            assert_eq!(
                Matcher::parse(text).unwrap().matches(&labels),
                expect,
                "{text}"
            );
        }
        assert!(Matcher::parse("severity").is_err());
        assert!(Matcher::parse("1x=a").is_err());
        assert!(Matcher::parse("a=~\"(\"").is_err());
    }
}
