//! pjsip.conf grammar, import model and export tests. The shared fixtures are read at test
//! time (the Asterisk samples are GPL and never copied into the repository).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::export::{
    BEGIN_MARKER, END_MARKER, export_extensions_conf, export_pjsip, merge_into, written_sections,
};
use super::model::{Changes, apply_codecs, callerid_name, diff, extension_number, import};
use super::parse::{NoFiles, ParseOptions, parse_file, parse_str};
use super::*;
use crate::pbx::directory::Extension;

/// `<manifest>/../shared`, `<manifest>/../../shared` or `/work/shared`.
pub(crate) fn shared_dir() -> Option<PathBuf> {
    let m = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        m.join("../shared"),
        m.join("../../shared"),
        PathBuf::from("/work/shared"),
    ]
    .into_iter()
    .find(|p| p.join("fixtures").is_dir())
}

fn fixture(rel: &str) -> Option<String> {
    let Some(dir) = shared_dir() else {
        eprintln!("note: shared fixtures not found; skipping");
        return None;
    };
    std::fs::read_to_string(dir.join("fixtures").join(rel)).ok()
}

fn parse(text: &str) -> Result<Conf, ConfError> {
    parse_str(
        &NoFiles,
        Path::new("pjsip.conf"),
        text,
        ParseOptions::default(),
    )
}

fn cat<'a>(conf: &'a Conf, name: &str, kind: &str) -> &'a Category {
    conf.categories
        .iter()
        .find(|c| !c.disabled && c.name == name && c.kind().as_deref() == Some(kind))
        .unwrap_or_else(|| panic!("no [{name}] type={kind}"))
}

fn vals<'a>(c: &'a Category, key: &'a str) -> Vec<&'a str> {
    c.get_all(key).collect()
}

// ---------------------------------------------------------------------------------------------
// The grammar cases fixture: one assertion per EXPECT.

