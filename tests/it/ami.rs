//! The Asterisk Manager Interface over a real socket on 127.0.0.1:0.

use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Phone, TestServer};

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
    - username: mon
      secret: monitor-secret
      read: call
      write: reporting
      eventfilter: ["!Event: DeviceStateChange"]
    - username: remote
      secret: remote-secret
      deny: ["0.0.0.0/0"]
      permit: ["10.0.0.0/255.0.0.0"]
"#;

/// A minimal AMI client: messages split on the blank line.
struct Ami {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Ami {
    async fn connect(srv: &TestServer) -> Ami {
        Ami::connect_to(srv.ami()).await
    }

    async fn connect_to(addr: std::net::SocketAddr) -> Ami {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut a = Ami { s, buf: Vec::new() };
        let banner = a.line().await.expect("banner");
        assert_eq!(banner, "Asterisk Call Manager/11.0.0");
        a
    }

    async fn fill(&mut self) -> bool {
        let mut b = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
            _ => false,
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..p + 2).collect();
                return Some(String::from_utf8_lossy(&l[..p]).into_owned());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next message (without its blank line), or None at EOF/timeout.
    async fn msg(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let m: Vec<u8> = self.buf.drain(..p + 4).collect();
                return Some(String::from_utf8_lossy(&m[..p + 2]).into_owned());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next message whose first line is `first`.
    async fn until(&mut self, first: &str) -> String {
        loop {
            let m = self.msg().await.unwrap_or_else(|| panic!("no {first}"));
            if m.starts_with(first) {
                return m;
            }
        }
    }

    async fn send(&mut self, lines: &[&str]) {
        let mut t = lines.join("\r\n");
        t.push_str("\r\n\r\n");
        self.s.write_all(t.as_bytes()).await.unwrap();
    }

    async fn login(&mut self, user: &str, secret: &str) -> String {
        self.send(&[
            "Action: Login",
            &format!("Username: {user}"),
            &format!("Secret: {secret}"),
        ])
        .await;
        self.msg().await.expect("login answer")
    }
}

#[tokio::test]
async fn login_plain_and_md5() {
    let srv = TestServer::start(AMI).await;
    let mut a = Ami::connect(&srv).await;
    a.send(&[
        "Action: Login",
        "ActionID: 1",
        "Username: admin",
        "Secret: amp111-secret",
    ])
    .await;
    assert_eq!(
        a.msg().await.unwrap(),
        "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n"
    );
    let fb = a.msg().await.unwrap();
    assert!(
        fb.starts_with("Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: "),
        "{fb}"
    );
    assert!(fb.ends_with("Status: Fully Booted\r\n"), "{fb}");

    let mut b = Ami::connect(&srv).await;
    b.send(&["Action: Challenge", "ActionID: c1", "AuthType: MD5"])
        .await;
    let m = b.msg().await.unwrap();
    let challenge = m
        .lines()
        .find_map(|l| l.strip_prefix("Challenge: "))
        .expect("challenge")
        .to_string();
    assert!(challenge.bytes().all(|c| c.is_ascii_digit()));
    let key = hex::encode(Md5::digest(format!("{challenge}amp111-secret").as_bytes()));
    b.send(&[
        "Action: Login",
        "ActionID: c2",
        "AuthType: MD5",
        "Username: admin",
        &format!("Key: {key}"),
    ])
    .await;
    assert!(b.msg().await.unwrap().contains("Authentication accepted"));
    b.until("Event: FullyBooted").await;
    b.send(&["Action: Logoff", "ActionID: q"]).await;
    assert_eq!(
        b.msg().await.unwrap(),
        "Response: Goodbye\r\nActionID: q\r\nMessage: Thanks for all the fish.\r\n"
    );
    assert_eq!(b.msg().await, None, "closed after Logoff");
    srv.stop().await;
}

#[tokio::test]
async fn bad_secret_waits_then_closes() {
    let srv = TestServer::start(AMI).await;
    for (user, secret) in [("admin", "wrong"), ("remote", "remote-secret")] {
        let mut a = Ami::connect(&srv).await;
        let t0 = Instant::now();
        let m = a.login(user, secret).await;
        assert_eq!(m, "Response: Error\r\nMessage: Authentication failed\r\n");
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{user}: {:?}",
            t0.elapsed()
        );
        assert_eq!(a.msg().await, None, "closed after a failed login");
    }
    srv.stop().await;
}

#[tokio::test]
async fn permissions_and_action_ids() {
    let srv = TestServer::start(AMI).await;
    let mut a = Ami::connect(&srv).await;
    a.send(&["Action: Ping", "ActionID: early"]).await;
    assert_eq!(
        a.msg().await.unwrap(),
        "Response: Error\r\nActionID: early\r\nMessage: Permission denied\r\n"
    );
    assert!(a.login("mon", "monitor-secret").await.contains("accepted"));
    a.send(&[
        "Action: Command",
        "ActionID: k",
        "Command: core show version",
    ])
    .await;
    assert_eq!(
        a.msg().await.unwrap(),
        "Response: Error\r\nActionID: k\r\nMessage: Permission denied\r\n"
    );
    a.send(&["Action: CoreSettings", "ActionID: cs"]).await;
    let m = a.msg().await.unwrap();
    assert!(
        m.starts_with(
            "Response: Success\r\nActionID: cs\r\nAMIversion: 11.0.0\r\nAsteriskVersion: 22."
        ),
        "{m}"
    );
    a.send(&["Action: NoSuchThing", "ActionID: x"]).await;
    assert_eq!(
        a.msg().await.unwrap(),
        "Response: Error\r\nActionID: x\r\nMessage: Invalid/unknown command: NoSuchThing. Use Action: ListCommands to show available commands.\r\n"
    );
    a.send(&["action: ping", "actionid: p"]).await;
    let m = a.msg().await.unwrap();
    assert!(
        m.starts_with("Response: Success\r\nActionID: p\r\nPing: Pong\r\nTimestamp: "),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn event_list_and_command_output() {
    let srv = TestServer::start(AMI).await;
    let mut p = Phone::udp(srv.udp(), "1001").await;
    assert_eq!(
        p.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    let mut a = Ami::connect(&srv).await;
    a.login("admin", "amp111-secret").await;
    a.send(&["Action: Events", "EventMask: off"]).await;
    a.until("Response: Success").await;
    a.send(&["Action: PJSIPShowEndpoints", "ActionID: L1"])
        .await;
    assert_eq!(
        a.msg().await.unwrap(),
        "Response: Success\r\nActionID: L1\r\nEventList: start\r\nMessage: A listing of Endpoints follows, presented as EndpointList events\r\n"
    );
    let mut items = Vec::new();
    loop {
        let m = a.msg().await.unwrap();
        if m.starts_with("Event: EndpointListComplete") {
            assert_eq!(
                m,
                "Event: EndpointListComplete\r\nActionID: L1\r\nEventList: Complete\r\nListItems: 3\r\n"
            );
            break;
        }
        assert!(
            m.starts_with("Event: EndpointList\r\nActionID: L1\r\nObjectType: endpoint\r\n"),
            "{m}"
        );
        items.push(m);
    }
    assert_eq!(items.len(), 3);
    assert!(items[0].contains("ObjectName: 1001\r\n"), "{}", items[0]);
    assert!(
        items[0].contains(&format!(
            "Contacts: 1001/sip:1001@{};transport=udp,\r\n",
            p.local
        )),
        "{}",
        items[0]
    );
    assert!(
        items[0].contains("DeviceState: Not in use\r\n"),
        "{}",
        items[0]
    );
    assert!(
        items[1].contains("DeviceState: Unavailable\r\n"),
        "{}",
        items[1]
    );

    a.send(&[
        "Action: Command",
        "ActionID: k1",
        "Command: pjsip show endpoints",
    ])
    .await;
    let m = a.msg().await.unwrap();
    assert!(m.starts_with("Response: Success\r\nActionID: k1\r\nMessage: Command output follows\r\nOutput: \r\nOutput:  Endpoint:  <Endpoint/CID"), "{m}");
    assert!(m.contains("Output:  Endpoint:  1001/1001 "), "{m}");
    assert!(m.contains("Output: Objects found: 3\r\n"), "{m}");
    a.send(&["Action: Command", "Command: core show channels"])
        .await;
    let m = a.msg().await.unwrap();
    assert!(
        m.contains("Output: 0 active channels\r\nOutput: 0 active calls\r\n"),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn contact_status_on_register() {
    let srv = TestServer::start(AMI).await;
    let mut a = Ami::connect(&srv).await;
    a.login("admin", "amp111-secret").await;
    a.until("Event: FullyBooted").await;
    let mut m2 = Ami::connect(&srv).await;
    let l = m2.login("mon", "monitor-secret").await;
    assert!(l.contains("accepted"), "{l}");

    let mut p = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        p.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let uri = format!("sip:1002@{};transport=udp", p.local);
    let cs = a.until("Event: ContactStatus").await;
    assert_eq!(
        cs,
        format!(
            "Event: ContactStatus\r\nPrivilege: system,all\r\nURI: {uri}\r\nContactStatus: Unknown\r\nAOR: 1002\r\nEndpointName: 1002\r\nRoundtripUsec: 0\r\n"
        )
    );
    assert_eq!(
        a.msg().await.unwrap(),
        "Event: PeerStatus\r\nPrivilege: system,all\r\nChannelType: PJSIP\r\nPeer: PJSIP/1002\r\nPeerStatus: Reachable\r\n"
    );
    assert_eq!(
        a.msg().await.unwrap(),
        "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: PJSIP/1002\r\nState: NOT_INUSE\r\n"
    );
    assert_eq!(
        a.msg().await.unwrap(),
        "Event: ExtensionStatus\r\nPrivilege: call,all\r\nExten: 1002\r\nContext: from-internal\r\nHint: PJSIP/1002\r\nStatus: 0\r\nStatusText: Idle\r\n"
    );
    // `mon` reads only `call` and filters DeviceStateChange out: ExtensionStatus is first.
    let m = m2.msg().await.unwrap();
    assert!(m.starts_with("Event: ExtensionStatus\r\n"), "{m}");

    // unregister: Removed, Unreachable
    assert_eq!(p.register("1002", "secret1002", Some(0)).await.status, 200);
    let cs = a.until("Event: ContactStatus").await;
    assert!(cs.contains("ContactStatus: Removed\r\n"), "{cs}");
    let ps = a.msg().await.unwrap();
    assert!(ps.contains("PeerStatus: Unreachable\r\n"), "{ps}");

    // An extension created after start-up has a hint at once: its first registration is an
    // ExtensionStatus, and deleting it removes the hint (Status -1).
    use crate::support::http;
    const TOKEN: &str = "test-token-123456";
    let (st, body) = http(
        srv.api(),
        "POST",
        "/api/extensions",
        Some(TOKEN),
        Some(r#"{"number":"1077","name":"Late","password":"late-secret-77"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let mut late = Phone::udp(srv.udp(), "1077").await;
    assert_eq!(
        late.register("1077", "late-secret-77", Some(600))
            .await
            .status,
        200
    );
    let es = loop {
        let es = a.until("Event: ExtensionStatus").await;
        if es.contains("Exten: 1077\r\n") {
            break es;
        }
    };
    assert!(es.contains("Hint: PJSIP/1077\r\nStatus: 0\r\n"), "{es}");
    let (st, body) = http(
        srv.api(),
        "DELETE",
        "/api/extensions/1077",
        Some(TOKEN),
        None,
    )
    .await;
    assert!(st == 200 || st == 204, "{st} {body}");
    let es = a.until("Event: ExtensionStatus").await;
    assert!(
        es.contains("Exten: 1077\r\n") && es.contains("Status: -1\r\n"),
        "{es}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn dialtone_cli_rx() {
    let srv = TestServer::start(AMI).await;
    let cfg = srv.write_config();
    let addr = srv.ami().to_string();
    let run = |cmd: &'static str| {
        let cfg = cfg.clone();
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialtone"))
                .arg("--config")
                .arg(&cfg)
                .args(["cli", "--ami", &addr, "-rx", cmd])
                .output()
                .expect("run dialtone");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (ok, out, err) = run("core show version").await.unwrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("Asterisk 22.5.0 built by dialtone"),
        "{out}"
    );
    let (ok, out, _) = run("pjsip show aors").await.unwrap();
    assert!(ok);
    assert!(out.starts_with("\n      Aor:  <Aor"), "{out:?}");
    assert!(out.ends_with("Objects found: 3\n\n"), "{out:?}");
    let (ok, out, _) = run("sip show peers").await.unwrap();
    assert!(!ok);
    assert!(out.starts_with("No such command 'sip show peers'"), "{out}");

    // Invoked as `asterisk` (a symlink), Asterisk's own flags work: `asterisk -rvvvx "..."`.
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("asterisk");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dialtone"), &shim).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&shim)
            .env("DIALTONE_CONFIG", &cfg)
            .args(["--ami", &addr, "-rvvvx", "core show version"])
            .output()
            .expect("run the asterisk shim")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("Asterisk 22.5.0 built by dialtone"),
        "{text}"
    );
    srv.stop().await;
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(": ").or_else(|| l.split_once(':'))?;
        k.eq_ignore_ascii_case(name).then_some(v.trim_start())
    })
}

/// Read events until one named `last` (inclusive); `(name + detail)` of each.
async fn events_until(a: &mut Ami, last: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let m = a
            .msg()
            .await
            .unwrap_or_else(|| panic!("no {last}; got {out:#?}"));
        let Some(name) = header(&m, "Event") else {
            continue;
        };
        let name = name.to_string();
        let detail = match name.as_str() {
            "Newstate" => header(&m, "ChannelStateDesc"),
            "DialEnd" | "DialState" => header(&m, "DialStatus"),
            "DeviceStateChange" => header(&m, "State"),
            _ => None,
        };
        let ch = header(&m, "Channel").unwrap_or("");
        out.push(match detail {
            Some(d) => format!("{name} {ch} {d}"),
            None => format!("{name} {ch}"),
        });
        if name == last {
            return out;
        }
    }
}

/// An answered call seen by an AMI client: the channel event sequence, the live channels in
/// CoreShowChannels / the CLI under the same names, Getvar/Setvar, then the hangup and Cdr.
#[tokio::test]
async fn call_event_sequence() {
    use crate::calls::establish_full;
    let (est, mut a) = establish_full("", AMI, false, async |srv: &TestServer| {
        let mut a = Ami::connect(srv).await;
        a.login("admin", "amp111-secret").await;
        a.until("Event: FullyBooted").await;
        a
    })
    .await;
    let crate::calls::Established {
        srv,
        mut alice,
        mut bob,
        target,
        to,
        bob_contact,
    } = est;
    let mut seq = events_until(&mut a, "BridgeEnter").await;
    seq.extend(events_until(&mut a, "BridgeEnter").await);
    let calls: Vec<&String> = seq
        .iter()
        .filter(|e| !e.starts_with("DeviceStateChange") && !e.starts_with("ExtensionStatus"))
        .filter(|e| !e.starts_with("ContactStatus") && !e.starts_with("PeerStatus"))
        .collect();
    let an = calls[0].trim_start_matches("Newchannel ").to_string();
    let bn = calls[2].trim_start_matches("Newchannel ").to_string();
    assert!(an.starts_with("PJSIP/1001-"), "{calls:#?}");
    assert!(bn.starts_with("PJSIP/1002-"), "{calls:#?}");
    let expect = [
        format!("Newchannel {an}"),
        format!("Newexten {an}"),
        format!("Newchannel {bn}"),
        format!("NewCallerid {bn}"),
        format!("NewConnectedLine {bn}"),
        format!("DialBegin {an}"),
        format!("Newstate {bn} Ringing"),
        format!("DialState {an} RINGING"),
        format!("NewCallerid {bn}"),
        format!("Newstate {bn} Up"),
        format!("DialEnd {an} ANSWER"),
        format!("Newstate {an} Up"),
        format!("NewConnectedLine {an}"),
        "BridgeCreate ".to_string(),
        format!("BridgeEnter {an}"),
        format!("BridgeEnter {bn}"),
    ];
    let got: Vec<String> = calls.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, expect);
    // Device states follow the call: Bob rang, then both in use.
    assert!(
        seq.iter().any(|e| e == "DeviceStateChange  RINGING"),
        "{seq:#?}"
    );
    assert!(
        seq.iter().any(|e| e == "DeviceStateChange  INUSE"),
        "{seq:#?}"
    );

    // The live channels under the same names.
    a.send(&["Action: CoreShowChannels", "ActionID: c1"]).await;
    let mut listed = Vec::new();
    loop {
        let m = a.msg().await.expect("CoreShowChannels");
        if header(&m, "Event") == Some("CoreShowChannel") {
            listed.push(header(&m, "Channel").unwrap().to_string());
            assert_eq!(header(&m, "ChannelStateDesc"), Some("Up"), "{m}");
        }
        if header(&m, "Event") == Some("CoreShowChannelsComplete") {
            assert_eq!(header(&m, "ListItems"), Some("2"), "{m}");
            break;
        }
    }
    assert_eq!(listed, [an.clone(), bn.clone()]);
    a.send(&[
        "Action: Command",
        "ActionID: k1",
        "Command: core show channels concise",
    ])
    .await;
    let out = a.until("Response: Success").await;
    assert!(out.contains(&format!("Output: {an}!")), "{out}");
    assert!(out.contains(&format!("Output: {bn}!")), "{out}");
    a.send(&[
        "Action: Setvar",
        "ActionID: s1",
        &format!("Channel: {an}"),
        "Variable: FOO",
        "Value: bar",
    ])
    .await;
    assert!(a.until("Response: ").await.starts_with("Response: Success"));
    for (var, want) in [
        ("FOO", "bar"),
        ("CALLERID(num)", "1001"),
        ("CHANNEL(state)", "Up"),
    ] {
        a.send(&[
            "Action: Getvar",
            "ActionID: g1",
            &format!("Channel: {an}"),
            &format!("Variable: {var}"),
        ])
        .await;
        let m = a.until("Response: ").await;
        assert_eq!(header(&m, "Value"), Some(want), "{m}");
    }

    // Alice hangs up.
    alice
        .send_raw(&format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKb3;rport\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1001@test.local>;tag=alice1\r\nTo: {to}\r\nCall-ID: call-1@test\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
            l = alice.local
        ))
        .await;
    let bye = crate::calls::next_request(&mut bob, "BYE").await;
    bob.send_raw(&crate::calls::answer(&bye, "200 OK", &bob_contact, None))
        .await;
    let all = events_until(&mut a, "Cdr").await;
    let tail: Vec<&String> = all
        .iter()
        .filter(|e| !e.starts_with("DeviceStateChange") && !e.starts_with("ExtensionStatus"))
        .collect();
    assert_eq!(
        tail,
        [
            &format!("HangupRequest {an}"),
            &format!("SoftHangupRequest {bn}"),
            &format!("BridgeLeave {an}"),
            &format!("BridgeLeave {bn}"),
            &"BridgeDestroy ".to_string(),
            &format!("Hangup {an}"),
            &format!("Hangup {bn}"),
            &format!("Cdr {an}"),
        ]
    );
    // Back to idle (like Asterisk, the device state may follow the Cdr).
    if !all.iter().any(|e| e.ends_with("NOT_INUSE")) {
        let more = events_until(&mut a, "DeviceStateChange").await;
        assert!(
            more.iter().any(|e| e.ends_with("NOT_INUSE")),
            "{all:#?} {more:#?}"
        );
    }
    a.send(&["Action: CoreShowChannels", "ActionID: c2"]).await;
    let m = a.until("Event: CoreShowChannelsComplete").await;
    assert_eq!(header(&m, "ListItems"), Some("0"), "{m}");
    // The same call in RayanPBX's events: B rang, both channels hung up.
    let (_, body) = crate::support::http(
        srv.api(),
        "GET",
        "/api/events/calls",
        Some("test-token-123456"),
        None,
    )
    .await;
    let types: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["extension.ringing", "extension.hangup", "extension.hangup"],
        "{body}"
    );
    assert_eq!(body["events"][0]["data"]["channel"], bn.as_str());
    assert_eq!(body["events"][0]["data"]["destination"], "1002");
    assert_eq!(body["events"][1]["data"]["cause_text"], "Normal Clearing");
    srv.stop().await;
}

/// The AMI `Hangup` action by channel name ends the engine's call (SoftHangupRequest), and
/// an async `Originate` is reported with `OriginateResponse` once the caller answers.
#[tokio::test]
async fn hangup_action_and_originate() {
    use crate::calls::{answer, establish_full, next_request, sdp};
    let (est, mut a) = establish_full("", AMI, false, async |srv: &TestServer| {
        let mut a = Ami::connect(srv).await;
        a.login("admin", "amp111-secret").await;
        a.until("Event: FullyBooted").await;
        a
    })
    .await;
    let crate::calls::Established {
        srv,
        mut alice,
        mut bob,
        bob_contact,
        ..
    } = est;
    let first = a.until("Event: Newchannel").await;
    let an = header(&first, "Channel").unwrap().to_string();
    a.until("Event: BridgeEnter").await;
    a.send(&[
        "Action: Hangup",
        "ActionID: h0",
        "Channel: PJSIP/1001-7fffffff",
    ])
    .await;
    let m = a.until("Response: ").await;
    assert_eq!(header(&m, "Message"), Some("No such channel"), "{m}");
    a.send(&[
        "Action: Hangup",
        "ActionID: h1",
        &format!("Channel: {an}"),
        "Cause: 21",
    ])
    .await;
    let m = a.until("Response: ").await;
    assert_eq!(header(&m, "Message"), Some("Channel Hungup"), "{m}");
    let bye_b = next_request(&mut bob, "BYE").await;
    // The cause travels in an RFC 3326 Reason header and in the Hangup events.
    assert!(
        bye_b.contains("Reason: Q.850;cause=21;text=\"Call Rejected\"\r\n"),
        "{bye_b}"
    );
    bob.send_raw(&answer(&bye_b, "200 OK", &bob_contact, None))
        .await;
    let bye_a = next_request(&mut alice, "BYE").await;
    alice
        .send_raw(&answer(&bye_a, "200 OK", "sip:1001@127.0.0.1", None))
        .await;
    let hang = a.until("Event: Hangup\r\n").await;
    assert_eq!(header(&hang, "Cause"), Some("21"), "{hang}");
    assert_eq!(header(&hang, "Cause-txt"), Some("Call Rejected"), "{hang}");
    let tail = events_until(&mut a, "Cdr").await;
    assert!(tail.iter().any(|e| e.starts_with("Hangup ")), "{tail:#?}");

    // Originate: errors first.
    a.send(&[
        "Action: Originate",
        "ActionID: o0",
        "Channel: PJSIP/1009",
        "Context: from-internal",
        "Exten: 1002",
        "Priority: 1",
    ])
    .await;
    let m = a.until("Response: ").await;
    assert_eq!(header(&m, "Message"), Some("Originate failed"), "{m}");
    a.send(&[
        "Action: Originate",
        "ActionID: o1",
        "Channel: PJSIP/1001",
        "Context: from-internal",
        "Exten: 1002",
        "Priority: 1",
        "CallerID: \"Click2Call\" <5551234>",
        "Variable: CRM_ID=42",
        "Variable: CAMPAIGN=spring sale",
        "Timeout: 20000",
        "Async: true",
    ])
    .await;
    let m = a.until("Response: ").await;
    assert_eq!(
        header(&m, "Message"),
        Some("Originate successfully queued"),
        "{m}"
    );
    let inv_a = next_request(&mut alice, "INVITE").await;
    // The first phone shows the Originate's CallerID.
    let from = inv_a
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_default();
    assert!(from.contains("\"Click2Call\" <sip:5551234@"), "{from}");
    let vs = a.until("Event: VarSet").await;
    assert_eq!(header(&vs, "Variable"), Some("CRM_ID"), "{vs}");
    assert_eq!(header(&vs, "Value"), Some("42"), "{vs}");
    let orig_chan = header(&vs, "Channel").unwrap().to_string();
    assert!(orig_chan.starts_with("PJSIP/1001-"), "{vs}");
    a.send(&[
        "Action: Getvar",
        "ActionID: g1",
        &format!("Channel: {orig_chan}"),
        "Variable: CAMPAIGN",
    ])
    .await;
    let m = a.until("Response: ").await;
    assert_eq!(header(&m, "Value"), Some("spring sale"), "{m}");
    let alice_contact = format!("sip:1001@{}", alice.local);
    alice
        .send_raw(&answer(&inv_a, "200 OK", &alice_contact, Some(&sdp(40000))))
        .await;
    let or = a.until("Event: OriginateResponse").await;
    assert_eq!(header(&or, "ActionID"), Some("o1"), "{or}");
    assert_eq!(header(&or, "Response"), Some("Success"), "{or}");
    assert_eq!(header(&or, "Reason"), Some("4"), "{or}");
    assert_eq!(header(&or, "CallerIDName"), Some("Click2Call"), "{or}");
    assert_eq!(header(&or, "CallerIDNum"), Some("5551234"), "{or}");
    assert!(
        header(&or, "Channel").unwrap().starts_with("PJSIP/1001-"),
        "{or}"
    );
    // Bob rings next; he declines (busy).
    let inv_b = next_request(&mut bob, "INVITE").await;
    bob.send_raw(&answer(&inv_b, "486 Busy Here", &bob_contact, None))
        .await;
    let tail = events_until(&mut a, "Cdr").await;
    assert!(
        tail.iter()
            .any(|e| e.starts_with("DialEnd ") && e.ends_with("BUSY")),
        "{tail:#?}"
    );
    srv.stop().await;
}

/// A minimal WebSocket client: the upgrade, then unmasked text frames from the server.
struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    /// `Err(status)` when the server refuses the upgrade.
    async fn connect(api: std::net::SocketAddr, path: &str) -> Result<Ws, u16> {
        let mut s = TcpStream::connect(api).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {api}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut ws = Ws { s, buf: Vec::new() };
        loop {
            if let Some(p) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = ws.buf.drain(..p + 4).collect();
                let head = String::from_utf8_lossy(&head);
                let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                return if status == 101 { Ok(ws) } else { Err(status) };
            }
            assert!(ws.fill().await, "no upgrade answer");
        }
    }

    async fn fill(&mut self) -> bool {
        let mut b = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next text message as JSON.
    async fn next(&mut self) -> serde_json::Value {
        loop {
            if self.buf.len() >= 2 {
                let (len, off) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 | 126 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= off + len {
                    let opcode = self.buf[0] & 0x0f;
                    let payload: Vec<u8> = self.buf.drain(..off + len).skip(off).collect();
                    if opcode == 1 {
                        return serde_json::from_slice(&payload).unwrap();
                    }
                    continue;
                }
            }
            assert!(self.fill().await, "no WebSocket message");
        }
    }
}

