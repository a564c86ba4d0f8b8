//! The SDP parser: tolerant where real phones deviate, strict where the text cannot be SDP.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::model::{
    AddrType, Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription,
    Timing,
};

/// Why a body is not a usable session description. Answered with 400 (RFC 3261 §21.4.1)
/// and `Warning: 399 <agent> "<text>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("empty session description")]
    Empty,
    #[error("line {line}: a session description starts with v=0")]
    MissingVersion { line: usize },
    #[error("unsupported SDP version v={0}")]
    UnsupportedVersion(String),
    #[error("line {line}: not a <type>=<value> line")]
    BadLine { line: usize },
    #[error("missing {0}= line")]
    MissingLine(char),
    #[error("line {line}: malformed o= line")]
    BadOrigin { line: usize },
    #[error("line {line}: bad c= line: {reason}")]
    BadConnection { line: usize, reason: &'static str },
    #[error("line {line}: bad m= line: {reason}")]
    BadMedia { line: usize, reason: &'static str },
    #[error("line {line}: malformed b= line")]
    BadBandwidth { line: usize },
    #[error("line {line}: malformed t= line")]
    BadTiming { line: usize },
    #[error("line {line}: r= line without a t= line before it")]
    MisplacedRepeat { line: usize },
}

impl SdpError {
    /// The SIP status for a request whose body fails to parse: 400 Bad Request.
    pub fn status(&self) -> u16 {
        400
    }

    /// The warn-code for the `Warning` header: 399 (miscellaneous warning).
    pub fn warning_code(&self) -> u16 {
        399
    }

    /// The warn-text (unquoted).
    pub fn warning_text(&self) -> String {
        format!("Malformed SDP: {self}")
    }

    /// A complete `Warning` header value: `399 <agent> "<text>"` (RFC 3261 §20.43).
    pub fn warning_value(&self, agent: &str) -> String {
        warning_value(self.warning_code(), agent, &self.warning_text())
    }
}

/// `<code> <agent> "<quoted text>"`, escaping `"` and `\` (RFC 3261 quoted-string).
pub(crate) fn warning_value(code: u16, agent: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + agent.len() + 8);
    out.push_str(&code.to_string());
    out.push(' ');
    out.push_str(agent);
    out.push_str(" \"");
    for ch in text.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_str(s)
    }
}

impl SessionDescription {
    /// Parses a session description (a SIP body). Never panics.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        match std::str::from_utf8(input) {
            Ok(s) => parse_str(s),
            Err(_) => parse_str(&String::from_utf8_lossy(input)),
        }
    }
}

/// The trimmed, non-empty lines with their 1-based line numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches([' ', '\t', '\r'])))
        .filter(|(_, l)| !l.is_empty())
}

