//! RayanPBX API (rest-api.md §1, Appendix A; seeds 000–002), served on the compat listener.
//!
//! | Method | Path | Auth |
//! |---|---|---|
//! | GET | `/api/health` | public |
//! | POST | `/api/auth/login`, `/api/auth/refresh` | public |
//! | POST | `/api/auth/logout`; GET `/api/auth/user` | jwt |
//! | GET, POST | `/api/extensions` | jwt |
//! | GET, PUT, DELETE | `/api/extensions/{id}` (the numeric store id) | jwt |
//! | POST | `/api/extensions/{id}/toggle` | jwt |
//! | GET | `/api/extensions/{id}/verify`, `/api/extensions/{id}/diagnostics` | jwt |
//! | GET | `/api/extensions/asterisk/endpoints` | jwt |
//! | GET | `/api/pjsip/config/global`; POST `/api/pjsip/config/{external-media,transport}` | jwt |
//! | POST | `/api/console/execute`; GET `/api/console/endpoints` | jwt |
//! | POST | `/api/validate/pjsip` | jwt |
//!
//! Envelopes (§0.1): 401 `{"success":false,"error":"Unauthenticated",…,"http_code":401}`, 404
//! `Resource not found` with Laravel's `findOrFail` message, 422 `Validation failed` with
//! `errors: {field: [messages]}` in Laravel's wording (dotted keys such as `codecs.0`). Tokens:
//! `Authorization: Bearer`, the `rayanpbx_token` cookie, or a static `api.tokens` entry.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use axum::Extension as Ext;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::auth::{bearer, client_ip, unix_now};
use super::backend::{BackendError, ContactInfo};
use super::compat::CompatState;
use super::extensions::is_valid_email;
use crate::pbx::directory::Extension;
use crate::pjsip_conf::PjsipObject;

type St = State<CompatState>;

/// Access token lifetime (RayanPBX `JWT_TTL`).
const ACCESS_TTL: u64 = 7_200;
/// Refresh token lifetime.
const REFRESH_TTL: u64 = 604_800;
/// Codecs RayanPBX accepts.
const CODECS: &[&str] = &[
    "ulaw", "alaw", "g722", "g729", "opus", "gsm", "ilbc", "speex", "h264", "vp8",
];
const TRANSPORTS: &[&str] = &[
    "udp",
    "tcp",
    "tls",
    "transport-udp",
    "transport-tcp",
    "transport-tls",
];
/// `POST /api/console/execute` refuses commands starting with these (RayanPBX's list).
const BLOCKED_COMMANDS: &[&str] = &[
    "core stop",
    "core restart",
    "core shutdown",
    "module unload",
    "database",
    "shell",
    "system",
];

pub(crate) fn routes(state: CompatState) -> axum::Router {
    let protected = axum::Router::new()
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/user", get(user))
        .route("/api/extensions", get(index).post(store))
        .route(
            "/api/extensions/asterisk/endpoints",
            get(asterisk_endpoints),
        )
        .route(
            "/api/extensions/{id}",
            get(show).put(update).delete(destroy),
        )
        .route("/api/extensions/{id}/toggle", post(toggle))
        .route("/api/extensions/{id}/verify", get(verify))
        .route("/api/extensions/{id}/diagnostics", get(diagnostics))
        .route("/api/pjsip/config/global", get(pjsip_global))
        .route("/api/pjsip/config/external-media", post(external_media))
        .route("/api/pjsip/config/transport", post(transport))
        .route("/api/console/execute", post(console_execute))
        .route("/api/console/endpoints", get(console_endpoints))
        .route("/api/validate/pjsip", post(validate_pjsip))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    axum::Router::new()
        .route("/api/health", get(health))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .merge(protected)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Envelopes.

/// Laravel's error envelope (`bootstrap/app.php`).
pub(crate) fn envelope(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({
            "success": false,
            "error": error,
            "message": message.into(),
            "http_code": status.as_u16(),
        })),
    )
        .into_response()
}

/// Validation errors by field, in Laravel's wording.
#[derive(Debug, Default)]
struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    #[allow(clippy::result_large_err)]
    fn into_result(self) -> Result<(), Response> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.response())
        }
    }

    fn response(self) -> Response {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "success": false,
                "error": "Validation failed",
                "message": "The given data was invalid.",
                "errors": self.0,
                "http_code": 422,
            })),
        )
            .into_response()
    }
}

/// The attribute name in messages (`extension_number` → `extension number`).
fn attr(field: &str) -> String {
    field.replace('_', " ")
}

fn not_found_model(id: &str) -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        "Resource not found",
        format!("No query results for model [App\\Models\\Extension] {id}"),
    )
}

fn server_error(e: BackendError) -> Response {
    tracing::warn!(error = %e, "RayanPBX API backend error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"success": false, "error": "Server Error", "message": e.to_string()})),
    )
        .into_response()
}

