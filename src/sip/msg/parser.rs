//! The normalising parser front end: framing, start line, header lines, validation.

use bytes::Bytes;

use super::header::{HeaderName, Headers};
use super::message::{Message, Request, Response};
use super::syntax::{find_any2, is_token_char, is_wsp, parse_u32, split_list, trim_bytes};
use super::types::Method;
use super::uri::parse_uri;
use super::values::{parse_cseq_canonical, parse_name_addr_view, parse_via_view};

/// What is wrong with a message or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("malformed request line: {0}")]
    BadRequestLine(&'static str),
    #[error("malformed status line: {0}")]
    BadStatusLine(&'static str),
    #[error("SIP version {0:?} not supported")]
    VersionNotSupported(String),
    #[error("malformed header line {line}: {reason}")]
    BadHeaderLine { line: usize, reason: &'static str },
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("Content-Length {declared} but {available} octets of body")]
    BodyLength { declared: usize, available: usize },
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    #[error("Max-Forwards out of range")]
    MaxForwardsOutOfRange,
    #[error("Request-URI must not contain headers")]
    RequestUriHeaders,
    #[error("invalid method")]
    InvalidMethod,
    #[error("invalid URI: {0}")]
    InvalidUri(&'static str),
    #[error("invalid name-addr: {0}")]
    InvalidNameAddr(&'static str),
    #[error("invalid Via: {0}")]
    InvalidVia(&'static str),
    #[error("invalid CSeq: {0}")]
    InvalidCSeq(&'static str),
}

impl ErrorKind {
    /// The SIP status for a request failing with this error.
    pub fn status(&self) -> u16 {
        match self {
            ErrorKind::VersionNotSupported(_) => 505,
            _ => 400,
        }
    }
}

/// Raw values of the headers needed to answer a malformed request (RFC 3261 §8.2.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyContext {
    /// Request method from the request line, if it could be read.
    pub method: Option<Method>,
    pub vias: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<String>,
    pub timestamp: Option<String>,
}

/// A parse failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Only CRLF/whitespace (keep-alive); ignore.
    #[error("keep-alive")]
    KeepAlive,
    /// A malformed request: answer with [`ParseError::status`] if
    /// [`ParseError::error_response`] can build a response, else drop.
    #[error("bad request: {kind}")]
    BadRequest {
        kind: ErrorKind,
        context: Option<Box<ReplyContext>>,
    },
    /// A malformed response: drop silently.
    #[error("bad response: {kind}")]
    BadResponse { kind: ErrorKind },
    /// A malformed value given to a typed parser (`Uri::parse`, `Via::parse`, ...).
    #[error("{0}")]
    Syntax(ErrorKind),
}

impl ParseError {
    /// The SIP status to answer with; `None` = drop silently.
    pub fn status(&self) -> Option<u16> {
        match self {
            ParseError::BadRequest { kind, .. } => Some(kind.status()),
            ParseError::Syntax(k) => Some(k.status()),
            ParseError::KeepAlive | ParseError::BadResponse { .. } => None,
        }
    }

    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            ParseError::BadRequest { kind, .. }
            | ParseError::BadResponse { kind }
            | ParseError::Syntax(kind) => Some(kind),
            ParseError::KeepAlive => None,
        }
    }

    /// Human-readable reason.
    pub fn reason(&self) -> String {
        self.to_string()
    }

    pub fn reply_context(&self) -> Option<&ReplyContext> {
        match self {
            ParseError::BadRequest { context, .. } => context.as_deref(),
            _ => None,
        }
    }

    /// The complete error response (400/505 with a `Warning: 399 dialtone "..."`), when the
    /// request carried at least a Via. The caller adds a To tag
    /// ([`Response::set_to_tag`]) and sends it to the source address.
    pub fn error_response(&self) -> Option<Response> {
        let ParseError::BadRequest { kind, context } = self else {
            return None;
        };
        let ctx = context.as_deref()?;
        if ctx.vias.is_empty() {
            return None;
        }
        let status = kind.status();
        let mut resp = Response::new(status, Response::default_reason(status));
        for v in &ctx.vias {
            resp.headers.push(HeaderName::Via, v.as_str());
        }
        let singles = [
            (HeaderName::From, &ctx.from),
            (HeaderName::To, &ctx.to),
            (HeaderName::CallId, &ctx.call_id),
            (HeaderName::CSeq, &ctx.cseq),
            (HeaderName::Timestamp, &ctx.timestamp),
        ];
        for (n, v) in singles {
            if let Some(v) = v {
                resp.headers.push(n, v.as_str());
            }
        }
        let text: String = kind
            .to_string()
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        resp.headers
            .push(HeaderName::Warning, format!("399 dialtone \"{text}\""));
        Some(resp)
    }
}

/// Parses one message from a UDP datagram. Trailing octets after Content-Length are ignored;
/// without Content-Length the body is the rest of the datagram.
pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    parse_impl(buf, None, false)
}

