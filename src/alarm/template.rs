//! A tiny `{{key}}` template language for mail subjects and bodies, SMS
//! texts, gateway URLs and bodies.
//!
//! `{{key}}` inserts a fact as is, `{{key|url}}` percent-encodes it for a
//! URL or form body, `{{key|json}}` escapes it for inside a JSON string.
//! Keys are checked when the template is parsed (so a typo is a config
//! error, not an empty SMS at 3 a.m.). Pure; no I/O.

use super::facts::Facts;
use crate::suggest::did_you_mean;
use std::fmt;

/// How an inserted value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// As is.
    Plain,
    /// Percent-encoded (`application/x-www-form-urlencoded` and URLs).
    Url,
    /// Escaped for the inside of a JSON string.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Key(String, Filter),
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl Template {
    /// Parses `text`, accepting only keys in `known`; the error names the bad key.
    pub fn parse(text: &str, known: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                return Err(format!(
                    "template {text:?} has an unclosed {{{{: close it with }}}}"
                ));
            };
            let inner = after[..j].trim();
            let (key, filter) = match inner.split_once('|') {
                Some((k, f)) => {
                    let filter = match f.trim() {
                        "url" => Filter::Url,
                        "json" => Filter::Json,
                        other => {
                            return Err(format!(
                                "template {text:?}: unknown filter {other:?}{} (use url or json)",
                                did_you_mean(other, &["url", "json"])
                            ))
                        }
                    };
                    (k.trim(), filter)
                }
                None => (inner, Filter::Plain),
            };
            if !known.contains(&key) {
                return Err(format!(
                    "template {text:?}: unknown key {key:?}{}; known keys: {}",
                    did_you_mean(key, known),
                    known.join(", ")
                ));
            }
            parts.push(Part::Key(key.to_string(), filter));
            rest = &after[j + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template; unset facts are empty.
    pub fn render(&self, facts: &Facts) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Key(k, Filter::Plain) => out.push_str(facts.get(k)),
                Part::Key(k, Filter::Url) => out.push_str(&url_encode(facts.get(k))),
                Part::Key(k, Filter::Json) => out.push_str(&json_escape(facts.get(k))),
            }
        }
        out
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["check", "state", "output"];

    #[test]
    fn renders_with_filters() {
        let mut f = Facts::default();
        f.set("check", "web 1");
        f.set("state", "CRITICAL");
        f.set("output", "said \"no\"\nbye");
        let cases = [
            ("{{check}} is {{ state }}", "web 1 is CRITICAL"),
            ("Body={{check|url}}", "Body=web%201"),
            (
                "{\"t\":\"{{output|json}}\"}",
                "{\"t\":\"said \\\"no\\\"\\nbye\"}",
            ),
            ("no keys", "no keys"),
            ("", ""),
        ];
        for (t, want) in cases {
            assert_eq!(Template::parse(t, KNOWN).expect(t).render(&f), want);
        }
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let cases = [
            ("{{chek}}", "unknown key \"chek\""),
            ("{{check", "unclosed"),
            ("{{check|upper}}", "unknown filter \"upper\""),
        ];
        for (t, want) in cases {
            let e = Template::parse(t, KNOWN).expect_err(t);
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
