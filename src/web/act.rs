//! The dashboard's forms: acknowledge, un-acknowledge, bulk acknowledge,
//! run now, silence, end a silence, start/stop/migrate a VM.
//!
//! Each handler checks that the post comes from the dashboard (same origin,
//! the session's CSRF token), then sends the matching request to the
//! operations API with the session's token and the form's idempotency key,
//! and reports the API's answer: as JSON to the page's script, or as a
//! message on the page the form came from.
//!
//! This file never changes anything itself: the API does, under its own
//! rules, and records it in the audit log under the token's name.

use super::session::{local_path, same_origin, set_cookie, FLASH_COOKIE};
use super::WebState;
use crate::api::auth::{self, SESSION_COOKIE};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Path, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tower::ServiceExt;

/// The largest API answer read back.
const MAX_ANSWER: usize = 4 << 20;

/// A posted form's fields, in order (a name may repeat).
type Fields = Vec<(String, String)>;

/// The first non-blank value of field `name`.
fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty())
}

/// Every non-blank value of field `name`.
fn all<'a>(fields: &'a Fields, name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .collect()
}

/// A list field: names separated by commas or white space.
fn list(fields: &Fields, name: &str) -> Vec<String> {
    field(fields, name)
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// One form post on its way to the API.
pub(super) struct Post {
    state: WebState,
    peer: SocketAddr,
    token: String,
    json: bool,
    back: String,
    idem: Option<String>,
    /// The form's fields.
    fields: Fields,
}

impl FromRequest<WebState> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, state: &WebState) -> Result<Post, Response> {
        let peer = super::session::peer_of(req.extensions());
        let headers = req.headers().clone();
        let Form(fields) = Form::<Fields>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Post::begin(state.clone(), peer, &headers, fields).map_err(|r| *r)
    }
}

impl Post {
    /// Checks where the post comes from and whose session it is.
    fn begin(
        state: WebState,
        peer: SocketAddr,
        headers: &HeaderMap,
        fields: Fields,
    ) -> Result<Post, Box<Response>> {
        let json = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let back = local_path(field(&fields, "back"));
        let refuse = |status: StatusCode, why: &str| {
            Box::new(answer(
                json,
                &back,
                status,
                why.to_string(),
                Value::Null,
                &state,
            ))
        };
        if !same_origin(headers) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: the form was not sent from this dashboard",
            ));
        }
        let Some(token) = auth::cookie(headers, SESSION_COOKIE) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "log in first: reading needs no token here, acting does",
            ));
        };
        if !field(&fields, "csrf").is_some_and(|c| auth::csrf_matches(&token, c)) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token does not match your session; reload the page and try again",
            ));
        }
        Ok(Post {
            state,
            peer,
            token,
            json,
            back,
            idem: field(&fields, "idem").map(str::to_string),
            fields,
        })
    }

    /// Sends one request to the API; its status and JSON answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Value,
        key: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key.or_else(|| self.idem.clone()) {
            req = req.header("idempotency-key", key);
        }
        let req = match req.body(Body::from(body.to_string())) {
            Ok(mut r) => {
                r.extensions_mut().insert(ConnectInfo(self.peer));
                r
            }
            Err(e) => return (StatusCode::BAD_REQUEST, json!({"detail": e.to_string()})),
        };
        let response = match self.state.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let value = match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => json!({"detail": format!("the API's answer could not be read: {e}")}),
        };
        (status, value)
    }

    /// The answer to the browser, with `ok` as the message on success.
    fn finish(
        &self,
        status: StatusCode,
        value: Value,
        ok: impl FnOnce(&Value) -> String,
    ) -> Response {
        let message = if status.is_success() {
            ok(&value)
        } else {
            refusal(status, &value)
        };
        answer(self.json, &self.back, status, message, value, &self.state)
    }
}

/// The API's reason for a refusal, for a person.
fn refusal(status: StatusCode, value: &Value) -> String {
    let detail = value
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| value.get("message").and_then(Value::as_str))
        .unwrap_or("no reason given");
    format!("Not done ({}): {detail}", status.as_u16())
}

