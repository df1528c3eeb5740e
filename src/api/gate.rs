//! The gate every request passes: authentication, then, for requests that
//! change something (`POST`, `DELETE`), idempotency keys and the audit log.
//!
//! - `Idempotency-Key`: the first answer to a key is stored (per caller,
//!   24 h); a retry with the same key and the same request gets that answer
//!   again without doing anything (header `Idempotent-Replayed: true`); the
//!   same key with another request is a 422; a retry while the first is
//!   still running is a 409.
//! - The audit log gets one entry per changing request, refused ones
//!   included (who, from where, what, on what, the status); a bulk
//!   acknowledgement gets one per alarm it changed, so every alarm's
//!   timeline shows it.
//!
//! This file decides nothing about what a request may do beyond the role
//! check's outcome it records; it never alters a handler's answer.

use super::auth::{self, percent_decode, Caller};
use super::error::ApiError;
use super::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The largest request or answer body the gate holds to store or audit.
const MAX_BODY: usize = 1 << 20;

/// Idempotency keys whose first request is still running, by (caller, key).
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashSet<(String, String)>>);

/// Removes a key from [`InFlight`] when its request is done, however it ends.
struct Claim<'a> {
    set: &'a InFlight,
    key: (String, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.0.lock() {
            s.remove(&self.key);
        }
    }
}

/// Authenticates, then runs the request; a changing one with idempotency and audit.
pub(crate) async fn gate(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let changing = matches!(*req.method(), Method::POST | Method::DELETE);
    let action = format!("{} {}", req.method(), req.uri().path());
    let caller = match auth::authenticate(&app.http, req.headers(), peer) {
        Ok(c) => c,
        Err(e) => {
            if changing {
                let who = "unauthenticated".to_string();
                audit(&app, &who, peer, &action, e.status, &Bytes::new()).await;
            }
            return e.into_response();
        }
    };
    if !changing {
        let mut req = req;
        req.extensions_mut().insert::<Caller>(caller);
        return next.run(req).await;
    }
    if caller.by_cookie {
        // A cookie rides along with any request the browser makes, a forged
        // cross-site one included: changes need the dashboard's forms (which
        // check a CSRF token) or a bearer token.
        let e = ApiError::forbidden(
            "a dashboard session cannot change anything through /api/v1: use the dashboard's forms, or send `Authorization: Bearer TOKEN`",
        );
        audit(&app, &caller.name, peer, &action, e.status, &Bytes::new()).await;
        return e.into_response();
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the request body: {e}"))
                .into_response()
        }
    };
    let hash = request_hash(&parts.method, &parts.uri, &body);
    let mut claim = None;
    if let Some(key) = &key {
        if key.is_empty() || key.len() > 255 {
            return ApiError::bad_request("Idempotency-Key must be 1 to 255 characters")
                .into_response();
        }
        let scope_key = (caller.name.clone(), key.clone());
        let fresh = app
            .in_flight
            .0
            .lock()
            .map(|mut s| s.insert(scope_key.clone()))
            .unwrap_or(false);
        if !fresh {
            return ApiError::conflict(
                "a request with this Idempotency-Key is still running; retry when it has answered",
            )
            .into_response();
        }
        claim = Some(Claim {
            set: &app.in_flight,
            key: scope_key,
        });
        if let Some(generation) = app.shared.current() {
            match generation.store.idempotency_get(&caller.name, key).await {
                Ok(Some(stored)) if stored.request_hash == hash => {
                    return replay(stored.status, stored.body);
                }
                Ok(Some(_)) => {
                    return ApiError::unprocessable(
                        "this Idempotency-Key was used for another request; use a new key per request",
                    )
                    .into_response();
                }
                Ok(None) => {}
                Err(e) => {
                    return ApiError::unavailable(format!(
                        "cannot check the Idempotency-Key (the store: {e}); retry later"
                    ))
                    .into_response()
                }
            }
        }
    }
    let mut req = Request::from_parts(parts, Body::from(body));
    req.extensions_mut().insert::<Caller>(caller.clone());
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    if let (Some(key), Some(generation)) = (&key, app.shared.current()) {
        // Transient failures (5xx) are not remembered: a retry should try again.
        if !parts.status.is_server_error() {
            let text = String::from_utf8_lossy(&body);
            if let Err(e) = generation
                .store
                .idempotency_put(&caller.name, key, &hash, parts.status.as_u16(), &text)
                .await
            {
                tracing::warn!(error = %e, "answer to an Idempotency-Key not stored; a retry would run again");
            }
        }
    }
    drop(claim);
    audit(&app, &caller.name, peer, &action, parts.status, &body).await;
    Response::from_parts(parts, Body::from(body))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// SHA-256 over method, path with query, and body, as hex.
