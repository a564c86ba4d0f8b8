//! DigestServer round trips: challenge → a test client answers → verify.

use super::credentials::{Params, split_scheme};
use super::*;
use std::cell::Cell;
use std::net::Ipv4Addr;

const SECRET: [u8; 32] = *b"0123456789abcdef0123456789abcdef";
const T0: u64 = 1_700_000_000_000;
const LIFE: Duration = Duration::from_secs(300);
const REALM: &str = "pbx.local";

fn server() -> DigestServer {
    DigestServer::new(REALM, SECRET, LIFE)
}

/// The parameters of one challenge value, as a client reads them.
#[derive(Debug, Default)]
struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Option<String>,
    qop: Option<String>,
    stale: bool,
}

fn read_challenge(value: &str) -> Challenge {
    let (scheme, rest) = split_scheme(value).expect("scheme");
    assert_eq!(scheme, "Digest");
    let mut c = Challenge::default();
    for p in Params::new(rest) {
        let (name, v) = p.expect("challenge param");
        let v = v.into_owned();
        match name {
            "realm" => c.realm = v,
            "nonce" => c.nonce = v,
            "opaque" => c.opaque = Some(v),
            "algorithm" => c.algorithm = Some(v),
            "qop" => c.qop = Some(v),
            "stale" => c.stale = v == "true",
            other => panic!("unexpected challenge parameter {other}"),
        }
    }
    c
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    push_quoted(&mut out, s);
    out.push('"');
    out
}

/// What a test client sends.
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nc: u32,
    /// `None`: answer in RFC 2069 form even if qop was offered.
    qop: Option<&'a str>,
    body: &'a [u8],
}

impl Default for Answer<'_> {
    fn default() -> Self {
        Answer {
            user: "1001",
            password: "secret",
            method: "REGISTER",
            uri: "sip:pbx.local",
            nc: 1,
            qop: Some("auth"),
            body: b"",
        }
    }
}

/// A client's `Authorization` value for `challenge`, computed with the public functions.
fn authorization(challenge: &str, a: &Answer<'_>) -> String {
    let ch = read_challenge(challenge);
    let alg = ch
        .algorithm
        .as_deref()
        .map_or(Algorithm::Md5, |s| Algorithm::parse(s).expect("alg"));
    let nc = format!("{:08x}", a.nc);
    let cnonce = format!("c{:x}", a.nc * 7919);
    let h1 = ha1(alg, a.user, &ch.realm, a.password);
    let bh = body_hash(alg, a.body);
    let resp = expected_response(
        alg,
        &h1,
        &ch.nonce,
        Some(&nc),
        Some(&cnonce),
        a.qop,
        a.method,
        a.uri,
        Some(&bh),
    );
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{resp}\", algorithm={alg}",
        quote(a.user),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(a.uri),
    );
    if let Some(q) = a.qop {
        v.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque={}", quote(o)));
    }
    v
}

fn creds(challenge: &str, a: &Answer<'_>) -> Credentials {
    Credentials::parse(&authorization(challenge, a)).expect("client credentials parse")
}

fn plain(user: &str) -> Option<Secret<'static>> {
    (user == "1001").then_some(Secret::Plain("secret"))
}

#[test]
fn default_challenges_md5_first() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    assert_eq!(ch.len(), 2);
    let (a, b) = (read_challenge(&ch[0]), read_challenge(&ch[1]));
    assert_eq!(a.algorithm.as_deref(), Some("MD5"));
    assert_eq!(b.algorithm.as_deref(), Some("SHA-256"));
    assert_eq!(a.realm, REALM);
    assert_eq!(a.nonce, b.nonce, "one nonce for all algorithms");
    assert_eq!(a.qop.as_deref(), Some("auth"));
    assert!(!a.stale);
    let opaque = a.opaque.expect("opaque");
    assert!(opaque.len() < 64, "sipp keeps 63 characters of opaque");
    assert!(
        ch[0].starts_with("Digest realm=\"pbx.local\", nonce=\""),
        "{}",
        ch[0]
    );
    assert!(
        ch[0].ends_with(&format!(
            "\", opaque=\"{opaque}\", algorithm=MD5, qop=\"auth\""
        )),
        "{}",
        ch[0]
    );
    // Fresh nonce per challenge.
    let again = read_challenge(&s.challenge(T0, false, None)[0]);
    assert_ne!(again.nonce, a.nonce);
}

