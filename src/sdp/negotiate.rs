//! Offer/answer for a media-relaying B2BUA (RFC 3264): the B-leg offer limited to the
//! callee's codecs, answer checking, the rewrite of c=/m=/o= to Dialtone's relay, RFC 4733
//! telephone-event payload type mapping and hold detection.
//!
//! Decisions (see also the module docs of [`crate::sdp`]):
//! - **Codec order**: [`filter_offer`] keeps the caller's order. The callee's `allow` list
//!   only says which codecs may pass, as Asterisk does by default (the caller's preference
//!   wins unless `codec_prefs_outgoing_offer` says otherwise).
//! - **telephone-event** is not a codec: every offered telephone-event format is kept (all
//!   clock rates). Comfort noise (`CN`), `red`, `ulpfec` and other formats that are not in the
//!   codec table are removed; video `rtx` is kept when its `apt` codec is kept.
//! - **ICE** (RFC 8445) is removed by [`rewrite_for_relay`]: Dialtone is not an ICE agent. The
//!   relay learns the real source by symmetric RTP latching instead, so the candidates of one
//!   leg would only mislead the other.
//! - **Secure profiles** (`RTP/SAVP` with `a=crypto`) pass unchanged: the relay forwards
//!   packets without decoding. Payload type rewriting (telephone-event) is not possible on
//!   SRTP packets; [`DtmfPtMapping`] gives the information, the relay decides.

use std::net::IpAddr;

use super::codec::{self, Codec, MediaKind};
use super::model::{
    Attribute, Connection, Direction, MediaDescription, Origin, SessionDescription, Timing,
    parse_pt,
};
use super::parse::warning_value;

/// Why an offer or answer cannot be used. Answered with 488 Not Acceptable Here and a
/// `Warning` (RFC 3261 §21.4.26, §20.43); [`NegotiateError::RelayPorts`] is our bug (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// No offered audio codec is allowed for the callee (Warning 305).
    #[error("no common codec: offered {}", offered.join(", "))]
    NoCommonCodec {
        /// The codecs of the offer's audio streams (`PCMU/8000`, ...).
        offered: Vec<String>,
    },
    /// The offer has no audio stream and no other stream we can carry (Warning 304).
    #[error("no acceptable media stream offered")]
    NoAcceptableMedia,
    /// RFC 3264 §6: the answer must have as many m= lines as the offer.
    #[error("answer has {answer} media streams, offer has {offer}")]
    StreamCount { offer: usize, answer: usize },
    /// The m= line at `index` changed its media type.
    #[error("answer stream {index} is {answer:?} but the offer stream is {offer:?}")]
    MediaTypeMismatch {
        index: usize,
        offer: String,
        answer: String,
    },
    /// A stream offered with port 0 must be answered with port 0 (RFC 3264 §6).
    #[error("answer stream {index} accepts a stream the offer disabled")]
    DisabledStreamAccepted { index: usize },
    /// An accepted stream must list at least one format.
    #[error("answer stream {index} has no formats")]
    NoFormats { index: usize },
    /// RFC 3264 §6.1: the answer's formats must come from the offer.
    #[error("answer stream {index} format {format} was not offered")]
    FormatNotOffered { index: usize, format: String },
    /// [`rewrite_for_relay`] needs one port per m= line.
    #[error("{given} relay ports for {needed} media streams")]
    RelayPorts { needed: usize, given: usize },
}

impl NegotiateError {
    /// The SIP status: 488, or 500 for [`NegotiateError::RelayPorts`].
    pub fn status(&self) -> u16 {
        match self {
            NegotiateError::RelayPorts { .. } => 500,
            _ => 488,
        }
    }

    /// RFC 3261 §20.43 warn-code: 304 media type not available, 305 incompatible media
    /// format, 399 miscellaneous.
    pub fn warning_code(&self) -> u16 {
        match self {
            NegotiateError::NoAcceptableMedia | NegotiateError::MediaTypeMismatch { .. } => 304,
            NegotiateError::NoCommonCodec { .. } | NegotiateError::FormatNotOffered { .. } => 305,
            _ => 399,
        }
    }

    /// The warn-text (unquoted).
    pub fn warning_text(&self) -> String {
        match self.warning_code() {
            304 => format!("Media type not available: {self}"),
            305 => format!("Incompatible media format: {self}"),
            _ => format!("Unusable SDP: {self}"),
        }
    }

    /// A complete `Warning` header value: `<code> <agent> "<text>"`.
    pub fn warning_value(&self, agent: &str) -> String {
        warning_value(self.warning_code(), agent, &self.warning_text())
    }
}

fn is_kind(m: &MediaDescription, kind: MediaKind) -> bool {
    m.media.eq_ignore_ascii_case(kind.as_str())
}

/// Attributes that are bound to one payload type by a leading `<pt> `.
const PT_ATTRIBUTES: &[&str] = &["rtpmap", "fmtp", "rtcp-fb"];

/// The leading payload type of `a=rtpmap:96 ...`-style values.
fn leading_pt(value: Option<&str>) -> Option<u8> {
    let v = value?.trim_start();
    let end = v.find([' ', '\t']).unwrap_or(v.len());
    parse_pt(&v[..end])
}

/// `apt=<pt>` of an `rtx` format's fmtp (RFC 4588).
fn rtx_apt(m: &MediaDescription, pt: u8) -> Option<u8> {
    m.fmtp(pt)?.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("apt") {
            parse_pt(v.trim())
        } else {
            None
        }
    })
}

