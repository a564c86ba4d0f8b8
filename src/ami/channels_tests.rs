use super::*;
use crate::ami::tracker::EndpointTracker;
use crate::pbx::engine::PbxEvent;
use crate::pbx::peer::Peer;

const T0: f64 = 1_700_000_000.0;

fn started(call: u64, originated: bool) -> CallEvent {
    CallEvent::Started {
        call,
        call_id: format!("cid-{call}"),
        caller: "1001".into(),
        caller_name: "Alice".into(),
        callee: "1002".into(),
        callee_name: "Bob".into(),
        originated,
    }
}

fn dialing(call: u64, leg: Leg, branch: usize) -> CallEvent {
    CallEvent::Dialing {
        call,
        leg,
        branch,
        number: if leg == Leg::B { "1002" } else { "1001" }.into(),
        contact: "sip:x@127.0.0.1:5070".into(),
    }
}

fn names(evs: &[AmiEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            let extra = e
                .header("DialStatus")
                .or(if e.name == "Newstate" {
                    e.header("ChannelStateDesc")
                } else {
                    None
                })
                .unwrap_or("");
            let ch = e.header("Channel").unwrap_or("");
            if extra.is_empty() {
                format!("{} {ch}", e.name)
            } else {
                format!("{} {ch} {extra}", e.name)
            }
        })
        .collect()
}

fn tracker() -> ChannelTracker {
    let mut t = ChannelTracker::new(7);
    t.set_context("1001", "from-internal");
    t.set_context("1002", "from-internal");
    t
}

/// A whole answered call, hung up by the callee.
fn answered_call(t: &mut ChannelTracker, call: u64) -> Vec<AmiEvent> {
    let mut out = Vec::new();
    for ev in [
        started(call, false),
        dialing(call, Leg::B, 0),
        CallEvent::Ringing {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Answered {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Bridged { call },
        CallEvent::Dtmf {
            call,
            leg: Leg::A,
            digit: '5',
            duration_ms: 120,
        },
        CallEvent::Ended {
            call,
            status: 200,
            q850: 16,
            by: HungUpBy::Callee,
            answered: true,
        },
    ] {
        out.extend(t.handle(T0, &ev));
    }
    out
}

#[test]
fn answered_call_event_order() {
    let mut t = tracker();
    let evs = answered_call(&mut t, 1);
    let a = "PJSIP/1001-00000000";
    let b = "PJSIP/1002-00000001";
    assert_eq!(
        names(&evs),
        [
            format!("Newchannel {a}"),
            format!("Newexten {a}"),
            format!("Newchannel {b}"),
            format!("NewCallerid {b}"),
            format!("NewConnectedLine {b}"),
            format!("DialBegin {a}"),
            format!("Newstate {b} Ringing"),
            format!("DialState {a} RINGING"),
            format!("NewCallerid {b}"),
            format!("Newstate {b} Up"),
            format!("DialEnd {a} ANSWER"),
            format!("Newstate {a} Up"),
            format!("NewConnectedLine {a}"),
            "BridgeCreate ".to_string(),
            format!("BridgeEnter {a}"),
            format!("BridgeEnter {b}"),
            format!("DTMFBegin {a}"),
            format!("DTMFEnd {a}"),
            format!("HangupRequest {b}"),
            format!("SoftHangupRequest {a}"),
            format!("BridgeLeave {b}"),
            format!("BridgeLeave {a}"),
            "BridgeDestroy ".to_string(),
            format!("Hangup {b}"),
            format!("Hangup {a}"),
        ]
    );
    assert!(t.channels().is_empty());
    // Bridge counts go 0, 1, 2 then 1, 0.
    let counts: Vec<&str> = evs
        .iter()
        .filter(|e| e.name.starts_with("Bridge"))
        .map(|e| e.header("BridgeNumChannels").unwrap())
        .collect();
    assert_eq!(counts, ["0", "1", "2", "1", "0", "0"]);
    let dtmf = evs.iter().find(|e| e.name == "DTMFEnd").unwrap();
    assert_eq!(dtmf.header("Direction"), Some("Received"));
    assert_eq!(dtmf.header("DurationMs"), Some("120"));
    let hang = evs.iter().rfind(|e| e.name == "Hangup").unwrap();
    assert_eq!(hang.header("Cause-txt"), Some("Normal Clearing"));
    assert_eq!(hang.header("ConnectedLineName"), Some("Bob"));
    // Linkedid of B is A's Uniqueid.
    let nb = &evs[2];
    assert_eq!(nb.header("Linkedid"), Some("1700000000.0"));
    assert_eq!(nb.header("Uniqueid"), Some("1700000000.1"));
}

/// Blocks of the golden transcript: `(section title, wire lines)` for each `<<` block that
/// is an event.
fn transcript_events(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<(String, String)>> = None;
    for line in text.lines() {
        if line == "<<" || line == ">>" || line.starts_with("###") {
            if let Some(c) = cur.take()
                && !c.is_empty()
            {
                out.push(c);
            }
            if line == "<<" {
                cur = Some(Vec::new());
            }
            continue;
        }
        if let Some(c) = cur.as_mut() {
            if line.is_empty() {
                if !c.is_empty() {
                    out.push(std::mem::take(c));
                }
                cur = None;
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                c.push((k.to_string(), v.trim_start().to_string()));
            }
        }
    }
    if let Some(c) = cur
        && !c.is_empty()
    {
        out.push(c);
    }
    out.into_iter()
        .filter(|b| b.first().is_some_and(|(k, _)| k == "Event"))
        .collect()
}

fn wire_pairs(ev: &AmiEvent) -> Vec<(String, String)> {
    ev.to_wire()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_start().to_string()))
        .collect()
}

