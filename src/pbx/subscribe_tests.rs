//! Presence and BLF scenarios on virtual time (RFC 6665 lifecycle, RFC 4235 dialog states over
//! a call, PIDF from the REST status, PUBLISH with ETags, DND), with the call harness.

use std::time::Duration;

use super::call_tests::*;
use super::directory::Extension;
use super::engine::Command;
use super::peer::Peer;
use super::presence::PresenceStatus;
use crate::sip::{HeaderName, Message, Method, Request};

fn carol() -> Peer {
    Peer::udp("192.0.2.30:5060".parse().unwrap())
}

fn with_carol() -> Harness {
    let mut h = Harness::with_both();
    h.pbx.handle_command(
        h.now,
        Command::UpsertExtension(Extension::new("1003", "Carol", "secret1003")),
    );
    h.drain();
    h.register("1003", "secret1003", carol());
    h
}

fn subscribe_text(resource: &str, branch: &str, cseq: u32, event: &str, extra: &str) -> String {
    let ev_id: String = event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "SUBSCRIBE sip:{resource}@test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1003@test>;tag=ctag\r\nTo: <sip:{resource}@test>\r\n\
         Call-ID: sub-{resource}-{ev_id}@192.0.2.30\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1003@192.0.2.30:5060>\r\n\
         Event: {event}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Carol subscribes (401, then with credentials). Returns the 200 and the first NOTIFY.
fn subscribe(
    h: &mut Harness,
    resource: &str,
    event: &str,
    extra: &str,
) -> (crate::sip::Response, Request) {
    // Fresh branches and Call-ID per subscription.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let fresh = |t: String| {
        t.replace("branch=z9hG4bKs", &format!("branch=z9hG4bKs{n}x"))
            .replace("Call-ID: sub-", &format!("Call-ID: sub{n}-"))
    };
    h.input(
        carol(),
        &fresh(subscribe_text(resource, "s1", 1, event, extra)),
    );
    let r = h.responses_for(carol()).pop().expect("401");
    assert_eq!(r.status, 401, "{r:?}");
    let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
    let auth = digest(
        "1003",
        "secret1003",
        &nonce,
        "SUBSCRIBE",
        &format!("sip:{resource}@test"),
    );
    let text = subscribe_text(
        resource,
        "s2",
        2,
        event,
        &format!("{extra}Authorization: {auth}\r\n"),
    );
    h.input(carol(), &fresh(text));
    let msgs = h.take_for(carol());
    let ok = msgs
        .iter()
        .find_map(|m| match m {
            Message::Response(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a response");
    let notify = msgs
        .into_iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method == Method::Notify => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no NOTIFY after {}", ok.status));
    (ok, notify)
}

fn notifies(h: &mut Harness) -> Vec<Request> {
    let v: Vec<Request> = h
        .requests_for(carol())
        .into_iter()
        .filter(|r| r.method == Method::Notify)
        .collect();
    for n in &v {
        h.send(carol(), Message::Response(n.make_response(200, "OK")));
    }
    v
}

fn body(r: &Request) -> String {
    String::from_utf8(r.body.to_vec()).unwrap()
}

fn dialog_states(r: &Request) -> Vec<String> {
    let b = body(r);
    let doc = roxmltree::Document::parse(&b).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("state"))
        .map(|n| n.text().unwrap_or("").to_owned())
        .collect()
}

fn version(r: &Request) -> u32 {
    let b = body(r);
    let doc = roxmltree::Document::parse(&b).unwrap();
    doc.root_element()
        .attribute("version")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn blf_follows_a_call_idle_early_confirmed_hold_terminated() {
    let mut h = with_carol();
    let (ok, first) = subscribe(
        &mut h,
        "1002",
        "dialog",
        "Accept: application/dialog-info+xml\r\n",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get(&HeaderName::Expires), Some("3600"));
    assert_eq!(first.headers.get(&HeaderName::Event), Some("dialog"));
    assert_eq!(
        first.headers.get(&HeaderName::SubscriptionState),
        Some("active;expires=3600")
    );
    assert_eq!(first.content_type(), Some("application/dialog-info+xml"));
    assert!(dialog_states(&first).is_empty(), "idle: {}", body(&first));
    assert_eq!(first.to().unwrap().tag(), Some("ctag"));
    h.send(carol(), Message::Response(first.make_response(200, "OK")));

    // Alice calls Bob: early, with Alice as the remote identity (for call pickup).
    let (inv, b_inv) = h.ring(bob());
    h.send(bob(), Message::Response(reply(&b_inv, 180, "b1", None)));
    let n = notifies(&mut h);
    let last = n.last().expect("NOTIFY for ringing");
    assert_eq!(dialog_states(last), ["early"]);
    let b = body(last);
    assert!(b.contains("direction=\"recipient\""), "{b}");
    assert!(b.contains("<identity display=\"Alice\">sip:1001@"), "{b}");
    let v_early = version(last);
    assert!(v_early >= 1);
    // Answer: confirmed.
    let ok_b = reply(&b_inv, 200, "b1", Some(B_SDP));
    h.send(bob(), Message::Response(ok_b.clone()));
    let a_ok = h.responses_for(alice()).pop().unwrap();
    h.input(alice(), &ack_2xx(&inv, &a_ok));
    let n = notifies(&mut h);
    assert_eq!(dialog_states(n.last().unwrap()), ["confirmed"]);
    assert!(version(n.last().unwrap()) > v_early);
    // Bob holds: confirmed, local target +sip.rendering=no (as Asterisk shows it).
    let hold = B_SDP
        .replace("a=sendrecv", "a=sendonly")
        .replace("o=bob 7 7", "o=bob 7 8");
    h.input(bob(), &bob_request("INVITE", &b_inv, &ok_b, 2, Some(&hold)));
    let n = notifies(&mut h);
    let b = body(n.last().expect("NOTIFY for hold"));
    assert!(
        b.contains("+sip.rendering") && b.contains("pvalue=\"no\""),
        "{b}"
    );
    // Bob hangs up: the dialog shows terminated once, then idle.
    h.input(bob(), &bob_request("BYE", &b_inv, &ok_b, 3, None));
    let n = notifies(&mut h);
    assert_eq!(dialog_states(n.last().unwrap()), ["terminated"]);
    let bob_states: Vec<&str> = h
        .states
        .iter()
        .filter(|(e, _)| e == "1002")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(
        bob_states,
        ["NOT_INUSE", "RINGING", "INUSE", "ONHOLD", "NOT_INUSE"]
    );
}

#[test]
fn subscription_refresh_expiry_unsubscribe_and_failure() {
    let mut h = with_carol();
    let (ok, first) = subscribe(&mut h, "1002", "presence", "Expires: 120\r\n");
    assert_eq!(ok.headers.get(&HeaderName::Expires), Some("120"));
    assert_eq!(first.content_type(), Some("application/pidf+xml"));
    h.send(carol(), Message::Response(first.make_response(200, "OK")));
    let tag = ok.to().unwrap().tag().unwrap().to_owned();
    let in_dialog = |branch: &str, cseq: u32, expires: u32| {
        subscribe_text(
            "1002",
            branch,
            cseq,
            "presence",
            &format!("Expires: {expires}\r\n"),
        )
        .replace(
            "To: <sip:1002@test>",
            &format!("To: <sip:1002@test>;tag={tag}"),
        )
        .replace(
            "Call-ID: sub-1002-presence@192.0.2.30",
            &format!("Call-ID: {}", ok.call_id().unwrap()),
        )
    };
    // Refresh (not challenged): 200 and a NOTIFY with the new expiry.
    h.advance(Duration::from_secs(60));
    h.input(carol(), &in_dialog("s3", 3, 300));
    let msgs = h.take_for(carol());
    assert!(msgs.iter().any(|m| matches!(m, Message::Response(r) if r.status == 200 && r.headers.get(&HeaderName::Expires) == Some("300"))), "{msgs:?}");
    let n = msgs
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method == Method::Notify => Some(r.clone()),
            _ => None,
        })
        .expect("NOTIFY after refresh");
    assert_eq!(
        n.headers.get(&HeaderName::SubscriptionState),
        Some("active;expires=300")
    );
    h.send(carol(), Message::Response(n.make_response(200, "OK")));
    // Expiry on virtual time: a terminating NOTIFY with reason=timeout.
    h.advance(Duration::from_secs(301));
    let n = notifies(&mut h);
    assert_eq!(
        n.last()
            .unwrap()
            .headers
            .get(&HeaderName::SubscriptionState),
        Some("terminated;reason=timeout")
    );
    assert_eq!(h.pbx.stats().subscriptions, 0);

    // Unsubscribe with Expires: 0.
    let mut h = with_carol();
    let (ok, first) = subscribe(&mut h, "1002", "dialog", "");
    h.send(carol(), Message::Response(first.make_response(200, "OK")));
    let tag = ok.to().unwrap().tag().unwrap().to_owned();
    let unsub = subscribe_text("1002", "s9", 9, "dialog", "Expires: 0\r\n")
        .replace(
            "To: <sip:1002@test>",
            &format!("To: <sip:1002@test>;tag={tag}"),
        )
        .replace(
            "Call-ID: sub-1002-dialog@192.0.2.30",
            &format!("Call-ID: {}", ok.call_id().unwrap()),
        );
    h.input(carol(), &unsub);
    let msgs = h.take_for(carol());
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::Response(r) if r.status == 200))
    );
    assert!(msgs.iter().any(
        |m| matches!(m, Message::Request(r) if r.method == Method::Notify
        && r.headers.get(&HeaderName::SubscriptionState) == Some("terminated"))
    ));
    assert_eq!(h.pbx.stats().subscriptions, 0);
    // Unknown dialog: 481.
    h.input(carol(), &unsub.replace("z9hG4bKs9", "z9hG4bKs10"));
    assert_eq!(h.responses_for(carol()).pop().unwrap().status, 481);

    // A NOTIFY answered 481 ends the subscription.
    let mut h = with_carol();
    let (_ok, first) = subscribe(&mut h, "1002", "dialog", "");
    assert_eq!(h.pbx.stats().subscriptions, 1);
    h.send(carol(), Message::Response(first.make_response(481, "Gone")));
    assert_eq!(h.pbx.stats().subscriptions, 0);
    // A NOTIFY that never gets an answer (Timer F) ends it too.
    let (_ok, _first) = subscribe(&mut h, "1002", "dialog", "");
    assert_eq!(h.pbx.stats().subscriptions, 1);
    h.advance(Duration::from_secs(40));
    assert_eq!(h.pbx.stats().subscriptions, 0);
}

