//! The SDP data model (RFC 8866 §5) and its read accessors.

use std::net::IpAddr;

use super::codec;

/// A session description: the session-level fields and the media descriptions, in order.
///
/// Fields follow the RFC 8866 §5 grammar; `unknown` holds the lines of the session section
/// that have no typed field (unknown types, repeated single-valued lines), verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`
    pub origin: Origin,
    /// `s=` (an empty name is printed as `s= `, RFC 8866 §5.3).
    pub session_name: String,
    /// `i=`
    pub information: Option<String>,
    /// `u=`
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines, each with its `r=` lines.
    pub times: Vec<Timing>,
    /// `z=` (verbatim value).
    pub zone: Option<String>,
    /// `k=` (verbatim value; obsolete in RFC 8866).
    pub key: Option<String>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other session-level lines, verbatim (`x=...`), in order.
    pub unknown: Vec<String>,
    /// `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
///
/// `sess_id` and `sess_version` are kept as written (RFC 8866 says digits, but some
/// implementations exceed 64 bits); see [`super::LocalOrigin`] for Dialtone's own origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub sess_id: String,
    pub sess_version: String,
    pub net_type: String,
    pub addr_type: AddrType,
    pub address: String,
}

/// `<addrtype>` of `o=`/`c=`: `IP4`, `IP6` (matched case-insensitively) or another token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
    Other(String),
}

impl AddrType {
    pub(crate) fn from_token(s: &str) -> Self {
        if s.eq_ignore_ascii_case("IP4") {
            AddrType::Ip4
        } else if s.eq_ignore_ascii_case("IP6") {
            AddrType::Ip6
        } else {
            AddrType::Other(s.to_owned())
        }
    }

    /// The address type of an IP address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
            AddrType::Other(s) => s,
        }
    }
}

/// `c=<nettype> <addrtype> <connection-address>`.
///
/// `address` is kept as written: an IP address, possibly with `/ttl[/count]` (multicast), or a
/// domain name (allowed by RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: AddrType,
    pub address: String,
}

impl Connection {
    /// `IN IP4 <ip>` / `IN IP6 <ip>`.
    pub fn new(ip: IpAddr) -> Self {
        Connection {
            net_type: "IN".to_owned(),
            addr_type: AddrType::of(&ip),
            address: ip.to_string(),
        }
    }

    /// The IP address (without any `/ttl` suffix); `None` for a domain name or non-IP type.
    pub fn ip(&self) -> Option<IpAddr> {
        let base = self.address.split('/').next().unwrap_or("");
        base.parse().ok()
    }

    /// `0.0.0.0` (RFC 2543 hold) or `::`.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    pub bwtype: String,
    pub bandwidth: u64,
}

/// `t=<start-time> <stop-time>` and its `r=` lines (verbatim values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    pub repeats: Vec<String>,
}

impl Timing {
    /// `t=0 0`: an unbounded session, what every SIP endpoint sends.
    pub fn unbounded() -> Self {
        Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }
    }
}

/// `a=<name>` (a property attribute, `value == None`) or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    /// `a=<name>:<value>`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// `a=<name>` (property attribute).
    pub fn flag(name: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: None,
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `text`, `application`, `image`, ...
    pub media: String,
    /// Transport port; 0 = stream rejected/disabled (RFC 3264 §6, §8.2).
    pub port: u16,
    /// `<port>/<number of ports>`.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...
    pub proto: String,
    /// `<fmt>` list as written (RTP payload type numbers for RTP protos).
    pub formats: Vec<String>,
    /// `i=`
    pub information: Option<String>,
    /// Media-level `c=` (the first one; further ones, multicast layering, stay in `unknown`).
    pub connection: Option<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`
    pub key: Option<String>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Other media-level lines, verbatim, in order.
    pub unknown: Vec<String>,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`, or the RFC 3551 static entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl RtpMap<'_> {
    /// RFC 4733 `telephone-event`.
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case(codec::TELEPHONE_EVENT)
    }

    /// The codec table entry (Asterisk name) for this encoding, if known.
    pub fn codec(&self) -> Option<&'static codec::Codec> {
        codec::codec_by_encoding(self.encoding, self.clock_rate)
    }
}

/// Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name (case-insensitively).
    pub fn from_attribute(name: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }

    /// The direction seen from the other side (sendonly ↔ recvonly): the natural answer to
    /// an offer with this direction (RFC 3264 §6.1).
    pub fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// This side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// This side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Parses a payload type number (digits only, 0..=127).
pub(crate) fn parse_pt(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// Splits `"<pt> <rest>"` into the payload type and the trimmed rest.
fn split_pt(value: &str) -> Option<(u8, &str)> {
    let value = value.trim_start();
    let (pt, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], value[i..].trim()),
        None => (value, ""),
    };
    Some((parse_pt(pt)?, rest))
}