/// Like [`parse_datagram`], but the body shares the given buffer (no copy).
pub fn parse_datagram_bytes(buf: &Bytes) -> Result<Message, ParseError> {
    parse_impl(buf, Some(buf), false)
}

/// Parses one message framed by [`super::StreamFramer`]: Content-Length is required and must
/// match the body exactly.
pub fn parse_stream_message(msg: Bytes) -> Result<Message, ParseError> {
    parse_impl(&msg, Some(&msg), true)
}

enum StartLine {
    Request(Method, super::uri::Uri),
    Response(u16, String),
}

/// Absolute index of the first CR or LF at or after `from`.
fn find_cr_or_lf(b: &[u8], from: usize) -> Option<usize> {
    find_any2(b, from, b'\r', b'\n')
}

/// Returns (end of line content, start of next line, line contains a bare CR).
/// Accepts CRLF and bare LF terminators.
fn next_line(b: &[u8], from: usize) -> (usize, usize, bool) {
    let mut bare = false;
    let mut i = from;
    loop {
        match find_cr_or_lf(b, i) {
            None => return (b.len(), b.len(), bare),
            Some(k) if b[k] == b'\n' => return (k, k + 1, bare),
            Some(k) => match b.get(k + 1) {
                Some(b'\n') => return (k, k + 2, bare),
                None => return (k, b.len(), bare),
                Some(_) => {
                    bare = true;
                    i = k + 1;
                }
            },
        }
    }
}

/// Content-Length seen so far.
#[derive(Default)]
struct ClState {
    value: Option<usize>,
    error: Option<ErrorKind>,
}

fn parse_impl(buf: &[u8], owner: Option<&Bytes>, stream: bool) -> Result<Message, ParseError> {
    let mut pos = 0;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    if buf[pos..]
        .iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Err(ParseError::KeepAlive);
    }
    let (first_end, mut next, bare_cr) = next_line(buf, pos);
    let first = &buf[pos..first_end];
    let is_response = first.starts_with(b"SIP/");
    let start = if is_response {
        parse_status_line(first)
    } else {
        parse_request_line(first)
    };

    // Header section.
    let mut headers = Headers::with_capacity(16);
    let mut cl = ClState::default();
    let mut header_err: Option<ErrorKind> = None;
    let mut body_start = buf.len();
    let mut line_no = 1usize;
    // current logical header: (start, end, folded)
    let mut cur: Option<(usize, usize, bool)> = None;
    while next < buf.len() {
        let ls = next;
        let (le, after, bare) = next_line(buf, ls);
        next = after;
        line_no += 1;
        if le == ls {
            body_start = after;
            break;
        }
        if bare {
            header_err.get_or_insert(ErrorKind::BadHeaderLine {
                line: line_no,
                reason: "bare CR",
            });
        }
        if is_wsp(buf[ls]) {
            match &mut cur {
                Some((_, end, folded)) => {
                    *end = le;
                    *folded = true;
                }
                None => {
                    header_err.get_or_insert(ErrorKind::BadHeaderLine {
                        line: line_no,
                        reason: "continuation line without a header",
                    });
                }
            }
            continue;
        }
        if let Some((s, e, folded)) = cur.take()
            && let Err(err) = add_header(&mut headers, &mut cl, &buf[s..e], folded, line_no - 1)
        {
            header_err.get_or_insert(err);
        }
        cur = Some((ls, le, false));
    }
    if let Some((s, e, folded)) = cur.take()
        && let Err(err) = add_header(&mut headers, &mut cl, &buf[s..e], folded, line_no)
    {
        header_err.get_or_insert(err);
    }

    let result = (|| {
        if bare_cr {
            return Err(if is_response {
                ErrorKind::BadStatusLine("bare CR")
            } else {
                ErrorKind::BadRequestLine("bare CR")
            });
        }
        let start = start?;
        if let Some(e) = header_err {
            return Err(e);
        }
        if let Some(e) = cl.error {
            return Err(e);
        }
        let body = frame_body(buf, owner, body_start, cl.value, stream)?;
        let mut msg = match start {
            StartLine::Request(method, uri) => Message::Request(Request {
                method,
                uri,
                headers,
                body,
            }),
            StartLine::Response(status, reason) => Message::Response(Response {
                status,
                reason,
                headers,
                body,
            }),
        };
        validate(&mut msg)?;
        Ok(msg)
    })();
    result.map_err(|kind| {
        if is_response {
            ParseError::BadResponse { kind }
        } else {
            ParseError::BadRequest {
                context: reply_context(buf, pos),
                kind,
            }
        }
    })
}

