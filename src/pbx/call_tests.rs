//! Call scenarios on virtual time: two (or three) in-memory phones call each other through a
//! [`Pbx`]; the harness plays the media relay (answers `Open` with fixed ports).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Pbx;
use super::directory::Extension;
use super::engine::{
    CallEvent, CallRecord, Command, Disposition, HungUpBy, Leg, MediaCommand, MediaPorts, Output,
    PbxConfig,
};
use super::peer::Peer;
use crate::sip::auth::{Algorithm, expected_response, ha1};
use crate::sip::{HeaderName, Message, Method, Request, Response, parse_datagram};

const A_PORT: u16 = 20000;
const B_PORT: u16 = 20002;

pub(super) struct Harness {
    pub(super) pbx: Pbx,
    pub(super) now: Instant,
    pub(super) sent: Vec<(Peer, Bytes)>,
    pub(super) media: Vec<MediaCommand>,
    pub(super) cdrs: Vec<CallRecord>,
    pub(super) events: Vec<CallEvent>,
    pub(super) states: Vec<(String, &'static str)>,
}

fn config() -> PbxConfig {
    PbxConfig {
        local_tcp: None,
        nonce_secret: [9; 32],
        ..PbxConfig::for_tests()
    }
}

pub(super) fn alice() -> Peer {
    Peer::udp("192.0.2.10:5060".parse::<SocketAddr>().unwrap())
}
pub(super) fn bob() -> Peer {
    Peer::udp("192.0.2.20:5060".parse::<SocketAddr>().unwrap())
}
pub(super) fn bob2() -> Peer {
    Peer::udp("192.0.2.21:5060".parse::<SocketAddr>().unwrap())
}

pub(super) const A_SDP: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";
pub(super) const B_SDP: &str = "v=0\r\no=bob 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

impl Harness {
    pub(super) fn new(bob_ext: Extension) -> Harness {
        let now = Instant::now();
        let mut pbx = Pbx::new(config(), (now, 1_800_000_000_000));
        pbx.handle_command(
            now,
            Command::LoadDirectory(vec![Extension::new("1001", "Alice", "secret1001"), bob_ext]),
        );
        let mut h = Harness {
            pbx,
            now,
            sent: Vec::new(),
            media: Vec::new(),
            cdrs: Vec::new(),
            events: Vec::new(),
            states: Vec::new(),
        };
        h.drain();
        h
    }

    pub(super) fn with_both() -> Harness {
        let mut h = Harness::new(Extension::new("1002", "Bob", "secret1002"));
        h.register("1001", "secret1001", alice());
        h.register("1002", "secret1002", bob());
        h
    }

    pub(super) fn drain(&mut self) {
        loop {
            let Some(o) = self.pbx.poll_output() else {
                break;
            };
            match o {
                Output::Transmit { to, bytes } => self.sent.push((to, bytes)),
                Output::Media(m) => {
                    if let MediaCommand::Open { call, streams } = m {
                        let ports = MediaPorts {
                            a: vec![A_PORT; streams],
                            b: vec![B_PORT; streams],
                        };
                        self.pbx
                            .handle_command(self.now, Command::MediaOpened { call, ports });
                    }
                    self.media.push(m);
                }
                Output::Cdr(c) => self.cdrs.push(*c),
                Output::Event(super::engine::PbxEvent::Call(e)) => self.events.push(e),
                Output::Event(super::engine::PbxEvent::DeviceState {
                    extension, state, ..
                }) => self.states.push((extension, state.as_str())),
                Output::Persist(_) | Output::Event(_) => {}
            }
        }
    }

    pub(super) fn input(&mut self, from: Peer, text: &str) {
        self.pbx.handle_datagram(self.now, from, text.as_bytes());
        self.drain();
    }

    pub(super) fn send(&mut self, from: Peer, msg: Message) {
        self.pbx.handle_datagram(self.now, from, &msg.to_bytes());
        self.drain();
    }

    pub(super) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.pbx.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.pbx.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Everything sent to `to` since the last take, parsed.
    pub(super) fn take_for(&mut self, to: Peer) -> Vec<Message> {
        let mut out = Vec::new();
        self.sent.retain(|(p, b)| {
            if p.addr == to.addr {
                // Qualify OPTIONS are not part of the call.
                match parse_datagram(b) {
                    Ok(Message::Request(r)) if r.method == Method::Options => {}
                    Ok(m) => out.push(m),
                    Err(_) => {}
                }
                false
            } else {
                true
            }
        });
        out
    }

