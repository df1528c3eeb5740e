//! Check kinds and the result every check produces.
//!
//! One file per kind (`port`, `ping`, `init`, `plugin`), `location` for
//! running a command here or over SSH; this module
//! re-exports the result types of the plugin API ([`crate::plugin_output`])
//! that they share, and [`Runner`] dispatches one configured
//! check to its kind. Checks never touch the store or the state machine: they
//! return a [`CheckOutput`] and the caller decides what it means.

pub use crate::plugin_output::{format_perfdata, CheckOutput, PerfDatum, State};

pub mod init;
pub mod location;
pub mod ping;
pub mod plugin;
pub mod port;
mod runner;

pub use runner::{Run, Runner};
