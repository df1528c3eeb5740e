//! Sends outbox deliveries through their notifiers: mail (SMTP), SMS (any
//! HTTP gateway), popups (ntfy) and webhooks; and [`deliver_due`], the
//! loop body that ties the outbox, the store and the senders together.
//!
//! Senders never decide whom to tell or when (the lifecycle and the outbox
//! do) and never retry on their own (the outbox does, with backoff).

pub(crate) mod mail;
pub(crate) mod ntfy;
pub(crate) mod sms;
pub(crate) mod webhook;

use crate::alarm::lifecycle::Notification;
use crate::alarm::outbox::{Delivery, Outbox, OutboxItem};
use crate::alarm::store::NotificationStore;
use crate::config::alarms::{AlarmConfig, NotifierKind};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// Why a delivery failed; the outbox retries it.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The delivery names a notifier the configuration no longer has.
    #[error("notifier {0:?} is not configured")]
    UnknownNotifier(String),
    /// A secret file could not be read.
    #[error("cannot read {path}: {error}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A mail could not be built or sent.
    #[error("mail via {notifier} to {to}: {error}")]
    Mail {
        /// The notifier.
        notifier: String,
        /// The recipient.
        to: String,
        /// What went wrong.
        error: String,
    },
    /// An HTTP request failed before a response.
    #[error("{notifier}: request to {url} failed: {error}")]
    Http {
        /// The notifier.
        notifier: String,
        /// The URL.
        url: String,
        /// What went wrong.
        error: String,
    },
    /// The server answered, but not with success.
    #[error("{notifier}: {url} answered {status}{detail}")]
    Rejected {
        /// The notifier.
        notifier: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What in the answer was wrong.
        detail: String,
    },
}

/// The first line of a secret file.
pub fn read_secret(path: &Path) -> Result<String, NotifyError> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or("").trim_end().to_string())
        .map_err(|error| NotifyError::Secret {
            path: path.to_path_buf(),
            error,
        })
}

/// All configured notifiers, ready to send.
#[derive(Debug, Clone)]
pub struct Notifiers {
    config: AlarmConfig,
    http: reqwest::Client,
    /// This machine's name, for Message-IDs; `None` when it cannot be read.
    host: Option<String>,
}

impl Notifiers {
    /// Prepares the senders (one shared HTTP client; each request sets its own timeout).
    pub fn new(config: &AlarmConfig) -> Result<Notifiers, NotifyError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("laxmon/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Http {
                notifier: "http client".into(),
                url: String::new(),
                error: e.to_string(),
            })?;
        let host = hostname::get().ok().and_then(|h| h.into_string().ok());
        Ok(Notifiers {
            config: config.clone(),
            http,
            host,
        })
    }

    /// Sends one delivery through its notifier.
    pub async fn send(&self, d: &Delivery) -> Result<(), NotifyError> {
        let n = self
            .config
            .notifier(&d.notifier)
            .ok_or_else(|| NotifyError::UnknownNotifier(d.notifier.clone()))?;
        match &n.kind {
            NotifierKind::Smtp(cfg) => mail::send(&n.name, cfg, self.host.as_deref(), d).await,
            NotifierKind::Sms(cfg) => sms::send(&self.http, &n.name, cfg, d).await,
            NotifierKind::Ntfy(cfg) => ntfy::send(&self.http, &n.name, cfg, d).await,
            NotifierKind::Webhook(cfg) => webhook::send(&self.http, &n.name, cfg, d).await,
        }
    }
}

/// Renders a lifecycle notification and queues it in the outbox and the
/// store; `Ok(false)` when its key was queued before (or it has no address).
pub async fn enqueue<S: NotificationStore>(
    outbox: &mut Outbox,
    store: &S,
    config: &AlarmConfig,
    n: &Notification,
    now: DateTime<Utc>,
) -> Result<bool, S::Error> {
    let Some(item) = OutboxItem::render(n, config, now) else {
        tracing::warn!(contact = %n.contact, notifier = %n.notifier, "no address for this contact and notifier; notification dropped");
        return Ok(false);
    };
    let Some(item) = outbox.enqueue(item, now) else {
        return Ok(false);
    };
    let stored = store.enqueue(&item).await?;
    if !stored {
        // The store has seen this key (sent or queued before a restart or
        // after the outbox forgot it): never send it a second time.
        outbox.forget(&item.key);
    }
    Ok(stored)
}

/// What one [`deliver_due`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages sent.
    pub sent: usize,
    /// Messages that failed (and will be retried or were given up).
    pub failed: usize,
}

/// Sends everything due, one after another, and reports each outcome to
/// the outbox and the store. (The daemon sends concurrently with
/// [`record_delivery`] instead, so one slow server holds up nothing.)
pub async fn deliver_due<S: NotificationStore>(
    outbox: &mut Outbox,
    store: &S,
    notifiers: &Notifiers,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, S::Error> {
    let mut report = DeliveryReport::default();
    for d in outbox.due(now) {
        let result = notifiers.send(&d).await.map_err(|e| e.to_string());
        match &result {
            Ok(()) => report.sent += 1,
            Err(_) => report.failed += 1,
        }
        record_delivery(outbox, store, &d, result, now).await?;
    }
    Ok(report)
}

/// Reports one delivery's outcome to the outbox (sent, or retried with
/// backoff / given up) and writes the change to the store.
pub async fn record_delivery<S: NotificationStore>(
    outbox: &mut Outbox,
    store: &S,
    d: &Delivery,
    result: Result<(), String>,
    now: DateTime<Utc>,
) -> Result<(), S::Error> {
    match result {
        Ok(()) => {
            for item in outbox.delivered(&d.keys, now) {
                store.mark_sent(&item.key, now).await?;
            }
        }
        Err(error) => {
            tracing::warn!(notifier = %d.notifier, contact = %d.contact, error = %error, "delivery failed");
            for item in outbox.failed(&d.keys, &error, now) {
                let next = item.is_pending().then_some(item.next_attempt);
                store
                    .mark_failed(&item.key, item.attempts, &error, next)
                    .await?;
            }
        }
    }
    Ok(())
}
