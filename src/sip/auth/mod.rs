//! Digest authentication, server side (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760). Sans-IO.
//!
//! This module works on header *values* and knows nothing of SIP message types:
//! - [`DigestServer::challenge`] gives the `WWW-Authenticate` / `Proxy-Authenticate` values;
//! - [`Credentials::parse`] reads an `Authorization` / `Proxy-Authorization` value;
//! - [`DigestServer::verify`] checks them against a user's [`Secret`].
//!
//! Time is an argument: `now_unix_ms` is wall-clock milliseconds since the Unix epoch, read by
//! the caller (nonces must stay valid across process restarts, so they carry wall time).
//!
//! What the caller still does:
//! - check that [`Credentials::uri`] designates the Request-URI (RFC 3261 §22.4: "the URI
//!   included in the challenge response MUST be the same as the Request-URI"; comparing URIs needs
//!   the message parser);
//! - pick the credentials whose realm is ours when a request carries several;
//! - answer with `401`/`WWW-Authenticate` for `Authorization`, `407`/`Proxy-Authenticate` for
//!   `Proxy-Authorization` ([`AuthError::status`] says `401` for both).
//!
//! Not supported: `userhash` (never offered, so a client must not use it: such credentials are
//! [`AuthError::Malformed`]), AKA. `qop=auth-int` is supported through
//! [`DigestServer::verify_with_body`] and offered only on request
//! ([`DigestServer::with_auth_int`]).

mod credentials;
mod hash;
mod nonce;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use credentials::Credentials;
pub use hash::{Algorithm, HashFunction, body_hash, expected_response, ha1, ha2, userhash};
pub use nonce::{DEFAULT_REPLAY_CAPACITY, NonceManager, NonceStatus, ReplayGuard};

use hash::{Hex, ResponseInputs};

/// Why credentials were not accepted. [`AuthError::status`] gives the SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No such user. Answer like [`AuthError::BadResponse`] (403) so as not to reveal which
    /// usernames exist; `verify` also spends the same hashing work on it.
    #[error("unknown user {username:?}")]
    UnknownUser { username: String },
    /// Wrong password (the response does not match).
    #[error("wrong digest response for user {username:?}")]
    BadResponse { username: String },
    /// The directory has no secret usable with this algorithm (e.g. only an MD5 HA1 stored and
    /// the client answered a SHA-256 challenge), or the stored HA1 is not valid hex.
    #[error("no usable secret for user {username:?} with {algorithm}")]
    SecretUnavailable {
        username: String,
        algorithm: Algorithm,
    },
    /// Correct response, but the nonce has expired: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The nonce was not issued by us (forged, corrupted, from an earlier secret or a
    /// restart with a new secret, bound to another address): challenge again.
    #[error("invalid nonce")]
    InvalidNonce,
    /// Credentials for another realm: challenge again.
    #[error("credentials for realm {realm:?}, not ours")]
    RealmMismatch { realm: String },
    /// `nc` not greater than the last one seen with this nonce (RFC 7616 §3.4): a replay or a
    /// confused client. Challenge again with a fresh nonce and `stale=true`, so an honest client
    /// retries without asking its user for the password; a replayer learns nothing.
    #[error("nonce count {nc:#010x} replayed")]
    Replay { nc: u32 },
    /// Syntactically bad credentials: 400.
    #[error("malformed credentials: {0}")]
    Malformed(MalformedReason),
    /// Not the Digest scheme (RFC 4475 regaut01): challenge in Digest.
    #[error("unsupported authentication scheme {scheme:?}")]
    UnsupportedScheme { scheme: String },
    /// An algorithm we do not know or did not offer: challenge again.
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm { algorithm: String },
    /// A `qop` we did not offer (`None`: no `qop` while we require one): challenge again.
    #[error("unsupported qop {qop:?}")]
    UnsupportedQop { qop: Option<String> },
}

/// What is wrong with [`AuthError::Malformed`] credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReason {
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("parameter {0} given twice")]
    Duplicate(&'static str),
    #[error("syntax error at byte {at}")]
    Syntax { at: usize },
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("nc is not 1 to 8 hex digits, or is zero")]
    BadNonceCount,
    #[error("userhash is neither true nor false")]
    BadUserhash,
    #[error("userhash=true, which was not offered")]
    UserhashNotOffered,
}

