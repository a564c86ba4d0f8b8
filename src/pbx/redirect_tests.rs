//! AMI `Redirect` scenarios on virtual time: Alice (1001) calls Bob (1002), then one of them
//! is redirected to Carol (1003), with the call harness.

use std::time::Duration;

use super::call_tests::*;
use super::directory::Extension;
use super::engine::{CallEvent, Command, Disposition, HungUpBy, Leg, MediaCommand, RedirectError};
use super::peer::Peer;
use crate::sip::{HeaderName, Message, Method, Request, Response};

/// The relay ports the harness hands out (leg A, leg B).
const RELAY_A: u16 = 20000;
const RELAY_B: u16 = 20002;

const C_SDP: &str = "v=0\r\no=carol 5 5 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn carol() -> Peer {
    Peer::udp("192.0.2.30:5060".parse().unwrap())
}

fn with_carol(codecs: &[&str]) -> Harness {
    let mut h = Harness::with_both();
    let mut carol_ext = Extension::new("1003", "Carol", "secret1003");
    carol_ext.codecs = codecs.iter().map(|c| c.to_string()).collect();
    h.pbx
        .handle_command(h.now, Command::UpsertExtension(carol_ext));
    h.drain();
    h.register("1003", "secret1003", carol());
    h
}

fn last_state(h: &Harness, ext: &str) -> Option<&'static str> {
    h.states
        .iter()
        .rev()
        .find(|(e, _)| e == ext)
        .map(|(_, s)| *s)
}

fn only_call(h: &Harness) -> u64 {
    let calls = h.pbx.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].id
}

fn invite_for(h: &mut Harness, to: Peer) -> Request {
    h.requests_for(to)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("an INVITE")
}

/// A request inside a dialog Dialtone set up as UAC with `inv` (the phone is the UAS: From =
/// the To of its 200, To = the INVITE's From), sent from `via`.
fn uas_request(method: &str, inv: &Request, ok: &Response, cseq: u32, via: Peer) -> String {
    let from = ok.headers.get(&HeaderName::To).unwrap();
    let to = inv.headers.get(&HeaderName::From).unwrap();
    let target = inv
        .headers
        .get(&HeaderName::Contact)
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>');
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKu{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        via.addr,
        inv.call_id().unwrap()
    )
}

#[test]
fn redirect_answered_caller_drops_the_callee_and_calls_the_target() {
    let mut h = with_carol(&["alaw", "ulaw"]);
    let (_inv, a_ok, b_inv, _b_ok) = h.answered();
    let id = only_call(&h);
    h.media.clear();
    h.events.clear();
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", Some("from-internal"))
        .expect("redirect");
    h.drain();
    // Bob is hung up in his dialog.
    let to_bob = h.requests_for(bob());
    assert_eq!(to_bob.len(), 1, "{to_bob:?}");
    assert_eq!(to_bob[0].method, Method::Bye);
    assert_eq!(to_bob[0].call_id(), b_inv.call_id());
    // Alice's phone hears nothing of it (no re-INVITE, no BYE).
    assert!(h.take_for(alice()).is_empty());
    // Carol rings, called by Alice, offered only the codec in use (PCMU) and events, on the
    // relay port Bob had.
    let c_inv = invite_for(&mut h, carol());
    assert_ne!(c_inv.call_id(), b_inv.call_id());
    assert_eq!(c_inv.from().unwrap().uri.user.as_deref(), Some("1001"));
    assert_eq!(c_inv.uri.user.as_deref(), Some("1003"));
    let offer = sdp_of(&c_inv.body);
    assert!(
        offer.contains(&format!("m=audio {RELAY_B} RTP/AVP 0 101\r\n")),
        "{offer}"
    );
    assert!(!offer.contains("PCMA"), "{offer}");
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(h.media.contains(&MediaCommand::ReplaceLeg {
        call: id,
        leg: Leg::B
    }));
    assert!(
        matches!(
            &h.events[..],
            [
                CallEvent::Redirected { kept: Leg::A, answered: true, to, .. },
                CallEvent::Dialing { leg: Leg::B, branch: 0, number, .. },
            ] if to == "1003" && number == "1003"
        ),
        "{:?}",
        h.events
    );
    let view = &h.pbx.calls()[0];
    assert_eq!((view.from.as_str(), view.to.as_str()), ("1001", "1003"));
    assert!(!view.answered);
    // Device states: Bob is free, Carol rings, Alice stays in use.
    assert_eq!(last_state(&h, "1002"), Some("NOT_INUSE"));
    assert_eq!(last_state(&h, "1003"), Some("RINGING"));
    assert_eq!(last_state(&h, "1001"), Some("INUSE"));
    // Bob's 200 for the BYE is taken quietly; a BYE from him now is 481.
    h.send(bob(), Message::Response(reply(&to_bob[0], 200, "b1", None)));
    // Carol rings and answers: ACKed; Alice already has her session; the relay's B side now
    // points at Carol.
    h.send(carol(), Message::Response(reply(&c_inv, 180, "c1", None)));
    assert!(
        h.take_for(alice()).is_empty(),
        "no 180 in an established dialog"
    );
    h.media.clear();
    let c_ok = reply(&c_inv, 200, "c1", Some(C_SDP));
    h.send(carol(), Message::Response(c_ok.clone()));
    assert_eq!(h.requests_for(carol())[0].method, Method::Ack);
    assert!(h.take_for(alice()).is_empty());
    assert!(
        h.media.iter().any(|m| matches!(
            m,
            MediaCommand::SetRemote { call, leg: Leg::B, sdp } if *call == id
                && sdp.audio().is_some_and(|a| a.port == 6000)
        )),
        "{:?}",
        h.media
    );
    assert!(h.pbx.calls()[0].answered);
    assert_eq!(last_state(&h, "1003"), Some("INUSE"));
    // Alice hangs up: BYE to Carol; one CDR for the whole call.
    h.input(alice(), &alice_request("BYE", &a_ok, 3, None));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
    let bye = h.requests_for(carol()).pop().unwrap();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), c_inv.call_id());
    assert_eq!(bye.to().unwrap().tag(), Some("c1"));
    assert!(h.pbx.calls().is_empty());
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1003"));
    assert_eq!(cdr.call_id, "call-a@192.0.2.10");
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hung_up_by, HungUpBy::Caller);
    assert_eq!(cdr.q850_cause, 16);
    assert!(h.cdrs.is_empty(), "one record per call");
}

