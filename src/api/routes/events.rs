//! `GET /events`: a Server-Sent Events stream of state changes, alarm
//! changes, notifications (with their delivery outcome), actions and audit
//! entries. Event ids come from the store's event feed, so a client that
//! reconnects with `Last-Event-ID` (or `?after=ID`) gets everything it
//! missed, in order, before the live events.
//!
//! The stream reads the feed; it never writes and never buffers more than
//! one page per client.

use super::super::auth::Caller;
use super::super::error::{ApiError, QueryArgs};
use super::super::AppState;
use crate::config::http::Role;
use crate::store::FeedKind;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How often the feed is read when nothing new came.
const POLL: Duration = Duration::from_millis(500);
/// How many events one read takes.
const PAGE: u32 = 500;
/// How many events wait for a slow client before the reader waits too.
const CLIENT_QUEUE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Start after this event id (as `Last-Event-ID`, which wins when both
    /// are given); default: only events from now on.
    after: Option<i64>,
    /// Only these kinds, comma-separated: state_change, alarm,
    /// notification, action, audit.
    kinds: Option<String>,
    /// Only events about this check.
    check: Option<String>,
}

fn kind_name(k: FeedKind) -> &'static str {
    match k {
        FeedKind::StateChange => "state_change",
        FeedKind::Alarm => "alarm",
        FeedKind::Notification => "notification",
        FeedKind::Action => "action",
        FeedKind::Audit => "audit",
    }
}

const KINDS: &[&str] = &["state_change", "alarm", "notification", "action", "audit"];

pub(super) async fn events(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    QueryArgs(q): QueryArgs<EventsQuery>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    caller.require(Role::Read)?;
    let kinds: Option<Vec<String>> = match q.kinds.as_deref() {
        None => None,
        Some(list) => {
            let kinds: Vec<String> = list
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
            if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "kinds: {bad:?} is not one of {}",
                    KINDS.join(", ")
                )));
            }
            Some(kinds)
        }
    };
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event id"))?,
        ),
        None => None,
    };
    let generation = app.generation()?;
    let mut after = match last_event_id.or(q.after) {
        Some(id) => id,
        None => crate::query::latest_event_id(&generation.store)
            .await
            .map_err(ApiError::store)?,
    };
    drop(generation);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(CLIENT_QUEUE);
    let check = q.check;
    tokio::spawn(async move {
        // The first thing a client sees: where the stream starts.
        let hello = Event::default()
            .event("hello")
            .data(format!("{{\"after\":{after}}}"));
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        loop {
            let Some(generation) = app.shared.current() else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let rows = match crate::query::events(&generation.store, after, PAGE).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::debug!(error = %e, "event stream: the feed is not readable now");
                    Vec::new()
                }
            };
            drop(generation);
            let full = rows.len() == PAGE as usize;
            for row in rows {
                after = row.id;
                let kind = kind_name(row.kind);
                if kinds.as_ref().is_some_and(|k| !k.iter().any(|x| x == kind))
                    || check
                        .as_ref()
                        .is_some_and(|c| row.check.as_ref() != Some(c))
                {
                    continue;
                }
                let event = match Event::default()
                    .id(row.id.to_string())
                    .event(kind)
                    .json_data(&row)
                {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, id = row.id, "event not encodable; skipped");
                        continue;
                    }
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            if !full {
                tokio::time::sleep(POLL).await;
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
