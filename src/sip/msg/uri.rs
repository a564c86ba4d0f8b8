//! SIP/SIPS URIs (RFC 3261 §19.1); other schemes are kept opaque.

use std::fmt;
use std::str::FromStr;

use super::parser::{ErrorKind, ParseError};
use super::syntax::{find_param, parse_u32, percent_decode, push_num, push_params, set_param};
use super::types::Scheme;

/// A SIP or SIPS URI, or any other URI kept opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part as written (still %-escaped).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host as written; IPv6 references keep their brackets. Empty for opaque URIs.
    pub host: String,
    pub port: Option<u16>,
    /// uri-parameters in order, as written.
    pub params: Vec<(String, Option<String>)>,
    /// `?h=v&...` headers, as written.
    pub headers: Vec<(String, String)>,
    /// For non-SIP schemes (including `tel:`): everything after `scheme:`.
    pub opaque: Option<String>,
}

fn is_uri_byte(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'<' | b'>' | b'"')
}

fn valid_host(h: &str) -> bool {
    let b = h.as_bytes();
    match b {
        [] => false,
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        }
        _ => b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_'),
    }
}

impl Uri {
    /// A `sip:` URI from parts.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            password: None,
            host: host.to_owned(),
            port,
            params: Vec::new(),
            headers: Vec::new(),
            opaque: None,
        }
    }

    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        parse_uri(s).map_err(|r| ParseError::Syntax(ErrorKind::InvalidUri(r)))
    }

    /// The user part with `%XX` escapes decoded once (NUL octets kept).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(percent_decode)
    }

    /// A uri-parameter by case-insensitive name (escaped names like `%6C%72` match `lr`).
    /// `Some(None)` = present without value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value);
    }

    pub fn remove_param(&mut self, name: &str) {
        self.params
            .retain(|(n, _)| !super::syntax::param_name_eq(n, name));
    }

    /// `host` or `host:port`.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }

    /// Case-insensitive host comparison.
    pub fn host_eq(&self, host: &str) -> bool {
        self.host.eq_ignore_ascii_case(host)
    }

    pub fn is_sip(&self) -> bool {
        self.scheme.is_sip()
    }

    /// The `transport` uri-parameter, if any.
    pub fn transport_param(&self) -> Option<&str> {
        self.param("transport").flatten()
    }

    /// Appends the canonical text form to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str(self.scheme.as_str());
        out.push(':');
        if let Some(o) = &self.opaque {
            out.push_str(o);
            return;
        }
        if let Some(u) = &self.user {
            out.push_str(u);
            if let Some(p) = &self.password {
                out.push(':');
                out.push_str(p);
            }
            out.push('@');
        }
        out.push_str(&self.host);
        if let Some(p) = self.port {
            out.push(':');
            push_num(out, u64::from(p));
        }
        push_params(out, &self.params);
        for (i, (n, v)) in self.headers.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(n);
            out.push('=');
            out.push_str(v);
        }
    }
}

/// A validated URI borrowing its text; `canonical` = the text equals the canonical print.
pub(crate) struct UriView<'a> {
    pub scheme: &'a str,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    /// "" or ";p1;p2=v" (validated).
    pub params: &'a str,
    /// Text after '?', validated.
    pub headers: Option<&'a str>,
    pub opaque: Option<&'a str>,
    pub canonical: bool,
}

impl UriView<'_> {
    pub fn to_uri(&self) -> Uri {
        let mut params = Vec::new();
        if let Some(p) = self.params.strip_prefix(';') {
            for p in p.split(';') {
                match p.find('=') {
                    Some(e) => params.push((p[..e].to_owned(), Some(p[e + 1..].to_owned()))),
                    None => params.push((p.to_owned(), None)),
                }
            }
        }
        let mut headers = Vec::new();
        if let Some(h) = self.headers {
            for hv in h.split('&') {
                if let Some((n, v)) = hv.split_once('=') {
                    headers.push((n.to_owned(), v.to_owned()));
                }
            }
        }
        Uri {
            scheme: Scheme::parse(self.scheme),
            user: self.user.map(str::to_owned),
            password: self.password.map(str::to_owned),
            host: self.host.to_owned(),
            port: self.port,
            params,
            headers,
            opaque: self.opaque.map(str::to_owned),
        }
    }
}

pub(crate) fn parse_uri(s: &str) -> Result<Uri, &'static str> {
    parse_uri_view(s).map(|v| v.to_uri())
}