#[test]
fn grammar_cases_every_expect() {
    let Some(text) = fixture("pjsip/pjsip_grammar_cases.conf") else {
        return;
    };
    let conf = parse(&text).expect("grammar cases parse");
    // Block comments (nested) hide [not_a_section].
    assert!(!conf.categories.iter().any(|c| c.name == "not_a_section"));
    // Inline comment stripped.
    assert_eq!(
        cat(&conf, "global", "global").get("user_agent"),
        Some("RustPBX")
    );
    // Repeated key accumulates.
    assert_eq!(
        vals(cat(&conf, "transport-udp", "transport"), "local_net"),
        ["192.168.0.0/16", "10.0.0.0/8"]
    );
    // Template: skipped by sorcery.
    let tmpl = conf
        .categories
        .iter()
        .find(|c| c.name == "endpoint-basic")
        .unwrap();
    assert!(tmpl.template);
    assert!(!conf.objects().any(|c| c.name == "endpoint-basic"));
    // allow accumulates in the template.
    assert_eq!(vals(tmpl, "allow"), ["ulaw", "alaw,g722"]);
    // [1001](endpoint-basic): template vars first (inherited), own vars after.
    let e1001 = cat(&conf, "1001", "endpoint");
    assert!(e1001.vars[0].inherited && e1001.vars[0].name == "type");
    let first_own = e1001.vars.iter().position(|v| !v.inherited).unwrap();
    assert!(e1001.vars[..first_own].iter().all(|v| v.inherited));
    assert_eq!(e1001.vars[first_own].name, "auth");
    assert_eq!(vals(e1001, "allow"), ["ulaw", "alaw,g722", "opus"]);
    assert_eq!(e1001.get("context"), Some("from-sales"));
    // Quotes are literal.
    assert_eq!(e1001.get("callerid"), Some("\"Alice Example\" <1001>"));
    // \; is a literal ';'.
    assert_eq!(
        cat(&conf, "1001", "auth").get("password"),
        Some("s3cr3t;with;semicolons")
    );
    // Multiple inheritance left to right: language en then fr -> fr.
    let e1002 = cat(&conf, "1002", "endpoint");
    assert_eq!(vals(e1002, "language"), ["en", "fr"]);
    assert_eq!(e1002.get("language"), Some("fr"));
    // (+) appends to the FIRST [1002] (the endpoint); set_var accumulates.
    assert_eq!(vals(e1002, "set_var"), ["GREETING=hello", "TEAM=blue"]);
    assert!(cat(&conf, "1002", "auth").get("set_var").is_none());
    // += appends raw text to the last "allow".
    let e1003 = cat(&conf, "1003", "endpoint");
    assert_eq!(vals(e1003, "allow"), ["ulaw", "alaw,g722", "ulaw,gsm"]);
    // Static contact on the aor.
    assert_eq!(
        cat(&conf, "1003", "aor").get("contact"),
        Some("sip:1003@192.0.2.33:5060")
    );
    // "=>" is "=" with the object flag.
    let ta = cat(&conf, "trunk-auth", "auth");
    assert_eq!(ta.get("username"), Some("acct123"));
    assert!(ta.vars.iter().all(|v| v.object));
    // match accumulates.
    assert_eq!(
        vals(cat(&conf, "trunk-identify", "identify"), "match"),
        ["203.0.113.10", "198.51.100.0/24"]
    );
    // Raw category name.
    assert_eq!(
        cat(&conf, "weird name with spaces", "aor").get("max_contacts"),
        Some("1")
    );
    // "[1004] (endpoint-basic)" is not inheritance.
    let e1004 = cat(&conf, "1004", "endpoint");
    assert!(e1004.inherits.is_empty());
    assert_eq!(e1004.vars.len(), 2);
    assert!(e1004.get("context").is_none());
    // Same name, three types.
    for k in ["endpoint", "auth", "aor"] {
        cat(&conf, "1001", k);
    }

    // The import model.
    let m = import(&conf).expect("import");
    let nums: Vec<&str> = m.extensions.iter().map(|e| e.number.as_str()).collect();
    assert_eq!(nums, ["1001", "1002"], "{}", m.report.render());
    let a = &m.extensions[0];
    assert_eq!(a.codecs, ["ulaw", "alaw", "g722", "opus"]);
    assert_eq!(a.context, "from-sales");
    assert_eq!(a.secret, "s3cr3t;with;semicolons");
    assert_eq!(a.name, "Alice Example");
    assert_eq!(a.caller_id, None);
    assert_eq!(a.mailboxes.as_deref(), Some("1001@default"));
    assert!(!a.direct_media && a.rtp_symmetric && a.force_rport && a.rewrite_contact);
    assert_eq!(
        (a.max_contacts, a.remove_existing, a.qualify_frequency),
        (1, true, 60)
    );
    let b = &m.extensions[1];
    assert!(
        b.pjsip_extra
            .endpoint
            .contains(&("language".into(), "fr".into()))
    );
    assert_eq!(
        b.pjsip_extra
            .endpoint
            .iter()
            .filter(|(k, _)| k == "set_var")
            .count(),
        2
    );
    // 1003 and 1004 have no auth: kept as objects.
    assert!(
        m.objects
            .iter()
            .any(|o| o.kind == "endpoint" && o.name == "1003")
    );
    assert!(
        m.objects
            .iter()
            .any(|o| o.kind == "endpoint" && o.name == "1004")
    );
    let t = m.transports();
    assert_eq!(t[0].local_net, ["192.168.0.0/16", "10.0.0.0/8"]);
    assert_eq!(t[0].external_media_address.as_deref(), Some("203.0.113.5"));
    assert_eq!(model::identifies(&m.objects)[0].matches.len(), 2);
    assert_eq!(
        model::registrations(&m.objects)[0].server_uri.as_deref(),
        Some("sip:sip.example.com")
    );
    assert!(m.report.not_in_effect.contains_key("endpoint language"));
    assert!(m.report.not_in_effect.contains_key("transport local_net"));
}

#[test]
fn grammar_cases_round_trip() {
    let Some(text) = fixture("pjsip/pjsip_grammar_cases.conf") else {
        return;
    };
    let m1 = import(&parse(&text).unwrap()).unwrap();
    for layout in [Layout::Rayanpbx, Layout::Freepbx] {
        let m2 = reimport(&m1, layout);
        assert_eq!(m1.extensions, m2.extensions, "{layout:?}");
        assert_eq!(sorted(&m1.objects), sorted(&m2.objects), "{layout:?}");
    }
}

/// Objects by (type, name): Asterisk does not depend on their order.
fn sorted(objects: &[PjsipObject]) -> Vec<PjsipObject> {
    let mut v = objects.to_vec();
    v.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    v
}

