//! A real call through a running server: REGISTER both phones, INVITE with digest, ringing,
//! answer, RTP both ways through the relay (byte-identical), BYE.

use std::time::Duration;

use tokio::net::UdpSocket;

use crate::support::{Phone, Resp, TestServer, digest_md5, eventually, http};

const TOKEN: &str = "test-token-123456";

fn header_lines(msg: &str, name: &str) -> Vec<String> {
    let name = name.to_ascii_lowercase();
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(&name))
        })
        .map(str::to_string)
        .collect()
}

pub(crate) fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// The audio port and address in an SDP body.
pub(crate) fn sdp_target(msg: &str) -> std::net::SocketAddr {
    let body = msg.split("\r\n\r\n").nth(1).expect("body");
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c=")
        .trim();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .expect("m=")
        .parse::<u16>()
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

fn invite(a: &Phone, branch: &str, cseq: u32, body: &str, auth: Option<&str>) -> String {
    let mut t = format!(
        "INVITE sip:1002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: <sip:1002@test.local>\r\n\
         Call-ID: call-1@test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{local}>\r\n\
         Content-Type: application/sdp\r\n",
        local = a.local
    );
    if let Some(x) = auth {
        t.push_str(&format!("Proxy-Authorization: {x}\r\n"));
    }
    t.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    t
}

/// Build a response to `req` (copying Via/From/To/Call-ID/CSeq) with a To tag and optional SDP.
pub(crate) fn answer(req: &str, code: &str, contact: &str, body: Option<&str>) -> String {
    let mut t = format!("SIP/2.0 {code}\r\n");
    for name in ["via", "from", "to", "call-id", "cseq"] {
        for l in header_lines(req, name) {
            if name == "to" && !l.contains("tag=") {
                t.push_str(&format!("{l};tag=bob1\r\n"));
            } else {
                t.push_str(&format!("{l}\r\n"));
            }
        }
    }
    t.push_str(&format!("Contact: <{contact}>\r\n"));
    match body {
        Some(b) => t.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => t.push_str("Content-Length: 0\r\n\r\n"),
    }
    t
}

pub(crate) async fn next_request(p: &mut Phone, method: &str) -> String {
    loop {
        let m = p
            .recv()
            .await
            .unwrap_or_else(|| panic!("no {method} arrived"));
        if m.starts_with(&format!("{method} ")) {
            return m;
        }
        if !m.starts_with("SIP/2.0") {
            p.answer_request(&m).await; // qualify OPTIONS
        }
    }
}

async fn next_final(p: &mut Phone) -> (Resp, String) {
    loop {
        let m = p.recv().await.expect("a response");
        if m.starts_with("SIP/2.0 ") {
            let r = Resp::parse(&m);
            if r.status >= 200 {
                return (r, m);
            }
        } else {
            p.answer_request(&m).await;
        }
    }
}

/// An answered call between 1001 (Alice) and 1002 (Bob) with media flowing.
pub(crate) struct Established {
    pub srv: TestServer,
    pub alice: Phone,
    pub bob: Phone,
    pub target: String,
    pub to: String,
    pub bob_contact: String,
}

async fn establish() -> Established {
    establish_with("", false).await
}

/// `server_keys`: extra `server:` settings. `nat`: Alice's RTP leaves from a port other than
/// the one her SDP names (a phone behind NAT); the relay must latch onto the real source.
async fn establish_with(server_keys: &str, nat: bool) -> Established {
    establish_full(server_keys, "", nat, async |_| ()).await.0
}

/// [`establish_with`] with `extra` config; `before_call` runs once the server is up (to
/// connect clients that watch the call), its result is returned with the call.
pub(crate) async fn establish_full<T>(
    server_keys: &str,
    extra: &str,
    nat: bool,
    before_call: impl AsyncFnOnce(&TestServer) -> T,
) -> (Established, T) {
    let srv = TestServer::start_with_server(server_keys, extra).await;
    let hook = before_call(&srv).await;
    let mut bob = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        bob.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let mut alice = Phone::udp(srv.udp(), "1001").await;
    assert_eq!(
        alice.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    let a_sdp_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a_nat = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a_rtp = if nat { &a_nat } else { &a_sdp_sock };

    // INVITE → 407 → INVITE with credentials.
    let offer = sdp(a_sdp_sock.local_addr().unwrap().port());
    let first = invite(&alice, "i1", 1, &offer, None);
    alice.send_raw(&first).await;
    let (r, _) = next_final(&mut alice).await;
    assert_eq!(r.status, 407, "{}", r.raw);
    // ACK the 407 (same branch, hop-by-hop).
    alice
        .send_raw(&format!(
            "ACK sip:1002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKi1;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: call-1@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            l = alice.local,
            to = r.header("to").unwrap()
        ))
        .await;
    let auth = digest_md5(
        r.header("proxy-authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        "sip:1002@test.local",
    );
    alice
        .send_raw(&invite(&alice, "i2", 2, &offer, Some(&auth)))
        .await;

    // Bob rings, then answers with his SDP.
    let inv = next_request(&mut bob, "INVITE").await;
    let relay_b = sdp_target(&inv);
    let bob_contact = format!("sip:1002@{}", bob.local);
    bob.send_raw(&answer(&inv, "180 Ringing", &bob_contact, None))
        .await;
    let bob_sdp = sdp(b_rtp.local_addr().unwrap().port());
    bob.send_raw(&answer(&inv, "200 OK", &bob_contact, Some(&bob_sdp)))
        .await;
    let ack_b = next_request(&mut bob, "ACK").await;
    assert!(
        ack_b.contains("CSeq: 1 ACK") || ack_b.contains("ACK"),
        "{ack_b}"
    );

    // Alice gets 180 and 200 with the relay's address; ACKs.
    let (ok, ok_raw) = next_final(&mut alice).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let relay_a = sdp_target(&ok_raw);
    assert_ne!(relay_a, relay_b);
    let target = ok
        .header("contact")
        .unwrap()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let to = ok.header("to").unwrap().to_string();
    alice
        .send_raw(&format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKa2;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: call-1@test\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
            l = alice.local
        ))
        .await;

    // The relay applies the answer's address a moment after the 200 leaves (it runs apart from
    // signalling); like a phone, send until the path is up, then check 20 packets each way.
    let mut buf = [0u8; 2048];
    for (from, to, relay) in [(a_rtp, &b_rtp, relay_a), (&b_rtp, a_rtp, relay_b)] {
        let probe = [0x80u8, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        let mut up = false;
        for _ in 0..100 {
            from.send_to(&probe, relay).await.unwrap();
            if tokio::time::timeout(Duration::from_millis(50), to.recv_from(&mut buf))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
        }
        assert!(up, "no media path through the relay");
    }
    // RTP both ways through the relay, byte-identical.
    for seq in 0u16..20 {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x1111_2222u32.to_be_bytes());
        pkt.extend(std::iter::repeat_n(0xd5u8, 160));
        a_rtp.send_to(&pkt, relay_a).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), b_rtp.recv_from(&mut buf))
            .await
            .expect("A→B RTP")
            .unwrap();
        assert_eq!(&buf[..n], &pkt[..], "A→B packet {seq} changed");
        pkt[8..12].copy_from_slice(&0x3333_4444u32.to_be_bytes());
        b_rtp.send_to(&pkt, relay_b).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), a_rtp.recv_from(&mut buf))
            .await
            .expect("B→A RTP")
            .unwrap();
        assert_eq!(&buf[..n], &pkt[..], "B→A packet {seq} changed");
    }
    if nat {
        // Nothing went to the address Alice's SDP named.
        let got =
            tokio::time::timeout(Duration::from_millis(100), a_sdp_sock.recv_from(&mut buf)).await;
        assert!(
            got.is_err(),
            "RTP sent to the SDP address instead of the latched one"
        );
    }

    (
        Established {
            srv,
            alice,
            bob,
            target,
            to,
            bob_contact,
        },
        hook,
    )
}