impl AuthError {
    /// The SIP status to answer with: 400, 401 (407 when challenging for a proxy) or 403.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Malformed(_) => 400,
            AuthError::UnknownUser { .. }
            | AuthError::BadResponse { .. }
            | AuthError::SecretUnavailable { .. } => 403,
            AuthError::Stale
            | AuthError::InvalidNonce
            | AuthError::RealmMismatch { .. }
            | AuthError::Replay { .. }
            | AuthError::UnsupportedScheme { .. }
            | AuthError::UnsupportedAlgorithm { .. }
            | AuthError::UnsupportedQop { .. } => 401,
        }
    }

    /// Whether to answer with a new challenge ([`DigestServer::challenge`]).
    pub fn wants_challenge(&self) -> bool {
        self.status() == 401
    }

    /// Whether that challenge carries `stale=true` (the client may retry with the same password
    /// without asking its user).
    pub fn stale(&self) -> bool {
        matches!(self, AuthError::Stale | AuthError::Replay { .. })
    }
}

/// A user's secret, as [`DigestServer::verify`]'s lookup returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret<'a> {
    /// The plaintext password.
    Plain(&'a str),
    /// Precomputed base HA1 values, `H(username ":" realm ":" password)` in hex ([`ha1`]), for
    /// MD5 (and MD5-sess) and SHA-256 (and SHA-256-sess). SHA-512-256 needs [`Secret::Plain`].
    Ha1 {
        md5: Option<&'a str>,
        sha256: Option<&'a str>,
    },
}

/// Successfully verified credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub algorithm: Algorithm,
}

/// The server side of digest authentication for one realm.
///
/// **Challenge order.** RFC 8760 §2.4 lets a server send one challenge per algorithm, most
/// preferred first, and a client should use the first it supports. In practice many clients
/// look only at the first `WWW-Authenticate` (older pjsip, hence older MicroSIP; reportedly older
/// Yealink firmware) and many only do MD5. sipp 3.6 (the one installed here) only does MD5 and reads parameters out of
/// the first challenge (a SHA-256 challenge first makes it fail: "authentication must use MD5
/// or AKAv1-MD5"); only recent sipp picks the first challenge it can answer. So the default is
/// `[MD5, SHA-256]`, MD5 first; [`DigestServer::with_algorithms`] changes it.
///
/// **qop.** Challenges offer `qop="auth"` (plus `auth-int` if enabled). Responses without `qop`
/// (RFC 2069 / RFC 2543 clients) are accepted by default for compatibility: they carry no `nc`,
/// so their nonce may be reused until it expires. [`DigestServer::with_allow_no_qop`] refuses them.
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    nonces: NonceManager,
    replay: ReplayGuard,
    algorithms: Vec<Algorithm>,
    allow_no_qop: bool,
    offer_auth_int: bool,
    opaque: String,
}

/// Default algorithms offered, most preferred first.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

