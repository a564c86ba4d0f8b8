//! Golden tests: the constructors against shared/fixtures/ami/ami_transcripts_constructed.txt.

use super::*;
use crate::ami::test_fixture;

/// The server blocks (`<<`) of the transcript file, LF line ends, without trailing blank lines.
pub(crate) fn server_blocks() -> Option<Vec<String>> {
    let text = test_fixture("ami/ami_transcripts_constructed.txt")?;
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line == "<<" || line == ">>" || line.starts_with("###") {
            if let Some(b) = cur.take() {
                blocks.push(b.join("\n").trim_end_matches('\n').to_string());
            }
            if line == "<<" {
                cur = Some(Vec::new());
            }
            continue;
        }
        if let Some(b) = cur.as_mut() {
            b.push(line);
        }
    }
    if let Some(b) = cur {
        blocks.push(b.join("\n").trim_end_matches('\n').to_string());
    }
    Some(blocks)
}

pub(crate) fn block(prefix: &str) -> Option<String> {
    let blocks = server_blocks()?;
    let found = blocks.into_iter().find(|b| b.starts_with(prefix));
    assert!(
        found.is_some(),
        "no transcript block starts with {prefix:?}"
    );
    found
}

pub(crate) fn lf(wire: &str) -> String {
    wire.replace("\r\n", "\n")
        .trim_end_matches('\n')
        .to_string()
}

fn golden(ev: &AmiEvent) {
    let first = format!("Event: {}\n", ev.name);
    let Some(want) = block(&first) else { return };
    assert_eq!(lf(&ev.to_wire()), want);
}

fn alice(state: ChannelState) -> ChannelSnapshot {
    let mut c = ChannelSnapshot::new(channel_name("1001", 0), uniqueid(1_700_000_000, 0));
    c.state = state;
    c.caller_id_num = "1001".into();
    c.caller_id_name = "Alice".into();
    c.context = "from-internal".into();
    c.exten = "1002".into();
    c
}

fn bob(state: ChannelState, name: &str) -> ChannelSnapshot {
    let mut c = ChannelSnapshot::new(channel_name("1002", 1), "1700000000.1");
    c.linkedid = "1700000000.0".into();
    c.state = state;
    c.caller_id_num = "1002".into();
    c.caller_id_name = name.into();
    c.connected_line_num = "1001".into();
    c.connected_line_name = "Alice".into();
    c.context = "from-internal".into();
    c.exten = "1002".into();
    c
}

#[test]
fn channel_events_match_transcripts() {
    golden(&newchannel(&alice(ChannelState::Ring)));
    let mut up = alice(ChannelState::Up);
    up.connected_line_num = "1002".into();
    up.connected_line_name = "Bob".into();
    up.priority = 2;
    golden(&hangup(&up, 16));
    golden(&dial_begin(
        Some(&alice(ChannelState::Ring)),
        &bob(ChannelState::Down, ""),
        "1002",
    ));
    golden(&dial_end(
        Some(&alice(ChannelState::Ring)),
        &bob(ChannelState::Up, "Bob"),
        "ANSWER",
        None,
    ));
    let bridge = BridgeSnapshot::basic("1b7c8f1e-3e4f-4b7e-9c1a-0d2f7c6b5a41", 1);
    golden(&bridge_enter(&bridge, &alice(ChannelState::Ring), None));
}

#[test]
fn system_events_match_transcripts() {
    golden(&fully_booted(3600, 3600));
    golden(&contact_status(
        "sip:1001@192.0.2.50:5060;ob",
        ContactState::Reachable,
        "1001",
        "1001",
        Some(12_345),
    ));
    golden(&peer_status("1001", true));
    golden(&device_state_change("PJSIP/1001", DeviceState::InUse));
    golden(&extension_status("1001", "ext-local", "PJSIP/1001", 1));
    golden(&originate_response(&OriginateReport {
        action_id: Some("o1".into()),
        success: true,
        channel: "PJSIP/1001-00000003".into(),
        target: OriginateTarget::Exten {
            context: "from-internal".into(),
            exten: "1002".into(),
        },
        reason: 4,
        uniqueid: "1700000000.7".into(),
        caller_id_num: "1002".into(),
        caller_id_name: "Click2Call".into(),
    }));
}

#[test]
fn other_event_shapes() {
    let c = alice(ChannelState::Up);
    let names = |ev: &AmiEvent| {
        ev.body
            .iter()
            .map(|(k, _)| k.to_string())
            .collect::<Vec<_>>()
    };
    let h = hangup(&c, 17);
    assert_eq!(h.header("Cause-txt"), Some("User busy"));
    let d = dtmf_end(&c, '5', 120, DtmfDirection::Received);
    assert_eq!(d.class, crate::ami::perms::DTMF);
    assert_eq!(&names(&d)[14..], ["Digit", "DurationMs", "Direction"]);
    let b = BridgeSnapshot::basic("b1", 2);
    let l = bridge_leave(&b, &c);
    assert_eq!(names(&l)[..7], names(&bridge_create(&b))[..]);
    assert_eq!(
        new_callerid(&c, 0).header("CID-CallingPres"),
        Some("0 (Presentation Allowed, Not Screened)")
    );
    let mut esc = c.clone();
    esc.caller_id_name = "Bob \"B\"\nX".into();
    assert_eq!(
        newchannel(&esc).header("CallerIDName"),
        Some("Bob \\\"B\\\"\\nX")
    );
    let cdr_ev = cdr(&CdrFields {
        source: "1001".into(),
        disposition: "ANSWERED".into(),
        ..CdrFields::default()
    });
    assert_eq!(cdr_ev.class, crate::ami::perms::CDR);
    assert_eq!(cdr_ev.body.len(), 18);
    assert!(
        cdr_ev
            .to_wire()
            .starts_with("Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: \r\n")
    );
    assert_eq!(sip_to_cause(486), 17);
    assert_eq!(
        cause_text(sip_to_cause(404)),
        "Unallocated (unassigned) number"
    );
}
