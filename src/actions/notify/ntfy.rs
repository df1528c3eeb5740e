//! Popups on staff screens through ntfy: one HTTP POST to
//! `SERVER/TOPIC` with `Title`, `Priority` and `Tags` headers.
//!
//! Why ntfy: reaching each desktop's D-Bus session from a server
//! (`notify-send` over SSH) is fragile; a self-hosted ntfy server delivers
//! the same popup to browsers, to desktops (`ntfy subscribe TOPIC
//! notify-send ...`) and to phones, and is what Gatus and Uptime Kuma users
//! use. `alarm-scripts/popup` covers the `notify-send` route for a single
//! desktop. Never retries by itself.

use super::{read_secret, NotifyError};
use crate::alarm::outbox::Delivery;
use crate::config::alarms::NtfyNotifier;

/// Publishes one popup.
pub(crate) async fn send(
    http: &reqwest::Client,
    notifier: &str,
    cfg: &NtfyNotifier,
    d: &Delivery,
) -> Result<(), NotifyError> {
    let url = format!("{}/{}", cfg.server, d.to);
    let mut req = http
        .post(&url)
        .timeout(cfg.timeout)
        .header("Title", header_text(&d.subject))
        .header("Priority", cfg.priority.to_string())
        .header("Idempotency-Key", &d.message_key)
        .body(d.body.clone());
    if !cfg.tags.is_empty() {
        req = req.header("Tags", cfg.tags.join(","));
    }
    if let Some(file) = &cfg.token_file {
        req = req.bearer_auth(read_secret(file)?);
    }
    let resp = req.send().await.map_err(|e| NotifyError::Http {
        notifier: notifier.to_string(),
        url: url.clone(),
        error: e.to_string(),
    })?;
    let status = resp.status();
    if !status.is_success() {
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(NotifyError::Rejected {
            notifier: notifier.to_string(),
            url,
            status: status.as_u16(),
            detail: format!(": {text}"),
        });
    }
    Ok(())
}

/// A header value: ASCII as is, anything else as an RFC 2047 encoded word (ntfy decodes it).
pub(crate) fn header_text(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_ascii() {
        return one_line;
    }
    format!("=?UTF-8?B?{}?=", base64(one_line.as_bytes()))
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_encodes_non_ascii() {
        assert_eq!(header_text("web on cs1: CRITICAL"), "web on cs1: CRITICAL");
        assert_eq!(header_text("a\nb"), "a b");
        assert_eq!(header_text("Größe"), "=?UTF-8?B?R3LDtsOfZQ==?=");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
    }
}
