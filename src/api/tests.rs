//! Router-level tests: an in-memory fake backend driven through `tower::ServiceExt::oneshot`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::pbx::directory::Extension;

// ---------------------------------------------------------------------------------------------
// Fake backend.

#[derive(Default)]
struct Fake {
    exts: Mutex<BTreeMap<String, Extension>>,
    contacts: Mutex<Vec<ContactInfo>>,
    next_id: AtomicI64,
    contacts_calls: AtomicUsize,
    unavailable: AtomicBool,
    counts: StatusCounts,
}

impl Fake {
    fn check(&self) -> Result<(), BackendError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("fake store is down".into()))
        } else {
            Ok(())
        }
    }
    fn get(&self, n: &str) -> Option<Extension> {
        self.exts.lock().unwrap().get(n).cloned()
    }
    fn len(&self) -> usize {
        self.exts.lock().unwrap().len()
    }
    fn snapshot(&self) -> BTreeMap<String, Extension> {
        self.exts.lock().unwrap().clone()
    }
}

impl ApiBackend for Fake {
    fn list_extensions(&self) -> BoxFut<'_, Result<Vec<Extension>, BackendError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.exts.lock().unwrap().values().cloned().collect())
        })
    }
    fn get_extension<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFut<'a, Result<Option<Extension>, BackendError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.get(number))
        })
    }
    fn create_extension(&self, mut ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
        Box::pin(async move {
            self.check()?;
            let mut exts = self.exts.lock().unwrap();
            if exts.contains_key(&ext.number) {
                return Err(BackendError::Duplicate(ext.number));
            }
            ext.id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            exts.insert(ext.number.clone(), ext.clone());
            Ok(ext)
        })
    }
    fn update_extension(&self, ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
        Box::pin(async move {
            self.check()?;
            let mut exts = self.exts.lock().unwrap();
            match exts.get_mut(&ext.number) {
                Some(slot) => {
                    *slot = ext.clone();
                    Ok(ext)
                }
                None => Err(BackendError::NotFound(ext.number)),
            }
        })
    }
    fn delete_extension<'a>(&'a self, number: &'a str) -> BoxFut<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.check()?;
            match self.exts.lock().unwrap().remove(number) {
                Some(_) => Ok(()),
                None => Err(BackendError::NotFound(number.to_owned())),
            }
        })
    }
    fn contacts<'a>(&'a self, number: Option<&'a str>) -> BoxFut<'a, Vec<ContactInfo>> {
        Box::pin(async move {
            self.contacts_calls.fetch_add(1, Ordering::SeqCst);
            self.contacts
                .lock()
                .unwrap()
                .iter()
                .filter(|c| number.is_none_or(|n| c.number == n))
                .cloned()
                .collect()
        })
    }
    fn status(&self) -> BoxFut<'_, StatusCounts> {
        Box::pin(async move { self.counts.clone() })
    }
}

fn contact(number: &str, port: u16) -> ContactInfo {
    ContactInfo {
        number: number.into(),
        uri: format!("sip:{number}@192.0.2.10:{port};transport=udp"),
        ip: "192.0.2.10".into(),
        port,
        transport: "udp".into(),
        user_agent: Some("Linphone/5.2".into()),
        expires_in: 3542,
        registered_at: 1_700_000_000,
        qualify_status: "Reachable".into(),
        rtt_ms: Some(12.5),
    }
}

// ---------------------------------------------------------------------------------------------
// Harness.

const TOKEN: &str = "static-token-0123456789";
const JWT_SECRET: &[u8] = b"test-jwt-secret";
const ADMIN_PW: &str = "admin-pass-1";

fn cfg() -> ApiConfig {
    ApiConfig {
        require_authentication: true,
        tokens: vec![TOKEN.into()],
        admin_user: "admin".into(),
        admin_password: ADMIN_PW.into(),
        jwt_secret: JWT_SECRET.to_vec(),
        token_ttl: Duration::from_secs(3600),
    }
}

fn setup() -> (Arc<Fake>, Router) {
    setup_with(Fake::default(), cfg())
}