#[test]
fn redirect_answered_callee_keeps_its_dialog() {
    let mut h = with_carol(&["ulaw", "alaw"]);
    let (_inv, _a_ok, b_inv, b_ok) = h.answered();
    let id = only_call(&h);
    h.media.clear();
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", Some("default"))
        .expect("redirect");
    h.drain();
    // Alice is hung up in her dialog (Dialtone's tag as From, hers as To).
    let to_alice = h.requests_for(alice());
    assert_eq!(to_alice.len(), 1);
    assert_eq!(to_alice[0].method, Method::Bye);
    assert_eq!(to_alice[0].call_id(), Some("call-a@192.0.2.10"));
    assert_eq!(to_alice[0].to().unwrap().tag(), Some("atag"));
    assert!(h.take_for(bob()).is_empty(), "Bob keeps his session as is");
    // Carol is called by Bob, on the relay port Alice had (the relay's legs are swapped).
    let c_inv = invite_for(&mut h, carol());
    assert_eq!(c_inv.from().unwrap().uri.user.as_deref(), Some("1002"));
    let offer = sdp_of(&c_inv.body);
    assert!(
        offer.contains(&format!("m=audio {RELAY_A} RTP/AVP 0 101\r\n")),
        "{offer}"
    );
    assert!(h.media.contains(&MediaCommand::ReplaceLeg {
        call: id,
        leg: Leg::A
    }));
    let view = &h.pbx.calls()[0];
    assert_eq!((view.from.as_str(), view.to.as_str()), ("1002", "1003"));
    assert_eq!(view.call_id, "call-a@192.0.2.10", "the call keeps its id");
    // Carol answers: the relay's A side (Alice's former one) points at her.
    h.media.clear();
    let c_ok = reply(&c_inv, 200, "c1", Some(C_SDP));
    h.send(carol(), Message::Response(c_ok.clone()));
    assert_eq!(h.requests_for(carol())[0].method, Method::Ack);
    assert!(h.take_for(bob()).is_empty());
    assert!(h.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetRemote { leg: Leg::A, sdp, .. } if sdp.audio().is_some_and(|a| a.port == 6000)
    )), "{:?}", h.media);
    // A hold re-INVITE from Bob reaches Carol (rewritten to her relay port).
    let hold = B_SDP.replace("a=sendrecv", "a=sendonly");
    let reinvite = format!(
        "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKbh\r\n\
         Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 INVITE\r\n\
         Contact: <sip:1002@192.0.2.20:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        b_ok.headers.get(&HeaderName::To).unwrap(),
        b_inv.headers.get(&HeaderName::From).unwrap(),
        b_inv.call_id().unwrap(),
        hold.len()
    );
    h.input(bob(), &reinvite);
    let relayed = invite_for(&mut h, carol());
    assert_eq!(relayed.call_id(), c_inv.call_id());
    let body = sdp_of(&relayed.body);
    assert!(body.contains("a=sendonly"), "{body}");
    assert!(body.contains(&format!("m=audio {RELAY_A} ")), "{body}");
    assert!(
        h.media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold {
                leg: Leg::B,
                hold: true,
                ..
            }
        )),
        "Bob is relay leg B: {:?}",
        h.media
    );
    let c_reok = reply(&relayed, 200, "c1", Some(C_SDP));
    h.send(carol(), Message::Response(c_reok));
    let r = h
        .responses_for(bob())
        .pop()
        .expect("200 to Bob's re-INVITE");
    assert_eq!(r.status, 200);
    assert!(sdp_of(&r.body).contains(&format!("m=audio {RELAY_B} ")));
    // Carol hangs up: BYE to Bob in his own dialog (our From tag, his To tag).
    h.input(carol(), &uas_request("BYE", &c_inv, &c_ok, 2, carol()));
    assert_eq!(h.responses_for(carol()).pop().unwrap().status, 200);
    let bye = h
        .requests_for(bob())
        .into_iter()
        .find(|r| r.method == Method::Bye)
        .expect("BYE to Bob");
    assert_eq!(bye.call_id(), b_inv.call_id());
    assert_eq!(bye.to().unwrap().tag(), Some("b1"));
    assert_eq!(bye.from().unwrap().tag(), b_inv.from().unwrap().tag());
    assert!(bye.cseq().unwrap().seq >= 2);
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1002", "1003"));
    assert_eq!(cdr.call_id, "call-a@192.0.2.10");
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hung_up_by, HungUpBy::Callee);
    assert!(h.pbx.calls().is_empty());
}