    pub(super) fn responses_for(&mut self, to: Peer) -> Vec<Response> {
        self.take_for(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub(super) fn requests_for(&mut self, to: Peer) -> Vec<Request> {
        self.take_for(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub(super) fn register(&mut self, user: &str, password: &str, peer: Peer) {
        let reg = |branch: &str, cseq: u32, auth: Option<&str>| {
            let mut t = format!(
                "REGISTER sip:test SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@test>;tag=r{user}\r\nTo: <sip:{user}@test>\r\n\
                 Call-ID: reg-{user}-{a}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{user}@{a}>\r\nExpires: 3600\r\n",
                a = peer.addr
            );
            if let Some(a) = auth {
                t.push_str(&format!("Authorization: {a}\r\n"));
            }
            t.push_str("Content-Length: 0\r\n\r\n");
            t
        };
        self.input(peer, &reg(&format!("r1{user}"), 1, None));
        let r = self.responses_for(peer).pop().expect("401");
        let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
        let auth = digest(user, password, &nonce, "REGISTER", "sip:test");
        self.input(peer, &reg(&format!("r2{user}"), 2, Some(&auth)));
        assert_eq!(self.responses_for(peer).pop().unwrap().status, 200);
    }

    /// A dials `to` (challenge, authenticated INVITE). Returns the authenticated INVITE as sent
    /// and what A got back for it so far.
    pub(super) fn dial(&mut self, to: &str, sdp: &str, extra: &str) -> (String, Vec<Response>) {
        let first = invite(to, "i1", 1, None, sdp, extra);
        self.input(alice(), &first);
        let rs = self.responses_for(alice());
        assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [100, 407]);
        let challenge = rs[1].headers.get(&HeaderName::ProxyAuthenticate).unwrap();
        // ACK for the 407 (same branch): absorbed.
        self.input(alice(), &ack_for(&first, &rs[1]));
        assert!(self.responses_for(alice()).is_empty());
        let auth = digest(
            "1001",
            "secret1001",
            &nonce_of(challenge),
            "INVITE",
            &format!("sip:{to}@test"),
        );
        let second = invite(to, "i2", 2, Some(&auth), sdp, extra);
        self.input(alice(), &second);
        let rs = self.responses_for(alice());
        (second, rs)
    }

    /// A dials 1002; returns A's INVITE text and the INVITE that reached `callee`.
    pub(super) fn ring(&mut self, callee: Peer) -> (String, Request) {
        let (inv, rs) = self.dial("1002", A_SDP, "");
        assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [100]);
        let b_inv = self
            .requests_for(callee)
            .into_iter()
            .find(|r| r.method == Method::Invite)
            .expect("INVITE forked to the callee");
        (inv, b_inv)
    }

    /// A basic answered call; returns (A's INVITE, A's 200, B's INVITE, B's 200).
    pub(super) fn answered(&mut self) -> (String, Response, Request, Response) {
        let (inv, b_inv) = self.ring(bob());
        let ok = reply(&b_inv, 200, "b1", Some(B_SDP));
        self.send(bob(), Message::Response(ok.clone()));
        let a_ok = self.responses_for(alice()).pop().expect("200 to A");
        assert_eq!(a_ok.status, 200);
        self.input(alice(), &ack_2xx(&inv, &a_ok));
        self.requests_for(bob());
        (inv, a_ok, b_inv, ok)
    }
}

pub(super) fn nonce_of(v: &str) -> String {
    let start = v.find("nonce=\"").unwrap() + 7;
    v[start..start + v[start..].find('"').unwrap()].to_string()
}

pub(super) fn digest(user: &str, password: &str, nonce: &str, method: &str, uri: &str) -> String {
    let h1 = ha1(Algorithm::Md5, user, "test", password);
    let resp = expected_response(
        Algorithm::Md5,
        &h1,
        nonce,
        Some("00000001"),
        Some("c0ffee"),
        Some("auth"),
        method,
        uri,
        None,
    );
    format!(
        "Digest username=\"{user}\", realm=\"test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

pub(super) fn invite(
    to: &str,
    branch: &str,
    cseq: u32,
    auth: Option<&str>,
    sdp: &str,
    extra: &str,
) -> String {
    let mut t = format!(
        "INVITE sip:{to}@test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@test>;tag=atag\r\nTo: <sip:{to}@test>\r\n\
         Call-ID: call-a@192.0.2.10\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@192.0.2.10:5060>\r\n{extra}"
    );
    if let Some(a) = auth {
        t.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    t.push_str(&format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    t
}

/// ACK for a non-2xx final response (same branch, RFC 3261 §17.1.1.3).
pub(super) fn ack_for(invite_text: &str, resp: &Response) -> String {
    let inv = match parse_datagram(invite_text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        _ => unreachable!(),
    };
    let mut ack = Request::new(Method::Ack, inv.uri.clone());
    for n in [HeaderName::Via, HeaderName::From, HeaderName::CallId] {
        ack.headers
            .push(n.clone(), inv.headers.get(&n).unwrap().to_string());
    }
    ack.headers
        .push(HeaderName::To, resp.headers.get(&HeaderName::To).unwrap());
    let seq = inv.cseq().unwrap().seq;
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    String::from_utf8(ack.to_bytes().to_vec()).unwrap()
}

/// ACK for a 2xx: a new branch.
pub(super) fn ack_2xx(invite_text: &str, resp: &Response) -> String {
    ack_for(invite_text, resp).replacen("branch=z9hG4bK", "branch=z9hG4bKack", 1)
}

/// A phone's response to `req` (To tag, Contact, optional SDP).
pub(super) fn reply(req: &Request, status: u16, tag: &str, sdp: Option<&str>) -> Response {
    let mut r = req.make_response(status, "");
    if !tag.is_empty() {
        r.set_to_tag(tag);
    }
    let host = req.uri.host_port();
    r.headers
        .push(HeaderName::Contact, format!("<sip:1002@{host}>"));
    if let Some(s) = sdp {
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = Bytes::from(s.to_owned());
    }
    r
}

/// A request inside the B-leg dialog, sent by Bob (he is the UAS: swap From/To).
pub(super) fn bob_request(
    method: &str,
    b_inv: &Request,
    b_ok: &Response,
    cseq: u32,
    sdp: Option<&str>,
) -> String {
    let from = b_ok.headers.get(&HeaderName::To).unwrap();
    let to = b_inv.headers.get(&HeaderName::From).unwrap();
    let call_id = b_inv.call_id().unwrap();
    let target = b_inv
        .headers
        .get(&HeaderName::Contact)
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>');
    let body = sdp.unwrap_or("");
    let ct = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKb{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:1002@192.0.2.20:5060>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request inside the A-leg dialog, sent by Alice.
pub(super) fn alice_request(method: &str, a_ok: &Response, cseq: u32, sdp: Option<&str>) -> String {
    let to = a_ok.headers.get(&HeaderName::To).unwrap();
    let target = a_ok
        .headers
        .get(&HeaderName::Contact)
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>');
    let body = sdp.unwrap_or("");
    let ct = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@test>;tag=atag\r\nTo: {to}\r\n\
         Call-ID: call-a@192.0.2.10\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:1001@192.0.2.10:5060>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(super) fn sdp_of(body: &[u8]) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

#[test]
fn basic_call_sdp_both_ways_caller_hangs_up() {
    let mut h = Harness::with_both();
    let (inv, b_inv) = h.ring(bob());
    // B leg: its own dialog, the offer on the relay's B side.
    assert_ne!(b_inv.call_id(), Some("call-a@192.0.2.10"));
    assert_eq!(b_inv.uri.to_string(), "sip:1002@192.0.2.20:5060");
    assert_eq!(b_inv.max_forwards(), Some(69));
    assert!(b_inv.from().unwrap().uri.user.as_deref() == Some("1001"));
    assert_ne!(b_inv.from().unwrap().tag(), Some("atag"));
    let offer = sdp_of(&b_inv.body);
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(
        offer.contains(&format!("m=audio {B_PORT} RTP/AVP 0 8 101")),
        "{offer}"
    );
    assert!(!offer.contains("192.0.2.10"));
    // Ringing relayed.
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    let rs = h.responses_for(alice());
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 180);
    let a_tag = rs[0].to().unwrap().tag().unwrap().to_string();
    // Answer.
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 200, "b1", Some(B_SDP))),
    );
    let to_b = h.requests_for(bob());
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0].method, Method::Ack);
    assert_eq!(to_b[0].to().unwrap().tag(), Some("b1"));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(a_ok.status, 200);
    assert_eq!(a_ok.to().unwrap().tag(), Some(a_tag.as_str()));
    let answer = sdp_of(&a_ok.body);
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    assert!(
        answer.contains(&format!("m=audio {A_PORT} RTP/AVP 0 101")),
        "{answer}"
    );
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetRemote { leg: Leg::B, .. }))
    );
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetRemote { leg: Leg::A, .. }))
    );
    // Without A's ACK the 200 is retransmitted; after it, silence.
    h.advance(Duration::from_millis(600));
    assert!(h.responses_for(alice()).iter().any(|r| r.status == 200));
    h.input(alice(), &ack_2xx(&inv, &a_ok));
    assert!(h.requests_for(bob()).is_empty(), "A's ACK is consumed");
    h.advance(Duration::from_secs(5));
    assert!(h.responses_for(alice()).is_empty());
    assert_eq!(h.pbx.active_calls(), 1);
    // A hangs up (in-dialog: no challenge).
    h.input(alice(), &alice_request("BYE", &a_ok, 3, None));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
    let bye = h.requests_for(bob()).pop().unwrap();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), b_inv.call_id());
    assert_eq!(bye.to().unwrap().tag(), Some("b1"));
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Close { .. }))
    );
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hung_up_by, HungUpBy::Caller);
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1002"));
    assert_eq!(cdr.call_id, "call-a@192.0.2.10");
    assert!(cdr.answer.is_some());
    assert_eq!(h.pbx.active_calls(), 0);
    assert_eq!(h.pbx.stats().active_calls, 0);
    // The BYE's 200 from B is taken quietly; a second BYE from A is 481.
    h.send(bob(), Message::Response(reply(&bye, 200, "b1", None)));
    h.input(alice(), &alice_request("BYE", &a_ok, 4, None));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 481);
}

