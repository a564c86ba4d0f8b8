//! The digest computations of RFC 7616 §3.4.1–§3.4.3 (RFC 2617 §3.2.2, RFC 2069 without `qop`).
//!
//! The hot path never builds `format!` strings: every hash is fed part by part with streaming
//! `update` calls, and hex digests live in a stack buffer ([`Hex`]).

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest `algorithm` (RFC 7616 §3.3, RFC 8760 for SIP). An absent `algorithm` parameter
/// means [`Algorithm::Md5`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the only one many phones know).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`: FIPS 180-4 SHA-512/256 (RFC 7616, RFC 8760).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

/// The hash function under an [`Algorithm`], without the `-sess` variation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFunction {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm this module computes.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// Parses an `algorithm` value, case-insensitively (`md5`, `SHA-256-sess`, …).
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The name as written in a challenge (`MD5`, `SHA-256-sess`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` algorithm: its HA1 also covers the nonce and cnonce.
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The hash function of this algorithm.
    pub fn hash_function(self) -> HashFunction {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashFunction::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashFunction::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => HashFunction::Sha512_256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HashFunction {
    /// Length of a digest in lower-case hex.
    pub fn hex_len(self) -> usize {
        match self {
            HashFunction::Md5 => 32,
            HashFunction::Sha256 | HashFunction::Sha512_256 => 64,
        }
    }
}

/// A digest in lower-case hex, on the stack (at most 64 digits: 256-bit hashes).
#[derive(Clone, Copy)]
pub(crate) struct Hex {
    buf: [u8; 64],
    len: u8,
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl Hex {
    fn encode(bytes: &[u8]) -> Hex {
        let mut hex = Hex {
            buf: [0; 64],
            len: 0,
        };
        for (pair, b) in hex.buf.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX_DIGITS[usize::from(b >> 4)];
            pair[1] = HEX_DIGITS[usize::from(b & 0x0f)];
            hex.len += 2;
        }
        hex
    }

    /// `s` lower-cased if it is a hex digest of exactly `f`'s length, else `None`.
    pub(crate) fn parse(f: HashFunction, s: &str) -> Option<Hex> {
        if s.len() != f.hex_len() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut hex = Hex {
            buf: [0; 64],
            len: 0,
        };
        for (d, s) in hex.buf.iter_mut().zip(s.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        hex.len = s.len() as u8; // <= 64, checked above
        Some(hex)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("hex digits are ASCII")
    }

    /// Constant-time comparison with a hex digest from the network, ignoring ASCII case.
    /// Only the length (which is public) leaks through timing.
    pub(crate) fn ct_eq_ignore_case(&self, other: &[u8]) -> bool {
        let ours = self.as_bytes();
        if ours.len() != other.len() {
            return false;
        }
        let diff = ours
            .iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One streaming hash of the chosen function.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512_256(Sha512_256),
}

impl Hasher {
    fn new(f: HashFunction) -> Hasher {
        match f {
            HashFunction::Md5 => Hasher::Md5(Md5::new()),
            HashFunction::Sha256 => Hasher::Sha256(Sha256::new()),
            HashFunction::Sha512_256 => Hasher::Sha512_256(Sha512_256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512_256(h) => h.update(data),
        }
    }

    fn finish(self) -> Hex {
        match self {
            Hasher::Md5(h) => Hex::encode(&h.finalize()),
            Hasher::Sha256(h) => Hex::encode(&h.finalize()),
            Hasher::Sha512_256(h) => Hex::encode(&h.finalize()),
        }
    }
}

/// `H(parts[0] ":" parts[1] ":" …)` in hex.
pub(crate) fn hash_joined(f: HashFunction, parts: &[&[u8]]) -> Hex {
    let mut h = Hasher::new(f);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part);
    }
    h.finish()
}

/// The inputs of one `response` computation (RFC 7616 §3.4.1). All strings are the unquoted
/// parameter values exactly as the client sent them.
pub(crate) struct ResponseInputs<'a> {
    pub alg: Algorithm,
    /// The base HA1, `H(username ":" realm ":" password)` in lower-case hex; for a `-sess`
    /// algorithm the session HA1 is derived from it here.
    pub ha1: &'a [u8],
    pub nonce: &'a [u8],
    pub nc: &'a [u8],
    pub cnonce: &'a [u8],
    /// `None`: the RFC 2069 form `H(HA1 ":" nonce ":" HA2)`.
    pub qop: Option<&'a [u8]>,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    /// `H(entity-body)` in hex, used when `qop` is `auth-int`.
    pub body_hash: &'a [u8],
}

impl ResponseInputs<'_> {
    pub(crate) fn response(&self) -> Hex {
        let f = self.alg.hash_function();
        let sess_ha1;
        let ha1 = if self.alg.is_sess() {
            sess_ha1 = hash_joined(f, &[self.ha1, self.nonce, self.cnonce]);
            sess_ha1.as_bytes()
        } else {
            self.ha1
        };
        let ha2 = match self.qop {
            Some(q) if q.eq_ignore_ascii_case(b"auth-int") => {
                hash_joined(f, &[self.method, self.uri, self.body_hash])
            }
            _ => hash_joined(f, &[self.method, self.uri]),
        };
        match self.qop {
            Some(qop) => hash_joined(
                f,
                &[ha1, self.nonce, self.nc, self.cnonce, qop, ha2.as_bytes()],
            ),
            None => hash_joined(f, &[ha1, self.nonce, ha2.as_bytes()]),
        }
    }
}

/// The base HA1 = `H(username ":" realm ":" password)` in lower-case hex (RFC 7616 §3.4.2).
///
/// This is the value to store instead of a plaintext password. For a `-sess` algorithm it is
/// the same value as for its base algorithm: the session HA1 (`H(HA1 ":" nonce ":" cnonce)`) is
/// derived per request inside [`expected_response`].
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    ha1_hex(alg.hash_function(), username, realm, password)
        .as_str()
        .to_owned()
}

pub(crate) fn ha1_hex(f: HashFunction, username: &str, realm: &str, password: &str) -> Hex {
    hash_joined(
        f,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// HA2 = `H(method ":" digest-uri)` for `qop=auth` or no `qop` (RFC 7616 §3.4.3).
pub fn ha2(alg: Algorithm, method: &str, uri: &str) -> String {
    hash_joined(alg.hash_function(), &[method.as_bytes(), uri.as_bytes()])
        .as_str()
        .to_owned()
}

/// `H(entity-body)` for `qop=auth-int`.
pub fn body_hash(alg: Algorithm, body: &[u8]) -> String {
    body_hash_hex(alg.hash_function(), body).as_str().to_owned()
}

pub(crate) fn body_hash_hex(f: HashFunction, body: &[u8]) -> Hex {
    let mut h = Hasher::new(f);
    h.update(body);
    h.finish()
}

/// The hashed username of RFC 7616 §3.4.4: `H(username ":" realm)`.
pub fn userhash(alg: Algorithm, username: &str, realm: &str) -> String {
    hash_joined(
        alg.hash_function(),
        &[username.as_bytes(), realm.as_bytes()],
    )
    .as_str()
    .to_owned()
}

/// The `response` a client must send (RFC 7616 §3.4.1; RFC 2069 form when `qop` is `None`).
///
/// `ha1_hex` is the base HA1 of [`ha1`] (upper-case hex is accepted); for `-sess` algorithms the
/// session HA1 is derived here from it, `nonce` and `cnonce`. `nc`/`cnonce` are ignored without
/// `qop` (except `cnonce` for `-sess`); a missing one counts as empty. With `qop=auth-int`,
/// `body_hash_for_auth_int` is `H(entity-body)` ([`body_hash`]); `None` means an empty body.
#[allow(clippy::too_many_arguments)]
pub fn expected_response(
    alg: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    nc: Option<&str>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
    body_hash_for_auth_int: Option<&str>,
) -> String {
    let f = alg.hash_function();
    let lowered = Hex::parse(f, ha1_hex);
    let empty_body;
    let body_hash = match body_hash_for_auth_int {
        Some(h) => h.as_bytes(),
        None => {
            empty_body = body_hash_hex(f, b"");
            empty_body.as_bytes()
        }
    };
    ResponseInputs {
        alg,
        ha1: lowered
            .as_ref()
            .map_or(ha1_hex.as_bytes(), |h| h.as_bytes()),
        nonce: nonce.as_bytes(),
        nc: nc.unwrap_or("").as_bytes(),
        cnonce: cnonce.unwrap_or("").as_bytes(),
        qop: qop.map(str::as_bytes),
        method: method.as_bytes(),
        uri: uri.as_bytes(),
        body_hash,
    }
    .response()
    .as_str()
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of conformance/digest_vectors.tsv.
    struct Row<'a> {
        id: &'a str,
        algorithm: &'a str,
        qop: Option<&'a str>,
        username: &'a str,
        realm: &'a str,
        password: &'a str,
        method: &'a str,
        uri: &'a str,
        nonce: &'a str,
        nc: &'a str,
        cnonce: &'a str,
        userhash: bool,
        username_hash: &'a str,
        ha1: &'a str,
        ha2: &'a str,
        response: &'a str,
        stated_response: &'a str,
        stated_username_hash: &'a str,
    }

    const VECTORS: &str = include_str!("../../../conformance/digest_vectors.tsv");

    fn rows() -> Vec<Row<'static>> {
        let mut lines = VECTORS.lines();
        let header: Vec<&str> = lines.next().expect("header line").split('\t').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("column {name}"))
        };
        let (id, alg, qop, user, realm, pw, method, uri) = (
            col("id"),
            col("algorithm"),
            col("qop"),
            col("username"),
            col("realm"),
            col("password"),
            col("method"),
            col("digest_uri"),
        );
        let (nonce, nc, cnonce, uh, uhash, ha1c, ha2c, resp, stated, stated_uh) = (
            col("nonce"),
            col("nc"),
            col("cnonce"),
            col("userhash"),
            col("username_hash"),
            col("ha1"),
            col("ha2"),
            col("expected_response"),
            col("stated_response_in_source"),
            col("stated_username_hash_in_source"),
        );
        lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let g = |i: usize| f.get(i).copied().unwrap_or("");
                Row {
                    id: g(id),
                    algorithm: g(alg),
                    qop: Some(g(qop)).filter(|q| *q != "(none)" && !q.is_empty()),
                    username: g(user),
                    realm: g(realm),
                    password: g(pw),
                    method: g(method),
                    uri: g(uri),
                    nonce: g(nonce),
                    nc: g(nc),
                    cnonce: g(cnonce),
                    userhash: g(uh) == "true",
                    username_hash: g(uhash),
                    ha1: g(ha1c),
                    ha2: g(ha2c),
                    response: g(resp),
                    stated_response: g(stated),
                    stated_username_hash: g(stated_uh),
                }
            })
            .collect()
    }

    fn opt(s: &str) -> Option<&str> {
        Some(s).filter(|s| !s.is_empty())
    }

    #[test]
    fn every_conformance_vector() {
        let rows = rows();
        assert_eq!(rows.len(), 8, "digest_vectors.tsv rows");
        let mut checked = 0;
        for r in &rows {
            let Some(alg) = Algorithm::parse(r.algorithm) else {
                // Only the "as printed" RFC 7616 §3.9.2 row: its algorithm is plain SHA-512
                // truncated to 256 bits, which is not an algorithm (see the next test).
                assert_eq!(r.id, "rfc7616-3.9.2-as-printed-sha512-trunc");
                println!(
                    "{}: skipped here: \"{}\" is not a digest algorithm; checked in \
                     rfc7616_printed_sha512_values_are_truncated_sha512",
                    r.id, r.algorithm
                );
                continue;
            };
            assert_eq!(
                ha1(alg, r.username, r.realm, r.password),
                r.ha1,
                "{} HA1",
                r.id
            );
            assert_eq!(ha2(alg, r.method, r.uri), r.ha2, "{} HA2", r.id);
            let resp = expected_response(
                alg,
                r.ha1,
                r.nonce,
                opt(r.nc),
                opt(r.cnonce),
                r.qop,
                r.method,
                r.uri,
                None,
            );
            assert_eq!(resp, r.response, "{} response", r.id);
            // The same through upper-case stored HA1.
            let upper = expected_response(
                alg,
                &r.ha1.to_ascii_uppercase(),
                r.nonce,
                opt(r.nc),
                opt(r.cnonce),
                r.qop,
                r.method,
                r.uri,
                None,
            );
            assert_eq!(upper, r.response, "{} response, upper-case HA1", r.id);
            if r.userhash {
                assert_eq!(
                    userhash(alg, r.username, r.realm),
                    r.username_hash,
                    "{} userhash",
                    r.id
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 7);
    }

    /// RFC 7616 §3.9.2 prints a username hash and response that FIPS SHA-512/256 does not
    /// give; they come from the first 256 bits of plain SHA-512 (an erratum). Our SHA-512-256 is
    /// the FIPS one, so it must NOT reproduce them, and truncated SHA-512 must.
    #[test]
    fn rfc7616_printed_sha512_values_are_truncated_sha512() {
        let rows = rows();
        let r = rows
            .iter()
            .find(|r| r.id == "rfc7616-3.9.2-as-printed-sha512-trunc")
            .expect("row");
        let h = |parts: &[&str]| {
            let mut d = sha2::Sha512::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            Hex::encode(&d.finalize()[..32]).as_str().to_owned()
        };
        let ha1 = h(&[r.username, r.realm, r.password]);
        let ha2 = h(&[r.method, r.uri]);
        assert_eq!(ha1, r.ha1);
        assert_eq!(ha2, r.ha2);
        let resp = h(&[&ha1, r.nonce, r.nc, r.cnonce, r.qop.expect("qop"), &ha2]);
        assert_eq!(resp, r.response);
        assert_eq!(resp, r.stated_response);
        assert_eq!(h(&[r.username, r.realm]), r.username_hash);
        assert_eq!(r.username_hash, r.stated_username_hash);
        assert_ne!(
            userhash(Algorithm::Sha512_256, r.username, r.realm),
            r.username_hash
        );
    }

    // -sess and auth-int vectors computed with Python hashlib (inputs of the sip-pbx rows):
    // ha1s = H(ha1:nonce:cnonce); auth-int body "v=0\r\n".
    const NONCE: &str = "1d6b4c2a9f0e8d7c6b5a49382716f5e4";

    #[test]
    fn sess_vectors() {
        for (alg, want) in [
            (Algorithm::Md5Sess, "9d7a11bdcc5363c3fad23b320b927461"),
            (
                Algorithm::Sha256Sess,
                "036ead96b7dfeaf4fa75f19cf31f2a47b9f4a5c614bed099f367f7334f194347",
            ),
        ] {
            let h = ha1(alg, "1001", "pbx.local", "secret");
            let got = expected_response(
                alg,
                &h,
                NONCE,
                Some("00000001"),
                Some("0a4f113b"),
                Some("auth"),
                "REGISTER",
                "sip:pbx.local",
                None,
            );
            assert_eq!(got, want, "{alg}");
        }
    }

    #[test]
    fn auth_int_vectors() {
        for (alg, bh, want) in [
            (
                Algorithm::Md5,
                "b0d75ee0fad0609be9c67fb60aaf290a",
                "6134f85930009aee510a187f0d836e25",
            ),
            (
                Algorithm::Sha256,
                "4cf57627095fbc4886de378fcb3407917caca20bf078ca3f0fac3e5ca9b192d8",
                "e90b48e33b75cead73cdb5a87db4b9f2bcbd4291a5cb20d8aa96cde3390fd2d2",
            ),
        ] {
            assert_eq!(body_hash(alg, b"v=0\r\n"), bh);
            let h = ha1(alg, "1001", "pbx.local", "secret");
            let got = expected_response(
                alg,
                &h,
                NONCE,
                Some("00000001"),
                Some("0a4f113b"),
                Some("auth-int"),
                "REGISTER",
                "sip:pbx.local",
                Some(bh),
            );
            assert_eq!(got, want, "{alg}");
        }
    }

    #[test]
    fn algorithm_names_parse_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_eq!(Algorithm::parse(&a.as_str().to_ascii_lowercase()), Some(a));
            assert_eq!(Algorithm::parse(&a.as_str().to_ascii_uppercase()), Some(a));
        }
        assert_eq!(
            Algorithm::parse("sha-256-SESS"),
            Some(Algorithm::Sha256Sess)
        );
        assert_eq!(Algorithm::parse("AKAv1-MD5"), None);
        assert_eq!(Algorithm::parse(""), None);
        assert_eq!(Algorithm::parse("MD5 "), None);
    }

    #[test]
    fn hex_parse_and_constant_time_compare() {
        let h = Hex::parse(HashFunction::Md5, "939E7578ED9E3C518A452ACEE763BCE9").expect("hex");
        assert_eq!(h.as_str(), "939e7578ed9e3c518a452acee763bce9");
        assert!(h.ct_eq_ignore_case(b"939e7578ed9e3c518a452acee763bce9"));
        assert!(h.ct_eq_ignore_case(b"939E7578ED9E3C518A452ACEE763BCE9"));
        assert!(!h.ct_eq_ignore_case(b"939e7578ed9e3c518a452acee763bce8"));
        assert!(!h.ct_eq_ignore_case(b"939e7578ed9e3c518a452acee763bce"));
        assert!(!h.ct_eq_ignore_case(b""));
        assert!(Hex::parse(HashFunction::Md5, "939e7578ed9e3c518a452acee763bce").is_none());
        assert!(Hex::parse(HashFunction::Md5, "939e7578ed9e3c518a452acee763bcez").is_none());
        assert!(Hex::parse(HashFunction::Sha256, "939e7578ed9e3c518a452acee763bce9").is_none());
    }
}
