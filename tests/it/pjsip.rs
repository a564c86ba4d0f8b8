//! Running from a pjsip.conf: start-up import, `pjsip reload` through the AMI without a
//! restart (registrations of unchanged extensions stay), and the NAT keys of its transport
//! applied to SDP, Via and Contact at once.

use std::path::Path;
use std::time::Duration;

use crate::support::{Phone, Resp, TestServer, digest_md5};
use dialtone::runtime::ami_io::run_command;

const FILE_V1: &str = "\
[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5060

[2001]
type=endpoint
context=from-internal
disallow=all
allow=ulaw
auth=2001
aors=2001

[2001]
type=auth
auth_type=userpass
username=2001
password=alpha-2001-pw

[2001]
type=aor
max_contacts=1

[2002]
type=endpoint
context=from-internal
disallow=all
allow=ulaw
auth=2002
aors=2002

[2002]
type=auth
auth_type=userpass
username=2002
password=bravo-2002-pw

[2002]
type=aor
max_contacts=1
";

fn ami_block(file: &Path) -> String {
    format!(
        "pjsip:\n  config_file: \"{}\"\nami:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n  users:\n    - username: admin\n      secret: amp111-secret\n",
        file.display()
    )
}

async fn pjsip_reload(srv: &TestServer) -> (bool, String) {
    run_command(srv.ami(), "admin", "amp111-secret", "pjsip reload")
        .await
        .expect("AMI reachable")
}

async fn registered(srv: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = srv
        .server
        .as_ref()
        .unwrap()
        .handle()
        .contacts(None)
        .await
        .into_iter()
        .map(|c| c.number)
        .collect();
    v.sort();
    v
}

async fn start() -> (TestServer, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pjsip.conf");
    std::fs::write(&file, FILE_V1).unwrap();
    let srv = TestServer::start_in(dir, &ami_block(&file)).await;
    (srv, file)
}

#[tokio::test]
async fn reload_keeps_registrations_and_applies_changes() {
    let (srv, file) = start().await;
    // Imported at start-up; extensions[] of config.yml is not seeded.
    let mut a = Phone::udp(srv.udp(), "2001").await;
    let mut b = Phone::udp(srv.udp(), "2002").await;
    assert_eq!(
        a.register("2001", "alpha-2001-pw", Some(600)).await.status,
        200
    );
    assert_eq!(
        b.register("2002", "bravo-2002-pw", Some(600)).await.status,
        200
    );
    let mut c = Phone::udp(srv.udp(), "1001").await;
    assert_ne!(
        c.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    assert_eq!(registered(&srv).await, ["2001", "2002"]);

    // Unchanged file: nothing moves.
    let (ok, _) = pjsip_reload(&srv).await;
    assert!(ok);
    assert_eq!(registered(&srv).await, ["2001", "2002"]);

    // 2002's password changes, 2003 appears: 2001 and 2002 stay registered.
    let v2 = FILE_V1.replace("bravo-2002-pw", "bravo-2002-new")
        + "\n[2003]\ntype=endpoint\nauth=2003\naors=2003\nallow=ulaw\n\n[2003]\ntype=auth\nusername=2003\npassword=charlie-2003-pw\n\n[2003]\ntype=aor\nmax_contacts=2\n";
    std::fs::write(&file, v2).unwrap();
    let (ok, text) = pjsip_reload(&srv).await;
    assert!(ok, "{text}");
    assert_eq!(registered(&srv).await, ["2001", "2002"]);
    let mut d = Phone::udp(srv.udp(), "2003").await;
    assert_eq!(
        d.register("2003", "charlie-2003-pw", Some(600))
            .await
            .status,
        200
    );
    // The same phone refreshes its binding: the old password is refused, the new one works.
    assert_ne!(
        b.register("2002", "bravo-2002-pw", Some(600)).await.status,
        200
    );
    assert_eq!(
        b.register("2002", "bravo-2002-new", Some(600)).await.status,
        200
    );

    // A broken file: an error naming file:line, nothing changed.
    std::fs::write(&file, "[2001]\ntype=endpoint\nnot a line\n[x\n").unwrap();
    let (ok, text) = pjsip_reload(&srv).await;
    assert!(!ok, "{text}");
    assert!(text.contains("pjsip.conf:"), "{text}");
    assert_eq!(registered(&srv).await, ["2001", "2002", "2003"]);

    // 2001 removed from the file: its registration goes, the others stay.
    let v3 = FILE_V1
        .split("[2002]\ntype=endpoint")
        .nth(1)
        .map(|rest| format!("[2002]\ntype=endpoint{rest}"))
        .unwrap();
    std::fs::write(&file, v3).unwrap();
    let (ok, text) = pjsip_reload(&srv).await;
    assert!(ok, "{text}");
    assert_eq!(registered(&srv).await, ["2002"]);
    drop((a, b, c, d));
    srv.stop().await;
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

fn invite(a: &Phone, branch: &str, cseq: u32, auth: Option<&str>) -> String {
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
    let mut t = format!(
        "INVITE sip:2002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:2001@test.local>;tag=a1\r\nTo: <sip:2002@test.local>\r\n\
         Call-ID: nat-call@test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:2001@{local}>\r\n\
         Content-Type: application/sdp\r\n",
        local = a.local
    );
    if let Some(x) = auth {
        t.push_str(&format!("Proxy-Authorization: {x}\r\n"));
    }
    t.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    t
}

/// The INVITE Dialtone sends to 2002 for a call from 2001.
async fn call_and_get_invite(a: &mut Phone, b: &mut Phone, tag: &str) -> String {
    a.send_raw(&invite(a, &format!("{tag}1"), 1, None)).await;
    let r = loop {
        let m = a.recv().await.expect("response");
        if m.starts_with("SIP/2.0 ") && Resp::parse(&m).status >= 200 {
            break Resp::parse(&m);
        }
    };
    assert_eq!(r.status, 407, "{}", r.raw);
    let auth = digest_md5(
        r.header("proxy-authenticate").unwrap(),
        "2001",
        "alpha-2001-pw",
        "INVITE",
        "sip:2002@test.local",
    );
    a.send_raw(&invite(a, &format!("{tag}2"), 2, Some(&auth)))
        .await;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), b.recv())
            .await
            .expect("INVITE reaches 2002")
            .expect("a message");
        if m.starts_with("INVITE ") {
            return m;
        }
        if !m.starts_with("SIP/2.0") {
            b.answer_request(&m).await;
        }
    }
}

