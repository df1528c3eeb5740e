//! The schema's versioned migrations, one numbered SQL file per backend.
//!
//! The runners live with their backend (`postgres.rs` takes
//! `pg_advisory_lock`, `sqlite.rs` a `BEGIN IMMEDIATE` transaction) and record
//! each applied version in `schema_migrations`; in the same transaction they
//! give the database its installation id, once (see
//! [`super::Store::installation_id`]). A migration that was applied must
//! never be edited: add a new file and a new entry here instead.

/// One migration: its version (strictly increasing), a name and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number, recorded in `schema_migrations`.
    pub version: i64,
    /// Short name for logs and `laxmon db migrate`.
    pub name: &'static str,
    /// The SQL, run as one batch inside a transaction.
    pub sql: &'static str,
}

/// PostgreSQL migrations in order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "alarm_detail",
        sql: include_str!("postgres/0002_alarm_detail.sql"),
    },
    Migration {
        version: 3,
        name: "installation",
        sql: include_str!("postgres/0003_installation.sql"),
    },
    Migration {
        version: 4,
        name: "events_audit",
        sql: include_str!("postgres/0004_events_audit.sql"),
    },
    Migration {
        version: 5,
        name: "silences",
        sql: include_str!("postgres/0005_silences.sql"),
    },
];

/// SQLite migrations in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "alarm_detail",
        sql: include_str!("sqlite/0002_alarm_detail.sql"),
    },
    Migration {
        version: 3,
        name: "installation",
        sql: include_str!("sqlite/0003_installation.sql"),
    },
    Migration {
        version: 4,
        name: "events_audit",
        sql: include_str!("sqlite/0004_events_audit.sql"),
    },
    Migration {
        version: 5,
        name: "silences",
        sql: include_str!("sqlite/0005_silences.sql"),
    },
];
