//! The `dialtone extension` CLI against the store of a running server.

use std::process::Command;

use crate::support::{Phone, TestServer, eventually, http};

const TOKEN: &str = "test-token-123456";

fn cli(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("run dialtone");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn cli_changes_reach_the_running_server() {
    let srv = TestServer::start("").await;
    let cfg = srv.write_config();
    let (ok, text) = cli(&cfg, &["extension", "list"]);
    assert!(
        ok && text.contains("1001") && text.contains("Alice"),
        "{text}"
    );
    assert!(!text.contains("secret1001"), "secret printed: {text}");

    let (ok, text) = cli(
        &cfg,
        &[
            "extension",
            "create",
            "2500",
            "--name",
            "Cli",
            "--secret",
            "cli-secret-1",
        ],
    );
    assert!(ok, "{text}");
    let api = srv.api();
    // The store has it at once; the running core picks it up within the watcher's poll.
    assert_eq!(
        http(api, "GET", "/api/extensions/2500", Some(TOKEN), None)
            .await
            .0,
        200
    );
    assert!(
        eventually(10, || async move {
            http(api, "GET", "/api/status/detail", Some(TOKEN), None)
                .await
                .1["extensions"]
                == 4
        })
        .await,
        "the running server did not pick up the new extension: {}",
        http(api, "GET", "/api/status/detail", Some(TOKEN), None)
            .await
            .1
    );
    let mut p = Phone::udp(srv.udp(), "2500").await;
    let r = p.register("2500", "cli-secret-1", Some(600)).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    // Bad input is refused with the field named, and changes nothing.
    let (ok, text) = cli(
        &cfg,
        &["extension", "create", "25x", "--secret", "cli-secret-1"],
    );
    assert!(!ok && text.contains("number"), "{text}");
    let (ok, text) = cli(&cfg, &["extension", "create", "2501", "--secret", "short"]);
    assert!(!ok && text.contains("secret"), "{text}");
    let (ok, text) = cli(
        &cfg,
        &["extension", "create", "2500", "--secret", "cli-secret-2"],
    );
    assert!(!ok, "duplicate accepted: {text}");

    let (ok, text) = cli(&cfg, &["extension", "delete", "2500"]);
    assert!(ok, "{text}");
    assert_eq!(
        http(api, "GET", "/api/extensions/2500", Some(TOKEN), None)
            .await
            .0,
        404
    );
    assert!(
        eventually(10, || async move {
            http(api, "GET", "/api/status", None, None).await.1["registered_extensions"] == 0
        })
        .await,
        "the binding of a deleted extension survived"
    );
    srv.stop().await;
}

const PJSIP: &str = "\
[transport-udp]
type=transport
protocol=udp
bind=127.0.0.1:5060

[2601]
type=endpoint
context=from-internal
disallow=all
allow=ulaw
allow=alaw
auth=2601
aors=2601
callerid=\"Pat\" <2601>

[2601]
type=auth
auth_type=userpass
username=2601
password=pjsip-secret-1

[2601]
type=aor
max_contacts=1
remove_existing=yes
";

#[tokio::test]
async fn pjsip_import_and_export() {
    let srv = TestServer::start("").await;
    let cfg = srv.write_config();
    let dir = cfg.parent().unwrap().to_path_buf();
    let conf = dir.join("pjsip.conf");
    std::fs::write(&conf, PJSIP).unwrap();
    let conf_s = conf.to_str().unwrap();

    // Validation (no store needed).
    let (ok, text) = cli(&cfg, &["pjsip", "validate", conf_s]);
    assert!(
        ok && text.contains("valid (") && text.contains("no subscribe_context"),
        "{text}"
    );

    // Dry run: the plan, nothing changed.
    let (ok, text) = cli(&cfg, &["pjsip", "import", conf_s, "--dry-run"]);
    assert!(ok, "{text}");
    assert!(text.contains("added    extension 2601"), "{text}");
    assert!(text.contains("removed  extension 1001"), "{text}");
    assert!(text.contains("added    transport transport-udp"), "{text}");
    assert!(!text.contains("pjsip-secret-1"), "secret printed: {text}");
    let api = srv.api();
    assert_eq!(
        http(api, "GET", "/api/extensions/2601", Some(TOKEN), None)
            .await
            .0,
        404
    );

    // A broken file: file:line, store untouched.
    let broken = dir.join("broken.conf");
    std::fs::write(
        &broken,
        format!("{PJSIP}\n[2602](no-such-template)\ntype=endpoint\n"),
    )
    .unwrap();
    let (ok, text) = cli(
        &cfg,
        &[
            "pjsip",
            "import",
            broken.to_str().unwrap(),
            "--keep-missing",
        ],
    );
    assert!(!ok, "{text}");
    let line = PJSIP.lines().count() + 2;
    assert!(
        text.contains(&format!("{}:{line}:", broken.display())),
        "{text}"
    );
    let (ok, text) = cli(
        &cfg,
        &["pjsip", "import", conf_s, "--keep-missing", "--dry-run"],
    );
    assert!(ok && !text.contains("removed  extension"), "{text}");

    // The real import reaches the running server: 2601 registers.
    let (ok, text) = cli(&cfg, &["pjsip", "import", conf_s, "--keep-missing"]);
    assert!(ok, "{text}");
    assert_eq!(
        http(api, "GET", "/api/extensions/2601", Some(TOKEN), None)
            .await
            .0,
        200
    );
    let mut registered = false;
    for _ in 0..50 {
        let mut p = Phone::udp(srv.udp(), "2601").await;
        if p.register("2601", "pjsip-secret-1", Some(600)).await.status == 200 {
            registered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        registered,
        "the running server did not load the imported extension"
    );

    // Export onto an existing file keeps what Dialtone does not manage.
    let out = dir.join("out.conf");
    std::fs::write(&out, "; keep me\n[my-template](!)\nlanguage=en\n").unwrap();
    let ext_conf = dir.join("extensions.conf");
    std::fs::write(&ext_conf, "[general]\nstatic=yes\n").unwrap();
    let (ok, text) = cli(
        &cfg,
        &[
            "pjsip",
            "export",
            "--out",
            out.to_str().unwrap(),
            "--extensions-conf",
            ext_conf.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.starts_with("; keep me\n[my-template](!)\nlanguage=en\n"),
        "{written}"
    );
    assert!(
        written.contains(
            "[2601]\ntype=auth\nauth_type=userpass\nusername=2601\npassword=pjsip-secret-1\n"
        ),
        "{written}"
    );
    assert!(written.contains("[1001]\ntype=endpoint\n"), "{written}");
    let dialplan = std::fs::read_to_string(&ext_conf).unwrap();
    assert!(
        dialplan.starts_with("[general]\nstatic=yes\n"),
        "{dialplan}"
    );
    assert!(
        dialplan.contains("exten => 2601,hint,PJSIP/2601\n"),
        "{dialplan}"
    );
    // The export imports back without changes.
    let (ok, text) = cli(
        &cfg,
        &["pjsip", "import", out.to_str().unwrap(), "--dry-run"],
    );
    assert!(
        ok && text.contains("0 added, 0 changed, 0 removed"),
        "{text}"
    );
    // FreePBX layout writes the split files.
    let fp = dir.join("freepbx");
    std::fs::create_dir(&fp).unwrap();
    let (ok, text) = cli(
        &cfg,
        &[
            "pjsip",
            "export",
            "--layout",
            "freepbx",
            "--out",
            fp.join("pjsip.conf").to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    assert!(
        std::fs::read_to_string(fp.join("pjsip.auth.conf"))
            .unwrap()
            .contains("[2601-auth]")
    );
    assert!(fp.join("pjsip.endpoint_custom.conf").exists());
    let (ok, text) = cli(
        &cfg,
        &[
            "pjsip",
            "import",
            fp.join("pjsip.conf").to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(
        ok && text.contains("0 added, 0 changed, 0 removed"),
        "{text}"
    );
    srv.stop().await;
}
