use super::*;
use crate::ami::events::{ChannelSnapshot, ChannelState, ContactState, DeviceState};
use crate::ami::model::*;
use crate::ami::test_fixture;

fn contact(aor: &str, uri: &str, rtt_usec: u64) -> Contact {
    Contact {
        aor: aor.into(),
        uri: uri.into(),
        endpoint: aor.into(),
        status: ContactState::Reachable,
        rtt_usec: Some(rtt_usec),
        ..Contact::default()
    }
}

fn auth(id: &str, user: &str) -> Auth {
    Auth {
        id: id.into(),
        username: user.into(),
        ..Auth::default()
    }
}

/// The PBX the fixtures under shared/fixtures/cli were generated from.
pub(crate) fn fixture_snapshot() -> Snapshot {
    let e1001 = Endpoint {
        id: "1001".into(),
        callerid_num: "1001".into(),
        transport: "transport-udp".into(),
        aors: vec![Aor {
            id: "1001".into(),
            max_contacts: 1,
            contacts: vec![contact("1001", "sip:1001@192.0.2.50:5060;ob", 12_345)],
            options: vec![],
        }],
        auths: vec![auth("1001", "1001")],
        device_state: DeviceState::NotInUse,
        options: vec![
            ("allow".into(), "(ulaw|alaw)".into()),
            ("100rel".into(), "yes".into()),
            ("context".into(), "from-internal".into()),
        ],
        ..Endpoint::default()
    };
    let e1002 = Endpoint {
        id: "1002".into(),
        transport: "transport-udp".into(),
        aors: vec![Aor {
            id: "1002".into(),
            max_contacts: 1,
            ..Aor::default()
        }],
        auths: vec![auth("1002", "1002")],
        device_state: DeviceState::Unavailable,
        ..Endpoint::default()
    };
    let trunk = Endpoint {
        id: "trunk".into(),
        transport: "transport-udp".into(),
        aors: vec![Aor {
            id: "trunk".into(),
            max_contacts: 0,
            contacts: vec![Contact {
                permanent: true,
                ..contact("trunk", "sip:sip.example.com", 23_456)
            }],
            options: vec![],
        }],
        outbound_auths: vec![auth("trunk-auth", "myuser")],
        identifies: vec![Identify {
            id: "trunk-identify".into(),
            endpoint: "trunk".into(),
            matches: vec!["203.0.113.10/32".into()],
        }],
        device_state: DeviceState::NotInUse,
        device_state_busy_at: 1,
        ..Endpoint::default()
    };
    let mut c1 = ChannelSnapshot::new("PJSIP/1001-00000001", "1700000000.1");
    c1.state = ChannelState::Up;
    c1.context = "from-internal".into();
    c1.exten = "1002".into();
    c1.priority = 2;
    c1.application = "Dial".into();
    c1.app_data = "PJSIP/1002,30".into();
    c1.caller_id_num = "1001".into();
    c1.created_unix = 1_700_000_000.0 - 42.0;
    c1.bridge_id = "c0d4f8a6-1b5e-4b9e-9b1a-2f0c6a2b9f11".into();
    c1.endpoint = "1001".into();
    let mut c2 = ChannelSnapshot::new("PJSIP/1002-00000002", "1700000000.2");
    c2.state = ChannelState::Up;
    c2.application = "AppDial".into();
    c2.app_data = "(Outgoing Line)".into();
    c2.endpoint = "1002".into();
    let dial = |p: i32, app: &str, data: &str, line: u32| DialplanPriority {
        priority: p,
        label: None,
        app: app.into(),
        data: data.into(),
        source: Some(("extensions.conf".into(), line)),
    };
    Snapshot {
        now_unix: 1_700_000_000.0,
        started_unix: 1_699_996_400.0,
        last_reload_unix: 1_699_999_000.0,
        endpoints: vec![e1001, e1002, trunk],
        transports: vec![Transport {
            id: "transport-udp".into(),
            protocol: "udp".into(),
            bind: "0.0.0.0:5060".into(),
            ..Transport::default()
        }],
        channels: vec![c1, c2],
        contexts: vec![DialplanContext {
            name: "from-internal".into(),
            registrar: "pbx_config".into(),
            extensions: vec![
                DialplanExten {
                    name: "1001".into(),
                    cid: None,
                    priorities: vec![
                        dial(-1, "PJSIP/1001", "", 11),
                        dial(1, "Dial", "PJSIP/1001,30", 12),
                        dial(2, "Hangup", "", 13),
                    ],
                },
                DialplanExten {
                    name: "_1XXX".into(),
                    cid: None,
                    priorities: vec![
                        dial(1, "NoOp", "${EXTEN}", 15),
                        DialplanPriority {
                            label: Some("dial".into()),
                            ..dial(2, "Dial", "PJSIP/${EXTEN}", 16)
                        },
                    ],
                },
            ],
            includes: vec!["parkedcalls".into()],
        }],
        hints: vec![
            Hint {
                exten: "1001".into(),
                context: "ext-local".into(),
                hint: "PJSIP/1001".into(),
                state: 0,
                presence: "not_set".into(),
                watchers: 0,
            },
            Hint {
                exten: "1002".into(),
                context: "ext-local".into(),
                hint: "PJSIP/1002".into(),
                state: 4,
                presence: "not_set".into(),
                watchers: 0,
            },
        ],
        active_calls: 1,
        processed_calls: 7,
        ..Snapshot::default()
    }
}

