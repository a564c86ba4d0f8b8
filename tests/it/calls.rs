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

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// The audio port and address in an SDP body.
fn sdp_target(msg: &str) -> std::net::SocketAddr {
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
fn answer(req: &str, code: &str, contact: &str, body: Option<&str>) -> String {
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

async fn next_request(p: &mut Phone, method: &str) -> String {
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
struct Established {
    srv: TestServer,
    alice: Phone,
    bob: Phone,
    target: String,
    to: String,
    bob_contact: String,
}

async fn establish() -> Established {
    let srv = TestServer::start("").await;
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
    let a_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // INVITE → 407 → INVITE with credentials.
    let offer = sdp(a_rtp.local_addr().unwrap().port());
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
    for (from, to, relay) in [(&a_rtp, &b_rtp, relay_a), (&b_rtp, &a_rtp, relay_b)] {
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

    Established {
        srv,
        alice,
        bob,
        target,
        to,
        bob_contact,
    }
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