#[test]
fn callee_hangs_up() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, b_inv, b_ok) = h.answered();
    h.input(bob(), &bob_request("BYE", &b_inv, &b_ok, 1, None));
    assert_eq!(h.responses_for(bob()).pop().unwrap().status, 200);
    let bye = h.requests_for(alice()).pop().unwrap();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), Some("call-a@192.0.2.10"));
    assert_eq!(bye.to().unwrap().tag(), Some("atag"));
    assert_eq!(bye.from().unwrap().tag(), a_ok.to().unwrap().tag());
    assert_eq!(bye.uri.to_string(), "sip:1001@192.0.2.10:5060");
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.hung_up_by, HungUpBy::Callee);
    assert_eq!(cdr.hangup_cause, 200);
}

#[test]
fn busy_callee_gives_486() {
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 486, "b1", None)));
    let ack = h.requests_for(bob()).pop().unwrap();
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.top_via().unwrap().branch(),
        b_inv.top_via().unwrap().branch()
    );
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 486);
    assert_eq!(h.cdrs.pop().unwrap().disposition, Disposition::Busy);
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Close { .. }))
    );
}

#[test]
fn no_answer_ring_timeout_cancels_and_gives_480() {
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 180);
    h.advance(Duration::from_secs(29));
    assert!(h.requests_for(bob()).is_empty());
    h.advance(Duration::from_secs(2));
    let cancel = h.requests_for(bob()).pop().expect("CANCEL");
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        b_inv.top_via().unwrap().branch()
    );
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 480);
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.disposition, Disposition::NoAnswer);
    assert_eq!(cdr.hung_up_by, HungUpBy::System);
    // B answers the CANCEL and the INVITE (487): the 487 is ACKed.
    h.send(bob(), Message::Response(reply(&cancel, 200, "b1", None)));
    h.send(bob(), Message::Response(reply(&b_inv, 487, "b1", None)));
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
}

#[test]
fn caller_cancel_gives_487() {
    let mut h = Harness::with_both();
    let (inv, b_inv) = h.ring(bob());
    let cancel = inv
        .replace("INVITE sip:1002@test", "CANCEL sip:1002@test")
        .replace("CSeq: 2 INVITE", "CSeq: 2 CANCEL");
    let cancel =
        cancel[..cancel.find("Content-Type").unwrap()].to_string() + "Content-Length: 0\r\n\r\n";
    h.input(alice(), &cancel);
    let rs = h.responses_for(alice());
    let st: Vec<(u16, String)> = rs
        .iter()
        .map(|r| (r.status, r.cseq().unwrap().method.to_string()))
        .collect();
    assert!(st.contains(&(200, "CANCEL".into())), "{st:?}");
    assert!(st.contains(&(487, "INVITE".into())), "{st:?}");
    assert_eq!(h.cdrs.pop().unwrap().disposition, Disposition::Cancelled);
    // Bob has not answered anything yet: the CANCEL waits for his first provisional
    // (RFC 3261 §9.1).
    assert!(h.requests_for(bob()).is_empty());
    h.send(bob(), Message::Response(reply(&b_inv, 100, "", None)));
    let c = h.requests_for(bob()).pop().expect("CANCEL after the 100");
    assert_eq!(c.method, Method::Cancel);
    assert_eq!(c.call_id(), b_inv.call_id());
    assert_eq!(
        c.top_via().unwrap().branch(),
        b_inv.top_via().unwrap().branch()
    );
    // A late 180 changes nothing for Alice.
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    assert!(h.responses_for(alice()).is_empty());
    assert!(h.requests_for(bob()).is_empty());
}

#[test]
fn unknown_number_404_and_max_forwards_483() {
    let mut h = Harness::with_both();
    let (_inv, rs) = h.dial("1999", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 404);
    let mut h = Harness::with_both();
    let (_inv, rs) = h.dial("1002", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 100);
    // Max-Forwards 0 (the header is added twice: the first counts).
    let mut h = Harness::with_both();
    let text =
        invite("1002", "m1", 1, None, A_SDP, "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.input(alice(), &text);
    let nonce = nonce_of(
        h.responses_for(alice())
            .pop()
            .unwrap()
            .headers
            .get(&HeaderName::ProxyAuthenticate)
            .unwrap(),
    );
    let auth = digest("1001", "secret1001", &nonce, "INVITE", "sip:1002@test");
    let text = invite("1002", "m2", 2, Some(&auth), A_SDP, "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.input(alice(), &text);
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 483);
}

#[test]
fn unregistered_callee_480() {
    let mut h = Harness::new(Extension::new("1002", "Bob", "secret1002"));
    h.register("1001", "secret1001", alice());
    let (_inv, rs) = h.dial("1002", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 480);
    assert!(h.media.is_empty());
}

#[test]
fn unauthenticated_invite_is_challenged_and_wrong_password_403() {
    let mut h = Harness::with_both();
    let text = invite("1002", "w1", 1, None, A_SDP, "");
    h.input(alice(), &text);
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 407);
    let nonce = nonce_of(r.headers.get(&HeaderName::ProxyAuthenticate).unwrap());
    let auth = digest("1001", "wrong", &nonce, "INVITE", "sip:1002@test");
    h.input(alice(), &invite("1002", "w2", 2, Some(&auth), A_SDP, ""));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 403);
    assert!(h.requests_for(bob()).is_empty());
}

#[test]
fn forking_first_200_wins_other_branch_cancelled() {
    let mut ext = Extension::new("1002", "Bob", "secret1002");
    ext.max_contacts = 2;
    let mut h = Harness::new(ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    h.register("1002", "secret1002", bob2());
    let (inv, rs) = h.dial("1002", A_SDP, "");
    assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [100]);
    let i1 = h.requests_for(bob()).pop().unwrap();
    let i2 = h.requests_for(bob2()).pop().unwrap();
    assert_eq!(
        (i1.method.clone(), i2.method.clone()),
        (Method::Invite, Method::Invite)
    );
    assert_ne!(i1.call_id(), i2.call_id());
    assert_ne!(i1.from().unwrap().tag(), i2.from().unwrap().tag());
    h.send(bob(), Message::Response(reply(&i1, 180, "x1", None)));
    h.send(bob2(), Message::Response(reply(&i2, 180, "x2", None)));
    h.send(
        bob2(),
        Message::Response(reply(&i2, 200, "x2", Some(B_SDP))),
    );
    let to_b1 = h.requests_for(bob()).pop().unwrap();
    assert_eq!(to_b1.method, Method::Cancel);
    assert_eq!(to_b1.call_id(), i1.call_id());
    assert_eq!(h.requests_for(bob2()).pop().unwrap().method, Method::Ack);
    let a_rs = h.responses_for(alice());
    assert_eq!(
        a_rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [180, 180, 200]
    );
    h.input(alice(), &ack_2xx(&inv, &a_rs[2]));
    // The cancelled branch's 487 is ACKed and changes nothing.
    h.send(bob(), Message::Response(reply(&i1, 487, "x1", None)));
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
    assert!(h.responses_for(alice()).is_empty());
    assert_eq!(h.pbx.active_calls(), 1);
}