/// Returns (line without CR/LF, offset after the line terminator). Accepts CRLF and bare LF.
fn read_line(buf: &[u8], from: usize) -> (&[u8], usize) {
    let rest = &buf[from..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, from + nl + 1)
        }
        None => (rest.strip_suffix(b"\r").unwrap_or(rest), buf.len()),
    }
}

fn parse_request_line(line: &[u8]) -> Result<StartLine, ErrorKind> {
    let line = std::str::from_utf8(line).map_err(|_| ErrorKind::BadRequestLine("not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        if line.trim_end().len() != line.len() {
            return Err(ErrorKind::BadRequestLine("trailing whitespace"));
        }
        return Err(ErrorKind::BadRequestLine(
            "expected exactly: Method SP Request-URI SP SIP-Version",
        ));
    };
    if v != "SIP/2.0" {
        if v.len() > 4
            && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
            && !m.is_empty()
            && !u.is_empty()
        {
            return Err(ErrorKind::VersionNotSupported(v.to_owned()));
        }
        return Err(ErrorKind::BadRequestLine("invalid SIP-Version"));
    }
    let method = Method::parse(m).map_err(|_| ErrorKind::BadRequestLine("invalid method"))?;
    if u.starts_with('<') {
        return Err(ErrorKind::BadRequestLine("Request-URI enclosed in <>"));
    }
    let uri = parse_uri(u).map_err(ErrorKind::InvalidUri)?;
    if uri.scheme.is_sip() && !uri.headers.is_empty() {
        return Err(ErrorKind::RequestUriHeaders);
    }
    Ok(StartLine::Request(method, uri))
}

fn parse_status_line(line: &[u8]) -> Result<StartLine, ErrorKind> {
    let rest = line.strip_prefix(b"SIP/2.0").ok_or_else(|| {
        let v = line.split(|&b| b == b' ').next().unwrap_or(line);
        ErrorKind::VersionNotSupported(String::from_utf8_lossy(v).into_owned())
    })?;
    let rest = rest
        .strip_prefix(b" ")
        .ok_or(ErrorKind::BadStatusLine("expected SP after version"))?;
    let (code, reason) = match rest {
        [a, b, c] => ([*a, *b, *c], &[][..]),
        [a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => return Err(ErrorKind::BadStatusLine("status code is not 3 digits")),
    };
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::BadStatusLine("status code is not 3 digits"));
    }
    let status = u16::from(code[0] - b'0') * 100
        + u16::from(code[1] - b'0') * 10
        + u16::from(code[2] - b'0');
    if !(100..=699).contains(&status) {
        return Err(ErrorKind::BadStatusLine("status code out of range"));
    }
    Ok(StartLine::Response(status, str_of(reason).into_owned()))
}

