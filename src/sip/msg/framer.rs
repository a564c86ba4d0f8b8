//! Message framing on stream transports (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives).

use bytes::{Buf, Bytes, BytesMut};

use super::header::HeaderName;
use super::syntax::{is_wsp, parse_u32, trim_bytes};

/// Fatal framing errors: the connection cannot be resynchronised and should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message larger than {limit} octets")]
    TooLarge { limit: usize },
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
}

/// Splits a byte stream into SIP messages by Content-Length.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message: usize,
    /// Bytes of `buf` already searched for the end of the header section.
    scanned: usize,
    /// Header end and body length once known for the message at the front.
    pending: Option<(usize, usize)>,
    pings: usize,
}

impl StreamFramer {
    pub fn new(max_message: usize) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            max_message,
            scanned: 0,
            pending: None,
            pings: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Octets buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Number of CRLFCRLF keep-alive pings seen since the last call (answer each with a
    /// CRLF pong).
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// The next complete message (headers + body, leading CRLFs stripped), `Ok(None)` if more
    /// data is needed. After an error the framer must be discarded.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        if self.pending.is_none() {
            if !self.skip_keepalives() {
                return Ok(None);
            }
            let Some(hdr_end) = self.find_header_end() else {
                if self.buf.len() > self.max_message {
                    return Err(FramingError::TooLarge {
                        limit: self.max_message,
                    });
                }
                return Ok(None);
            };
            let cl = content_length(&self.buf[..hdr_end])?;
            if hdr_end.saturating_add(cl) > self.max_message {
                return Err(FramingError::TooLarge {
                    limit: self.max_message,
                });
            }
            self.pending = Some((hdr_end, cl));
        }
        let Some((hdr_end, cl)) = self.pending else {
            return Ok(None);
        };
        let total = hdr_end + cl;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.pending = None;
        self.scanned = 0;
        Ok(Some(self.buf.split_to(total).freeze()))
    }

    /// Consumes leading CRLFs, counting "\r\n\r\n" pings. Returns false when the buffer holds
    /// nothing but a possibly incomplete keep-alive.
    fn skip_keepalives(&mut self) -> bool {
        loop {
            let b = &self.buf[..];
            if b.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                self.pings += 1;
                self.scanned = 0;
            } else if b.is_empty() || b == b"\r" || b == b"\r\n" || b == b"\r\n\r" {
                return false;
            } else if b.starts_with(b"\r\n") {
                self.buf.advance(2);
                self.scanned = 0;
            } else if b[0] == b'\n' || b[0] == b'\r' {
                self.buf.advance(1);
                self.scanned = 0;
            } else {
                return true;
            }
        }
    }

    /// Offset just past the empty line ending the header section (CRLFCRLF or bare LFs).
    fn find_header_end(&mut self) -> Option<usize> {
        let b = &self.buf[..];
        let mut i = self.scanned.saturating_sub(3);
        while let Some(off) = b[i..].iter().position(|&c| c == b'\n') {
            let nl = i + off;
            // line after this LF is empty if followed by LF or CRLF
            match (b.get(nl + 1), b.get(nl + 2)) {
                (Some(b'\n'), _) => return Some(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
                (Some(b'\r'), None) | (None, _) => {
                    self.scanned = nl;
                    return None;
                }
                _ => i = nl + 1,
            }
        }
        self.scanned = b.len();
        None
    }
}

/// Finds Content-Length (or `l`) in a header section.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    for raw in head.split(|&b| b == b'\n').skip(1) {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() || is_wsp(line[0]) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if HeaderName::parse(trim_bytes(&line[..colon])) != HeaderName::ContentLength {
            continue;
        }
        let n = std::str::from_utf8(trim_bytes(&line[colon + 1..]))
            .ok()
            .and_then(parse_u32)
            .ok_or(FramingError::BadContentLength)? as usize;
        match found {
            Some(prev) if prev != n => return Err(FramingError::BadContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse_stream_message;
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nl: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn split_at_every_boundary() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend(msg("hello\r\n\r\nworld"));
        stream.extend(b"\r\n\r\n\r\n\r\n");
        stream.extend(msg(""));
        for cut in 0..=stream.len() {
            let mut f = StreamFramer::new(4096);
            f.push(&stream[..cut]);
            let mut got = drain(&mut f);
            f.push(&stream[cut..]);
            got.extend(drain(&mut f));
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(&got[0][..], &msg("hello\r\n\r\nworld")[..]);
            assert_eq!(&got[1][..], &msg("")[..]);
            assert_eq!(f.take_pings(), 3, "cut {cut}");
            assert_eq!(f.take_pings(), 0);
            assert_eq!(f.buffered(), 0);
            for m in got {
                parse_stream_message(m).unwrap();
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut stream = msg("abc");
        stream.extend(msg("defg"));
        let mut f = StreamFramer::new(4096);
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            got.extend(drain(&mut f));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].len(), msg("defg").len());
    }

    #[test]
    fn two_in_one_chunk_and_bare_lf() {
        let mut stream = msg("x");
        let lf = String::from_utf8(msg("y")).unwrap().replace("\r\n", "\n");
        stream.extend(lf.as_bytes());
        let mut f = StreamFramer::new(4096);
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[1][..], lf.as_bytes());
    }

    #[test]
    fn errors_and_waiting() {
        let mut f = StreamFramer::new(100);
        f.push(&msg("x"));
        assert_eq!(f.next_message(), Err(FramingError::TooLarge { limit: 100 }));

        let mut f = StreamFramer::new(100);
        f.push(&[b'A'; 101]);
        assert_eq!(f.next_message(), Err(FramingError::TooLarge { limit: 100 }));

        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        assert_eq!(f.next_message(), Err(FramingError::MissingContentLength));

        for cl in ["-999", "five", "1\r\nContent-Length: 2"] {
            let mut f = StreamFramer::new(4096);
            f.push(format!("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {cl}\r\n\r\n").as_bytes());
            assert_eq!(
                f.next_message(),
                Err(FramingError::BadContentLength),
                "{cl}"
            );
        }

        // clerr: Content-Length larger than what arrived: wait.
        let clerr = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/conformance/rfc4475/clerr.dat"
        ))
        .unwrap();
        let mut f = StreamFramer::new(65536);
        f.push(&clerr);
        assert_eq!(f.next_message(), Ok(None));
        assert_eq!(f.next_message(), Ok(None));

        // a lone CRLF (pong / half a ping) is not a message
        let mut f = StreamFramer::new(4096);
        f.push(b"\r\n");
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"\r\n");
        assert_eq!(f.next_message(), Ok(None));
        assert_eq!(f.take_pings(), 1);
    }
}