pub(crate) fn parse_uri_view(s: &str) -> Result<UriView<'_>, &'static str> {
    let b = s.as_bytes();
    let colon = b
        .iter()
        .position(|&c| c == b':')
        .ok_or("URI without scheme")?;
    let scheme = &s[..colon];
    let sb = scheme.as_bytes();
    if sb.is_empty()
        || !sb[0].is_ascii_alphabetic()
        || !sb
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err("invalid URI scheme");
    }
    let rest = &s[colon + 1..];
    if rest.is_empty() {
        return Err("empty URI after scheme");
    }
    if !rest.bytes().all(is_uri_byte) {
        return Err("invalid character in URI");
    }
    let is_sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    let mut canonical = if is_sip || scheme.eq_ignore_ascii_case("tel") {
        sb.iter().all(u8::is_ascii_lowercase)
    } else {
        true
    };
    if !is_sip {
        return Ok(UriView {
            scheme,
            user: None,
            password: None,
            host: "",
            port: None,
            params: "",
            headers: None,
            opaque: Some(rest),
            canonical,
        });
    }
    let rb = rest.as_bytes();
    let (user, password, hostpart) = match rb.iter().position(|&c| c == b'@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (u, p) = match userinfo.as_bytes().iter().position(|&c| c == b':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            if u.is_empty() {
                return Err("empty user part");
            }
            (Some(u), p, &rest[at + 1..])
        }
        None => (None, None, rest),
    };
    let hb = hostpart.as_bytes();
    let host_end = if hb.first() == Some(&b'[') {
        hb.iter()
            .position(|&c| c == b']')
            .ok_or("unterminated IPv6 reference")?
            + 1
    } else {
        hb.iter()
            .position(|&c| matches!(c, b':' | b';' | b'?'))
            .unwrap_or(hb.len())
    };
    let host = &hostpart[..host_end];
    if !valid_host(host) {
        return Err("invalid host");
    }
    let mut i = host_end;
    let mut port = None;
    if hb.get(i) == Some(&b':') {
        let ps = i + 1;
        i = ps;
        while i < hb.len() && hb[i].is_ascii_digit() {
            i += 1;
        }
        if i == ps || i - ps > 5 {
            return Err("invalid port");
        }
        let p = parse_u32(&hostpart[ps..i]).ok_or("invalid port")?;
        port = Some(u16::try_from(p).map_err(|_| "port out of range")?);
        if hb[ps] == b'0' && i - ps > 1 {
            canonical = false;
        }
    }
    let tail = &hostpart[i..];
    let (params, headers) = match tail.as_bytes().iter().position(|&c| c == b'?') {
        Some(q) => (&tail[..q], Some(&tail[q + 1..])),
        None => (tail, None),
    };
    if !params.is_empty() {
        let Some(ptext) = params.strip_prefix(';') else {
            return Err("junk after host");
        };
        for p in ptext.split(';') {
            if p.is_empty() || p.starts_with('=') {
                return Err("empty uri-parameter");
            }
        }
    }
    if let Some(h) = headers {
        for hv in h.split('&') {
            match hv.find('=') {
                Some(e) if e > 0 => {}
                _ => return Err("invalid URI header"),
            }
        }
    }
    Ok(UriView {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
        opaque: None,
        canonical,
    })
}

impl FromStr for Uri {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u = Uri::parse("sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x&h=%20")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers.len(), 2);
        assert_eq!(u.host_port(), "[2001:db8::1]:5061");
        assert_eq!(
            u.to_string(),
            "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x&h=%20"
        );
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn escaped_user_and_params() {
        let u =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(u.user_unescaped().unwrap(), b"caller");
        assert_eq!(u.param("lr"), Some(None));
        let v = u.param("name").unwrap().unwrap();
        assert_eq!(percent_decode(v), b"value%41");
        let n = Uri::parse("sip:%00%00@h").unwrap();
        assert_eq!(n.user_unescaped().unwrap(), b"\0\0");
    }

    #[test]
    fn opaque_and_rejects() {
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme, Scheme::Other("nobodyKnowsThisScheme".into()));
        assert_eq!(u.opaque.as_deref(), Some("totallyopaquecontent"));
        assert_eq!(u.to_string(), "nobodyKnowsThisScheme:totallyopaquecontent");
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        for bad in [
            "sip:",
            " sip:a@b",
            "sip:a@b ",
            "sip:@host",
            "sip:a@",
            "sip:a@b:99999",
            "sip:a@b:x",
            "sip:a@b;;x",
            "sip:a@b;=x",
            "sip:a@[::1",
            "sip:a@b<c",
            "1sip:x",
            "nocolon",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Uri::sip(Some("u"), "h", Some(5060)).to_string(),
            "sip:u@h:5060"
        );
    }
}