fn parse_rtpmap(desc: &str) -> Option<RtpMap<'_>> {
    let mut parts = desc.split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u16>().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        encoding,
        clock_rate,
        channels,
    })
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .find_map(|a| Direction::from_attribute(&a.name))
}

impl SessionDescription {
    /// Session-level direction attribute, if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The `c=` that applies to a media description: its own, else the session's.
    pub fn connection_for<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    /// The first session-level attribute with this name (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The first accepted (port != 0) `audio` stream.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media
            .iter()
            .find(|m| m.port != 0 && m.media.eq_ignore_ascii_case("audio"))
    }

    /// True when everything but `o=` is equal: the test for "the session description changed"
    /// that decides whether `sess-version` must be incremented (RFC 3264 §8).
    pub fn content_eq(&self, other: &SessionDescription) -> bool {
        self.session_name == other.session_name
            && self.information == other.information
            && self.uri == other.uri
            && self.emails == other.emails
            && self.phones == other.phones
            && self.connection == other.connection
            && self.bandwidths == other.bandwidths
            && self.times == other.times
            && self.zone == other.zone
            && self.key == other.key
            && self.attributes == other.attributes
            && self.unknown == other.unknown
            && self.media == other.media
    }
}

impl MediaDescription {
    /// A minimal media description (no attributes).
    pub fn new(media: &str, port: u16, proto: &str, formats: &[&str]) -> Self {
        MediaDescription {
            media: media.to_owned(),
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats: formats.iter().map(|f| (*f).to_owned()).collect(),
            information: None,
            connection: None,
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Port 0: rejected in an answer, disabled in an offer.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// An RTP profile (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, ...).
    pub fn is_rtp(&self) -> bool {
        self.proto
            .as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"RTP/"))
    }

