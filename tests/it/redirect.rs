//! AMI `Redirect` over real sockets: Alice (1001) talks to Bob (1002); a CRM redirects Alice's
//! channel to Carol (1003). Bob is hung up, Carol rings from Alice's existing dialog, and once
//! she answers the audio flows between Alice and Carol through the relay.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::calls::{answer, next_request, sdp, sdp_target};
use crate::support::{Phone, Resp, TestServer, digest_md5};

const AMI: &str = r#"
ami:
  enabled: true
  bind: 127.0.0.1
  port: 0
  users:
    - username: admin
      secret: amp111-secret
      read: all
      write: all
"#;

/// A small AMI client: messages split on the blank line.
struct Ami {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Ami {
    async fn login(srv: &TestServer) -> Ami {
        let s = TcpStream::connect(srv.ami()).await.unwrap();
        let mut a = Ami { s, buf: Vec::new() };
        a.send(&["Action: Login", "Username: admin", "Secret: amp111-secret"])
            .await;
        let m = a.until("Response: ").await;
        assert!(m.starts_with("Response: Success"), "{m}");
        a.until("Event: FullyBooted").await;
        a
    }

    async fn send(&mut self, lines: &[&str]) {
        let mut t = lines.join("\r\n");
        t.push_str("\r\n\r\n");
        self.s.write_all(t.as_bytes()).await.unwrap();
    }

    async fn msg(&mut self) -> Option<String> {
        loop {
            // The banner is a line of its own.
            if self.buf.starts_with(b"Asterisk Call Manager")
                && let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n")
            {
                self.buf.drain(..p + 2);
            }
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let m: Vec<u8> = self.buf.drain(..p + 4).collect();
                return Some(String::from_utf8_lossy(&m[..p + 2]).into_owned());
            }
            let mut b = [0u8; 8192];
            match tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&b[..n]),
                _ => return None,
            }
        }
    }

    async fn until(&mut self, first: &str) -> String {
        loop {
            let m = self.msg().await.unwrap_or_else(|| panic!("no {first}"));
            if m.starts_with(first) {
                return m;
            }
        }
    }

    /// `Event Channel` of each event until (and with) the `n`-th one named `last`.
    async fn events_until(&mut self, last: &str, mut n: usize) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let m = self
                .msg()
                .await
                .unwrap_or_else(|| panic!("no {last}; got {out:#?}"));
            let Some(name) = header(&m, "Event") else {
                continue;
            };
            let name = name.to_string();
            out.push(format!("{name} {}", header(&m, "Channel").unwrap_or("")));
            if name == last {
                n -= 1;
                if n == 0 {
                    return out;
                }
            }
        }
    }

    /// Send an action and return its response's `Response` and `Message`.
    async fn action(&mut self, lines: &[&str]) -> (String, String) {
        self.send(lines).await;
        let m = self.until("Response: ").await;
        (
            header(&m, "Response").unwrap_or("").to_string(),
            header(&m, "Message").unwrap_or("").to_string(),
        )
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then_some(v.trim_start())
    })
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

fn alice_invite(a: &Phone, branch: &str, cseq: u32, body: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|x| format!("Proxy-Authorization: {x}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:1002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: <sip:1002@test.local>\r\n\
         Call-ID: redirect-1@test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{l}>\r\n{auth}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        l = a.local
    )
}

/// Send from `from` to `relay` until `to` receives; returns the first packet `to` got.
async fn media_path(from: &UdpSocket, to: &UdpSocket, relay: std::net::SocketAddr) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    for seq in 0u16..100 {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5555_6666u32.to_be_bytes());
        pkt.extend(std::iter::repeat_n(0xd5u8, 160));
        from.send_to(&pkt, relay).await.unwrap();
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(50), to.recv_from(&mut buf)).await
        {
            return buf[..n].to_vec();
        }
    }
    panic!("no media path through the relay");
}