#[test]
fn codec_mismatch_488_with_warning() {
    let mut ext = Extension::new("1002", "Bob", "secret1002");
    ext.codecs = vec!["g722".into()];
    let mut h = Harness::new(ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    let (_inv, rs) = h.dial("1002", A_SDP, "");
    let r = rs.last().unwrap();
    assert_eq!(r.status, 488);
    assert!(
        r.headers
            .get(&HeaderName::Warning)
            .unwrap()
            .starts_with("305")
    );
    assert!(h.requests_for(bob()).is_empty());
}

#[test]
fn reinvite_hold_and_resume_relayed() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    h.media.clear();
    for (cseq, dir, hold) in [(3, "sendonly", true), (4, "sendrecv", false)] {
        let sdp = A_SDP
            .replace("a=sendrecv", &format!("a={dir}"))
            .replace("o=alice 1 1", &format!("o=alice 1 {cseq}"));
        let text = alice_request("INVITE", &a_ok, cseq, Some(&sdp));
        h.input(alice(), &text);
        let rs = h.responses_for(alice());
        assert!(rs.iter().all(|r| r.status == 100), "not challenged: {rs:?}");
        let re = h.requests_for(bob()).pop().expect("re-INVITE relayed");
        assert_eq!(re.method, Method::Invite);
        let body = sdp_of(&re.body);
        assert!(body.contains(&format!("a={dir}")), "{body}");
        assert!(body.contains(&format!("m=audio {B_PORT}")), "{body}");
        assert!(body.contains("c=IN IP4 127.0.0.1"));
        assert!(h.media.iter().any(
            |m| matches!(m, MediaCommand::SetHold { leg: Leg::A, hold: x, .. } if *x == hold)
        ));
        let answer = B_SDP.replace("a=sendrecv", if hold { "a=recvonly" } else { "a=sendrecv" });
        h.send(
            bob(),
            Message::Response(reply(&re, 200, "b1", Some(&answer))),
        );
        assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
        let ok = h.responses_for(alice()).pop().unwrap();
        assert_eq!(ok.status, 200);
        let body = sdp_of(&ok.body);
        assert!(body.contains(&format!("m=audio {A_PORT}")), "{body}");
        assert!(
            body.contains(if hold { "a=recvonly" } else { "a=sendrecv" }),
            "{body}"
        );
        // The 200 is re-sent until A's ACK; the ACK is absorbed (B got its own).
        h.advance(Duration::from_millis(600));
        assert!(h.responses_for(alice()).iter().any(|r| r.status == 200));
        let ack = alice_request("ACK", &a_ok, cseq, None).replace(
            &format!("branch=z9hG4bKaACK{cseq}"),
            &format!("branch=z9hG4bKack{cseq}"),
        );
        h.input(alice(), &ack);
        assert!(h.requests_for(bob()).is_empty());
        h.advance(Duration::from_secs(5));
        assert!(h.responses_for(alice()).is_empty());
        h.media.clear();
    }
    assert_eq!(h.pbx.active_calls(), 1);
    // INFO relayed too.
    h.input(alice(), &alice_request("INFO", &a_ok, 5, None));
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Info);
}

#[test]
fn late_180_after_200_is_ignored() {
    let mut h = Harness::with_both();
    let (_inv, _a_ok, b_inv, _b_ok) = h.answered();
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    assert!(h.responses_for(alice()).is_empty());
    assert_eq!(h.pbx.active_calls(), 1);
}

#[test]
fn in_dialog_request_for_unknown_dialog_481() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    let text = alice_request("BYE", &a_ok, 3, None).replace("call-a@192.0.2.10", "nope");
    h.input(alice(), &text);
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 481);
    // The right Call-ID with a wrong From tag is not the dialog either.
    let text = alice_request("BYE", &a_ok, 3, None).replace("tag=atag", "tag=forged");
    h.input(alice(), &text);
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 481);
    // An INVITE for a dialog that does not exist: challenged first (RFC 4475 wsinv), then 481.
    let text = alice_request("INVITE", &a_ok, 3, Some(A_SDP)).replace("call-a@192.0.2.10", "nope");
    h.input(alice(), &text);
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 407);
    let nonce = nonce_of(r.headers.get(&HeaderName::ProxyAuthenticate).unwrap());
    let target = format!(
        "sip:{}",
        a_ok.headers
            .get(&HeaderName::Contact)
            .unwrap()
            .trim_matches(|c| c == '<' || c == '>')
            .trim_start_matches("sip:")
    );
    let auth = digest("1001", "secret1001", &nonce, "INVITE", &target);
    let text = alice_request("INVITE", &a_ok, 4, Some(A_SDP))
        .replace("call-a@192.0.2.10", "nope")
        .replace(
            "Contact: <sip:1001",
            &format!("Proxy-Authorization: {auth}\r\nContact: <sip:1001"),
        );
    h.input(alice(), &text);
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 481);
    assert_eq!(h.pbx.active_calls(), 1);
}

#[test]
fn media_failure_gives_503() {
    let mut h = Harness::with_both();
    // Play a relay that is out of ports: intercept Open before the harness answers it.
    let first = invite("1002", "f1", 1, None, A_SDP, "");
    h.input(alice(), &first);
    let nonce = nonce_of(
        h.responses_for(alice())
            .pop()
            .unwrap()
            .headers
            .get(&HeaderName::ProxyAuthenticate)
            .unwrap(),
    );
    let auth = digest("1001", "secret1001", &nonce, "INVITE", "sip:1002@test");
    let text = invite("1002", "f2", 2, Some(&auth), A_SDP, "");
    h.pbx.handle_datagram(h.now, alice(), text.as_bytes());
    let mut open = None;
    while let Some(o) = h.pbx.poll_output() {
        if let Output::Media(MediaCommand::Open { call, .. }) = o {
            open = Some(call);
        }
    }
    h.pbx.handle_command(
        h.now,
        Command::MediaFailed {
            call: open.expect("Open asked"),
        },
    );
    h.drain();
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 503);
    assert!(h.requests_for(bob()).is_empty());
    assert_eq!(h.cdrs.pop().unwrap().disposition, Disposition::Failed);
}