/// What happens to one offered format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Codec,
    Helper,
    Drop,
}

/// Filters one RTP m= line in place; false when no codec remains (the line is then left
/// unchanged for the caller to disable).
fn filter_media(m: &mut MediaDescription, kind: MediaKind, allowed: &[&'static Codec]) -> bool {
    let mut decisions: Vec<(Keep, Option<u8>)> = m
        .formats
        .iter()
        .map(|f| {
            let pt = parse_pt(f);
            let keep = match pt.and_then(|pt| m.rtpmap(pt)) {
                Some(r) if r.is_telephone_event() && kind == MediaKind::Audio => Keep::Helper,
                Some(r) => match r.codec() {
                    Some(c) if c.kind == kind && allowed.iter().any(|a| std::ptr::eq(*a, c)) => {
                        Keep::Codec
                    }
                    _ => Keep::Drop,
                },
                None => Keep::Drop,
            };
            (keep, pt)
        })
        .collect();
    if !decisions.iter().any(|(k, _)| *k == Keep::Codec) {
        return false;
    }
    if kind == MediaKind::Video {
        for i in 0..decisions.len() {
            let Some(pt) = decisions[i].1 else { continue };
            if decisions[i].0 != Keep::Drop
                || !m
                    .rtpmap(pt)
                    .is_some_and(|r| r.encoding.eq_ignore_ascii_case("rtx"))
            {
                continue;
            }
            let apt_kept = rtx_apt(m, pt).is_some_and(|apt| {
                decisions
                    .iter()
                    .any(|(k, p)| *k == Keep::Codec && *p == Some(apt))
            });
            if apt_kept {
                decisions[i].0 = Keep::Helper;
            }
        }
    }
    let removed: Vec<u8> = decisions
        .iter()
        .filter(|(k, _)| *k == Keep::Drop)
        .filter_map(|(_, pt)| *pt)
        .collect();
    let mut keep = decisions.iter().map(|(k, _)| *k != Keep::Drop);
    m.formats.retain(|_| keep.next().unwrap_or(false));
    if !removed.is_empty() {
        m.attributes.retain(|a| {
            !(PT_ATTRIBUTES.iter().any(|n| a.name.eq_ignore_ascii_case(n))
                && leading_pt(a.value.as_deref()).is_some_and(|pt| removed.contains(&pt)))
        });
    }
    true
}

/// The B-leg offer: per audio/video m= line, only the formats whose codec is in `allowed`
/// (the callee's Asterisk codec names, e.g. `["ulaw", "alaw", "g722"]`), in the OFFER's order,
/// plus every telephone-event format. `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` lines of removed
/// formats are dropped; everything else (ptime, direction, unknown attributes) is kept.
///
/// A stream with no allowed codec left is disabled (port 0, otherwise unchanged), as is every
/// stream that is neither RTP audio nor RTP video. Errors: an offer whose audio streams all
/// end up disabled → [`NegotiateError::NoCommonCodec`]; an offer without active audio and
/// with nothing else left → [`NegotiateError::NoAcceptableMedia`].
pub fn filter_offer<S: AsRef<str>>(
    offer: &SessionDescription,
    allowed: &[S],
) -> Result<SessionDescription, NegotiateError> {
    let mut out = offer.clone();
    filter_offer_in_place(&mut out, allowed)?;
    Ok(out)
}

/// [`filter_offer`] without the copy, for a caller that no longer needs the original offer.
/// On error the description is left partly filtered (its streams disabled).
pub fn filter_offer_in_place<S: AsRef<str>>(
    sdp: &mut SessionDescription,
    allowed: &[S],
) -> Result<(), NegotiateError> {
    let allowed: Vec<&'static Codec> = allowed
        .iter()
        .filter_map(|n| codec::codec_by_name(n.as_ref()))
        .collect();
    let (mut audio_kept, mut any_kept) = (false, false);
    // indices of the active audio streams this call disables (for the error text)
    let mut disabled_audio: Vec<usize> = Vec::new();
    for (i, m) in sdp.media.iter_mut().enumerate() {
        if m.port == 0 {
            continue;
        }
        let kind = [MediaKind::Audio, MediaKind::Video]
            .into_iter()
            .find(|k| is_kind(m, *k));
        let audio = kind == Some(MediaKind::Audio);
        let kept = match kind {
            Some(kind) if m.is_rtp() => filter_media(m, kind, &allowed),
            _ => false,
        };
        if kept {
            audio_kept |= audio;
            any_kept = true;
        } else {
            m.port = 0;
            if audio {
                disabled_audio.push(i);
            }
        }
    }
    if !audio_kept && !disabled_audio.is_empty() {
        return Err(NegotiateError::NoCommonCodec {
            offered: offered_codecs(disabled_audio.iter().filter_map(|&i| sdp.media.get(i))),
        });
    }
    if !any_kept {
        return Err(NegotiateError::NoAcceptableMedia);
    }
    Ok(())
}

/// `PCMU/8000`-style names of the codecs of these streams (for the warning).
fn offered_codecs<'a>(streams: impl Iterator<Item = &'a MediaDescription>) -> Vec<String> {
    let mut out = Vec::new();
    for m in streams {
        for f in &m.formats {
            let name = match m.format_rtpmap(f) {
                Some(r) if r.is_telephone_event() => continue,
                Some(r) => format!("{}/{}", r.encoding, r.clock_rate),
                None => f.clone(),
            };
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Is the answer's format `f` one of the offer's? Same payload type, or (a dynamic payload
/// type renumbered by the answerer, RFC 3264 §6.1 "SHOULD") the same encoding and rate.
fn format_offered(offer: &MediaDescription, answer: &MediaDescription, f: &str) -> bool {
    let Some(pt) = parse_pt(f) else {
        return offer.formats.iter().any(|o| o == f);
    };
    match answer.rtpmap(pt) {
        Some(a) => offer.formats.iter().any(|o| {
            offer.format_rtpmap(o).is_some_and(|r| {
                r.encoding.eq_ignore_ascii_case(a.encoding) && r.clock_rate == a.clock_rate
            })
        }),
        None => offer.formats.iter().any(|o| parse_pt(o) == Some(pt)),
    }
}

/// Checks an answer against its offer (RFC 3264 §6): the same number of m= lines with the same
/// media types; a stream offered with port 0 answered with port 0; an accepted stream lists
/// formats, all taken from the offer. Port 0 in the answer (a rejected stream) is always fine.
/// Direction attributes are not checked (phones that answer `sendonly` with `sendrecv` are
/// common and harmless for a relay).
pub fn check_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<(), NegotiateError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiateError::StreamCount {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    for (index, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
        if !o.media.eq_ignore_ascii_case(&a.media) {
            return Err(NegotiateError::MediaTypeMismatch {
                index,
                offer: o.media.clone(),
                answer: a.media.clone(),
            });
        }
        if a.port == 0 {
            continue;
        }
        if o.port == 0 {
            return Err(NegotiateError::DisabledStreamAccepted { index });
        }
        if a.formats.is_empty() {
            return Err(NegotiateError::NoFormats { index });
        }
        if let Some(f) = a.formats.iter().find(|f| !format_offered(o, a, f)) {
            return Err(NegotiateError::FormatNotOffered {
                index,
                format: f.clone(),
            });
        }
    }
    Ok(())
}

/// Dialtone's own `o=` line for one leg: a fixed `sess-id` and a `sess-version` that is
/// incremented each time the session description sent on that leg changes (RFC 3264 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOrigin {
    pub sess_id: u64,
    pub sess_version: u64,
}

impl LocalOrigin {
    /// A new origin; the version starts at the id (the usual convention, as Asterisk does).
    pub fn new(sess_id: u64) -> Self {
        LocalOrigin {
            sess_id,
            sess_version: sess_id,
        }
    }

    /// Recovers the state from an `o=` line Dialtone sent earlier (numeric id and version).
    pub fn from_origin(origin: &Origin) -> Option<Self> {
        Some(LocalOrigin {
            sess_id: origin.sess_id.parse().ok()?,
            sess_version: origin.sess_version.parse().ok()?,
        })
    }

    /// The next version (for a re-INVITE or UPDATE whose SDP changed).
    pub fn bump(&mut self) {
        self.sess_version = self.sess_version.wrapping_add(1);
    }

    /// `o=- <sess-id> <sess-version> IN IP4|IP6 <ip>`.
    pub fn origin(&self, ip: IpAddr) -> Origin {
        let c = Connection::new(ip);
        Origin {
            username: "-".to_owned(),
            sess_id: self.sess_id.to_string(),
            sess_version: self.sess_version.to_string(),
            net_type: c.net_type,
            addr_type: c.addr_type,
            address: c.address,
        }
    }
}

/// ICE attributes (RFC 8839), removed by [`rewrite_for_relay`].
fn is_ice(a: &Attribute) -> bool {
    let n = a.name.as_str();
    n.as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"ice-"))
        || ["candidate", "remote-candidates", "end-of-candidates"]
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x))
}

