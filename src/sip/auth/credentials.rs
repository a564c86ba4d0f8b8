//! `Authorization` / `Proxy-Authorization` values (RFC 3261 §25.1 `credentials`, RFC 7616 §3.4).

use std::borrow::Cow;

use super::hash::Algorithm;
use super::{AuthError, MalformedReason};

/// Digest credentials from one `Authorization` or `Proxy-Authorization` header value.
///
/// The strings are the unquoted parameter values (quoted-pair escapes resolved), exactly as the
/// response hash covers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// `digest-uri`. Checking that it designates the Request-URI (RFC 3261 §22.4, RFC 7616
    /// §3.4.6) is the caller's job: this module does not see the request line.
    pub uri: String,
    pub response: String,
    /// `MD5` when the parameter is absent.
    pub algorithm: Algorithm,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// RFC 7616 §3.4.4: `username` is `H(username ":" realm)`.
    pub userhash: bool,
}

impl Credentials {
    /// Parses `Digest k=v, k="v", …`.
    ///
    /// The scheme is case-insensitive. The caller has already unfolded the header (LWS and line
    /// folding replaced by spaces). Values may be tokens or quoted strings with `\` escapes;
    /// spaces around `=` and `,` are allowed, as are empty list elements. Unknown parameters are
    /// ignored; a known one given twice, or a missing required one (`username`, `realm`,
    /// `nonce`, `uri`, `response`, and `nc`/`cnonce` when `qop` is present) is
    /// [`AuthError::Malformed`]. Another scheme is [`AuthError::UnsupportedScheme`], an unknown
    /// `algorithm` [`AuthError::UnsupportedAlgorithm`].
    pub fn parse(header_value: &str) -> Result<Credentials, AuthError> {
        let (scheme, params) = split_scheme(header_value)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        }

        let mut slots: [Option<Cow<'_, str>>; KEYS.len()] = Default::default();
        for param in Params::new(params) {
            let (name, value) = param?;
            let Some(i) = KEYS.iter().position(|k| k.eq_ignore_ascii_case(name)) else {
                continue;
            };
            if let Some(slot) = slots.get_mut(i)
                && slot.replace(value).is_some()
            {
                let key = KEYS.get(i).copied().unwrap_or("?");
                return Err(AuthError::Malformed(MalformedReason::Duplicate(key)));
            }
        }
        let [
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            qop,
            nc,
            cnonce,
            opaque,
            userhash,
        ] = slots;

        let required = |v: Option<Cow<'_, str>>, key: &'static str| {
            v.map(Cow::into_owned)
                .ok_or(AuthError::Malformed(MalformedReason::Missing(key)))
        };
        let algorithm = match algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                algorithm: a.into_owned(),
            })?,
        };
        let userhash = match userhash.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(AuthError::Malformed(MalformedReason::BadUserhash)),
        };
        let qop = qop.map(Cow::into_owned);
        let (nc, cnonce) = if qop.is_some() {
            (Some(required(nc, "nc")?), Some(required(cnonce, "cnonce")?))
        } else {
            (nc.map(Cow::into_owned), cnonce.map(Cow::into_owned))
        };
        Ok(Credentials {
            username: required(username, "username")?,
            realm: required(realm, "realm")?,
            nonce: required(nonce, "nonce")?,
            uri: required(uri, "uri")?,
            response: required(response, "response")?,
            algorithm,
            qop,
            nc,
            cnonce,
            opaque: opaque.map(Cow::into_owned),
            userhash,
        })
    }
}

/// The parameters we read, in the order of the `slots` in [`Credentials::parse`].
const KEYS: [&str; 11] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "opaque",
    "userhash",
];

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\n'
}

/// RFC 3261 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits `scheme SP params` into the scheme and the rest.
pub(crate) fn split_scheme(value: &str) -> Result<(&str, &str), AuthError> {
    let value = value.trim_matches(|c: char| c.is_ascii() && is_ws(c as u8));
    let end = value
        .bytes()
        .position(|b| !is_token(b))
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(end);
    if scheme.is_empty() || rest.bytes().next().is_some_and(|b| !is_ws(b)) {
        return Err(AuthError::Malformed(MalformedReason::Syntax { at: end }));
    }
    Ok((scheme, rest))
}