#[test]
fn redirect_ringing_caller_cancels_the_callee_and_rings_the_target() {
    let mut h = with_carol(&["ulaw", "alaw", "g722"]);
    let (inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 180);
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", None)
        .expect("redirect");
    h.drain();
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Cancel);
    assert!(h.take_for(alice()).is_empty());
    // Carol gets the caller's offer (every codec her extension allows).
    let c_inv = invite_for(&mut h, carol());
    let offer = sdp_of(&c_inv.body);
    assert!(
        offer.contains(&format!("m=audio {RELAY_B} RTP/AVP 0 8 101\r\n")),
        "{offer}"
    );
    // Bob's 487 is ACKed; it does not end the call.
    h.send(bob(), Message::Response(reply(&b_inv, 487, "b1", None)));
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Ack);
    assert_eq!(h.pbx.active_calls(), 1);
    assert!(h.take_for(alice()).is_empty());
    // Carol rings and answers: Alice gets 180 and 200 on her INVITE.
    h.send(carol(), Message::Response(reply(&c_inv, 180, "c1", None)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 180);
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_SDP))),
    );
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(a_ok.status, 200);
    assert!(sdp_of(&a_ok.body).contains(&format!("m=audio {RELAY_A} RTP/AVP 0 101")));
    h.input(alice(), &ack_2xx(&inv, &a_ok));
    h.input(alice(), &alice_request("BYE", &a_ok, 3, None));
    let bye = h.requests_for(carol()).pop().unwrap();
    assert_eq!(bye.method, Method::Bye);
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1003"));
    assert_eq!(cdr.disposition, Disposition::Answered);
}

#[test]
fn refused_redirects_change_nothing() {
    let mut h = with_carol(&["alaw"]);
    let (_inv, b_inv) = h.ring(bob());
    let id = only_call(&h);
    // The callee's channel is not up while it rings.
    assert_eq!(
        h.pbx.redirect_call(h.now, id, Leg::B, "1003", None),
        Err(RedirectError::NotUp)
    );
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 200, "b1", Some(B_SDP))),
    );
    h.take_for(alice());
    h.take_for(bob());
    h.events.clear();
    h.media.clear();
    let attempts: [(u64, &str, Option<&str>, RedirectError); 5] = [
        (id + 99, "1003", None, RedirectError::NoSuchCall),
        (id, "1999", None, RedirectError::NotFound("1999".into())),
        (
            id,
            "1003",
            Some("elsewhere"),
            RedirectError::NoSuchContext {
                context: "elsewhere".into(),
                exten: "1003".into(),
            },
        ),
        (
            id,
            "1001",
            None,
            RedirectError::SameExtension("1001".into()),
        ),
        // Carol allows only PCMA; the call is in PCMU and the relay does not transcode.
        (
            id,
            "1003",
            None,
            RedirectError::NoCommonCodec {
                exten: "1003".into(),
                codec: "ulaw".into(),
            },
        ),
    ];
    for (call, to, ctx, want) in attempts {
        assert_eq!(h.pbx.redirect_call(h.now, call, Leg::A, to, ctx), Err(want));
        h.drain();
    }
    assert!(h.sent.iter().all(|(p, _)| p.addr != carol().addr));
    assert!(h.take_for(alice()).is_empty());
    assert!(h.take_for(bob()).is_empty());
    assert!(h.events.is_empty(), "{:?}", h.events);
    assert!(h.media.is_empty());
    let view = &h.pbx.calls()[0];
    assert!(view.answered);
    assert_eq!((view.from.as_str(), view.to.as_str()), ("1001", "1002"));
}