fn to_string(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn str_of(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// Processes one logical header line (`folded`: with continuation lines, separated by line
/// terminators inside `region`).
fn add_header(
    headers: &mut Headers,
    cl: &mut ClState,
    region: &[u8],
    folded: bool,
    line_no: usize,
) -> Result<(), ErrorKind> {
    let colon = region
        .iter()
        .position(|&b| b == b':')
        .ok_or(ErrorKind::BadHeaderLine {
            line: line_no,
            reason: "no colon",
        })?;
    let name = trim_bytes(&region[..colon]);
    if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
        return Err(ErrorKind::BadHeaderLine {
            line: line_no,
            reason: "invalid header name",
        });
    }
    let name = HeaderName::parse(name);
    let raw = &region[colon + 1..];
    let unfolded: Vec<u8>;
    let value: &[u8] = if folded {
        // join physical lines with one SP (RFC 3261 §7.3.1 LWS)
        let mut v: Vec<u8> = Vec::with_capacity(raw.len());
        for part in raw.split(|&b| b == b'\n') {
            let part = trim_bytes(part.strip_suffix(b"\r").unwrap_or(part));
            if part.is_empty() {
                continue;
            }
            if !v.is_empty() {
                v.push(b' ');
            }
            v.extend_from_slice(part);
        }
        unfolded = v;
        &unfolded
    } else {
        trim_bytes(raw)
    };
    if name == HeaderName::ContentLength {
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(parse_u32)
            .map(|n| n as usize);
        match (n, cl.value) {
            (None, _) => {
                cl.error.get_or_insert(ErrorKind::BadContentLength);
            }
            (Some(n), Some(prev)) if n != prev => {
                cl.error.get_or_insert(ErrorKind::ConflictingContentLength);
            }
            (Some(n), _) => cl.value = Some(n),
        }
        return Ok(());
    }
    let value = str_of(value);
    if name.is_list() && value.contains(',') {
        split_list(&value, |el| headers.push(name.clone(), el));
    } else {
        headers.push(name, value.into_owned());
    }
    Ok(())
}

fn frame_body(
    buf: &[u8],
    owner: Option<&Bytes>,
    body_start: usize,
    cl: Option<usize>,
    stream: bool,
) -> Result<Bytes, ErrorKind> {
    let available = buf.len().saturating_sub(body_start);
    let len = match (cl, stream) {
        (Some(n), false) if n <= available => n,
        (Some(n), true) if n == available => n,
        (Some(n), _) => {
            return Err(ErrorKind::BodyLength {
                declared: n,
                available,
            });
        }
        (None, false) => available,
        (None, true) => return Err(ErrorKind::MissingContentLength),
    };
    let range = body_start..body_start + len;
    Ok(match owner {
        Some(b) if len > 0 => b.slice(range),
        _ if len == 0 => Bytes::new(),
        _ => Bytes::copy_from_slice(&buf[range]),
    })
}

fn once(count: &mut u8, name: &'static str) -> Result<(), ErrorKind> {
    *count += 1;
    if *count > 1 {
        Err(ErrorKind::DuplicateHeader(name))
    } else {
        Ok(())
    }
}

/// Replaces `raw` by the canonical rendering if it differs.
fn normalise(raw: &mut String, scratch: &mut String, render: impl FnOnce(&mut String)) {
    scratch.clear();
    render(scratch);
    if scratch != raw {
        std::mem::swap(raw, scratch);
    }
}

/// Validates a freshly parsed message and normalises Via, From, To, Contact and CSeq values.
fn validate(msg: &mut Message) -> Result<(), ErrorKind> {
    let (headers, method) = match msg {
        Message::Request(r) => (&mut r.headers, Some(&r.method)),
        Message::Response(r) => (&mut r.headers, None),
    };
    let (mut n_call, mut n_cseq, mut n_from, mut n_to, mut n_mf) = (0u8, 0u8, 0u8, 0u8, 0u8);
    let mut n_via = 0usize;
    let mut cseq_method = None;
    let mut scratch = String::new();
    let inv = |header: &'static str| {
        move |reason: &'static str| ErrorKind::InvalidHeader { header, reason }
    };
    for (name, value) in headers.entries_mut().iter_mut() {
        match name {
            HeaderName::Via => {
                n_via += 1;
                let v = parse_via_view(value).map_err(inv("Via"))?;
                if !v.canonical {
                    let v = v.to_via();
                    normalise(value, &mut scratch, |s| v.write_to(s));
                }
            }
            HeaderName::From | HeaderName::To => {
                let label = if *name == HeaderName::From {
                    "From"
                } else {
                    "To"
                };
                once(
                    if label == "From" {
                        &mut n_from
                    } else {
                        &mut n_to
                    },
                    label,
                )?;
                let na = parse_name_addr_view(value).map_err(inv(label))?;
                if !na.canonical {
                    let na = na.to_name_addr();
                    normalise(value, &mut scratch, |s| na.write_to(s));
                }
            }
            HeaderName::CallId => {
                once(&mut n_call, "Call-ID")?;
                if value.is_empty() || value.bytes().any(|b| b == b' ' || b == b'\t') {
                    return Err(ErrorKind::InvalidHeader {
                        header: "Call-ID",
                        reason: "empty or contains whitespace",
                    });
                }
            }
            HeaderName::CSeq => {
                once(&mut n_cseq, "CSeq")?;
                let (c, canonical) = parse_cseq_canonical(value).map_err(inv("CSeq"))?;
                if !canonical {
                    normalise(value, &mut scratch, |s| c.write_to(s));
                }
                cseq_method = Some(c.method);
            }
            HeaderName::Contact if value != "*" => {
                let na = parse_name_addr_view(value).map_err(inv("Contact"))?;
                if !na.canonical {
                    let na = na.to_name_addr();
                    normalise(value, &mut scratch, |s| na.write_to(s));
                }
            }
            HeaderName::MaxForwards => {
                once(&mut n_mf, "Max-Forwards")?;
                match parse_u32(value) {
                    Some(n) if n <= 255 => {}
                    _ => return Err(ErrorKind::MaxForwardsOutOfRange),
                }
            }
            _ => {}
        }
    }
    if n_via == 0 {
        return Err(ErrorKind::MissingHeader("Via"));
    }
    if n_from == 0 {
        return Err(ErrorKind::MissingHeader("From"));
    }
    if n_to == 0 {
        return Err(ErrorKind::MissingHeader("To"));
    }
    if n_call == 0 {
        return Err(ErrorKind::MissingHeader("Call-ID"));
    }
    let Some(cm) = cseq_method else {
        return Err(ErrorKind::MissingHeader("CSeq"));
    };
    if let Some(m) = method
        && *m != cm
    {
        return Err(ErrorKind::CSeqMethodMismatch);
    }
    Ok(())
}