/// The `auth-param`s of a challenge or credentials: `name = (token / quoted-string)`, comma
/// separated. Yields the name and the unquoted value; stops after the first error.
pub(crate) struct Params<'a> {
    s: &'a str,
    pos: usize,
    failed: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new(s: &'a str) -> Params<'a> {
        Params {
            s,
            pos: 0,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn syntax(&mut self) -> AuthError {
        self.failed = true;
        AuthError::Malformed(MalformedReason::Syntax { at: self.pos })
    }

    fn next_param(&mut self) -> Option<Result<(&'a str, Cow<'a, str>), AuthError>> {
        // Skip white space and empty list elements.
        while self.peek().is_some_and(|b| is_ws(b) || b == b',') {
            self.pos += 1;
        }
        self.peek()?;
        let bytes = self.s.as_bytes();
        let start = self.pos;
        while self.peek().is_some_and(is_token) {
            self.pos += 1;
        }
        if self.pos == start {
            return Some(Err(self.syntax()));
        }
        let name = self.s.get(start..self.pos)?;
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Some(Err(self.syntax()));
        }
        self.pos += 1;
        self.skip_ws();
        let value = if self.peek() == Some(b'"') {
            self.pos += 1;
            let start = self.pos;
            let mut escaped = false;
            loop {
                match bytes.get(self.pos) {
                    None => {
                        self.failed = true;
                        return Some(Err(AuthError::Malformed(
                            MalformedReason::UnterminatedQuote,
                        )));
                    }
                    Some(b'"') => break,
                    Some(b'\\') => {
                        escaped = true;
                        self.pos += 2;
                    }
                    Some(_) => self.pos += 1,
                }
            }
            // `pos` is on the closing quote (an ASCII byte), so both ends are char boundaries.
            let raw = self.s.get(start..self.pos)?;
            self.pos += 1;
            if escaped {
                let mut out = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    });
                }
                Cow::Owned(out)
            } else {
                Cow::Borrowed(raw)
            }
        } else {
            // Lenient: a token, or anything up to the next separator (some clients send an
            // unquoted `uri=sip:…`).
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| !is_ws(b) && b != b',' && b != b'"')
            {
                self.pos += 1;
            }
            if self.pos == start {
                return Some(Err(self.syntax()));
            }
            Cow::Borrowed(self.s.get(start..self.pos)?)
        };
        self.skip_ws();
        match self.peek() {
            None | Some(b',') => Some(Ok((name, value))),
            Some(_) => Some(Err(self.syntax())),
        }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, Cow<'a, str>), AuthError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_param();
        if item.is_none() {
            self.failed = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617: &str = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    #[test]
    fn parses_rfc2617_example() {
        let c = Credentials::parse(RFC2617).expect("parse");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert!(!c.userhash);
    }

    #[test]
    fn scheme_is_case_insensitive_and_spacing_is_free() {
        let c = Credentials::parse(
            "  dIgEsT   username = \"1001\" ,realm=pbx.local,, nonce =\"n\",\turi= \"sip:pbx.local\" ,\
             response=\"abc\" , algorithm = sha-256 , qop=\"auth\", nc = 0000000a ,cnonce=x  ",
        )
        .expect("parse");
        assert_eq!(c.username, "1001");
        assert_eq!(c.realm, "pbx.local");
        assert_eq!(c.nonce, "n");
        assert_eq!(c.uri, "sip:pbx.local");
        assert_eq!(c.response, "abc");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("0000000a"));
        assert_eq!(c.cnonce.as_deref(), Some("x"));
    }

    #[test]
    fn unquoted_uri_and_parameter_names_case_insensitive() {
        let c = Credentials::parse(
            "Digest USERNAME=bob, Realm=r, Nonce=n, URI=sip:bob@example.com;transport=udp, \
             Response=0123, Algorithm=MD5-sess, QOP=auth, NC=00000001, CNonce=c",
        )
        .expect("parse");
        assert_eq!(c.username, "bob");
        assert_eq!(c.uri, "sip:bob@example.com;transport=udp");
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
    }

    #[test]
    fn escaped_quotes_and_commas_inside_quotes() {
        let c = Credentials::parse(
            r#"Digest username="a \"quoted\" name, with comma", realm="x\\y", nonce="n", uri="u", response="r""#,
        )
        .expect("parse");
        assert_eq!(c.username, r#"a "quoted" name, with comma"#);
        assert_eq!(c.realm, r"x\y");
        assert_eq!(c.qop, None);
        assert_eq!(c.nc, None);
    }

    #[test]
    fn utf8_in_quoted_values() {
        let c = Credentials::parse(
            "Digest username=\"J\u{e4}s\u{f8}n Doe\", realm=\"r\", nonce=\"n\", uri=\"u\", \
             response=\"r\", userhash=TRUE",
        )
        .expect("parse");
        assert_eq!(c.username, "J\u{e4}s\u{f8}n Doe");
        assert!(c.userhash);
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let c = Credentials::parse(
            "Digest username=\"u\", foo=bar, realm=\"r\", nonce=\"n\", x-weird=\"a,b\", \
             uri=\"u\", response=\"r\", auts=\"zz\"",
        )
        .expect("parse");
        assert_eq!(c.username, "u");
    }

    #[test]
    fn missing_required_parameters() {
        let full = [
            ("username", "username=\"u\""),
            ("realm", "realm=\"r\""),
            ("nonce", "nonce=\"n\""),
            ("uri", "uri=\"u\""),
            ("response", "response=\"r\""),
        ];
        for (missing, _) in full {
            let v = format!(
                "Digest {}",
                full.iter()
                    .filter(|(k, _)| *k != missing)
                    .map(|(_, p)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            assert_eq!(
                Credentials::parse(&v),
                Err(AuthError::Malformed(MalformedReason::Missing(missing))),
                "{v}"
            );
        }
        let base = "Digest username=u, realm=r, nonce=n, uri=u, response=r, qop=auth";
        assert_eq!(
            Credentials::parse(&format!("{base}, cnonce=c")),
            Err(AuthError::Malformed(MalformedReason::Missing("nc")))
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, nc=00000001")),
            Err(AuthError::Malformed(MalformedReason::Missing("cnonce")))
        );
        assert_eq!(
            Credentials::parse("Digest"),
            Err(AuthError::Malformed(MalformedReason::Missing("username")))
        );
    }

    #[test]
    fn duplicate_parameter_is_malformed() {
        assert_eq!(
            Credentials::parse(
                "Digest username=u, realm=r, nonce=n, uri=u, response=r, username=v"
            ),
            Err(AuthError::Malformed(MalformedReason::Duplicate("username")))
        );
    }

    #[test]
    fn regaut01_unknown_scheme() {
        // RFC 4475 §3.3.6 (regaut01): "Authorization: NoOneKnowsThisScheme opaque-data=here".
        assert_eq!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(AuthError::UnsupportedScheme {
                scheme: "NoOneKnowsThisScheme".into()
            })
        );
        assert!(matches!(
            Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(AuthError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            Credentials::parse("Digestive username=u"),
            Err(AuthError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn unknown_algorithm() {
        assert_eq!(
            Credentials::parse(
                "Digest username=u, realm=r, nonce=n, uri=u, response=r, algorithm=AKAv1-MD5"
            ),
            Err(AuthError::UnsupportedAlgorithm {
                algorithm: "AKAv1-MD5".into()
            })
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            "   ",
            "\"Digest\" username=u",
            "Digest=username",
            "Digest username",
            "Digest username=",
            "Digest username=\"unterminated",
            "Digest username=\"u\"x, realm=r",
            "Digest =u",
            "Digest user name=u",
            "Digest username=\"u\\",
            "Digest userhash=maybe, username=u, realm=r, nonce=n, uri=u, response=r",
        ] {
            assert!(
                matches!(Credentials::parse(bad), Err(AuthError::Malformed(_))),
                "{bad:?} -> {:?}",
                Credentials::parse(bad)
            );
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "Digest \u{0}=\u{0}",
            "Digest a=\"\\\u{e9}\"",
            "Digest a=\"\u{1F600}\\",
            "Digest a=\"\\\"",
            "Digest ,,,,,,",
            "Digest a=b,,,c=d",
            "\u{e9}\u{e9}",
            "Digest a=\u{e9}\u{e9}\u{e9}",
        ];
        for s in samples {
            let _ = Credentials::parse(s);
        }
        let long = format!("Digest {}", "a=\"b\\\",".repeat(10_000));
        let _ = Credentials::parse(&long);
        // Every prefix of a valid value.
        for end in 0..=RFC2617.len() {
            if let Some(p) = RFC2617.get(..end) {
                let _ = Credentials::parse(p);
            }
        }
    }
}
