use super::*;
use crate::ami::backend::{Control, ControlError, ControlOk};
use crate::ami::cli::tests::fixture_snapshot;
use crate::ami::events::tests::{block, lf};
use crate::ami::events::{ChannelSnapshot, DeviceState};
use crate::ami::model::Snapshot;
use crate::ami::perms::{Net, parse_perms};

fn user(name: &str, secret: &str, read: &str, write: &str) -> AmiUser {
    AmiUser {
        username: name.into(),
        secret: secret.into(),
        read: parse_perms(read),
        write: parse_perms(write),
        acl: Acl::default(),
        filters: EventFilters::default(),
    }
}

fn settings() -> Arc<AmiSettings> {
    let mut remote = user("remote", "remote-secret", "all", "all");
    remote.acl = Acl::new(
        &[Net::parse("0.0.0.0/0").unwrap()],
        &[Net::parse("10.0.0.0/8").unwrap()],
    );
    let mut filtered = user("filtered", "filtered-secret", "all", "all");
    filtered.filters = EventFilters::parse(&["!Event: DeviceStateChange"]).unwrap();
    Arc::new(AmiSettings::new(
        vec![
            user("admin", "amp111", "system,call", "all"),
            user("mon", "monitor-secret", "call", "reporting"),
            user("orig", "orig-secret", "call", "originate"),
            remote,
            filtered,
        ],
        1_700_000_000.0 - 3600.0,
    ))
}

struct T {
    s: AmiSession,
    now: Instant,
    snap: Snapshot,
    control: fn(&Control) -> Result<ControlOk, ControlError>,
}

fn no_control(_: &Control) -> Result<ControlOk, ControlError> {
    Err(ControlError::Unsupported("not in this test".into()))
}

impl T {
    fn new() -> T {
        let now = Instant::now();
        let mut s = AmiSession::new(
            now,
            1_700_000_000.123456,
            settings(),
            "127.0.0.1".parse().unwrap(),
            840_123_456,
        );
        assert_eq!(
            s.poll_transmit().unwrap(),
            "Asterisk Call Manager/11.0.0\r\n"
        );
        T {
            s,
            now,
            snap: fixture_snapshot(),
            control: no_control,
        }
    }

    /// Send a message (LF in `text` becomes CRLF), serve requests, return the output.
    fn send(&mut self, text: &str) -> String {
        let wire = text.replace('\n', "\r\n");
        self.s.handle_input(self.now, wire.as_bytes());
        self.serve()
    }

    fn serve(&mut self) -> String {
        let mut out = String::new();
        loop {
            if let Some(t) = self.s.poll_transmit() {
                out.push_str(&t);
            }
            let Some(req) = self.s.poll_request() else {
                break;
            };
            let reply = match req {
                Request::Snapshot => Reply::Snapshot(Arc::new(self.snap.clone())),
                Request::Control(c) => Reply::Control((self.control)(&c)),
            };
            self.s.handle_reply(self.now, reply);
        }
        out
    }

    fn login(&mut self, user: &str, secret: &str) -> String {
        self.send(&format!(
            "Action: Login\nUsername: {user}\nSecret: {secret}\n\n"
        ))
    }
}

/// Split an output into messages (LF form, no trailing blank line).
fn msgs(out: &str) -> Vec<String> {
    out.split("\r\n\r\n")
        .filter(|m| !m.is_empty())
        .map(|m| m.replace("\r\n", "\n"))
        .collect()
}

#[test]
fn plain_login_sends_fully_booted() {
    let mut t = T::new();
    let out = t.send("Action: Login\nActionID: 1\nUsername: admin\nSecret: amp111\n\n");
    let m = msgs(&out);
    if let Some(want) = block("Response: Success\nActionID: 1\nMessage: Authentication accepted") {
        assert_eq!(m[0], want);
    }
    if let Some(want) = block("Event: FullyBooted") {
        assert_eq!(m[1], want);
    }
    assert_eq!(t.s.username(), Some("admin"));
    assert_eq!(
        msgs(&t.login("admin", "amp111"))[0],
        "Response: Success\nMessage: Already authenticated"
    );
}