#[test]
fn target_busy_or_silent_hangs_up_the_kept_phone() {
    // Busy: Carol's 486 is ACKed and Alice gets BYE.
    let mut h = with_carol(&["ulaw"]);
    h.answered();
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", None)
        .unwrap();
    h.drain();
    h.take_for(bob());
    let c_inv = invite_for(&mut h, carol());
    h.send(carol(), Message::Response(reply(&c_inv, 486, "c1", None)));
    assert_eq!(h.requests_for(carol()).pop().unwrap().method, Method::Ack);
    let bye = h.requests_for(alice()).pop().expect("BYE to Alice");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), Some("call-a@192.0.2.10"));
    assert!(h.pbx.calls().is_empty());
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1003"));
    assert_eq!(cdr.disposition, Disposition::Answered, "the first part was");
    assert_eq!(cdr.hangup_cause, 486);
    assert!(matches!(
        h.events.last(),
        Some(CallEvent::Ended { status: 486, .. })
    ));

    // No answer: the ring timeout cancels Carol and hangs Bob (kept) up.
    let mut h = with_carol(&["ulaw"]);
    h.answered();
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", None)
        .unwrap();
    h.drain();
    h.take_for(alice());
    let c_inv = invite_for(&mut h, carol());
    h.send(carol(), Message::Response(reply(&c_inv, 180, "c1", None)));
    h.advance(Duration::from_secs(31));
    assert!(
        h.requests_for(carol())
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    let bye = h.requests_for(bob()).pop().expect("BYE to Bob");
    assert_eq!(bye.method, Method::Bye);
    assert!(h.pbx.calls().is_empty());
    assert_eq!(h.cdrs.pop().unwrap().hangup_cause, 480);
}

#[test]
fn redirect_kept_caller_bye_while_the_target_rings() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, a_ok, _, _) = h.answered();
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", None)
        .unwrap();
    h.drain();
    let c_inv = invite_for(&mut h, carol());
    h.send(carol(), Message::Response(reply(&c_inv, 180, "c1", None)));
    // Alice gives up: 200, Carol's INVITE cancelled.
    h.input(alice(), &alice_request("BYE", &a_ok, 3, None));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
    assert!(
        h.requests_for(carol())
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    assert!(h.pbx.calls().is_empty());
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.hung_up_by, HungUpBy::Caller);
    assert_eq!(cdr.disposition, Disposition::Answered);
}

/// Alice's phone answering Dialtone's INVITE of a click-to-dial call (PCMA, events as 96).
const A_ANSWER: &str = "v=0\r\no=alice 3 3 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendrecv\r\n";

#[test]
fn redirect_of_an_originated_call() {
    // Click-to-dial Alice → Bob, answered by both; then Alice (kept) goes to Carol.
    let mut h = with_carol(&["alaw", "ulaw"]);
    let (id, call_id) = h.pbx.originate_call(h.now, "1001", "1002").unwrap();
    h.drain();
    let a_inv = invite_for(&mut h, alice());
    h.send(
        alice(),
        Message::Response(reply(&a_inv, 200, "a1", Some(A_ANSWER))),
    );
    h.requests_for(alice());
    let b_inv = invite_for(&mut h, bob());
    let b_sdp = "v=0\r\no=bob 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 200, "b1", Some(b_sdp))),
    );
    h.requests_for(bob());
    h.media.clear();
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", Some("from-internal"))
        .unwrap();
    h.drain();
    assert_eq!(h.requests_for(bob()).pop().unwrap().method, Method::Bye);
    assert!(h.take_for(alice()).is_empty());
    // Carol gets Alice's session: PCMA and events numbered as Alice wants them (96).
    let c_inv = invite_for(&mut h, carol());
    let offer = sdp_of(&c_inv.body);
    assert!(
        offer.contains(&format!("m=audio {RELAY_B} RTP/AVP 8 96\r\n")),
        "{offer}"
    );
    let c_sdp = "v=0\r\no=carol 5 5 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendrecv\r\n";
    let c_ok = reply(&c_inv, 200, "c1", Some(c_sdp));
    h.send(carol(), Message::Response(c_ok.clone()));
    assert_eq!(h.requests_for(carol())[0].method, Method::Ack);
    // The relay forgot Bob's maps; Alice sends events as 101 (Dialtone's offer to her), Carol
    // expects 96.
    let replace = h
        .media
        .iter()
        .position(|m| matches!(m, MediaCommand::ReplaceLeg { leg: Leg::B, .. }))
        .expect("ReplaceLeg");
    let map = h
        .media
        .iter()
        .position(|m| {
            matches!(
                m,
                MediaCommand::SetPtMap {
                    leg: Leg::A,
                    from: 101,
                    to: 96,
                    ..
                }
            )
        })
        .expect("SetPtMap");
    assert!(replace < map);
    assert_eq!(h.pbx.calls()[0].call_id, call_id);
    // Carol hangs up: BYE to Alice in the dialog Dialtone started.
    h.input(carol(), &uas_request("BYE", &c_inv, &c_ok, 2, carol()));
    let bye = h.requests_for(alice()).pop().expect("BYE to Alice");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), Some(call_id.as_str()));
    assert_eq!(bye.to().unwrap().tag(), Some("a1"));
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1003"));

    // Same call, Bob kept this time: his dialog (Dialtone was its UAC) becomes leg A.
    let mut h = with_carol(&["alaw"]);
    let (id, call_id) = h.pbx.originate_call(h.now, "1001", "1002").unwrap();
    h.drain();
    let a_inv = invite_for(&mut h, alice());
    h.send(
        alice(),
        Message::Response(reply(&a_inv, 200, "a1", Some(A_ANSWER))),
    );
    h.requests_for(alice());
    let b_inv = invite_for(&mut h, bob());
    let b_ok = reply(&b_inv, 200, "b1", Some(b_sdp));
    h.send(bob(), Message::Response(b_ok.clone()));
    h.requests_for(bob());
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", None)
        .unwrap();
    h.drain();
    let bye = h.requests_for(alice()).pop().unwrap();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), Some(call_id.as_str()));
    let c_inv = invite_for(&mut h, carol());
    assert_eq!(c_inv.from().unwrap().uri.user.as_deref(), Some("1002"));
    assert!(sdp_of(&c_inv.body).contains(&format!("m=audio {RELAY_A} RTP/AVP 8 101\r\n")));
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(c_sdp))),
    );
    assert_eq!(h.requests_for(carol())[0].method, Method::Ack);
    // Bob hangs up in his dialog: 200, BYE to Carol.
    h.input(bob(), &bob_request("BYE", &b_inv, &b_ok, 2, None));
    assert_eq!(h.responses_for(bob()).pop().unwrap().status, 200);
    assert_eq!(h.requests_for(carol()).pop().unwrap().method, Method::Bye);
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1002", "1003"));
    assert_eq!(cdr.call_id, call_id);
    assert!(h.pbx.calls().is_empty());
}

