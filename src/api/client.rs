//! The CLI's side of the operations API: `laxmon alarms`, `ack`, `unack`,
//! `history` and `silence` talk to a running daemon (on this machine or
//! another) with `--api URL --token-file FILE` instead of opening the
//! store.
//!
//! A thin HTTP client: it never decides anything the server decides, and
//! never prints the token.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(90);

/// A client of one daemon's API.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Why a request did not work.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token file could not be read, or the URL is not one.
    #[error("{0}")]
    Setup(String),
    /// The daemon answered with an error.
    #[error("{url}: {status} {error}: {detail}")]
    Refused {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's error word.
        error: String,
        /// What the API said is wrong.
        detail: String,
    },
    /// No answer (connection refused, timeout, TLS).
    #[error("{url}: {message}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    detail: String,
}

impl ApiClient {
    /// A client of the API at `url` (`http://host:8470` or `.../api/v1`),
    /// authenticating with the token in `token_file` (first line), if given.
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<ApiClient, ClientError> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::Setup(format!(
                "--api {url:?}: expected http://HOST:PORT or https://HOST:PORT"
            )));
        }
        let base = if url.ends_with("/api/v1") {
            url.to_string()
        } else {
            format!("{url}/api/v1")
        };
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ClientError::Setup(format!("--token-file {}: {e}", path.display()))
                })?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() {
                    return Err(ClientError::Setup(format!(
                        "--token-file {}: the file is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Setup(format!("HTTP client: {e}")))?;
        Ok(ApiClient { base, token, http })
    }

    /// `GET path` (relative to `/api/v1`).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)), path).await
    }

    /// `POST path` with a JSON body, under a fresh idempotency key.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let rb = self
            .http
            .post(self.url(path))
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(body);
        self.send(rb, path).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.delete(self.url(path)), path).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = rb.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let (error, detail) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.error, b.detail),
                Err(_) => (
                    status.canonical_reason().unwrap_or("error").to_string(),
                    String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                ),
            };
            return Err(ClientError::Refused {
                url,
                status: status.as_u16(),
                error,
                detail,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
            url,
            message: format!("unexpected answer: {e}"),
        })
    }
}
