//! Engine scenarios on virtual time: fake phones exchange bytes with a [`Pbx`] in memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Pbx;
use super::directory::Extension;
use super::engine::{Command, Output, PbxConfig, PbxEvent, PersistOp};
use super::peer::Peer;
use super::registrar::QualifyStatus;
use crate::sip::auth::{Algorithm, expected_response, ha1};
use crate::sip::{HeaderName, Message, Response, parse_datagram};

struct Harness {
    pbx: Pbx,
    now: Instant,
    sent: Vec<(Peer, Bytes)>,
    persisted: Vec<PersistOp>,
    events: Vec<PbxEvent>,
}

fn config() -> PbxConfig {
    PbxConfig::for_tests()
}

impl Harness {
    fn new() -> Harness {
        let now = Instant::now();
        let mut pbx = Pbx::new(config(), (now, 1_800_000_000_000));
        let mut e = Extension::new("1001", "Alice", "secret1001");
        e.qualify_frequency = 30;
        pbx.handle_command(
            now,
            Command::LoadDirectory(vec![e, Extension::new("1002", "Bob", "secret1002")]),
        );
        let mut h = Harness {
            pbx,
            now,
            sent: Vec::new(),
            persisted: Vec::new(),
            events: Vec::new(),
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.pbx.poll_output() {
            match o {
                Output::Transmit { to, bytes } => self.sent.push((to, bytes)),
                Output::Persist(p) => self.persisted.push(p),
                Output::Event(e) => self.events.push(e),
                Output::Media(_) | Output::Cdr(_) => {}
            }
        }
    }

    fn input(&mut self, from: Peer, text: &str) {
        self.pbx.handle_datagram(self.now, from, text.as_bytes());
        self.drain();
    }

    /// Advance virtual time in steps, running timers.
    fn advance(&mut self, d: Duration) {
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

    fn take_responses(&mut self) -> Vec<(Peer, Response)> {
        let mut out = Vec::new();
        for (to, b) in self.sent.drain(..) {
            if let Ok(Message::Response(r)) = parse_datagram(&b) {
                out.push((to, r));
            }
        }
        out
    }

    fn take_requests(&mut self) -> Vec<(Peer, crate::sip::Request)> {
        let mut out = Vec::new();
        for (to, b) in self.sent.drain(..) {
            if let Ok(Message::Request(r)) = parse_datagram(&b) {
                out.push((to, r));
            }
        }
        out
    }
}

fn phone() -> Peer {
    Peer::udp("192.0.2.50:5062".parse::<SocketAddr>().unwrap())
}

fn register(user: &str, branch: &str, cseq: u32, expires: u32, auth: Option<&str>) -> String {
    let mut t = format!(
        "REGISTER sip:test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@test>;tag=abc\r\nTo: <sip:{user}@test>\r\n\
         Call-ID: reg-{user}@192.0.2.50\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@192.0.2.50:5062>\r\nExpires: {expires}\r\n"
    );
    if let Some(a) = auth {
        t.push_str(&format!("Authorization: {a}\r\n"));
    }
    t.push_str("Content-Length: 0\r\n\r\n");
    t
}

fn nonce_of(r: &Response) -> String {
    let v = r
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .expect("challenge");
    let start = v.find("nonce=\"").unwrap() + 7;
    v[start..start + v[start..].find('"').unwrap()].to_string()
}

fn authorization(user: &str, password: &str, nonce: &str, nc: u32) -> String {
    let h1 = ha1(Algorithm::Md5, user, "test", password);
    let nc = format!("{nc:08x}");
    let resp = expected_response(
        Algorithm::Md5,
        &h1,
        nonce,
        Some(&nc),
        Some("c0ffee"),
        Some("auth"),
        "REGISTER",
        "sip:test",
        None,
    );
    format!(
        "Digest username=\"{user}\", realm=\"test\", nonce=\"{nonce}\", uri=\"sip:test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\""
    )
}

/// Full REGISTER with digest; returns the final response.
fn do_register(h: &mut Harness, user: &str, password: &str, expires: u32) -> Response {
    h.input(phone(), &register(user, "a1", 1, expires, None));
    let r = h.take_responses().pop().expect("401");
    assert_eq!(r.1.status, 401);
    let auth = authorization(user, password, &nonce_of(&r.1), 1);
    h.input(phone(), &register(user, "a2", 2, expires, Some(&auth)));
    h.take_responses().pop().expect("final").1
}

#[test]
fn directory_changes_are_reported_once() {
    let mut h = Harness::new();
    h.events.clear();
    let mut e = Extension::new("1077", "Late", "late-secret-77");
    h.pbx
        .handle_command(h.now, Command::UpsertExtension(e.clone()));
    // The same again (a password change) is not a hint change.
    e.secret = "other-secret-77".into();
    h.pbx
        .handle_command(h.now, Command::UpsertExtension(e.clone()));
    e.enabled = false;
    h.pbx.handle_command(h.now, Command::UpsertExtension(e));
    h.pbx
        .handle_command(h.now, Command::RemoveExtension("1077".into()));
    h.drain();
    let dir: Vec<(String, Option<String>)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            PbxEvent::Directory { number, context } => Some((number.clone(), context.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        dir,
        [
            ("1077".to_string(), Some("from-internal".to_string())),
            ("1077".to_string(), None)
        ]
    );
}

#[test]
fn register_with_digest_persists_and_reports() {
    let mut h = Harness::new();
    let r = do_register(&mut h, "1001", "secret1001", 600);
    assert_eq!(r.status, 200);
    let contact = r.headers.get(&HeaderName::Contact).unwrap();
    assert!(
        contact.contains("sip:1001@192.0.2.50:5062") && contact.contains("expires=600"),
        "{contact}"
    );
    assert!(r.to().unwrap().tag().is_some());
    assert!(
        matches!(&h.persisted[..], [PersistOp::Upsert(rec)] if rec.aor == "1001" && rec.source == "192.0.2.50:5062")
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, PbxEvent::Registered { aor, .. } if aor == "1001"))
    );
    assert_eq!(h.pbx.stats().bindings, 1);
}

#[test]
fn response_goes_to_source_with_received_and_rport() {
    let mut h = Harness::new();
    h.input(phone(), &register("1001", "x1", 1, 600, None));
    let (to, r) = h.take_responses().pop().unwrap();
    assert_eq!(to, phone());
    let via = r.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(5062)));
}