/// export then import, through a MemSource holding every exported file.
fn reimport(m: &ImportModel, layout: Layout) -> ImportModel {
    let opts = ExportOptions {
        layout,
        ..ExportOptions::default()
    };
    let files = export_pjsip(&m.extensions, &m.objects, &opts);
    let mut src = MemSource::new();
    for f in &files {
        src.files.insert(
            PathBuf::from("/etc/asterisk").join(&f.name),
            f.content.clone(),
        );
    }
    let conf = parse_file(
        &src,
        Path::new("/etc/asterisk/pjsip.conf"),
        ParseOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", files[0].content));
    import(&conf).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// Grammar details.

#[test]
fn comments_and_escapes() {
    let mut d = 0;
    assert_eq!(
        strip("a=b ; c", &mut d),
        ("a=b ".to_owned(), Some(" c".to_owned()))
    );
    assert_eq!(strip("a=x\\;y", &mut d).0, "a=x;y");
    assert_eq!(strip("a=1 ;-- open", &mut d).0, "a=1 ");
    assert_eq!(d, 1);
    assert_eq!(strip("still inside --; b=2", &mut d).0, " b=2");
    assert_eq!(d, 0);
    // ";---" does not open a block comment.
    assert_eq!(
        strip("x=1 ;--- rule", &mut d),
        ("x=1 ".to_owned(), Some("--- rule".to_owned()))
    );
    assert_eq!(d, 0);
    fn strip(l: &str, d: &mut u32) -> (String, Option<String>) {
        let (a, b) = parse::strip_comments(l, d);
        (a, b.map(str::to_owned))
    }
}

#[test]
fn bom_crlf_and_whitespace() {
    let conf = parse("\u{feff}[a]\r\ntype = aor\r\n  max_contacts   =   3  \r\n").unwrap();
    let a = cat(&conf, "a", "aor");
    assert_eq!(a.get("max_contacts"), Some("3"));
}

#[test]
fn errors_carry_file_and_line() {
    let e = parse("; top\nfoo=bar\n").unwrap_err();
    assert_eq!(e.loc.line, 2);
    assert!(e.to_string().starts_with("pjsip.conf:2: "), "{e}");
    assert!(matches!(e.kind, ErrorKind::NoCategory(_)));

    let e = parse("[a](nope)\ntype=aor\n").unwrap_err();
    assert_eq!(e.loc.line, 1);
    assert!(matches!(e.kind, ErrorKind::UnknownTemplate { .. }), "{e}");

    let e = parse("[a]\ntype=aor\n[b](+)\nx=1\n").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::AppendNoMatch(_)), "{e}");

    let e = parse("[a\ntype=aor\n").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnclosedHeader));

    // Same name, same type: the whole file fails; same name, other type is fine.
    let conf = parse("[1001]\ntype=aor\n[1001]\ntype=auth\n\n[1001]\ntype=aor\n").unwrap();
    let e = import(&conf).unwrap_err();
    assert_eq!(e.loc.line, 6);
    assert!(e.to_string().contains("duplicate object"), "{e}");
    assert!(
        e.to_string().contains("pjsip.conf:1"),
        "first occurrence named: {e}"
    );

    // Invalid value of a typed option.
    let conf = parse(
        "[1001]\ntype=endpoint\nauth=1001\ndirect_media=maybe\n[1001]\ntype=auth\npassword=x\n",
    )
    .unwrap();
    let e = import(&conf).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pjsip.conf:4: [1001] direct_media=maybe: not a boolean (yes/no)"
    );
    let conf = parse("[1001]\ntype=endpoint\nauth=1001\naors=1001\n[1001]\ntype=auth\npassword=x\n[1001]\ntype=aor\nmax_contacts=lots\n").unwrap();
    assert_eq!(import(&conf).unwrap_err().loc.line, 10);
}

#[test]
fn includes_globs_and_tryinclude() {
    let src = MemSource::new()
        .with(
            "/etc/asterisk/pjsip.conf",
            "[transport-udp]\ntype=transport\n#include pjsip.d/*.conf\n#tryinclude missing.conf\n",
        )
        .with("/etc/asterisk/pjsip.d/b.conf", "[1002]\ntype=aor\n")
        .with(
            "/etc/asterisk/pjsip.d/a.conf",
            "protocol=tcp\n[1001]\ntype=aor\n",
        )
        .with("/etc/asterisk/pjsip.d/skip.txt", "[x]\n");
    let conf = parse_file(
        &src,
        Path::new("/etc/asterisk/pjsip.conf"),
        ParseOptions::default(),
    )
    .unwrap();
    let names: Vec<&str> = conf.categories.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["transport-udp", "1001", "1002"]);
    // An included file continues the open section.
    assert_eq!(
        cat(&conf, "transport-udp", "transport").get("protocol"),
        Some("tcp")
    );
    assert_eq!(
        cat(&conf, "1001", "aor").loc.file.as_ref(),
        "/etc/asterisk/pjsip.d/a.conf"
    );

    // A missing #include is fatal and names the including file:line.
    let src = MemSource::new().with(
        "/etc/asterisk/pjsip.conf",
        "[a]\ntype=aor\n\n#include \"gone.conf\"\n",
    );
    let e = parse_file(
        &src,
        Path::new("/etc/asterisk/pjsip.conf"),
        ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/asterisk/pjsip.conf:4: #include gone.conf: file not found"
    );
    // Errors inside an included file name that file.
    let src = MemSource::new()
        .with("/c/pjsip.conf", "[a]\ntype=aor\n#include <inc.conf>\n")
        .with("/c/inc.conf", "[b](nope)\n");
    let e = parse_file(&src, Path::new("/c/pjsip.conf"), ParseOptions::default()).unwrap_err();
    assert_eq!(e.loc.to_string(), "/c/inc.conf:1");
    // Include loops stop at the depth limit.
    let src = MemSource::new().with("/c/pjsip.conf", "#include pjsip.conf\n");
    let e = parse_file(&src, Path::new("/c/pjsip.conf"), ParseOptions::default()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::IncludeDepth(_)));
}

