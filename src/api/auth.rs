//! Who is calling and what they may do: a bearer token is hashed (SHA-256)
//! and compared in constant time with every configured token's hash;
//! without a token, loopback clients may read if the configuration allows
//! anonymous reads.
//!
//! A browser that logged in to the dashboard presents its token in the
//! [`SESSION_COOKIE`] cookie instead; such a caller may read the API (the
//! dashboard's event stream) but never change anything through it: changes
//! come through the dashboard's forms, which carry a CSRF token.
//!
//! This file never stores or logs a token, only names.

use super::error::ApiError;
use crate::config::http::{HttpConfig, Role};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name, or `anonymous`.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
    /// Where the request came from.
    pub from: SocketAddr,
    /// Authenticated by the dashboard's session cookie, not a header.
    pub by_cookie: bool,
}

impl Caller {
    /// Refuses (403) unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} has the {} role; this needs {}",
                self.name,
                self.role.name(),
                role.name()
            )))
        }
    }
}

/// The SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The hash as the configuration writes it: `sha256:` and 64 hex digits.
pub fn format_hash(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A new random token: 32 bytes from the OS, URL-safe base64 without padding.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("lxm_");
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    Ok(out)
}

/// The cookie a dashboard login stores the token in (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "laxmon_session";

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v.trim()))
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: derived from its token, so only a page
/// served to that session can know it.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"laxmon-csrf\0")
        .chain_update(session_token.trim().as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` is the CSRF token of `session_token` (constant time).
pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    bool::from(
        csrf_token(session_token)
            .as_bytes()
            .ct_eq(presented.as_bytes()),
    )
}

/// `%XX` escapes decoded; anything malformed is kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Identifies the caller of a request from `peer` with `headers`: a bearer
/// token, else the dashboard's session cookie, else anonymous (if allowed).
pub fn authenticate(
    cfg: &HttpConfig,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let mut caller = by_token(cfg, &token, peer).map_err(|_| {
                ApiError::unauthorized("the session's token is no longer configured: log in again")
            })?;
            caller.by_cookie = true;
            return Ok(caller);
        }
        if cfg.anonymous_read && peer.ip().is_loopback() {
            return Ok(Caller {
                name: "anonymous".into(),
                role: Role::Read,
                from: peer,
                by_cookie: false,
            });
        }
        return Err(ApiError::unauthorized(
            "send `Authorization: Bearer TOKEN` (anonymous reads are allowed only from loopback, and only with `http.anonymous: read`)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
    by_token(cfg, token, peer)
}

/// The caller a token names, or 401.
pub fn by_token(cfg: &HttpConfig, token: &str, peer: SocketAddr) -> Result<Caller, ApiError> {
    let presented = hash_token(token);
    // Every configured hash is compared, whatever matched first, so the time
    // taken says nothing about which token (or how much of one) matched.
    let mut found: Option<usize> = None;
    for (i, t) in cfg.tokens.iter().enumerate() {
        if bool::from(t.sha256.ct_eq(&presented)) {
            found = Some(i);
        }
    }
    let t = found
        .and_then(|i| cfg.tokens.get(i))
        .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    Ok(Caller {
        name: t.name.clone(),
        role: t.role,
        from: peer,
        by_cookie: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::http::ApiToken;

    fn cfg(anonymous_read: bool) -> HttpConfig {
        HttpConfig {
            listen: Vec::new(),
            tls: None,
            anonymous_read,
            tokens: vec![
                ApiToken {
                    name: "ops".into(),
                    role: Role::Operate,
                    sha256: hash_token("secret-ops"),
                },
                ApiToken {
                    name: "boss".into(),
                    role: Role::Admin,
                    sha256: hash_token("secret-boss"),
                },
            ],
        }
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
        h
    }

    const LOOPBACK: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);
    const REMOTE: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
        5000,
    );

    #[test]
    fn tokens_map_to_their_names_and_roles() {
        let c = authenticate(&cfg(false), &bearer("secret-boss"), REMOTE).expect("known");
        assert_eq!((c.name.as_str(), c.role), ("boss", Role::Admin));
        let c = authenticate(&cfg(false), &bearer("secret-ops"), REMOTE).expect("known");
        assert_eq!(c.role, Role::Operate);
        assert!(c.require(Role::Read).is_ok());
        assert_eq!(
            c.require(Role::Admin).map_err(|e| e.status.as_u16()),
            Err(403)
        );
        let e = authenticate(&cfg(false), &bearer("secret-op"), REMOTE).expect_err("unknown");
        assert_eq!(e.status.as_u16(), 401);
    }

    #[test]
    fn anonymous_reads_only_from_loopback_and_only_when_allowed() {
        let none = HeaderMap::new();
        assert_eq!(
            authenticate(&cfg(true), &none, LOOPBACK)
                .map(|c| c.role)
                .ok(),
            Some(Role::Read)
        );
        assert!(authenticate(&cfg(true), &none, REMOTE).is_err());
        assert!(authenticate(&cfg(false), &none, LOOPBACK).is_err());
    }

    #[test]
    fn malformed_authorization_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Basic Zm9vOmJhcg==".parse().expect("header"),
        );
        assert!(authenticate(&cfg(true), &h, LOOPBACK).is_err());
    }

    #[test]
    fn hashes_print_as_the_config_reads_them() {
        let h = hash_token("abc");
        let s = format_hash(&h);
        assert_eq!(
            s,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(crate::config::http::parse_hash(&s), Ok(h));
    }

    #[test]
    fn new_tokens_are_long_and_distinct() {
        let a = new_token().expect("random");
        let b = new_token().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
        assert!(a[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