#[test]
fn golden_transcript_shapes() {
    let Some(text) = crate::ami::test_fixture("ami/ami_transcripts_constructed.txt") else {
        return;
    };
    let golden = transcript_events(&text);
    let mut t = tracker();
    let mut evs = answered_call(&mut t, 1);
    // The registration part of the stream.
    let mut reg = EndpointTracker::new();
    reg.set_hint("1001", "1001", "ext-local");
    evs.extend(reg.handle(&PbxEvent::Registered {
        aor: "1001".into(),
        contact: "sip:1001@192.0.2.50:5060;ob".into(),
        source: Peer::udp("192.0.2.50:5060".parse().unwrap()),
        user_agent: None,
    }));
    evs.extend(reg.handle(&PbxEvent::ContactStatus {
        aor: "1001".into(),
        contact: "sip:1001@192.0.2.50:5060;ob".into(),
        status: crate::pbx::registrar::QualifyStatus::Reachable,
        rtt: Some(std::time::Duration::from_micros(12_345)),
    }));
    evs.extend(reg.set_call_state("1001", Some(DeviceState::InUse)));
    let mut checked = 0;
    for g in &golden {
        let name = &g[0].1;
        // Exact values for the events whose state in the transcript matches this call's.
        let exact = matches!(
            name.as_str(),
            "Newchannel"
                | "DialBegin"
                | "DialEnd"
                | "ContactStatus"
                | "PeerStatus"
                | "DeviceStateChange"
                | "ExtensionStatus"
        );
        let Some(ours) = evs.iter().find(|e| {
            e.name == *name
                && (name != "ContactStatus" || e.header("ContactStatus") == Some("Reachable"))
                && (name != "DeviceStateChange" || e.header("State") == Some("INUSE"))
                && (name != "ExtensionStatus" || e.header("Status") == Some("1"))
        }) else {
            continue;
        };
        let ours = wire_pairs(ours);
        let keys = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&ours), keys(g), "field order of {name}");
        if exact {
            assert_eq!(&ours, g, "values of {name}");
        }
        checked += 1;
    }
    // Newchannel, Hangup, DialBegin, DialEnd, BridgeEnter, ContactStatus, PeerStatus,
    // DeviceStateChange, ExtensionStatus.
    assert!(checked >= 9, "only {checked} transcript events compared");
}