#[test]
fn wildcards() {
    assert!(wildcard_match("*.conf", "a.conf"));
    assert!(!wildcard_match("*.conf", "a.txt"));
    assert!(!wildcard_match("*.conf", ".hidden.conf"));
    assert!(wildcard_match("pjsip_[0-9]?.conf", "pjsip_1a.conf"));
    assert!(!wildcard_match("[!a]*", "abc"));
}

#[test]
fn plus_filter_and_templates_of_templates() {
    let conf = parse(
        "[t1](!)\nlanguage=en\n[t2](!,t1)\ncontext=c\n[1001](t2)\ntype=endpoint\n[1001]\ntype=aor\n[1001](+type=aor)\nmax_contacts=2\n",
    )
    .unwrap();
    let e = cat(&conf, "1001", "endpoint");
    assert_eq!(
        (e.get("language"), e.get("context")),
        (Some("en"), Some("c"))
    );
    assert_eq!(cat(&conf, "1001", "aor").get("max_contacts"), Some("2"));
    assert!(e.get("max_contacts").is_none());
}

#[test]
fn extension_number_alternative_names() {
    // TestExtractExtensionNumber's table (RayanPBX tui/extension_sync_test.go).
    for (name, want) in [
        ("101", Some("101")),
        ("101-auth", Some("101")),
        ("101_auth", Some("101")),
        ("101auth", Some("101")),
        ("auth-101", Some("101")),
        ("auth_101", Some("101")),
        ("auth101", Some("101")),
        ("aor101", Some("101")),
        ("endpoint101", Some("101")),
        ("trunk123", None),
        ("transport-udp", None),
        ("my-trunk", None),
        ("global", None),
        ("1", None),
    ] {
        assert_eq!(extension_number(name), want, "{name}");
    }
}

#[test]
fn freepbx_names_and_split_files() {
    let src = MemSource::new()
        .with("/e/pjsip.conf", "#include pjsip.endpoint.conf\n#include pjsip.auth.conf\n#include pjsip.aor.conf\n")
        .with("/e/pjsip.endpoint.conf", "[1001]\ntype=endpoint\nauth=1001-auth\naors=1001\nallow=ulaw\ncontext=from-internal\ncallerid=Bob Smith <1001>\n")
        .with("/e/pjsip.auth.conf", "[1001-auth]\ntype=auth\nauth_type=userpass\nusername=1001\npassword=pw1001xx\n")
        .with("/e/pjsip.aor.conf", "[1001]\ntype=aor\nmax_contacts=3\n\n[auth102]\ntype=auth\npassword=pw102\n[102]\ntype=endpoint\n");
    let conf = parse_file(&src, Path::new("/e/pjsip.conf"), ParseOptions::default()).unwrap();
    let m = import(&conf).unwrap();
    assert_eq!(m.extensions.len(), 2, "{}", m.report.render());
    let e = &m.extensions[1];
    assert_eq!(
        (e.number.as_str(), e.secret.as_str(), e.max_contacts),
        ("1001", "pw1001xx", 3)
    );
    assert_eq!(e.name, "Bob Smith");
    assert_eq!(e.caller_id.as_deref(), Some("Bob Smith <1001>"));
    assert!(e.pjsip_extra.auth.is_empty(), "{:?}", e.pjsip_extra);
    // [102] finds its auth by the alternative name auth102.
    assert_eq!(m.extensions[0].secret, "pw102");
    assert!(
        m.report
            .warnings
            .iter()
            .any(|w| w.contains("[102] has no aor"))
    );
}