/// JSON for the page's script, else back to the page with a message.
fn answer(
    json: bool,
    back: &str,
    status: StatusCode,
    message: String,
    value: Value,
    state: &WebState,
) -> Response {
    if json {
        return (
            status,
            Json(json!({"ok": status.is_success(), "message": message, "answer": value})),
        )
            .into_response();
    }
    let mut r = Redirect::to(back).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FLASH_COOKIE, &message, 60, state.app.http.tls.is_some()),
    );
    r
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The acknowledgement fields of a form as the API takes them.
fn ack_body(fields: &Fields) -> Value {
    let mut body = json!({"comment": field(fields, "comment").unwrap_or("")});
    if let Some(expires) = field(fields, "expires") {
        body["expires"] = json!(expires);
    }
    if field(fields, "sticky") == Some("no") {
        body["sticky"] = json!(false);
    }
    body
}

/// `POST /ui/alarms/{id}/ack`.
pub(super) async fn ack(Path(id): Path<u64>, post: Post) -> Response {
    let fields = &post.fields;
    let (status, value) = post
        .send(
            Method::POST,
            &format!("/api/v1/alarms/{id}/ack"),
            ack_body(fields),
            None,
        )
        .await;
    post.finish(status, value, |v| {
        format!("Acknowledged alarm #{id} ({}).", str_of(v, "check"))
    })
}

/// `POST /ui/alarms/{id}/unack`.
pub(super) async fn unack(Path(id): Path<u64>, post: Post) -> Response {
    let (status, value) = post
        .send(
            Method::POST,
            &format!("/api/v1/alarms/{id}/unack"),
            json!({}),
            None,
        )
        .await;
    post.finish(status, value, |v| {
        format!(
            "Acknowledgement of alarm #{id} ({}) removed.",
            str_of(v, "check")
        )
    })
}

