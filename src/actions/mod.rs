//! Actions and notifications: the I/O half of alarms.
//!
//! `script` runs programs (alarm scripts, Nagios event handlers),
//! `restart` builds the command lines of built-in actions, `notify` sends
//! outbox deliveries by mail, SMS, ntfy popup or webhook. Nothing here
//! decides *whether* something should happen; `crate::alarm` does.

pub mod notify;
pub mod restart;
pub mod script;