#[test]
fn disabled_sections_and_legacy_markers() {
    let text = "\
; BEGIN MANAGED - Extension 101
[101]
type=endpoint
auth=101
aors=101
allow=ulaw
; END MANAGED - Extension 101
[101]
type=auth
password=pw101
[101]
type=aor
max_contacts=1

;[102]
;type=endpoint
;context=from-internal
;allow=alaw ; a comment
;auth=102
;aors=102

;[102]
;type=auth
;username=102
;password=pw\\;102

;[102]
;type=aor
;max_contacts=2
";
    let conf = parse(text).unwrap();
    assert_eq!(conf.managed_blocks.len(), 1);
    assert_eq!(conf.managed_blocks[0].label, "Extension 101");
    let m = import(&conf).unwrap();
    assert_eq!(m.report.legacy_managed, 1);
    assert_eq!(m.extensions.len(), 2);
    let d = &m.extensions[1];
    assert!(!d.enabled);
    assert_eq!(
        (d.secret.as_str(), d.max_contacts, d.codecs.clone()),
        ("pw;102", 2, vec!["alaw".to_owned()])
    );
    assert_eq!(m.report.disabled, 1);
    // Export writes it commented out again; the round trip keeps it disabled.
    let out = &export_pjsip(&m.extensions, &m.objects, &ExportOptions::default())[0].content;
    assert!(out.contains(";[102]\n;type=endpoint\n"), "{out}");
    assert!(out.contains(";password=pw\\;102\n"), "{out}");
    let m2 = import(&parse(out).unwrap()).unwrap();
    assert_eq!(m.extensions, m2.extensions);
}

#[test]
fn codecs_in_asterisk_order() {
    let mut l = Vec::new();
    apply_codecs(&mut l, true, "ulaw,alaw");
    apply_codecs(&mut l, true, "ulaw:20, g722");
    assert_eq!(l, ["ulaw", "alaw", "g722"]);
    apply_codecs(&mut l, false, "alaw");
    assert_eq!(l, ["ulaw", "g722"]);
    apply_codecs(&mut l, true, "!ulaw,opus");
    assert_eq!(l, ["g722", "opus"]);
    apply_codecs(&mut l, false, "all");
    assert!(l.is_empty());
    apply_codecs(&mut l, true, "!all,gsm");
    assert_eq!(l, ["gsm"]);
    apply_codecs(&mut l, true, "all");
    assert_eq!(l[0], "gsm");
    assert!(l.len() > 5);
    assert_eq!(callerid_name("\"Alice\" <1001>").as_deref(), Some("Alice"));
    assert_eq!(callerid_name("Bob <1002>").as_deref(), Some("Bob"));
    assert_eq!(callerid_name("<1003>"), None);
    assert_eq!(callerid_name("1004"), None);
}

#[test]
fn repeated_allow_survives_import_and_export() {
    let text = "[1001]\ntype=endpoint\nauth=1001\naors=1001\ndisallow=all\nallow=ulaw\nallow=alaw\nallow=g722\n\
                [1001]\ntype=auth\npassword=pw\n[1001]\ntype=aor\nmax_contacts=1\n";
    let m = import(&parse(text).unwrap()).unwrap();
    assert_eq!(m.extensions[0].codecs, ["ulaw", "alaw", "g722"]);
    let out = &export_pjsip(&m.extensions, &m.objects, &ExportOptions::default())[0].content;
    assert!(
        out.contains("disallow=all\nallow=ulaw\nallow=alaw\nallow=g722\n"),
        "{out}"
    );
    let m2 = import(&parse(out).unwrap()).unwrap();
    assert_eq!(m2.extensions[0].codecs, ["ulaw", "alaw", "g722"]);
}

#[test]
fn global_nat_applies_to_transports() {
    let text = "[global]\ntype=global\nexternal_media_address=198.51.100.7\nlocal_net=10.0.0.0/8\n\
                [transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n\
                [transport-tcp]\ntype=transport\nprotocol=tcp\nexternal_media_address=192.0.2.1\n";
    let m = import(&parse(text).unwrap()).unwrap();
    let t = m.transports();
    assert_eq!(t[0].external_media_address.as_deref(), Some("198.51.100.7"));
    assert_eq!(t[0].local_net, ["10.0.0.0/8"]);
    assert_eq!(t[1].external_media_address.as_deref(), Some("192.0.2.1"));
    assert_eq!(t[1].protocol, "tcp");
    // RayanPBX writes NAT keys into [global]: unknown there for Asterisk -> warned, kept.
    assert!(
        m.report
            .warnings
            .iter()
            .any(|w| w.contains("external_media_address"))
    );
}

