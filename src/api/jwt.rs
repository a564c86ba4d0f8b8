//! Minimal HS256 JSON Web Tokens (RFC 7519 / RFC 7515 compact serialisation).
//!
//! Only `{"alg":"HS256","typ":"JWT"}` is issued and only `alg: HS256` is accepted (no `none`,
//! no algorithm confusion). The signature is checked in constant time before the payload is
//! parsed, then `exp` is checked against the caller-supplied clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Base64url of `{"alg":"HS256","typ":"JWT"}`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The `user` claim (RayanPBX shape, with the Warden `username`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaim {
    pub id: u64,
    pub name: String,
    pub username: String,
}

/// The claims Dialtone issues: the union of what RayanPBX and Warden clients read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Unique token id (revocation key).
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub user: UserClaim,
    pub is_admin: bool,
    pub name: String,
}

/// Why a token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is not three base64url segments")]
    Malformed,
    #[error("unsupported token header or algorithm")]
    UnsupportedAlgorithm,
    #[error("bad token signature")]
    BadSignature,
    #[error("token claims are not valid JSON")]
    BadClaims,
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Serialises and signs `claims`.
pub fn encode(secret: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let mut m = mac(secret);
    m.update(token.as_bytes());
    let signature = m.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Verifies `token` (signature, algorithm, expiry at `now_unix`) and returns its claims.
pub fn decode(secret: &[u8], token: &str, now_unix: u64) -> Result<Claims, JwtError> {
    let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(JwtError::Malformed);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header).map_err(|_| JwtError::UnsupportedAlgorithm)?;
    if header.alg != "HS256" {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed)?;
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    m.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwtError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::BadClaims)?;
    if now_unix >= claims.exp {
        return Err(JwtError::Expired {
            exp: claims.exp,
            now: now_unix,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "admin".into(),
            jti: "abc".into(),
            iat: 1_000,
            exp,
            user: UserClaim {
                id: 1,
                name: "admin".into(),
                username: "admin".into(),
            },
            is_admin: true,
            name: "admin".into(),
        }
    }

    #[test]
    fn header_constant_matches() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    #[test]
    fn round_trip_and_expiry() {
        let t = encode(b"k", &claims(2_000));
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(decode(b"k", &t, 1_999).unwrap(), claims(2_000));
        assert_eq!(
            decode(b"k", &t, 2_000),
            Err(JwtError::Expired {
                exp: 2_000,
                now: 2_000
            })
        );
    }

    #[test]
    fn rfc7515_appendix_a1_signature_verifies() {
        // RFC 7515 A.1: the HS256 example JWS. Its claims are not Dialtone's, so a correct
        // implementation gets past the signature check and stops at the claims.
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let jws = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                   eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                   dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(decode(&key, jws, 0), Err(JwtError::BadClaims));
        let mut wrong = key.clone();
        wrong[0] ^= 1;
        assert_eq!(decode(&wrong, jws, 0), Err(JwtError::BadSignature));
    }

    #[test]
    fn rejects_tampering() {
        let t = encode(b"k", &claims(2_000));
        assert_eq!(decode(b"other", &t, 0), Err(JwtError::BadSignature));
        // Changed payload, old signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(9_999);
        c.sub = "root".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(decode(b"k", &forged, 0), Err(JwtError::BadSignature));
        // alg: none with an empty signature.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{}.{}.", none, parts[1]);
        assert_eq!(
            decode(b"k", &unsigned, 0),
            Err(JwtError::UnsupportedAlgorithm)
        );
        // Truncated signature.
        let short = &t[..t.len() - 4];
        assert!(decode(b"k", short, 0).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for t in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b",
            "%%.%%.%%",
            "eyJ.eyJ.",
            "é.é.é",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
        ] {
            assert!(decode(b"k", t, 0).is_err(), "{t}");
        }
    }

    #[test]
    fn signed_garbage_claims_rejected() {
        let payload = URL_SAFE_NO_PAD.encode(b"{\"sub\":1}");
        let input = format!("{HEADER_B64}.{payload}");
        let mut m = HmacSha256::new_from_slice(b"k").unwrap();
        m.update(input.as_bytes());
        let t = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        );
        assert_eq!(decode(b"k", &t, 0), Err(JwtError::BadClaims));
    }
}