#[test]
fn stale_flag_and_configured_order() {
    let mut s = server().with_algorithms(&[
        Algorithm::Sha256,
        Algorithm::Md5,
        Algorithm::Sha256,
        Algorithm::Sha512_256,
    ]);
    assert_eq!(
        s.algorithms(),
        [Algorithm::Sha256, Algorithm::Md5, Algorithm::Sha512_256]
    );
    let ch = s.challenge(T0, true, None);
    assert_eq!(ch.len(), 3);
    assert!(ch.iter().all(|c| c.ends_with(", stale=true")));
    assert!(ch.iter().all(|c| read_challenge(c).stale));
    assert_eq!(read_challenge(&ch[0]).algorithm.as_deref(), Some("SHA-256"));
    assert_eq!(
        read_challenge(&ch[2]).algorithm.as_deref(),
        Some("SHA-512-256")
    );
    // An empty list keeps the current one.
    let s = s.with_algorithms(&[]);
    assert_eq!(s.algorithms().len(), 3);
}

/// sipp 3.6 (the packaged one) reads each parameter as the first `name=` that follows a space
/// or a comma, over all challenge headers joined with ", ", and only does MD5. With the default
/// order every parameter it reads comes from the MD5 challenge.
#[test]
fn old_sipp_style_parameter_search_sees_md5() {
    fn sipp_param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
        let lower = header.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower.get(from..)?.find(name) {
            let at = from + i;
            let before = header.as_bytes().get(at.wrapping_sub(1)).copied();
            let after = header.as_bytes().get(at + name.len()).copied();
            if matches!(before, Some(b',' | b' ')) && after == Some(b'=') {
                let v = header.get(at + name.len() + 1..)?;
                return Some(match v.strip_prefix('"') {
                    Some(q) => &q[..q.find('"')?],
                    None => &v[..v.find([' ', ',', '"']).unwrap_or(v.len())],
                });
            }
            from = at + 1;
        }
        None
    }
    let mut s = server();
    for i in 0..200 {
        let ch = s.challenge(T0 + i, i % 2 == 0, None);
        let joined = ch.join(", ");
        let first = read_challenge(&ch[0]);
        assert_eq!(sipp_param(&joined, "algorithm"), Some("MD5"));
        assert_eq!(sipp_param(&joined, "realm"), Some(REALM));
        assert_eq!(sipp_param(&joined, "nonce"), Some(first.nonce.as_str()));
        assert_eq!(sipp_param(&joined, "opaque"), first.opaque.as_deref());
        assert_eq!(sipp_param(&joined, "qop"), Some("auth"));
    }
}

#[test]
fn round_trip_every_algorithm() {
    for alg in Algorithm::ALL {
        let mut s = server().with_algorithms(&[alg]);
        let ch = s.challenge(T0, false, None);
        assert_eq!(ch.len(), 1);
        let c = creds(&ch[0], &Answer::default());
        assert_eq!(c.algorithm, alg);
        assert_eq!(
            s.verify(T0 + 100, "REGISTER", &c, plain, None),
            Ok(Verified {
                username: "1001".into(),
                algorithm: alg
            }),
            "{alg}"
        );
    }
}

#[test]
fn wrong_password_is_bad_response() {
    let mut s = server();
    for ch in s.challenge(T0, false, None) {
        let c = creds(
            &ch,
            &Answer {
                password: "guess",
                ..Answer::default()
            },
        );
        let e = s
            .verify(T0, "REGISTER", &c, plain, None)
            .expect_err("wrong password");
        assert_eq!(
            e,
            AuthError::BadResponse {
                username: "1001".into()
            }
        );
        assert_eq!(e.status(), 403);
        assert!(!e.wants_challenge());
    }
}