/// A JSON body as an object; anything else counts as empty (Laravel then reports the
/// required fields).
fn body_object(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Present and not null / "" (Laravel's `ConvertEmptyStringsToNull`).
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Laravel rules used here.

fn rule_string<'a>(e: &mut Errors, key: &str, v: &'a Value) -> Option<&'a str> {
    match v.as_str() {
        Some(s) => Some(s),
        None => {
            e.add(key, format!("The {} field must be a string.", attr(key)));
            None
        }
    }
}

fn rule_bool(e: &mut Errors, key: &str, v: &Value) -> Option<bool> {
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_u64() == Some(0) => Some(false),
        Value::Number(n) if n.as_u64() == Some(1) => Some(true),
        Value::String(s) if s == "0" => Some(false),
        Value::String(s) if s == "1" => Some(true),
        _ => None,
    };
    if b.is_none() {
        e.add(
            key,
            format!("The {} field must be true or false.", attr(key)),
        );
    }
    b
}

fn rule_int(e: &mut Errors, key: &str, v: &Value, min: i64, max: i64) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        e.add(key, format!("The {} field must be an integer.", attr(key)));
        return None;
    };
    if n < min {
        e.add(
            key,
            format!("The {} field must be at least {min}.", attr(key)),
        );
        return None;
    }
    if n > max {
        e.add(
            key,
            format!("The {} field must not be greater than {max}.", attr(key)),
        );
        return None;
    }
    u32::try_from(n).ok()
}

fn rule_len(e: &mut Errors, key: &str, s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    if n < min {
        e.add(
            key,
            format!("The {} field must be at least {min} characters.", attr(key)),
        );
        return false;
    }
    if n > max {
        e.add(
            key,
            format!(
                "The {} field must not be greater than {max} characters.",
                attr(key)
            ),
        );
        return false;
    }
    true
}

fn rule_in(e: &mut Errors, key: &str, s: &str, allowed: &[&str]) -> bool {
    let ok = allowed.contains(&s);
    if !ok {
        e.add(key, format!("The selected {} is invalid.", attr(key)));
    }
    ok
}

fn rule_required(e: &mut Errors, obj: &Map<String, Value>, key: &str) -> bool {
    let ok = present(obj, key).is_some();
    if !ok {
        e.add(key, format!("The {} field is required.", attr(key)));
    }
    ok
}

fn no_controls(e: &mut Errors, key: &str, s: &str) -> bool {
    let ok = !s.chars().any(char::is_control);
    if !ok {
        e.add(key, format!("The {} field format is invalid.", attr(key)));
    }
    ok
}