#[test]
fn redirect_twice_swaps_the_relay_legs_back() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, _a_ok, b_inv, _b_ok) = h.answered();
    let id = only_call(&h);
    // Bob kept, Carol called (relay leg A).
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", None)
        .unwrap();
    h.drain();
    h.take_for(alice());
    let c_inv = invite_for(&mut h, carol());
    let c_ok = reply(&c_inv, 200, "c1", Some(C_SDP));
    h.send(carol(), Message::Response(c_ok.clone()));
    h.requests_for(carol());
    // Now Carol's channel (leg B) is redirected to Alice: Bob goes, Carol becomes leg A and
    // Alice gets the relay leg Bob had (B).
    h.media.clear();
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1001", None)
        .unwrap();
    h.drain();
    let bye = h.requests_for(bob()).pop().expect("BYE to Bob");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), b_inv.call_id());
    assert!(h.take_for(carol()).is_empty());
    let a_inv = invite_for(&mut h, alice());
    assert_eq!(a_inv.from().unwrap().uri.user.as_deref(), Some("1003"));
    assert!(sdp_of(&a_inv.body).contains(&format!("m=audio {RELAY_B} RTP/AVP 0 101\r\n")));
    assert!(h.media.contains(&MediaCommand::ReplaceLeg {
        call: id,
        leg: Leg::B
    }));
    let a_sdp = C_SDP
        .replace("192.0.2.30", "192.0.2.10")
        .replace("6000", "4000");
    h.send(
        alice(),
        Message::Response(reply(&a_inv, 200, "a9", Some(&a_sdp))),
    );
    assert!(h.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetRemote { leg: Leg::B, sdp, .. } if sdp.audio().is_some_and(|a| a.port == 4000)
    )));
    // Carol hangs up in her dialog: Alice gets BYE.
    h.input(carol(), &uas_request("BYE", &c_inv, &c_ok, 2, carol()));
    assert_eq!(h.responses_for(carol()).pop().unwrap().status, 200);
    assert!(
        h.requests_for(alice())
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1003", "1001"));
    assert_eq!(cdr.call_id, "call-a@192.0.2.10");
}

/// Alice calls Bob with `a_extra` in her INVITE (session timer headers); Bob answers with
/// `Session-Expires: <b_se>`. Returns (A's INVITE, A's 200, B's INVITE, B's 200).
fn answered_with_timer(
    h: &mut Harness,
    a_extra: &str,
    b_se: &str,
) -> (String, Response, Request, Response) {
    let (inv, rs) = h.dial("1002", A_SDP, a_extra);
    assert_eq!(rs.last().unwrap().status, 100);
    let b_inv = invite_for(h, bob());
    let mut ok = reply(&b_inv, 200, "b1", Some(B_SDP));
    ok.headers.push(HeaderName::SessionExpires, b_se);
    ok.headers.push(HeaderName::Require, "timer");
    h.send(bob(), Message::Response(ok.clone()));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(a_ok.status, 200);
    h.input(alice(), &ack_2xx(&inv, &a_ok));
    h.requests_for(bob());
    (inv, a_ok, b_inv, ok)
}