#[test]
fn md5_export_and_md5_import() {
    let mut e = Extension::new("1001", "Alice", "secret1001");
    e.codecs = vec!["ulaw".into()];
    let opts = ExportOptions {
        auth: AuthMode::Md5 {
            realm: "dialtone".into(),
        },
        ..ExportOptions::default()
    };
    let out = &export_pjsip(&[e], &[], &opts)[0].content;
    let want = hex::encode(<md5::Md5 as md5::Digest>::digest(
        "1001:dialtone:secret1001",
    ));
    assert!(
        out.contains(&format!("auth_type=md5\nusername=1001\nmd5_cred={want}\n")),
        "{out}"
    );
    assert!(!out.contains("password="));
    // Importing md5-only auth: enabled, authenticated by its md5_cred (an MD5 HA1).
    let m = import(&parse(out).unwrap()).unwrap();
    assert!(m.extensions[0].enabled);
    assert!(matches!(
        m.extensions[0].digest_secret(),
        Some(crate::sip::auth::Secret::Ha1 { md5: Some(h), .. }) if h == want
    ));
    assert!(
        m.extensions[0]
            .pjsip_extra
            .auth
            .iter()
            .any(|(k, _)| k == "md5_cred")
    );
    assert!(
        m.report
            .warnings
            .iter()
            .any(|w| w.contains("auth_type=md5"))
    );
}

#[test]
fn store_round_trip_import_of_export_is_identity() {
    let mut a = Extension::new("101", "Alice", "alice-secret");
    a.caller_id = Some("\"Front desk\" <5550100>".into());
    a.transport = Some("udp".into());
    a.mailboxes = Some("101@default".into());
    a.subscribe_context = Some("from-internal".into());
    a.device_state_busy_at = 1;
    a.direct_media = false;
    a.pjsip_extra.endpoint = vec![
        ("language".into(), "de".into()),
        ("set_var".into(), "A=1".into()),
        ("set_var".into(), "B=2".into()),
    ];
    a.pjsip_extra.aor = vec![("minimum_expiration".into(), "30".into())];
    let mut b = Extension::new("102", "102", "bob;secret");
    b.enabled = false;
    b.codecs = vec![];
    let objects = vec![PjsipObject {
        kind: "transport".into(),
        name: "transport-udp".into(),
        options: vec![
            ("protocol".into(), "udp".into()),
            ("bind".into(), "0.0.0.0:5060".into()),
        ],
        comments: vec![" main transport".into()],
    }];
    let model = ImportModel {
        extensions: vec![a, b],
        objects,
        report: ImportReport::default(),
    };
    for layout in [Layout::Rayanpbx, Layout::Freepbx] {
        let back = reimport(&model, layout);
        // Diffing the re-import against the "store" finds nothing to do.
        let ch = diff(&model.extensions, &model.objects, &back, true);
        assert!(ch.is_empty(), "{layout:?}: {}", ch.render());
    }
}

