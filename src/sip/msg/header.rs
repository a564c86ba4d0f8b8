//! Header names (full and compact forms) and the ordered header list.

use std::fmt;
use std::hash::{Hash, Hasher};

/// A header field name. Known names are recognised case-insensitively, including the compact
/// forms of RFC 3261 §7.3.3 and later RFCs; unknown names keep their original spelling and
/// compare case-insensitively.
#[derive(Debug, Clone)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    ContentLength,
    ContentType,
    ContentEncoding,
    Expires,
    MinExpires,
    Authorization,
    WwwAuthenticate,
    ProxyAuthorization,
    ProxyAuthenticate,
    AuthenticationInfo,
    Route,
    RecordRoute,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    UserAgent,
    Server,
    Accept,
    AcceptEncoding,
    AcceptLanguage,
    Event,
    AllowEvents,
    SubscriptionState,
    Subject,
    Date,
    Warning,
    RetryAfter,
    ReferTo,
    ReferredBy,
    Replaces,
    Path,
    Timestamp,
    Organization,
    Priority,
    SessionExpires,
    MinSe,
    Rseq,
    Rack,
    Privacy,
    PAssertedIdentity,
    PPreferredIdentity,
    Reason,
    SipEtag,
    SipIfMatch,
    Other(String),
}

/// (lower-case full name, variant) for every known header.
const KNOWN: &[(&str, HeaderName)] = &[
    ("via", HeaderName::Via),
    ("from", HeaderName::From),
    ("to", HeaderName::To),
    ("call-id", HeaderName::CallId),
    ("cseq", HeaderName::CSeq),
    ("contact", HeaderName::Contact),
    ("max-forwards", HeaderName::MaxForwards),
    ("content-length", HeaderName::ContentLength),
    ("content-type", HeaderName::ContentType),
    ("content-encoding", HeaderName::ContentEncoding),
    ("expires", HeaderName::Expires),
    ("min-expires", HeaderName::MinExpires),
    ("authorization", HeaderName::Authorization),
    ("www-authenticate", HeaderName::WwwAuthenticate),
    ("proxy-authorization", HeaderName::ProxyAuthorization),
    ("proxy-authenticate", HeaderName::ProxyAuthenticate),
    ("authentication-info", HeaderName::AuthenticationInfo),
    ("route", HeaderName::Route),
    ("record-route", HeaderName::RecordRoute),
    ("allow", HeaderName::Allow),
    ("supported", HeaderName::Supported),
    ("require", HeaderName::Require),
    ("proxy-require", HeaderName::ProxyRequire),
    ("unsupported", HeaderName::Unsupported),
    ("user-agent", HeaderName::UserAgent),
    ("server", HeaderName::Server),
    ("accept", HeaderName::Accept),
    ("accept-encoding", HeaderName::AcceptEncoding),
    ("accept-language", HeaderName::AcceptLanguage),
    ("event", HeaderName::Event),
    ("allow-events", HeaderName::AllowEvents),
    ("subscription-state", HeaderName::SubscriptionState),
    ("subject", HeaderName::Subject),
    ("date", HeaderName::Date),
    ("warning", HeaderName::Warning),
    ("retry-after", HeaderName::RetryAfter),
    ("refer-to", HeaderName::ReferTo),
    ("referred-by", HeaderName::ReferredBy),
    ("replaces", HeaderName::Replaces),
    ("path", HeaderName::Path),
    ("timestamp", HeaderName::Timestamp),
    ("organization", HeaderName::Organization),
    ("priority", HeaderName::Priority),
    ("session-expires", HeaderName::SessionExpires),
    ("min-se", HeaderName::MinSe),
    ("rseq", HeaderName::Rseq),
    ("rack", HeaderName::Rack),
    ("privacy", HeaderName::Privacy),
    ("p-asserted-identity", HeaderName::PAssertedIdentity),
    ("p-preferred-identity", HeaderName::PPreferredIdentity),
    ("reason", HeaderName::Reason),
    ("sip-etag", HeaderName::SipEtag),
    ("sip-if-match", HeaderName::SipIfMatch),
];

fn other_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(name).into_owned(),
    }
}