fn parse_str(text: &str) -> Result<SessionDescription, SdpError> {
    let mut it = lines(text);
    match it.next() {
        None => return Err(SdpError::Empty),
        Some((_, "v=0")) => {}
        Some((_, l)) if l.starts_with("v=") => {
            let v: String = l[2..].chars().take(16).collect();
            return Err(SdpError::UnsupportedVersion(v));
        }
        Some((line, _)) => return Err(SdpError::MissingVersion { line }),
    }

    let mut origin: Option<Origin> = None;
    let mut session_name: Option<String> = None;
    let mut information = None;
    let mut uri = None;
    let mut emails = Vec::new();
    let mut phones = Vec::new();
    let mut connection = None;
    let mut bandwidths = Vec::new();
    let mut times: Vec<Timing> = Vec::new();
    let mut zone = None;
    let mut key = None;
    let mut attributes = Vec::new();
    let mut unknown = Vec::new();
    let mut media: Vec<MediaDescription> = Vec::new();
    // r= must follow its t= (or another r=) directly
    let mut after_time = false;

    for (n, line) in it {
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() {
            return Err(SdpError::BadLine { line: n });
        }
        let ty = b[0];
        // both leading bytes are ASCII, so 2 is a char boundary
        let value = &line[2..];
        let was_after_time = after_time;
        after_time = false;

        if ty == b'm' {
            media.push(parse_media(value, n)?);
            continue;
        }
        if let Some(m) = media.last_mut() {
            match ty {
                b'i' if m.information.is_none() => m.information = Some(value.to_owned()),
                b'k' if m.key.is_none() => m.key = Some(value.to_owned()),
                b'c' if m.connection.is_none() => m.connection = Some(parse_connection(value, n)?),
                b'b' => m.bandwidths.push(parse_bandwidth(value, n)?),
                b'a' => m.attributes.push(parse_attribute(value)),
                _ => m.unknown.push(line.to_owned()),
            }
            continue;
        }
        match ty {
            b'o' if origin.is_none() => origin = Some(parse_origin(value, n)?),
            b's' if session_name.is_none() => session_name = Some(value.to_owned()),
            b'i' if information.is_none() => information = Some(value.to_owned()),
            b'u' if uri.is_none() => uri = Some(value.to_owned()),
            b'e' => emails.push(value.to_owned()),
            b'p' => phones.push(value.to_owned()),
            b'c' if connection.is_none() => connection = Some(parse_connection(value, n)?),
            b'b' => bandwidths.push(parse_bandwidth(value, n)?),
            b't' => {
                times.push(parse_timing(value, n)?);
                after_time = true;
            }
            b'r' => {
                match times.last_mut() {
                    Some(t) if was_after_time => t.repeats.push(value.to_owned()),
                    _ => return Err(SdpError::MisplacedRepeat { line: n }),
                }
                after_time = true;
            }
            b'z' if zone.is_none() => zone = Some(value.to_owned()),
            b'k' if key.is_none() => key = Some(value.to_owned()),
            b'a' => attributes.push(parse_attribute(value)),
            _ => unknown.push(line.to_owned()),
        }
    }

    Ok(SessionDescription {
        origin: origin.ok_or(SdpError::MissingLine('o'))?,
        session_name: session_name.unwrap_or_else(|| "-".to_owned()),
        information,
        uri,
        emails,
        phones,
        connection,
        bandwidths,
        times,
        zone,
        key,
        attributes,
        unknown,
        media,
    })
}

fn parse_attribute(value: &str) -> Attribute {
    match value.split_once(':') {
        Some((name, v)) => Attribute {
            name: name.to_owned(),
            value: Some(v.to_owned()),
        },
        None => Attribute {
            name: value.to_owned(),
            value: None,
        },
    }
}

/// Digits only (no sign, no white space).
fn number<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_origin(value: &str, line: usize) -> Result<Origin, SdpError> {
    let bad = SdpError::BadOrigin { line };
    let mut f = value.split_ascii_whitespace();
    let mut next = || f.next().ok_or(bad.clone());
    let origin = Origin {
        username: next()?.to_owned(),
        sess_id: next()?.to_owned(),
        sess_version: next()?.to_owned(),
        net_type: next()?.to_owned(),
        addr_type: AddrType::from_token(next()?),
        address: next()?.to_owned(),
    };
    if f.next().is_some() {
        return Err(bad);
    }
    Ok(origin)
}

/// A domain name as RFC 8866 §5.7 allows in `c=`: letters, digits, `-` and `.`, with at
/// least one letter (so that `1.2.3` is not mistaken for one).
fn is_domain_name(s: &str) -> bool {
    s.len() <= 253
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_connection(value: &str, line: usize) -> Result<Connection, SdpError> {
    let bad = |reason| SdpError::BadConnection { line, reason };
    let mut f = value.split_ascii_whitespace();
    let (Some(net_type), Some(addr_type), Some(address)) = (f.next(), f.next(), f.next()) else {
        return Err(bad("expected <nettype> <addrtype> <address>"));
    };
    if f.next().is_some() {
        return Err(bad("trailing fields"));
    }
    let addr_type = AddrType::from_token(addr_type);
    if net_type.eq_ignore_ascii_case("IN") {
        let mut parts = address.split('/');
        let base = parts.next().unwrap_or("");
        let suffixes: Vec<&str> = parts.collect();
        if suffixes.len() > 2 || suffixes.iter().any(|s| number::<u32>(s).is_none()) {
            return Err(bad("bad /ttl or /count suffix"));
        }
        let ok = match addr_type {
            AddrType::Ip4 => base.parse::<Ipv4Addr>().is_ok() || is_domain_name(base),
            AddrType::Ip6 => base.parse::<Ipv6Addr>().is_ok() || is_domain_name(base),
            AddrType::Other(_) => !base.is_empty(),
        };
        if !ok {
            return Err(bad("bad address"));
        }
    }
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type,
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str, line: usize) -> Result<Bandwidth, SdpError> {
    let bad = SdpError::BadBandwidth { line };
    let (bwtype, bw) = value.split_once(':').ok_or(bad.clone())?;
    let bwtype = bwtype.trim();
    if bwtype.is_empty() || bwtype.contains(char::is_whitespace) {
        return Err(bad);
    }
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        bandwidth: number(bw.trim()).ok_or(bad)?,
    })
}