/// The session version of an SDP's o= line.
fn o_version(sdp: &[u8]) -> u64 {
    let text = sdp_of(sdp);
    let o = text.lines().find(|l| l.starts_with("o=")).expect("o= line");
    o.split(' ').nth(2).unwrap().parse().unwrap()
}

/// A request from Alice in her dialog with extra headers.
fn alice_request_with(
    method: &str,
    a_ok: &Response,
    cseq: u32,
    sdp: Option<&str>,
    extra: &str,
) -> String {
    alice_request(method, a_ok, cseq, sdp).replacen(
        "Content-Length",
        &format!("{extra}Content-Length"),
        1,
    )
}

#[test]
fn kept_callee_gets_session_refreshes_when_the_caller_was_the_refresher() {
    // 1001 calls 1002 with Session-Expires 1800, the caller refreshing; a CRM redirects 1002
    // to 1003. Nobody would refresh Bob's session: Dialtone does, at half the interval, with
    // a re-INVITE (Bob's 200 listed no UPDATE) carrying exactly the SDP Bob has.
    let mut h = with_carol(&["ulaw"]);
    let (_inv, _a_ok, b_inv, b_ok) = answered_with_timer(
        &mut h,
        "Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\n",
        "1800;refresher=uac",
    );
    let id = only_call(&h);
    h.advance(Duration::from_secs(60));
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", Some("from-internal-xfer"))
        .unwrap();
    h.drain();
    h.take_for(alice());
    let c_inv = invite_for(&mut h, carol());
    assert!(
        c_inv.headers.get(&HeaderName::SessionExpires).is_none(),
        "the target is offered no timer"
    );
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_SDP))),
    );
    h.requests_for(carol());
    assert!(h.take_for(bob()).is_empty());
    // 900 s after the answer (the last refresh), not before.
    h.advance(Duration::from_secs(900 - 60 - 1));
    assert!(h.take_for(bob()).is_empty());
    h.advance(Duration::from_secs(2));
    let refresh = h.requests_for(bob()).pop().expect("a refresh to Bob");
    assert_eq!(refresh.method, Method::Invite);
    assert_eq!(refresh.call_id(), b_inv.call_id());
    assert_eq!(refresh.to().unwrap().tag(), Some("b1"));
    assert_eq!(refresh.from().unwrap().tag(), b_inv.from().unwrap().tag());
    assert!(refresh.cseq().unwrap().seq >= 2);
    assert_eq!(
        refresh.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert_eq!(refresh.headers.get(&HeaderName::Supported), Some("timer"));
    assert_eq!(refresh.body, b_inv.body, "the SDP Bob has, same o= version");
    let mut ok = reply(&refresh, 200, "", Some(B_SDP));
    ok.headers
        .push(HeaderName::SessionExpires, "1800;refresher=uac");
    h.send(bob(), Message::Response(ok));
    let ack = h.requests_for(bob()).pop().expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, refresh.cseq().unwrap().seq);
    assert!(h.take_for(carol()).is_empty(), "Carol knows nothing of it");
    // And again 900 s later, for as long as the call lasts.
    h.advance(Duration::from_secs(899));
    assert!(h.take_for(bob()).is_empty());
    h.advance(Duration::from_secs(2));
    let again = h.requests_for(bob()).pop().expect("a second refresh");
    assert_eq!(again.method, Method::Invite);
    assert!(again.cseq().unwrap().seq > refresh.cseq().unwrap().seq);
    assert_eq!(o_version(&again.body), o_version(&b_inv.body));
    let mut ok = reply(&again, 200, "", Some(B_SDP));
    ok.headers
        .push(HeaderName::SessionExpires, "1800;refresher=uac");
    h.send(bob(), Message::Response(ok));
    h.requests_for(bob());
    // Past the 30 minutes the call is up; Bob hangs up when he wants.
    h.advance(Duration::from_secs(200));
    assert_eq!(h.pbx.active_calls(), 1);
    h.input(bob(), &bob_request("BYE", &b_inv, &b_ok, 2, None));
    assert_eq!(h.requests_for(carol()).pop().unwrap().method, Method::Bye);
    assert_eq!(h.cdrs.pop().unwrap().hung_up_by, HungUpBy::Caller);
}