#[test]
fn md5_login() {
    let mut t = T::new();
    let out = t.send("Action: Challenge\nActionID: c1\nAuthType: MD5\n\n");
    if let Some(want) = block("Response: Success\nActionID: c1") {
        assert_eq!(lf(&out), want);
    }
    let key = md5_hex("840123456amp111");
    let out = t.send(&format!(
        "Action: Login\nActionID: c2\nAuthType: MD5\nUsername: admin\nKey: {key}\n\n"
    ));
    assert!(out.starts_with(
        "Response: Success\r\nActionID: c2\r\nMessage: Authentication accepted\r\n\r\n"
    ));
    let mut t = T::new();
    let out = t.send("Action: Challenge\nAuthType: plain\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nMessage: Must specify AuthType\r\n\r\n"
    );
}

#[test]
fn failed_login_waits_then_closes() {
    let mut t = T::new();
    let out = t.send("Action: Login\nUsername: admin\nSecret: wrong\n\n");
    assert_eq!(out, "", "nothing before the delay");
    let at = t.s.poll_timeout().unwrap();
    assert_eq!(at, t.now + Duration::from_secs(1));
    // input during the delay is ignored
    t.send("Action: Ping\n\n");
    t.s.handle_timeout(at - Duration::from_millis(1));
    assert!(!t.s.is_closed());
    t.s.handle_timeout(at);
    let out = t.s.poll_transmit().unwrap();
    if let Some(want) = block("Response: Error\nMessage: Authentication failed") {
        assert_eq!(lf(&out), want);
    }
    assert!(t.s.is_closed());
    // unknown user and ACL denial fail the same way
    for (u, s) in [("nobody", "x"), ("remote", "remote-secret")] {
        let mut t = T::new();
        t.login(u, s);
        assert!(matches!(t.s.state, State::Failing { .. }), "{u}");
    }
}

#[test]
fn auth_timeout_closes() {
    let mut t = T::new();
    let d = t.s.poll_timeout().unwrap();
    assert_eq!(d, t.now + Duration::from_secs(30));
    t.s.handle_timeout(d);
    assert!(t.s.is_closed());
}

#[test]
fn before_login_and_errors() {
    let mut t = T::new();
    let out = t.send("Action: Ping\nActionID: y\n\n");
    if let Some(want) = block("Response: Error\nActionID: y") {
        assert_eq!(lf(&out), want);
    }
    let out = t.send("\n");
    if let Some(want) = block("Response: Error\nMessage: Missing action in request") {
        assert_eq!(lf(&out), want);
    }
    t.login("admin", "amp111");
    let out = t.send("Action: Foo\nActionID: x\n\n");
    if let Some(want) = block("Response: Error\nActionID: x\nMessage: Invalid/unknown") {
        assert_eq!(lf(&out), want);
    }
    let out = t.send("action: ping\nactionid: p1\n\n");
    assert!(
        out.starts_with(
            "Response: Success\r\nActionID: p1\r\nPing: Pong\r\nTimestamp: 1700000000.123456\r\n"
        ),
        "{out}"
    );
    let out = t.send("Action: Logoff\nActionID: q\n\n");
    if let Some(want) = block("Response: Goodbye") {
        assert_eq!(lf(&out), want);
    }
    assert!(t.s.is_closed());
}

#[test]
fn batches_are_filtered_like_single_events() {
    use crate::ami::session::WireBatch;
    let mut t = T::new();
    t.login("admin", "amp111");
    let ds = events::device_state_change("PJSIP/1001", DeviceState::InUse);
    let cdr = events::cdr(&Default::default());
    // Everything readable: the joined text in one go.
    let both = WireBatch::new(vec![ds.clone(), ds.clone()]);
    t.s.handle_batch(&both);
    assert_eq!(t.s.poll_transmit().unwrap(), ds.to_wire().repeat(2));
    // A class the user cannot read: the others still arrive, in order.
    let mixed = WireBatch::new(vec![ds.clone(), cdr, ds.clone()]);
    t.s.handle_batch(&mixed);
    assert_eq!(t.s.poll_transmit().unwrap(), ds.to_wire().repeat(2));
    // A single event is its own text.
    let one = WireBatch::one(ds.clone());
    assert_eq!(one.wire(), ds.to_wire());
}

