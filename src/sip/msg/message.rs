//! Requests, responses, typed accessors and the canonical printer.

use bytes::Bytes;

use super::header::{HeaderName, Headers};
use super::parser::{ErrorKind, ParseError};
use super::syntax::{find_any2, parse_u32, parse_u32_saturating, push_num};
use super::types::Method;
use super::uri::Uri;
use super::values::{CSeq, Contact, NameAddr, Via, parse_contact};

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Headers {
    pub fn call_id(&self) -> Option<&str> {
        self.get(&HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq> {
        CSeq::parse(self.get(&HeaderName::CSeq)?).ok()
    }

    pub fn from(&self) -> Option<NameAddr> {
        NameAddr::parse(self.get(&HeaderName::From)?).ok()
    }

    pub fn to(&self) -> Option<NameAddr> {
        NameAddr::parse(self.get(&HeaderName::To)?).ok()
    }

    pub fn top_via(&self) -> Option<Via> {
        Via::parse(self.get(&HeaderName::Via)?).ok()
    }

    /// All Via values that parse (a parsed message has no others).
    pub fn vias(&self) -> Vec<Via> {
        self.get_all(&HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }

    /// All Contact values; an error if any is malformed.
    pub fn contacts(&self) -> Result<Vec<Contact>, ParseError> {
        self.get_all(&HeaderName::Contact)
            .map(|v| {
                parse_contact(v).map_err(|reason| {
                    ParseError::Syntax(ErrorKind::InvalidHeader {
                        header: "Contact",
                        reason,
                    })
                })
            })
            .collect()
    }

    /// The Expires header (delta-seconds; values above 2^32-1 saturate).
    pub fn expires(&self) -> Option<u32> {
        parse_u32_saturating(self.get(&HeaderName::Expires)?.trim())
    }

    pub fn max_forwards(&self) -> Option<u32> {
        parse_u32(self.get(&HeaderName::MaxForwards)?.trim())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get(&HeaderName::ContentType)
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.get(&HeaderName::UserAgent)
    }
}

macro_rules! delegate_accessors {
    ($t:ty, $self:ident => $h:expr) => {
        impl $t {
            pub fn call_id(&$self) -> Option<&str> { $h.call_id() }
            pub fn cseq(&$self) -> Option<CSeq> { $h.cseq() }
            pub fn from(&$self) -> Option<NameAddr> { $h.from() }
            pub fn to(&$self) -> Option<NameAddr> { $h.to() }
            pub fn top_via(&$self) -> Option<Via> { $h.top_via() }
            pub fn vias(&$self) -> Vec<Via> { $h.vias() }
            pub fn contacts(&$self) -> Result<Vec<Contact>, ParseError> { $h.contacts() }
            pub fn expires(&$self) -> Option<u32> { $h.expires() }
            pub fn max_forwards(&$self) -> Option<u32> { $h.max_forwards() }
            pub fn content_type(&$self) -> Option<&str> { $h.content_type() }
            pub fn user_agent(&$self) -> Option<&str> { $h.user_agent() }
        }
    };
}

delegate_accessors!(Request, self => self.headers);
delegate_accessors!(Response, self => self.headers);
delegate_accessors!(Message, self => self.headers());

/// Appends header lines; consecutive values of a list header share one line.
fn write_headers(out: &mut Vec<u8>, headers: &Headers, body_len: usize) {
    let mut prev: Option<&HeaderName> = None;
    let mut prev_balanced = true;
    for (name, value) in headers.iter() {
        if *name == HeaderName::ContentLength {
            continue;
        }
        if prev == Some(name) && name.is_list() && prev_balanced {
            out.extend_from_slice(b", ");
        } else {
            if prev.is_some() {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
        }
        push_sanitised(out, value);
        prev = Some(name);
        prev_balanced = is_balanced(value);
    }
    if prev.is_some() {
        out.extend_from_slice(b"\r\n");
    }
    let mut cl = String::with_capacity(8);
    push_num(&mut cl, body_len as u64);
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(cl.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A value after which a ", " separator would be seen as top-level again (quotes and <> closed).
fn is_balanced(v: &str) -> bool {
    if find_any2(v.as_bytes(), 0, b'"', b'<').is_none() {
        return true;
    }
    let mut q = false;
    let mut a = false;
    let mut esc = false;
    for b in v.bytes() {
        if esc {
            esc = false;
            continue;
        }
        match b {
            b'\\' if q => esc = true,
            b'"' => q = !q,
            b'<' if !q => a = true,
            b'>' if !q => a = false,
            _ => {}
        }
    }
    !q && !a
}

/// Header values never carry CR/LF (the parser unfolds); programmatic values are sanitised
/// so they cannot inject header lines.
fn push_sanitised(out: &mut Vec<u8>, v: &str) {
    if find_any2(v.as_bytes(), 0, b'\r', b'\n').is_some() {
        out.extend(
            v.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

fn estimate(headers: &Headers, body: usize) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + body
        + 96
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// Canonical wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(estimate(&self.headers, self.body.len()));
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        let mut u = String::with_capacity(64);
        self.uri.write_to(&mut u);
        push_sanitised(&mut out, &u);
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers(&mut out, &self.headers, self.body.len());
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// Builds a response per RFC 3261 §8.2.6: copies all Via values, From, To, Call-ID, CSeq
    /// and Timestamp. An empty `reason` uses [`Response::default_reason`]. Adding a To tag is
    /// the caller's job ([`Response::set_to_tag`]).
    pub fn make_response(&self, status: u16, reason: &str) -> Response {
        let mut headers = Headers::with_capacity(10);
        for (n, v) in self.headers.iter() {
            if matches!(
                n,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
                    | HeaderName::Timestamp
            ) {
                headers.push(n.clone(), v);
            }
        }
        Response {
            status,
            reason: if reason.is_empty() {
                Response::default_reason(status).to_owned()
            } else {
                reason.to_owned()
            },
            headers,
            body: Bytes::new(),
        }
    }
}

impl Response {
    pub fn new(status: u16, reason: &str) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            headers: Headers::with_capacity(10),
            body: Bytes::new(),
        }
    }

    /// Canonical wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(estimate(&self.headers, self.body.len()));
        out.extend_from_slice(b"SIP/2.0 ");
        let mut code = String::with_capacity(3);
        push_num(&mut code, u64::from(self.status));
        out.extend_from_slice(code.as_bytes());
        out.push(b' ');
        push_sanitised(&mut out, &self.reason);
        out.extend_from_slice(b"\r\n");
        write_headers(&mut out, &self.headers, self.body.len());
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// Adds `;tag=<tag>` to the To header if it has no tag yet.
    pub fn set_to_tag(&mut self, tag: &str) {
        let Some(pos) = self.headers.iter().position(|(n, _)| *n == HeaderName::To) else {
            return;
        };
        let entry = &mut self.headers.entries_mut()[pos].1;
        match NameAddr::parse(entry) {
            Ok(mut na) => {
                if na.tag().is_none() {
                    na.set_param("tag", Some(tag.to_owned()));
                    let mut s = String::with_capacity(entry.len() + tag.len() + 8);
                    na.write_to(&mut s);
                    *entry = s;
                }
            }
            Err(_) => {
                if !entry.to_ascii_lowercase().contains(";tag=") {
                    entry.push_str(";tag=");
                    entry.push_str(tag);
                }
            }
        }
    }

    /// Standard reason phrases (RFC 3261 §21 and extensions).
    pub fn default_reason(status: u16) -> &'static str {
        specific_reason(status).unwrap_or(match status {
            100..=199 => "Provisional",
            200..=299 => "Success",
            300..=399 => "Redirection",
            400..=499 => "Client Error",
            500..=599 => "Server Error",
            _ => "Global Failure",
        })
    }
}

fn specific_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        430 => "Flow Failed",
        433 => "Anonymity Disallowed",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => return None,
    })
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request(_))
    }

    /// Canonical wire form: canonical header names, list values joined with ", ",
    /// Content-Length always written last and equal to the body length.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// The rsip 0.4 bridge: prints canonical text and lets rsip parse it.
    pub fn to_rsip(&self) -> Result<rsip::SipMessage, rsip::Error> {
        rsip::SipMessage::try_from(self.to_bytes())
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse_datagram;
    use super::*;

    const REG: &[u8] = b"REGISTER sip:pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKa\r\n\
Max-Forwards: 70\r\n\
To: \"Bob\" <sip:1001@pbx.local>\r\n\
From: Bob <sip:1001@pbx.local>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Timestamp: 54\r\n\
Contact: <sip:1001@192.0.2.10:5060>;expires=600, <sip:1001@192.0.2.11>;q=0.5\r\n\
Allow: INVITE, ACK\r\n\
Expires: 7200\r\n\
User-Agent: test/1.0\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn accessors_and_print() {
        let m = parse_datagram(REG).unwrap();
        assert_eq!(m.call_id(), Some("843817637684230@998sdasdh09"));
        assert_eq!(m.cseq(), Some(CSeq::new(1826, Method::Register)));
        assert_eq!(m.from().unwrap().tag(), Some("456248"));
        assert_eq!(m.to().unwrap().display.as_deref(), Some("Bob"));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.vias().len(), 2);
        let c = m.contacts().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].expires(), Some(600));
        assert_eq!(c[1].q(), Some(0.5));
        assert_eq!(m.expires(), Some(7200));
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.user_agent(), Some("test/1.0"));
        let printed = m.to_bytes();
        let text = std::str::from_utf8(&printed).unwrap();
        assert!(text.contains("\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKa\r\n"));
        assert!(text.contains("\r\nAllow: INVITE, ACK\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert_eq!(parse_datagram(&printed).unwrap(), m);
        assert!(m.to_rsip().is_ok());
    }

    #[test]
    fn make_response_and_tag() {
        let Message::Request(req) = parse_datagram(REG).unwrap() else {
            panic!("not a request")
        };
        let mut resp = req.make_response(200, "");
        assert_eq!(resp.reason, "OK");
        assert_eq!(resp.headers.count(&HeaderName::Via), 2);
        assert_eq!(resp.headers.get(&HeaderName::Timestamp), Some("54"));
        assert!(!resp.headers.contains(&HeaderName::Contact));
        resp.set_to_tag("abc");
        resp.set_to_tag("def");
        assert_eq!(resp.to().unwrap().tag(), Some("abc"));
        resp.body = Bytes::from_static(b"hello");
        let bytes = resp.to_bytes();
        assert!(bytes.starts_with(b"SIP/2.0 200 OK\r\n"));
        let back = parse_datagram(&bytes).unwrap();
        assert_eq!(back, Message::Response(resp));
        assert_eq!(Response::default_reason(423), "Interval Too Brief");
        assert_eq!(Response::default_reason(489), "Bad Event");
        assert_eq!(Response::default_reason(699), "Global Failure");
    }

    #[test]
    fn printer_sanitises_injected_lines() {
        let mut r = Request::new(Method::Options, Uri::sip(None, "h", None));
        r.headers.push(HeaderName::Subject, "a\r\nVia: evil");
        let b = r.to_bytes();
        assert!(!b.windows(9).any(|w| w == b"\r\nVia: ev"));
    }
}
