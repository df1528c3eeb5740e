//! The small readers every section decoder shares: the error collector
//! ([`Errors`]), a mapping taken key by key ([`MapView`]) and the scalar
//! decoders (strings, names, durations, numbers, lists). `decode.rs`,
//! `alarms.rs` and `clusters.rs` all build on these; this file imports none
//! of them, so the section decoders depend on it and never on each other.
//!
//! Nothing here touches the file system or knows a section's keys: each
//! reader takes one node, reports what is wrong with it (file, line,
//! column, key, value) and returns what it could make of it.

use super::duration;
use super::yaml::{Node, Pos, Value};
use super::ConfigError;
use crate::suggest::did_you_mean;
use std::path::Path;
use std::time::Duration;

/// The collector of errors for one load.
#[derive(Default)]
pub(super) struct Errors {
    pub(super) list: Vec<ConfigError>,
}

impl Errors {
    pub(super) fn at(&mut self, file: &Path, pos: Pos, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }
}

/// A mapping being decoded: keys are taken one by one, the rest are unknown.
pub(super) struct MapView<'a> {
    file: &'a Path,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
    taken: Vec<bool>,
}

impl<'a> MapView<'a> {
    /// Views `node` as a mapping named `what`; reports and returns `None` if it is not one.
    pub(super) fn new(
        file: &'a Path,
        node: &'a Node,
        what: &str,
        errors: &mut Errors,
    ) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            errors.at(
                file,
                node.pos,
                format!(
                    "{what} must be a mapping of keys, found {}",
                    node.value.describe()
                ),
            );
            return None;
        };
        let mut list = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match &k.value {
                Value::Str(s) => list.push((s.as_str(), k, v)),
                other => errors.at(
                    file,
                    k.pos,
                    format!("keys in {what} must be strings, found {}", other.describe()),
                ),
            }
        }
        let taken = vec![false; list.len()];
        Some(MapView {
            file,
            entries: list,
            taken,
        })
    }

    /// Takes the value of `key`, if present.
    pub(super) fn take(&mut self, key: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|(k, _, _)| *k == key)?;
        self.taken[i] = true;
        Some(self.entries[i].2)
    }

    /// Takes `key` as a duration within `min..=max` into `slot`; `slot`
    /// keeps its value when the key is absent or invalid (then reported as `label`).
    pub(super) fn duration_into(
        &mut self,
        key: &str,
        label: &str,
        (min, max): (Duration, Duration),
        slot: &mut Duration,
        errors: &mut Errors,
    ) {
        if let Some(d) = self
            .take(key)
            .and_then(|n| duration_in(self.file, label, n, min, max, errors))
        {
            *slot = d;
        }
    }

    /// Reports every key not taken as unknown, listing the keys allowed in `what`.
    pub(super) fn finish(self, what: &str, allowed: &[&str], errors: &mut Errors) {
        for (i, (key, knode, _)) in self.entries.iter().enumerate() {
            if !self.taken[i] {
                let hint = did_you_mean(key, allowed);
                errors.at(
                    self.file,
                    knode.pos,
                    format!(
                        "unknown key {key:?} in {what}{hint}; allowed keys: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
}

// ---- scalar decoders: each reports and returns None on a bad value ----

pub(super) fn string(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        other => {
            errors.at(
                file,
                node.pos,
                format!("{key} must be a string, found {}", other.describe()),
            );
            None
        }
    }
}

pub(super) fn name(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Option<String> {
    let s = string(file, key, node, errors)?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        errors.at(
            file,
            node.pos,
            format!("{key} {s:?} is not a valid name: use letters, digits, '_', '.' and '-'"),
        );
        return None;
    }
    Some(s)
}

pub(super) fn duration(
    file: &Path,
    key: &str,
    node: &Node,
    errors: &mut Errors,
) -> Option<Duration> {
    let d = match &node.value {
        Value::Str(s) => duration::parse(s),
        Value::Int(i) => Err(format!(
            "duration {i} has no unit: write e.g. {i}s or {i}ms (units: ms, s, m, h, d)"
        )),
        Value::Float(f) => Err(format!(
            "duration {f} has no unit: write e.g. {f}s (units: ms, s, m, h, d)"
        )),
        other => Err(format!(
            "must be a duration such as 10s, found {}",
            other.describe()
        )),
    };
    match d {
        Ok(d) => Some(d),
        Err(msg) => {
            errors.at(file, node.pos, format!("{key}: {msg}"));
            None
        }
    }
}

/// A duration that must lie within `min..=max`.
pub(super) fn duration_in(
    file: &Path,
    key: &str,
    node: &Node,
    min: Duration,
    max: Duration,
    errors: &mut Errors,
) -> Option<Duration> {
    let d = duration(file, key, node, errors)?;
    if d < min || d > max {
        errors.at(
            file,
            node.pos,
            format!(
                "{key} {} is out of range: it must be between {} and {}",
                duration::format(d),
                duration::format(min),
                duration::format(max)
            ),
        );
        return None;
    }
    Some(d)
}

pub(super) fn integer(
    file: &Path,
    key: &str,
    node: &Node,
    min: i64,
    max: i64,
    errors: &mut Errors,
) -> Option<i64> {
    let Value::Int(i) = node.value else {
        errors.at(
            file,
            node.pos,
            format!(
                "{key} must be a whole number, found {}",
                node.value.describe()
            ),
        );
        return None;
    };
    if i < min || i > max {
        errors.at(
            file,
            node.pos,
            format!("{key} {i} is out of range: it must be between {min} and {max}"),
        );
        return None;
    }
    Some(i)
}

pub(super) fn number(
    file: &Path,
    key: &str,
    node: &Node,
    min: f64,
    max: f64,
    errors: &mut Errors,
) -> Option<f64> {
    let n = match node.value {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        Value::Str(ref s) if s.ends_with('%') && s[..s.len() - 1].trim().parse::<f64>().is_ok() => {
            s[..s.len() - 1].trim().parse::<f64>().unwrap_or(f64::NAN)
        }
        _ => {
            errors.at(
                file,
                node.pos,
                format!("{key} must be a number, found {}", node.value.describe()),
            );
            return None;
        }
    };
    if !(min..=max).contains(&n) {
        errors.at(
            file,
            node.pos,
            format!("{key} {n} is out of range: it must be between {min} and {max}"),
        );
        return None;
    }
    Some(n)
}

pub(super) fn string_list(file: &Path, key: &str, node: &Node, errors: &mut Errors) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|n| string(file, &format!("each entry of {key}"), n, errors))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            errors.at(
                file,
                node.pos,
                format!(
                    "{key} must be a list such as [a, b], found {}",
                    other.describe()
                ),
            );
            Vec::new()
        }
    }
}

pub(super) fn seq<'a>(file: &Path, key: &str, node: &'a Node, errors: &mut Errors) -> &'a [Node] {
    match &node.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        other => {
            errors.at(
                file,
                node.pos,
                format!("{key} must be a list, found {}", other.describe()),
            );
            &[]
        }
    }
}
