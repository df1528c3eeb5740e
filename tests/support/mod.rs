//! Test support shared by the integration tests.
//!
//! `pg` gives every test a fresh PostgreSQL database; `backend` runs a
//! store scenario on SQLite and PostgreSQL; `bin` runs the real `laxmon`
//! binary; `alarm` makes lifecycle alarms to seed a store with; `browser`
//! drives a headless Chromium over WebDriver. Include with `mod support;`
//! from a test file.
#![allow(dead_code, unreachable_pub)]

pub mod alarm;
pub mod backend;
pub mod bin;
pub mod browser;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod http;
pub mod pg;
pub mod sshd;

/// A loopback TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
