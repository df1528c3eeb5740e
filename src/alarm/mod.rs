//! Alarms: what happens after a confirmed problem.
//!
//! `rules` matches check results to configured rules, `lifecycle` opens,
//! records, escalates and resolves alarms and says which actions and
//! notifications are due, `silence` holds run-time maintenance, `window` evaluates crontab time windows, `group`
//! folds alert storms into one message per contact, `text` writes the
//! default notification texts, and `outbox` schedules delivery retries.
//! Everything here is pure: time is passed in, nothing reads a clock, sends
//! a packet or runs a process; `crate::actions` does the I/O.

pub mod facts;
pub(crate) mod group;
pub mod lifecycle;
pub mod outbox;
pub(crate) mod rules;
pub mod silence;
pub mod store;
pub(crate) mod template;
#[cfg(test)]
mod tests;
pub(crate) mod text;
pub(crate) mod window;