#[tokio::test]
async fn call_with_rtp_both_ways_and_bye() {
    let Established {
        srv,
        mut alice,
        mut bob,
        target,
        to,
        bob_contact,
    } = establish().await;
    let (_, st) = http(srv.api(), "GET", "/api/status", None, None).await;
    assert_eq!(st["active_calls"], 1, "{st}");
    let (_, calls) = http(srv.api(), "GET", "/api/calls", Some(TOKEN), None).await;
    assert_eq!(
        calls,
        serde_json::json!(["Call call-1@test: 1001 -> 1002 (connected)"])
    );
    let (_, detail) = http(srv.api(), "GET", "/api/calls/detail", Some(TOKEN), None).await;
    assert_eq!(detail[0]["state"], "connected", "{detail}");
    let (st, body) = http(
        srv.api(),
        "POST",
        "/api/call/hangup",
        Some(TOKEN),
        Some(r#"{"call_id":"nope"}"#),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (404, Some("Call not found")));
    let (st, body) = http(
        srv.api(),
        "POST",
        "/api/call/hangup",
        Some(TOKEN),
        Some("{}"),
    )
    .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("call_id")));

    // Alice hangs up; Bob gets the BYE and answers; Alice gets 200.
    alice
        .send_raw(&format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKb3;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: call-1@test\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
            l = alice.local
        ))
        .await;
    let bye = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye, "200 OK", &bob_contact, None))
        .await;
    let (r, _) = next_final(&mut alice).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let api = srv.api();
    assert!(
        eventually(5, || async move {
            let (_, st) = http(api, "GET", "/api/status", None, None).await;
            st["active_calls"] == 0 && st["total_calls"] == 1
        })
        .await,
        "status did not count the ended call"
    );
    // The CDR reaches the store (batched within 200 ms) and the API.
    assert!(
        eventually(5, || async move {
            let (st, rows) = http(
                api,
                "GET",
                "/api/cdr?limit=10",
                Some("test-token-123456"),
                None,
            )
            .await;
            st == 200
                && rows.as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]["call_id"] == "call-1@test"
                        && a[0]["from_extension"] == "1001"
                        && a[0]["to_extension"] == "1002"
                        && a[0]["disposition"] == "answered"
                        && a[0]["hung_up_by"] == "caller"
                        && a[0]["answer_time"].is_string()
                })
        })
        .await,
        "CDR not listed: {}",
        http(
            api,
            "GET",
            "/api/cdr?limit=10",
            Some("test-token-123456"),
            None
        )
        .await
        .1
    );
    let (st, body) = http(
        api,
        "GET",
        "/api/cdr?date=2026-02-30",
        Some("test-token-123456"),
        None,
    )
    .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("date")), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn api_hangup_sends_bye_to_both_sides() {
    let Established {
        srv,
        mut alice,
        mut bob,
        bob_contact,
        ..
    } = establish().await;
    let (st, body) = http(
        srv.api(),
        "DELETE",
        "/api/calls/call-1@test",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let bye_b = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye_b, "200 OK", &bob_contact, None))
        .await;
    let bye_a = next_request(&mut alice, "BYE").await;
    alice
        .send_raw(&answer(&bye_a, "200 OK", "sip:1001@127.0.0.1", None))
        .await;
    let api = srv.api();
    assert!(
        eventually(5, || async move {
            http(api, "GET", "/api/status", None, None).await.1["active_calls"] == 0
        })
        .await,
        "call still active after the API hangup"
    );
    srv.stop().await;
}