#[test]
fn diff_added_changed_removed() {
    let mut stored = vec![
        Extension::new("101", "A", "pw1"),
        Extension::new("102", "B", "pw2"),
    ];
    stored[0].id = 1;
    stored[0].email = Some("a@example.com".into());
    stored[1].id = 2;
    let text = "[101]\ntype=endpoint\nauth=101\naors=101\ncallerid=\"A\" <101>\nallow=ulaw\n[101]\ntype=auth\npassword=pw1-new\n[101]\ntype=aor\nmax_contacts=1\n\
                [103]\ntype=endpoint\nauth=103\n[103]\ntype=auth\npassword=x\n[t]\ntype=transport\n";
    let m = import(&parse(text).unwrap()).unwrap();
    let ch: Changes = diff(&stored, &[], &m, true);
    assert_eq!(ch.ext_added.len(), 1);
    assert_eq!(ch.ext_removed[0].number, "102");
    let (old, new) = &ch.ext_changed[0];
    assert_eq!((old.id, new.id), (1, 1));
    assert_eq!(
        new.email.as_deref(),
        Some("a@example.com"),
        "kept from the store"
    );
    assert!(model::changed_fields(old, new).contains(&"secret"));
    assert_eq!(ch.obj_added.len(), 1);
    let r = ch.render();
    assert!(
        r.contains("added    extension 103")
            && r.contains("removed  extension 102")
            && r.contains("changed  extension 101 ("),
        "{r}"
    );
    assert!(!r.contains("pw1-new"), "secrets never rendered");
    assert!(diff(&stored, &[], &m, false).ext_removed.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Merging into existing files.

#[test]
fn export_onto_existing_keeps_unmanaged_content() {
    let existing = "\
; My hand-written header
[transport-udp]
type=transport
protocol=udp

; trunk to the provider
[mytrunk]
type=endpoint
context=from-trunk

; BEGIN MANAGED - Extension 101
[101]
type=endpoint
allow=ulaw
; END MANAGED - Extension 101

; Bob's old section, alternative name
[auth102]
type=auth
password=old

[tmpl](!)
language=en
";
    let exts = vec![
        Extension::new("101", "A", "pw-101"),
        Extension::new("102", "B", "pw-102"),
    ];
    let objects = vec![PjsipObject {
        kind: "transport".into(),
        name: "transport-udp".into(),
        options: vec![("protocol".into(), "udp".into())],
        comments: vec![],
    }];
    let opts = ExportOptions::default();
    let new = &export_pjsip(&exts, &objects, &opts)[0].content;
    let written = written_sections(&exts, &objects, &opts);
    let merged = merge_into(Path::new("pjsip.conf"), existing, new, &written).unwrap();
    assert!(merged.starts_with("; My hand-written header\n"), "{merged}");
    assert!(
        merged.contains("; trunk to the provider\n[mytrunk]\ntype=endpoint\ncontext=from-trunk\n")
    );
    assert!(merged.contains("; Bob's old section, alternative name\n"));
    assert!(!merged.contains("password=old"));
    assert!(!merged.contains("BEGIN MANAGED - Extension"));
    assert!(merged.contains("[tmpl](!)\nlanguage=en\n"));
    assert_eq!(merged.matches("[transport-udp]").count(), 1);
    assert_eq!(merged.matches(BEGIN_MARKER).count(), 1);
    // Exporting again replaces the block in place: idempotent.
    let again = merge_into(Path::new("pjsip.conf"), &merged, new, &written).unwrap();
    assert_eq!(again, merged);
    // The merged file loads and holds exactly one copy of everything.
    let m = import(&parse(&merged).unwrap()).unwrap();
    assert_eq!(m.extensions.len(), 2);
    // A broken existing file is refused.
    assert!(merge_into(Path::new("pjsip.conf"), "x=1\n", new, &written).is_err());
}

#[test]
fn extensions_conf_export() {
    let mut a = Extension::new("101", "A", "pw");
    a.voicemail_enabled = true;
    let b = Extension::new("102", "B", "pw");
    let mut c = Extension::new("103", "C", "pw");
    c.enabled = false;
    let mut d = Extension::new("2001", "D", "pw");
    d.context = "sales".into();
    let out = export_extensions_conf(&[a, b, c, d]);
    assert!(
        out.contains("[from-internal]\nexten => 101,hint,PJSIP/101\nexten => 102,hint,PJSIP/102\n"),
        "{out}"
    );
    assert!(out.contains("exten => 101,1,NoOp(Call to extension 101)\n same => n,Dial(PJSIP/101,30)\n same => n,VoiceMail(101@default,u)\n same => n,Hangup()\n"), "{out}");
    assert!(
        out.contains(
            "exten => _1XX,1,NoOp(Call to extension ${EXTEN})\n same => n,Dial(PJSIP/${EXTEN},30)\n"
        ),
        "{out}"
    );
    assert!(!out.contains("103"));
    assert!(out.contains("[sales]\nexten => 2001,hint,PJSIP/2001\n"));
    assert!(out.contains("exten => _2XXX,1,"));
    let conf = parse(&out).unwrap();
    let ctx = conf
        .categories
        .iter()
        .find(|c| c.name == "from-internal")
        .unwrap();
    assert_eq!(ctx.get_all("exten").count(), 5);
    assert_eq!(
        ctx.get_all("same").count(),
        7,
        "repeated same => lines are all kept"
    );
}

// ---------------------------------------------------------------------------------------------
// The Asterisk samples (GPL: read at test time, never copied).

/// Uncomment the sample's example block (up to the option reference): `;[name]` and `;key=value`
/// lines lose their `;`. Later duplicates (same name and type, which Asterisk refuses) are
/// renamed `<name>-dupN`.
fn uncommented_sample(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_examples = true;
    for line in text.lines() {
        if line.contains("MODULE PROVIDING BELOW SECTION") {
            in_examples = false;
        }
        let stripped = line.strip_prefix(';').filter(|r| {
            in_examples
                && r.chars()
                    .next()
                    .is_some_and(|c| c == '[' || c.is_ascii_alphanumeric() || c == '_')
                && (r.starts_with('[') || r.split(';').next().is_some_and(|s| s.contains('=')))
        });
        out.push(stripped.map_or_else(|| line.to_owned(), str::to_owned));
    }
    let mut text = out.join("\n");
    text.push('\n');
    // Rename duplicate objects (found with the parser itself).
    loop {
        let conf = parse_str(
            &NoFiles,
            Path::new("s"),
            &text,
            ParseOptions {
                follow_includes: false,
                disabled_sections: false,
            },
        )
        .unwrap();
        let mut seen = HashSet::new();
        let dup = conf
            .objects()
            .find(|c| c.kind().is_some() && !seen.insert((c.name.clone(), c.kind())));
        let Some(d) = dup else { break };
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let i = d.loc.line as usize - 1;
        lines[i] = lines[i].replacen(
            &format!("[{}]", d.name),
            &format!("[{}-dup{}]", d.name, i),
            1,
        );
        text = lines.join("\n");
        text.push('\n');
    }
    text
}

#[test]
fn asterisk_sample_as_shipped_imports() {
    let Some(text) = fixture("asterisk/pjsip.conf.sample") else {
        return;
    };
    let conf = parse(&text).expect("sample parses");
    let m = import(&conf).expect("sample imports");
    // Everything is commented out: only disabled extensions come in.
    assert!(m.extensions.iter().all(|e| !e.enabled));
    assert!(
        m.extensions.iter().any(|e| e.number == "6001"),
        "{}",
        m.report.render()
    );
    assert!(m.objects.is_empty());
}

#[test]
fn asterisk_sample_uncommented_imports_and_round_trips() {
    let Some(text) = fixture("asterisk/pjsip.conf.sample") else {
        return;
    };
    let text = uncommented_sample(&text);
    let conf = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let m = import(&conf).unwrap_or_else(|e| panic!("{e}"));
    let report = m.report.render();
    eprintln!("{report}");
    for n in ["6001", "6002", "7000"] {
        let e = m
            .extensions
            .iter()
            .find(|e| e.number == n)
            .unwrap_or_else(|| panic!("{n}: {report}"));
        assert!(e.enabled);
        assert_eq!(e.secret, n);
    }
    let e6001 = m.extensions.iter().find(|e| e.number == "6001").unwrap();
    assert_eq!(
        e6001.mailboxes.as_deref(),
        Some("6001@default,7001@default")
    );
    assert!(
        m.objects
            .iter()
            .any(|o| o.kind == "transport" && o.name == "transport-udp-nat")
    );
    assert!(
        m.objects
            .iter()
            .any(|o| o.kind == "registration" && o.name == "mytrunk")
    );
    assert!(m.objects.iter().any(|o| o.kind == "identify"));
    assert!(!m.report.not_in_effect.is_empty());
    for layout in [Layout::Rayanpbx, Layout::Freepbx] {
        let back = reimport(&m, layout);
        assert_eq!(m.extensions, back.extensions, "{layout:?}");
        assert_eq!(sorted(&m.objects), sorted(&back.objects), "{layout:?}");
    }
}

#[test]
fn extensions_conf_sample_parses_and_merge_keeps_it() {
    let Some(text) = fixture("asterisk/extensions.conf.sample") else {
        return;
    };
    let conf = parse_str(
        &NoFiles,
        Path::new("extensions.conf"),
        &text,
        ParseOptions {
            follow_includes: false,
            disabled_sections: false,
        },
    )
    .expect("extensions.conf.sample parses");
    assert!(conf.categories.iter().any(|c| c.name == "globals"));
    let demo = conf.categories.iter().find(|c| c.name == "demo").unwrap();
    assert!(demo.get_all("exten").count() > 10);
    let exts = vec![Extension::new("101", "A", "pw")];
    let new = export_extensions_conf(&exts);
    let merged = merge_into(Path::new("extensions.conf"), &text, &new, &HashSet::new()).unwrap();
    // Every original line survives, in order, and the managed block is appended once.
    let kept: Vec<&str> = merged.lines().take(text.lines().count()).collect();
    assert_eq!(kept, text.lines().collect::<Vec<_>>());
    assert_eq!(merged.matches(BEGIN_MARKER).count(), 1);
    assert_eq!(merged.matches(END_MARKER).count(), 1);
    let again = merge_into(Path::new("extensions.conf"), &merged, &new, &HashSet::new()).unwrap();
    assert_eq!(again, merged);
}
