//! Mail through SMTP with lettre: plain, STARTTLS or TLS, optional login.
//!
//! The Message-ID is `<GLOBAL_ID@HOST>`: the delivery's global id (the
//! installation's id and the notification's key, the same on every retry)
//! at the sending host's name, so a copy sent twice after a crash can be
//! recognised and no other database or installation ever sends the same
//! id. Never retries by itself.

use super::{read_secret, NotifyError};
use crate::alarm::outbox::Delivery;
use crate::config::alarms::{SmtpNotifier, SmtpTls};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends one delivery as a plain-text mail; `host` is this machine's name
/// (for the Message-ID), `None` when unknown.
pub(crate) async fn send(
    notifier: &str,
    cfg: &SmtpNotifier,
    host: Option<&str>,
    d: &Delivery,
) -> Result<(), NotifyError> {
    let err = |error: String| NotifyError::Mail {
        notifier: notifier.to_string(),
        to: d.to.clone(),
        error,
    };
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| err(format!("from address {:?}: {e}", cfg.from)))?;
    let to: Mailbox =
        d.to.parse()
            .map_err(|e| err(format!("recipient {:?}: {e}", d.to)))?;
    let message_id = message_id(&d.message_key, host, from.email.domain());
    let msg = Message::builder()
        .from(from)
        .to(to)
        .subject(d.subject.clone())
        .message_id(Some(message_id))
        .header(ContentType::TEXT_PLAIN)
        .body(d.body.clone())
        .map_err(|e| err(format!("cannot build the message: {e}")))?;
    let tls = |host: &str| {
        TlsParameters::new(host.to_string()).map_err(|e| err(format!("TLS setup: {e}")))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .timeout(Some(cfg.timeout));
    builder = match cfg.tls {
        SmtpTls::None => builder.tls(Tls::None),
        SmtpTls::Starttls => builder.tls(Tls::Required(tls(&cfg.host)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&cfg.host)?)),
    };
    if let (Some(user), Some(file)) = (&cfg.user, &cfg.password_file) {
        let password = read_secret(file)?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    builder
        .build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| err(format!("SMTP {}:{}: {e}", cfg.host, cfg.port)))
}

/// The Message-ID (RFC 5322 `msg-id`) of a delivery with this global id
/// (a dot-atom by construction): `<GLOBAL_ID@HOST>`, where HOST is this
/// machine's name, else the sender address's domain, else `localhost`
/// (whichever is first a valid dot-atom of host name characters).
pub(crate) fn message_id(global_id: &str, host: Option<&str>, from_domain: &str) -> String {
    let domain = host
        .into_iter()
        .chain([from_domain])
        .find(|h| is_host_name(h))
        .unwrap_or("localhost");
    format!("<{global_id}@{domain}>")
}

/// Dot-separated non-empty labels of letters, digits and `-`.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_names_the_sending_host() {
        let id = "0123456789abcdef0123456789abcdef.1.svc.1.admin.mail";
        let cases = [
            (Some("mon1.example.org"), "example.org", "mon1.example.org"),
            (Some("mon1"), "example.org", "mon1"),
            // An unusable host name falls back to the sender's domain ...
            (Some(""), "example.org", "example.org"),
            (Some("bad host"), "example.org", "example.org"),
            (Some("a..b"), "example.org", "example.org"),
            (None, "example.org", "example.org"),
            // ... and that to localhost.
            (None, "[192.0.2.1]", "localhost"),
            (Some("-_-!"), "", "localhost"),
        ];
        for (host, from, want) in cases {
            assert_eq!(
                message_id(id, host, from),
                format!("<{id}@{want}>"),
                "{host:?} {from:?}"
            );
        }
    }
}