fn check(fixture: &str, got: &str) {
    let Some(want) = test_fixture(&format!("cli/{fixture}")) else {
        return;
    };
    if want != got {
        for (i, (a, b)) in want.lines().zip(got.lines()).enumerate() {
            if a != b {
                panic!(
                    "{fixture} line {}:\nwant {a:?}\ngot  {b:?}\n\nfull:\n{got}",
                    i + 1
                );
            }
        }
        panic!("{fixture}: line count/ending differs\nwant {want:?}\ngot  {got:?}");
    }
}

#[test]
fn pjsip_tables_match_fixtures() {
    let s = fixture_snapshot();
    let mut no_chan = s.clone();
    no_chan.channels.clear();
    check(
        "pjsip_show_endpoints.txt",
        &run("pjsip show endpoints", &no_chan).text,
    );
    check(
        "pjsip_show_contacts.txt",
        &run("pjsip show contacts", &s).text,
    );
    check("pjsip_show_aors.txt", &run("pjsip show aors", &s).text);
    check(
        "pjsip_show_transports.txt",
        &run("pjsip show transports", &s).text,
    );
}

#[test]
fn endpoint_channel_lines_match_fixture() {
    let s = fixture_snapshot();
    let mut c = s.channels[0].clone();
    c.created_unix = s.now_unix - 12.0;
    c.connected_line_name = "Bob".into();
    c.connected_line_num = "1002".into();
    check(
        "pjsip_show_endpoints_channel_lines.txt",
        &channel_lines(1, &c, s.now_unix),
    );
}

#[test]
fn core_show_matches_fixtures() {
    let s = fixture_snapshot();
    check(
        "core_show_channels.txt",
        &run("core show channels", &s).text,
    );
    let mut one = s.clone();
    one.channels.truncate(1);
    check(
        "core_show_channels_concise.txt",
        &run("core show channels concise", &one).text,
    );
    check("core_show_hints.txt", &run("core show hints", &s).text);
    check(
        "dialplan_show_context.txt",
        &run("dialplan show from-internal", &s).text,
    );
}

#[test]
fn other_commands() {
    let s = fixture_snapshot();
    let v = run("core show version", &s);
    assert!(v.ok && v.text.starts_with("Asterisk 22."), "{}", v.text);
    let u = run("core show uptime", &s).text;
    assert_eq!(
        u,
        "System uptime: 1 hour\nLast reload: 16 minutes, 40 seconds\n"
    );
    assert_eq!(
        run("core show uptime seconds", &s).text,
        "System uptime: 3600\nLast reload: 1000\n"
    );
    assert_eq!(
        run("core show calls", &s).text,
        "1 active call\n7 calls processed\n"
    );
    let bad = run("sip show peers", &s);
    assert!(!bad.ok);
    assert_eq!(
        bad.text,
        "No such command 'sip show peers' (type 'core show help sip show peers' for other possible commands)\n"
    );
    let one = run("dialplan show 1001@from-internal", &s).text;
    assert!(
        one.ends_with("-= 1 extension (3 priorities) in 1 context. =-\n"),
        "{one}"
    );
    assert_eq!(
        run("dialplan show nowhere", &s).text,
        "There is no existence of 'nowhere' context\n"
    );
    let m = run("module show like pjsip", &s).text;
    assert!(m.contains("res_pjsip.so"), "{m}");
    assert!(m.ends_with("5 modules loaded\n"), "{m}");
    let e = run("pjsip show endpoint 1001", &s).text;
    assert!(
        e.contains("\n\n\n ParameterName : ParameterValue\n ================"),
        "{e}"
    );
    assert!(
        e.contains(" 100rel        : yes\n allow         : (ulaw|alaw)\n"),
        "{e}"
    );
    assert_eq!(
        run("pjsip show endpoint 9999", &s).text,
        "Unable to find object 9999.\n\n"
    );
    let r = run("pjsip show registrations", &s).text;
    assert!(r.ends_with("=\n\nNo objects found.\n\n"), "{r}");
    let v = run("core show channels verbose", &s).text;
    assert!(v.starts_with("Channel "), "{v}");
    assert!(v.ends_with("2 active channels\n1 active call\n7 calls processed\n"));
    assert_eq!(
        reload_command("module reload res_pjsip.so"),
        Some(CliReload::Module(Some("res_pjsip.so".into())))
    );
    assert_eq!(
        reload_output("module reload res_pjsip.so", Ok(())).text,
        "Module 'res_pjsip.so' reloaded successfully.\n"
    );
    assert_eq!(known_module("res_pjsip"), Some("res_pjsip.so"));
    assert_eq!(known_module("app_queue.so"), None);
}