fn setup_with(fake: Fake, cfg: ApiConfig) -> (Arc<Fake>, Router) {
    let fake = Arc::new(fake);
    let app = router(fake.clone(), cfg);
    (fake, app)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(body) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let body = body.map(|b| b.to_string());
    send(app, request(method, uri, token, body.as_deref())).await
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri, Some(TOKEN), None).await
}

async fn post(app: &Router, uri: &str, body: Value) -> Reply {
    call(app, Method::POST, uri, Some(TOKEN), Some(body)).await
}

async fn put(app: &Router, uri: &str, body: Value) -> Reply {
    call(app, Method::PUT, uri, Some(TOKEN), Some(body)).await
}

async fn delete(app: &Router, uri: &str) -> Reply {
    call(app, Method::DELETE, uri, Some(TOKEN), None).await
}

async fn login_from(app: &Router, ip: &str, body: Value) -> Reply {
    let mut req = request(
        Method::POST,
        "/api/auth/login",
        None,
        Some(&body.to_string()),
    );
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    send(app, req).await
}

fn alice() -> Value {
    json!({"number":"1001","name":"Alice","email":"alice@example.com","password":"alice-pass-1",
           "voicemail_pin":"1234","allow_external":true})
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// Authentication.

#[tokio::test]
async fn protected_routes_need_a_token() {
    let (fake, app) = setup();
    let routes = [
        (Method::GET, "/api/extensions", None),
        (Method::POST, "/api/extensions", Some(alice())),
        (Method::GET, "/api/extensions/1001", None),
        (
            Method::PUT,
            "/api/extensions/1001",
            Some(json!({"name":"x"})),
        ),
        (Method::DELETE, "/api/extensions/1001", None),
        (Method::GET, "/api/status/detail", None),
    ];
    for (method, uri, body) in routes {
        let r = call(&app, method.clone(), uri, None, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(r.json(), json!({"error":"Authentication required"}));
        let challenge = r.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(!challenge.contains("invalid_token"));

        let r = call(&app, method.clone(), uri, Some("not-a-token"), body).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} bad token"
        );
        assert!(
            r.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    assert_eq!(fake.len(), 0, "nothing was created without auth");

    // Other schemes are not accepted.
    let mut req = request(Method::GET, "/api/extensions", None, None);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Basic {TOKEN}").parse().unwrap(),
    );
    assert_eq!(send(&app, req).await.status, StatusCode::UNAUTHORIZED);

    // A static token works.
    let r = get(&app, "/api/extensions").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!([]));
}