/// Points a session description at Dialtone's relay:
/// - `o=` becomes `origin` (bumped first when `session_version_bump`: a re-INVITE or UPDATE
///   whose SDP changed, see [`SessionDescription::content_eq`]);
/// - session-level `c=` is `IN IP4|IP6 <relay_ip>`; media-level `c=` lines are removed;
/// - every m= line that is not disabled (port 0) gets `ports[i]` (the relay's RTP port for
///   that line; the relay's RTCP port is `port + 1`), without `/<number of ports>`;
/// - `a=rtcp:` becomes `<rtcp port> IN IP4|IP6 <relay_ip>` (RFC 3605). The RTCP port is
///   `port + 1`, except with `a=rtcp-mux` when the original `a=rtcp` named the RTP port
///   itself (an answer accepting multiplexing): then it is `port`. With `a=rtcp-mux` in an
///   offer, `a=rtcp` names the fallback port used if the answerer declines multiplexing
///   (RFC 5761 §5.1.3), which is the relay's `port + 1`;
/// - ICE (`a=ice-*`, `a=candidate`, `a=remote-candidates`, `a=end-of-candidates`) is
///   removed: Dialtone is not an ICE agent, the relay latches on the source instead;
/// - a missing `t=` becomes `t=0 0`; everything else (ptime, rtpmap, fmtp, direction for
///   hold/resume, unknown lines) is kept.
///
/// Nothing is changed when `ports` is shorter than the m= lines ([`NegotiateError::RelayPorts`]).
pub fn rewrite_for_relay(
    sdp: &mut SessionDescription,
    relay_ip: IpAddr,
    ports: &[u16],
    origin: &mut LocalOrigin,
    session_version_bump: bool,
) -> Result<(), NegotiateError> {
    if ports.len() < sdp.media.len() {
        return Err(NegotiateError::RelayPorts {
            needed: sdp.media.len(),
            given: ports.len(),
        });
    }
    if session_version_bump {
        origin.bump();
    }
    let conn = Connection::new(relay_ip);
    sdp.origin = origin.origin(relay_ip);
    sdp.connection = Some(conn.clone());
    sdp.unknown.retain(|l| !l.starts_with("c="));
    sdp.attributes.retain(|a| !is_ice(a));
    if sdp.times.is_empty() {
        sdp.times.push(Timing::unbounded());
    }
    for (m, &port) in sdp.media.iter_mut().zip(ports) {
        m.connection = None;
        m.unknown.retain(|l| !l.starts_with("c="));
        m.attributes.retain(|a| !is_ice(a));
        if m.port == 0 {
            continue;
        }
        let muxed_on_rtp_port = m.rtcp_mux() && m.rtcp() == Some(m.port);
        m.port = port;
        m.port_count = None;
        let rtcp_port = if muxed_on_rtp_port {
            Some(port)
        } else {
            port.checked_add(1)
        };
        m.attributes.retain_mut(|a| {
            if !a.name.eq_ignore_ascii_case("rtcp") {
                return true;
            }
            let Some(p) = rtcp_port else { return false };
            a.value = Some(format!(
                "{p} {} {} {}",
                conn.net_type,
                conn.addr_type.as_str(),
                conn.address
            ));
            true
        });
    }
    Ok(())
}

