//! Who is looking at a page: the session cookie (a token given at the login
//! form, kept in an HttpOnly, SameSite=Strict cookie), else anonymous on
//! loopback when the configuration allows it; the CSRF token the session's
//! forms carry; the one-shot message ("flash") an action leaves for the
//! next page.
//!
//! The token is never written into a page: pages get only the CSRF token
//! derived from it.

use super::layout;
use super::WebState;
use crate::api::auth::{self, Caller, SESSION_COOKIE};
use crate::config::http::Role;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

/// The cookie an action's outcome message rides in to the next page.
pub(super) const FLASH_COOKIE: &str = "laxmon_flash";

/// How long a login lasts.
const SESSION_MAX_AGE_S: u64 = 30 * 24 * 3600;

/// The person looking at a page.
pub(crate) struct Viewer {
    /// Who they are to the API.
    pub(crate) caller: Caller,
    /// The CSRF token their forms carry; `None` when not logged in (then
    /// they can only read).
    pub(crate) csrf: Option<String>,
    /// The message an action left for this page.
    pub(crate) flash: Option<String>,
    /// The page's path and query (where a form on it returns to).
    pub(crate) here: String,
    /// Whether the request came from the live refresh (no flash is consumed).
    pub(crate) live: bool,
}

impl Viewer {
    /// Whether the viewer may do what `role` allows, and is logged in to do it.
    pub(crate) fn may(&self, role: Role) -> bool {
        self.csrf.is_some() && self.caller.role >= role
    }
}

/// The peer address the accept loop recorded.
pub(super) fn peer_of(extensions: &axum::http::Extensions) -> SocketAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Viewer, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let caller =
            match auth::authenticate(&state.app.http, &parts.headers, peer_of(&parts.extensions)) {
                Ok(c) => c,
                Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                    let next =
                        serde_urlencoded::to_string([("next", here.as_str())]).unwrap_or_default();
                    return Err(Redirect::to(&format!("/login?{next}")).into_response());
                }
                Err(e) => return Err(e.into_response()),
            };
        let csrf = caller
            .by_cookie
            .then(|| auth::cookie(&parts.headers, SESSION_COOKIE))
            .flatten()
            .map(|t| auth::csrf_token(&t));
        let live = parts.headers.contains_key("x-laxmon-live");
        Ok(Viewer {
            caller,
            csrf,
            flash: auth::cookie(&parts.headers, FLASH_COOKIE),
            here,
            live,
        })
    }
}

/// Whether a form post comes from one of the dashboard's own pages: a
/// browser's `Origin` (or, lacking it, `Referer`) names this host.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match from {
        // A client that is not a browser sends neither: the CSRF token decides.
        None => true,
        Some(url) => url
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next() == Some(host))
            .unwrap_or(false),
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure over TLS.
pub(super) fn set_cookie(name: &str, value: &str, max_age_s: u64, tls: bool) -> HeaderValue {
    let value = super::text::percent_encode(value);
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("laxmon_invalid=; Max-Age=0"))
}

/// Where a form may send the browser back to: a path on this site only.
pub(super) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the token form.
pub(super) async fn login_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    let flash = auth::cookie(&headers, FLASH_COOKIE);
    let stale = auth::cookie(&headers, SESSION_COOKIE).is_some();
    let body = html! {
        section.login {
            h1 { "Log in to laxmon" }
            @if stale {
                p.note { "Your session's token is no longer configured. Log in with a current one." }
            }
            @if let Some(f) = &flash { p.flash role="alert" { (f) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
            p.hint {
                "Tokens are handed out by your laxmon admin (" code { "laxmon token hash --generate" } "). "
                @if state.app.http.anonymous_read {
                    "Browsers on the admin server itself may read without one."
                }
            }
        }
    };
    let mut response = layout::bare("Log in", body).into_response();
    if stale {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, state.app.http.tls.is_some()),
        );
    }
    clear_flash(&mut response, flash.is_some(), state.app.http.tls.is_some());
    response
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: checks the token and keeps it in the session cookie.
pub(super) async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let tls = state.app.http.tls.is_some();
    let next = local_path(form.next.as_deref());
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "log in from the dashboard's own login page",
        )
            .into_response();
    }
    match auth::by_token(&state.app.http, &form.token, peer) {
        Ok(caller) => {
            tracing::info!(who = %caller.name, from = %peer, "dashboard login");
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, form.token.trim(), SESSION_MAX_AGE_S, tls),
            );
            r
        }
        Err(_) => {
            tracing::info!(from = %peer, "dashboard login refused: unknown token");
            let login = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
            let mut r = Redirect::to(&format!("/login?{login}")).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(FLASH_COOKIE, "Unknown token: nothing was changed.", 60, tls),
            );
            r
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: forgets the session cookie.
pub(super) async fn logout(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let token = auth::cookie(&headers, SESSION_COOKIE);
    if !token.is_some_and(|t| auth::csrf_matches(&t, &form.csrf)) {
        return (
            StatusCode::FORBIDDEN,
            "log out from the dashboard's own pages",
        )
            .into_response();
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, state.app.http.tls.is_some()),
    );
    r
}

/// Expires the flash cookie once its message has been shown.
pub(super) fn clear_flash(response: &mut Response, shown: bool, tls: bool) {
    if shown {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", 0, tls));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/check/x?y=1")), "/check/x?y=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn origin_must_name_this_host() {
        let own = headers(&[
            ("host", "127.0.0.1:8470"),
            ("origin", "http://127.0.0.1:8470"),
        ]);
        assert!(same_origin(&own));
        let other = headers(&[
            ("host", "127.0.0.1:8470"),
            ("origin", "http://127.0.0.1:9999"),
        ]);
        assert!(!same_origin(&other));
        let referer = headers(&[
            ("host", "127.0.0.1:8470"),
            ("referer", "http://127.0.0.1:8470/hosts"),
        ]);
        assert!(same_origin(&referer));
        assert!(same_origin(&headers(&[("host", "h")])));
        assert!(!same_origin(&headers(&[])));
    }

    #[test]
    fn cookies_are_http_only_and_strict_and_escaped() {
        let c = set_cookie("laxmon_flash", "Acknowledged; done", 60, true);
        let c = c.to_str().expect("ascii");
        assert!(
            c.starts_with("laxmon_flash=Acknowledged%3B%20done; "),
            "{c}"
        );
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        let h = headers(&[("cookie", "a=1; laxmon_flash=Acknowledged%3B%20done")]);
        assert_eq!(
            auth::cookie(&h, "laxmon_flash").as_deref(),
            Some("Acknowledged; done")
        );
    }
}