#[test]
fn update_from_callee_relayed_to_caller() {
    let mut h = Harness::with_both();
    let (_inv, _a_ok, b_inv, b_ok) = h.answered();
    let sdp = B_SDP
        .replace("o=bob 7 7", "o=bob 7 8")
        .replace("a=sendrecv", "a=inactive");
    h.input(bob(), &bob_request("UPDATE", &b_inv, &b_ok, 1, Some(&sdp)));
    let up = h.requests_for(alice()).pop().expect("UPDATE relayed to A");
    assert_eq!(up.method, Method::Update);
    assert_eq!(up.call_id(), Some("call-a@192.0.2.10"));
    assert_eq!(up.to().unwrap().tag(), Some("atag"));
    let body = sdp_of(&up.body);
    assert!(body.contains(&format!("m=audio {A_PORT}")), "{body}");
    assert!(body.contains("a=inactive"), "{body}");
    assert!(h.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetHold {
            leg: Leg::B,
            hold: true,
            ..
        }
    )));
    let answer = A_SDP.replace("a=sendrecv", "a=inactive");
    h.send(
        alice(),
        Message::Response(reply(&up, 200, "atag", Some(&answer))),
    );
    let ok = h.responses_for(bob()).pop().unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.cseq().unwrap().method, Method::Update);
    assert!(sdp_of(&ok.body).contains(&format!("m=audio {B_PORT}")));
}

#[test]
fn call_to_yourself_is_482() {
    let mut h = Harness::with_both();
    let (_inv, rs) = h.dial("1001", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 482);
}

#[test]
fn early_media_183_sdp_rewritten_for_caller() {
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 183, "b1", Some(B_SDP))),
    );
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 183);
    assert_eq!(
        r.headers.get(&HeaderName::ContentType),
        Some("application/sdp")
    );
    let body = sdp_of(&r.body);
    assert!(
        body.contains(&format!("m=audio {A_PORT} RTP/AVP 0 101")),
        "{body}"
    );
    assert!(body.contains("c=IN IP4 127.0.0.1") && !body.contains("192.0.2.20"));
    assert!(
        h.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetRemote { leg: Leg::B, .. }))
    );
}

#[test]
fn answer_without_sdp_is_hung_up_with_488() {
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 200, "b1", None)));
    let to_b: Vec<Method> = h
        .requests_for(bob())
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(to_b, [Method::Ack, Method::Bye]);
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 488);
    assert!(r.headers.get(&HeaderName::Warning).is_some());
    assert_eq!(h.cdrs.pop().unwrap().disposition, Disposition::Failed);
    assert_eq!(h.pbx.active_calls(), 0);
}

#[test]
fn session_timer_headers_pass_through() {
    let mut h = Harness::with_both();
    let (_inv, rs) = h.dial(
        "1002",
        A_SDP,
        "Session-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\nSupported: timer, 100rel\r\n",
    );
    assert_eq!(rs.last().unwrap().status, 100);
    let b_inv = h.requests_for(bob()).pop().unwrap();
    assert_eq!(
        b_inv.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert_eq!(b_inv.headers.get(&HeaderName::MinSe), Some("90"));
    let supported: Vec<&str> = b_inv.headers.get_all(&HeaderName::Supported).collect();
    assert_eq!(
        supported,
        ["timer"],
        "100rel is not offered on: PRACK is not relayed"
    );
    let mut ok = reply(&b_inv, 200, "b1", Some(B_SDP));
    ok.headers
        .push(HeaderName::SessionExpires, "1800;refresher=uac");
    ok.headers.push(HeaderName::Require, "timer");
    h.send(bob(), Message::Response(ok));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(a_ok.status, 200);
    assert_eq!(
        a_ok.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert_eq!(a_ok.headers.get(&HeaderName::Require), Some("timer"));
}

#[test]
fn require_timer_is_understood_other_tags_420() {
    let mut h = Harness::with_both();
    h.input(
        alice(),
        &invite(
            "1002",
            "rq1",
            1,
            None,
            A_SDP,
            "Require: timer\r\nSession-Expires: 900\r\n",
        ),
    );
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 407);
    h.input(
        alice(),
        &invite("1002", "rq2", 1, None, A_SDP, "Require: timer, 100rel\r\n"),
    );
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get(&HeaderName::Unsupported), Some("100rel"));
}

#[test]
fn contact_pointing_at_dialtone_is_a_loop_482() {
    let mut h = Harness::new(Extension::new("1002", "Bob", "secret1002"));
    h.register("1001", "secret1001", alice());
    let own = Peer::udp("127.0.0.1:5060".parse::<SocketAddr>().unwrap());
    h.register("1002", "secret1002", own);
    let (_inv, rs) = h.dial("1002", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 100);
    // Deliver what Dialtone sent to itself back to it, until nothing is left.
    for _ in 0..4 {
        let msgs = h.take_for(own);
        for m in msgs {
            h.send(own, m);
        }
    }
    let statuses: Vec<u16> = h.responses_for(alice()).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [482]);
}

#[test]
fn callee_redirect_or_challenge_becomes_480() {
    for status in [302, 407] {
        let mut h = Harness::with_both();
        let (_inv, b_inv) = h.ring(bob());
        h.send(bob(), Message::Response(reply(&b_inv, status, "b1", None)));
        assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
        assert_eq!(
            h.responses_for(alice()).pop().unwrap().status,
            480,
            "{status}"
        );
    }
}

#[test]
fn decline_6xx_stops_the_search() {
    let mut ext = Extension::new("1002", "Bob", "secret1002");
    ext.max_contacts = 2;
    let mut h = Harness::new(ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    h.register("1002", "secret1002", bob2());
    h.dial("1002", A_SDP, "");
    let i1 = h.requests_for(bob()).pop().unwrap();
    let i2 = h.requests_for(bob2()).pop().unwrap();
    h.send(bob2(), Message::Response(reply(&i2, 180, "x2", None)));
    h.send(bob(), Message::Response(reply(&i1, 603, "x1", None)));
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
    assert_eq!(h.requests_for(bob2()).pop().unwrap().method, Method::Cancel);
    let statuses: Vec<u16> = h.responses_for(alice()).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [180, 603]);
}

#[test]
fn hangup_command_ends_ringing_and_answered_calls() {
    // Ringing: the caller gets 480, the branch a CANCEL (after its 180).
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    h.responses_for(alice());
    let views = h.pbx.calls();
    assert_eq!(views.len(), 1);
    assert!(!views[0].answered);
    assert_eq!(
        (views[0].from.as_str(), views[0].to.as_str()),
        ("1001", "1002")
    );
    h.pbx.handle_command(
        h.now,
        Command::Hangup {
            call: views[0].id,
            status: None,
        },
    );
    h.drain();
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 480);
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Cancel);
    // Answered: BYE both ways.
    let mut h = Harness::with_both();
    h.answered();
    let id = h.pbx.calls()[0].id;
    assert!(h.pbx.calls()[0].answered);
    h.pbx.handle_command(
        h.now,
        Command::Hangup {
            call: id,
            status: None,
        },
    );
    h.drain();
    assert_eq!(h.requests_for(alice()).pop().unwrap().method, Method::Bye);
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Bye);
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.hung_up_by, HungUpBy::System);
    assert!(h.pbx.calls().is_empty());
}

