//! Bodies against the RFC examples in `../shared/conformance/bodies/` (read at test time):
//! same root element and namespace, the attributes the schemas require, and readable by an
//! XML parser.

use super::*;

fn shared_body(name: &str) -> Option<String> {
    let manifest = env!("CARGO_MANIFEST_DIR");
    for base in [format!("{manifest}/../shared"), "/work/shared".to_string()] {
        if let Ok(s) = std::fs::read_to_string(format!("{base}/conformance/bodies/{name}")) {
            return Some(s);
        }
    }
    eprintln!("note: ../shared/conformance/bodies/{name} not found; RFC comparison skipped");
    None
}

fn root_info(xml: &str) -> (String, String, Vec<String>) {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let r = doc.root_element();
    let mut attrs: Vec<String> = r.attributes().map(|a| a.name().to_owned()).collect();
    attrs.sort();
    (
        r.tag_name().name().to_owned(),
        r.tag_name().namespace().unwrap_or("").to_owned(),
        attrs,
    )
}

fn ringing(from: &str) -> DialogView {
    DialogView {
        id: "c1-b".into(),
        call_id: "abc@host".into(),
        local_tag: Some("lt".into()),
        remote_tag: Some("rt".into()),
        initiator: false,
        state: DialogState::Early,
        local: Party {
            uri: "sip:1002@pbx".into(),
            display: Some("Bob".into()),
        },
        remote: Party {
            uri: format!("sip:{from}@pbx"),
            display: Some("Alice & Co".into()),
        },
        held: false,
        duration: None,
    }
}

#[test]
fn dialog_info_matches_rfc4235_shape() {
    let ours = dialog_info("sip:1002@pbx", 3, &[ringing("1001")]);
    let (name, ns, attrs) = root_info(&ours);
    assert_eq!(name, "dialog-info");
    assert_eq!(ns, "urn:ietf:params:xml:ns:dialog-info");
    for a in ["version", "state", "entity"] {
        assert!(attrs.contains(&a.to_string()), "{a} missing: {attrs:?}");
    }
    if let Some(rfc) = shared_body("rfc4235-s6.1-v1-full-early.xml") {
        let (rname, rns, rattrs) = root_info(&rfc);
        assert_eq!((rname, rns), (name, ns));
        assert_eq!(rattrs, attrs, "same root attributes as the RFC example");
        // The dialog element carries the same attributes as the RFC's early dialog.
        let rd = roxmltree::Document::parse(&rfc).unwrap();
        let od = roxmltree::Document::parse(&ours).unwrap();
        let names = |d: &roxmltree::Document| {
            let mut v: Vec<String> = d
                .descendants()
                .find(|n| n.has_tag_name("dialog"))
                .unwrap()
                .attributes()
                .map(|a| a.name().to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&od), names(&rd));
    }
    let doc = roxmltree::Document::parse(&ours).unwrap();
    let state = doc.descendants().find(|n| n.has_tag_name("state")).unwrap();
    assert_eq!(state.text(), Some("early"));
    let id = doc
        .descendants()
        .find(|n| n.has_tag_name("identity") && n.parent().unwrap().has_tag_name("remote"))
        .unwrap();
    assert_eq!(id.attribute("display"), Some("Alice & Co"));
    assert_eq!(id.text(), Some("sip:1001@pbx"));
    // Idle: a full document with no dialog.
    let idle = dialog_info("sip:1002@pbx", 1, &[]);
    let doc = roxmltree::Document::parse(&idle).unwrap();
    assert!(doc.descendants().all(|n| !n.has_tag_name("dialog")));
}