/// `POST /ui/ack`: acknowledges every alarm ticked (`alarm` repeated), one
/// API request each, so each lands in its alarm's timeline.
pub(super) async fn bulk_ack(post: Post) -> Response {
    let fields = &post.fields;
    let ids: Vec<u64> = all(fields, "alarm")
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    if ids.is_empty() {
        return post.finish(
            StatusCode::BAD_REQUEST,
            json!({"detail": "tick at least one problem to acknowledge"}),
            |_| String::new(),
        );
    }
    let body = ack_body(fields);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut answers = Vec::new();
    for id in ids {
        let key = post.idem.as_ref().map(|k| format!("{k}-{id}"));
        let (status, value) = post
            .send(
                Method::POST,
                &format!("/api/v1/alarms/{id}/ack"),
                body.clone(),
                key,
            )
            .await;
        if status.is_success() {
            done.push(id);
        } else {
            failed.push(format!("#{id}: {}", refusal(status, &value)));
        }
        answers.push(json!({"id": id, "status": status.as_u16(), "answer": value}));
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if done.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut message = format!(
        "Acknowledged {} alarm{}.",
        done.len(),
        if done.len() == 1 { "" } else { "s" }
    );
    if !failed.is_empty() {
        message.push_str(&format!(" Not acknowledged: {}", failed.join("; ")));
    }
    answer(
        post.json,
        &post.back,
        status,
        message,
        Value::Array(answers),
        &post.state,
    )
}

/// `POST /ui/checks/{name}/run`: runs the check now and waits a few
/// seconds for its result.
pub(super) async fn run_now(Path(name): Path<String>, post: Post) -> Response {
    let path = format!("/api/v1/checks/{}/run", super::text::percent_encode(&name));
    let (status, value) = post
        .send(Method::POST, &path, json!({"wait_s": 10}), None)
        .await;
    post.finish(status, value, |v| match v.get("result") {
        Some(r) if !r.is_null() => format!(
            "Ran {name}: {} {}",
            str_of(r, "state").to_ascii_uppercase(),
            str_of(r, "output")
        ),
        _ => format!("Started {name}; its result shows here when it arrives."),
    })
}

/// `POST /ui/silences`: sets a silence (`intent=preview` only lists what it
/// would cover).
pub(super) async fn add_silence(post: Post) -> Response {
    let fields = &post.fields;
    let dry_run = field(fields, "intent") == Some("preview");
    let mut body = json!({
        "matchers": {
            "hosts": list(fields, "hosts"),
            "checks": list(fields, "checks"),
            "tags": list(fields, "tags"),
        },
        "comment": field(fields, "comment").unwrap_or(""),
        "ends": field(fields, "ends").unwrap_or(""),
        "dry_run": dry_run,
    });
    if let Some(starts) = field(fields, "starts") {
        body["starts"] = json!(starts);
    }
    let (status, value) = post
        .send(Method::POST, "/api/v1/silences", body, None)
        .await;
    post.finish(status, value, |v| {
        let checks = v
            .get("checks")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match v.get("silence").filter(|s| !s.is_null()) {
            Some(s) => format!(
                "Silence #{} set until {}: it covers {checks} check{} now.",
                s.get("id").and_then(Value::as_u64).unwrap_or(0),
                str_of(s, "ends"),
                if checks == 1 { "" } else { "s" }
            ),
            None => format!(
                "Preview: it would cover {checks} check{} now.",
                if checks == 1 { "" } else { "s" }
            ),
        }
    })
}

/// `POST /ui/silences/{id}/end`.
pub(super) async fn end_silence(Path(id): Path<u64>, post: Post) -> Response {
    let (status, value) = post
        .send(
            Method::DELETE,
            &format!("/api/v1/silences/{id}"),
            Value::Null,
            None,
        )
        .await;
    post.finish(status, value, |_| format!("Silence #{id} ended."))
}

/// `POST /ui/clusters/{name}/vms/{vm}/{op}`: start, stop or migrate a VM;
/// refused unless the form's confirmation box is ticked.
pub(super) async fn vm_operation(
    Path((cluster, vm, op)): Path<(String, String, String)>,
    post: Post,
) -> Response {
    let fields = &post.fields;
    let dry_run = field(fields, "intent") == Some("preview");
    if !dry_run && field(fields, "confirm") != Some("yes") {
        return post.finish(
            StatusCode::BAD_REQUEST,
            json!({"detail": format!("tick the box to confirm: {op} {vm}")}),
            |_| String::new(),
        );
    }
    let mut body = json!({"dry_run": dry_run});
    match op.as_str() {
        "start" => {
            if let Some(server) = field(fields, "server") {
                body["server"] = json!(server);
            }
        }
        "migrate" => {
            body["to"] = json!(field(fields, "to").unwrap_or(""));
            if field(fields, "cold") == Some("yes") {
                body["cold"] = json!(true);
            }
        }
        _ => {}
    }
    let path = format!(
        "/api/v1/clusters/{}/vms/{}/{}",
        super::text::percent_encode(&cluster),
        super::text::percent_encode(&vm),
        super::text::percent_encode(&op)
    );
    let (status, value) = post.send(Method::POST, &path, body, None).await;
    post.finish(status, value, |v| {
        format!(
            "{op} {vm}: {} — {}",
            str_of(v, "outcome"),
            str_of(v, "message")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_first_non_blank_and_lists_split() {
        let f: Fields = vec![
            ("comment".into(), "  ".into()),
            ("comment".into(), "disk full".into()),
            ("alarm".into(), "3".into()),
            ("alarm".into(), "".into()),
            ("alarm".into(), "7".into()),
            ("hosts".into(), "web1, web2 db*".into()),
        ];
        assert_eq!(field(&f, "comment"), Some("disk full"));
        assert_eq!(all(&f, "alarm"), ["3", "7"]);
        assert_eq!(list(&f, "hosts"), ["web1", "web2", "db*"]);
        assert!(list(&f, "tags").is_empty());
        assert_eq!(field(&f, "nothing"), None);
    }

    #[test]
    fn ack_forms_become_api_bodies() {
        let f: Fields = vec![
            ("comment".into(), "on it".into()),
            ("expires".into(), "2h".into()),
            ("sticky".into(), "no".into()),
        ];
        assert_eq!(
            ack_body(&f),
            json!({"comment": "on it", "expires": "2h", "sticky": false})
        );
        assert_eq!(ack_body(&Vec::new()), json!({"comment": ""}));
    }

    #[test]
    fn refusals_quote_the_api() {
        let m = refusal(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_request", "detail": "comment is required"}),
        );
        assert_eq!(m, "Not done (400): comment is required");
    }
}