#[test]
fn hangup_with_cause_maps_to_sip_reason_and_cdr() {
    // Ringing, cause 17 (user busy): the caller gets 486, the CDR shows 17.
    let mut h = Harness::with_both();
    let (_inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    h.responses_for(alice());
    let id = h.pbx.calls()[0].id;
    h.pbx.handle_command(
        h.now,
        Command::HangupWithCause {
            call: id,
            cause: 17,
        },
    );
    h.drain();
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 486);
    assert_eq!(h.cdrs.pop().unwrap().q850_cause, 17);
    // Answered, cause 21 (call rejected): BYEs carry an RFC 3326 Reason, the CDR shows 21
    // and keeps its answered disposition.
    let mut h = Harness::with_both();
    h.answered();
    let id = h.pbx.calls()[0].id;
    h.pbx.handle_command(
        h.now,
        Command::HangupWithCause {
            call: id,
            cause: 21,
        },
    );
    h.drain();
    for who in [alice(), bob()] {
        let bye = h.requests_for(who).pop().unwrap();
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(
            bye.headers.get(&HeaderName::Reason),
            Some("Q.850;cause=21;text=\"Call Rejected\"")
        );
    }
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.q850_cause, 21);
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hangup_cause, 200);
}

#[test]
fn relay_that_never_answers_gives_503_after_ring_timeout() {
    let mut h = Harness::with_both();
    let first = invite("1002", "n1", 1, None, A_SDP, "");
    h.input(alice(), &first);
    let nonce = nonce_of(
        h.responses_for(alice())
            .pop()
            .unwrap()
            .headers
            .get(&HeaderName::ProxyAuthenticate)
            .unwrap(),
    );
    let auth = digest("1001", "secret1001", &nonce, "INVITE", "sip:1002@test");
    let text = invite("1002", "n2", 2, Some(&auth), A_SDP, "");
    // Swallow the Open: the relay never answers.
    h.pbx.handle_datagram(h.now, alice(), text.as_bytes());
    while h.pbx.poll_output().is_some() {}
    assert_eq!(h.pbx.active_calls(), 1);
    h.advance(Duration::from_secs(31));
    assert!(h.responses_for(alice()).iter().any(|r| r.status == 503));
    assert_eq!(h.pbx.active_calls(), 0);
}

#[test]
fn glare_second_offer_gets_491() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, b_inv, b_ok) = h.answered();
    let hold = A_SDP.replace("a=sendrecv", "a=sendonly");
    h.input(alice(), &alice_request("INVITE", &a_ok, 3, Some(&hold)));
    let re = h.requests_for(bob()).pop().unwrap();
    assert_eq!(re.method, Method::Invite);
    // Bob offers at the same time: 491.
    h.input(bob(), &bob_request("INVITE", &b_inv, &b_ok, 1, Some(B_SDP)));
    let r = h.responses_for(bob());
    assert_eq!(r.last().unwrap().status, 491, "{r:?}");
    assert!(h.requests_for(alice()).is_empty());
    // Once Bob answers the first offer, new offers flow again.
    h.send(bob(), Message::Response(reply(&re, 200, "b1", Some(B_SDP))));
    h.responses_for(alice());
    h.requests_for(bob());
    h.input(bob(), &bob_request("INVITE", &b_inv, &b_ok, 2, Some(B_SDP)));
    assert_eq!(
        h.requests_for(alice()).pop().unwrap().method,
        Method::Invite
    );
}

// ------------------------------------------------------------------ click-to-dial (originate)

/// Alice's phone answering Dialtone's INVITE (she is the UAS of the A leg here).
const A_ANSWER: &str = "v=0\r\no=alice 3 3 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendrecv\r\n";

#[test]
fn originate_rings_the_caller_then_the_callee() {
    let mut h = Harness::with_both();
    let (id, call_id) = h
        .pbx
        .originate_call(h.now, "1001", "1002")
        .expect("originate");
    h.drain();
    assert!(call_id.starts_with("api-call-1001-1002"));
    // Alice rings first, with Dialtone's own offer on the A-leg relay port.
    let a_inv = h
        .requests_for(alice())
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("INVITE to the caller");
    assert_eq!(a_inv.call_id(), Some(call_id.as_str()));
    assert!(a_inv.from().unwrap().uri.user.as_deref() == Some("1002"));
    let offer = sdp_of(&a_inv.body);
    assert!(
        offer.contains(&format!("m=audio {A_PORT} RTP/AVP 0 8 9 101")),
        "{offer}"
    );
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "{offer}"
    );
    assert!(
        h.requests_for(bob()).is_empty(),
        "the callee waits for the caller"
    );
    // Alice answers (PCMA, telephone-event renumbered 96): ACKed, then Bob rings.
    h.send(alice(), Message::Response(reply(&a_inv, 180, "a1", None)));
    h.send(
        alice(),
        Message::Response(reply(&a_inv, 200, "a1", Some(A_ANSWER))),
    );
    let to_a = h.requests_for(alice());
    assert_eq!(
        to_a.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
        [Method::Ack]
    );
    let b_inv = h
        .requests_for(bob())
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("INVITE to the callee");
    assert!(b_inv.from().unwrap().uri.user.as_deref() == Some("1001"));
    let b_offer = sdp_of(&b_inv.body);
    assert!(
        b_offer.contains(&format!("m=audio {B_PORT} RTP/AVP 8 96")),
        "{b_offer}"
    );
    // Bob answers with telephone-event at 101: events from Alice (sent as 101, the number of
    // Dialtone's offer) reach Bob as his 101 — no map; PCMA both ways.
    let b_sdp = "v=0\r\no=bob 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendrecv\r\n";
    let b_ok = reply(&b_inv, 200, "b1", Some(b_sdp));
    h.send(bob(), Message::Response(b_ok.clone()));
    assert_eq!(h.requests_for(bob())[0].method, Method::Ack);
    assert!(
        h.responses_for(alice()).is_empty(),
        "Alice already has her answer"
    );
    // Alice sends telephone-event with 101 (Dialtone's offer); Bob expects 96.
    assert!(h.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPtMap { call, leg: Leg::A, from: 101, to: 96 } if *call == id
    )));
    let view = h.pbx.calls();
    assert_eq!(view.len(), 1);
    assert!(view[0].answered);
    assert_eq!(view[0].call_id, call_id);
    // Bob hangs up: BYE to Alice in her dialog (our From tag, her To tag).
    h.input(bob(), &bob_request("BYE", &b_inv, &b_ok, 2, None));
    let bye = h
        .requests_for(alice())
        .into_iter()
        .find(|r| r.method == Method::Bye)
        .expect("BYE to the caller");
    assert_eq!(bye.call_id(), Some(call_id.as_str()));
    assert_eq!(bye.to().unwrap().tag(), Some("a1"));
    assert_eq!(bye.from().unwrap().tag(), a_inv.from().unwrap().tag());
    assert_eq!(bye.cseq().unwrap().seq, 2);
    let cdr = h.cdrs.pop().expect("CDR");
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1002"));
    assert_eq!(cdr.codec_a.as_deref(), Some("alaw"));
    assert_eq!(cdr.codec_b.as_deref(), Some("alaw"));
    assert_eq!(cdr.q850_cause, 16);
    assert_eq!(cdr.hung_up_by, HungUpBy::Callee);
}

