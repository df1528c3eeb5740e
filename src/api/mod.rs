//! The operations API: HTTP/JSON under `/api/v1`, a live event stream,
//! `/metrics` for Prometheus; served inside the daemon on the addresses of
//! the `http:` section, over TLS when it names certificate files.
//!
//! The server outlives configuration reloads: it reaches the daemon through
//! [`Shared`] (the generation running now) and answers 503 in the moment
//! between two. Handlers read through [`crate::query`] and the live view,
//! and change things only through the daemon's control handles, so the API
//! never bypasses the rules the daemon itself follows.

pub mod auth;
pub mod client;
pub mod error;
mod gate;
mod routes;
pub mod tls;

use crate::config::http::HttpConfig;
use crate::config::Config;
use crate::daemon::{Generation, Shared};
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use error::ApiError;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Connections one listener serves at once (each holds a file descriptor).
const MAX_CONNECTIONS: usize = 512;

/// How long a client may take for its TLS handshake and its request headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often an address that could not be bound is tried again.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// What every handler gets: the process's handles and the API settings.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) http: Arc<HttpConfig>,
    /// Idempotency keys whose first request is still running.
    pub(crate) in_flight: Arc<gate::InFlight>,
}

impl AppState {
    /// The generation running now, or 503 during a reload.
    pub(crate) fn generation(&self) -> Result<Arc<Generation>, ApiError> {
        self.shared.current().ok_or_else(|| {
            ApiError::unavailable(
                "the daemon is (re)starting its configuration; try again in a moment",
            )
        })
    }
}

/// The running API server: its listeners and their tasks.
pub struct Server {
    http: Option<HttpConfig>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds every address of `config.http` and starts serving; without an
    /// `http:` section, serves nothing.
    pub async fn start(config: &Config, shared: &Arc<Shared>) -> anyhow::Result<Server> {
        let mut server = Server {
            http: None,
            tasks: Vec::new(),
        };
        if let Some(http) = &config.http {
            server.bind(http, shared).await?;
        }
        Ok(server)
    }

    /// Applies a reloaded configuration's `http:` section: restarts the
    /// listeners if it changed. On an error the old listeners are kept.
    pub async fn reconfigure(
        &mut self,
        config: &Config,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<()> {
        if config.http == self.http {
            return Ok(());
        }
        let old = std::mem::take(&mut self.tasks);
        let old_http = self.http.take();
        // Wait until the old listeners are closed, so the same address can
        // be bound again at once.
        for t in old {
            t.abort();
            let _ = t.await;
        }
        let result = match &config.http {
            Some(http) => self.bind(http, shared).await,
            None => Ok(()),
        };
        if let Err(e) = result {
            if let Some(http) = &old_http {
                self.bind(http, shared).await?;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn bind(&mut self, http: &HttpConfig, shared: &Arc<Shared>) -> anyhow::Result<()> {
        let tls = match &http.tls {
            Some(files) => Some(tls::Tls::load(files).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let state = AppState {
            shared: Arc::clone(shared),
            http: Arc::new(http.clone()),
            in_flight: Arc::default(),
        };
        let app = crate::web::router(state.clone(), routes::router(state));
        let mut tasks = Vec::new();
        for &addr in &http.listen {
            tasks.push(tokio::spawn(listen(addr, app.clone(), tls.clone())));
        }
        if let Some(tls) = &tls {
            tasks.push(tls.watch());
        }
        self.tasks = tasks;
        self.http = Some(http.clone());
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Listens on `addr` and serves it. An address that cannot be bound (in
/// use, not configured on this machine) is logged and tried again every
/// [`BIND_RETRY`]: the checks and alarms must not stop because the API
/// cannot listen.
async fn listen(addr: SocketAddr, app: Router, tls: Option<Arc<tls::Tls>>) {
    let mut reported = None;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(address = %addr, tls = tls.is_some(), "operations API listening");
                tracing::info!("dashboard: open {}", dashboard_url(addr, tls.is_some()));
                accept(listener, app, tls).await;
                return;
            }
            Err(e) => {
                let text = e.to_string();
                if reported.as_ref() != Some(&text) {
                    tracing::error!(address = %addr, error = %text, retry_s = BIND_RETRY.as_secs(), "operations API cannot listen; trying again");
                    reported = Some(text);
                }
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    }
}

/// The dashboard's address for a browser on this machine: an unspecified
/// listen address (`0.0.0.0`, `::`) is reached through loopback.
fn dashboard_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}/", addr.port())
}

/// Accepts connections forever, each served on a task of its own.
async fn accept(listener: TcpListener, app: Router, tls: Option<Arc<tls::Tls>>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the limit, new connections wait in the kernel's backlog.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "operations API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let service = TowerToHyperService::new(service);
            let mut builder = hyper::server::conn::http1::Builder::new();
            // A client that opens a connection and never finishes its
            // request headers does not hold a connection slot for ever.
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = match tls.and_then(|t| t.config()) {
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_urls_are_reachable_from_this_machine() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(
            dashboard_url(at("127.0.0.1:8470"), false),
            "http://127.0.0.1:8470/"
        );
        assert_eq!(
            dashboard_url(at("0.0.0.0:8470"), true),
            "https://127.0.0.1:8470/"
        );
        assert_eq!(dashboard_url(at("[::]:8470"), false), "http://[::1]:8470/");
        assert_eq!(dashboard_url(at("[::1]:9"), false), "http://[::1]:9/");
    }
}
