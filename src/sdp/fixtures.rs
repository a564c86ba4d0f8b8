//! Test fixtures: session descriptions as real endpoints send them (own text, written after
//! the shape of each endpoint's offers; LF line ends, the parser accepts both).

use super::SessionDescription;

/// Parses a fixture (panics with the error: tests only).
pub(crate) fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// MicroSIP (pjsip): rtpmap for every format, session b=AS, media c=, a=rtcp, a=ssrc.
pub(crate) const MICROSIP: &str = "v=0
o=- 3911286153 3911286153 IN IP4 192.168.1.50
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 0 8 9 101
c=IN IP4 192.168.1.50
b=TIAS:64000
a=rtcp:4001 IN IP4 192.168.1.50
a=sendrecv
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ssrc:1432405376 cname:2c8a6b1e0e4f4b5d
";

/// Yealink: G.722 first, opus, two telephone-event rates (101/8000, 102/48000).
pub(crate) const YEALINK: &str = "v=0
o=- 20098 20098 IN IP4 10.0.0.21
s=SDP data
c=IN IP4 10.0.0.21
t=0 0
m=audio 11800 RTP/AVP 9 0 8 18 107 101 102
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:107 opus/48000/2
a=fmtp:107 useinbandfec=1
a=ptime:20
a=sendrecv
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtpmap:102 telephone-event/48000
a=fmtp:102 0-15
";

/// Linphone: session-level ICE credentials, candidates, rtcp-mux, three telephone-event
/// rates, G.729 without rtpmap, a video stream with rtx.
pub(crate) const LINPHONE: &str = "v=0
o=1002 3421 1834 IN IP4 192.168.1.77
s=Talk
c=IN IP4 192.168.1.77
t=0 0
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b
a=ice-ufrag:0ee1b6f1
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-mux
a=rtcp:7079
a=candidate:1 1 UDP 2130706303 192.168.1.77 7078 typ host
a=candidate:1 2 UDP 2130706302 192.168.1.77 7079 typ host
a=candidate:2 1 UDP 1694498687 203.0.113.9 41374 typ srflx raddr 192.168.1.77 rport 7078
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97 98 99
c=IN IP4 192.168.1.77
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=96
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=97
a=rtcp-mux
a=candidate:1 1 UDP 2130706303 192.168.1.77 9078 typ host
a=end-of-candidates
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:96 nack pli
a=rtcp-fb:97 nack pli
a=rtcp-fb:99 nack
";

/// The offer of the sipp scenario `uac_auth_rtp.xml` with its keywords filled in.
pub(crate) const SIPP_UAC: &str = "v=0
o=sipp 12345 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
";

/// The answer of the sipp scenario `uas_rtp.xml` with its keywords filled in.
pub(crate) const SIPP_UAS: &str = "v=0
o=sipp-uas 23456 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6002 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
";

/// Hold re-INVITE, RFC 3264 §8.4 style (pjsip).
pub(crate) const HOLD_SENDONLY: &str = "v=0
o=- 3911286153 3911286154 IN IP4 192.168.1.50
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 0 8 101
c=IN IP4 192.168.1.50
a=rtcp:4001 IN IP4 192.168.1.50
a=sendonly
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
";

/// Hold with `inactive` (a phone that is itself on hold when it holds).
pub(crate) const HOLD_INACTIVE: &str = "v=0
o=- 20098 20099 IN IP4 10.0.0.21
s=SDP data
c=IN IP4 10.0.0.21
t=0 0
m=audio 11800 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=inactive
";

/// RFC 2543 hold: c=0.0.0.0, no direction attribute.
pub(crate) const HOLD_RFC2543: &str = "v=0
o=old 1 2 IN IP4 192.0.2.44
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 5004 RTP/AVP 0
a=rtpmap:0 PCMU/8000
";

/// Hold with a session-level `a=sendonly`.
pub(crate) const HOLD_SESSION_LEVEL: &str = "v=0
o=- 7 8 IN IP4 192.0.2.45
s=-
c=IN IP4 192.0.2.45
t=0 0
a=sendonly
m=audio 5006 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
";

pub(crate) const ALL: &[(&str, &str)] = &[
    ("microsip", MICROSIP),
    ("yealink", YEALINK),
    ("linphone", LINPHONE),
    ("sipp_uac", SIPP_UAC),
    ("sipp_uas", SIPP_UAS),
    ("hold_sendonly", HOLD_SENDONLY),
    ("hold_inactive", HOLD_INACTIVE),
    ("hold_rfc2543", HOLD_RFC2543),
    ("hold_session_level", HOLD_SESSION_LEVEL),
];