#[test]
fn forked_call_cancels_the_other_branch() {
    let mut t = tracker();
    let call = 3;
    let mut evs = Vec::new();
    for ev in [
        started(call, false),
        dialing(call, Leg::B, 0),
        dialing(call, Leg::B, 1),
        CallEvent::Ringing {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Ringing {
            call,
            leg: Leg::B,
            branch: 1,
        },
        CallEvent::Answered {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Bridged { call },
        CallEvent::BranchEnded {
            call,
            leg: Leg::B,
            branch: 1,
            status: 487,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    let tail = names(&evs[evs.len() - 2..]);
    assert_eq!(
        tail,
        [
            "DialEnd PJSIP/1001-00000000 CANCEL",
            "Hangup PJSIP/1002-00000002"
        ]
    );
    assert_eq!(evs.last().unwrap().header("Cause"), Some("26"));
    assert_eq!(t.channels().len(), 2);
    assert_eq!(t.call_of("pjsip/1002-00000001"), Some(3));
    let states = t.endpoint_states();
    assert_eq!(states.get("1001"), Some(&DeviceState::InUse));
    assert_eq!(states.get("1002"), Some(&DeviceState::InUse));
    let evs = t.handle(
        T0,
        &CallEvent::Hold {
            call,
            leg: Leg::B,
            hold: true,
        },
    );
    assert_eq!(names(&evs), ["Hold PJSIP/1002-00000001"]);
    assert_eq!(t.endpoint_state("1002"), Some(DeviceState::OnHold));
}

#[test]
fn busy_and_cancel_and_timeout() {
    // Busy.
    let mut t = tracker();
    let mut evs = Vec::new();
    for ev in [
        started(1, false),
        dialing(1, Leg::B, 0),
        CallEvent::BranchEnded {
            call: 1,
            leg: Leg::B,
            branch: 0,
            status: 486,
        },
        CallEvent::Ended {
            call: 1,
            status: 486,
            q850: 17,
            by: HungUpBy::Callee,
            answered: false,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    let n = names(&evs);
    assert_eq!(
        &n[6..],
        [
            "DialEnd PJSIP/1001-00000000 BUSY",
            "Hangup PJSIP/1002-00000001",
            "Hangup PJSIP/1001-00000000"
        ]
    );
    assert_eq!(evs[7].header("Cause"), Some("17"));
    // Caller cancels: HangupRequest on A, DialEnd CANCEL.
    let mut t = tracker();
    let mut evs = Vec::new();
    for ev in [
        started(1, false),
        dialing(1, Leg::B, 0),
        CallEvent::BranchEnded {
            call: 1,
            leg: Leg::B,
            branch: 0,
            status: 487,
        },
        CallEvent::Ended {
            call: 1,
            status: 487,
            q850: 16,
            by: HungUpBy::Caller,
            answered: false,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    assert_eq!(
        &names(&evs)[6..],
        [
            "HangupRequest PJSIP/1001-00000000",
            "DialEnd PJSIP/1001-00000000 CANCEL",
            "Hangup PJSIP/1002-00000001",
            "Hangup PJSIP/1001-00000000"
        ]
    );
    // Ring timeout: NOANSWER, SoftHangupRequest.
    let mut t = tracker();
    let mut evs = Vec::new();
    for ev in [
        started(1, false),
        dialing(1, Leg::B, 0),
        CallEvent::BranchEnded {
            call: 1,
            leg: Leg::B,
            branch: 0,
            status: 487,
        },
        CallEvent::Ended {
            call: 1,
            status: 480,
            q850: 19,
            by: HungUpBy::System,
            answered: false,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    assert_eq!(
        &names(&evs)[6..],
        [
            "SoftHangupRequest PJSIP/1001-00000000",
            "DialEnd PJSIP/1001-00000000 NOANSWER",
            "Hangup PJSIP/1002-00000001",
            "Hangup PJSIP/1001-00000000"
        ]
    );
    assert_eq!(
        evs.last().unwrap().header("Cause-txt"),
        Some("User alerting, no answer")
    );
}

#[test]
fn originate_variables_and_dialplan_events() {
    let mut t = tracker();
    let call = 7;
    t.handle(T0, &started(call, true));
    // Registered before the first phone rings: the channel is born with the variables and
    // the Originate's caller ID.
    t.register_originate(
        call,
        PendingOriginate {
            action_id: None,
            channel: "PJSIP/1001".into(),
            target: OriginateTarget::Exten {
                context: "from-internal".into(),
                exten: "1002".into(),
            },
            caller_id: Some(("5551234".into(), "CRM".into())),
            is_async: true,
            variables: vec![
                ("CRM_ID".into(), "42".into()),
                ("NOTE".into(), "say \"hi\"".into()),
            ],
        },
    );
    let evs = t.handle(T0, &dialing(call, Leg::A, 0));
    let n: Vec<&str> = evs.iter().map(|e| &*e.name).collect();
    assert_eq!(n, ["Newchannel", "VarSet", "VarSet", "DialBegin"]);
    assert_eq!(evs[0].header("CallerIDNum"), Some("5551234"));
    assert_eq!(evs[0].header("CallerIDName"), Some("CRM"));
    assert_eq!(evs[1].class, crate::ami::perms::DIALPLAN);
    assert_eq!(evs[1].header("Variable"), Some("CRM_ID"));
    assert_eq!(evs[1].header("Value"), Some("42"));
    // Values are C-escaped on the wire.
    assert_eq!(evs[2].header("Value"), Some("say \\\"hi\\\""));
    let chan = t.channels()[0].name.clone();
    assert_eq!(
        t.channels()[0].variables,
        [
            ("CRM_ID".to_string(), "42".to_string()),
            ("NOTE".to_string(), "say \"hi\"".to_string())
        ]
    );
    // Setvar on the channel: the value changes and a VarSet is announced.
    let ev = t.set_var_event(&chan, "CRM_ID", "43").unwrap();
    assert_eq!(ev.header("Channel"), Some(chan.as_str()));
    assert_eq!(ev.header("Value"), Some("43"));
    assert!(t.set_var_event("PJSIP/1001-7fffffff", "X", "1").is_none());
    // Answered: the originated channel runs the dialplan (Newexten after the response).
    let evs = t.handle(
        T0,
        &CallEvent::Answered {
            call,
            leg: Leg::A,
            branch: 0,
        },
    );
    let nx = evs.last().unwrap();
    assert_eq!(nx.name, "Newexten");
    assert_eq!(nx.header("Extension"), Some("1002"));
    assert_eq!(nx.header("Application"), Some("Dial"));
    assert_eq!(nx.header("AppData"), Some("PJSIP/1002,30"));
    // Globals: Channel/Uniqueid none.
    let g = crate::ami::events::var_set(None, "G", "v");
    assert_eq!(g.header("Channel"), Some("none"));
    assert_eq!(g.header("Uniqueid"), Some("none"));
}

#[test]
fn originate_registered_after_the_channel_exists() {
    // The engine's first event can reach the tracker before the action's reply registers
    // the Originate: the channel then gets its caller ID and variables late, announced.
    let mut t = tracker();
    let call = 8;
    t.handle(T0, &started(call, true));
    let evs = t.handle(T0, &dialing(call, Leg::A, 0));
    assert_eq!(evs[0].name, "Newchannel");
    t.register_originate(
        call,
        PendingOriginate {
            action_id: None,
            channel: "PJSIP/1001".into(),
            target: OriginateTarget::Exten {
                context: "from-internal".into(),
                exten: "1002".into(),
            },
            caller_id: Some(("5551234".into(), "CRM".into())),
            is_async: true,
            variables: vec![("CRM_ID".into(), "42".into())],
        },
    );
    let late = t.take_late_events();
    let n: Vec<&str> = late.iter().map(|e| &*e.name).collect();
    assert_eq!(n, ["NewCallerid", "VarSet"]);
    assert_eq!(late[0].header("CallerIDNum"), Some("5551234"));
    assert_eq!(late[1].header("Value"), Some("42"));
    assert!(t.take_late_events().is_empty());
    assert_eq!(t.channels()[0].variables[0].1, "42");
}

#[test]
fn originate_async_reports_when_the_caller_answers() {
    let mut t = tracker();
    let call = 9;
    let mut evs = t.handle(T0, &started(call, true));
    assert!(evs.is_empty());
    evs.extend(t.handle(T0, &dialing(call, Leg::A, 0)));
    // The action's reply registers while the caller's phone rings.
    let target = OriginateTarget::Exten {
        context: "from-internal".into(),
        exten: "1002".into(),
    };
    let reg = t.register_originate(
        call,
        PendingOriginate {
            action_id: Some("o1".into()),
            channel: "PJSIP/1001".into(),
            target: target.clone(),
            caller_id: Some(("1002".into(), "Click2Call".into())),
            is_async: true,
            variables: Vec::new(),
        },
    );
    assert!(reg.is_none());
    for ev in [
        CallEvent::Ringing {
            call,
            leg: Leg::A,
            branch: 0,
        },
        CallEvent::Answered {
            call,
            leg: Leg::A,
            branch: 0,
        },
        dialing(call, Leg::B, 0),
        CallEvent::Answered {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Bridged { call },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    let n = names(&evs);
    assert_eq!(
        n[..7],
        [
            "Newchannel PJSIP/1001-00000000",
            "DialBegin ",
            "Newstate PJSIP/1001-00000000 Ringing",
            "DialState  RINGING",
            "Newstate PJSIP/1001-00000000 Up",
            "DialEnd  ANSWER",
            "OriginateResponse PJSIP/1001-00000000",
        ]
    );
    let or = &evs[6];
    let pairs = wire_pairs(or);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Event",
            "Privilege",
            "ActionID",
            "Response",
            "Channel",
            "Context",
            "Exten",
            "Reason",
            "Uniqueid",
            "CallerIDNum",
            "CallerIDName"
        ]
    );
    assert_eq!(or.header("Reason"), Some("4"));
    assert_eq!(or.header("CallerIDName"), Some("Click2Call"));
    // The B leg is dialled from the answered caller channel.
    let begin = evs.iter().filter(|e| e.name == "DialBegin").nth(1).unwrap();
    assert_eq!(begin.header("Channel"), Some("PJSIP/1001-00000000"));
    assert_eq!(begin.header("DestLinkedid"), Some("1700000000.0"));
    assert!(evs.iter().any(|e| e.name == "BridgeEnter"));
}

#[test]
fn originate_failure_and_late_registration() {
    let mut t = tracker();
    let call = 4;
    let mut evs = Vec::new();
    for ev in [
        started(call, true),
        dialing(call, Leg::A, 0),
        CallEvent::BranchEnded {
            call,
            leg: Leg::A,
            branch: 0,
            status: 486,
        },
        CallEvent::Ended {
            call,
            status: 486,
            q850: 17,
            by: HungUpBy::Callee,
            answered: false,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    // Registered after the outcome: answered at once.
    let (o, ev) = t
        .register_originate(
            call,
            PendingOriginate {
                action_id: None,
                channel: "PJSIP/1001".into(),
                target: OriginateTarget::Exten {
                    context: "from-internal".into(),
                    exten: "1002".into(),
                },
                caller_id: None,
                is_async: true,
                variables: Vec::new(),
            },
        )
        .unwrap();
    assert!(!o.success);
    assert_eq!(o.reason, 5);
    let ev = ev.unwrap();
    assert_eq!(ev.header("Response"), Some("Failure"));
    assert_eq!(ev.header("Channel"), Some("PJSIP/1001"));
    assert_eq!(ev.header("Uniqueid"), Some("<null>"));
    assert!(t.channels().is_empty());
}

#[test]
fn cdr_uses_the_channel_names() {
    let mut t = tracker();
    answered_call(&mut t, 5);
    let rec = CallRecord {
        id: 5,
        call_id: "cid-5".into(),
        from: "1001".into(),
        to: "1002".into(),
        start: 1_700_000_000_000,
        answer: Some(1_700_000_004_000),
        end: 1_700_000_064_500,
        disposition: Disposition::Answered,
        hangup_cause: 200,
        q850_cause: 16,
        hung_up_by: HungUpBy::Callee,
        codec_a: None,
        codec_b: None,
    };
    let ev = t.cdr(&rec, &|ms| format!("t{ms}"));
    assert_eq!(ev.header("Channel"), Some("PJSIP/1001-00000000"));
    assert_eq!(ev.header("DestinationChannel"), Some("PJSIP/1002-00000001"));
    assert_eq!(ev.header("CallerID"), Some("\"Alice\" <1001>"));
    assert_eq!(ev.header("Duration"), Some("64"));
    assert_eq!(ev.header("BillableSeconds"), Some("60"));
    assert_eq!(ev.header("Disposition"), Some("ANSWERED"));
    assert_eq!(ev.header("UniqueID"), Some("1700000000.0"));
    assert_eq!(ev.header("AnswerTime"), Some("t1700000004000"));
}

#[test]
fn setvar_and_lookup() {
    let mut t = tracker();
    t.handle(T0, &started(1, false));
    assert!(t.set_var("PJSIP/1001-00000000", "FOO", "bar"));
    assert!(!t.set_var("PJSIP/1001-00000099", "FOO", "bar"));
    let ch = t.channels();
    assert_eq!(
        ch[0].variables,
        [
            ("SIPCALLID".to_string(), "cid-1".to_string()),
            ("FOO".to_string(), "bar".to_string())
        ]
    );
    assert_eq!(t.retain_calls(&[]), 1);
    assert!(t.channels().is_empty());
}

#[test]
fn bridge_ids_look_like_uuids() {
    let mut t = tracker();
    let id = t.bridge_id();
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12]);
    assert_ne!(id, t.bridge_id());
}

fn dialing_to(call: u64, branch: usize, number: &str) -> CallEvent {
    CallEvent::Dialing {
        call,
        leg: Leg::B,
        branch,
        number: number.into(),
        contact: "sip:x@127.0.0.1:5070".into(),
    }
}

fn redirected(call: u64, kept: Leg, answered: bool) -> CallEvent {
    CallEvent::Redirected {
        call,
        kept,
        answered,
        to: "1003".into(),
        to_name: "Carol".into(),
        context: Some("default".into()),
    }
}

/// Started, Bob rings and answers, bridged.
fn bridged_call(t: &mut ChannelTracker, call: u64) {
    for ev in [
        started(call, false),
        dialing(call, Leg::B, 0),
        CallEvent::Answered {
            call,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Bridged { call },
    ] {
        t.handle(T0, &ev);
    }
}

#[test]
fn redirect_of_the_caller_event_order() {
    let mut t = tracker();
    bridged_call(&mut t, 1);
    let (a, b, c) = (
        "PJSIP/1001-00000000",
        "PJSIP/1002-00000001",
        "PJSIP/1003-00000002",
    );
    let evs = t.handle(T0, &redirected(1, Leg::A, true));
    assert_eq!(
        names(&evs),
        [
            format!("BridgeLeave {a}"),
            format!("BridgeLeave {b}"),
            "BridgeDestroy ".to_string(),
            format!("SoftHangupRequest {b}"),
            format!("Hangup {b}"),
            format!("Newexten {a}"),
        ]
    );
    assert_eq!(evs[3].header("Cause"), Some("16"));
    assert_eq!(evs[4].header("Cause"), Some("16"));
    assert_eq!(evs[5].header("Extension"), Some("1003"));
    assert_eq!(evs[5].header("Context"), Some("default"));
    assert_eq!(evs[5].header("AppData"), Some("PJSIP/1003,30"));
    assert_eq!(evs[1].header("BridgeNumChannels"), Some("0"));
    // Only Alice is left, dialling Carol.
    let live: Vec<String> = t.channels().into_iter().map(|c| c.name).collect();
    assert_eq!(live, [a]);
    assert_eq!(t.channels()[0].exten, "1003");
    assert_eq!(t.endpoint_state("1002"), None);
    let mut evs = Vec::new();
    for ev in [
        dialing_to(1, 0, "1003"),
        CallEvent::Ringing {
            call: 1,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Answered {
            call: 1,
            leg: Leg::B,
            branch: 0,
        },
        CallEvent::Bridged { call: 1 },
        CallEvent::Ended {
            call: 1,
            status: 200,
            q850: 16,
            by: HungUpBy::Caller,
            answered: true,
        },
    ] {
        evs.extend(t.handle(T0, &ev));
    }
    assert_eq!(
        names(&evs),
        [
            format!("Newchannel {c}"),
            format!("NewCallerid {c}"),
            format!("NewConnectedLine {c}"),
            format!("DialBegin {a}"),
            format!("Newstate {c} Ringing"),
            format!("DialState {a} RINGING"),
            format!("NewCallerid {c}"),
            format!("Newstate {c} Up"),
            format!("DialEnd {a} ANSWER"),
            format!("NewConnectedLine {a}"),
            "BridgeCreate ".to_string(),
            format!("BridgeEnter {a}"),
            format!("BridgeEnter {c}"),
            format!("HangupRequest {a}"),
            format!("SoftHangupRequest {c}"),
            format!("BridgeLeave {a}"),
            format!("BridgeLeave {c}"),
            "BridgeDestroy ".to_string(),
            format!("Hangup {a}"),
            format!("Hangup {c}"),
        ]
    );
    // The new callee's channel is linked to the call and dialled by Alice.
    assert_eq!(evs[3].header("DestChannel"), Some(c));
    assert_eq!(evs[9].header("ConnectedLineNum"), Some("1003"));
    assert_eq!(t.call_count(), 0);
}

#[test]
fn redirect_of_the_callee_makes_it_the_caller() {
    let mut t = tracker();
    bridged_call(&mut t, 1);
    let (a, b, c) = (
        "PJSIP/1001-00000000",
        "PJSIP/1002-00000001",
        "PJSIP/1003-00000002",
    );
    assert_eq!(t.leg_of(b), Some((1, Leg::B, true)));
    let evs = t.handle(T0, &redirected(1, Leg::B, true));
    assert_eq!(
        names(&evs),
        [
            format!("BridgeLeave {b}"),
            format!("BridgeLeave {a}"),
            "BridgeDestroy ".to_string(),
            format!("SoftHangupRequest {a}"),
            format!("Hangup {a}"),
            format!("Newexten {b}"),
        ]
    );
    assert_eq!(t.leg_of(b), Some((1, Leg::A, true)));
    assert_eq!(t.leg_of(a), None);
    let evs = t.handle(T0, &dialing_to(1, 0, "1003"));
    let begin = evs.iter().find(|e| e.name == "DialBegin").unwrap();
    assert_eq!(begin.header("Channel"), Some(b));
    assert_eq!(begin.header("DestChannel"), Some(c));
    let conn = evs.iter().find(|e| e.name == "NewConnectedLine").unwrap();
    assert_eq!(conn.header("ConnectedLineNum"), Some("1002"));
    assert_eq!(t.leg_of(c), Some((1, Leg::B, false)));
}

#[test]
fn redirect_of_a_ringing_caller_ends_the_callee_branches() {
    let mut t = tracker();
    t.handle(T0, &started(1, false));
    t.handle(T0, &dialing(1, Leg::B, 0));
    t.handle(T0, &dialing(1, Leg::B, 1));
    let (a, b0, b1) = (
        "PJSIP/1001-00000000",
        "PJSIP/1002-00000001",
        "PJSIP/1002-00000002",
    );
    assert_eq!(t.leg_of(b0), Some((1, Leg::B, false)));
    let mut evs = Vec::new();
    for branch in [0, 1] {
        evs.extend(t.handle(
            T0,
            &CallEvent::BranchEnded {
                call: 1,
                leg: Leg::B,
                branch,
                status: 487,
            },
        ));
    }
    assert!(evs.is_empty(), "deferred until the call's fate is known");
    let evs = t.handle(T0, &redirected(1, Leg::A, false));
    assert_eq!(
        names(&evs),
        [
            format!("DialEnd {a} CANCEL"),
            format!("Hangup {b0}"),
            format!("DialEnd {a} CANCEL"),
            format!("Hangup {b1}"),
            format!("Newexten {a}"),
        ]
    );
    let evs = t.handle(T0, &dialing_to(1, 0, "1003"));
    assert!(names(&evs).contains(&format!("DialBegin {a}")));
    assert_eq!(t.channels().len(), 2);
}