/// The fields of `POST`/`PUT /api/extensions` (Appendix A rows 50, 52), applied to `ext`.
/// `create`: `extension_number`, `name`, `secret` required. Dialtone adds: the number is 2–20
/// digits (it is the SIP user), no control characters in text.
fn apply_fields(obj: &Map<String, Value>, ext: &mut Extension, create: bool) -> Errors {
    let mut e = Errors::default();
    if create && rule_required(&mut e, obj, "extension_number") {
        let v = &obj["extension_number"];
        if let Some(s) = rule_string(&mut e, "extension_number", v)
            && rule_len(&mut e, "extension_number", s, 2, 20)
        {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                ext.number = s.to_owned();
            } else {
                e.add(
                    "extension_number",
                    "The extension number field format is invalid.",
                );
            }
        }
    }
    if create {
        rule_required(&mut e, obj, "name");
    }
    if let Some(v) = present(obj, "name")
        && let Some(s) = rule_string(&mut e, "name", v)
        && rule_len(&mut e, "name", s, 0, 255)
        && no_controls(&mut e, "name", s)
    {
        ext.name = s.trim().to_owned();
    }
    if let Some(v) = present(obj, "email") {
        match v.as_str() {
            Some(s) if is_valid_email(s) => ext.email = Some(s.to_owned()),
            _ => e.add("email", "The email field must be a valid email address."),
        }
    } else if obj.contains_key("email") {
        ext.email = None;
    }
    if create {
        rule_required(&mut e, obj, "secret");
    }
    // PUT: an empty or absent secret keeps the old one (PR #179/#183).
    if let Some(v) = present(obj, "secret")
        && let Some(s) = rule_string(&mut e, "secret", v)
        && rule_len(&mut e, "secret", s, 8, 128)
        && no_controls(&mut e, "secret", s)
    {
        ext.secret = s.to_owned();
    }
    if let Some(v) = present(obj, "enabled")
        && let Some(b) = rule_bool(&mut e, "enabled", v)
    {
        ext.enabled = b;
    }
    if let Some(v) = present(obj, "context")
        && let Some(s) = rule_string(&mut e, "context", v)
    {
        let ok = (1..=80).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            ext.context = s.to_owned();
        } else {
            e.add("context", "The context field format is invalid.");
        }
    }
    if let Some(v) = present(obj, "transport")
        && let Some(s) = rule_string(&mut e, "transport", v)
        && rule_in(&mut e, "transport", s, TRANSPORTS)
    {
        ext.transport = Some(s.trim_start_matches("transport-").to_owned());
    }
    if let Some(v) = present(obj, "codecs") {
        match v.as_array() {
            None => e.add("codecs", "The codecs field must be an array."),
            Some(items) => {
                let mut list: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let key = format!("codecs.{i}");
                    match item.as_str() {
                        None => e.add(&key, format!("The {key} field must be a string.")),
                        Some(c) if CODECS.contains(&c) => {
                            if !list.iter().any(|x| x == c) {
                                list.push(c.to_owned());
                            }
                        }
                        Some(_) => e.add(&key, format!("The selected {key} is invalid.")),
                    }
                }
                if !list.is_empty() {
                    ext.codecs = list;
                }
            }
        }
    }
    if let Some(v) = present(obj, "max_contacts")
        && let Some(n) = rule_int(&mut e, "max_contacts", v, 1, 10)
    {
        ext.max_contacts = n;
    }
    if let Some(v) = present(obj, "direct_media")
        && let Some(s) = rule_string(&mut e, "direct_media", v)
        && rule_in(&mut e, "direct_media", s, &["yes", "no"])
    {
        ext.direct_media = s == "yes";
    }
    if let Some(v) = present(obj, "qualify_frequency")
        && let Some(n) = rule_int(&mut e, "qualify_frequency", v, 0, 3600)
    {
        ext.qualify_frequency = n;
    }
    if let Some(v) = present(obj, "caller_id") {
        if let Some(s) = rule_string(&mut e, "caller_id", v)
            && rule_len(&mut e, "caller_id", s, 0, 255)
            && no_controls(&mut e, "caller_id", s)
        {
            ext.caller_id = Some(s.to_owned());
        }
    } else if obj.contains_key("caller_id") {
        ext.caller_id = None;
    }
    if let Some(v) = present(obj, "voicemail_enabled")
        && let Some(b) = rule_bool(&mut e, "voicemail_enabled", v)
    {
        ext.voicemail_enabled = b;
        ext.mailboxes = b.then(|| format!("{}@default", ext.number));
    }
    if let Some(v) = present(obj, "notes") {
        if let Some(s) = rule_string(&mut e, "notes", v)
            && rule_len(&mut e, "notes", s, 0, 4096)
        {
            ext.notes = Some(s.to_owned());
        }
    } else if obj.contains_key("notes") {
        ext.notes = None;
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Views.

/// Laravel's timestamp format.
fn laravel_time(unix: i64) -> String {
    let iso = super::cdr::iso8601(unix.saturating_mul(1000));
    format!("{}.000000Z", iso.trim_end_matches('Z'))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The Extension model (without `secret`).
fn ext_json(e: &Extension) -> Map<String, Value> {
    let v = json!({
        "id": e.id,
        "extension_number": e.number,
        "name": e.name,
        "email": e.email,
        "enabled": e.enabled,
        "context": e.context,
        "transport": e.transport.as_deref().unwrap_or("udp"),
        "codecs": e.codecs,
        "max_contacts": e.max_contacts,
        "direct_media": yes_no(e.direct_media),
        "qualify_frequency": e.qualify_frequency,
        "caller_id": e.caller_id,
        "voicemail_enabled": e.voicemail_enabled,
        "notes": e.notes,
        "created_at": laravel_time(e.created_at),
        "updated_at": laravel_time(e.updated_at),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Asterisk's device state text of an extension from its contacts (no calls known here).
fn asterisk_state(e: &Extension, contacts: usize) -> &'static str {
    if !e.enabled {
        "Not Found"
    } else if contacts == 0 {
        "Unavailable"
    } else {
        "Not in use"
    }
}

fn contact_status(c: &ContactInfo) -> &'static str {
    match c.qualify_status.as_str() {
        "unreachable" | "Unreachable" => "Unavailable",
        _ => "Available",
    }
}

/// `EndpointDetail` of verify (`null` when the endpoint is not loaded, i.e. disabled).
fn endpoint_detail(e: &Extension, contacts: &[&ContactInfo]) -> Value {
    if !e.enabled {
        return Value::Null;
    }
    let list: Vec<Value> = contacts
        .iter()
        .map(|c| {
            json!({
                "uri": format!("{}@{}:{}", e.number, c.ip, c.port),
                "status": contact_status(c),
            })
        })
        .collect();
    json!({
        "endpoint": e.number,
        "state": asterisk_state(e, contacts.len()),
        "contacts": list,
        "transport": e.pjsip_extra.transport_name.clone()
            .or_else(|| e.transport.as_deref().map(|t| format!("transport-{t}"))),
        "auth": e.number,
    })
}

fn registration_status(e: &Extension, contacts: &[&ContactInfo]) -> Value {
    if !e.enabled {
        return json!({"registered": false, "status": "Not Found", "contacts": 0});
    }
    json!({
        "registered": !contacts.is_empty(),
        "status": if contacts.is_empty() { "Unavailable" } else { "Registered" },
        "contacts": contacts.len(),
        "details": endpoint_detail(e, contacts),
    })
}

#[allow(clippy::result_large_err)]
async fn find_by_id(st: &CompatState, id: &str) -> Result<Extension, Response> {
    let Ok(n) = id.parse::<i64>() else {
        return Err(not_found_model(id));
    };
    let list = st.api.list_extensions().await.map_err(server_error)?;
    list.into_iter()
        .find(|e| e.id == n)
        .ok_or_else(|| not_found_model(id))
}

async fn contacts_of(st: &CompatState, number: &str) -> Vec<ContactInfo> {
    st.api
        .contacts(Some(number))
        .await
        .into_iter()
        .filter(|c| c.number == number)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Auth.

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "rayanpbx_token" && !v.is_empty()).then_some(v)
        })
}