/// The payload type Dialtone gives telephone-event in an offer of its own.
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;

/// An offer of Dialtone's own (click-to-dial, where no phone has offered yet): one audio
/// stream at `ip:port` with `codecs` (Asterisk names, in preference order; unknown and
/// non-audio names are skipped) plus RFC 4733 telephone-event 0-16, ptime 20, sendrecv.
/// Static payload types where RFC 3551 has one, dynamic ones from 96 otherwise.
pub fn build_offer<S: AsRef<str>>(
    codecs: &[S],
    ip: IpAddr,
    port: u16,
    origin: &LocalOrigin,
) -> Result<SessionDescription, NegotiateError> {
    let mut formats = Vec::new();
    let mut attributes = Vec::new();
    let mut dynamic = 96u8;
    for name in codecs {
        let Some(c) = codec::codec_by_name(name.as_ref()).filter(|c| c.kind == MediaKind::Audio)
        else {
            continue;
        };
        let pt = match c.static_pt {
            Some(pt) => pt,
            None => {
                let pt = dynamic;
                dynamic += 1;
                if dynamic == OFFER_TELEPHONE_EVENT_PT {
                    dynamic += 1;
                }
                pt
            }
        };
        if formats.contains(&pt.to_string()) {
            continue;
        }
        formats.push(pt.to_string());
        let rtpmap = match c.channels {
            Some(ch) => format!("{pt} {}/{}/{ch}", c.encoding, c.clock_rate),
            None => format!("{pt} {}/{}", c.encoding, c.clock_rate),
        };
        attributes.push(Attribute::new("rtpmap", rtpmap));
    }
    if formats.is_empty() {
        return Err(NegotiateError::NoCommonCodec {
            offered: codecs.iter().map(|c| c.as_ref().to_owned()).collect(),
        });
    }
    let te = OFFER_TELEPHONE_EVENT_PT;
    formats.push(te.to_string());
    attributes.push(Attribute::new(
        "rtpmap",
        format!("{te} telephone-event/8000"),
    ));
    attributes.push(Attribute::new("fmtp", format!("{te} 0-16")));
    attributes.push(Attribute::new("ptime", "20"));
    attributes.push(Attribute::flag("sendrecv"));
    let fmts: Vec<&str> = formats.iter().map(String::as_str).collect();
    let mut m = MediaDescription::new("audio", port, "RTP/AVP", &fmts);
    m.attributes = attributes;
    Ok(SessionDescription {
        origin: origin.origin(ip),
        session_name: "Dialtone".into(),
        information: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::new(ip)),
        bandwidths: Vec::new(),
        times: vec![Timing::unbounded()],
        zone: None,
        key: None,
        attributes: Vec::new(),
        unknown: Vec::new(),
        media: vec![m],
    })
}

/// The RFC 4733 telephone-event payload type of an m= line: the one whose clock rate matches
/// the first codec's (RFC 4733 §2.1: events use the audio clock), else the 8000 Hz one, else
/// the first one.
pub fn dtmf_pt(m: &MediaDescription) -> Option<u8> {
    let codec_rate = m.first_codec().map(|(_, r)| r.clock_rate);
    let mut events = m
        .rtpmaps()
        .filter(|(_, r)| r.is_telephone_event())
        .map(|(pt, r)| (pt, r.clock_rate));
    let first = events.next()?;
    let mut by_8000 = (first.1 == 8000).then_some(first.0);
    if Some(first.1) == codec_rate {
        return Some(first.0);
    }
    for (pt, rate) in events {
        if Some(rate) == codec_rate {
            return Some(pt);
        }
        if rate == 8000 && by_8000.is_none() {
            by_8000 = Some(pt);
        }
    }
    Some(by_8000.unwrap_or(first.0))
}