#[test]
fn kept_caller_refreshed_with_update_and_a_failed_refresh_hangs_up() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, a_ok, _b_inv, _b_ok) = answered_with_timer(
        &mut h,
        "Session-Expires: 1800\r\nSupported: timer\r\nAllow: INVITE, ACK, CANCEL, BYE, UPDATE\r\n",
        "1800;refresher=uas",
    );
    assert_eq!(
        a_ok.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uas"),
        "Bob refreshes, as far as Alice knows"
    );
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", Some("ext-local"))
        .unwrap();
    h.drain();
    h.take_for(bob());
    let c_inv = invite_for(&mut h, carol());
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_SDP))),
    );
    h.requests_for(carol());
    h.advance(Duration::from_secs(899));
    assert!(h.take_for(alice()).is_empty());
    h.advance(Duration::from_secs(2));
    let upd = h.requests_for(alice()).pop().expect("UPDATE to Alice");
    assert_eq!(upd.method, Method::Update);
    assert!(upd.body.is_empty());
    assert_eq!(upd.call_id(), Some("call-a@192.0.2.10"));
    assert_eq!(upd.to().unwrap().tag(), Some("atag"));
    assert_eq!(
        upd.from().unwrap().tag(),
        a_ok.to().unwrap().tag(),
        "Dialtone's tag in Alice's dialog"
    );
    assert_eq!(
        upd.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    let mut ok = reply(&upd, 200, "", None);
    ok.headers
        .push(HeaderName::SessionExpires, "1800;refresher=uac");
    h.send(alice(), Message::Response(ok));
    assert!(h.take_for(alice()).is_empty(), "no ACK for an UPDATE");
    // The next one is refused with 481: the session is gone (RFC 4028 §10).
    h.advance(Duration::from_secs(901));
    let upd = h.requests_for(alice()).pop().expect("second UPDATE");
    assert_eq!(upd.method, Method::Update);
    h.send(alice(), Message::Response(reply(&upd, 481, "", None)));
    assert!(
        h.requests_for(carol())
            .iter()
            .any(|r| r.method == Method::Bye),
        "Carol is hung up"
    );
    assert!(h.pbx.calls().is_empty());
    let cdr = h.cdrs.pop().unwrap();
    assert_eq!(cdr.hung_up_by, HungUpBy::System);
    assert_eq!((cdr.from.as_str(), cdr.to.as_str()), ("1001", "1003"));
}

#[test]
fn kept_phone_refreshes_while_the_target_rings_are_answered_by_dialtone() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, a_ok, _b_inv, _b_ok) = answered_with_timer(
        &mut h,
        "Session-Expires: 1800\r\nSupported: timer\r\n",
        "1800;refresher=uas",
    );
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", Some("from-internal-additional"))
        .unwrap();
    h.drain();
    h.take_for(bob());
    let c_inv = invite_for(&mut h, carol());
    // Carol's early media: Alice has her session already, she gets no SDP.
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 183, "c1", Some(C_SDP))),
    );
    assert!(h.take_for(alice()).is_empty());
    let timer = "Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\n";
    // A re-INVITE without SDP: 200 with the session Alice has (not touched by Carol's 183).
    h.input(
        alice(),
        &alice_request_with("INVITE", &a_ok, 2, None, timer),
    );
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, a_ok.body);
    assert_eq!(
        r.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uac")
    );
    assert_eq!(r.headers.get(&HeaderName::Require), Some("timer"));
    h.input(alice(), &alice_request("ACK", &a_ok, 2, None));
    // An UPDATE without a body: 200 without one.
    h.input(
        alice(),
        &alice_request_with("UPDATE", &a_ok, 3, None, timer),
    );
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    // A re-INVITE with the SDP she sent (same o= line): the same answer again.
    h.input(
        alice(),
        &alice_request_with("INVITE", &a_ok, 4, Some(A_SDP), timer),
    );
    let r = h.responses_for(alice()).pop().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, a_ok.body);
    h.input(alice(), &alice_request("ACK", &a_ok, 4, None));
    // A real change (hold) must wait for the target: 491.
    let hold = A_SDP
        .replace("o=alice 1 1", "o=alice 1 2")
        .replace("a=sendrecv", "a=sendonly");
    h.input(alice(), &alice_request("INVITE", &a_ok, 5, Some(&hold)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 491);
    assert!(
        h.requests_for(carol()).is_empty(),
        "nothing relayed to the ringing target"
    );
    // Carol answers; Alice refreshes herself now (she took refresher=uac): Dialtone does not.
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_SDP))),
    );
    h.requests_for(carol());
    h.advance(Duration::from_secs(1000));
    assert!(
        h.requests_for(alice())
            .iter()
            .all(|r| !matches!(r.method, Method::Update | Method::Invite)),
        "Alice refreshes her session herself"
    );
    assert_eq!(h.pbx.active_calls(), 1);
}