#[test]
fn originate_caller_hangs_up_while_the_callee_rings() {
    let mut h = Harness::with_both();
    let (_, call_id) = h.pbx.originate_call(h.now, "1001", "1002").unwrap();
    h.drain();
    let a_inv = h.requests_for(alice()).pop().unwrap();
    let a_ok = reply(&a_inv, 200, "a1", Some(A_ANSWER));
    h.send(alice(), Message::Response(a_ok));
    h.requests_for(alice());
    let b_inv = h.requests_for(bob()).pop().unwrap();
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    // Alice's BYE in the dialog Dialtone set up (she is the UAS: From = her To).
    let bye = format!(
        "BYE sip:1002@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=a1\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        a_inv.headers.get(&HeaderName::From).unwrap()
    );
    h.input(alice(), &bye);
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
    assert!(
        h.requests_for(bob())
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.disposition, Disposition::Cancelled);
    assert_eq!(cdr.hung_up_by, HungUpBy::Caller);
    assert!(h.pbx.calls().is_empty());
}

#[test]
fn originate_caller_does_not_answer() {
    let mut h = Harness::with_both();
    h.pbx.originate_call(h.now, "1001", "1002").unwrap();
    h.drain();
    let a_inv = h.requests_for(alice()).pop().unwrap();
    h.send(alice(), Message::Response(reply(&a_inv, 180, "a1", None)));
    h.advance(Duration::from_secs(31));
    assert!(
        h.requests_for(alice())
            .iter()
            .any(|r| r.method == Method::Cancel),
        "ring timeout cancels the caller's phone"
    );
    assert!(h.requests_for(bob()).is_empty(), "the callee never rang");
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.disposition, Disposition::NoAnswer);
    assert_eq!(cdr.q850_cause, 19);
}

#[test]
fn originate_options_set_ring_timeout_and_caller_id() {
    use super::engine::OriginateOptions;
    let mut h = Harness::with_both();
    let opts = OriginateOptions {
        ring_timeout: Some(Duration::from_secs(5)),
        caller_id: Some(("5551234".into(), "CRM \"Desk\"".into())),
    };
    h.pbx
        .originate_call_with(h.now, "1001", "1002", opts)
        .unwrap();
    h.drain();
    let a_inv = h.requests_for(alice()).pop().unwrap();
    let from = a_inv.headers.get(&HeaderName::From).unwrap();
    assert!(from.starts_with("\"CRM Desk\" <sip:5551234@"), "{from}");
    h.send(alice(), Message::Response(reply(&a_inv, 180, "a1", None)));
    // Not yet at 4 s; cancelled by 6 s (not the 30 s default).
    h.advance(Duration::from_secs(4));
    assert!(h.requests_for(alice()).is_empty());
    h.advance(Duration::from_secs(2));
    assert!(
        h.requests_for(alice())
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    assert_eq!(h.cdrs.pop().unwrap().disposition, Disposition::NoAnswer);
}

#[test]
fn originate_refuses_unknown_unregistered_and_self() {
    use super::engine::OriginateError;
    let mut h = Harness::new(Extension::new("1002", "Bob", "secret1002"));
    h.register("1002", "secret1002", bob());
    let now = h.now;
    assert!(matches!(
        h.pbx.originate_call(now, "1009", "1002"),
        Err(OriginateError::NotFound { field: "from", .. })
    ));
    assert!(matches!(
        h.pbx.originate_call(now, "1002", "1009"),
        Err(OriginateError::NotFound { field: "to", .. })
    ));
    assert_eq!(
        h.pbx.originate_call(now, "1001", "1002"),
        Err(OriginateError::NotRegistered("1001".into()))
    );
    assert_eq!(
        h.pbx.originate_call(now, "1002", "1002"),
        Err(OriginateError::SameExtension)
    );
    assert!(h.pbx.calls().is_empty());
}

// ------------------------------------------------------------------ session timers, CDR, NAT

#[test]
fn session_timer_without_refresh_ends_the_call() {
    let mut h = Harness::with_both();
    let (inv, b_inv) = h.ring(bob());
    let mut ok = reply(&b_inv, 200, "b1", Some(B_SDP));
    ok.headers
        .push(HeaderName::SessionExpires, "90;refresher=uac");
    h.send(bob(), Message::Response(ok));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(
        a_ok.headers.get(&HeaderName::SessionExpires),
        Some("90;refresher=uac")
    );
    h.input(alice(), &ack_2xx(&inv, &a_ok));
    h.requests_for(bob());
    // RFC 4028 §10: BYE at SE - min(32, SE/3) = 60 s without a refresh.
    h.advance(Duration::from_secs(59));
    assert!(h.cdrs.is_empty());
    h.advance(Duration::from_secs(2));
    assert!(
        h.requests_for(bob())
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert!(
        h.requests_for(alice())
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert_eq!(h.cdrs.pop().unwrap().hung_up_by, HungUpBy::System);
}

#[test]
fn cdr_carries_codec_and_q850_cause() {
    let mut h = Harness::with_both();
    let (inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 486, "b1", None)));
    let busy = h.responses_for(alice()).pop().unwrap();
    assert_eq!(busy.status, 486);
    h.input(alice(), &ack_for(&inv, &busy));
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.disposition, Disposition::Busy);
    assert_eq!(cdr.q850_cause, 17);
    assert_eq!(cdr.codec_a, None);

    let mut h = Harness::with_both();
    let (_, a_ok, _, _) = h.answered();
    assert_eq!(a_ok.status, 200);
    let id = h.pbx.calls()[0].id;
    h.pbx.handle_command(
        h.now,
        Command::Hangup {
            call: id,
            status: None,
        },
    );
    h.drain();
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.codec_a.as_deref(), Some("ulaw"));
    assert_eq!(cdr.codec_b.as_deref(), Some("ulaw"));
    assert_eq!(cdr.q850_cause, 16);
}