/// The telephone-event payload types of the two legs of a relayed call: `a_leg` is the one
/// negotiated with A's endpoint (what it sends and expects), `b_leg` the one negotiated with B's
/// ([`dtmf_pt`] of each leg's negotiated m= line). The relay rewrites the RTP payload type byte
/// of event packets going from one leg to the other when they differ.
///
/// When the B-leg offer is A's offer filtered and A's answer is B's answer (the plain call),
/// RFC 3264 keeps one numbering end to end and no rewrite is needed; the legs differ when they
/// were negotiated separately (a transfer or pickup joins a leg to another one, click-to-dial
/// offers Dialtone's own SDP to both phones, an answerer renumbers a dynamic payload type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPtMapping {
    pub a_leg: Option<u8>,
    pub b_leg: Option<u8>,
}

impl DtmfPtMapping {
    pub fn new(a_leg: Option<u8>, b_leg: Option<u8>) -> Self {
        DtmfPtMapping { a_leg, b_leg }
    }

    /// From the negotiated m= lines of both legs.
    pub fn from_media(a_leg: &MediaDescription, b_leg: &MediaDescription) -> Self {
        DtmfPtMapping::new(dtmf_pt(a_leg), dtmf_pt(b_leg))
    }

    /// Both legs negotiated telephone-event (RFC 4733 DTMF can be relayed).
    pub fn relays_events(&self) -> bool {
        self.a_leg.is_some() && self.b_leg.is_some()
    }

    /// Both legs use telephone-event, with different payload types.
    pub fn needs_rewrite(&self) -> bool {
        matches!((self.a_leg, self.b_leg), (Some(a), Some(b)) if a != b)
    }

    /// The payload type to write into a packet forwarded from A to B (the packet's own when
    /// it is not A's telephone-event).
    pub fn a_to_b(&self, pt: u8) -> u8 {
        match (self.a_leg, self.b_leg) {
            (Some(a), Some(b)) if pt == a => b,
            _ => pt,
        }
    }

    /// The payload type to write into a packet forwarded from B to A.
    pub fn b_to_a(&self, pt: u8) -> u8 {
        match (self.a_leg, self.b_leg) {
            (Some(a), Some(b)) if pt == b => a,
            _ => pt,
        }
    }
}

