//! HTTPS for the API: the certificate chain and key are read from PEM files
//! and read again when either file changes, so a renewed certificate is
//! served without a restart. A file that fails to load is logged and the
//! certificate in use is kept.
//!
//! This file only loads TLS material; it never accepts connections.

use crate::config::http::TlsFiles;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the files are looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The TLS configuration in use, replaced when the files change.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Stamp)>,
}

/// The files' modification times and sizes when last loaded.
type Stamp = [(Option<SystemTime>, u64); 2];

impl Tls {
    /// Loads the files; an error names the file and what is wrong.
    pub fn load(files: &TlsFiles) -> Result<Arc<Tls>, String> {
        let stamp = stamp(files);
        let config = server_config(files)?;
        Ok(Arc::new(Tls {
            files: files.clone(),
            current: RwLock::new((config, stamp)),
        }))
    }

    /// The configuration to accept the next connection with.
    pub fn config(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().ok().map(|c| Arc::clone(&c.0))
    }

    /// Reloads the files if they changed since the last load; true if the
    /// certificate in use was replaced.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        let changed = self.current.read().map(|c| c.1 != now).unwrap_or(false);
        if !changed {
            return false;
        }
        match server_config(&self.files) {
            Ok(config) => {
                if let Ok(mut c) = self.current.write() {
                    *c = (config, now);
                }
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Remember the stamp so the same broken file is reported once.
                if let Ok(mut c) = self.current.write() {
                    c.1 = now;
                }
                tracing::error!(error = %e, "TLS certificate not reloaded; the one in use is kept");
                false
            }
        }
    }

    /// Watches the files until the returned task is aborted.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(WATCH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                tls.reload_if_changed();
            }
        })
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |p: &std::path::Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [one(&files.cert), one(&files.key)]
}

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (`-----BEGIN CERTIFICATE-----`) found",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: no usable private key: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