#[test]
fn method_and_uri_are_covered() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    assert!(matches!(
        s.verify(T0, "INVITE", &c, plain, None),
        Err(AuthError::BadResponse { .. })
    ));
    let mut c2 = c.clone();
    c2.uri = "sip:other.local".into();
    assert!(matches!(
        s.verify(T0, "REGISTER", &c2, plain, None),
        Err(AuthError::BadResponse { .. })
    ));
    // A failed attempt did not burn nc=1.
    assert!(s.verify(T0, "REGISTER", &c, plain, None).is_ok());
}

#[test]
fn unknown_user_looks_like_bad_password() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let c = creds(
        &ch[0],
        &Answer {
            user: "9999",
            ..Answer::default()
        },
    );
    let called = Cell::new(false);
    let e = s
        .verify(
            T0,
            "REGISTER",
            &c,
            |u| {
                called.set(true);
                assert_eq!(u, "9999");
                None
            },
            None,
        )
        .expect_err("unknown");
    assert!(called.get());
    assert_eq!(
        e,
        AuthError::UnknownUser {
            username: "9999".into()
        }
    );
    assert_eq!(e.status(), 403);
    assert!(!e.wants_challenge());
}

#[test]
fn stale_nonce() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let later = T0 + 300_001;
    let c = creds(&ch[0], &Answer::default());
    let e = s
        .verify(later, "REGISTER", &c, plain, None)
        .expect_err("stale");
    assert_eq!(e, AuthError::Stale);
    assert_eq!(e.status(), 401);
    assert!(e.wants_challenge());
    assert!(e.stale());
    // stale=true is only for a correct response (RFC 7616 §3.3).
    let bad = creds(
        &ch[0],
        &Answer {
            password: "nope",
            ..Answer::default()
        },
    );
    assert!(matches!(
        s.verify(later, "REGISTER", &bad, plain, None),
        Err(AuthError::BadResponse { .. })
    ));
    // The client retries on a stale challenge and succeeds.
    let ch = s.challenge(later, e.stale(), None);
    assert!(read_challenge(&ch[0]).stale);
    let c = creds(&ch[0], &Answer::default());
    assert!(s.verify(later + 10, "REGISTER", &c, plain, None).is_ok());
}

#[test]
fn foreign_nonce_is_invalid_without_lookup() {
    let mut ours = server();
    let mut theirs = DigestServer::new(REALM, [9; 32], LIFE);
    let ch = theirs.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    let e = ours
        .verify(
            T0,
            "REGISTER",
            &c,
            |_| panic!("no lookup for a nonce that is not ours"),
            None,
        )
        .expect_err("invalid");
    assert_eq!(e, AuthError::InvalidNonce);
    assert!(e.wants_challenge());
    assert!(!e.stale());
    // And a made-up one.
    let mut c2 = c.clone();
    c2.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093".into();
    assert_eq!(
        ours.verify(T0, "REGISTER", &c2, plain, None),
        Err(AuthError::InvalidNonce)
    );
}

#[test]
fn replayed_nc_is_refused_and_increasing_nc_accepted() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let c1 = creds(&ch[0], &Answer::default());
    assert!(s.verify(T0, "REGISTER", &c1, plain, None).is_ok());
    let e = s
        .verify(T0 + 1, "REGISTER", &c1, plain, None)
        .expect_err("replay");
    assert_eq!(e, AuthError::Replay { nc: 1 });
    assert_eq!(e.status(), 401);
    assert!(e.stale());
    // The next request with the same nonce and nc=2 (a re-REGISTER) is fine.
    let c2 = creds(
        &ch[0],
        &Answer {
            nc: 2,
            ..Answer::default()
        },
    );
    assert!(s.verify(T0 + 60_000, "REGISTER", &c2, plain, None).is_ok());
    assert!(s.verify(T0 + 60_001, "REGISTER", &c1, plain, None).is_err());
    // The same nonce through the SHA-256 challenge shares the counter.
    let c3 = creds(
        &ch[1],
        &Answer {
            nc: 2,
            ..Answer::default()
        },
    );
    assert_eq!(
        s.verify(T0 + 60_002, "REGISTER", &c3, plain, None),
        Err(AuthError::Replay { nc: 2 })
    );
}