/// JWT (header or `rayanpbx_token` cookie) or static token; 401 envelope otherwise.
pub(crate) async fn require_auth(State(st): St, req: Request, next: Next) -> Response {
    let token = bearer(req.headers()).or_else(|| cookie_token(req.headers()));
    let ok = token.and_then(|t| st.auth.authenticate(t, unix_now()));
    if ok.is_none() && st.auth.required() {
        return envelope(
            StatusCode::UNAUTHORIZED,
            "Unauthenticated",
            "Authentication is required to access this resource.",
        );
    }
    next.run(req).await
}

fn token_body(st: &CompatState, user: &str) -> (Value, String) {
    let now = unix_now();
    let token = st.auth.issue_ttl(user, now, ACCESS_TTL, false);
    let refresh = st.auth.issue_ttl(user, now, REFRESH_TTL, true);
    let body = json!({
        "token": token,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": ACCESS_TTL,
        "user": {"id": user, "name": user, "email": format!("{user}@local")},
    });
    (body, token)
}

async fn login(State(st): St, conn: Option<Ext<ConnectInfo<SocketAddr>>>, body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut e = Errors::default();
    for f in ["username", "password"] {
        if rule_required(&mut e, &obj, f) {
            rule_string(&mut e, f, &obj[f]);
        }
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    let username = obj["username"].as_str().unwrap_or_default();
    let password = obj["password"].as_str().unwrap_or_default();
    let ip = client_ip(conn);
    let mut e = Errors::default();
    if st.auth.login_attempt(ip).is_err() {
        e.add(
            "username",
            "Too many login attempts. Please try again later.",
        );
        return e.response();
    }
    if !st.auth.credentials_ok(username, password) {
        tracing::info!(%ip, "RayanPBX login failed");
        e.add("username", "The provided credentials are incorrect.");
        return e.response();
    }
    st.auth.login_clear(ip);
    let (body, token) = token_body(&st, username);
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "rayanpbx_token={token}; Max-Age={ACCESS_TTL}; Path=/; HttpOnly; SameSite=Lax"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn refresh(State(st): St, body: Bytes) -> Response {
    let obj = body_object(&body);
    let Some(token) = present(&obj, "refresh_token").and_then(Value::as_str) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Refresh token required"})),
        )
            .into_response();
    };
    match st.auth.verify_refresh(token, unix_now()) {
        Some(user) => {
            let (mut body, _) = token_body(&st, &user);
            if let Some(m) = body.as_object_mut() {
                m.remove("user");
            }
            Json(body).into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Invalid refresh token"})),
        )
            .into_response(),
    }
}

async fn logout(State(st): St, headers: HeaderMap) -> Response {
    if let Some(t) = bearer(&headers).or_else(|| cookie_token(&headers)) {
        st.auth.revoke(t, unix_now());
    }
    let mut resp = Json(json!({"message": "Logged out successfully"})).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("rayanpbx_token=; Max-Age=0; Path=/; HttpOnly"),
    );
    resp
}

async fn user(headers: HeaderMap, State(st): St) -> Response {
    let name = bearer(&headers)
        .or_else(|| cookie_token(&headers))
        .and_then(|t| st.auth.authenticate(t, unix_now()))
        .map(|p| match p {
            super::Principal::User(u) => u,
            other => other.to_string(),
        })
        .unwrap_or_else(|| "anonymous".into());
    Json(json!({"user": {"id": name, "name": name, "email": format!("{name}@local")}}))
        .into_response()
}

