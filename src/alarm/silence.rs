//! Silences: maintenance declared at run time. A silence names which checks
//! it covers (hosts, check globs, tags: the configuration's matcher), who
//! set it and why, and when it starts and ends; while it lasts, the alarms
//! of those checks are held back exactly as a maintenance window holds them
//! (see `lifecycle`), and what it held back happens once it ends.
//!
//! Plain values and their validation, and [`preview`] (which configured
//! checks a silence would cover): pure, no clock (time is passed in), no
//! store. The store keeps silences; the alarm stage hands the current ones
//! to the lifecycle.

use super::rules::{matches, Subject};
use crate::config::alarms::Matcher;
use crate::config::Config;
use crate::plugin_output::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A silence's number (the store's id).
pub type SilenceId = u64;

/// Which checks a silence covers: every given criterion must match, any
/// entry of a list may (a rule's `match:` without `states`). At least one
/// criterion is required: a silence never covers everything by accident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatch {
    /// Host entries, names or globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Checks, names or globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Tags of the check or its host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl SilenceMatch {
    /// Whether no criterion is given.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.checks.is_empty() && self.tags.is_empty()
    }

    /// The configuration's matcher for these criteria (globs compiled).
    pub fn matcher(&self) -> Result<Matcher, SilenceError> {
        if self.is_empty() {
            return Err(SilenceError::NoMatcher);
        }
        let globs = |what: &'static str, list: &[String]| {
            list.iter()
                .map(|g| {
                    glob::Pattern::new(g).map_err(|e| SilenceError::BadGlob {
                        what,
                        glob: g.clone(),
                        error: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        if let Some(t) = self.tags.iter().find(|t| t.trim().is_empty()) {
            return Err(SilenceError::BadGlob {
                what: "tag",
                glob: t.clone(),
                error: "a tag cannot be empty".into(),
            });
        }
        Ok(Matcher {
            checks: globs("check", &self.checks)?,
            hosts: globs("host", &self.hosts)?,
            tags: self.tags.clone(),
            states: Vec::new(),
        })
    }
}

impl std::fmt::Display for SilenceMatch {
    /// `host=cs1 check=apache-* tag=web` (lists joined with `,`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (key, list) in [
            ("host", &self.hosts),
            ("check", &self.checks),
            ("tag", &self.tags),
        ] {
            if !list.is_empty() {
                parts.push(format!("{key}={}", list.join(",")));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

/// A silence as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Its number.
    pub id: SilenceId,
    /// What it covers.
    pub matchers: SilenceMatch,
    /// Why (required).
    pub comment: String,
    /// Who set it.
    pub by: String,
    /// When it was set.
    pub created: DateTime<Utc>,
    /// When it starts to hold alarms back.
    pub starts: DateTime<Utc>,
    /// When it stops (exclusive).
    pub ends: DateTime<Utc>,
    /// When it was removed before its end, if it was.
    #[serde(default)]
    pub removed: Option<DateTime<Utc>>,
    /// Who removed it.
    #[serde(default)]
    pub removed_by: Option<String>,
}

impl Silence {
    /// Whether it holds alarms back at `now`: started, not ended, not removed.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.removed.is_none() && self.starts <= now && now < self.ends
    }

    /// Whether it is over at `now`: ended or removed.
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        self.removed.is_some() || self.ends <= now
    }
}

/// A silence to set: what the CLI and the control handle are asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSilence {
    /// What it covers (at least one criterion).
    pub matchers: SilenceMatch,
    /// Why (required, not blank).
    pub comment: String,
    /// Who sets it (required).
    pub by: String,
    /// When it starts (default: now).
    #[serde(default)]
    pub starts: Option<DateTime<Utc>>,
    /// When it ends (after the start and after now).
    pub ends: DateTime<Utc>,
}

impl NewSilence {
    /// Checks the request at `now`; returns when the silence starts.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, SilenceError> {
        self.matchers.matcher()?;
        if self.comment.trim().is_empty() {
            return Err(SilenceError::NoComment);
        }
        if self.by.trim().is_empty() {
            return Err(SilenceError::NoAuthor);
        }
        let starts = self.starts.unwrap_or(now);
        if self.ends <= now {
            return Err(SilenceError::EndsInPast { ends: self.ends });
        }
        if self.ends <= starts {
            return Err(SilenceError::EndsBeforeStart {
                starts,
                ends: self.ends,
            });
        }
        Ok(starts)
    }
}

/// Why a silence cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No host, check or tag given.
    #[error(
        "a silence needs at least one host, check or tag to match (it never silences everything)"
    )]
    NoMatcher,
    /// A glob does not compile, or a tag is empty.
    #[error("{what} {glob:?} is not a valid pattern: {error}")]
    BadGlob {
        /// `host`, `check` or `tag`.
        what: &'static str,
        /// What was given.
        glob: String,
        /// Why it is invalid.
        error: String,
    },
    /// The comment is missing or blank.
    #[error("a silence needs a comment saying why")]
    NoComment,
    /// The author is missing.
    #[error("a silence needs an author")]
    NoAuthor,
    /// The end is not in the future.
    #[error("the silence would end at {ends}, which is not in the future")]
    EndsInPast {
        /// The requested end.
        ends: DateTime<Utc>,
    },
    /// The end is not after the start.
    #[error("the silence would end at {ends}, not after its start {starts}")]
    EndsBeforeStart {
        /// The requested start.
        starts: DateTime<Utc>,
        /// The requested end.
        ends: DateTime<Utc>,
    },
}

/// A silence with its compiled matcher, as the lifecycle holds it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) silence: Silence,
    /// It had started at the lifecycle's latest look.
    pub(crate) started: bool,
    matcher: Matcher,
}

impl Held {
    /// Compiles the silence's matcher; `None` (logged by the caller) for
    /// one whose stored matchers no longer compile.
    pub(crate) fn new(silence: Silence) -> Option<Held> {
        let matcher = silence.matchers.matcher().ok()?;
        Some(Held {
            silence,
            started: false,
            matcher,
        })
    }

    /// Whether it covers `subject` (states do not matter).
    pub(crate) fn covers(&self, subject: &Subject) -> bool {
        matches(&self.matcher, subject, false)
    }
}

/// The configured checks a silence with `matchers` would cover, in
/// configuration order (tags of a check include its host's): a dry run.
pub fn preview(matchers: &SilenceMatch, config: &Config) -> Result<Vec<String>, SilenceError> {
    let matcher = matchers.matcher()?;
    Ok(config
        .checks
        .iter()
        .filter(|c| {
            let mut tags = c.tags.clone();
            if let Some(h) = config.host(&c.host) {
                tags.extend(h.tags.iter().cloned());
            }
            let subject = Subject {
                check: &c.name,
                host: &c.host,
                tags: &tags,
                state: State::Critical,
            };
            matches(&matcher, &subject, false)
        })
        .map(|c| c.name.clone())
        .collect())
}
