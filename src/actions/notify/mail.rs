//! Mail through SMTP with lettre: plain, STARTTLS or TLS, optional login.
//!
//! The outbox key becomes the Message-ID, so a copy sent twice after a
//! crash can be recognised. Never retries by itself.

use super::{read_secret, NotifyError};
use crate::alarm::outbox::Delivery;
use crate::config::alarms::{SmtpNotifier, SmtpTls};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends one delivery as a plain-text mail.
pub async fn send(notifier: &str, cfg: &SmtpNotifier, d: &Delivery) -> Result<(), NotifyError> {
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
    let message_id = format!("<{}@laxmon>", message_id_part(&d.message_key));
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

/// The key with every character that may not appear in a Message-ID replaced.
fn message_id_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '=') {
                c
            } else {
                '-'
            }
        })
        .collect()
}
