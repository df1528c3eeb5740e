//! Silences in the store (the `silences` table of migration 0005): set,
//! removed and listed by `laxmon silence` and by the alarm stage's control
//! handle; the alarm stage reads the current ones (polling, and at start).
//!
//! The store is the source of truth for silences: the lifecycle only holds
//! a copy of those not over yet. A silence is never deleted or edited, only
//! removed (with who and when), so the table is their history. This file
//! holds the SQL of both backends for this one table; nothing here formats
//! for people.

use super::postgres::PgStore;
use super::sqlite::{get_json, get_opt_ts, get_ts, json_text, ts, SqliteStore};
use super::{dispatch, Backend, Store, StoreError};
use crate::alarm::silence::{NewSilence, Silence, SilenceMatch};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// The columns of a silence, in [`SilenceRecord`]'s order.
const COLS: &str =
    "id, matchers, comment, created_by, created_at, starts_at, ends_at, removed_at, removed_by";

/// A silence as the backends read it (matchers still JSON).
struct SilenceRecord {
    id: i64,
    matchers: serde_json::Value,
    comment: String,
    by: String,
    created: DateTime<Utc>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    removed: Option<DateTime<Utc>>,
    removed_by: Option<String>,
}

impl SilenceRecord {
    fn into_silence(self) -> Result<Silence, StoreError> {
        let matchers: SilenceMatch =
            serde_json::from_value(self.matchers).map_err(|source| StoreError::Json {
                what: format!("decoding the matchers of silence {}", self.id),
                source,
            })?;
        Ok(Silence {
            id: u64::try_from(self.id)
                .map_err(|_| StoreError::Corrupt(format!("negative silence id {}", self.id)))?,
            matchers,
            comment: self.comment,
            by: self.by,
            created: self.created,
            starts: self.starts,
            ends: self.ends,
            removed: self.removed,
            removed_by: self.removed_by,
        })
    }
}

impl Store {
    /// Stores a new silence (validated at `now`; it starts at its `starts`
    /// or `now`) and returns it with its number.
    pub async fn add_silence(
        &self,
        new: &NewSilence,
        now: DateTime<Utc>,
    ) -> Result<Silence, StoreError> {
        let starts = new.validate(now).map_err(StoreError::InvalidSilence)?;
        let matchers = serde_json::to_value(&new.matchers).map_err(|source| StoreError::Json {
            what: "encoding a silence's matchers".into(),
            source,
        })?;
        let rec = SilenceRecord {
            id: 0,
            matchers,
            comment: new.comment.clone(),
            by: new.by.clone(),
            created: now,
            starts,
            ends: new.ends,
            removed: None,
            removed_by: None,
        };
        let id = dispatch!(self, b => b.insert_silence(&rec).await)?;
        SilenceRecord { id, ..rec }.into_silence()
    }

    /// Removes silence `id` as `by` at `now`; returns it as removed. A
    /// silence that ended or was removed before cannot be removed.
    pub async fn remove_silence(
        &self,
        id: u64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Silence, StoreError> {
        let db_id =
            i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("silence id {id}")))?;
        let Some(current) = dispatch!(self, b => b.silence(db_id).await)? else {
            return Err(StoreError::NoSuchSilence(id));
        };
        let current = current.into_silence()?;
        if current.is_over(now) {
            return Err(StoreError::SilenceOver {
                id,
                at: current.removed.unwrap_or(current.ends),
            });
        }
        if !dispatch!(self, b => b.remove_silence(db_id, by, now).await)? {
            // Removed by someone else meanwhile.
            return Err(StoreError::SilenceOver { id, at: now });
        }
        Ok(Silence {
            removed: Some(now),
            removed_by: Some(by.to_string()),
            ..current
        })
    }

    /// Silences by number: those not over at `now` (active or still to
    /// start), or with `all` every one ever set.
    pub async fn silences(
        &self,
        all: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Silence>, StoreError> {
        let rows = dispatch!(self, b => b.silences(all, now).await)?;
        rows.into_iter().map(SilenceRecord::into_silence).collect()
    }
}