#[tokio::test]
async fn natted_phone_gets_audio_on_its_real_source() {
    let Established { srv, .. } = establish_with("", true).await;
    srv.stop().await;
}

#[tokio::test]
async fn media_timeout_hangs_up_both_sides() {
    let Established {
        srv,
        mut alice,
        mut bob,
        bob_contact,
        ..
    } = establish_with("  rtp_timeout: 1", false).await;
    // The RTP stopped when `establish` returned: within rtp_timeout (+ the relay's check
    // interval) both phones get a BYE.
    let bye_b = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye_b, "200 OK", &bob_contact, None))
        .await;
    let bye_a = next_request(&mut alice, "BYE").await;
    alice
        .send_raw(&answer(&bye_a, "200 OK", "sip:1001@127.0.0.1", None))
        .await;
    let api = srv.api();
    assert!(
        eventually(5, || async move {
            let (_, rows) = http(api, "GET", "/api/cdr?limit=10", Some(TOKEN), None).await;
            rows.as_array().is_some_and(|a| {
                a.len() == 1
                    && a[0]["hung_up_by"] == "system"
                    && a[0]["disposition"] == "answered"
                    && a[0]["codec_a"] == "ulaw"
                    && a[0]["rtp"]["a"]["packets"].as_i64().unwrap_or(0) >= 20
                    && a[0]["rtp"]["b"]["packets"].as_i64().unwrap_or(0) >= 20
            })
        })
        .await,
        "CDR of the timed-out call: {}",
        http(api, "GET", "/api/cdr?limit=10", Some(TOKEN), None)
            .await
            .1
    );
    srv.stop().await;
}

