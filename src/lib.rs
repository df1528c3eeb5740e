//! laxmon: a monitoring and self-healing alarm daemon for small virtualisation clusters.
//!
//! Data flows config -> schedule -> check -> state -> store -> alarm -> action;
//! see ARCHITECTURE.md for the map and the invariants.

pub mod actions;
pub mod alarm;
pub mod api;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub(crate) mod logging;
pub mod metrics;
pub mod plugin_output;
pub mod process;
pub mod query;
pub mod remote;
pub mod render;
pub mod result;
pub(crate) mod schedule;
pub mod ssh;
pub mod stack;
pub mod state;
pub mod store;
pub(crate) mod suggest;
pub mod systemd;
pub mod web;