async fn health(State(st): St) -> Response {
    let db = if st.api.list_extensions().await.is_ok() {
        "connected"
    } else {
        "disconnected"
    };
    Json(json!({
        "status": "healthy",
        "timestamp": laravel_time(i64::try_from(unix_now()).unwrap_or(0)),
        "version": "1.0.0",
        "services": {"database": db, "asterisk": "running"},
        "app": {"name": "Dialtone", "env": "production", "debug": false},
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Extensions.

async fn index(State(st): St) -> Response {
    let (exts, contacts) = tokio::join!(st.api.list_extensions(), st.api.contacts(None));
    let mut exts = match exts {
        Ok(e) => e,
        Err(e) => return server_error(e),
    };
    exts.sort_by(|a, b| a.number.cmp(&b.number));
    let mut by: HashMap<&str, Vec<&ContactInfo>> = HashMap::new();
    for c in &contacts {
        by.entry(c.number.as_str()).or_default().push(c);
    }
    let mut list = Vec::with_capacity(exts.len());
    let mut endpoints = Vec::new();
    for e in &exts {
        let cs = by.get(e.number.as_str()).map_or(&[][..], Vec::as_slice);
        let mut m = ext_json(e);
        m.insert("registered".into(), json!(!cs.is_empty()));
        m.insert("asterisk_status".into(), json!(asterisk_state(e, cs.len())));
        m.insert("contact_count".into(), json!(cs.len()));
        m.insert("ip_address".into(), json!(cs.first().map(|c| c.ip.clone())));
        m.insert("port".into(), json!(cs.first().map(|c| c.port)));
        list.push(Value::Object(m));
        if e.enabled {
            endpoints.push(json!({
                "name": e.number,
                "state": asterisk_state(e, cs.len()),
                "contacts": cs.len(),
            }));
        }
    }
    Json(json!({"extensions": list, "asterisk_endpoints": endpoints})).into_response()
}

async fn store(State(st): St, body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut ext = Extension::new("", "", "");
    ext.direct_media = false;
    let mut e = apply_fields(&obj, &mut ext, true);
    if !e.has("extension_number") && !ext.number.is_empty() {
        match st.api.get_extension(&ext.number).await {
            Ok(Some(_)) => e.add(
                "extension_number",
                "The extension number has already been taken.",
            ),
            Ok(None) => {}
            Err(err) => return server_error(err),
        }
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    if ext.voicemail_enabled {
        ext.mailboxes = Some(format!("{}@default", ext.number));
    }
    let now = i64::try_from(unix_now()).unwrap_or(0);
    ext.created_at = now;
    ext.updated_at = now;
    let stored = match st.api.create_extension(ext).await {
        Ok(x) => x,
        Err(BackendError::Duplicate(_)) => {
            let mut e = Errors::default();
            e.add(
                "extension_number",
                "The extension number has already been taken.",
            );
            return e.response();
        }
        Err(err) => return server_error(err),
    };
    // The directory change reached the core with the create; verify through the CLI view.
    let verified = stored.enabled
        && st
            .compat
            .snapshot()
            .await
            .endpoint(&stored.number)
            .is_some();
    (
        StatusCode::CREATED,
        Json(json!({
            "message": "Extension created successfully",
            "extension": ext_json(&stored),
            "asterisk_verified": verified,
            "reload_success": true,
        })),
    )
        .into_response()
}

async fn show(State(st): St, Path(id): Path<String>) -> Response {
    let e = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let n = contacts_of(&st, &e.number).await.len();
    let mut m = ext_json(&e);
    m.insert(
        "status".into(),
        json!(if n > 0 { "registered" } else { "offline" }),
    );
    Json(json!({"extension": m})).into_response()
}

async fn save(st: &CompatState, ext: Extension, message: &str) -> Response {
    match st.api.update_extension(ext).await {
        Ok(stored) => Json(json!({
            "message": message,
            "extension": ext_json(&stored),
            "config_write_success": true,
            "reload_success": true,
            "error": null,
        }))
        .into_response(),
        Err(BackendError::NotFound(_)) => not_found_model(""),
        Err(e) => server_error(e),
    }
}

async fn update(State(st): St, Path(id): Path<String>, body: Bytes) -> Response {
    let mut ext = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let obj = body_object(&body);
    if let Err(r) = apply_fields(&obj, &mut ext, false).into_result() {
        return r;
    }
    ext.updated_at = i64::try_from(unix_now()).unwrap_or(0);
    save(&st, ext, "Extension updated successfully").await
}

async fn destroy(State(st): St, Path(id): Path<String>) -> Response {
    let ext = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    match st.api.delete_extension(&ext.number).await {
        Ok(()) => Json(json!({"message": "Extension deleted successfully"})).into_response(),
        Err(BackendError::NotFound(_)) => not_found_model(&id),
        Err(e) => server_error(e),
    }
}

async fn toggle(State(st): St, Path(id): Path<String>) -> Response {
    let mut ext = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    ext.enabled = !ext.enabled;
    ext.updated_at = i64::try_from(unix_now()).unwrap_or(0);
    let msg = if ext.enabled {
        "Extension enabled successfully"
    } else {
        "Extension disabled successfully"
    };
    save(&st, ext, msg).await
}

async fn verify(State(st): St, Path(id): Path<String>) -> Response {
    let e = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let cs = contacts_of(&st, &e.number).await;
    let refs: Vec<&ContactInfo> = cs.iter().collect();
    Json(json!({
        "extension": ext_json(&e),
        "exists_in_asterisk": e.enabled,
        "registration_status": registration_status(&e, &refs),
        "endpoint_details": endpoint_detail(&e, &refs),
    }))
    .into_response()
}

async fn diagnostics(State(st): St, Path(id): Path<String>) -> Response {
    let e = match find_by_id(&st, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let cs = contacts_of(&st, &e.number).await;
    let refs: Vec<&ContactInfo> = cs.iter().collect();
    let mut troubleshooting = Vec::new();
    if !e.enabled {
        troubleshooting.push(json!({
            "severity": "error",
            "message": "Extension is disabled",
            "solution": "Enable the extension",
            "action": "toggle",
        }));
    } else if refs.is_empty() {
        troubleshooting.push(json!({
            "severity": "warning",
            "message": "No device is registered",
            "solution": "Configure a SIP client with the settings in setup_guide",
            "action": "register",
        }));
    }
    let client = |name: &str, platform: &str, url: &str| json!({"name": name, "platform": platform, "url": url, "description": format!("{name} SIP client")});
    Json(json!({
        "extension": ext_json(&e),
        "registration_status": registration_status(&e, &refs),
        "endpoint_details": endpoint_detail(&e, &refs),
        "setup_guide": {
            "extension": e.number,
            "username": e.number,
            "server": "",
            "port": 5060,
            "transport": "UDP",
            "context": e.context,
        },
        "sip_clients": [
            client("MicroSIP", "Windows", "https://www.microsip.org/"),
            client("Linphone", "Windows, macOS, Linux, Android, iOS", "https://www.linphone.org/"),
            client("Zoiper", "Windows, macOS, Linux, Android, iOS", "https://www.zoiper.com/"),
            client("GrandStream", "Hardware", "https://www.grandstream.com/"),
            client("Yealink", "Hardware", "https://www.yealink.com/"),
        ],
        "troubleshooting": troubleshooting,
        "test_instructions": [
            {"step": 1, "action": "Register", "description": "Register a SIP client with the extension's credentials"},
            {"step": 2, "action": "Verify", "description": format!("GET /api/extensions/{}/verify", e.id)},
            {"step": 3, "action": "Call", "description": "Call another extension"},
        ],
        "api_endpoints": {
            "verify": format!("/api/extensions/{}/verify", e.id),
            "endpoints": "/api/extensions/asterisk/endpoints",
        },
    }))
    .into_response()
}

async fn asterisk_endpoints(State(st): St) -> Response {
    let snap = st.compat.snapshot().await;
    let mut endpoints: Vec<Value> = snap
        .endpoints
        .iter()
        .map(|e| {
            let contacts: usize = e.aors.iter().map(|a| a.contacts.len()).sum();
            json!({
                "name": e.id,
                "state": e.device_state.human(),
                "contacts": contacts,
                "managed": true,
            })
        })
        .collect();
    // Endpoints kept verbatim from pjsip.conf (trunks, hand-written ones).
    if let Ok(objs) = st.compat.pjsip_objects().await {
        for o in objs.iter().filter(|o| o.kind == "endpoint") {
            if snap.endpoint(&o.name).is_none() {
                endpoints.push(json!({
                    "name": o.name,
                    "state": "Unavailable",
                    "contacts": 0,
                    "managed": false,
                }));
            }
        }
    }
    let total = endpoints.len();
    Json(json!({"endpoints": endpoints, "total": total})).into_response()
}

// ---------------------------------------------------------------------------------------------
// PJSIP global configuration.

const NAT_KEYS: [&str; 3] = [
    "external_media_address",
    "external_signaling_address",
    "local_net",
];

async fn pjsip_global(State(st): St) -> Response {
    let objs = match st.compat.pjsip_objects().await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "pjsip objects");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "Unable to read PJSIP configuration"})),
            )
                .into_response();
        }
    };
    let mut settings = Map::new();
    // [global] first, then transports fill in what it lacks (the file order of RayanPBX).
    let global = objs.iter().filter(|o| o.kind == "global");
    let transports = objs.iter().filter(|o| o.kind == "transport");
    for o in global.chain(transports) {
        for (k, v) in &o.options {
            if !settings.contains_key(k) {
                settings.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    let transports: Vec<Value> = objs
        .iter()
        .filter(|o| o.kind == "transport")
        .map(|o| {
            let mut m = Map::new();
            m.insert("name".into(), json!(o.name));
            for (k, v) in &o.options {
                m.insert(k.clone(), json!(v));
            }
            Value::Object(m)
        })
        .collect();
    Json(json!({
        "settings": settings,
        "transports": transports,
        "config_file": st.compat.pjsip_file(),
    }))
    .into_response()
}

/// Set (or with `None` remove) `key` in an object.
fn set_option(o: &mut PjsipObject, key: &str, value: Option<&str>) {
    o.options.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    if let Some(v) = value {
        o.options.push((key.to_owned(), v.to_owned()));
    }
}

async fn external_media(State(st): St, body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut e = Errors::default();
    let mut values: Vec<(&str, Option<String>)> = Vec::new();
    for k in NAT_KEYS {
        match present(&obj, k) {
            Some(v) => {
                if let Some(s) = rule_string(&mut e, k, v)
                    && rule_len(&mut e, k, s, 0, 255)
                    && no_controls(&mut e, k, s)
                {
                    let ok = if k == "local_net" {
                        s.split(',')
                            .all(|n| crate::pjsip_conf::parse_local_net(n).is_some())
                    } else {
                        !s.trim().is_empty() && !s.contains(char::is_whitespace)
                    };
                    if ok {
                        values.push((k, Some(s.trim().to_owned())));
                    } else {
                        e.add(k, format!("The {} field format is invalid.", attr(k)));
                    }
                }
            }
            None if obj.contains_key(k) => values.push((k, None)),
            None => {}
        }
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    let objs = match st.compat.pjsip_objects().await {
        Ok(o) => o,
        Err(e) => return pjsip_error(e),
    };
    // RayanPBX writes the keys into [global]; transports that set a key themselves get the
    // new value too (theirs would win otherwise).
    let mut global = objs
        .iter()
        .find(|o| o.kind == "global")
        .cloned()
        .unwrap_or_else(|| PjsipObject {
            kind: "global".into(),
            name: "global".into(),
            options: Vec::new(),
            comments: Vec::new(),
        });
    let mut changed = Vec::new();
    for (k, v) in &values {
        set_option(&mut global, k, v.as_deref());
    }
    changed.push(global);
    for t in objs.iter().filter(|o| o.kind == "transport") {
        let mut t2 = t.clone();
        for (k, v) in &values {
            if t.get(k).is_some() {
                set_option(&mut t2, k, v.as_deref());
            }
        }
        if &t2 != t {
            changed.push(t2);
        }
    }
    reload_result(&st, changed, "External media settings updated successfully").await
}

async fn transport(State(st): St, body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut e = Errors::default();
    let mut protocol = "";
    let mut bind = "";
    if rule_required(&mut e, &obj, "protocol")
        && let Some(s) = rule_string(&mut e, "protocol", &obj["protocol"])
        && rule_in(&mut e, "protocol", s, &["udp", "tcp", "tls"])
    {
        protocol = s;
    }
    if rule_required(&mut e, &obj, "bind")
        && let Some(s) = rule_string(&mut e, "bind", &obj["bind"])
        && rule_len(&mut e, "bind", s, 0, 255)
    {
        if s.parse::<SocketAddr>().is_ok() || s.parse::<std::net::IpAddr>().is_ok() {
            bind = s;
        } else {
            e.add("bind", "The bind field format is invalid.");
        }
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    let objs = match st.compat.pjsip_objects().await {
        Ok(o) => o,
        Err(e) => return pjsip_error(e),
    };
    let name = format!("transport-{protocol}");
    let mut t = objs
        .iter()
        .find(|o| o.kind == "transport" && o.name == name)
        .cloned()
        .unwrap_or_else(|| PjsipObject {
            kind: "transport".into(),
            name,
            options: Vec::new(),
            comments: Vec::new(),
        });
    set_option(&mut t, "protocol", Some(protocol));
    set_option(&mut t, "bind", Some(bind));
    reload_result(&st, vec![t], "Transport settings updated successfully").await
}

fn pjsip_error(e: BackendError) -> Response {
    tracing::warn!(error = %e, "pjsip objects");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

async fn reload_result(st: &CompatState, changed: Vec<PjsipObject>, message: &str) -> Response {
    match st.compat.save_pjsip_objects(changed).await {
        Ok(()) => Json(json!({
            "message": message,
            "reload_result": {"success": true, "output": "", "note": "socket binds take effect at the next start"},
        }))
        .into_response(),
        Err(e) => pjsip_error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Console and validation.

async fn console_execute(State(st): St, body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut e = Errors::default();
    let mut command = "";
    if rule_required(&mut e, &obj, "command")
        && let Some(s) = rule_string(&mut e, "command", &obj["command"])
        && rule_len(&mut e, "command", s, 0, 500)
    {
        command = s.trim();
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    let lower = command.to_ascii_lowercase();
    if BLOCKED_COMMANDS.iter().any(|b| lower.starts_with(b)) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "success": false,
                "command": command,
                "error": "Command not allowed for security reasons",
            })),
        )
            .into_response();
    }
    let out = st.compat.cli(command).await;
    let now = laravel_time(i64::try_from(unix_now()).unwrap_or(0));
    if out.ok {
        Json(json!({"success": true, "command": command, "output": out.text, "timestamp": now}))
            .into_response()
    } else {
        Json(json!({"success": false, "command": command, "output": out.text, "error": out.text.trim(), "timestamp": now}))
            .into_response()
    }
}

/// Rows of `pjsip show endpoints` (the CLI emulation's text, parsed like RayanPBX does).
fn parse_endpoints(text: &str) -> Vec<Value> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("Endpoint:") {
            let toks: Vec<&str> = rest.split_whitespace().collect();
            if toks.is_empty() || toks[0].starts_with('<') {
                continue;
            }
            let name = toks[0].split('/').next().unwrap_or(toks[0]);
            let (state, channels) = if toks.len() >= 4 && toks[toks.len() - 2] == "of" {
                (
                    toks[1..toks.len() - 3].join(" "),
                    toks[toks.len() - 3..].join(" "),
                )
            } else {
                (toks[1..].join(" "), String::new())
            };
            let mut m = Map::new();
            m.insert("endpoint".into(), json!(name));
            m.insert("state".into(), json!(state));
            m.insert("channels".into(), json!(channels));
            m.insert("contacts".into(), json!(0));
            m.insert("transport".into(), Value::Null);
            m.insert("identify".into(), Value::Null);
            out.push(m);
        } else if let Some(m) = out.last_mut() {
            if t.starts_with("Contact:") && !t.contains("<Aor/ContactUri") {
                let n = m["contacts"].as_u64().unwrap_or(0) + 1;
                m.insert("contacts".into(), json!(n));
            } else if let Some(r) = t.strip_prefix("Transport:")
                && !r.trim_start().starts_with('<')
            {
                m.insert("transport".into(), json!(r.split_whitespace().next()));
            } else if let Some(r) = t.strip_prefix("Identify:")
                && !r.trim_start().starts_with('<')
            {
                m.insert("identify".into(), json!(r.split_whitespace().next()));
            }
        }
    }
    out.into_iter().map(Value::Object).collect()
}

async fn console_endpoints(State(st): St) -> Response {
    let out = st.compat.cli("pjsip show endpoints").await;
    let endpoints = parse_endpoints(&out.text);
    let count = endpoints.len();
    Json(json!({"endpoints": endpoints, "count": count})).into_response()
}

async fn validate_pjsip(body: Bytes) -> Response {
    let obj = body_object(&body);
    let mut e = Errors::default();
    let mut text = "";
    if rule_required(&mut e, &obj, "config")
        && let Some(s) = rule_string(&mut e, "config", &obj["config"])
    {
        text = s;
    }
    if let Err(r) = e.into_result() {
        return r;
    }
    let v = crate::pjsip_conf::validate::validate_pjsip(text);
    Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_messages() {
        let mut ext = Extension::new("", "", "");
        let obj = body_object(br#"{"codecs":["ulaw","foo"],"transport":"sctp","max_contacts":11,"enabled":"yes","extension_number":"1a"}"#);
        let e = apply_fields(&obj, &mut ext, true);
        let m = |k: &str| e.0.get(k).map(|v| v[0].clone()).unwrap_or_default();
        assert_eq!(m("codecs.1"), "The selected codecs.1 is invalid.");
        assert_eq!(m("transport"), "The selected transport is invalid.");
        assert_eq!(
            m("max_contacts"),
            "The max contacts field must not be greater than 10."
        );
        assert_eq!(m("enabled"), "The enabled field must be true or false.");
        assert_eq!(
            m("extension_number"),
            "The extension number field format is invalid."
        );
        assert_eq!(m("name"), "The name field is required.");
        assert_eq!(m("secret"), "The secret field is required.");
        assert!(!e.has("codecs.0"));
    }

    #[test]
    fn update_keeps_secret_when_empty() {
        let mut ext = Extension::new("101", "A", "old-secret-1");
        let e = apply_fields(
            &body_object(br#"{"secret":"","name":"B"}"#),
            &mut ext,
            false,
        );
        assert!(e.0.is_empty());
        assert_eq!(ext.secret, "old-secret-1");
        assert_eq!(ext.name, "B");
    }

    #[test]
    fn endpoints_from_cli_text() {
        let text = "\n Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>\n\
             \x20   I/OAuth:  <AuthId/UserName...........................................................>\n\
             \x20       Aor:  <Aor............................................>  <MaxContact>\n\
             \x20     Contact:  <Aor/ContactUri..........................> <Hash....> <Status> <RTT(ms)..>\n\
             ==========================================================================================\n\n\
             \x20Endpoint:  101/101                                              Not in use    0 of inf\n\
             \x20    InAuth:  101/101\n\
             \x20       Aor:  101                                                1\n\
             \x20     Contact:  101/sip:101@127.0.0.1:5062                 1a2b3c4d5e Avail         0.512\n\
             \x20 Transport:  transport-udp             udp      0      0  0.0.0.0:5060\n\n\
             \x20Endpoint:  102                                                  Unavailable   0 of inf\n";
        let v = parse_endpoints(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["endpoint"], "101");
        assert_eq!(v[0]["state"], "Not in use");
        assert_eq!(v[0]["contacts"], 1);
        assert_eq!(v[0]["transport"], "transport-udp");
        assert_eq!(v[1]["state"], "Unavailable");
        assert_eq!(v[1]["channels"], "0 of inf");
    }

    #[test]
    fn laravel_timestamps() {
        assert_eq!(laravel_time(0), "1970-01-01T00:00:00.000000Z");
    }
}