#[test]
fn replay_capacity_is_configurable() {
    let mut s = server().with_replay_capacity(2);
    let chs: Vec<_> = (0..3).map(|i| s.challenge(T0 + i, false, None)).collect();
    for (i, ch) in chs.iter().enumerate() {
        let c = creds(&ch[0], &Answer::default());
        assert!(
            s.verify(T0 + 10 + i as u64, "REGISTER", &c, plain, None)
                .is_ok()
        );
    }
    // The first nonce was evicted; its nc=2 is refused (the phone gets a fresh nonce), never
    // its nc=1 replay accepted.
    for nc in [1, 2] {
        let c = creds(
            &chs[0][0],
            &Answer {
                nc,
                ..Answer::default()
            },
        );
        assert!(matches!(
            s.verify(T0 + 20, "REGISTER", &c, plain, None),
            Err(AuthError::Replay { .. })
        ));
    }
}

#[test]
fn realm_mismatch() {
    let mut s = server();
    let mut other = DigestServer::new("elsewhere", SECRET, LIFE);
    let ch = other.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    let e = s
        .verify(T0, "REGISTER", &c, plain, None)
        .expect_err("realm");
    assert_eq!(
        e,
        AuthError::RealmMismatch {
            realm: "elsewhere".into()
        }
    );
    assert!(e.wants_challenge());
}

#[test]
fn algorithm_not_offered() {
    let mut s = server(); // MD5, SHA-256
    let mut wide = server().with_algorithms(&[Algorithm::Md5Sess]);
    let ch = wide.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    let e = s.verify(T0, "REGISTER", &c, plain, None).expect_err("alg");
    assert_eq!(
        e,
        AuthError::UnsupportedAlgorithm {
            algorithm: "MD5-sess".into()
        }
    );
    assert!(e.wants_challenge());
}

#[test]
fn rfc2069_response_without_qop() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let a = Answer {
        qop: None,
        ..Answer::default()
    };
    let c = creds(&ch[0], &a);
    assert_eq!(c.qop, None);
    // No nc: the nonce may be reused until it expires.
    for t in [T0, T0 + 1, T0 + 300_000] {
        assert!(s.verify(t, "REGISTER", &c, plain, None).is_ok());
    }
    assert_eq!(
        s.verify(T0 + 300_001, "REGISTER", &c, plain, None),
        Err(AuthError::Stale)
    );
    let mut strict = server().with_allow_no_qop(false);
    let ch = strict.challenge(T0, false, None);
    let c = creds(&ch[0], &a);
    let e = strict
        .verify(T0, "REGISTER", &c, plain, None)
        .expect_err("qop required");
    assert_eq!(e, AuthError::UnsupportedQop { qop: None });
    assert!(e.wants_challenge());
    // -sess needs a cnonce, hence a qop.
    let mut sess = server().with_algorithms(&[Algorithm::Md5Sess]);
    let ch = sess.challenge(T0, false, None);
    let c = creds(&ch[0], &a);
    assert_eq!(
        sess.verify(T0, "REGISTER", &c, plain, None),
        Err(AuthError::Malformed(MalformedReason::Missing("qop")))
    );
}