#[test]
fn retransmitted_authenticated_register_is_absorbed() {
    let mut h = Harness::new();
    h.input(phone(), &register("1001", "a1", 1, 600, None));
    let nonce = nonce_of(&h.take_responses().pop().unwrap().1);
    let req = register(
        "1001",
        "a2",
        2,
        600,
        Some(&authorization("1001", "secret1001", &nonce, 1)),
    );
    h.input(phone(), &req);
    let first = h.take_responses().pop().unwrap().1;
    assert_eq!(first.status, 200);
    // The same datagram again (same branch, same nc): the transaction re-sends the 200; it is
    // not mistaken for a replayed nonce count.
    h.input(phone(), &req);
    let again = h.take_responses();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.status, 200);
    assert_eq!(again[0].1.to().unwrap().tag(), first.to().unwrap().tag());
}

#[test]
fn wrong_password_then_ban() {
    let mut h = Harness::new();
    for i in 0..3 {
        let r = do_register_branch(&mut h, "1001", "wrong-pass", i);
        assert_eq!(r.map(|r| r.status), Some(403), "attempt {i}");
    }
    // Banned: nothing at all comes back.
    h.input(phone(), &register("1001", "zz", 9, 600, None));
    assert!(h.take_responses().is_empty());
    // After the ban the source is heard again.
    h.advance(Duration::from_secs(301));
    h.sent.clear();
    h.input(phone(), &register("1001", "zz2", 10, 600, None));
    assert_eq!(h.take_responses().pop().unwrap().1.status, 401);
}

fn do_register_branch(h: &mut Harness, user: &str, password: &str, i: u32) -> Option<Response> {
    h.input(
        phone(),
        &register(user, &format!("b{i}x"), i * 2 + 1, 600, None),
    );
    let r = h.take_responses().pop()?;
    let auth = authorization(user, password, &nonce_of(&r.1), 1);
    h.input(
        phone(),
        &register(user, &format!("b{i}y"), i * 2 + 2, 600, Some(&auth)),
    );
    h.take_responses().pop().map(|r| r.1)
}

#[test]
fn disabled_extension_cannot_register_and_loses_bindings() {
    let mut h = Harness::new();
    assert_eq!(do_register(&mut h, "1002", "secret1002", 600).status, 200);
    let mut e = Extension::new("1002", "Bob", "secret1002");
    e.enabled = false;
    h.pbx.handle_command(h.now, Command::UpsertExtension(e));
    h.drain();
    assert_eq!(h.pbx.stats().bindings, 0);
    assert!(
        h.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Delete { aor, .. } if aor == "1002"))
    );
    h.input(phone(), &register("1002", "d1", 5, 600, None));
    let nonce = nonce_of(&h.take_responses().pop().unwrap().1);
    h.input(
        phone(),
        &register(
            "1002",
            "d2",
            6,
            600,
            Some(&authorization("1002", "secret1002", &nonce, 1)),
        ),
    );
    assert_eq!(h.take_responses().pop().unwrap().1.status, 403);
}

#[test]
fn stale_nonce_gets_stale_challenge() {
    let mut h = Harness::new();
    h.input(phone(), &register("1001", "s1", 1, 600, None));
    let nonce = nonce_of(&h.take_responses().pop().unwrap().1);
    h.advance(Duration::from_secs(301));
    h.sent.clear();
    h.input(
        phone(),
        &register(
            "1001",
            "s2",
            2,
            600,
            Some(&authorization("1001", "secret1001", &nonce, 1)),
        ),
    );
    let r = h.take_responses().pop().unwrap().1;
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .contains("stale=true")
    );
}