impl DigestServer {
    /// A server for `realm`, its nonces keyed by `secret` and valid for `nonce_lifetime`.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        let realm = realm.into();
        let nonces = NonceManager::new(secret, nonce_lifetime);
        let tag = nonces.derive(b"dialtone digest opaque v1\0", realm.as_bytes());
        // 16 characters: some clients (sipp) keep only 63.
        let opaque = URL_SAFE_NO_PAD.encode(&tag[..12]);
        DigestServer {
            realm,
            nonces,
            replay: ReplayGuard::new(nonce_lifetime, DEFAULT_REPLAY_CAPACITY),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            allow_no_qop: true,
            offer_auth_int: false,
            opaque,
        }
    }

    /// The algorithms to offer and accept, most preferred first. An empty list keeps the
    /// current one; duplicates are dropped.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms.clear();
            for &a in algorithms {
                if !self.algorithms.contains(&a) {
                    self.algorithms.push(a);
                }
            }
        }
        self
    }

    /// Binds nonces to the client's IP address (off by default: see [`NonceManager`]).
    pub fn with_client_ip_binding(mut self, bind: bool) -> Self {
        self.nonces.set_bind_client_ip(bind);
        self
    }

    /// Whether responses without `qop` (RFC 2069 form) are accepted (default: yes).
    pub fn with_allow_no_qop(mut self, allow: bool) -> Self {
        self.allow_no_qop = allow;
        self
    }

    /// Offer `qop="auth,auth-int"` instead of `qop="auth"` (default: no). `auth-int`
    /// responses are only verified by [`DigestServer::verify_with_body`].
    pub fn with_auth_int(mut self, offer: bool) -> Self {
        self.offer_auth_int = offer;
        self
    }

    /// How many nonces the replay guard remembers ([`DEFAULT_REPLAY_CAPACITY`]).
    pub fn with_replay_capacity(mut self, capacity: usize) -> Self {
        self.replay = ReplayGuard::new(self.nonces.lifetime(), capacity);
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The `WWW-Authenticate` (or `Proxy-Authenticate`) values, one per offered algorithm, most
    /// preferred first; send each as its own header field, in this order. They share one fresh
    /// nonce. `stale`: the previous request failed only because its nonce was stale
    /// ([`AuthError::stale`]).
    ///
    /// `Digest realm="pbx", nonce="…", opaque="…", algorithm=MD5, qop="auth"[, stale=true]`
    pub fn challenge(
        &mut self,
        now_unix_ms: u64,
        stale: bool,
        client_ip: Option<IpAddr>,
    ) -> Vec<String> {
        let nonce = self.nonces.issue(now_unix_ms, client_ip);
        let qop = if self.offer_auth_int {
            "auth,auth-int"
        } else {
            "auth"
        };
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|alg| {
                let mut v = String::with_capacity(128 + self.realm.len());
                v.push_str("Digest realm=\"");
                push_quoted(&mut v, &self.realm);
                v.push_str("\", nonce=\"");
                v.push_str(&nonce);
                v.push_str("\", opaque=\"");
                v.push_str(&self.opaque);
                v.push_str("\", algorithm=");
                v.push_str(alg.as_str());
                v.push_str(", qop=\"");
                v.push_str(qop);
                v.push('"');
                v.push_str(stale);
                v
            })
            .collect()
    }

    /// Verifies `credentials` for a request of `method` (e.g. `REGISTER`).
    ///
    /// `lookup` maps the username to its secret (called at most once, only when the nonce is
    /// ours). The `opaque` parameter is not checked (it carries no state here). The `uri`
    /// parameter must be checked against the Request-URI by the caller. `qop=auth-int`
    /// credentials are refused ([`AuthError::UnsupportedQop`]): use
    /// [`DigestServer::verify_with_body`].
    pub fn verify<'s>(
        &mut self,
        now_unix_ms: u64,
        method: &str,
        credentials: &Credentials,
        lookup: impl FnOnce(&str) -> Option<Secret<'s>>,
        client_ip: Option<IpAddr>,
    ) -> Result<Verified, AuthError> {
        self.verify_with_body(now_unix_ms, method, credentials, None, lookup, client_ip)
    }

    /// [`DigestServer::verify`], with the message body for `qop=auth-int` (accepted only when
    /// offered with [`DigestServer::with_auth_int`] and `body` is given).
    ///
    /// Order of checks: realm, algorithm, `qop`/`nc` syntax, nonce MAC (invalid → no lookup),
    /// lookup, response; then an expired nonce is [`AuthError::Stale`] (only for a correct
    /// response, RFC 7616 §3.3), and last the `nc` is recorded, so forged requests cannot burn a
    /// client's counts.
    pub fn verify_with_body<'s>(
        &mut self,
        now_unix_ms: u64,
        method: &str,
        credentials: &Credentials,
        body: Option<&[u8]>,
        lookup: impl FnOnce(&str) -> Option<Secret<'s>>,
        client_ip: Option<IpAddr>,
    ) -> Result<Verified, AuthError> {
        let c = credentials;
        let alg = c.algorithm;
        if c.userhash {
            return Err(AuthError::Malformed(MalformedReason::UserhashNotOffered));
        }
        if c.realm != self.realm {
            return Err(AuthError::RealmMismatch {
                realm: c.realm.clone(),
            });
        }
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::UnsupportedAlgorithm {
                algorithm: alg.as_str().to_owned(),
            });
        }

        let f = alg.hash_function();
        let unsupported_qop = || AuthError::UnsupportedQop { qop: c.qop.clone() };
        let mut body_hash = None;
        let nc = match c.qop.as_deref() {
            None => {
                if alg.is_sess() {
                    // The session key needs a cnonce, which only comes with qop.
                    return Err(AuthError::Malformed(MalformedReason::Missing("qop")));
                }
                if !self.allow_no_qop {
                    return Err(unsupported_qop());
                }
                None
            }
            Some(q) => {
                if q.eq_ignore_ascii_case("auth-int") {
                    match body {
                        Some(b) if self.offer_auth_int => {
                            body_hash = Some(hash::body_hash_hex(f, b));
                        }
                        _ => return Err(unsupported_qop()),
                    }
                } else if !q.eq_ignore_ascii_case("auth") {
                    return Err(unsupported_qop());
                }
                Some(parse_nc(c.nc.as_deref().unwrap_or(""))?)
            }
        };

        let (issued, stale) = match self.nonces.check_issued(now_unix_ms, &c.nonce, client_ip) {
            Ok(issued) => (issued, false),
            Err(NonceStatus::Stale) => (0, true),
            Err(_) => return Err(AuthError::InvalidNonce),
        };

        // The hashing is the same whether or not the user exists.
        let secret = lookup(&c.username);
        let dummy =
            Hex::parse(f, ZEROS.get(..f.hex_len()).unwrap_or(ZEROS)).expect("zeros are hex");
        let ha1 = match secret {
            None => None,
            Some(Secret::Plain(password)) => {
                Some(hash::ha1_hex(f, &c.username, &c.realm, password))
            }
            Some(Secret::Ha1 { md5, sha256 }) => {
                let stored = match f {
                    HashFunction::Md5 => md5,
                    HashFunction::Sha256 => sha256,
                    HashFunction::Sha512_256 => None,
                };
                match stored.and_then(|s| Hex::parse(f, s)) {
                    Some(h) => Some(h),
                    None => {
                        return Err(AuthError::SecretUnavailable {
                            username: c.username.clone(),
                            algorithm: alg,
                        });
                    }
                }
            }
        };
        let expected = ResponseInputs {
            alg,
            ha1: ha1.as_ref().unwrap_or(&dummy).as_bytes(),
            nonce: c.nonce.as_bytes(),
            nc: c.nc.as_deref().unwrap_or("").as_bytes(),
            cnonce: c.cnonce.as_deref().unwrap_or("").as_bytes(),
            qop: c.qop.as_deref().map(str::as_bytes),
            method: method.as_bytes(),
            uri: c.uri.as_bytes(),
            body_hash: body_hash.as_ref().map_or(&[][..], |h| h.as_bytes()),
        }
        .response();
        let matches = expected.ct_eq_ignore_case(c.response.as_bytes());
        if ha1.is_none() {
            return Err(AuthError::UnknownUser {
                username: c.username.clone(),
            });
        }
        if !matches {
            return Err(AuthError::BadResponse {
                username: c.username.clone(),
            });
        }
        if stale {
            return Err(AuthError::Stale);
        }
        if let Some(nc) = nc
            && !self
                .replay
                .check_nc_issued(now_unix_ms, &c.nonce, issued, nc)
        {
            return Err(AuthError::Replay { nc });
        }
        Ok(Verified {
            username: c.username.clone(),
            algorithm: alg,
        })
    }
}

/// A well-formed HA1 that matches no user, hashed for unknown users.
const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `nc-value = 8LHEX`; 1 to 8 hex digits accepted, zero refused.
fn parse_nc(nc: &str) -> Result<u32, AuthError> {
    let bad = AuthError::Malformed(MalformedReason::BadNonceCount);
    if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad);
    }
    match u32::from_str_radix(nc, 16) {
        Ok(0) | Err(_) => Err(bad),
        Ok(n) => Ok(n),
    }
}

/// Appends `s` escaped for the inside of a quoted-string.
fn push_quoted(out: &mut String, s: &str) {
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
}

#[cfg(test)]
mod tests;