#[test]
fn bad_subscriptions_get_clear_statuses() {
    let mut h = with_carol();
    h.input(carol(), &subscribe_text("1002", "b1", 1, "foo", ""));
    let r = h.responses_for(carol()).pop().unwrap();
    assert_eq!(r.status, 489);
    assert_eq!(
        r.headers
            .get_all(&HeaderName::AllowEvents)
            .collect::<Vec<_>>()
            .join(", "),
        "presence, dialog, message-summary"
    );
    h.input(carol(), &subscribe_text("1002", "b2", 1, "dia log;;", ""));
    let r = h
        .responses_for(carol())
        .pop()
        .unwrap_or_else(|| panic!("{:?}", h.sent));
    assert_eq!(r.status, 400);
    assert!(r.reason.contains("Event"), "{}", r.reason);
    h.input(
        carol(),
        &subscribe_text("1002", "b3", 1, "dialog", "Accept: garbage\r\n"),
    );
    let r = h.responses_for(carol()).pop().unwrap();
    assert_eq!((r.status, r.reason.contains("Accept")), (400, true));
    // Authenticated failures.
    let mut seq = 0;
    let mut auth_sub = |h: &mut Harness, resource: &str, event: &str, extra: &str| {
        seq += 1;
        let b1 = format!("x{seq}a");
        let b2 = format!("x{seq}b");
        h.input(carol(), &subscribe_text(resource, &b1, 1, event, extra));
        let r = h.responses_for(carol()).pop().unwrap();
        let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
        let auth = digest(
            "1003",
            "secret1003",
            &nonce,
            "SUBSCRIBE",
            &format!("sip:{resource}@test"),
        );
        h.input(
            carol(),
            &subscribe_text(
                resource,
                &b2,
                2,
                event,
                &format!("{extra}Authorization: {auth}\r\n"),
            ),
        );
        h.responses_for(carol()).pop().unwrap()
    };
    assert_eq!(
        auth_sub(&mut h, "1002", "dialog", "Accept: text/plain\r\n").status,
        406
    );
    let r = auth_sub(&mut h, "1002", "dialog", "Expires: 10\r\n");
    assert_eq!(
        (r.status, r.headers.get(&HeaderName::MinExpires)),
        (423, Some("60"))
    );
    assert_eq!(auth_sub(&mut h, "1099", "dialog", "").status, 404);
    assert_eq!(auth_sub(&mut h, "1002", "message-summary", "").status, 403);
    let mut other = Extension::new("1004", "Dan", "secret1004");
    other.context = "other-ctx".into();
    h.pbx.handle_command(h.now, Command::UpsertExtension(other));
    assert_eq!(
        auth_sub(&mut h, "1004", "dialog", "").status,
        404,
        "not in Carol's subscribe_context"
    );
}