#[test]
fn qualify_reachable_then_unreachable() {
    let mut h = Harness::new();
    assert_eq!(do_register(&mut h, "1001", "secret1001", 3600).status, 200);
    // First probe shortly after registration.
    h.advance(Duration::from_secs(5));
    let reqs = h.take_requests();
    let (to, opt) = reqs.first().expect("qualify OPTIONS sent");
    assert_eq!(*to, phone());
    assert_eq!(opt.method.as_str(), "OPTIONS");
    // Answer it 20 ms later.
    h.advance(Duration::from_millis(20));
    let mut ok = opt.make_response(200, "OK");
    ok.set_to_tag("p");
    let text = String::from_utf8(Message::Response(ok).to_bytes().to_vec()).unwrap();
    h.input(phone(), &text);
    let c = h.pbx.contacts(h.now, Some("1001"));
    assert_eq!(c[0].qualify, QualifyStatus::Reachable);
    assert!(c[0].rtt.unwrap() >= Duration::from_millis(20));
    assert!(h.events.iter().any(|e| matches!(
        e,
        PbxEvent::ContactStatus {
            status: QualifyStatus::Reachable,
            ..
        }
    )));
    // Next probe after qualify_frequency (30 s); no answer → Timer F (32 s) → Unreachable.
    h.sent.clear();
    h.advance(Duration::from_secs(31));
    assert!(
        h.take_requests()
            .iter()
            .any(|(_, r)| r.method.as_str() == "OPTIONS")
    );
    h.advance(Duration::from_secs(33));
    let c = h.pbx.contacts(h.now, Some("1001"));
    assert_eq!(c[0].qualify, QualifyStatus::Unreachable);
    assert!(h.events.iter().any(|e| matches!(
        e,
        PbxEvent::ContactStatus {
            status: QualifyStatus::Unreachable,
            ..
        }
    )));
}

#[test]
fn options_answered_and_malformed_gets_400() {
    let mut h = Harness::new();
    h.input(
        phone(),
        "OPTIONS sip:test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n\
         From: <sip:x@test>;tag=1\r\nTo: <sip:test>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    let r = h.take_responses().pop().unwrap().1;
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .get_all(&HeaderName::Allow)
            .any(|v| v == "REGISTER")
    );
    assert_eq!(r.headers.get(&HeaderName::Accept), Some("application/sdp"));
    assert_eq!(r.headers.get(&HeaderName::Supported), Some("timer"));
    // CSeq method mismatch → 400
    h.input(
        phone(),
        "OPTIONS sip:test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bKo2\r\nMax-Forwards: 70\r\n\
         From: <sip:x@test>;tag=1\r\nTo: <sip:test>\r\nCall-ID: o2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.take_responses().pop().unwrap().1.status, 400);
    // Garbage: no answer, no panic.
    h.input(phone(), "\u{0}\u{1}garbage");
    assert!(h.take_responses().is_empty());
}

#[test]
fn binding_expiry_persists_delete() {
    let mut h = Harness::new();
    assert_eq!(do_register(&mut h, "1001", "secret1001", 60).status, 200);
    h.persisted.clear();
    h.advance(Duration::from_secs(61));
    assert_eq!(h.pbx.stats().bindings, 0);
    assert!(
        h.persisted
            .iter()
            .any(|p| matches!(p, PersistOp::Delete { aor, .. } if aor == "1001"))
    );
}

#[test]
fn large_requests_move_from_udp_to_tcp() {
    use super::engine::request_transport;
    let udp = phone();
    assert_eq!(request_transport(udp, 800, true), udp);
    let moved = request_transport(udp, 1301, true);
    assert_eq!(moved.proto, super::peer::Proto::Tcp);
    assert_eq!(moved.addr, udp.addr);
    assert_eq!(moved.conn, None);
    // Without a TCP transport there is nowhere to move to.
    assert_eq!(request_transport(udp, 5000, false), udp);
}

/// Network input never panics the engine: every RFC 4475 message, every truncation of it and
/// random byte flips, over UDP and TCP peers, through parsing, transactions, auth and the
/// registrar.
#[test]
fn engine_survives_torture_and_mutations() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 50);
    let mut h = Harness::new();
    let tcp = Peer::tcp("192.0.2.60:40000".parse().unwrap(), 7);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for peer in [phone(), tcp] {
            h.pbx.handle_datagram(h.now, peer, &data);
            for cut in (0..data.len()).step_by(7) {
                h.pbx.handle_datagram(h.now, peer, &data[..cut]);
            }
            for _ in 0..50 {
                let mut m = data.clone();
                for _ in 0..4 {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
                h.pbx.handle_datagram(h.now, peer, &m);
            }
            h.drain();
        }
        h.sent.clear();
    }
    // Still serving.
    h.advance(Duration::from_secs(400));
    h.sent.clear();
    assert_eq!(do_register(&mut h, "1002", "secret1002", 600).status, 200);
}
