//! Codec names: Asterisk's `allow=` names ↔ SDP encoding names (RFC 3551, RFC 4855 media
//! type registrations), and the RFC 3551 static payload type table.
//!
//! Matching is case-insensitive on both sides (`allow=ULAW`, `a=rtpmap:0 pcmu/8000`).
//! RFC 4733 `telephone-event` is not a codec: it is never in this table and
//! [`super::filter_offer`] keeps it whenever it is offered.

use super::model::RtpMap;

/// RFC 4733 DTMF events.
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// What kind of `m=` line a codec belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    Text,
}

impl MediaKind {
    /// The `m=` media token.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
        }
    }

    /// Parses an `m=` media token (case-insensitive); `None` for `application`, `image`, ...
    pub fn from_media(media: &str) -> Option<Self> {
        [MediaKind::Audio, MediaKind::Video, MediaKind::Text]
            .into_iter()
            .find(|k| media.eq_ignore_ascii_case(k.as_str()))
    }
}

/// One codec: its Asterisk name and its SDP `rtpmap` encoding.
#[derive(Debug, PartialEq, Eq)]
pub struct Codec {
    /// Asterisk name as used in `allow=` (`ulaw`, `alaw`, ...).
    pub name: &'static str,
    /// SDP encoding name as registered (`PCMU`, `G726-32`, `opus`, ...).
    pub encoding: &'static str,
    /// RTP clock rate of the `a=rtpmap` line (8000 for G.722, RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// Channel count written in `a=rtpmap` (`opus/48000/2`).
    pub channels: Option<u16>,
    pub kind: MediaKind,
    /// RFC 3551 static payload type, if any.
    pub static_pt: Option<u8>,
}

const fn c(
    name: &'static str,
    encoding: &'static str,
    clock_rate: u32,
    channels: Option<u16>,
    kind: MediaKind,
    static_pt: Option<u8>,
) -> Codec {
    Codec {
        name,
        encoding,
        clock_rate,
        channels,
        kind,
        static_pt,
    }
}

use MediaKind::{Audio, Text, Video};

/// Asterisk codecs with an SDP encoding. The brief's list (`ulaw, alaw, g722, g729, gsm, ilbc,
/// speex, opus, g726, h264, vp8`) first, then the other ones Asterisk knows.
pub static CODECS: &[Codec] = &[
    c("ulaw", "PCMU", 8000, None, Audio, Some(0)),
    c("alaw", "PCMA", 8000, None, Audio, Some(8)),
    c("g722", "G722", 8000, None, Audio, Some(9)),
    c("g729", "G729", 8000, None, Audio, Some(18)),
    c("gsm", "GSM", 8000, None, Audio, Some(3)),
    c("ilbc", "iLBC", 8000, None, Audio, None),
    c("speex", "speex", 8000, None, Audio, None),
    c("speex16", "speex", 16000, None, Audio, None),
    c("speex32", "speex", 32000, None, Audio, None),
    c("opus", "opus", 48000, Some(2), Audio, None),
    c("g726", "G726-32", 8000, None, Audio, None),
    c("g726aal2", "AAL2-G726-32", 8000, None, Audio, None),
    c("g723", "G723", 8000, None, Audio, Some(4)),
    c("lpc10", "LPC", 8000, None, Audio, Some(7)),
    c("adpcm", "DVI4", 8000, None, Audio, Some(5)),
    c("siren7", "G7221", 16000, None, Audio, None),
    c("siren14", "G7221", 32000, None, Audio, None),
    c("h264", "H264", 90000, None, Video, None),
    c("vp8", "VP8", 90000, None, Video, None),
    c("vp9", "VP9", 90000, None, Video, None),
    c("h261", "H261", 90000, None, Video, Some(31)),
    c("h263", "H263", 90000, None, Video, Some(34)),
    c("h263p", "H263-1998", 90000, None, Video, None),
    c("mpeg4", "MP4V-ES", 90000, None, Video, None),
    c("t140", "t140", 1000, None, Text, None),
];

/// RFC 3551 §6 static payload types (tables 4 and 5).
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, Option<u16>)] = &[
    (0, "PCMU", 8000, None),
    (3, "GSM", 8000, None),
    (4, "G723", 8000, None),
    (5, "DVI4", 8000, None),
    (6, "DVI4", 16000, None),
    (7, "LPC", 8000, None),
    (8, "PCMA", 8000, None),
    (9, "G722", 8000, None),
    (10, "L16", 44100, Some(2)),
    (11, "L16", 44100, None),
    (12, "QCELP", 8000, None),
    (13, "CN", 8000, None),
    (14, "MPA", 90000, None),
    (15, "G728", 8000, None),
    (16, "DVI4", 11025, None),
    (17, "DVI4", 22050, None),
    (18, "G729", 8000, None),
    (25, "CelB", 90000, None),
    (26, "JPEG", 90000, None),
    (28, "nv", 90000, None),
    (31, "H261", 90000, None),
    (32, "MPV", 90000, None),
    (33, "MP2T", 90000, None),
    (34, "H263", 90000, None),
];