#[test]
fn external_ip_is_written_for_peers_outside_local_net() {
    let now = Instant::now();
    let cfg = PbxConfig {
        external_ip: Some("198.51.100.7".parse().unwrap()),
        local_nets: vec!["192.0.2.0/28".parse().unwrap()],
        ..config()
    };
    let mut pbx = Pbx::new(cfg, (now, 1_800_000_000_000));
    pbx.handle_command(
        now,
        Command::LoadDirectory(vec![
            Extension::new("1001", "Alice", "secret1001"),
            Extension::new("1002", "Bob", "secret1002"),
        ]),
    );
    let mut h = Harness {
        pbx,
        now,
        sent: Vec::new(),
        media: Vec::new(),
        cdrs: Vec::new(),
        events: Vec::new(),
        states: Vec::new(),
    };
    h.drain();
    // Alice (192.0.2.10) is inside 192.0.2.0/28; Bob (192.0.2.20) is outside.
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    let (_inv, b_inv) = h.ring(bob());
    let offer = sdp_of(&b_inv.body);
    assert!(offer.contains("c=IN IP4 198.51.100.7"), "{offer}");
    assert!(
        b_inv
            .headers
            .get(&HeaderName::Via)
            .unwrap()
            .contains("198.51.100.7")
    );
    assert!(
        b_inv
            .headers
            .get(&HeaderName::Contact)
            .unwrap()
            .contains("198.51.100.7")
    );
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 200, "b1", Some(B_SDP))),
    );
    let a_ok = h.responses_for(alice()).pop().unwrap();
    let answer = sdp_of(&a_ok.body);
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
}

#[test]
fn info_dtmf_body_is_relayed_verbatim() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    let body = "Signal=5\r\nDuration=160\r\n";
    let text = alice_request("INFO", &a_ok, 3, None).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    h.input(alice(), &text);
    let info = h.requests_for(bob()).pop().expect("INFO relayed");
    assert_eq!(info.method, Method::Info);
    assert_eq!(sdp_of(&info.body), body);
    assert_eq!(info.content_type(), Some("application/dtmf-relay"));
    h.send(bob(), Message::Response(reply(&info, 200, "b1", None)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
}

#[test]
fn reinvite_offer_is_filtered_by_the_receiving_extension() {
    let mut bob_ext = Extension::new("1002", "Bob", "secret1002");
    bob_ext.codecs = vec!["ulaw".into()];
    let mut h = Harness::new(bob_ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    // A re-offers PCMA first: Bob only takes PCMU (and telephone-event).
    let sdp = A_SDP.replace("o=alice 1 1", "o=alice 1 2");
    h.input(alice(), &alice_request("INVITE", &a_ok, 3, Some(&sdp)));
    let re = h.requests_for(bob()).pop().expect("re-INVITE relayed");
    let body = sdp_of(&re.body);
    assert!(
        body.contains(&format!("m=audio {B_PORT} RTP/AVP 0 101")),
        "{body}"
    );
    assert!(!body.contains("PCMA"), "{body}");
    // Nothing Bob allows: 488 with a Warning, nothing relayed.
    let pcma_only = "v=0\r\no=alice 1 3 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n";
    h.send(bob(), Message::Response(reply(&re, 200, "b1", Some(B_SDP))));
    h.requests_for(bob());
    h.responses_for(alice());
    h.input(alice(), &alice_request("INVITE", &a_ok, 4, Some(pcma_only)));
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 488);
    assert!(r.headers.get(&HeaderName::Warning).is_some());
    assert!(
        h.requests_for(bob())
            .iter()
            .all(|r| r.method != Method::Invite)
    );
}

#[test]
fn offerless_reinvite_refresh_is_answered_by_dialtone() {
    let mut h = Harness::with_both();
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    let sent_before = sdp_of(&a_ok.body);
    let text = alice_request("INVITE", &a_ok, 3, None).replace(
        "Content-Length: 0",
        "Session-Expires: 1800\r\nSupported: timer\r\nContent-Length: 0",
    );
    h.input(alice(), &text);
    let ok = h
        .responses_for(alice())
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 for the refresh");
    assert_eq!(
        sdp_of(&ok.body),
        sent_before,
        "the session as Alice knows it"
    );
    assert_eq!(ok.headers.get(&HeaderName::Require), Some("timer"));
    assert!(h.requests_for(bob()).is_empty(), "not relayed to Bob");
    let ack =
        alice_request("ACK", &a_ok, 3, None).replace("branch=z9hG4bKaACK3", "branch=z9hG4bKack3");
    h.input(alice(), &ack);
    h.advance(Duration::from_secs(5));
    assert!(
        h.responses_for(alice()).is_empty(),
        "200 stops after the ACK"
    );
    assert_eq!(h.pbx.active_calls(), 1);
}

#[test]
fn call_events_in_order_for_a_forked_answered_call() {
    let mut ext = Extension::new("1002", "Bob", "secret1002");
    ext.max_contacts = 2;
    let mut h = Harness::new(ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "secret1002", bob());
    h.register("1002", "secret1002", bob2());
    let (_inv, b_inv) = h.ring(bob());
    let b2_inv = h
        .requests_for(bob2())
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    h.send(bob2(), Message::Response(reply(&b2_inv, 180, "b2", None)));
    let ok = reply(&b_inv, 200, "b1", Some(B_SDP));
    h.send(bob(), Message::Response(ok.clone()));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    let text = alice_request("INFO", &a_ok, 3, None).replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 22\r\n\r\nSignal=5\r\nDuration=160",
    );
    h.input(alice(), &text);
    h.input(bob(), &bob_request("BYE", &b_inv, &ok, 2, None));
    let names: Vec<String> = h
        .events
        .iter()
        .map(|e| match e {
            CallEvent::Started { caller, callee, .. } => format!("start {caller}->{callee}"),
            CallEvent::Dialing { leg, branch, .. } => format!("dial {leg:?}{branch}"),
            CallEvent::Ringing { leg, branch, .. } => format!("ring {leg:?}{branch}"),
            CallEvent::Answered { leg, branch, .. } => format!("answer {leg:?}{branch}"),
            CallEvent::BranchEnded {
                leg,
                branch,
                status,
                ..
            } => {
                format!("end {leg:?}{branch} {status}")
            }
            CallEvent::Bridged { .. } => "bridge".into(),
            CallEvent::Redirected { to, .. } => format!("redirect {to}"),
            CallEvent::Hold { hold, .. } => format!("hold {hold}"),
            CallEvent::Dtmf {
                digit, duration_ms, ..
            } => format!("dtmf {digit} {duration_ms}"),
            CallEvent::Ended {
                q850, by, answered, ..
            } => {
                format!("ended {q850} {by:?} {answered}")
            }
        })
        .collect();
    assert_eq!(
        names,
        [
            "start 1001->1002",
            "dial B0",
            "dial B1",
            "ring B0",
            "ring B1",
            "answer B0",
            "bridge",
            "end B1 487",
            "dtmf 5 160",
            "ended 16 Callee true",
        ]
    );
}

#[test]
fn md5_cred_extension_registers_and_calls() {
    // pjsip.conf `auth_type=md5` + `md5_cred` (no plaintext password): HA1 for realm `test`.
    let mut bob_ext = Extension::new("1002", "Bob", "");
    let cred = hex::encode(<md5::Md5 as md5::Digest>::digest("1002:test:bobs-pass"));
    bob_ext.pjsip_extra.auth.push(("md5_cred".into(), cred));
    let mut h = Harness::new(bob_ext);
    h.register("1001", "secret1001", alice());
    h.register("1002", "bobs-pass", bob());
    let (_inv, b_inv) = h.ring(bob());
    assert_eq!(b_inv.method, Method::Invite);
}