fn request_hash(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(uri.path_and_query().map_or("", |p| p.as_str()).as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a request acted on, read from its path: (target, alarm, check).
fn subject(path: &str) -> (String, Option<u64>, Option<String>) {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let decoded = |s: &str| percent_decode(s);
    match parts.as_slice() {
        ["alarms", id, ..] if id.parse::<u64>().is_ok() => {
            (format!("alarm {id}"), id.parse().ok(), None)
        }
        ["checks", name, ..] => (
            format!("check {}", decoded(name)),
            None,
            Some(decoded(name)),
        ),
        ["silences", id] => (format!("silence {id}"), None, None),
        ["clusters", c, "vms", vm, ..] => (
            format!("VM {} in cluster {}", decoded(vm), decoded(c)),
            None,
            None,
        ),
        _ => (path.to_string(), None, None),
    }
}

/// Writes the audit entries of one changing request: one, or one per alarm
/// a bulk request changed.
async fn audit(
    app: &AppState,
    who: &str,
    peer: SocketAddr,
    action: &str,
    status: StatusCode,
    body: &Bytes,
) {
    let Some(generation) = app.shared.current() else {
        tracing::warn!(
            who,
            action,
            "audit entry not written: the daemon is between two configurations"
        );
        return;
    };
    let path = action.split_once(' ').map_or(action, |(_, p)| p);
    let (target, alarm_id, check) = subject(path);
    let result = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let detail = match &answer {
        serde_json::Value::Object(o) if o.contains_key("error") => serde_json::json!({
            "error": o.get("error"), "detail": o.get("detail"),
        }),
        _ => serde_json::Value::Null,
    };
    let mut subjects = vec![(target, alarm_id, check)];
    if path.ends_with("/alarms/ack") || path.ends_with("/alarms/unack") {
        subjects = answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| !r["alarm"].is_null())
            .filter_map(|r| r["id"].as_u64())
            .map(|id| (format!("alarm {id}"), Some(id), None))
            .collect();
        if subjects.is_empty() {
            subjects.push((path.to_string(), None, None));
        }
    }
    for (target, alarm_id, check) in subjects {
        let entry = crate::store::AuditEntry {
            at: chrono::Utc::now(),
            who: who.to_string(),
            source: peer.ip().to_string(),
            action: action.to_string(),
            target,
            alarm_id,
            check,
            result: result.clone(),
            detail: detail.clone(),
        };
        if let Err(e) = generation.store.record_audit(&entry).await {
            tracing::warn!(error = %e, who, action, "audit entry not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_come_from_the_path() {
        assert_eq!(
            subject("/api/v1/alarms/12/ack"),
            ("alarm 12".into(), Some(12), None)
        );
        assert_eq!(
            subject("/api/v1/checks/web%20disk/run"),
            ("check web disk".into(), None, Some("web disk".into()))
        );
        assert_eq!(subject("/api/v1/silences/3").0, "silence 3");
        assert_eq!(
            subject("/api/v1/clusters/demo/vms/web/stop").0,
            "VM web in cluster demo"
        );
        assert_eq!(subject("/api/v1/reload").0, "/api/v1/reload");
    }

    #[test]
    fn request_hashes_differ_by_body_and_path() {
        let u1: axum::http::Uri = "/api/v1/alarms/1/ack".parse().expect("uri");
        let u2: axum::http::Uri = "/api/v1/alarms/2/ack".parse().expect("uri");
        let a = request_hash(&Method::POST, &u1, b"{}");
        assert_eq!(a, request_hash(&Method::POST, &u1, b"{}"));
        assert_ne!(a, request_hash(&Method::POST, &u2, b"{}"));
        assert_ne!(a, request_hash(&Method::POST, &u1, b"{\"x\":1}"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