#[tokio::test]
async fn nat_keys_apply_after_reload_without_restart() {
    let (srv, file) = start().await;
    let mut a = Phone::udp(srv.udp(), "2001").await;
    let mut b = Phone::udp(srv.udp(), "2002").await;
    assert_eq!(
        a.register("2001", "alpha-2001-pw", Some(600)).await.status,
        200
    );
    assert_eq!(
        b.register("2002", "bravo-2002-pw", Some(600)).await.status,
        200
    );

    // No NAT yet: loopback peers get the local address.
    let inv = call_and_get_invite(&mut a, &mut b, "x").await;
    assert!(!inv.contains("203.0.113."), "{inv}");
    // Let the first call go: 2002 declines it.
    let mut resp = String::from("SIP/2.0 486 Busy Here\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in header(&inv, h) {
            let v = if h == "To" {
                format!("{v};tag=b1")
            } else {
                v.to_string()
            };
            resp.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    resp.push_str("Content-Length: 0\r\n\r\n");
    b.send_raw(&resp).await;

    // The transport gains NAT keys; local_net no longer covers 127.0.0.1.
    let v2 = FILE_V1.replace(
        "bind=0.0.0.0:5060\n",
        "bind=0.0.0.0:5060\nexternal_media_address=203.0.113.10\nexternal_signaling_address=203.0.113.20\nlocal_net=10.0.0.0/8\n",
    );
    std::fs::write(&file, v2).unwrap();
    let (ok, text) = pjsip_reload(&srv).await;
    assert!(ok, "{text}");
    // Registrations survive the reload (the endpoints did not change).
    assert_eq!(registered(&srv).await, ["2001", "2002"]);

    let mut a2 = Phone::udp(srv.udp(), "2001").await;
    let inv = call_and_get_invite(&mut a2, &mut b, "y").await;
    let via = header(&inv, "Via");
    assert!(via[0].contains("203.0.113.20:"), "top Via: {inv}");
    let contact = header(&inv, "Contact");
    assert!(contact[0].contains("@203.0.113.20:"), "Contact: {inv}");
    let body = inv.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.contains("c=IN IP4 203.0.113.10\r\n"), "SDP: {inv}");
    assert!(!body.contains("203.0.113.20"), "SDP: {inv}");
    drop((a, a2, b));
    srv.stop().await;
}