impl HeaderName {
    /// Parses a header name (case-insensitive, compact forms expanded).
    pub fn parse(name: impl AsRef<[u8]>) -> HeaderName {
        let name = name.as_ref();
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'l' => HeaderName::ContentLength,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'o' => HeaderName::Event,
                b'u' => HeaderName::AllowEvents,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'x' => HeaderName::SessionExpires,
                b'y' => HeaderName::Other("Identity".into()),
                b'n' => HeaderName::Other("Identity-Info".into()),
                b'j' => HeaderName::Other("Reject-Contact".into()),
                b'a' => HeaderName::Other("Accept-Contact".into()),
                b'd' => HeaderName::Other("Request-Disposition".into()),
                _ => HeaderName::Other(other_name(name)),
            };
        }
        if name.len() <= 20 {
            let mut buf = [0u8; 20];
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            for (n, h) in KNOWN {
                let nb = n.as_bytes();
                if nb.len() == lower.len() && nb[0] == lower[0] && nb == &*lower {
                    return h.clone();
                }
            }
        }
        HeaderName::Other(other_name(name))
    }

    /// The canonical full name (`Call-ID`, `CSeq`, `WWW-Authenticate`, ...); `Other` keeps its
    /// spelling.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::AuthenticationInfo => "Authentication-Info",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Allow => "Allow",
            HeaderName::Supported => "Supported",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Accept => "Accept",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::Event => "Event",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::Subject => "Subject",
            HeaderName::Date => "Date",
            HeaderName::Warning => "Warning",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::Replaces => "Replaces",
            HeaderName::Path => "Path",
            HeaderName::Timestamp => "Timestamp",
            HeaderName::Organization => "Organization",
            HeaderName::Priority => "Priority",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::Rseq => "RSeq",
            HeaderName::Rack => "RAck",
            HeaderName::Privacy => "Privacy",
            HeaderName::PAssertedIdentity => "P-Asserted-Identity",
            HeaderName::PPreferredIdentity => "P-Preferred-Identity",
            HeaderName::Reason => "Reason",
            HeaderName::SipEtag => "SIP-ETag",
            HeaderName::SipIfMatch => "SIP-If-Match",
            HeaderName::Other(s) => s,
        }
    }

    /// Headers whose value is a comma-separated list that may be split into one entry per
    /// element (RFC 3261 §7.3.1).
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AllowEvents
                | HeaderName::Path
                | HeaderName::ContentEncoding
                | HeaderName::Warning
                | HeaderName::PAssertedIdentity
                | HeaderName::PPreferredIdentity
                | HeaderName::Reason
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            HeaderName::Other(s) => {
                state.write_usize(usize::MAX);
                for b in s.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
            known => std::mem::discriminant(known).hash(state),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::parse(s)
    }
}

/// The header fields of a message: one entry per value (list headers are split on top-level
/// commas), in order. Content-Length is not kept here: the body length is authoritative and
/// the printer always writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(HeaderName, String)>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// First value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.entries.iter().filter(|(n, _)| n == name).count()
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// Appends a value.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.entries.push((name, value.into()));
    }

    /// Inserts a value before all others (e.g. a new top Via).
    pub fn insert_first(&mut self, name: HeaderName, value: impl Into<String>) {
        let pos = self
            .entries
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or(0);
        self.entries.insert(pos, (name, value.into()));
    }

    /// Replaces all values of `name` by one value (at the position of the first one, or at
    /// the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter().position(|(n, _)| *n == name) {
            Some(pos) => {
                self.entries[pos].1 = value;
                let mut i = 0;
                self.entries.retain(|(n, _)| {
                    let keep = i <= pos || *n != name;
                    i += 1;
                    keep
                });
            }
            None => self.entries.push((name, value)),
        }
    }

    /// Removes all values of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        before - self.entries.len()
    }

    /// Removes and returns the first value of `name` (e.g. popping the top Via or Route).
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let pos = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(pos).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.entries.iter().map(|(n, v)| (n, v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn entries_mut(&mut self) -> &mut Vec<(HeaderName, String)> {
        &mut self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::parse("y"), HeaderName::Other("identity".into()));
        assert_eq!(
            HeaderName::parse("www-authenticate").as_str(),
            "WWW-Authenticate"
        );
        assert_eq!(HeaderName::parse("call-id").as_str(), "Call-ID");
        assert_eq!(HeaderName::parse("C%6Fntact").as_str(), "C%6Fntact");
        assert_ne!(HeaderName::parse("C%6Fntact"), HeaderName::Contact);
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Authorization.is_list());
        assert!(!HeaderName::Date.is_list());
        for (n, h) in KNOWN {
            assert_eq!(&HeaderName::parse(h.as_str()), h);
            assert_eq!(h.as_str().to_ascii_lowercase(), *n);
        }
    }

    #[test]
    fn header_list_ops() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::To, "t");
        h.push(HeaderName::Via, "b");
        h.insert_first(HeaderName::Via, "z");
        assert_eq!(
            h.get_all(&HeaderName::Via).collect::<Vec<_>>(),
            ["z", "a", "b"]
        );
        assert_eq!(h.count(&HeaderName::Via), 3);
        h.set(HeaderName::Via, "only");
        assert_eq!(h.get_all(&HeaderName::Via).collect::<Vec<_>>(), ["only"]);
        assert_eq!(h.iter().next().unwrap().1, "only");
        h.push(HeaderName::Other("X-A".into()), "1");
        assert_eq!(h.get(&HeaderName::Other("x-a".into())), Some("1"));
        assert_eq!(h.remove(&HeaderName::Via), 1);
        assert_eq!(h.len(), 2);
        assert_eq!(h.remove_first(&HeaderName::To).as_deref(), Some("t"));
    }
}