#[test]
fn mwi_presence_from_rest_and_xpidf() {
    let mut h = with_carol();
    let (_ok, n) = subscribe(&mut h, "1003", "message-summary", "");
    assert_eq!(n.content_type(), Some("application/simple-message-summary"));
    assert!(
        body(&n).starts_with("Messages-Waiting: no\r\n"),
        "{}",
        body(&n)
    );
    assert!(body(&n).contains("Voice-Message: 0/0 (0/0)"));
    let (_ok, n) = subscribe(&mut h, "1002", "presence", "");
    h.send(carol(), Message::Response(n.make_response(200, "OK")));
    assert!(body(&n).contains("<basic>open</basic>"));
    let now = h.now;
    h.pbx
        .set_presence(now, "1002", PresenceStatus::Away, Some("Lunch".into()))
        .unwrap();
    h.drain();
    let n = notifies(&mut h);
    let b = body(n.last().expect("NOTIFY for the REST status"));
    assert!(b.contains("<rpid:away/>") && b.contains("Lunch"), "{b}");
    let list = h.pbx.presence_list(now);
    let bob = list.iter().find(|p| p.extension == "1002").unwrap();
    assert_eq!(
        (bob.status, bob.note.as_deref()),
        (PresenceStatus::Away, Some("Lunch"))
    );
    // XPIDF when that is all the phone accepts.
    let text = subscribe_text(
        "1001",
        "x1",
        1,
        "presence",
        "Accept: application/xpidf+xml\r\n",
    )
    .replace("sub-1001-presence", "sub-xpidf");
    h.input(carol(), &text);
    let r = h.responses_for(carol()).pop().unwrap();
    let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
    let auth = digest("1003", "secret1003", &nonce, "SUBSCRIBE", "sip:1001@test");
    h.input(
        carol(),
        &subscribe_text(
            "1001",
            "x2",
            2,
            "presence",
            &format!("Accept: application/xpidf+xml\r\nAuthorization: {auth}\r\n"),
        )
        .replace("sub-1001-presence", "sub-xpidf"),
    );
    let n = notifies(&mut h);
    assert_eq!(
        n.last().unwrap().content_type(),
        Some("application/xpidf+xml")
    );
}

