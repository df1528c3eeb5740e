//! A generic webhook: one JSON POST with the notification and the alarm's
//! facts. Never retries by itself.

use super::NotifyError;
use crate::alarm::outbox::Delivery;
use crate::config::alarms::WebhookNotifier;

/// The JSON document a webhook receives.
pub(crate) fn payload(d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "key": d.message_key,
        "keys": d.keys,
        "notifier": d.notifier,
        "contact": d.contact,
        "subject": d.subject,
        "body": d.body,
        "count": d.keys.len(),
        "facts": d.facts.0,
    })
}

/// Posts one delivery.
pub(crate) async fn send(
    http: &reqwest::Client,
    notifier: &str,
    cfg: &WebhookNotifier,
    d: &Delivery,
) -> Result<(), NotifyError> {
    let mut req = http
        .post(&cfg.url)
        .timeout(cfg.timeout)
        .header("Idempotency-Key", &d.message_key)
        .json(&payload(d));
    for (k, v) in &cfg.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| NotifyError::Http {
        notifier: notifier.to_string(),
        url: cfg.url.clone(),
        error: e.to_string(),
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(NotifyError::Rejected {
            notifier: notifier.to_string(),
            url: cfg.url.clone(),
            status: status.as_u16(),
            detail: String::new(),
        });
    }
    Ok(())
}