/// Is this stream put on hold by the side that sent the description? `sendonly` or `inactive`
/// (media-level, else session-level; RFC 3264 §8.4), or the RFC 2543 style `c=0.0.0.0`
/// (media-level, else session-level). A disabled stream (port 0) is not on hold.
///
/// Takes the whole session (not only its `c=`) because the direction may be session-level.
pub fn is_hold(m: &MediaDescription, session: &SessionDescription) -> bool {
    if m.port == 0 {
        return false;
    }
    matches!(
        m.direction(session),
        Direction::SendOnly | Direction::Inactive
    ) || session
        .connection_for(m)
        .is_some_and(Connection::is_unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::fixtures::{self, parse};

    const RELAY: &str = "203.0.113.1";

    fn relay() -> IpAddr {
        RELAY.parse().unwrap()
    }

    #[test]
    fn filter_keeps_offer_order_and_drops_unallowed() {
        let offer = parse(fixtures::YEALINK);
        // callee prefers alaw first: the caller's order (G722 PCMU PCMA ...) still wins
        let out = filter_offer(&offer, &["alaw", "ulaw", "opus"]).unwrap();
        let m = &out.media[0];
        assert_eq!(m.formats, ["0", "8", "107", "101", "102"]);
        assert_eq!(m.port, 11800);
        assert!(m.rtpmap(9).is_some(), "static PT still resolves");
        assert!(
            !m.attributes.iter().any(|a| a
                .value
                .as_deref()
                .is_some_and(|v| v.starts_with("9 ") || v.starts_with("18 "))),
            "rtpmap/fmtp of G722 and G729 removed"
        );
        assert_eq!(m.fmtp(107), Some("useinbandfec=1"));
        assert_eq!(m.fmtp(101), Some("0-15"));
        assert_eq!(m.fmtp(102), Some("0-15"));
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(m.direction(&out), Direction::SendRecv);
        // only the audio m= line content changed
        let mut back = out.clone();
        back.media[0] = offer.media[0].clone();
        assert_eq!(back, offer);
    }

    #[test]
    fn filter_microsip_exact_text() {
        let offer = parse(fixtures::MICROSIP);
        let out = filter_offer(&offer, &["ulaw".to_string(), "alaw".to_string()]).unwrap();
        assert_eq!(
            out.media[0].print(),
            "m=audio 4000 RTP/AVP 0 8 101\r\n\
             c=IN IP4 192.168.1.50\r\n\
             b=TIAS:64000\r\n\
             a=rtcp:4001 IN IP4 192.168.1.50\r\n\
             a=sendrecv\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ssrc:1432405376 cname:2c8a6b1e0e4f4b5d\r\n"
        );
    }

    #[test]
    fn filter_names_are_case_insensitive_and_aliases_work() {
        let offer = parse(fixtures::SIPP_UAC);
        let out = filter_offer(&offer, &["PCMU"]).unwrap();
        assert_eq!(out.media[0].formats, ["0", "101"]);
        let out = filter_offer(&offer, &["ALAW", "nonsense"]).unwrap();
        assert_eq!(out.media[0].formats, ["8", "101"]);
    }

    #[test]
    fn filter_video_and_other_streams() {
        let offer = parse(fixtures::LINPHONE);
        let out = filter_offer(&offer, &["ulaw", "vp8"]).unwrap();
        let (a, v) = (&out.media[0], &out.media[1]);
        assert_eq!(a.formats, ["0", "101", "99", "100"]);
        assert!(a.fmtp(18).is_none() && a.fmtp(96).is_none());
        assert!(a.rtcp_mux() && a.has_attribute("candidate"));
        assert_eq!(v.port, 9078);
        assert_eq!(v.formats, ["96", "98"], "rtx of VP8 kept");
        assert!(v.fmtp(97).is_none());
        assert!(
            v.attributes
                .iter()
                .filter(|x| x.name == "rtcp-fb")
                .all(|x| !x.value.as_deref().unwrap().starts_with("97 ")
                    && !x.value.as_deref().unwrap().starts_with("99 "))
        );
        assert!(v.has_attribute("rtcp-fb"), "rtcp-fb:* and 96 kept");

        // no video codec allowed: video disabled, audio kept
        let out = filter_offer(&offer, &["ulaw"]).unwrap();
        assert_eq!(out.media[1].port, 0);
        assert_eq!(out.media[1].formats, offer.media[1].formats);

        // T.38 and an application stream are disabled
        let mut offer = parse(fixtures::SIPP_UAC);
        offer
            .media
            .push(MediaDescription::new("image", 6010, "udptl", &["t38"]));
        let out = filter_offer(&offer, &["alaw"]).unwrap();
        assert_eq!(out.media[1].port, 0);

        // video only, allowed: fine
        let mut video_only = parse(fixtures::LINPHONE);
        video_only.media.remove(0);
        let out = filter_offer(&video_only, &["h264"]).unwrap();
        assert_eq!(out.media[0].formats, ["97", "99"], "H264 and its rtx");
        // image only: nothing we can carry
        let mut image_only = parse(fixtures::SIPP_UAC);
        image_only.media[0] = MediaDescription::new("image", 6010, "udptl", &["t38"]);
        assert_eq!(
            filter_offer(&image_only, &["alaw"]).unwrap_err(),
            NegotiateError::NoAcceptableMedia
        );
        assert_eq!(
            NegotiateError::NoAcceptableMedia.warning_value("pbx"),
            "304 pbx \"Media type not available: no acceptable media stream offered\""
        );
    }

    #[test]
    fn filter_no_common_codec_is_488_305() {
        let offer = parse(fixtures::MICROSIP);
        let e = filter_offer(&offer, &["g729", "gsm"]).unwrap_err();
        assert_eq!(
            e,
            NegotiateError::NoCommonCodec {
                offered: vec!["PCMU/8000".into(), "PCMA/8000".into(), "G722/8000".into()]
            }
        );
        assert_eq!(e.status(), 488);
        assert_eq!(
            e.warning_value("dialtone"),
            "305 dialtone \"Incompatible media format: no common codec: offered PCMU/8000, \
             PCMA/8000, G722/8000\""
        );
        // an empty allow list, and an offer with only telephone-event
        assert!(matches!(
            filter_offer::<&str>(&offer, &[]),
            Err(NegotiateError::NoCommonCodec { .. })
        ));
        let mut te_only = offer.clone();
        te_only.media[0].formats = vec!["101".into()];
        assert!(matches!(
            filter_offer(&te_only, &["ulaw"]),
            Err(NegotiateError::NoCommonCodec { .. })
        ));
    }

    #[test]
    fn filter_in_place_matches_filter() {
        for (_, text) in fixtures::ALL {
            let offer = parse(text);
            for allowed in [&["alaw", "g722", "vp8"][..], &["g729"]] {
                let mut in_place = offer.clone();
                let r = filter_offer_in_place(&mut in_place, allowed);
                match filter_offer(&offer, allowed) {
                    Ok(out) => assert_eq!((r, in_place), (Ok(()), out)),
                    Err(e) => assert_eq!(r, Err(e)),
                }
            }
        }
    }

    #[test]
    fn filter_second_audio_stream_without_codec_is_disabled() {
        let mut offer = parse(fixtures::SIPP_UAC);
        let mut second = offer.media[0].clone();
        second.port = 6002;
        second.formats = vec!["18".into()];
        offer.media.push(second);
        let out = filter_offer(&offer, &["alaw"]).unwrap();
        assert_eq!((out.media[0].port, out.media[1].port), (6000, 0));
        assert_eq!(out.media[1].formats, ["18"]);
    }

    #[test]
    fn check_answer_accepts_valid_answers() {
        let offer = parse(fixtures::SIPP_UAC);
        let answer = parse(fixtures::SIPP_UAS);
        assert_eq!(check_answer(&offer, &answer), Ok(()));
        // rejected stream
        let mut rejected = answer.clone();
        rejected.media[0].port = 0;
        assert_eq!(check_answer(&offer, &rejected), Ok(()));
        // telephone-event renumbered by the answerer (RFC 3264 §6.1 SHOULD, not MUST)
        let mut renumbered = answer.clone();
        renumbered.media[0].formats = vec!["8".into(), "96".into()];
        renumbered.media[0].attributes[1] = Attribute::new("rtpmap", "96 telephone-event/8000");
        assert_eq!(check_answer(&offer, &renumbered), Ok(()));
        // an answer to a multi-stream offer that rejects video
        let offer = parse(fixtures::LINPHONE);
        let mut answer = offer.clone();
        answer.media[0].formats = vec!["0".into(), "100".into()];
        answer.media[1].port = 0;
        assert_eq!(check_answer(&offer, &answer), Ok(()));
    }

    #[test]
    fn check_answer_errors() {
        let offer = parse(fixtures::SIPP_UAC);
        let answer = parse(fixtures::SIPP_UAS);

        let mut two = answer.clone();
        two.media.push(answer.media[0].clone());
        assert_eq!(
            check_answer(&offer, &two),
            Err(NegotiateError::StreamCount {
                offer: 1,
                answer: 2
            })
        );

        let mut video = answer.clone();
        video.media[0].media = "video".into();
        assert_eq!(
            check_answer(&offer, &video),
            Err(NegotiateError::MediaTypeMismatch {
                index: 0,
                offer: "audio".into(),
                answer: "video".into()
            })
        );

        let mut g729 = answer.clone();
        g729.media[0].formats = vec!["18".into(), "101".into()];
        let e = check_answer(&offer, &g729).unwrap_err();
        assert_eq!(
            e,
            NegotiateError::FormatNotOffered {
                index: 0,
                format: "18".into()
            }
        );
        assert_eq!((e.status(), e.warning_code()), (488, 305));

        // PT 101 in the answer maps to another encoding than the offer's 101
        let mut clash = answer.clone();
        clash.media[0].attributes[1] = Attribute::new("rtpmap", "101 opus/48000/2");
        assert!(matches!(
            check_answer(&offer, &clash),
            Err(NegotiateError::FormatNotOffered { .. })
        ));

        let mut empty = answer.clone();
        empty.media[0].formats.clear();
        assert_eq!(
            check_answer(&offer, &empty),
            Err(NegotiateError::NoFormats { index: 0 })
        );

        let mut disabled = offer.clone();
        disabled.media[0].port = 0;
        assert_eq!(
            check_answer(&disabled, &answer),
            Err(NegotiateError::DisabledStreamAccepted { index: 0 })
        );
        assert_eq!(
            check_answer(
                &offer,
                &parse("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n")
            ),
            Err(NegotiateError::StreamCount {
                offer: 1,
                answer: 0
            })
        );
    }

    #[test]
    fn rewrite_for_relay_exact_text() {
        let offer = parse(fixtures::MICROSIP);
        let mut out = filter_offer(&offer, &["ulaw", "alaw"]).unwrap();
        let mut origin = LocalOrigin::new(42);
        rewrite_for_relay(&mut out, relay(), &[30000], &mut origin, false).unwrap();
        let text = out.print();
        assert_eq!(
            text,
            "v=0\r\n\
             o=- 42 42 IN IP4 203.0.113.1\r\n\
             s=pjmedia\r\n\
             c=IN IP4 203.0.113.1\r\n\
             b=AS:84\r\n\
             t=0 0\r\n\
             a=X-nat:0\r\n\
             m=audio 30000 RTP/AVP 0 8 101\r\n\
             b=TIAS:64000\r\n\
             a=rtcp:30001 IN IP4 203.0.113.1\r\n\
             a=sendrecv\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ssrc:1432405376 cname:2c8a6b1e0e4f4b5d\r\n"
        );
        assert_eq!(parse(&text), out);

        // re-INVITE putting the call on hold: same sess-id, version + 1, direction kept
        let mut hold = parse(fixtures::HOLD_SENDONLY);
        rewrite_for_relay(&mut hold, relay(), &[30000], &mut origin, true).unwrap();
        assert_eq!(hold.origin.sess_id, "42");
        assert_eq!(hold.origin.sess_version, "43");
        assert_eq!(hold.media[0].direction(&hold), Direction::SendOnly);
        assert_eq!(LocalOrigin::from_origin(&hold.origin), Some(origin));
        assert!(!hold.content_eq(&out));
    }

    #[test]
    fn rewrite_linphone_drops_ice_and_keeps_mux() {
        let offer = parse(fixtures::LINPHONE);
        let mut out = filter_offer(&offer, &["opus", "ulaw", "vp8"]).unwrap();
        let ip6: IpAddr = "2001:db8::7".parse().unwrap();
        let mut origin = LocalOrigin::new(7);
        rewrite_for_relay(&mut out, ip6, &[40000, 40002], &mut origin, false).unwrap();
        let text = out.print();
        assert!(
            !text.contains("ice-") && !text.contains("candidate"),
            "{text}"
        );
        assert!(!text.contains("192.168.1.77"), "{text}");
        assert!(text.contains("o=- 7 7 IN IP6 2001:db8::7\r\n"));
        assert!(text.contains("\r\nc=IN IP6 2001:db8::7\r\nt=0 0\r\n"));
        assert!(text.contains("m=audio 40000 RTP/AVP 96 0 101 99 100\r\n"));
        // Linphone's a=rtcp:7079 next to rtcp-mux is the non-mux fallback → relay port + 1
        assert!(text.contains("a=rtcp-mux\r\na=rtcp:40001 IN IP6 2001:db8::7\r\n"));
        assert!(text.contains("m=video 40002 RTP/AVP 96 98\r\n"));
        assert!(text.contains("a=rtcp-xr:"), "unknown attributes kept");
        assert_eq!(parse(&text), out);
    }

    #[test]
    fn rewrite_disabled_streams_ports_and_errors() {
        let offer = parse(fixtures::LINPHONE);
        let mut out = filter_offer(&offer, &["ulaw"]).unwrap();
        let mut origin = LocalOrigin::new(1);
        let before = out.clone();
        assert_eq!(
            rewrite_for_relay(&mut out, relay(), &[40000], &mut origin, true),
            Err(NegotiateError::RelayPorts {
                needed: 2,
                given: 1
            })
        );
        assert_eq!(out, before, "nothing changed on error");
        assert_eq!(origin, LocalOrigin::new(1));
        rewrite_for_relay(&mut out, relay(), &[40000, 40002], &mut origin, false).unwrap();
        assert_eq!(out.media[1].port, 0, "disabled video stays disabled");
        assert!(out.media[1].connection.is_none());

        // an answer accepting rtcp-mux names the RTP port in a=rtcp: it stays muxed
        let mut s = parse(fixtures::SIPP_UAS);
        s.media[0].attributes.push(Attribute::flag("rtcp-mux"));
        s.media[0].attributes.push(Attribute::new("rtcp", "6002"));
        rewrite_for_relay(&mut s, relay(), &[30000], &mut origin, false).unwrap();
        assert_eq!(
            s.media[0].attribute_value("rtcp"),
            Some("30000 IN IP4 203.0.113.1")
        );
        // port 65535 without mux: no room for RTCP, a=rtcp removed
        let mut s = parse(fixtures::MICROSIP);
        rewrite_for_relay(&mut s, relay(), &[65535], &mut origin, false).unwrap();
        assert_eq!(s.media[0].rtcp(), None);
        // port_count dropped, missing t= added
        let mut s = parse("v=0\no=x 1 1 IN IP4 192.0.2.9\ns=-\nm=audio 5004/2 RTP/AVP 0\n");
        rewrite_for_relay(&mut s, relay(), &[30000], &mut origin, false).unwrap();
        assert_eq!(s.media[0].port_count, None);
        assert_eq!(s.times, [Timing::unbounded()]);
    }

    #[test]
    fn local_origin_helpers() {
        let mut o = LocalOrigin::new(5);
        o.bump();
        assert_eq!(o.sess_version, 6);
        let printed = o.origin(relay());
        assert_eq!(LocalOrigin::from_origin(&printed), Some(o));
        let mut max = LocalOrigin {
            sess_id: 1,
            sess_version: u64::MAX,
        };
        max.bump();
        assert_eq!(max.sess_version, 0);
        let foreign = parse(fixtures::LINPHONE).origin;
        assert_eq!(
            LocalOrigin::from_origin(&foreign),
            Some(LocalOrigin {
                sess_id: 3421,
                sess_version: 1834
            })
        );
    }

    #[test]
    fn dtmf_payload_types() {
        assert_eq!(dtmf_pt(&parse(fixtures::MICROSIP).media[0]), Some(101));
        assert_eq!(dtmf_pt(&parse(fixtures::SIPP_UAS).media[0]), Some(101));
        // Yealink: G722 first (8000 Hz RTP clock) → the 8000 Hz event
        assert_eq!(dtmf_pt(&parse(fixtures::YEALINK).media[0]), Some(101));
        // Linphone: opus first (48000) → the 48000 Hz event, listed first
        let lin = parse(fixtures::LINPHONE);
        assert_eq!(dtmf_pt(&lin.media[0]), Some(101));
        // with only PCMU left → 100 (8000)
        let f = filter_offer(&lin, &["ulaw"]).unwrap();
        assert_eq!(dtmf_pt(&f.media[0]), Some(100));
        // speex16 first → 99 (16000)
        let f = filter_offer(&lin, &["speex16", "ulaw"]).unwrap();
        assert_eq!(dtmf_pt(&f.media[0]), Some(99));
        assert_eq!(dtmf_pt(&lin.media[1]), None);
    }

    #[test]
    fn dtmf_mapping() {
        let same = DtmfPtMapping::new(Some(101), Some(101));
        assert!(same.relays_events() && !same.needs_rewrite());
        assert_eq!(same.a_to_b(101), 101);

        let a = parse(fixtures::SIPP_UAC);
        let mut b = parse(fixtures::SIPP_UAS);
        b.media[0].formats = vec!["8".into(), "96".into()];
        b.media[0].attributes[1] = Attribute::new("rtpmap", "96 telephone-event/8000");
        let map = DtmfPtMapping::from_media(&a.media[0], &b.media[0]);
        assert_eq!(map, DtmfPtMapping::new(Some(101), Some(96)));
        assert!(map.needs_rewrite());
        assert_eq!((map.a_to_b(101), map.a_to_b(8)), (96, 8));
        assert_eq!((map.b_to_a(96), map.b_to_a(8)), (101, 8));

        let one_sided = DtmfPtMapping::new(Some(101), None);
        assert!(!one_sided.relays_events() && !one_sided.needs_rewrite());
        assert_eq!(one_sided.a_to_b(101), 101);
    }

    #[test]
    fn hold_detection() {
        let cases = [
            (fixtures::SIPP_UAC, false),
            (fixtures::HOLD_SENDONLY, true),
            (fixtures::HOLD_INACTIVE, true),
            (fixtures::HOLD_RFC2543, true),
            (fixtures::HOLD_SESSION_LEVEL, true),
        ];
        for (text, held) in cases {
            let s = parse(text);
            assert_eq!(is_hold(&s.media[0], &s), held, "{text}");
            assert_eq!(parse(&s.print()), s);
        }
        // recvonly from the offerer is not hold; a disabled stream is not hold
        let mut s = parse(fixtures::SIPP_UAC);
        s.media[0].set_direction(Direction::RecvOnly);
        assert!(!is_hold(&s.media[0], &s));
        let mut s = parse(fixtures::HOLD_SENDONLY);
        s.media[0].port = 0;
        assert!(!is_hold(&s.media[0], &s));
        // resume: sendrecv again after hold
        let mut s = parse(fixtures::HOLD_SENDONLY);
        s.media[0].set_direction(Direction::SendRecv);
        assert!(!is_hold(&s.media[0], &s));
    }
}