/// The RFC 3551 static assignment of a payload type (used when no `a=rtpmap` is given).
pub fn static_payload(pt: u8) -> Option<RtpMap<'static>> {
    STATIC_PAYLOAD_TYPES.iter().find(|(p, ..)| *p == pt).map(
        |&(_, encoding, clock_rate, channels)| RtpMap {
            encoding,
            clock_rate,
            channels,
        },
    )
}

/// The codec of an SDP encoding: same name (case-insensitive), preferring the entry with the
/// same clock rate (`speex/16000` → `speex16`), else the first entry of that name
/// (`G722/16000` written by a confused phone is still `g722`).
pub fn codec_by_encoding(encoding: &str, clock_rate: u32) -> Option<&'static Codec> {
    let mut first = None;
    for codec in CODECS {
        if codec.encoding.eq_ignore_ascii_case(encoding) {
            if codec.clock_rate == clock_rate {
                return Some(codec);
            }
            first = first.or(Some(codec));
        }
    }
    first
}

/// The codec of an Asterisk name (`ulaw`), also accepting the SDP encoding name (`PCMU`,
/// so `pcmu`/`pcma` work as aliases) and `g729a`; case-insensitive.
pub fn codec_by_name(name: &str) -> Option<&'static Codec> {
    let name = name.trim();
    CODECS
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .or_else(|| {
            if name.eq_ignore_ascii_case("g729a") {
                return CODECS.iter().find(|c| c.name == "g729");
            }
            CODECS
                .iter()
                .find(|c| c.encoding.eq_ignore_ascii_case(name))
        })
}

/// Asterisk name → SDP encoding (`ulaw` → `PCMU`).
pub fn sdp_encoding(asterisk_name: &str) -> Option<&'static str> {
    codec_by_name(asterisk_name).map(|c| c.encoding)
}

/// SDP encoding → Asterisk name (`PCMU`/8000 → `ulaw`).
pub fn asterisk_name(encoding: &str, clock_rate: u32) -> Option<&'static str> {
    codec_by_encoding(encoding, clock_rate).map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_names_map_both_ways() {
        let pairs = [
            ("ulaw", "PCMU", 8000),
            ("alaw", "PCMA", 8000),
            ("g722", "G722", 8000),
            ("g729", "G729", 8000),
            ("gsm", "GSM", 8000),
            ("ilbc", "iLBC", 8000),
            ("speex", "speex", 8000),
            ("opus", "opus", 48000),
            ("g726", "G726-32", 8000),
            ("h264", "H264", 90000),
            ("vp8", "VP8", 90000),
        ];
        for (name, enc, rate) in pairs {
            assert_eq!(sdp_encoding(name), Some(enc), "{name}");
            assert_eq!(sdp_encoding(&name.to_uppercase()), Some(enc), "{name}");
            assert_eq!(asterisk_name(enc, rate), Some(name), "{enc}");
            assert_eq!(
                asterisk_name(&enc.to_lowercase(), rate),
                Some(name),
                "{enc}"
            );
            assert_eq!(
                asterisk_name(&enc.to_uppercase(), rate),
                Some(name),
                "{enc}"
            );
        }
    }

    #[test]
    fn aliases_rates_and_unknowns() {
        assert_eq!(codec_by_name("pcmu").unwrap().name, "ulaw");
        assert_eq!(codec_by_name("PCMA").unwrap().name, "alaw");
        assert_eq!(codec_by_name("g729a").unwrap().name, "g729");
        assert_eq!(codec_by_name(" Opus ").unwrap().name, "opus");
        assert_eq!(codec_by_name("telephone-event"), None);
        assert_eq!(codec_by_name("foo"), None);
        assert_eq!(asterisk_name("speex", 16000), Some("speex16"));
        assert_eq!(asterisk_name("speex", 32000), Some("speex32"));
        assert_eq!(asterisk_name("G722", 16000), Some("g722"));
        assert_eq!(asterisk_name("telephone-event", 8000), None);
        assert_eq!(asterisk_name("CN", 8000), None);
        assert_eq!(codec_by_name("h264").unwrap().kind, MediaKind::Video);
    }

    #[test]
    fn static_table() {
        for (pt, enc) in [
            (0, "PCMU"),
            (3, "GSM"),
            (4, "G723"),
            (8, "PCMA"),
            (9, "G722"),
            (18, "G729"),
        ] {
            let r = static_payload(pt).unwrap();
            assert_eq!((r.encoding, r.clock_rate), (enc, 8000));
        }
        assert_eq!(static_payload(34).unwrap().clock_rate, 90000);
        assert_eq!(static_payload(2), None);
        assert_eq!(static_payload(96), None);
        // every codec with a static PT agrees with the table
        for codec in CODECS {
            if let Some(pt) = codec.static_pt {
                let r = static_payload(pt).unwrap();
                assert_eq!(r.encoding, codec.encoding);
                assert_eq!(r.clock_rate, codec.clock_rate);
            }
        }
    }

    #[test]
    fn media_kind() {
        assert_eq!(MediaKind::from_media("AUDIO"), Some(MediaKind::Audio));
        assert_eq!(MediaKind::from_media("image"), None);
    }
}