#[test]
fn events_mask_and_delivery() {
    let mut t = T::new();
    t.login("admin", "amp111");
    let ds = Arc::new(WireEvent::new(events::device_state_change(
        "PJSIP/1001",
        DeviceState::InUse,
    )));
    let cdr = Arc::new(WireEvent::new(events::cdr(&Default::default())));
    t.s.handle_event(&ds);
    assert_eq!(t.s.poll_transmit().unwrap(), ds.wire);
    t.s.handle_event(&cdr);
    assert_eq!(t.s.poll_transmit(), None, "no cdr read permission");
    let out = t.send("Action: Events\nActionID: e2\nEventMask: off\n\n");
    if let Some(want) = block("Response: Success\nActionID: e2") {
        assert_eq!(lf(&out), want);
    }
    t.s.handle_event(&ds);
    assert_eq!(t.s.poll_transmit(), None);
    let out = t.send("Action: Events\nActionID: e1\nEventMask: call,system\n\n");
    assert!(out.contains("Events: On"));
    assert_eq!(
        t.send("Action: Events\nEventMask: \n\n"),
        "Response: Error\r\nMessage: Invalid event mask\r\n\r\n"
    );
    // Login with Events: off
    let mut t = T::new();
    let out = t.send("Action: Login\nUsername: admin\nSecret: amp111\nEvents: off\n\n");
    assert!(!out.contains("FullyBooted"));
    t.s.handle_event(&ds);
    assert_eq!(t.s.poll_transmit(), None);
    // a user filter
    let mut t = T::new();
    t.login("filtered", "filtered-secret");
    t.s.handle_event(&ds);
    assert_eq!(t.s.poll_transmit(), None);
}

#[test]
fn events_wait_for_the_response() {
    let mut t = T::new();
    t.login("admin", "amp111");
    t.s.handle_input(t.now, b"Action: CoreShowChannels\r\nActionID: l\r\n\r\n");
    assert_eq!(t.s.poll_request(), Some(Request::Snapshot));
    let ds = Arc::new(WireEvent::new(events::device_state_change(
        "PJSIP/1001",
        DeviceState::InUse,
    )));
    t.s.handle_event(&ds);
    assert_eq!(t.s.poll_transmit(), None, "held while the list is pending");
    // a second action queued behind the first
    t.s.handle_input(t.now, b"Action: Ping\r\n\r\n");
    assert_eq!(t.s.poll_transmit(), None);
    t.s.handle_reply(t.now, Reply::Snapshot(Arc::new(t.snap.clone())));
    let out = t.s.poll_transmit().unwrap();
    let complete = out.find("Event: CoreShowChannelsComplete").unwrap();
    let ev = out.find("Event: DeviceStateChange").unwrap();
    let ping = out.find("Ping: Pong").unwrap();
    assert!(complete < ev && ev < ping, "{out}");
    assert_eq!(out.matches("Event: CoreShowChannel\r\n").count(), 2);
    assert!(out.contains("ListItems: 2\r\n"));
}

#[test]
fn permissions() {
    let mut t = T::new();
    t.login("mon", "monitor-secret");
    let out = t.send("Action: Command\nActionID: k\nCommand: core show version\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nActionID: k\r\nMessage: Permission denied\r\n\r\n"
    );
    // reporting suffices for CoreSettings (system,reporting)
    let out = t.send("Action: CoreSettings\n\n");
    assert!(out.contains("AMIversion: 11.0.0\r\n"), "{out}");
    let out = t.send("Action: ListCommands\n\n");
    assert!(out.contains("CoreSettings: "), "{out}");
    assert!(out.contains("(Priv: system,reporting,all)"), "{out}");
    assert!(!out.contains("\r\nCommand: "), "{out}");
    assert!(
        out.contains("Ping: Keepalive command. (Priv: <none>)"),
        "{out}"
    );
}

#[test]
fn pjsip_show_endpoints_transcript() {
    let mut t = T::new();
    t.login("admin", "amp111");
    t.snap.endpoints.truncate(2);
    let out = t.send("Action: PJSIPShowEndpoints\nActionID: L1\n\n");
    let m = msgs(&out);
    assert_eq!(m.len(), 4, "{out}");
    let Some(blocks) = crate::ami::events::tests::server_blocks() else {
        return;
    };
    let i = blocks
        .iter()
        .position(|b| b.contains("A listing of Endpoints follows"))
        .unwrap();
    for (k, got) in m.iter().enumerate() {
        assert_eq!(got, &blocks[i + k]);
    }
    t.snap.endpoints.clear();
    let out = t.send("Action: PJSIPShowEndpoints\nActionID: L1\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nActionID: L1\r\nMessage: No endpoints found\r\n\r\n"
    );
}