#[test]
fn precomputed_ha1_secrets() {
    let md5 = ha1(Algorithm::Md5, "1001", REALM, "secret");
    let sha = ha1(Algorithm::Sha256, "1001", REALM, "secret").to_ascii_uppercase();
    let mut s = server().with_algorithms(&[
        Algorithm::Md5,
        Algorithm::Sha256,
        Algorithm::Md5Sess,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
    ]);
    let ch = s.challenge(T0, false, None);
    let both = |_: &str| {
        Some(Secret::Ha1 {
            md5: Some(md5.as_str()),
            sha256: Some(sha.as_str()),
        })
    };
    for (i, v) in ch.iter().enumerate().take(4) {
        let c = creds(
            v,
            &Answer {
                nc: i as u32 + 1,
                ..Answer::default()
            },
        );
        assert!(s.verify(T0, "REGISTER", &c, both, None).is_ok(), "{v}");
    }
    // SHA-512-256 needs the plaintext.
    let c = creds(&ch[4], &Answer::default());
    assert_eq!(
        s.verify(T0, "REGISTER", &c, both, None),
        Err(AuthError::SecretUnavailable {
            username: "1001".into(),
            algorithm: Algorithm::Sha512_256
        })
    );
    // Only an MD5 HA1 stored, client chose SHA-256.
    let c = creds(
        &ch[1],
        &Answer {
            nc: 9,
            ..Answer::default()
        },
    );
    let e = s
        .verify(
            T0,
            "REGISTER",
            &c,
            |_| {
                Some(Secret::Ha1 {
                    md5: Some(md5.as_str()),
                    sha256: None,
                })
            },
            None,
        )
        .expect_err("no sha256");
    assert_eq!(e.status(), 403);
    // A corrupt stored HA1.
    let e = s
        .verify(
            T0,
            "REGISTER",
            &c,
            |_| {
                Some(Secret::Ha1 {
                    md5: None,
                    sha256: Some("not hex"),
                })
            },
            None,
        )
        .expect_err("corrupt");
    assert!(matches!(e, AuthError::SecretUnavailable { .. }));
}

#[test]
fn upper_case_response_accepted() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let mut c = creds(&ch[0], &Answer::default());
    c.response = c.response.to_ascii_uppercase();
    assert!(s.verify(T0, "REGISTER", &c, plain, None).is_ok());
}

#[test]
fn truncated_or_empty_response_refused() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    for r in ["", "0", &c.response[..31], &format!("{}0", c.response)] {
        let mut bad = c.clone();
        bad.response = r.to_owned();
        assert!(
            matches!(
                s.verify(T0, "REGISTER", &bad, plain, None),
                Err(AuthError::BadResponse { .. })
            ),
            "{r:?}"
        );
    }
}

#[test]
fn auth_int_with_body() {
    let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
    let mut s = server().with_auth_int(true);
    let ch = s.challenge(T0, false, None);
    assert_eq!(read_challenge(&ch[0]).qop.as_deref(), Some("auth,auth-int"));
    let a = Answer {
        qop: Some("auth-int"),
        method: "INVITE",
        body,
        ..Answer::default()
    };
    let c = creds(&ch[0], &a);
    assert!(
        s.verify_with_body(T0, "INVITE", &c, Some(body), plain, None)
            .is_ok()
    );
    let c2 = creds(&ch[0], &Answer { nc: 2, ..a });
    assert!(matches!(
        s.verify_with_body(T0, "INVITE", &c2, Some(b"v=1\r\n"), plain, None),
        Err(AuthError::BadResponse { .. })
    ));
    // Without the body, auth-int cannot be checked.
    assert_eq!(
        s.verify(T0, "INVITE", &c2, plain, None),
        Err(AuthError::UnsupportedQop {
            qop: Some("auth-int".into())
        })
    );
    // Not offered by default.
    let mut plain_server = server();
    let ch = plain_server.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer { nc: 3, ..a });
    assert!(matches!(
        plain_server.verify_with_body(T0, "INVITE", &c, Some(body), plain, None),
        Err(AuthError::UnsupportedQop { .. })
    ));
}