impl PgStore {
    async fn insert_silence(&self, s: &SilenceRecord) -> Result<i64, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO silences (matchers, comment, created_by, created_at, starts_at, ends_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&s.matchers, &s.comment, &s.by, &s.created, &s.starts, &s.ends],
            )
            .await
            .map_err(self.err("adding a silence"))?;
        Ok(row.get(0))
    }

    async fn silence(&self, id: i64) -> Result<Option<SilenceRecord>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLS} FROM silences WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(self.err(format!("reading silence {id}")))?;
        Ok(row.as_ref().map(pg_silence))
    }

    async fn remove_silence(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                format!("removing silence {id}"),
                "UPDATE silences SET removed_at = $2, removed_by = $3
                 WHERE id = $1 AND removed_at IS NULL AND ends_at > $2",
                &[&id, &now, &by],
            )
            .await?;
        Ok(n == 1)
    }

    async fn silences(
        &self,
        all: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLS} FROM silences
                     WHERE $1 OR (removed_at IS NULL AND ends_at > $2) ORDER BY id"
                ),
                &[&all, &now],
            )
            .await
            .map_err(self.err("listing silences"))?;
        Ok(rows.iter().map(pg_silence).collect())
    }
}

fn pg_silence(r: &tokio_postgres::Row) -> SilenceRecord {
    SilenceRecord {
        id: r.get(0),
        matchers: r.get(1),
        comment: r.get(2),
        by: r.get(3),
        created: r.get(4),
        starts: r.get(5),
        ends: r.get(6),
        removed: r.get(7),
        removed_by: r.get(8),
    }
}

impl SqliteStore {
    async fn insert_silence(&self, s: &SilenceRecord) -> Result<i64, StoreError> {
        let matchers = json_text(&s.matchers, "a silence's matchers")?;
        let (comment, by) = (s.comment.clone(), s.by.clone());
        let (created, starts, ends) = (ts(s.created), ts(s.starts), ts(s.ends));
        self.call(move |conn, ctx| {
            conn.execute(
                "INSERT INTO silences (matchers, comment, created_by, created_at, starts_at, ends_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![matchers, comment, by, created, starts, ends],
            )
            .map_err(ctx.err("adding a silence"))?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn silence(&self, id: i64) -> Result<Option<SilenceRecord>, StoreError> {
        self.call(move |conn, ctx| {
            conn.query_row(
                &format!("SELECT {COLS} FROM silences WHERE id = ?1"),
                [id],
                lite_silence,
            )
            .optional()
            .map_err(ctx.err(format!("reading silence {id}")))
        })
        .await
    }

    async fn remove_silence(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                format!("removing silence {id}"),
                "UPDATE silences SET removed_at = ?2, removed_by = ?3
                 WHERE id = ?1 AND removed_at IS NULL AND ends_at > ?2",
                vec![id.into(), ts(now).into(), by.to_string().into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn silences(
        &self,
        all: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        let now = ts(now);
        self.call(move |conn, ctx| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLS} FROM silences
                     WHERE ?1 OR (removed_at IS NULL AND ends_at > ?2) ORDER BY id"
                ))
                .map_err(ctx.err("listing silences"))?;
            let rows = stmt
                .query_map(params![all, now], lite_silence)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(ctx.err("listing silences"))?;
            Ok(rows)
        })
        .await
    }
}

fn lite_silence(r: &rusqlite::Row) -> rusqlite::Result<SilenceRecord> {
    Ok(SilenceRecord {
        id: r.get(0)?,
        matchers: get_json(r, 1)?,
        comment: r.get(2)?,
        by: r.get(3)?,
        created: get_ts(r, 4)?,
        starts: get_ts(r, 5)?,
        ends: get_ts(r, 6)?,
        removed: get_opt_ts(r, 7)?,
        removed_by: r.get(8)?,
    })
}