#[test]
fn command_output() {
    let mut t = T::new();
    t.login("admin", "amp111");
    let out = t.send("Action: Command\nActionID: k1\nCommand: core show version\n\n");
    assert!(out.starts_with("Response: Success\r\nActionID: k1\r\nMessage: Command output follows\r\nOutput: Asterisk 22.5.0 built by "), "{out}");
    assert!(out.ends_with("UTC\r\n\r\n"));
    let out = t.send("Action: Command\nCommand: pjsip show contacts\n\n");
    assert!(
        out.contains("\r\nOutput: \r\nOutput:   Contact:  <Aor/ContactUri"),
        "{out}"
    );
    assert!(
        out.contains("Output: Objects found: 2\r\nOutput: \r\n\r\n"),
        "{out}"
    );
    let out = t.send("Action: Command\nCommand: sip show peers\n\n");
    assert!(out.starts_with("Response: Error\r\nMessage: Command output follows\r\nOutput: No such command 'sip show peers'"), "{out}");
    let out = t.send("Action: Command\nCommand: module unload res_pjsip.so\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nMessage: Command blacklisted\r\n\r\n"
    );
    t.control = |c| match c {
        Control::Reload { module } if module.as_deref() == Some("res_pjsip.so") => {
            Ok(ControlOk::Done)
        }
        _ => Err(ControlError::NoSuchModule),
    };
    let out = t.send("Action: Command\nCommand: module reload res_pjsip.so\n\n");
    assert!(
        out.contains("Output: Module 'res_pjsip.so' reloaded successfully.\r\n"),
        "{out}"
    );
    let out = t.send("Action: Reload\nModule: res_pjsip\n\n");
    assert_eq!(out, "Response: Success\r\nMessage: Module Reloaded\r\n\r\n");
    let out = t.send("Action: Reload\nModule: app_queue.so\n\n");
    assert_eq!(out, "Response: Error\r\nMessage: No such module\r\n\r\n");
}

#[test]
fn channel_actions() {
    let mut t = T::new();
    t.login("admin", "amp111");
    let out = t.send("Action: Status\nActionID: s\n\n");
    assert!(out.contains("Message: Channel status will follow"));
    assert!(out.contains("Event: Status\r\nPrivilege: Call\r\nChannel: PJSIP/1001-00000001\r\n"));
    assert!(out.contains("Seconds: 42\r\nActionID: s\r\n\r\n"), "{out}");
    assert!(out.contains("ListItems: 2\r\nItems: 2\r\n"));
    let out = t.send("Action: Status\nChannel: PJSIP/9-1\n\n");
    assert_eq!(out, "Response: Error\r\nMessage: No such channel\r\n\r\n");
    let out = t.send("Action: Getvar\nChannel: PJSIP/1001-00000001\nVariable: CALLERID(num)\n\n");
    assert_eq!(
        out,
        "Response: Success\r\nVariable: CALLERID(num)\r\nValue: 1001\r\n\r\n"
    );
    let out = t.send("Action: Getvar\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nMessage: No variable specified\r\n\r\n"
    );
    // Hangup by name / by regex
    t.control = |c| match c {
        Control::Hangup { channels, .. } => Ok(ControlOk::Hungup(
            channels
                .iter()
                .filter(|c| c.starts_with("PJSIP/100"))
                .cloned()
                .collect(),
        )),
        _ => Err(ControlError::Failed),
    };
    let out = t.send("Action: Hangup\nChannel: PJSIP/1001-00000001\n\n");
    assert_eq!(out, "Response: Success\r\nMessage: Channel Hungup\r\n\r\n");
    let out = t.send("Action: Hangup\nChannel: PJSIP/2-1\n\n");
    assert_eq!(out, "Response: Error\r\nMessage: No such channel\r\n\r\n");
    let out = t.send("Action: Hangup\nActionID: h\nChannel: /^PJSIP/\n\n");
    assert!(
        out.contains("Event: ChannelHungup\r\nChannel: PJSIP/1001-00000001\r\nActionID: h\r\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "ChannelsHungupListComplete\r\nActionID: h\r\nEventList: Complete\r\nListItems: 2"
        ),
        "{out}"
    );
    // Originate: validation, then the backend's answer
    let out = t.send("Action: Originate\nExten: 1002\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nMessage: Channel not specified\r\n\r\n"
    );
    let out = t.send("Action: Originate\nChannel: PJSIP/1001\nExten: 1002\n\n");
    assert!(out.contains("requires 'Context' and 'Priority'"), "{out}");
    let mut o = T::new();
    o.login("orig", "orig-secret");
    let out = o.send("Action: Originate\nChannel: PJSIP/1001\nApplication: System\nData: rm\n\n");
    assert!(out.contains("Originate Access Forbidden"), "{out}");
    t.control = no_control;
    let out = t.send("Action: Originate\nChannel: PJSIP/1001\nContext: from-internal\nExten: 1002\nPriority: 1\nAsync: true\n\n");
    assert_eq!(out, "Response: Error\r\nMessage: not in this test\r\n\r\n");
    t.control = |_| Ok(ControlOk::OriginateQueued);
    let out = t.send("Action: Originate\nActionID: o1\nChannel: PJSIP/1001\nContext: from-internal\nExten: 1002\nPriority: 1\nAsync: true\n\n");
    assert_eq!(
        out,
        "Response: Success\r\nActionID: o1\r\nMessage: Originate successfully queued\r\n\r\n"
    );
    let out = t.send("Action: Redirect\nChannel: PJSIP/1001-00000001\nExten: 1003\nContext: from-internal\nPriority: x\n\n");
    assert_eq!(
        out,
        "Response: Error\r\nMessage: Priority is invalid\r\n\r\n"
    );
}

