//! SMS through any HTTP gateway: method, URL, headers and body are
//! templates; success is the configured statuses (and, for gateways that
//! answer 200 when the modem failed, a text the body must contain).
//!
//! One request per recipient. Never retries by itself.

use super::NotifyError;
use crate::alarm::outbox::Delivery;
use crate::config::alarms::SmsNotifier;

/// Longest part of a response body quoted in an error.
const QUOTE: usize = 200;

/// Sends one SMS.
pub(crate) async fn send(
    http: &reqwest::Client,
    notifier: &str,
    cfg: &SmsNotifier,
    d: &Delivery,
) -> Result<(), NotifyError> {
    let facts = d
        .facts
        .with("to", d.to.clone())
        .with("message", d.body.clone());
    let url = cfg.url.render(&facts);
    let method =
        reqwest::Method::from_bytes(cfg.method.as_bytes()).map_err(|e| NotifyError::Http {
            notifier: notifier.to_string(),
            url: url.clone(),
            error: format!("method {:?}: {e}", cfg.method),
        })?;
    let mut req = http
        .request(method, &url)
        .timeout(cfg.timeout)
        .header("Idempotency-Key", &d.message_key);
    for (name, value) in &cfg.headers {
        req = req.header(name.as_str(), value.render(&facts));
    }
    if let Some(body) = &cfg.body {
        req = req.body(body.render(&facts));
    }
    let http_err = |e: reqwest::Error| NotifyError::Http {
        notifier: notifier.to_string(),
        url: url.clone(),
        error: e.to_string(),
    };
    let resp = req.send().await.map_err(http_err)?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let quoted: String = text.chars().take(QUOTE).collect();
    if !cfg.success_status.contains(&status) {
        return Err(NotifyError::Rejected {
            notifier: notifier.to_string(),
            url,
            status,
            detail: format!(" (success is {:?}): {quoted}", cfg.success_status),
        });
    }
    if let Some(must) = &cfg.body_must_contain {
        if !text.contains(must.as_str()) {
            return Err(NotifyError::Rejected {
                notifier: notifier.to_string(),
                url,
                status,
                detail: format!(", but the body lacks {must:?}: {quoted}"),
            });
        }
    }
    Ok(())
}