#[tokio::test]
async fn ami_redirect_transfers_the_caller_to_another_extension() {
    let srv = TestServer::start(AMI).await;
    let mut ami = Ami::login(&srv).await;
    let mut phones = Vec::new();
    for (user, secret) in [
        ("1001", "secret1001"),
        ("1002", "secret1002"),
        ("1003", "secret1003"),
    ] {
        let mut p = Phone::udp(srv.udp(), user).await;
        assert_eq!(p.register(user, secret, Some(600)).await.status, 200);
        phones.push(p);
    }
    let mut carol = phones.pop().unwrap();
    let mut bob = phones.pop().unwrap();
    let mut alice = phones.pop().unwrap();
    let a_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Alice calls Bob (407 challenge first), Bob answers.
    let offer = sdp(a_rtp.local_addr().unwrap().port());
    alice
        .send_raw(&alice_invite(&alice, "r1", 1, &offer, None))
        .await;
    let (r, _) = next_final(&mut alice).await;
    assert_eq!(r.status, 407);
    alice
        .send_raw(&format!(
            "ACK sip:1002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKr1;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: redirect-1@test\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
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
        .send_raw(&alice_invite(&alice, "r2", 2, &offer, Some(&auth)))
        .await;
    let inv_b = next_request(&mut bob, "INVITE").await;
    let bob_contact = format!("sip:1002@{}", bob.local);
    let b_sdp = sdp(b_rtp.local_addr().unwrap().port());
    bob.send_raw(&answer(&inv_b, "200 OK", &bob_contact, Some(&b_sdp)))
        .await;
    next_request(&mut bob, "ACK").await;
    let (ok, ok_raw) = next_final(&mut alice).await;
    assert_eq!(ok.status, 200);
    let relay_a = sdp_target(&ok_raw);
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
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKr3;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: redirect-1@test\r\n\
             CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
            l = alice.local
        ))
        .await;
    media_path(&a_rtp, &b_rtp, relay_a).await;

    // The two channels, bridged.
    let seq = ami.events_until("BridgeEnter", 2).await;
    let chan = |prefix: &str| -> String {
        seq.iter()
            .filter_map(|e| e.strip_prefix("Newchannel "))
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} channel in {seq:#?}"))
            .to_string()
    };
    let an = chan("PJSIP/1001-");
    let bn = chan("PJSIP/1002-");

    // Refusals first: nothing changes.
    let redirect = |ch: &str, exten: &str, extra: Option<&str>| {
        let mut v = vec![
            "Action: Redirect".to_string(),
            "ActionID: rd".to_string(),
            format!("Channel: {ch}"),
            // FreePBX's context for extensions, as CRMs send it.
            "Context: ext-local".to_string(),
            format!("Exten: {exten}"),
            "Priority: 1".to_string(),
        ];
        if let Some(x) = extra {
            v.push(format!("ExtraChannel: {x}"));
        }
        v
    };
    for (lines, want) in [
        (redirect(&an, "1003", Some(&bn)), "Dual Redirect"),
        (
            redirect("PJSIP/1001-7fffffff", "1003", None),
            "No such channel",
        ),
        (redirect(&an, "1999", None), "Redirect failed"),
    ] {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (resp, msg) = ami.action(&refs).await;
        assert_eq!(resp, "Error", "{msg}");
        assert!(msg.starts_with(want), "{msg}");
    }
    let (resp, msg) = ami
        .action(&[
            "Action: Redirect",
            "ActionID: rd1",
            "Channel: PJSIP/1001-00000000",
            "Context: from-internal",
            "Exten: 1003",
            "Priority: one",
        ])
        .await;
    assert_eq!(
        (resp.as_str(), msg.as_str()),
        ("Error", "Priority is invalid")
    );

    // The transfer.
    let lines = redirect(&an, "1003", None);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (resp, msg) = ami.action(&refs).await;
    assert_eq!(
        (resp.as_str(), msg.as_str()),
        ("Success", "Redirect successful")
    );
    // Bob is hung up; Carol rings, offered only the codec in use, on the relay port Bob had.
    let bye_b = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye_b, "200 OK", &bob_contact, None))
        .await;
    let inv_c = next_request(&mut carol, "INVITE").await;
    assert!(inv_c.contains("From: \"Alice\" <sip:1001@"), "{inv_c}");
    assert!(inv_c.contains("RTP/AVP 0 101\r\n"), "{inv_c}");
    let relay_c = sdp_target(&inv_c);
    let carol_contact = format!("sip:1003@{}", carol.local);
    carol
        .send_raw(&answer(&inv_c, "180 Ringing", &carol_contact, None))
        .await;
    let c_sdp = sdp(c_rtp.local_addr().unwrap().port());
    carol
        .send_raw(&answer(&inv_c, "200 OK", &carol_contact, Some(&c_sdp)))
        .await;
    next_request(&mut carol, "ACK").await;
    // Alice's phone was never asked anything; audio flows Alice ↔ Carol.
    let got = media_path(&a_rtp, &c_rtp, relay_a).await;
    assert_eq!(&got[8..12], &0x5555_6666u32.to_be_bytes(), "A→C as sent");
    let got = media_path(&c_rtp, &a_rtp, relay_c).await;
    assert_eq!(got.len(), 172);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), alice.recv())
            .await
            .ok()
            .flatten()
            .is_none_or(|m| !m.starts_with("INVITE") && !m.starts_with("BYE")),
        "Alice's dialog is left alone"
    );

    // AMI saw Bob's channel go, Carol's channel dialled by Alice's, and the new bridge.
    let seq = ami.events_until("BridgeEnter", 2).await;
    let has = |e: &str| seq.iter().any(|x| x == e);
    assert!(has(&format!("BridgeLeave {an}")), "{seq:#?}");
    assert!(has(&format!("Hangup {bn}")), "{seq:#?}");
    assert!(has(&format!("DialBegin {an}")), "{seq:#?}");
    let cn = seq
        .iter()
        .filter_map(|e| e.strip_prefix("Newchannel "))
        .find(|c| c.starts_with("PJSIP/1003-"))
        .unwrap_or_else(|| panic!("{seq:#?}"))
        .to_string();
    assert!(has(&format!("BridgeEnter {cn}")), "{seq:#?}");

    // BlindTransfer: Carol hands Alice on to Bob and leaves.
    for (lines, want) in [
        (
            vec!["Action: BlindTransfer", "ActionID: bt0", "Exten: 1002"],
            "No channel specified",
        ),
        (
            vec![
                "Action: BlindTransfer",
                "ActionID: bt1",
                "Channel: PJSIP/1003-7fffffff",
                "Exten: 1002",
            ],
            "Channel specified does not exist",
        ),
    ] {
        let (resp, msg) = ami.action(&lines).await;
        assert_eq!((resp.as_str(), msg.as_str()), ("Error", want));
    }
    let (resp, msg) = ami
        .action(&[
            "Action: BlindTransfer",
            "ActionID: bt2",
            &format!("Channel: {cn}"),
            "Exten: 1002",
            "Context: from-internal",
        ])
        .await;
    assert_eq!(
        (resp.as_str(), msg.as_str()),
        ("Success", "Transfer succeeded")
    );
    let bye_c = next_request(&mut carol, "BYE").await;
    carol
        .send_raw(&answer(&bye_c, "200 OK", &carol_contact, None))
        .await;
    let inv_b2 = next_request(&mut bob, "INVITE").await;
    assert!(inv_b2.contains("From: \"Alice\" <sip:1001@"), "{inv_b2}");
    bob.send_raw(&answer(&inv_b2, "200 OK", &bob_contact, Some(&b_sdp)))
        .await;
    next_request(&mut bob, "ACK").await;
    media_path(&a_rtp, &b_rtp, relay_a).await;

    // Alice hangs up: Bob gets BYE; the Cdr names Bob, the last callee, as the destination.
    alice
        .send_raw(&format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKr4;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: redirect-1@test\r\n\
             CSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
            l = alice.local
        ))
        .await;
    let bye_b2 = next_request(&mut bob, "BYE").await;
    bob.send_raw(&answer(&bye_b2, "200 OK", &bob_contact, None))
        .await;
    let cdr = ami.until("Event: Cdr").await;
    assert_eq!(header(&cdr, "Destination"), Some("1002"), "{cdr}");
    assert_eq!(header(&cdr, "Disposition"), Some("ANSWERED"), "{cdr}");
    srv.stop().await;
}
