//! The `http:` section: where the operations API listens, its TLS files, and
//! who may use it (named tokens with a role, stored as hashes; anonymous
//! read access on loopback only when asked for).
//!
//! This file only decodes and validates; it never opens a socket or reads
//! the TLS files (the server does, and re-reads them when they change).

use super::read::{seq, string, string_list, Errors, MapView};
use super::yaml::Node;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The port the API listens on when `http.listen` gives none.
pub const DEFAULT_PORT: u16 = 8470;

/// The operations API's settings (`http:`); absent means no API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Addresses to listen on (default `127.0.0.1:8470`).
    pub listen: Vec<SocketAddr>,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Anonymous clients on a loopback address may read (never change anything).
    pub anonymous_read: bool,
    /// The API tokens, by name.
    pub tokens: Vec<ApiToken>,
}

/// A PEM certificate chain and its private key, re-read when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A named token: who a request comes from and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The token's name, shown in the audit log as the caller.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// SHA-256 of the token (the token itself is never stored).
    pub sha256: [u8; 32],
}

/// What a caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read state, history, alarms, metrics and events.
    Read,
    /// Also acknowledge, run checks now and silence.
    Operate,
    /// Also reload the configuration and operate clusters.
    Admin,
}

impl Role {
    /// The role's name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

const HTTP_KEYS: &[&str] = &["listen", "tls", "anonymous", "tokens"];
const TLS_KEYS: &[&str] = &["cert", "key"];
const TOKEN_KEYS: &[&str] = &["name", "role", "hash"];
const ROLES: &[&str] = &["read", "operate", "admin"];

/// Decodes `http:`; relative TLS paths resolve against `base` (the config file's folder).
pub(super) fn decode(file: &Path, base: &Path, node: &Node, errors: &mut Errors) -> HttpConfig {
    let mut cfg = HttpConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))],
        tls: None,
        anonymous_read: false,
        tokens: Vec::new(),
    };
    let Some(mut map) = MapView::new(file, node, "http", errors) else {
        return cfg;
    };
    if let Some(n) = map.take("listen") {
        let list = match &n.value {
            super::yaml::Value::Str(_) => {
                string(file, "http.listen", n, errors).into_iter().collect()
            }
            _ => string_list(file, "http.listen", n, errors),
        };
        let mut addrs = Vec::new();
        for a in &list {
            match listen_address(a) {
                Ok(addr) => addrs.push(addr),
                Err(e) => errors.at(file, n.pos, format!("http.listen {a:?}: {e}")),
            }
        }
        if list.is_empty() {
            errors.at(file, n.pos, "http.listen is empty: give an address such as 127.0.0.1:8470, or remove `http:` to turn the API off");
        }
        if !addrs.is_empty() {
            cfg.listen = addrs;
        }
    }
    if let Some(n) = map.take("tls") {
        if let Some(mut tls) = MapView::new(file, n, "http.tls", errors) {
            let cert = tls
                .take("cert")
                .and_then(|v| string(file, "http.tls.cert", v, errors));
            let key = tls
                .take("key")
                .and_then(|v| string(file, "http.tls.key", v, errors));
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    cfg.tls = Some(TlsFiles {
                        cert: base.join(cert),
                        key: base.join(key),
                    })
                }
                _ => errors.at(
                    file,
                    n.pos,
                    "http.tls needs both `cert` and `key` (PEM files)",
                ),
            }
            tls.finish("http.tls", TLS_KEYS, errors);
        }
    }
    if let Some(n) = map.take("anonymous") {
        match string(file, "http.anonymous", n, errors).as_deref() {
            Some("read") => cfg.anonymous_read = true,
            Some("none") => cfg.anonymous_read = false,
            Some(other) => errors.at(
                file,
                n.pos,
                format!("http.anonymous {other:?}: expected `read` (loopback clients may read without a token) or `none`"),
            ),
            None => {}
        }
    }
    if let Some(n) = map.take("tokens") {
        for t in seq(file, "http.tokens", n, errors) {
            if let Some(token) = decode_token(file, t, errors) {
                if cfg.tokens.iter().any(|x| x.name == token.name) {
                    errors.at(
                        file,
                        t.pos,
                        format!("http.tokens: the name {:?} is used twice", token.name),
                    );
                } else if cfg.tokens.iter().any(|x| x.sha256 == token.sha256) {
                    errors.at(
                        file,
                        t.pos,
                        format!(
                            "http.tokens: {:?} has the same hash as another token; give each its own token",
                            token.name
                        ),
                    );
                } else {
                    cfg.tokens.push(token);
                }
            }
        }
    }
    map.finish("http", HTTP_KEYS, errors);
    cfg
}