    /// The first attribute with this name (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first attribute with this name.
    pub fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attribute(name).and_then(|a| a.value.as_deref())
    }

    /// An attribute with this name is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// The value after `<pt> ` of the first `a=<name>:<pt> ...` for this payload type.
    fn pt_attribute(&self, name: &str, pt: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            if !a.name.eq_ignore_ascii_case(name) {
                return None;
            }
            let (p, rest) = split_pt(a.value.as_deref()?)?;
            (p == pt).then_some(rest)
        })
    }

    /// The payload type's `a=rtpmap`, else the RFC 3551 static assignment (0 PCMU/8000, ...).
    /// A malformed `a=rtpmap` for the payload type gives `None`.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap<'_>> {
        match self.pt_attribute("rtpmap", pt) {
            Some(desc) => parse_rtpmap(desc),
            None => codec::static_payload(pt),
        }
    }

    /// The `rtpmap` of a format as written in the `m=` line (`None` if not a payload type).
    pub fn format_rtpmap(&self, format: &str) -> Option<RtpMap<'_>> {
        self.rtpmap(parse_pt(format)?)
    }

    /// The `a=fmtp` parameters of a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.pt_attribute("fmtp", pt)
    }

    /// Media-level direction attribute, if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The effective direction: media-level, else session-level, else `sendrecv`.
    pub fn direction(&self, session: &SessionDescription) -> Direction {
        self.direction_attr()
            .or_else(|| session.direction_attr())
            .unwrap_or(Direction::SendRecv)
    }

    /// Sets the media-level direction (replacing any direction attribute in place).
    pub fn set_direction(&mut self, direction: Direction) {
        let mut placed = false;
        self.attributes.retain_mut(|a| {
            if Direction::from_attribute(&a.name).is_none() {
                return true;
            }
            if placed {
                return false;
            }
            placed = true;
            *a = Attribute::flag(direction.as_str());
            true
        });
        if !placed {
            self.attributes.push(Attribute::flag(direction.as_str()));
        }
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_value("ptime")?.trim().parse().ok()
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute_value("maxptime")?.trim().parse().ok()
    }

    /// `a=rtcp-mux` (RFC 5761).
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// The port of `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
    pub fn rtcp(&self) -> Option<u16> {
        let v = self.attribute_value("rtcp")?;
        v.split_ascii_whitespace().next()?.parse().ok()
    }

    /// The payload types of the `m=` line (formats that are not numbers are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_pt(f))
    }

    /// The resolved codecs of the `m=` line, in order (unresolvable formats skipped).
    pub fn rtpmaps(&self) -> impl Iterator<Item = (u8, RtpMap<'_>)> + '_ {
        self.payload_types()
            .filter_map(move |pt| Some((pt, self.rtpmap(pt)?)))
    }

    /// The first format that is a codec (not telephone-event, CN, red, rtx, ...): in an
    /// answer, the codec in use.
    pub fn first_codec(&self) -> Option<(u8, RtpMap<'_>)> {
        self.rtpmaps().find(|(_, r)| r.codec().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(attrs: &[(&str, Option<&str>)]) -> MediaDescription {
        let mut m = MediaDescription::new("audio", 4000, "RTP/AVP", &["0", "8", "96", "101"]);
        m.attributes = attrs
            .iter()
            .map(|(n, v)| Attribute {
                name: (*n).to_owned(),
                value: v.map(str::to_owned),
            })
            .collect();
        m
    }

    #[test]
    fn rtpmap_explicit_static_and_malformed() {
        let m = audio(&[
            ("rtpmap", Some("96 opus/48000/2")),
            ("rtpmap", Some("101 telephone-event/8000")),
            ("rtpmap", Some("97 broken")),
            ("fmtp", Some("101 0-15")),
            ("fmtp", Some("96 useinbandfec=1; stereo=0")),
        ]);
        assert_eq!(
            m.rtpmap(96),
            Some(RtpMap {
                encoding: "opus",
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        assert!(m.rtpmap(101).unwrap().is_telephone_event());
        assert_eq!(m.rtpmap(0).unwrap().encoding, "PCMU");
        assert_eq!(m.rtpmap(8).unwrap().encoding, "PCMA");
        assert_eq!(m.rtpmap(18).unwrap().encoding, "G729");
        assert_eq!(m.rtpmap(3).unwrap().encoding, "GSM");
        assert_eq!(m.rtpmap(4).unwrap().encoding, "G723");
        assert_eq!(m.rtpmap(97), None);
        assert_eq!(m.rtpmap(98), None);
        assert_eq!(m.fmtp(101), Some("0-15"));
        assert_eq!(m.fmtp(96), Some("useinbandfec=1; stereo=0"));
        assert_eq!(m.fmtp(10), None);
        assert_eq!(m.first_codec().unwrap().0, 0);
    }

    #[test]
    fn direction_media_then_session_then_default() {
        let mut s = crate::sdp::fixtures::parse(crate::sdp::fixtures::SIPP_UAC);
        let m = s.media[0].clone();
        assert_eq!(m.direction(&s), Direction::SendRecv);
        let mut bare = m.clone();
        bare.attributes.retain(|a| a.name != "sendrecv");
        assert_eq!(bare.direction(&s), Direction::SendRecv);
        s.attributes.push(Attribute::flag("sendonly"));
        assert_eq!(bare.direction(&s), Direction::SendOnly);
        assert_eq!(m.direction(&s), Direction::SendRecv);
        let mut held = m.clone();
        held.set_direction(Direction::Inactive);
        assert_eq!(held.direction_attr(), Some(Direction::Inactive));
        assert_eq!(
            held.attributes
                .iter()
                .filter(|a| Direction::from_attribute(&a.name).is_some())
                .count(),
            1
        );
        bare.set_direction(Direction::RecvOnly);
        assert_eq!(bare.attributes.last().unwrap().name, "recvonly");
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert!(Direction::RecvOnly.receives() && !Direction::RecvOnly.sends());
    }

    #[test]
    fn ptime_rtcp_mux_and_rtcp() {
        let m = audio(&[
            ("ptime", Some("20")),
            ("maxptime", Some("150")),
            ("rtcp", Some("4001 IN IP4 192.0.2.1")),
            ("rtcp-mux", None),
        ]);
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(m.maxptime(), Some(150));
        assert_eq!(m.rtcp(), Some(4001));
        assert!(m.rtcp_mux());
        let m = audio(&[("ptime", Some("x")), ("rtcp", Some("70000"))]);
        assert_eq!(m.ptime(), None);
        assert_eq!(m.rtcp(), None);
        assert!(!m.rtcp_mux());
    }

    #[test]
    fn connection_ip_and_unspecified() {
        let c = Connection::new("192.0.2.7".parse().unwrap());
        assert_eq!(c.addr_type, AddrType::Ip4);
        assert_eq!(c.ip(), Some("192.0.2.7".parse().unwrap()));
        assert!(!c.is_unspecified());
        let c = Connection {
            net_type: "IN".into(),
            addr_type: AddrType::Ip4,
            address: "0.0.0.0".into(),
        };
        assert!(c.is_unspecified());
        let c = Connection {
            net_type: "IN".into(),
            addr_type: AddrType::Ip4,
            address: "224.2.1.1/127".into(),
        };
        assert_eq!(c.ip(), Some("224.2.1.1".parse().unwrap()));
        let c = Connection::new("2001:db8::1".parse().unwrap());
        assert_eq!(c.addr_type.as_str(), "IP6");
    }

    #[test]
    fn parse_pt_bounds() {
        assert_eq!(parse_pt("0"), Some(0));
        assert_eq!(parse_pt("127"), Some(127));
        assert_eq!(parse_pt("128"), None);
        assert_eq!(parse_pt("+1"), None);
        assert_eq!(parse_pt(""), None);
        assert_eq!(parse_pt("0000"), None);
    }
}
