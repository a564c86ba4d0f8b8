//! The compat listener (RayanPBX + ISPBX v1) over a real socket: the contract checks of
//! rest-api.md §4.4 and the field names / envelopes of §0.1, §1, §2.1.

use serde_json::{Value, json};

use crate::support::{Phone, TestServer, http};

const COMPAT: &str = "compat_api:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

async fn login(srv: &TestServer) -> String {
    let (st, body) = http(
        srv.compat(),
        "POST",
        "/api/auth/login",
        None,
        Some(r#"{"username":"admin","password":"change-me-now"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(
        body["user"],
        json!({"id":"admin","name":"admin","email":"admin@local"})
    );
    assert!(body["refresh_token"].is_string());
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rayanpbx_contract() {
    let srv = TestServer::start(COMPAT).await;
    let api = srv.compat();

    // 401 envelope on a protected route.
    let (st, body) = http(api, "GET", "/api/extensions", None, None).await;
    assert_eq!(st, 401);
    assert_eq!(
        body,
        json!({"success":false,"error":"Unauthenticated","message":"Authentication is required to access this resource.","http_code":401})
    );
    // Bad credentials: 422 errors.username.
    let (st, body) = http(
        api,
        "POST",
        "/api/auth/login",
        None,
        Some(r#"{"username":"admin","password":"nope"}"#),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(
        body["errors"]["username"][0],
        "The provided credentials are incorrect."
    );
    assert_eq!(body["message"], "The given data was invalid.");
    assert_eq!(body["http_code"], 422);
    // Refresh without a token.
    let (st, body) = http(api, "POST", "/api/auth/refresh", None, Some("{}")).await;
    assert_eq!(
        (st, body),
        (400, json!({"message":"Refresh token required"}))
    );
    let tok = login(&srv).await;
    let t = Some(tok.as_str());

    // Validation.
    let (st, body) = http(api, "POST", "/api/extensions", t, Some("{}")).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "Validation failed");
    assert_eq!(
        keys(&body["errors"]),
        ["extension_number", "name", "secret"]
    );
    assert_eq!(body["errors"]["name"][0], "The name field is required.");
    let dup = r#"{"extension_number":"1001","name":"X","secret":"longenough1"}"#;
    let (st, body) = http(api, "POST", "/api/extensions", t, Some(dup)).await;
    assert_eq!(st, 422);
    assert_eq!(
        body["errors"]["extension_number"][0],
        "The extension number has already been taken."
    );
    let bad = r#"{"extension_number":"150","name":"X","secret":"longenough1","codecs":["foo"],"transport":"sctp"}"#;
    let (st, body) = http(api, "POST", "/api/extensions", t, Some(bad)).await;
    assert_eq!(st, 422);
    assert_eq!(
        body["errors"]["codecs.0"][0],
        "The selected codecs.0 is invalid."
    );
    assert_eq!(
        body["errors"]["transport"][0],
        "The selected transport is invalid."
    );
    // 404 envelope (findOrFail).
    let (st, body) = http(api, "GET", "/api/extensions/99999", t, None).await;
    assert_eq!(st, 404);
    assert_eq!(
        body,
        json!({"success":false,"error":"Resource not found","message":"No query results for model [App\\Models\\Extension] 99999","http_code":404})
    );

    // Create → 201 with the RayanPBX keys; the phone registers with the secret at once.
    let new = r#"{"extension_number":"150","name":"Desk","secret":"desk-150-secret","codecs":["ulaw","g722"],"transport":"udp"}"#;
    let (st, body) = http(api, "POST", "/api/extensions", t, Some(new)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        keys(&body),
        [
            "asterisk_verified",
            "extension",
            "message",
            "reload_success"
        ]
    );
    assert_eq!(body["asterisk_verified"], true);
    assert_eq!(body["extension"]["extension_number"], "150");
    assert!(body["extension"].get("secret").is_none());
    let id = body["extension"]["id"].as_i64().unwrap();
    let mut phone = Phone::udp(srv.udp(), "150").await;
    assert_eq!(
        phone
            .register("150", "desk-150-secret", Some(600))
            .await
            .status,
        200
    );

    // Index.
    let (st, body) = http(api, "GET", "/api/extensions", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&body), ["asterisk_endpoints", "extensions"]);
    let e150 = body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["extension_number"] == "150")
        .unwrap()
        .clone();
    assert_eq!(e150["registered"], true);
    assert_eq!(e150["contact_count"], 1);
    assert_eq!(e150["ip_address"], "127.0.0.1");

    // Verify, diagnostics, asterisk endpoints.
    let (st, body) = http(api, "GET", &format!("/api/extensions/{id}/verify"), t, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        keys(&body),
        [
            "endpoint_details",
            "exists_in_asterisk",
            "extension",
            "registration_status"
        ]
    );
    assert_eq!(body["exists_in_asterisk"], true);
    assert_eq!(body["registration_status"]["registered"], true);
    assert_eq!(body["registration_status"]["contacts"], 1);
    assert_eq!(body["endpoint_details"]["endpoint"], "150");
    assert_eq!(
        body["endpoint_details"]["contacts"][0]["status"],
        "Available"
    );
    let (st, body) = http(
        api,
        "GET",
        &format!("/api/extensions/{id}/diagnostics"),
        t,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(keys(&body).len(), 8, "{body}");
    let (st, body) = http(api, "GET", "/api/extensions/asterisk/endpoints", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&body), ["endpoints", "total"]);
    assert_eq!(body["total"], 4);
    let ep = body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "150")
        .unwrap();
    assert_eq!(ep["managed"], true);
    assert_eq!(ep["contacts"], 1);

    // Update keeps the secret when empty; toggle disables and drops the registration.
    let (st, body) = http(
        api,
        "PUT",
        &format!("/api/extensions/{id}"),
        t,
        Some(r#"{"name":"Front desk","secret":""}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["extension"]["name"], "Front desk");
    assert_eq!(body["config_write_success"], true);
    let (st, body) = http(
        api,
        "POST",
        &format!("/api/extensions/{id}/toggle"),
        t,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["message"], "Extension disabled successfully");
    let (_, body) = http(api, "GET", &format!("/api/extensions/{id}/verify"), t, None).await;
    assert_eq!(body["exists_in_asterisk"], false);
    assert_eq!(
        body["registration_status"],
        json!({"registered":false,"status":"Not Found","contacts":0})
    );
    assert_eq!(body["endpoint_details"], Value::Null);

    // Console through the CLI emulation.
    let (st, body) = http(
        api,
        "POST",
        "/api/console/execute",
        t,
        Some(r#"{"command":"pjsip show endpoints"}"#),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["success"], true);
    assert!(
        body["output"].as_str().unwrap().contains("Endpoint:  1001"),
        "{body}"
    );
    let (st, body) = http(
        api,
        "POST",
        "/api/console/execute",
        t,
        Some(r#"{"command":"core stop now"}"#),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(body["error"], "Command not allowed for security reasons");
    let (st, body) = http(api, "GET", "/api/console/endpoints", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["count"], 3, "{body}");
    assert_eq!(body["endpoints"][0]["endpoint"], "1001");

    // Validation of pjsip.conf text (seed-systems §5 rule 8 warnings).
    let text = "[101]\ntype=endpoint\nauth=101\naors=101\n";
    let (st, body) = http(
        api,
        "POST",
        "/api/validate/pjsip",
        t,
        Some(&json!({"config": text}).to_string()),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["valid"], true, "{body}");
    assert!(!body["warnings"].as_array().unwrap().is_empty(), "{body}");

    // Unknown route and wrong method: Laravel envelopes.
    let (st, body) = http(api, "GET", "/api/nothing-here", t, None).await;
    assert_eq!(st, 404);
    assert_eq!(body["error"], "Resource not found");
    let (st, body) = http(api, "DELETE", "/api/extensions", t, None).await;
    assert_eq!(st, 405);
    assert_eq!(body["http_code"], 405);

    // Static API tokens work here too; the Warden API on 8080 is unchanged.
    let (st, _) = http(
        api,
        "GET",
        "/api/extensions",
        Some("test-token-123456"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, body) = http(
        srv.api(),
        "GET",
        "/api/extensions",
        Some("test-token-123456"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(body.is_array());
    drop(phone);
    srv.stop().await;
}

#[tokio::test]
async fn pjsip_nat_settings_through_the_api() {
    let srv = TestServer::start(COMPAT).await;
    let api = srv.compat();
    let t = Some("test-token-123456");
    let (st, body) = http(
        api,
        "POST",
        "/api/pjsip/config/external-media",
        t,
        Some(r#"{"external_media_address":"203.0.113.9","local_net":"nonsense"}"#),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(
        body["errors"]["local_net"][0],
        "The local net field format is invalid."
    );
    let (st, body) = http(
        api,
        "POST",
        "/api/pjsip/config/external-media",
        t,
        Some(r#"{"external_media_address":"203.0.113.9","external_signaling_address":"203.0.113.8","local_net":"10.0.0.0/8"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["message"],
        "External media settings updated successfully"
    );
    let (st, body) = http(api, "GET", "/api/pjsip/config/global", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["settings"]["external_media_address"], "203.0.113.9");
    assert_eq!(body["settings"]["local_net"], "10.0.0.0/8");
    let (st, body) = http(
        api,
        "POST",
        "/api/pjsip/config/transport",
        t,
        Some(r#"{"protocol":"sctp","bind":"0.0.0.0:5060"}"#),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(
        body["errors"]["protocol"][0],
        "The selected protocol is invalid."
    );
    let (st, body) = http(
        api,
        "POST",
        "/api/pjsip/config/transport",
        t,
        Some(r#"{"protocol":"udp","bind":"0.0.0.0:5060"}"#),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["message"], "Transport settings updated successfully");
    let (_, body) = http(api, "GET", "/api/pjsip/config/global", t, None).await;
    assert_eq!(body["transports"][0]["name"], "transport-udp");
    assert_eq!(body["transports"][0]["bind"], "0.0.0.0:5060");
    srv.stop().await;
}

#[tokio::test]
async fn ispbx_v1_on_the_same_port() {
    let srv = TestServer::start(COMPAT).await;
    let api = srv.compat();
    let (st, body) = http(api, "GET", "/", None, None).await;
    assert_eq!((st, body), (200, json!({"message":"ISPBX Manager API"})));
    let (st, body) = http(api, "GET", "/endpoints", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["endpoints"][0]["extension"], "1001");
    assert_eq!(body["endpoints"][0]["details"]["objecttype"], "endpoint");
    let (st, body) = http(api, "GET", "/endpoints/1002", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["details"]["auth"]["password"], "");
    let (st, body) = http(api, "GET", "/endpoints/1002/config", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["config"]["type"], "endpoint");
    assert!(body["config"]["allow"].is_string());
    let (st, body) = http(api, "GET", "/endpoints/4242", None, None).await;
    assert_eq!((st, body), (404, json!({"detail":"Extension not found"})));
    let (st, body) = http(api, "GET", "/endpoints/4242/config", None, None).await;
    assert_eq!(
        (st, body),
        (404, json!({"detail":"Extension 4242 not found"}))
    );
    let (st, body) = http(api, "POST", "/endpoints", None, Some("{}")).await;
    assert_eq!((st, body), (405, json!({"detail":"Method Not Allowed"})));
    let (st, body) = http(api, "GET", "/nope", None, None).await;
    assert_eq!((st, body), (404, json!({"detail":"Not Found"})));
    srv.stop().await;
}