#[tokio::test]
async fn login_issues_a_working_jwt_and_logout_revokes_it() {
    let (_fake, app) = setup();
    let r = call(
        &app,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username":"admin","password":ADMIN_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(
        keys(&body),
        [
            "expires_in",
            "is_admin",
            "name",
            "success",
            "token",
            "token_type",
            "user"
        ]
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["user"],
        json!({"id":1,"name":"admin","username":"admin"})
    );
    assert_eq!(body["is_admin"], true);
    assert_eq!(body["name"], "admin");
    assert!(!r.text.contains(ADMIN_PW));
    let token = body["token"].as_str().unwrap().to_owned();
    let claims = jwt::decode(JWT_SECRET, &token, auth::unix_now()).unwrap();
    assert_eq!(claims.sub, "admin");
    assert!(claims.exp > claims.iat);

    let r = call(&app, Method::GET, "/api/extensions", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);

    // A JWT signed with another key is rejected.
    let forged = jwt::encode(b"other-secret", &claims);
    let r = call(&app, Method::GET, "/api/extensions", Some(&forged), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call(&app, Method::POST, "/api/auth/logout", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"success":true,"message":"Logged out successfully"})
    );
    let r = call(&app, Method::GET, "/api/extensions", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked on logout");
    // Logout without a token still succeeds (Warden).
    let r = call(&app, Method::POST, "/api/auth/logout", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_jwt_is_rejected() {
    let (_fake, app) = setup();
    let now = auth::unix_now();
    let mut claims = jwt::Claims {
        sub: "admin".into(),
        jti: "j1".into(),
        iat: now - 7200,
        exp: now - 1,
        user: jwt::UserClaim {
            id: 1,
            name: "admin".into(),
            username: "admin".into(),
        },
        is_admin: true,
        name: "admin".into(),
    };
    let expired = jwt::encode(JWT_SECRET, &claims);
    let r = call(&app, Method::GET, "/api/extensions", Some(&expired), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({"error":"Authentication required"}));
    // The same claims, still valid, pass: only `exp` made the difference.
    claims.exp = now + 600;
    let fresh = jwt::encode(JWT_SECRET, &claims);
    let r = call(&app, Method::GET, "/api/extensions", Some(&fresh), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn authentication_off_opens_everything() {
    let (fake, app) = setup_with(
        Fake::default(),
        ApiConfig {
            require_authentication: false,
            ..cfg()
        },
    );
    let r = call(&app, Method::GET, "/api/extensions", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &app,
        Method::POST,
        "/api/extensions",
        Some("garbage"),
        Some(alice()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(fake.len(), 1);
    let r = call(&app, Method::GET, "/api/status/detail", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn login_errors_and_throttle() {
    let (_fake, app) = setup();
    let r = login_from(&app, "192.0.2.1", json!({"password":"x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "Username and password required");
    assert_eq!(r.json()["field"], "username");
    let r = login_from(&app, "192.0.2.1", json!({"username":"admin","password":""})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "password");
    let r = login_from(
        &app,
        "192.0.2.1",
        json!({"username":{"a":1},"password":"x"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "username");
    let r = send(
        &app,
        request(Method::POST, "/api/auth/login", None, Some("{not json")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON body: ")
    );

    for _ in 0..LOGIN_MAX_ATTEMPTS {
        let r = login_from(
            &app,
            "192.0.2.1",
            json!({"username":"admin","password":"wrong-pw"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json(), json!({"error":"Invalid credentials"}));
    }
    // Even the right password is refused now, from this address only.
    let good = json!({"username":"admin","password":ADMIN_PW});
    let r = login_from(&app, "192.0.2.1", good.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json(),
        json!({"error":"Too many login attempts. Please try again later."})
    );
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let r = login_from(&app, "192.0.2.2", good.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    // Wrong user name with the admin password fails.
    let r = login_from(
        &app,
        "192.0.2.3",
        json!({"username":"root","password":ADMIN_PW}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_is_disabled_without_an_admin_password() {
    let (_fake, app) = setup_with(
        Fake::default(),
        ApiConfig {
            admin_password: String::new(),
            ..cfg()
        },
    );
    let r = login_from(
        &app,
        "192.0.2.1",
        json!({"username":"admin","password":"anything"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// Status, health, routing.

#[tokio::test]
async fn status_is_public_with_exactly_the_8_keys() {
    let fake = Fake {
        counts: StatusCounts {
            registered_extensions: 2,
            active_calls: 1,
            total_calls: 99,
            active_recordings: 3,
            active_conferences: 4,
            parked_calls: 5,
            queued_calls: 6,
            registered_contacts: 7,
            extensions: 8,
        },
        ..Fake::default()
    };
    let (_fake, app) = setup_with(fake, cfg());
    let r = call(&app, Method::GET, "/api/status", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"running":true,"registered_extensions":2,"active_calls":1,"total_calls":99,
               "active_recordings":3,"active_conferences":4,"parked_calls":5,"queued_calls":6})
    );
    assert_eq!(keys(&r.json()).len(), 8);

    let r = get(&app, "/api/status/detail").await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.json();
    assert_eq!(d["registered_contacts"], 7);
    assert_eq!(d["extensions"], 8);
    assert_eq!(d["queued_calls"], 6);
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(keys(&d).len(), 11);

    let r = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status":"ok"}));
}

#[tokio::test]
async fn v1_redirects_and_json_404_405() {
    let (_fake, app) = setup();
    let r = call(
        &app,
        Method::GET,
        "/api/v1/extensions/1001?x=1&y=2",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers[header::LOCATION], "/api/extensions/1001?x=1&y=2");
    let r = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers[header::LOCATION], "/api/auth/login");

    for uri in [
        "/api/nope",
        "/api",
        "/api/",
        "/api/extensions/1001/extra",
        "/api/queues/nope",
    ] {
        let r = call(&app, Method::GET, uri, Some(TOKEN), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.json(), json!({"error":"Not found"}));
    }
    for (method, uri) in [
        (Method::PATCH, "/api/extensions"),
        (Method::DELETE, "/api/extensions"),
        (Method::POST, "/api/extensions/1001"),
        (Method::GET, "/api/auth/login"),
        (Method::POST, "/api/status"),
        (Method::DELETE, "/health"),
    ] {
        let r = call(&app, method.clone(), uri, Some(TOKEN), None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(r.json(), json!({"error":"Method not allowed"}));
    }
}

// ---------------------------------------------------------------------------------------------
// Extensions CRUD.

#[tokio::test]
async fn create_then_duplicate_is_409() {
    let (fake, app) = setup();
    let r = post(&app, "/api/extensions", alice()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Extension added successfully");
    let e = &body["extension"];
    assert_eq!(e["number"], "1001");
    assert_eq!(e["name"], "Alice");
    assert_eq!(e["email"], "alice@example.com");
    assert_eq!(e["allow_external"], true);
    assert_eq!(e["registered"], false);
    assert_eq!(e["contacts"], json!([]));
    assert_eq!(e["id"], 1);

    let stored = fake.get("1001").unwrap();
    assert_eq!(stored.secret, "alice-pass-1");
    assert_eq!(stored.voicemail_pin.as_deref(), Some("1234"));
    assert!(stored.allow_external);
    assert!(stored.created_at > 0);

    let mut dup = alice();
    dup["name"] = json!("Other");
    let r = post(&app, "/api/extensions", dup).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json(),
        json!({"error":"Extension already exists","field":"number","rule":"unique"})
    );
    assert_eq!(fake.get("1001").unwrap().name, "Alice");
}

#[tokio::test]
async fn each_validation_rule_is_400_naming_the_field_and_changes_nothing() {
    let (fake, app) = setup();
    let with = |k: &str, v: Value| {
        let mut b = alice();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = alice();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("number"), "number", "required"),
        (
            with("number", json!({"nested":true})),
            "number",
            "type:string",
        ),
        (with("number", json!("7")), "number", "digits_between:2,20"),
        (
            with("number", json!("123456789012345678901")),
            "number",
            "digits_between:2,20",
        ),
        (
            with("number", json!("10 01")),
            "number",
            "digits_between:2,20",
        ),
        (without("name"), "name", "required"),
        (without("password"), "password", "required"),
        (with("password", json!("short")), "password", "min_length:8"),
        (
            with("password", json!("x".repeat(129))),
            "password",
            "max_length:128",
        ),
        (
            with("password", json!("tab\there1")),
            "password",
            "no_control_chars",
        ),
        (with("email", json!("not-an-email")), "email", "email"),
        (
            with("voicemail_pin", json!("12")),
            "voicemail_pin",
            "digits_between:4,6",
        ),
        (
            with("allow_external", json!("maybe")),
            "allow_external",
            "type:boolean",
        ),
        (
            with("transport", json!("sctp")),
            "transport",
            "in:udp,tcp,tls",
        ),
        (
            with("codecs", json!(["ulaw", "g722", "foo"])),
            "codecs.2",
            "in:ulaw,alaw,g722,g729,opus,gsm,ilbc,speex,h264,vp8",
        ),
        (
            with("max_contacts", json!(0)),
            "max_contacts",
            "between:1,100",
        ),
        (
            with("qualify_frequency", json!(4000)),
            "qualify_frequency",
            "between:0,3600",
        ),
        (
            with("context", json!("bad context!")),
            "context",
            "regex:^[A-Za-z0-9_.-]{1,80}$",
        ),
        (
            with("secret", json!("another-pass")),
            "secret",
            "alias_conflict",
        ),
    ];
    for (body, field, rule) in cases {
        let r = post(&app, "/api/extensions", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let j = r.json();
        assert_eq!(j["field"], field, "{body} → {j}");
        assert_eq!(j["rule"], rule, "{body} → {j}");
        assert!(j["error"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // The example from the product issue, verbatim.
    let r = post(&app, "/api/extensions", with("password", json!("1234567"))).await;
    assert_eq!(
        r.json(),
        json!({"error":"Password must be at least 8 characters","field":"password","rule":"min_length:8"})
    );
    // Bodies that are not JSON objects.
    for raw in ["", "{", "not json", "[1,2]", "\"1001\""] {
        let r = send(
            &app,
            request(Method::POST, "/api/extensions", Some(TOKEN), Some(raw)),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON body: "),
            "{raw:?}"
        );
    }
    assert_eq!(fake.len(), 0, "no invalid body reached the backend");
}

#[tokio::test]
async fn rayanpbx_alias_body_creates_with_mapped_fields() {
    let (fake, app) = setup();
    let body = json!({
        "extension_number": "101", "name": "Bob", "secret": "rayan-secret-1",
        "email": "bob@example.com", "enabled": false, "context": "from-internal-custom",
        "transport": "transport-tls", "codecs": ["PCMA", "g722", "pcmu", "opus"],
        "max_contacts": 3, "direct_media": "no", "qualify_frequency": 30,
        "caller_id": "\"Bob B\" <101>", "voicemail_enabled": true, "notes": "desk phone",
        "remove_existing": false, "some_unknown_field": {"ignored": true}
    });
    let r = post(&app, "/api/extensions", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = fake.get("101").unwrap();
    assert_eq!(e.name, "Bob");
    assert_eq!(e.secret, "rayan-secret-1");
    assert_eq!(e.email.as_deref(), Some("bob@example.com"));
    assert!(!e.enabled);
    assert_eq!(e.context, "from-internal-custom");
    assert_eq!(e.transport.as_deref(), Some("tls"));
    assert_eq!(e.codecs, vec!["alaw", "g722", "ulaw", "opus"]);
    assert_eq!(e.max_contacts, 3);
    assert_eq!(e.qualify_frequency, 30);
    assert_eq!(e.caller_id.as_deref(), Some("\"Bob B\" <101>"));
    assert!(e.voicemail_enabled);
    assert_eq!(e.voicemail_pin, None, "no PIN needed for RayanPBX clients");
    assert_eq!(e.notes.as_deref(), Some("desk phone"));
    assert!(!e.remove_existing);
    let v = &r.json()["extension"];
    assert_eq!(v["transport"], "tls");
    assert_eq!(v["codecs"], json!(["alaw", "g722", "ulaw", "opus"]));
    assert_eq!(v["enabled"], false);
}

#[tokio::test]
async fn secrets_never_appear_in_responses() {
    const SECRET: &str = "Zq9-unique-sip-secret";
    const SECRET2: &str = "Yx8-another-unique-secret";
    const PIN: &str = "864209";
    let (fake, app) = setup();
    fake.contacts.lock().unwrap().push(contact("1001", 5062));
    let mut body = alice();
    body["password"] = json!(SECRET);
    body["voicemail_pin"] = json!(PIN);
    let mut replies = vec![post(&app, "/api/extensions", body).await];
    replies.push(get(&app, "/api/extensions").await);
    replies.push(get(&app, "/api/extensions/1001").await);
    replies.push(
        put(
            &app,
            "/api/extensions/1001",
            json!({"secret": SECRET2, "voicemail_pin": "135790"}),
        )
        .await,
    );
    replies.push(get(&app, "/api/extensions").await);
    replies.push(
        post(
            &app,
            "/api/extensions",
            json!({"number":"1001","name":"x","password":SECRET}),
        )
        .await,
    );
    for r in &replies {
        assert!(
            r.status.is_success() || r.status == StatusCode::CONFLICT,
            "{}",
            r.text
        );
        for needle in [
            SECRET,
            SECRET2,
            PIN,
            "135790",
            "\"secret\"",
            "\"password\"",
            "voicemail_pin",
        ] {
            assert!(!r.text.contains(needle), "{needle} leaked in {}", r.text);
        }
    }
    assert_eq!(fake.get("1001").unwrap().secret, SECRET2);
}

#[tokio::test]
async fn put_is_partial_and_keeps_the_password() {
    let (fake, app) = setup();
    assert_eq!(
        post(&app, "/api/extensions", alice()).await.status,
        StatusCode::OK
    );
    let before = fake.get("1001").unwrap();

    let r = put(
        &app,
        "/api/extensions/1001",
        json!({"name":"Alice Cooper","allow_external":false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["success"], true);
    assert_eq!(r.json()["message"], "Extension updated successfully");
    assert_eq!(r.json()["extension"]["name"], "Alice Cooper");
    let after = fake.get("1001").unwrap();
    assert_eq!(after.secret, before.secret);
    assert_eq!(after.name, "Alice Cooper");
    assert!(!after.allow_external);
    assert_eq!(after.email, before.email);
    assert_eq!(after.voicemail_pin, before.voicemail_pin);
    assert_eq!(after.id, before.id);
    assert_eq!(after.created_at, before.created_at);

    // An empty password (RayanPBX forms) also keeps it; the same number is allowed.
    let r = put(
        &app,
        "/api/extensions/1001",
        json!({"number":"1001","password":""}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(fake.get("1001").unwrap().secret, before.secret);

    // A new password replaces it.
    let r = put(
        &app,
        "/api/extensions/1001",
        json!({"password":"brand-new-pw"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(fake.get("1001").unwrap().secret, "brand-new-pw");

    // `null` clears nullable fields.
    let r = put(&app, "/api/extensions/1001", json!({"email":null})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(fake.get("1001").unwrap().email, None);
}

#[tokio::test]
async fn invalid_put_changes_nothing() {
    let (fake, app) = setup();
    assert_eq!(
        post(&app, "/api/extensions", alice()).await.status,
        StatusCode::OK
    );
    let before = fake.snapshot();
    let cases = [
        (json!({"number":"1002"}), "number", "immutable"),
        (
            json!({"extension_number":"1002"}),
            "extension_number",
            "immutable",
        ),
        (
            json!({"name":"ok","codecs":["ulaw","foo"]}),
            "codecs.1",
            "in:ulaw,alaw,g722,g729,opus,gsm,ilbc,speex,h264,vp8",
        ),
        (json!({"password":"short"}), "password", "min_length:8"),
        (json!({"email":"bad"}), "email", "email"),
        (json!({"name":""}), "name", "required"),
    ];
    for (body, field, rule) in cases {
        let r = put(&app, "/api/extensions/1001", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (r.json()["field"].clone(), r.json()["rule"].clone()),
            (json!(field), json!(rule))
        );
    }
    let r = send(
        &app,
        request(
            Method::PUT,
            "/api/extensions/1001",
            Some(TOKEN),
            Some("{oops"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn unknown_extensions_are_404() {
    let (_fake, app) = setup();
    let not_found = json!({"error":"Extension not found"});
    let r = put(&app, "/api/extensions/4242", json!({"name":"x"})).await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    let r = get(&app, "/api/extensions/4242").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    let r = get(&app, "/api/extensions/abc").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    let r = delete(&app, "/api/extensions/4242").await;
    assert_eq!((r.status, r.json()), (StatusCode::NOT_FOUND, not_found));
}

#[tokio::test]
async fn delete_then_gone() {
    let (fake, app) = setup();
    assert_eq!(
        post(&app, "/api/extensions", alice()).await.status,
        StatusCode::OK
    );
    let r = delete(&app, "/api/extensions/1001").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"success":true,"message":"Extension deleted successfully"})
    );
    assert_eq!(fake.len(), 0);
    assert_eq!(
        get(&app, "/api/extensions/1001").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&app, "/api/extensions/1001").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        put(&app, "/api/extensions/1001", json!({"name":"x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn listing_merges_live_contacts_in_one_call() {
    let (fake, app) = setup();
    assert_eq!(
        post(&app, "/api/extensions", alice()).await.status,
        StatusCode::OK
    );
    let bob = json!({"number":"1002","name":"Bob","password":"bob-pass-12"});
    assert_eq!(
        post(&app, "/api/extensions", bob).await.status,
        StatusCode::OK
    );
    {
        let mut c = fake.contacts.lock().unwrap();
        c.push(contact("1001", 5062));
        c.push(contact("1001", 5064));
        c.push(contact("9999", 5066)); // a binding without an extension row is not listed
    }
    let calls_before = fake.contacts_calls.load(Ordering::SeqCst);
    let r = get(&app, "/api/extensions").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(fake.contacts_calls.load(Ordering::SeqCst) - calls_before, 1);
    let list = r.json();
    let list = list.as_array().expect("a bare JSON array");
    assert_eq!(list.len(), 2);
    let a = &list[0];
    assert_eq!(a["number"], "1001");
    assert_eq!(a["registered"], true);
    assert_eq!(
        keys(a),
        [
            "allow_external",
            "caller_id",
            "codecs",
            "contacts",
            "context",
            "created_at",
            "email",
            "enabled",
            "id",
            "is_admin",
            "max_contacts",
            "name",
            "notes",
            "number",
            "qualify_frequency",
            "registered",
            "remove_existing",
            "transport",
            "updated_at",
            "voicemail_enabled",
        ]
    );
    assert_eq!(
        a["contacts"][0],
        json!({"uri":"sip:1001@192.0.2.10:5062;transport=udp","ip":"192.0.2.10","port":5062,
               "transport":"udp","user_agent":"Linphone/5.2","expires":3542,
               "qualify_status":"Reachable","rtt_ms":12.5})
    );
    assert_eq!(a["contacts"][1]["port"], 5064);
    let b = &list[1];
    assert_eq!(b["number"], "1002");
    assert_eq!(b["registered"], false);
    assert_eq!(b["contacts"], json!([]));

    let r = get(&app, "/api/extensions/1001").await;
    assert_eq!(r.json()["registered"], true);
    assert_eq!(r.json()["contacts"].as_array().unwrap().len(), 2);
    let r = get(&app, "/api/extensions/1002").await;
    assert_eq!(r.json()["registered"], false);
}

#[tokio::test]
async fn backend_unavailable_is_503_without_details() {
    let (fake, app) = setup();
    fake.unavailable.store(true, Ordering::SeqCst);
    for r in [
        get(&app, "/api/extensions").await,
        get(&app, "/api/extensions/1001").await,
        post(&app, "/api/extensions", alice()).await,
        put(&app, "/api/extensions/1001", json!({"name":"x"})).await,
        delete(&app, "/api/extensions/1001").await,
    ] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.json(), json!({"error":"Service unavailable"}));
    }
}

// ---------------------------------------------------------------------------------------------
// A real socket (ephemeral port): the server passes client addresses to the handlers.

#[tokio::test]
async fn serve_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::new(Fake::default()), cfg());
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stop_rx.await;
    }));

    let mut last = String::new();
    // Six failed logins over real connections: the sixth is throttled by client address.
    for _ in 0..=LOGIN_MAX_ATTEMPTS {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = r#"{"username":"admin","password":"wrong-pw"}"#;
        let req = format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        last.clear();
        s.read_to_string(&mut last).await.unwrap();
    }
    assert!(last.starts_with("HTTP/1.1 429"), "{last}");

    // Another client address (all of 127/8 is loopback on Linux) is not throttled.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    let body = format!(r#"{{"username":"admin","password":"{ADMIN_PW}"}}"#);
    let req = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(r#"{"status":"ok"}"#), "{resp}");

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn cors_preflight_and_allowed_origin() {
    let (_fake, app) = setup();
    let app = app.layer(crate::api::cors_layer(
        &["https://admin.example.com".into()],
    ));
    let pre = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/extensions")
        .header(header::ORIGIN, "https://admin.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap();
    let r = send(&app, pre).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(
        r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://admin.example.com"
    );
    assert!(
        r.headers
            .get(header::ACCESS_CONTROL_ALLOW_METHODS)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // A simple request from another origin gets no allow header.
    let other = Request::builder()
        .uri("/api/status")
        .header(header::ORIGIN, "https://evil.example.net")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, other).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