/// RayanPBX's events API and WebSocket (fed from the event hub even with AMI off).
#[tokio::test]
async fn events_api_and_websocket() {
    use crate::support::http;
    const TOKEN: &str = "test-token-123456";
    let srv = TestServer::start("").await;
    let api = srv.api();
    assert_eq!(Ws::connect(api, "/ws").await.err(), Some(401));
    assert_eq!(Ws::connect(api, "/ws?token=wrong").await.err(), Some(401));
    let (st, _) = http(api, "GET", "/api/events", None, None).await;
    assert_eq!(st, 401);
    let mut ws = Ws::connect(api, &format!("/ws?token={TOKEN}"))
        .await
        .expect("upgrade");
    let welcome = ws.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut p = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        p.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let ev = ws.next().await;
    assert_eq!(ev["type"], "extension.registration", "{ev}");
    assert_eq!(ev["event"], ev["type"]);
    assert_eq!(ev["payload"], ev["data"]);
    assert_eq!(ev["data"]["extension"], "1002");
    assert_eq!(ev["data"]["registered"], true);
    assert!(ev["timestamp"].as_str().unwrap().ends_with('Z'), "{ev}");
    let (st, body) = http(api, "GET", "/api/events", Some(TOKEN), None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["events"][0]["type"], "extension.registration");
    let (_, body) = http(api, "GET", "/api/events/calls", Some(TOKEN), None).await;
    assert_eq!(body["count"], 0, "{body}");
    let (_, body) = http(api, "GET", "/api/events/extension/1002", Some(TOKEN), None).await;
    assert_eq!(body["registered"], true, "{body}");
    assert_eq!(body["status"], "Unknown", "{body}");
    assert!(
        body["uri"].as_str().unwrap().starts_with("sip:1002@"),
        "{body}"
    );
    let (_, body) = http(api, "GET", "/api/events/extension/1003", Some(TOKEN), None).await;
    assert_eq!(
        body,
        serde_json::json!({"extension":"1003","registered":false,"status":"unknown"})
    );
    assert_eq!(p.register("1002", "secret1002", Some(0)).await.status, 200);
    let ev = ws.next().await;
    assert_eq!(ev["data"]["status"], "Removed", "{ev}");
    assert_eq!(ev["data"]["registered"], false, "{ev}");
    let (_, body) = http(api, "GET", "/api/events/registrations", Some(TOKEN), None).await;
    assert_eq!(body["count"], 2, "{body}");
    let (st, body) = http(api, "POST", "/api/events/clear", Some(TOKEN), None).await;
    assert_eq!(
        (st, body["message"].as_str()),
        (200, Some("Event history cleared"))
    );
    let (_, body) = http(api, "GET", "/api/events", Some(TOKEN), None).await;
    assert_eq!(body["count"], 0, "{body}");
    srv.stop().await;
}