#[test]
fn dnd_refuses_calls_and_lights_the_lamp() {
    let mut h = with_carol();
    let (_ok, n) = subscribe(&mut h, "1002", "dialog", "");
    h.send(carol(), Message::Response(n.make_response(200, "OK")));
    let now = h.now;
    h.pbx
        .set_presence(now, "1002", PresenceStatus::DoNotDisturb, None)
        .unwrap();
    h.drain();
    let n = notifies(&mut h);
    assert_eq!(dialog_states(n.last().unwrap()), ["confirmed"]);
    let (_inv, rs) = h.dial("1002", A_SDP, "");
    assert_eq!(rs.last().unwrap().status, 486);
    assert!(
        h.requests_for(bob())
            .iter()
            .all(|r| r.method != Method::Invite)
    );
    assert!(
        h.pbx
            .set_presence(now, "1999", PresenceStatus::Away, None)
            .is_err()
    );
}

#[test]
fn publish_with_etags() {
    let mut h = with_carol();
    let (_ok, n) = subscribe(&mut h, "1002", "presence", "");
    h.send(carol(), Message::Response(n.make_response(200, "OK")));
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
        xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:1002@test\"><tuple id=\"t\">\
        <status><basic>open</basic></status></tuple><rpid:activities><rpid:busy/></rpid:activities>\
        <note>In a call with a customer</note></presence>";
    let publish = |branch: &str, cseq: u32, extra: &str, body: &str| {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/pidf+xml\r\n"
        };
        format!(
            "PUBLISH sip:1002@test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1002@test>;tag=pt\r\nTo: <sip:1002@test>\r\n\
             Call-ID: pub-1002@192.0.2.20\r\nCSeq: {cseq} PUBLISH\r\nEvent: presence\r\n{extra}{ct}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    h.input(bob(), &publish("p1", 1, "Expires: 600\r\n", pidf));
    let r = h.responses_for(bob()).pop().unwrap();
    assert_eq!(r.status, 401);
    let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
    let auth = |nonce: &str| {
        format!(
            "Authorization: {}\r\n",
            digest("1002", "secret1002", nonce, "PUBLISH", "sip:1002@test")
        )
    };
    h.input(
        bob(),
        &publish("p2", 2, &format!("Expires: 600\r\n{}", auth(&nonce)), pidf),
    );
    let r = h.responses_for(bob()).pop().unwrap();
    assert_eq!(r.status, 200);
    let etag = r
        .headers
        .get(&HeaderName::SipEtag)
        .expect("SIP-ETag")
        .to_owned();
    let n = notifies(&mut h);
    let b = body(n.last().expect("NOTIFY for the publication"));
    assert!(b.contains("<rpid:busy/>") && b.contains("customer"), "{b}");
    // A refresh with an unknown ETag: 412. With the right one: a new ETag.
    h.input(bob(), &publish("p4", 4, "SIP-If-Match: nope\r\n", ""));
    let r = h.responses_for(bob()).pop().unwrap();
    let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
    h.input(
        bob(),
        &publish(
            "p5",
            5,
            &format!("SIP-If-Match: nope\r\n{}", auth(&nonce)),
            "",
        ),
    );
    assert_eq!(h.responses_for(bob()).pop().unwrap().status, 412);
    h.input(bob(), &publish("p6", 6, "", ""));
    let r = h.responses_for(bob()).pop().unwrap();
    let nonce = nonce_of(r.headers.get(&HeaderName::WwwAuthenticate).unwrap());
    h.input(
        bob(),
        &publish(
            "p7",
            7,
            &format!("SIP-If-Match: {etag}\r\nExpires: 600\r\n{}", auth(&nonce)),
            "",
        ),
    );
    let r = h.responses_for(bob()).pop().unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.headers.get(&HeaderName::SipEtag), Some(etag.as_str()));
}