/// Leniently re-reads the header section to collect what is needed to answer.
fn reply_context(buf: &[u8], pos: usize) -> Option<Box<ReplyContext>> {
    let (first, mut next) = read_line(buf, pos);
    let method = first
        .split(|&b| b == b' ')
        .next()
        .and_then(|m| std::str::from_utf8(m).ok())
        .and_then(|m| Method::parse(m).ok());
    let mut ctx = ReplyContext {
        method,
        ..ReplyContext::default()
    };
    let mut logical: Vec<u8> = Vec::new();
    let flush = |l: &[u8], ctx: &mut ReplyContext| {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return;
        };
        let name = HeaderName::parse(trim_bytes(&l[..colon]));
        let value = to_string(trim_bytes(&l[colon + 1..]));
        match name {
            HeaderName::Via => ctx.vias.push(value),
            HeaderName::From => {
                ctx.from.get_or_insert(value);
            }
            HeaderName::To => {
                ctx.to.get_or_insert(value);
            }
            HeaderName::CallId => {
                ctx.call_id.get_or_insert(value);
            }
            HeaderName::CSeq => {
                ctx.cseq.get_or_insert(value);
            }
            HeaderName::Timestamp => {
                ctx.timestamp.get_or_insert(value);
            }
            _ => {}
        }
    };
    while next < buf.len() {
        let (line, after) = read_line(buf, next);
        next = after;
        if line.is_empty() {
            break;
        }
        if is_wsp(line[0]) {
            if !logical.is_empty() {
                logical.push(b' ');
                logical.extend_from_slice(trim_bytes(line));
            }
            continue;
        }
        if !logical.is_empty() {
            flush(&logical, &mut ctx);
            logical.clear();
        }
        logical.extend_from_slice(line);
    }
    if !logical.is_empty() {
        flush(&logical, &mut ctx);
    }
    ctx.vias.retain(|v| !v.is_empty());
    Some(Box::new(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn keepalives() {
        for b in [&b""[..], b"\r\n", b"\r\n\r\n", b"\n \t\r\n"] {
            assert_eq!(parse_datagram(b), Err(ParseError::KeepAlive));
        }
        let mut m = b"\r\n\r\n".to_vec();
        m.extend(req("Content-Length: 0\r\n"));
        assert!(parse_datagram(&m).is_ok());
    }

    #[test]
    fn bare_lf_and_missing_blank_line() {
        let m = String::from_utf8(req("")).unwrap().replace("\r\n", "\n");
        assert!(parse_datagram(m.as_bytes()).is_ok());
        let m = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:x@y>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS";
        let msg = parse_datagram(m.as_bytes()).unwrap();
        assert!(msg.body().is_empty());
    }

    #[test]
    fn content_length_rules() {
        let mut m = req("Content-Length: 5\r\n");
        m.extend_from_slice(b"helloTRAILING");
        assert_eq!(&parse_datagram(&m).unwrap().body()[..], b"hello");
        let b = Bytes::from(m.clone());
        assert_eq!(&parse_datagram_bytes(&b).unwrap().body()[..], b"hello");
        assert!(parse_stream_message(Bytes::from(m)).is_err());
        for cl in ["-1", "five", "1 2", "99999999999"] {
            let m = req(&format!("Content-Length: {cl}\r\n"));
            let e = parse_datagram(&m).unwrap_err();
            assert_eq!(e.status(), Some(400), "{cl}");
        }
        let m = req("Content-Length: 0\r\nl: 0\r\n");
        assert!(parse_datagram(&m).is_ok());
        let m = req("Content-Length: 0\r\nl: 1\r\n");
        assert!(parse_datagram(&m).is_err());
        let mut m = req("");
        m.extend_from_slice(b"abc");
        assert_eq!(parse_datagram(&m).unwrap().body().len(), 3);
        assert_eq!(
            parse_stream_message(Bytes::from(m)).unwrap_err().kind(),
            Some(&ErrorKind::MissingContentLength)
        );
    }

    #[test]
    fn error_response_is_built() {
        let m = b"OPTIONS  sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nTimestamp: 5\r\n\r\n";
        let e = parse_datagram(m).unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.reply_context().unwrap().method, Some(Method::Options));
        let mut r = e.error_response().unwrap();
        r.set_to_tag("x1");
        assert_eq!(r.status, 400);
        assert_eq!(r.reason, "Bad Request");
        assert_eq!(r.call_id(), Some("c1"));
        assert_eq!(r.to().unwrap().tag(), Some("x1"));
        assert_eq!(r.headers.get(&HeaderName::Timestamp), Some("5"));
        assert!(
            r.headers
                .get(&HeaderName::Warning)
                .unwrap()
                .starts_with("399 dialtone \"")
        );
        assert!(parse_datagram(&r.to_bytes()).is_ok());
        // no Via: nothing to answer
        let e = parse_datagram(b"INVITE sip:a@b\r\nCall-ID: x\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert!(e.error_response().is_none());
        // responses are dropped
        let e = parse_datagram(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), None);
        assert!(e.error_response().is_none());
    }

    #[test]
    fn status_lines() {
        let base = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        for (line, ok) in [
            ("SIP/2.0 200 OK", true),
            ("SIP/2.0 100 ", true),
            ("SIP/2.0 100", true),
            ("SIP/2.0 99 x", false),
            ("SIP/2.0 700 x", false),
            ("SIP/2.0 2000 x", false),
            ("SIP/3.0 200 OK", false),
            ("SIP/2.0  200 OK", false),
        ] {
            let m = format!("{line}\r\n{base}");
            assert_eq!(parse_datagram(m.as_bytes()).is_ok(), ok, "{line}");
        }
    }

    #[test]
    fn max_forwards_and_cseq_rules() {
        assert!(parse_datagram(&req("Max-Forwards: 255\r\n")).is_ok());
        assert!(parse_datagram(&req("Max-Forwards: 256\r\n")).is_err());
        assert!(parse_datagram(&req("Max-Forwards: x\r\n")).is_err());
        let m = String::from_utf8(req(""))
            .unwrap()
            .replace("1 OPTIONS", "1 INVITE");
        assert_eq!(
            parse_datagram(m.as_bytes()).unwrap_err().kind(),
            Some(&ErrorKind::CSeqMethodMismatch)
        );
        assert!(parse_datagram(&req("Foo\r\n")).is_err());
        assert!(parse_datagram(&req("Bad Name: x\r\n")).is_err());
    }
}