/// `dialtone monitor-events` prints RayanPBX's lines for registrations.
#[tokio::test]
async fn monitor_events_cli() {
    use std::io::BufRead;
    let srv = TestServer::start(AMI).await;
    let cfg = srv.write_config();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("--config")
        .arg(&cfg)
        .args(["monitor-events", "--ami", &srv.ami().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run dialtone");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten()
    };
    let first = next().await;
    assert!(
        first
            .as_deref()
            .is_some_and(|l| l.starts_with("Monitoring AMI events at")),
        "{first:?}"
    );
    let mut p = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        p.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    assert_eq!(
        next().await.as_deref(),
        Some("✅ Extension 1002 registered")
    );
    assert_eq!(p.register("1002", "secret1002", Some(0)).await.status, 200);
    assert_eq!(
        next().await.as_deref(),
        Some("❌ Extension 1002 unregistered")
    );
    let _ = child.kill();
    let _ = child.wait();
    srv.stop().await;
}

#[tokio::test]
async fn timestampevents_stamps_events() {
    let cfg = AMI.replace("  port: 0\n", "  port: 0\n  timestampevents: true\n");
    let srv = TestServer::start(&cfg).await;
    let mut a = Ami::connect(&srv).await;
    a.login("admin", "amp111-secret").await;
    a.until("Event: FullyBooted").await;
    let mut p = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        p.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let cs = a.until("Event: ContactStatus").await;
    // `Timestamp: <unix>.<micros>` right after Privilege, as Asterisk writes it.
    let line = cs.lines().nth(2).unwrap_or("");
    let ts = line
        .strip_prefix("Timestamp: ")
        .unwrap_or_else(|| panic!("{cs}"));
    let (secs, micros) = ts.split_once('.').unwrap();
    assert_eq!(micros.len(), 6, "{ts}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(secs.parse::<u64>().unwrap()) < 60, "{ts}");
    srv.stop().await;
}

/// A migrated box: config.yml points at Asterisk's manager.conf (with FreePBX's includes);
/// its users log in with their permissions, `disabledevents` holds, a bad file is refused
/// with file:line.
#[tokio::test]
async fn manager_conf_users() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("asterisk");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("manager.conf"),
        "[general]\nenabled = yes\nport = 0\nbindaddr = 127.0.0.1\n\
         disabledevents = Newexten\n\n\
         [admin]\nsecret = amp111\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.0\n\
         read = system,call,reporting\nwrite = system,call,reporting,originate,command\n\n\
         #include manager_additional.conf\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("manager_additional.conf"),
        "[reader]\nsecret = reader-secret-1\nread = call\n",
    )
    .unwrap();
    let yml = dir.path().join("config.yml");
    std::fs::write(
        &yml,
        format!(
            "server: {{ sip_host: 127.0.0.1, sip_port: 0 }}\n\
             api: {{ host: 127.0.0.1, port: 0 }}\n\
             compat_api: {{ enabled: false }}\n\
             database: {{ url: \"sqlite://{}\" }}\n\
             ami: {{ enabled: false, manager_conf: \"{}\" }}\n",
            dir.path().join("d.db").display(),
            etc.join("manager.conf").display()
        ),
    )
    .unwrap();
    let loaded = dialtone::config::load(&yml).expect("loads");
    assert!(loaded.config.ami.enabled, "manager.conf enabled = yes wins");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("[admin] has a secret shorter")),
        "{:?}",
        loaded.warnings
    );
    let srv = dialtone::runtime::Server::start(&loaded.config)
        .await
        .expect("starts");
    let addr = srv.ami_addr().expect("AMI listens");
    let mut a = Ami::connect_to(addr).await;
    let m = a.login("admin", "amp111").await;
    assert!(m.contains("Message: Authentication accepted"), "{m}");
    a.send(&["Action: CoreStatus", "ActionID: c1"]).await;
    let m = a.until("Response: ").await;
    assert!(m.starts_with("Response: Success"), "{m}");
    // `reader` may read call events but not run actions that need write permission.
    let mut r = Ami::connect_to(addr).await;
    let m = r.login("reader", "reader-secret-1").await;
    assert!(m.contains("Authentication accepted"), "{m}");
    r.send(&["Action: Originate", "ActionID: o1", "Channel: PJSIP/1001"])
        .await;
    let m = r.until("Response: ").await;
    assert!(m.contains("Message: Permission denied"), "{m}");
    srv.shutdown().await.unwrap();

    // A bad value: refused, with the file and line.
    std::fs::write(
        etc.join("manager_additional.conf"),
        "[reader]\nsecret = reader-secret-1\nread = call,telepathy\n",
    )
    .unwrap();
    let e = dialtone::config::load(&yml).unwrap_err().to_string();
    assert!(
        e.contains("manager_additional.conf:3: [reader] read = call,telepathy"),
        "{e}"
    );
    // A manager.conf port on the REST API's port is caught before anything binds.
    std::fs::write(
        etc.join("manager_additional.conf"),
        "[reader]\nsecret = reader-secret-1\nread = call\n",
    )
    .unwrap();
    std::fs::write(
        &yml,
        std::fs::read_to_string(&yml).unwrap().replace(
            "api: { host: 127.0.0.1, port: 0 }",
            "api: { host: 127.0.0.1, port: 8089 }",
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("manager.conf"),
        "[general]\nenabled = yes\nport = 8089\nbindaddr = 127.0.0.1\n",
    )
    .unwrap();
    let e = dialtone::config::load(&yml).unwrap_err().to_string();
    assert!(
        e.contains("ami.manager_conf: the AMI listener it sets collides"),
        "{e}"
    );
}