#[test]
fn unknown_qop_and_bad_nc() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let c = creds(&ch[0], &Answer::default());
    let mut q = c.clone();
    q.qop = Some("auth-conf".into());
    assert!(matches!(
        s.verify(T0, "REGISTER", &q, plain, None),
        Err(AuthError::UnsupportedQop { .. })
    ));
    for nc in ["", "0", "00000000", "000000001", "+0000001", "xyz", "-1"] {
        let mut n = c.clone();
        n.nc = Some(nc.into());
        let e = s
            .verify(T0, "REGISTER", &n, plain, None)
            .expect_err("bad nc");
        assert_eq!(
            e,
            AuthError::Malformed(MalformedReason::BadNonceCount),
            "{nc:?}"
        );
        assert_eq!(e.status(), 400);
        assert!(!e.wants_challenge());
    }
    // Short nc accepted (same numeric value as the hashed string's).
    let c5 = creds(
        &ch[0],
        &Answer {
            nc: 5,
            ..Answer::default()
        },
    );
    let mut short = c5.clone();
    short.nc = Some("5".into());
    // The response covers the nc string as sent, so this one no longer matches…
    assert!(matches!(
        s.verify(T0, "REGISTER", &short, plain, None),
        Err(AuthError::BadResponse { .. })
    ));
    // …and the real one still does.
    assert!(s.verify(T0, "REGISTER", &c5, plain, None).is_ok());
}

#[test]
fn userhash_not_offered() {
    let mut s = server();
    let ch = s.challenge(T0, false, None);
    let mut c = creds(&ch[0], &Answer::default());
    c.userhash = true;
    assert_eq!(
        s.verify(T0, "REGISTER", &c, plain, None),
        Err(AuthError::Malformed(MalformedReason::UserhashNotOffered))
    );
}

#[test]
fn client_ip_binding_through_server() {
    let ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    let other = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8)));
    let mut s = server().with_client_ip_binding(true);
    let ch = s.challenge(T0, false, ip);
    let c = creds(&ch[0], &Answer::default());
    assert_eq!(
        s.verify(T0, "REGISTER", &c, plain, other),
        Err(AuthError::InvalidNonce)
    );
    assert!(s.verify(T0, "REGISTER", &c, plain, ip).is_ok());
    // Default: NAT rebinding does not matter.
    let mut s = server();
    let ch = s.challenge(T0, false, ip);
    let c = creds(&ch[0], &Answer::default());
    assert!(s.verify(T0, "REGISTER", &c, plain, other).is_ok());
}

#[test]
fn quoted_realm_round_trip() {
    let realm = r#"Acme "HQ" \ office"#;
    let mut s = DigestServer::new(realm, SECRET, LIFE);
    let ch = s.challenge(T0, false, None);
    assert!(ch[0].starts_with(r#"Digest realm="Acme \"HQ\" \\ office", "#));
    let c = creds(&ch[0], &Answer::default());
    assert_eq!(c.realm, realm);
    assert!(s.verify(T0, "REGISTER", &c, plain, None).is_ok());
}

#[test]
fn parsed_scheme_errors_map_to_statuses() {
    let e = Credentials::parse("NoOneKnowsThisScheme opaque-data=here").expect_err("regaut01");
    assert_eq!(e.status(), 401);
    assert!(e.wants_challenge());
    let e = Credentials::parse("Digest username=").expect_err("malformed");
    assert_eq!(e.status(), 400);
    assert!(!e.wants_challenge());
    let e =
        Credentials::parse("Digest algorithm=foo, username=u, realm=r, nonce=n, uri=u, response=r")
            .expect_err("alg");
    assert_eq!(e.status(), 401);
}

/// The whole verify path against the textbook formula, with the HA1/HA2 of the conformance
/// row `sip-pbx-md5-auth` and a nonce of ours.
#[test]
fn verify_matches_reference_formula() {
    let mut s = server();
    let ch = read_challenge(&s.challenge(T0, false, None)[0]);
    let h1 = "1734780395c4e94e6edddf208ea307f0"; // conformance row sip-pbx-md5-auth
    let h2 = "3dcde125052cee16a1af8f763e0ef463";
    let resp = {
        use md5::{Digest, Md5};
        let mut d = Md5::new();
        d.update(format!("{h1}:{}:00000001:0a4f113b:auth:{h2}", ch.nonce));
        hex::encode(d.finalize())
    };
    let c = Credentials::parse(&format!(
        "Digest username=\"1001\", realm=\"pbx.local\", nonce=\"{}\", uri=\"sip:pbx.local\", \
         response=\"{resp}\", qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
        ch.nonce
    ))
    .expect("parse");
    assert!(s.verify(T0, "REGISTER", &c, plain, None).is_ok());
}
