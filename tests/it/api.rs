//! REST API against a real server: changes take effect on the SIP side at once.

use crate::support::{Phone, TestServer, http};

const TOKEN: &str = "test-token-123456";

#[tokio::test]
async fn api_requires_auth_and_status_is_public() {
    let srv = TestServer::start("").await;
    let (st, body) = http(srv.api(), "GET", "/api/extensions", None, None).await;
    assert_eq!(st, 401);
    assert_eq!(body["error"], "Authentication required");
    let (st, _) = http(srv.api(), "GET", "/api/extensions", Some("wrong"), None).await;
    assert_eq!(st, 401);
    let (st, body) = http(srv.api(), "GET", "/api/status", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["registered_extensions"], 0);
    srv.stop().await;
}

#[tokio::test]
async fn login_jwt_works() {
    let srv = TestServer::start("").await;
    let (st, body) = http(
        srv.api(),
        "POST",
        "/api/auth/login",
        None,
        Some(r#"{"username":"admin","password":"change-me-now"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let jwt = body["token"].as_str().unwrap().to_string();
    let (st, list) = http(srv.api(), "GET", "/api/extensions", Some(&jwt), None).await;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    srv.stop().await;
}

#[tokio::test]
async fn created_extension_registers_at_once_and_changes_apply() {
    let srv = TestServer::start("").await;
    let (st, body) = http(
        srv.api(),
        "POST",
        "/api/extensions",
        Some(TOKEN),
        Some(r#"{"number":"2001","name":"New","password":"brandnew123"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        !body.to_string().contains("brandnew123"),
        "secret echoed: {body}"
    );
    let mut p = Phone::udp(srv.udp(), "2001").await;
    assert_eq!(
        p.register("2001", "brandnew123", Some(600)).await.status,
        200
    );
    let (_, list) = http(srv.api(), "GET", "/api/extensions", Some(TOKEN), None).await;
    let e = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["number"] == "2001")
        .unwrap()
        .clone();
    assert_eq!(e["registered"], true);
    assert_eq!(e["contacts"][0]["transport"], "udp");
    assert_eq!(e["contacts"][0]["user_agent"], "dialtone-it");
    // password change applies to the next REGISTER
    let (st, _) = http(
        srv.api(),
        "PUT",
        "/api/extensions/2001",
        Some(TOKEN),
        Some(r#"{"password":"changed-pass-1"}"#),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        p.register("2001", "brandnew123", Some(600)).await.status,
        403
    );
    assert_eq!(
        p.register("2001", "changed-pass-1", Some(600)).await.status,
        200
    );
    // disabling drops the binding and refuses new registrations
    let (st, _) = http(
        srv.api(),
        "PUT",
        "/api/extensions/2001",
        Some(TOKEN),
        Some(r#"{"enabled":false}"#),
    )
    .await;
    assert_eq!(st, 200);
    let (_, e) = http(srv.api(), "GET", "/api/extensions/2001", Some(TOKEN), None).await;
    assert_eq!(e["registered"], false);
    assert_eq!(
        p.register("2001", "changed-pass-1", Some(600)).await.status,
        403
    );
    // delete
    let (st, _) = http(
        srv.api(),
        "DELETE",
        "/api/extensions/2001",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = http(srv.api(), "GET", "/api/extensions/2001", Some(TOKEN), None).await;
    assert_eq!(st, 404);
    srv.stop().await;
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let srv = TestServer::start("").await;
    for (body, field) in [
        (
            r#"{"number":"12a","name":"x","password":"longenough1"}"#,
            "number",
        ),
        (
            r#"{"number":"2002","name":"x","password":"short"}"#,
            "password",
        ),
        (
            r#"{"number":"1001","name":"dup","password":"longenough1"}"#,
            "number",
        ),
    ] {
        let (st, v) = http(
            srv.api(),
            "POST",
            "/api/extensions",
            Some(TOKEN),
            Some(body),
        )
        .await;
        assert!(st == 400 || st == 409 || st == 422, "{st} {v}");
        assert_eq!(v["field"], field, "{v}");
    }
    let (_, list) = http(srv.api(), "GET", "/api/extensions", Some(TOKEN), None).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    let (st, _) = http(
        srv.api(),
        "POST",
        "/api/extensions",
        Some(TOKEN),
        Some(r#"{"number":"1001","name":"dup","password":"longenough1"}"#),
    )
    .await;
    assert_eq!(st, 409);
    srv.stop().await;
}
