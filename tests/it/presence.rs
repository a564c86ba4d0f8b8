//! BLF and presence over real sockets: a phone SUBSCRIBEs (digest) to another extension's
//! dialog state, and the REST presence API changes what it is NOTIFYed.

use crate::support::{Phone, TestServer, digest_md5, http};

const TOKEN: &str = "test-token-123456";

fn subscribe(w: &Phone, branch: &str, cseq: u32, auth: Option<&str>) -> String {
    let mut t = format!(
        "SUBSCRIBE sip:1002@test.local SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1003@test.local>;tag=w1\r\nTo: <sip:1002@test.local>\r\n\
         Call-ID: blf-1@test\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1003@{l}>\r\n\
         Event: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 600\r\n",
        l = w.local
    );
    if let Some(a) = auth {
        t.push_str(&format!("Authorization: {a}\r\n"));
    }
    t.push_str("Content-Length: 0\r\n\r\n");
    t
}

/// The next NOTIFY (answered 200), skipping anything else.
async fn next_notify(p: &mut Phone) -> String {
    loop {
        let m = p.recv().await.expect("a NOTIFY");
        if m.starts_with("NOTIFY ") {
            p.answer_request(&m).await;
            return m;
        }
        if !m.starts_with("SIP/2.0") {
            p.answer_request(&m).await;
        }
    }
}

#[tokio::test]
async fn blf_subscription_and_rest_presence() {
    let srv = TestServer::start("").await;
    let mut bob = Phone::udp(srv.udp(), "1002").await;
    assert_eq!(
        bob.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let mut carol = Phone::udp(srv.udp(), "1003").await;
    assert_eq!(
        carol.register("1003", "secret1003", Some(600)).await.status,
        200
    );

    carol.send_raw(&subscribe(&carol, "s1", 1, None)).await;
    let r = carol.recv_response().await.unwrap();
    assert_eq!(r.status, 401);
    let auth = digest_md5(
        r.header("www-authenticate").unwrap(),
        "1003",
        "secret1003",
        "SUBSCRIBE",
        "sip:1002@test.local",
    );
    carol
        .send_raw(&subscribe(&carol, "s2", 2, Some(&auth)))
        .await;
    let ok = carol.recv_response().await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let n = next_notify(&mut carol).await;
    assert!(n.contains("Subscription-State: active;expires="), "{n}");
    assert!(
        n.contains("<dialog-info") && !n.contains("<dialog "),
        "idle: {n}"
    );

    // Do not disturb through the API: the lamp lights, and GET shows it.
    let api = srv.api();
    let (st, b) = http(
        api,
        "POST",
        "/api/presence/set",
        Some(TOKEN),
        Some(r#"{"extension":"1002","status":"do_not_disturb","message":"Focus time"}"#),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let n = next_notify(&mut carol).await;
    assert!(n.contains("<state>confirmed</state>"), "{n}");
    let (_, list) = http(api, "GET", "/api/presence", Some(TOKEN), None).await;
    let bob_p = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["extension"] == "1002")
        .unwrap()
        .clone();
    assert_eq!(bob_p["status"], "do_not_disturb", "{list}");
    assert_eq!(bob_p["custom_message"], "Focus time");
    assert_eq!(bob_p["in_call"], false);
    for key in ["name", "last_activity", "idle_time"] {
        assert!(bob_p.get(key).is_some(), "{key} missing: {bob_p}");
    }
    // Bad input names the field; the 400 lists the allowed values.
    let (st, b) = http(
        api,
        "POST",
        "/api/presence/set",
        Some(TOKEN),
        Some(r#"{"extension":"1002","status":"lunch"}"#),
    )
    .await;
    assert_eq!((st, b["field"].as_str()), (400, Some("status")));
    assert!(
        b["error"].as_str().unwrap().contains("do_not_disturb"),
        "{b}"
    );
    let (st, _) = http(
        api,
        "POST",
        "/api/presence/set",
        Some(TOKEN),
        Some(r#"{"extension":"1999","status":"away"}"#),
    )
    .await;
    assert_eq!(st, 404);
    // Back to available: the lamp goes dark.
    http(
        api,
        "POST",
        "/api/presence/set",
        Some(TOKEN),
        Some(r#"{"extension":"1002","status":"available"}"#),
    )
    .await;
    let n = next_notify(&mut carol).await;
    assert!(!n.contains("<state>confirmed</state>"), "{n}");
    srv.stop().await;
}