fn parse_timing(value: &str, line: usize) -> Result<Timing, SdpError> {
    let bad = SdpError::BadTiming { line };
    let mut f = value.split_ascii_whitespace();
    let (Some(start), Some(stop), None) = (f.next(), f.next(), f.next()) else {
        return Err(bad);
    };
    Ok(Timing {
        start: number(start).ok_or(bad.clone())?,
        stop: number(stop).ok_or(bad)?,
        repeats: Vec::new(),
    })
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let bad = |reason| SdpError::BadMedia { line, reason };
    let mut f = value.split_ascii_whitespace();
    let media = f.next().ok_or(bad("missing media type"))?;
    let port_field = f.next().ok_or(bad("missing port"))?;
    let proto = f.next().ok_or(bad("missing transport protocol"))?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (
            number::<u16>(p).ok_or(bad("bad port"))?,
            Some(number::<u16>(c).ok_or(bad("bad number of ports"))?),
        ),
        None => (number::<u16>(port_field).ok_or(bad("bad port"))?, None),
    };
    let mut formats: Vec<String> = Vec::with_capacity(8);
    formats.extend(f.map(str::to_owned));
    if formats.is_empty() && port != 0 {
        return Err(bad("no formats"));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        information: None,
        connection: None,
        bandwidths: Vec::new(),
        key: None,
        // a typical audio line has 5 to 15 attributes: skip the first regrowths
        attributes: Vec::with_capacity(16),
        unknown: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::fixtures::{self, ALL};

    #[test]
    fn fixtures_round_trip() {
        for (name, text) in ALL {
            let s = SessionDescription::parse(text.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let printed = s.print();
            assert!(printed.ends_with("\r\n"), "{name}");
            assert!(!printed.replace("\r\n", "").contains('\n'), "{name}");
            let again = SessionDescription::parse(printed.as_bytes()).unwrap();
            assert_eq!(again, s, "{name}");
            assert_eq!(again.print(), printed, "{name}: print is a fixed point");
        }
    }

    #[test]
    fn fixtures_already_canonical_print_byte_exact() {
        // fixtures written in canonical order come back byte for byte
        for (name, text) in ALL {
            let s = fixtures::parse(text);
            assert_eq!(s.print(), text.replace('\n', "\r\n"), "{name}");
        }
    }

    #[test]
    fn microsip_offer_fields() {
        let s = fixtures::parse(fixtures::MICROSIP);
        assert_eq!(s.origin.username, "-");
        assert_eq!(s.origin.sess_id, "3911286153");
        assert_eq!(s.origin.addr_type, AddrType::Ip4);
        assert_eq!(s.session_name, "pjmedia");
        assert_eq!(
            s.bandwidths,
            vec![Bandwidth {
                bwtype: "AS".into(),
                bandwidth: 84
            }]
        );
        assert_eq!(s.times, vec![Timing::unbounded()]);
        assert_eq!(s.attributes, vec![Attribute::new("X-nat", "0")]);
        assert_eq!(s.media.len(), 1);
        let m = &s.media[0];
        assert_eq!(
            (m.media.as_str(), m.port, m.proto.as_str()),
            ("audio", 4000, "RTP/AVP")
        );
        assert_eq!(m.formats, ["0", "8", "9", "101"]);
        assert_eq!(
            m.connection.as_ref().unwrap().ip(),
            Some("192.168.1.50".parse().unwrap())
        );
        assert_eq!(m.rtcp(), Some(4001));
        assert!(!m.rtcp_mux());
        assert_eq!(m.rtpmap(9).unwrap().encoding, "G722");
        assert!(m.rtpmap(101).unwrap().is_telephone_event());
        assert_eq!(m.fmtp(101), Some("0-16"));
        assert_eq!(m.direction(&s), crate::sdp::Direction::SendRecv);
    }

    #[test]
    fn yealink_two_telephone_events() {
        let s = fixtures::parse(fixtures::YEALINK);
        let m = &s.media[0];
        let te: Vec<(u8, u32)> = m
            .rtpmaps()
            .filter(|(_, r)| r.is_telephone_event())
            .map(|(pt, r)| (pt, r.clock_rate))
            .collect();
        assert_eq!(te, [(101, 8000), (102, 48000)]);
        assert_eq!(m.rtpmap(107).unwrap().channels, Some(2));
        assert_eq!(m.fmtp(18), Some("annexb=no"));
        assert_eq!(m.ptime(), Some(20));
    }

    #[test]
    fn linphone_ice_and_rtcp_mux() {
        let s = fixtures::parse(fixtures::LINPHONE);
        assert!(s.attribute("ice-ufrag").is_some());
        assert_eq!(s.media.len(), 2);
        let a = &s.media[0];
        assert!(a.rtcp_mux());
        assert_eq!(a.rtcp(), Some(7079));
        assert_eq!(
            a.attributes
                .iter()
                .filter(|x| x.name == "candidate")
                .count(),
            3
        );
        assert_eq!(a.rtpmap(97).unwrap().clock_rate, 16000);
        assert_eq!(a.rtpmap(18).unwrap().encoding, "G729");
        assert_eq!(s.media[1].media, "video");
        assert_eq!(s.media[1].rtpmap(96).unwrap().encoding, "VP8");
    }

    #[test]
    fn sipp_offer_and_answer() {
        let o = fixtures::parse(fixtures::SIPP_UAC);
        assert_eq!(o.origin.username, "sipp");
        assert_eq!(o.connection.as_ref().unwrap().address, "127.0.0.1");
        assert_eq!(o.media[0].formats, ["8", "0", "101"]);
        assert_eq!(o.media[0].ptime(), Some(20));
        let a = fixtures::parse(fixtures::SIPP_UAS);
        assert_eq!(a.media[0].formats, ["8", "101"]);
    }

    #[test]
    fn tolerant_lf_trailing_spaces_order_unknown_lines() {
        let text = "\r\nv=0  \n\
            o=alice  2890844526 2890844526 IN ip4 192.0.2.10 \n\
            s= \n\
            x=experimental line\n\
            a=tool:foo\n\
            c=IN IP4 192.0.2.10\t\n\
            t=0 0\n\
            r=7d 1h 0 25h\n\
            y=another\n\
            \n\
            m=audio 49170 RTP/AVP 0\n\
            a=rtpmap:0 PCMU/8000\n\
            q=media unknown\n\
            c=IN IP4 192.0.2.11\n\
            c=IN IP4 192.0.2.12\n\
            o=misplaced\n";
        let s = fixtures::parse(text);
        assert_eq!(s.origin.username, "alice");
        assert_eq!(s.origin.addr_type, AddrType::Ip4);
        assert_eq!(s.session_name, "");
        assert_eq!(s.unknown, ["x=experimental line", "y=another"]);
        assert_eq!(s.times[0].repeats, ["7d 1h 0 25h"]);
        assert_eq!(s.connection.as_ref().unwrap().address, "192.0.2.10");
        let m = &s.media[0];
        assert_eq!(m.connection.as_ref().unwrap().address, "192.0.2.11");
        assert_eq!(
            m.unknown,
            ["q=media unknown", "c=IN IP4 192.0.2.12", "o=misplaced"]
        );
        assert_eq!(
            s.print(),
            "v=0\r\n\
             o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
             s= \r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             r=7d 1h 0 25h\r\n\
             a=tool:foo\r\n\
             x=experimental line\r\n\
             y=another\r\n\
             m=audio 49170 RTP/AVP 0\r\n\
             c=IN IP4 192.0.2.11\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             q=media unknown\r\n\
             c=IN IP4 192.0.2.12\r\n\
             o=misplaced\r\n"
        );
        let again = fixtures::parse(&s.print());
        assert_eq!(again, s);
    }

    #[test]
    fn missing_s_and_t_are_tolerated() {
        let s = fixtures::parse("v=0\no=- 1 1 IN IP4 192.0.2.1\nm=audio 0 RTP/AVP\n");
        assert_eq!(s.session_name, "-");
        assert!(s.times.is_empty());
        assert!(s.media[0].formats.is_empty());
        assert_eq!(fixtures::parse(&s.print()), s);
    }

    #[test]
    fn domain_names_multicast_and_ipv6() {
        let s = fixtures::parse(
            "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP4 media.example.com\nt=0 0\n\
             m=audio 5004/2 RTP/AVP 0\nc=IN IP4 224.2.1.1/127/3\n\
             m=audio 5008 RTP/AVP 0\nc=IN IP6 2001:db8::2\n",
        );
        assert_eq!(s.connection.as_ref().unwrap().ip(), None);
        assert_eq!(s.media[0].port_count, Some(2));
        assert_eq!(
            s.media[1].connection.as_ref().unwrap().ip(),
            Some("2001:db8::2".parse().unwrap())
        );
        assert_eq!(fixtures::parse(&s.print()), s);
    }

    #[test]
    fn rejects_what_cannot_be_sdp() {
        let cases: &[(&str, SdpError)] = &[
            ("", SdpError::Empty),
            ("\r\n \r\n", SdpError::Empty),
            ("hello world", SdpError::MissingVersion { line: 1 }),
            (
                "o=- 1 1 IN IP4 1.2.3.4\nv=0\n",
                SdpError::MissingVersion { line: 1 },
            ),
            ("v=1\n", SdpError::UnsupportedVersion("1".into())),
            ("v=0\ns=-\n", SdpError::MissingLine('o')),
            ("v=0\no=- 1 1 IN IP4\n", SdpError::BadOrigin { line: 2 }),
            ("v=0\no=- 1 1 IN IP4 a b\n", SdpError::BadOrigin { line: 2 }),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nhello\n",
                SdpError::BadLine { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\n=x\n",
                SdpError::BadLine { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\n1=x\n",
                SdpError::BadLine { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3\n",
                SdpError::BadConnection {
                    line: 3,
                    reason: "bad address",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 999.1.1.1\n",
                SdpError::BadConnection {
                    line: 3,
                    reason: "bad address",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP6 1.2.3.4.5\n",
                SdpError::BadConnection {
                    line: 3,
                    reason: "bad address",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4\n",
                SdpError::BadConnection {
                    line: 3,
                    reason: "expected <nettype> <addrtype> <address>",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4/x\n",
                SdpError::BadConnection {
                    line: 3,
                    reason: "bad /ttl or /count suffix",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio\n",
                SdpError::BadMedia {
                    line: 3,
                    reason: "missing port",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 70000 RTP/AVP 0\n",
                SdpError::BadMedia {
                    line: 3,
                    reason: "bad port",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP\n",
                SdpError::BadMedia {
                    line: 3,
                    reason: "no formats",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 4000/x RTP/AVP 0\n",
                SdpError::BadMedia {
                    line: 3,
                    reason: "bad number of ports",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\nc=IN IP4 x..\n",
                SdpError::BadConnection {
                    line: 4,
                    reason: "bad address",
                },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nb=AS\n",
                SdpError::BadBandwidth { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nb=AS:x\n",
                SdpError::BadBandwidth { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0\n",
                SdpError::BadTiming { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 -1\n",
                SdpError::BadTiming { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nr=1 2 3\n",
                SdpError::MisplacedRepeat { line: 3 },
            ),
            (
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 0\na=x\nr=1 2 3\n",
                SdpError::MisplacedRepeat { line: 5 },
            ),
        ];
        for (text, want) in cases {
            let got = SessionDescription::parse(text.as_bytes());
            assert_eq!(got.as_ref().err(), Some(want), "{text:?}");
            let e = got.unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(
                e.warning_value("pbx")
                    .starts_with("399 pbx \"Malformed SDP: ")
            );
        }
    }

    #[test]
    fn warning_value_escapes() {
        let e = SdpError::UnsupportedVersion("\"\\x\r".into());
        assert_eq!(
            e.warning_value("dialtone"),
            "399 dialtone \"Malformed SDP: unsupported SDP version v=\\\"\\\\x \""
        );
    }

    #[test]
    fn non_utf8_is_replaced_not_rejected() {
        let mut raw = b"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=caf".to_vec();
        raw.push(0xe9);
        raw.extend_from_slice(b"\nt=0 0\n");
        let s = SessionDescription::parse(&raw).unwrap();
        assert_eq!(s.session_name, "caf\u{fffd}");
        assert_eq!(s.print().parse::<SessionDescription>().unwrap(), s);
    }
}
