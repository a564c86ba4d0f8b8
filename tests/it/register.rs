//! Registration over UDP and TCP against a real server on 127.0.0.1:0.

use crate::support::{Phone, TestServer, eventually, http};

const TOKEN: &str = "test-token-123456";

async fn phone(srv: &TestServer, tcp: bool, user: &str) -> Phone {
    if tcp {
        Phone::tcp(srv.tcp(), user).await
    } else {
        Phone::udp(srv.udp(), user).await
    }
}

async fn registered(srv: &TestServer, number: &str) -> usize {
    let (_, list) = http(
        srv.api(),
        "GET",
        &format!("/api/extensions/{number}"),
        Some(TOKEN),
        None,
    )
    .await;
    list["contacts"].as_array().map(|a| a.len()).unwrap_or(0)
}

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod udp { $( #[tokio::test] async fn $name() { super::$name(false).await } )* }
        mod tcp { $( #[tokio::test] async fn $name() { super::$name(true).await } )* }
    };
}

both_transports!(
    register_reregister_unregister,
    wrong_password_gets_403,
    unknown_extension_gets_403,
    interval_too_brief_gets_423,
    max_contacts_enforced,
    binding_expires,
    bindings_survive_restart,
    query_and_wildcard,
);

async fn register_reregister_unregister(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "1001").await;
    let r = p.register("1001", "secret1001", Some(600)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.contact_count(), 1, "{}", r.raw);
    assert!(
        r.header("contact").unwrap().contains("expires=600"),
        "{}",
        r.raw
    );
    assert!(r.header("to").unwrap().contains("tag="), "{}", r.raw);
    assert_eq!(registered(&srv, "1001").await, 1);
    // re-register (same Call-ID, higher CSeq)
    let r = p.register("1001", "secret1001", Some(300)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("contact").unwrap().contains("expires=300"),
        "{}",
        r.raw
    );
    assert_eq!(registered(&srv, "1001").await, 1);
    // unregister
    let r = p.register("1001", "secret1001", Some(0)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.contact_count(), 0, "{}", r.raw);
    assert_eq!(registered(&srv, "1001").await, 0);
    srv.stop().await;
}

async fn wrong_password_gets_403(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "1001").await;
    let r = p.register("1001", "not-the-password", Some(600)).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(registered(&srv, "1001").await, 0);
    srv.stop().await;
}

async fn unknown_extension_gets_403(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "4444").await;
    let r = p.register("4444", "whatever123", Some(600)).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    srv.stop().await;
}

async fn interval_too_brief_gets_423(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "1001").await;
    let r = p.register("1001", "secret1001", Some(10)).await;
    assert_eq!(r.status, 423, "{}", r.raw);
    assert_eq!(r.header("min-expires"), Some("60"));
    srv.stop().await;
}

async fn max_contacts_enforced(tcp: bool) {
    // 1001 keeps the default max_contacts=1 with remove_existing: a second phone replaces the first.
    let srv = TestServer::start("").await;
    let mut a = phone(&srv, tcp, "1001").await;
    let mut b = phone(&srv, tcp, "1001").await;
    assert_eq!(
        a.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    let r = b.register("1001", "secret1001", Some(600)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.contact_count(), 1, "{}", r.raw);
    assert!(
        r.header("contact").unwrap().contains(&b.local.to_string()),
        "{}",
        r.raw
    );
    // Through the API: max_contacts 2 without remove_existing → the third is refused.
    let (st, _) = http(
        srv.api(),
        "PUT",
        "/api/extensions/1002",
        Some(TOKEN),
        Some(r#"{"max_contacts":2,"remove_existing":false}"#),
    )
    .await;
    assert_eq!(st, 200);
    let mut p1 = phone(&srv, tcp, "1002").await;
    let mut p2 = phone(&srv, tcp, "1002").await;
    let mut p3 = phone(&srv, tcp, "1002").await;
    assert_eq!(
        p1.register("1002", "secret1002", Some(600)).await.status,
        200
    );
    let r = p2.register("1002", "secret1002", Some(600)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.contact_count(), 2, "{}", r.raw);
    let r = p3.register("1002", "secret1002", Some(600)).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(registered(&srv, "1002").await, 2);
    srv.stop().await;
}

async fn binding_expires(tcp: bool) {
    let srv = TestServer::start("registrar:\n  min_expires: 1\n").await;
    let mut p = phone(&srv, tcp, "1003").await;
    let r = p.register("1003", "secret1003", Some(1)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(
        eventually(10, || async { registered(&srv, "1003").await == 0 }).await,
        "binding did not expire"
    );
    srv.stop().await;
}

async fn bindings_survive_restart(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "1001").await;
    assert_eq!(
        p.register("1001", "secret1001", Some(3600)).await.status,
        200
    );
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, "").await;
    assert_eq!(
        registered(&srv, "1001").await,
        1,
        "binding lost over a restart"
    );
    let (_, v) = http(srv.api(), "GET", "/api/extensions/1001", Some(TOKEN), None).await;
    let exp = v["contacts"][0]["expires"].as_u64().unwrap_or(0);
    assert!(exp > 3500 && exp <= 3600, "expires after restart: {exp}");
    srv.stop().await;
}

async fn query_and_wildcard(tcp: bool) {
    let srv = TestServer::start("").await;
    let mut p = phone(&srv, tcp, "1001").await;
    assert_eq!(
        p.register("1001", "secret1001", Some(600)).await.status,
        200
    );
    // Contact: * with Expires: 0 removes everything.
    let r = p
        .register_contact("1001", "secret1001", Some(0), Some("*"))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(registered(&srv, "1001").await, 0);
    // Contact: * without Expires: 0 is a 400.
    let r = p
        .register_contact("1001", "secret1001", Some(60), Some("*"))
        .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    srv.stop().await;
}