#[tokio::test]
async fn click_to_dial_rings_from_then_to() {
    let srv = TestServer::start("").await;
    let mut alice = Phone::udp(srv.udp(), "1001").await;
    assert_eq!(
        alice.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    let mut bob = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        bob.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let api = srv.api();
    // Bad input first: each error names its field.
    for (body, status, field) in [
        (r#"{"to":"1002"}"#, 400, "from"),
        (r#"{"from":"10x1","to":"1002"}"#, 400, "from"),
        (r#"{"from":"1001"}"#, 400, "to"),
        (r#"{"from":"1001","to":"1001"}"#, 400, "to"),
        (r#"{"from":"1009","to":"1002"}"#, 404, "from"),
        (r#"{"from":"1001","to":"1009"}"#, 404, "to"),
        (r#"{"from":"1003","to":"1002"}"#, 409, "from"),
    ] {
        let (st, b) = http(api, "POST", "/api/call", Some(TOKEN), Some(body)).await;
        assert_eq!(
            (st, b["field"].as_str()),
            (status, Some(field)),
            "{body} → {b}"
        );
        assert!(b["error"].is_string(), "{b}");
    }
    let (st, b) = http(
        api,
        "POST",
        "/api/call",
        Some(TOKEN),
        Some(r#"{"from":"1001","to":"1002"}"#),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["success"], true);
    let call_id = b["call_id"].as_str().unwrap().to_string();
    // Alice's phone rings first, with an offer of Dialtone's own.
    let inv_a = next_request(&mut alice, "INVITE").await;
    assert!(inv_a.contains(&format!("Call-ID: {call_id}")), "{inv_a}");
    let relay_a = sdp_target(&inv_a);
    let a_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let alice_contact = format!("sip:1001@{}", alice.local);
    alice
        .send_raw(&answer(
            &inv_a,
            "200 OK",
            &alice_contact,
            Some(&sdp(a_rtp.local_addr().unwrap().port())),
        ))
        .await;
    let ack_a = next_request(&mut alice, "ACK").await;
    assert!(ack_a.contains(&call_id), "{ack_a}");
    // Then Bob rings, with Alice as the caller.
    let inv_b = next_request(&mut bob, "INVITE").await;
    assert!(inv_b.contains("From: \"Alice\" <sip:1001@"), "{inv_b}");
    let relay_b = sdp_target(&inv_b);
    let b_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_contact = format!("sip:1002@{}", bob.local);
    bob.send_raw(&answer(
        &inv_b,
        "200 OK",
        &bob_contact,
        Some(&sdp(b_rtp.local_addr().unwrap().port())),
    ))
    .await;
    next_request(&mut bob, "ACK").await;
    // Media both ways.
    let mut buf = [0u8; 2048];
    for (from, to, relay) in [(&a_rtp, &b_rtp, relay_a), (&b_rtp, &a_rtp, relay_b)] {
        let pkt = [0x80u8, 0x00, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4, 0xd5, 0xd5];
        let mut up = false;
        for _ in 0..100 {
            from.send_to(&pkt, relay).await.unwrap();
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(50), to.recv_from(&mut buf)).await
            {
                assert_eq!(&buf[..n], &pkt[..]);
                up = true;
                break;
            }
        }
        assert!(up, "no media path through the relay");
    }
    let (_, calls) = http(api, "GET", "/api/calls/detail", Some(TOKEN), None).await;
    assert_eq!(calls[0]["call_id"], call_id.as_str(), "{calls}");
    assert_eq!(calls[0]["state"], "connected", "{calls}");
    // Hang up through the API.
    let (st, _) = http(
        api,
        "POST",
        "/api/call/hangup",
        Some(TOKEN),
        Some(&format!(r#"{{"call_id":"{call_id}"}}"#)),
    )
    .await;
    assert_eq!(st, 200);
    let bye_b = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye_b, "200 OK", &bob_contact, None))
        .await;
    let bye_a = next_request(&mut alice, "BYE").await;
    alice
        .send_raw(&answer(&bye_a, "200 OK", &alice_contact, None))
        .await;
    assert!(
        eventually(5, || async move {
            let (_, s) = http(api, "GET", "/api/statistics", Some(TOKEN), None).await;
            s["total_calls"] == 1 && s["answered_calls"] == 1 && s["real_time"]["active_calls"] == 0
        })
        .await,
        "statistics: {}",
        http(api, "GET", "/api/statistics", Some(TOKEN), None)
            .await
            .1
    );
    let (st, s) = http(api, "GET", "/api/statistics?days=7", Some(TOKEN), None).await;
    assert_eq!(st, 200);
    assert_eq!(s["overview"]["answered_calls"], 1, "{s}");
    assert_eq!(s["top_callers"][0]["extension"], "1001", "{s}");
    assert_eq!(s["hourly_distribution"].as_array().map(Vec::len), Some(24));
    let (st, s) = http(api, "GET", "/api/statistics?days=0", Some(TOKEN), None).await;
    assert_eq!((st, s["field"].as_str()), (400, Some("days")));
    srv.stop().await;
}