#[test]
fn state_and_pjsip_lists() {
    let mut t = T::new();
    t.login("admin", "amp111");
    let out = t.send("Action: DeviceStateList\nActionID: d\n\n");
    assert!(
        out.contains(
            "Event: DeviceStateChange\r\nActionID: d\r\nDevice: PJSIP/1001\r\nState: NOT_INUSE\r\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "DeviceStateListComplete\r\nActionID: d\r\nEventList: Complete\r\nListItems: 3"
        )
    );
    let out = t.send("Action: ExtensionState\nExten: 1002\nContext: ext-local\n\n");
    assert_eq!(
        out,
        "Response: Success\r\nMessage: Extension Status\r\nExten: 1002\r\nContext: ext-local\r\nHint: PJSIP/1002\r\nStatus: 4\r\nStatusText: Unavailable\r\n\r\n"
    );
    let out = t.send("Action: ExtensionStateList\n\n");
    assert!(out.contains("ListItems: 2"));
    let out = t.send("Action: PJSIPShowContacts\n\n");
    assert!(
        out.contains("Event: ContactList\r\nObjectType: contact\r\nObjectName: 1001;@d0cde1d069"),
        "{out}"
    );
    assert!(out.contains("RoundtripUsec: 12345\r\n"));
    let out = t.send("Action: PJSIPShowEndpoint\nEndpoint: PJSIP/1001\n\n");
    assert!(out.contains("Event: EndpointDetail\r\nObjectType: endpoint\r\nObjectName: 1001\r\nAllow: (ulaw|alaw)\r\n100rel: yes\r\n"), "{out}");
    assert!(out.contains("Event: ContactStatusDetail\r\nAOR: 1001\r\n"));
    assert!(
        out.contains("EndpointDetailComplete\r\nEventList: Complete\r\nListItems: 5"),
        "{out}"
    );
    let out = t.send("Action: PJSIPShowEndpoint\n\n");
    assert!(out.contains("PJSIPShowEndpoint requires an endpoint name"));
    let out = t.send("Action: PJSIPShowAors\n\n");
    assert!(out.contains("ListItems: 3"));
    let out = t.send("Action: PJSIPShowRegistrationsInbound\n\n");
    assert!(
        out.contains("InboundRegistrationDetailComplete\r\nEventList: Complete\r\nListItems: 1"),
        "{out}"
    );
    let out = t.send("Action: CoreStatus\n\n");
    assert!(
        out.contains("CoreStartupDate: 2023-11-14\r\nCoreStartupTime: 21:13:20\r\n"),
        "{out}"
    );
    let _ = ChannelSnapshot::default();
}

#[test]
fn framing_limits() {
    let mut t = T::new();
    let mut big = b"Action: Ping\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2000));
    big.extend_from_slice(b"\r\n\r\n");
    t.s.handle_input(t.now, &big);
    assert_eq!(
        t.s.poll_transmit().unwrap(),
        "Response: Error\r\nMessage: Failed to parse message: line too long\r\n\r\n"
    );
    let mut huge = Vec::new();
    for _ in 0..3000 {
        huge.extend_from_slice(b"Header: 01234567890123456789012345678901234567890\r\n");
    }
    t.s.handle_input(t.now, &huge);
    assert!(t.s.poll_transmit().unwrap().contains("message too large"));
    assert!(t.s.is_closed());
}