#[test]
fn ringing_redirect_keeps_the_codec_of_the_early_media_and_bumps_the_version() {
    const B_PCMA: &str = "v=0\r\no=bob 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    const C_PCMA: &str = "v=0\r\no=carol 5 5 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    // Carol could do PCMU, which Alice offered first: she is offered PCMA only, as Alice
    // already hears PCMA from Bob's 183.
    let mut h = with_carol(&["ulaw", "alaw"]);
    let (_inv, b_inv) = h.ring(bob());
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 183, "b1", Some(B_PCMA))),
    );
    let early = h.responses_for(alice()).pop().unwrap();
    assert_eq!(early.status, 183);
    assert!(sdp_of(&early.body).contains("RTP/AVP 8 101"));
    let id = only_call(&h);
    h.pbx
        .redirect_call(h.now, id, Leg::A, "1003", None)
        .unwrap();
    h.drain();
    let c_inv = invite_for(&mut h, carol());
    let offer = sdp_of(&c_inv.body);
    assert!(
        offer.contains(&format!("m=audio {RELAY_B} RTP/AVP 8 101\r\n")),
        "{offer}"
    );
    assert!(!offer.contains("PCMU"), "{offer}");
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_PCMA))),
    );
    let a_ok = h.responses_for(alice()).pop().unwrap();
    assert_eq!(a_ok.status, 200);
    assert!(sdp_of(&a_ok.body).contains("RTP/AVP 8 101"));
    assert_eq!(
        o_version(&a_ok.body),
        o_version(&early.body) + 1,
        "Alice must take the new SDP"
    );

    // A target without that codec is refused, nothing changes.
    let mut h = with_carol(&["ulaw"]);
    let (_inv, b_inv) = h.ring(bob());
    h.send(
        bob(),
        Message::Response(reply(&b_inv, 183, "b1", Some(B_PCMA))),
    );
    h.take_for(alice());
    let id = only_call(&h);
    assert_eq!(
        h.pbx.redirect_call(h.now, id, Leg::A, "1003", None),
        Err(RedirectError::NoCommonCodec {
            exten: "1003".into(),
            codec: "alaw".into()
        })
    );
    h.drain();
    assert!(h.take_for(bob()).is_empty());
}

#[test]
fn redirect_refused_while_a_relayed_request_is_pending() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, a_ok, _b_inv, _b_ok) = h.answered();
    let id = only_call(&h);
    let info = alice_request_with(
        "INFO",
        &a_ok,
        2,
        None,
        "Content-Type: application/dtmf-relay\r\n",
    );
    h.input(alice(), &info);
    let relayed = h.requests_for(bob()).pop().expect("INFO to Bob");
    assert_eq!(relayed.method, Method::Info);
    for leg in [Leg::A, Leg::B] {
        assert_eq!(
            h.pbx.redirect_call(h.now, id, leg, "1003", None),
            Err(RedirectError::RequestPending)
        );
    }
    h.drain();
    assert!(h.sent.iter().all(|(p, _)| p.addr != carol().addr));
    // Bob answers the INFO: Alice gets her 200; now the redirect goes through.
    h.send(bob(), Message::Response(reply(&relayed, 200, "", None)));
    assert_eq!(h.responses_for(alice()).pop().unwrap().status, 200);
    h.pbx
        .redirect_call(h.now, id, Leg::B, "1003", None)
        .unwrap();
    h.drain();
    assert_eq!(invite_for(&mut h, carol()).method, Method::Invite);
}

#[test]
fn redirect_of_a_channel_follows_its_extension_across_a_leg_swap() {
    let mut h = with_carol(&["ulaw"]);
    let (_inv, _a_ok, b_inv, _b_ok) = h.answered();
    let id = only_call(&h);
    // Bob's channel (leg B) to Carol: Bob becomes leg A.
    h.pbx
        .redirect_channel(h.now, id, Leg::B, Some("1002"), "1003", None)
        .unwrap();
    h.drain();
    h.take_for(alice());
    let c_inv = invite_for(&mut h, carol());
    h.send(
        carol(),
        Message::Response(reply(&c_inv, 200, "c1", Some(C_SDP))),
    );
    h.requests_for(carol());
    // An AMI client that still sees Bob's channel as leg B: neither leg is extension 1009's.
    assert_eq!(
        h.pbx
            .redirect_channel(h.now, id, Leg::B, Some("1009"), "1001", None),
        Err(RedirectError::NotUp)
    );
    // Bob's channel again, with the stale leg: Bob (now leg A) stays, Carol goes.
    h.pbx
        .redirect_channel(h.now, id, Leg::B, Some("1002"), "1001", None)
        .unwrap();
    h.drain();
    let bye = h.requests_for(carol()).pop().expect("BYE to Carol");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), c_inv.call_id());
    assert!(h.take_for(bob()).is_empty());
    let a_inv = invite_for(&mut h, alice());
    assert_eq!(a_inv.from().unwrap().uri.user.as_deref(), Some("1002"));
    let view = &h.pbx.calls()[0];
    assert_eq!((view.from.as_str(), view.to.as_str()), ("1002", "1001"));
    assert_ne!(a_inv.call_id(), b_inv.call_id());
}
