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