#[test]
fn dialog_info_on_hold_marks_the_local_target() {
    let mut d = ringing("1001");
    d.state = DialogState::Confirmed;
    d.held = true;
    d.duration = Some(12);
    let xml = dialog_info("sip:1002@pbx", 2, &[d]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let p = doc.descendants().find(|n| n.has_tag_name("param")).unwrap();
    assert_eq!(p.attribute("pname"), Some("+sip.rendering"));
    assert_eq!(p.attribute("pvalue"), Some("no"));
    assert!(p.ancestors().any(|a| a.has_tag_name("local")));
    if let Some(rfc) = shared_body("rfc4235-s4.2-sample-full-confirmed.xml") {
        // Same element layout as the RFC's confirmed dialog: state, duration, local, remote.
        let order = |xml: &str| {
            let d = roxmltree::Document::parse(xml).unwrap();
            d.descendants()
                .find(|n| n.has_tag_name("dialog"))
                .unwrap()
                .children()
                .filter(|c| c.is_element())
                .map(|c| c.tag_name().name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&xml), order(&rfc));
    }
}

#[test]
fn pidf_matches_rfc3863_and_carries_rpid() {
    let v = PresenceView {
        open: true,
        status: PresenceStatus::Away,
        on_the_phone: false,
        note: Some("Back at 3".into()),
    };
    let ours = pidf("sip:1001@pbx", "sip:1001@pbx", "1001", &v);
    let (name, ns, attrs) = root_info(&ours);
    assert_eq!(
        (name.as_str(), ns.as_str()),
        ("presence", "urn:ietf:params:xml:ns:pidf")
    );
    assert_eq!(attrs, ["entity"]);
    if let Some(rfc) = shared_body("rfc3863-s4.2.2-simple-default-ns.pidf.xml") {
        let (rname, rns, rattrs) = root_info(&rfc);
        assert_eq!((rname, rns, rattrs), (name, ns, attrs));
    }
    let doc = roxmltree::Document::parse(&ours).unwrap();
    let basic = doc.descendants().find(|n| n.has_tag_name("basic")).unwrap();
    assert_eq!(basic.text(), Some("open"));
    let act = doc
        .descendants()
        .find(|n| n.has_tag_name(("urn:ietf:params:xml:ns:pidf:rpid", "away")));
    assert!(act.is_some(), "{ours}");
    // What we publish reads back the same.
    assert_eq!(
        parse_published(&ours).unwrap(),
        (PresenceStatus::Away, Some("Back at 3".into()))
    );
    let off = PresenceView {
        open: false,
        status: PresenceStatus::Offline,
        on_the_phone: false,
        note: None,
    };
    assert!(pidf("sip:1@h", "sip:1@h", "1", &off).contains("<basic>closed</basic>"));
}

#[test]
fn published_rfc_documents_are_understood() {
    for (file, want) in [
        (
            "rfc3863-s4.2.2-simple-default-ns.pidf.xml",
            PresenceStatus::Available,
        ),
        (
            "rfc3863-s4.3.1-status-extensions.pidf.xml",
            PresenceStatus::Available,
        ),
        (
            "rfc3863-s4.3.3-mustunderstand.pidf.xml",
            PresenceStatus::Available,
        ),
    ] {
        if let Some(body) = shared_body(file) {
            assert_eq!(parse_published(&body).map(|r| r.0), Ok(want), "{file}");
        }
    }
    assert!(parse_published("<nope/>").is_err());
    assert!(parse_published("not xml").is_err());
}

#[test]
fn message_summary_matches_rfc3842_layout() {
    let ours = message_summary("sip:1001@pbx", (2, 8, 0, 2));
    if let Some(rfc) = shared_body("rfc3842-s4.1-A3-initial.msgsum.txt") {
        let keys = |s: &str| {
            s.lines()
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&ours), keys(&rfc));
        let vm = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("Voice-Message"))
                .unwrap()
                .to_owned()
        };
        assert_eq!(vm(&ours), vm(&rfc));
    }
    assert!(ours.starts_with("Messages-Waiting: yes\r\n"));
    assert!(message_summary("sip:1@h", (0, 0, 0, 0)).starts_with("Messages-Waiting: no\r\n"));
}

#[test]
fn xpidf_and_states() {
    let v = PresenceView {
        open: true,
        status: PresenceStatus::Available,
        on_the_phone: true,
        note: None,
    };
    let x = xpidf("sip:1001@pbx", "sip:1001@pbx", "1001", &v);
    assert!(x.contains("<status status=\"open\" />"));
    assert!(x.contains("substatus=\"onthephone\""));
    assert_eq!(
        PresenceStatus::parse("DO_NOT_DISTURB"),
        Some(PresenceStatus::DoNotDisturb)
    );
    assert_eq!(PresenceStatus::parse("lunch"), None);
    assert_eq!(DeviceState::RingInUse.extension_status(), 9);
    assert_eq!(DeviceState::NotInUse.as_str(), "NOT_INUSE");
}
