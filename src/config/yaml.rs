//! A YAML document as a tree of nodes that remember where they stand.
//!
//! serde-saphyr parses the text (syntax errors, duplicate keys, anchors) and
//! gives every node its line and column through `Spanned`; the typed decoding
//! in `decode.rs` walks this tree so that it can report every error of a file
//! at once instead of stopping at the first. This module never interprets
//! what a value means.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts in its file.
    pub pos: Pos,
}

/// The value of a node, as the YAML scalar resolution typed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (plain or quoted).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What kind of value this is, for error messages ("a string", "a list", ...).
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// The parser's message, first line only.
    pub message: String,
}

/// Parses a YAML document into a positioned tree. An empty document is `Null`.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Null,
            pos: Pos { line: 1, column: 1 },
        });
    }
    serde_saphyr::from_str_with_options::<Node>(text, parse_options()).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line() as u32,
                column: l.column() as u32,
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        let full = e.to_string();
        let first = full.lines().next().unwrap_or("invalid YAML").trim();
        // serde-saphyr prefixes "error: line L column C: "; we print our own position.
        let message = first
            .strip_prefix("error: line ")
            .and_then(|rest| rest.split_once("column "))
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(_, msg)| msg.to_string())
            .unwrap_or_else(|| first.trim_start_matches("error: ").to_string());
        SyntaxError { pos, message }
    })
}

/// Parser limits for configuration files: the crate's defaults (250,000
/// nodes) stop at about 25,000 checks; a large cluster's config is trusted
/// admin input, so allow far more while keeping the other guards.
fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 50_000_000;
    budget.max_events = 100_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            value: spanned.value,
            pos: Pos {
                line: spanned.referenced.line() as u32,
                column: spanned.referenced.column() as u32,
            },
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("number {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_nodes() {
        let n = parse("a:\n  - x: 1\n    y: [2, \"3\"]\n").expect("valid");
        let Value::Map(top) = &n.value else {
            panic!("map")
        };
        let Value::Seq(items) = &top[0].1.value else {
            panic!("seq")
        };
        let Value::Map(m) = &items[0].value else {
            panic!("map")
        };
        assert_eq!(m[1].0.pos, Pos { line: 3, column: 5 });
        let Value::Seq(ys) = &m[1].1.value else {
            panic!("seq")
        };
        assert_eq!(ys[0].value, Value::Int(2));
        assert_eq!(ys[1].value, Value::Str("3".into()));
        assert_eq!(ys[1].pos.line, 3);
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let e = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert!(e.message.contains("duplicate mapping key"), "{}", e.message);
    }

    #[test]
    fn large_configs_parse() {
        let mut text = String::from("checks:\n");
        for i in 0..30_000 {
            text.push_str(&format!(
                "  - {{name: c{i}, kind: plugin, command: [/bin/true, x]}}\n"
            ));
        }
        let n = parse(&text).expect("30,000 checks (300,000 nodes) parse");
        let Value::Map(top) = &n.value else {
            panic!("map")
        };
        let Value::Seq(items) = &top[0].1.value else {
            panic!("seq")
        };
        assert_eq!(items.len(), 30_000);
    }

    #[test]
    fn broken_yaml_reports_position() {
        let e = parse("a: [1\nb: 2\n").expect_err("broken");
        assert_eq!(e.pos.line, 2);
        assert!(!e.message.starts_with("error"), "{}", e.message);
    }
}
