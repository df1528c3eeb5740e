//! What the dashboard tests share: where a test's browser keeps its
//! screenshots, page interactions that survive live refreshes, logging in
//! through the form, and reading the API the page is checked against.

use super::browser::Browser;
use fantoccini::Locator;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a page or the API may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// Where a test's browser keeps its profile, logs and screenshots: under
/// cargo's target tmp dir (emptied first), so the screenshots outlive the
/// test to be looked at.
pub fn browser_dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("browser dir");
    d
}

/// Clicks the element `css` names. A live refresh may replace the element
/// between finding and clicking it, so a stale element is found again.
pub async fn click(b: &Browser, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match b.client().find(Locator::Css(css)).await {
            Ok(e) => e.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `keys` into the element `css` names (found again if a live
/// refresh replaced it; typing into a stale element types nothing).
pub async fn type_into(b: &Browser, css: &str, keys: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let typed = match b.client().find(Locator::Css(css)).await {
            Ok(e) => e.send_keys(keys).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match typed {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "type into {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The visible text of the element `css` names.
pub async fn text_of(b: &Browser, css: &str) -> String {
    b.client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The current value of the form field `css` names.
pub async fn value_of(b: &Browser, css: &str) -> String {
    b.client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

/// Logs in through the login form at `base` with `token`, landing on
/// `next`, and waits until the header names `who` (e.g. `boss (admin)`).
pub async fn login(b: &Browser, base: &str, token: &str, next: &str, who: &str) {
    let next = laxmon::web::text::percent_encode(next);
    b.open(&format!("{base}/login?next={next}"))
        .await
        .expect("login page");
    b.wait_for("#token", WAIT).await.expect("token field");
    type_into(b, "#token", token).await;
    click(b, "section.login button[type=submit]").await;
    b.wait_until_text("header .who", who, WAIT)
        .await
        .unwrap_or_else(|e| panic!("logged in as {who}: {e:#}"));
}

/// Whether every section and table of the page fits the window's width.
pub async fn fits(b: &Browser) -> bool {
    let v: Value = b
        .client()
        .execute(
            "return [...document.querySelectorAll('main table, main section, main article')].every(e => e.getBoundingClientRect().right <= window.innerWidth + 1)",
            vec![],
        )
        .await
        .expect("script");
    v == Value::Bool(true)
}

/// Reads the API at `base` with a token, as the tests check the pages against it.
pub struct ApiReader {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A token with the read role.
    pub token: String,
}

impl ApiReader {
    /// `GET /api/v1{path}`, which must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("API request");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("API JSON")
    }

    /// Polls `GET /api/v1{path}` until `pred` holds (at most [`WAIT`]).
    pub async fn until(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.get(path).await;
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{path}: never held; last {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