fn decode_token(file: &Path, node: &Node, errors: &mut Errors) -> Option<ApiToken> {
    let mut map = MapView::new(file, node, "an http.tokens entry", errors)?;
    let (name_node, role_node, hash_node) = (map.take("name"), map.take("role"), map.take("hash"));
    map.finish("an http.tokens entry", TOKEN_KEYS, errors);
    let missing: Vec<&str> = [
        ("name", name_node.is_none()),
        ("role", role_node.is_none()),
        ("hash", hash_node.is_none()),
    ]
    .into_iter()
    .filter_map(|(k, m)| m.then_some(k))
    .collect();
    if !missing.is_empty() {
        errors.at(
            file,
            node.pos,
            format!(
                "http.tokens entry lacks {} (a token is `{{name: NAME, role: read|operate|admin, hash: sha256:HEX}}`; `laxmon token hash` prints the hash)",
                missing.join(", ")
            ),
        );
    }
    let name = name_node.and_then(|n| super::read::name(file, "token name", n, errors));
    let role = role_node.and_then(|n| {
        let s = string(file, "token role", n, errors)?;
        match s.as_str() {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            "admin" => Some(Role::Admin),
            other => {
                let hint = crate::suggest::did_you_mean(other, ROLES);
                errors.at(
                    file,
                    n.pos,
                    format!("token role {other:?} is not known{hint}; roles: read, operate, admin"),
                );
                None
            }
        }
    });
    let hash = hash_node.and_then(|n| {
        let s = string(file, "token hash", n, errors)?;
        match parse_hash(&s) {
            Ok(h) => Some(h),
            Err(e) => {
                errors.at(file, n.pos, format!("token hash {s:?}: {e}"));
                None
            }
        }
    });
    Some(ApiToken {
        name: name?,
        role: role?,
        sha256: hash?,
    })
}

/// Parses `sha256:` followed by 64 hex digits, as `laxmon token hash` prints it.
pub fn parse_hash(s: &str) -> Result<[u8; 32], String> {
    let Some(hex) = s.strip_prefix("sha256:") else {
        return Err("expected `sha256:` and 64 hex digits, as `laxmon token hash` prints (the token itself does not belong in the configuration)".into());
    };
    if hex.len() != 64 {
        return Err(format!(
            "expected 64 hex digits after `sha256:`, found {}",
            hex.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
            _ => return Err("not a hex digit after `sha256:`".into()),
        }
    }
    Ok(out)
}

/// `HOST:PORT`, `[V6]:PORT`, or a bare address (then the default port).
fn listen_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("{port:?} is not a port number"));
    }
    Err("expected an IP address and port such as 127.0.0.1:8470 or [::1]:8470 (host names are not resolved)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_address("127.0.0.1:9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(
            listen_address("0.0.0.0"),
            Ok(SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))
        );
        assert_eq!(
            listen_address("[::1]"),
            Ok(SocketAddr::from((
                std::net::Ipv6Addr::LOCALHOST,
                DEFAULT_PORT
            )))
        );
        assert_eq!(
            listen_address(":9001"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9001)))
        );
        assert!(listen_address("localhost:80").is_err());
        assert!(listen_address(":http").is_err());
    }

    #[test]
    fn hashes() {
        let hex = "00ff".repeat(16);
        let h = parse_hash(&format!("sha256:{hex}")).expect("valid");
        assert_eq!(h[0], 0);
        assert_eq!(h[1], 255);
        assert!(parse_hash(&hex).is_err());
        assert!(parse_hash("sha256:abc").is_err());
        assert!(parse_hash(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Read < Role::Operate && Role::Operate < Role::Admin);
    }
}
