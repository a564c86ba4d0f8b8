//! `/api/extensions`: list, show, create, update, delete.
//!
//! Input accepts Warden (Python PBX) field names and the RayanPBX aliases of
//! rest-api.md §4.3 (`extension_number` → `number`, `secret` → `password`). Bodies are parsed
//! as [`serde_json::Value`] and every field is type-checked here, so each error names the
//! field (as the client spelled it) and the broken rule. Unknown fields are ignored.
//!
//! Rules (rule names in the error's `rule` key):
//! - `number`: required on create, string of 2–20 ASCII digits (`digits_between:2,20`); on
//!   update it may only repeat the path number (`immutable`).
//! - `name`: required on create, non-empty after trimming, ≤ 255 chars, no control characters.
//! - `password` / `secret`: required on create, 8–128 chars, no control characters; on update
//!   absent, `null` or `""` keeps the old one.
//! - `email`: optional, address syntax (`email`); `""`/`null` clears it.
//! - `voicemail_pin`: optional (RayanPBX clients never send it), 4–6 digits as a string.
//! - `enabled`, `allow_external`, `voicemail_enabled`, `is_admin`, `remove_existing`:
//!   booleans (also `0`/`1`, `"0"`/`"1"`, `"true"`/`"false"`, as Laravel accepts).
//! - `context`: 1–80 of `[A-Za-z0-9_.-]`.
//! - `transport`: `udp`|`tcp`|`tls` or `transport-udp`… (normalised); `""`/`null` = any.
//! - `codecs`: non-empty array (or comma-separated string) of Asterisk codec names
//!   (`pcmu`/`g711u` → `ulaw`, `pcma`/`g711a` → `alaw`, case-insensitive, duplicates dropped);
//!   an unknown entry is reported as `codecs.N`.
//! - `max_contacts`: integer 1–100 (RayanPBX allows 1–10; Dialtone allows more devices).
//! - `qualify_frequency`: integer 0–3600 seconds.
//! - `caller_id`: ≤ 255 chars, no control characters. `notes`: ≤ 4096 chars.

use std::collections::HashMap;

use axum::Extension as Ext;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::{Principal, unix_now};
use super::backend::ContactInfo;
use super::error::ApiError;
use crate::pbx::directory::Extension;

/// Codec names accepted in `codecs` (Asterisk spelling).
pub const KNOWN_CODECS: &[&str] = &[
    "ulaw", "alaw", "g722", "g729", "opus", "gsm", "ilbc", "speex", "h264", "vp8",
];
const CODECS_RULE: &str = "in:ulaw,alaw,g722,g729,opus,gsm,ilbc,speex,h264,vp8";
/// Bounds of `max_contacts`.
pub const MAX_CONTACTS_RANGE: (u32, u32) = (1, 100);
/// Bounds of `qualify_frequency` (seconds).
pub const QUALIFY_FREQUENCY_RANGE: (u32, u32) = (0, 3600);

/// Whether a string is a valid extension number (2–20 ASCII digits).
pub fn is_valid_number(s: &str) -> bool {
    (2..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Public views (secrets never appear: `secret` and `voicemail_pin` have no field here).

#[derive(Serialize)]
struct ContactView<'a> {
    uri: &'a str,
    ip: &'a str,
    port: u16,
    transport: &'a str,
    user_agent: Option<&'a str>,
    expires: u64,
    qualify_status: &'a str,
    rtt_ms: Option<f64>,
}

impl<'a> From<&'a ContactInfo> for ContactView<'a> {
    fn from(c: &'a ContactInfo) -> Self {
        ContactView {
            uri: &c.uri,
            ip: &c.ip,
            port: c.port,
            transport: &c.transport,
            user_agent: c.user_agent.as_deref(),
            expires: c.expires_in,
            qualify_status: &c.qualify_status,
            rtt_ms: c.rtt_ms,
        }
    }
}

#[derive(Serialize)]
struct ExtensionView<'a> {
    id: i64,
    number: &'a str,
    name: &'a str,
    email: Option<&'a str>,
    registered: bool,
    allow_external: bool,
    voicemail_enabled: bool,
    is_admin: bool,
    enabled: bool,
    context: &'a str,
    transport: Option<&'a str>,
    codecs: &'a [String],
    max_contacts: u32,
    remove_existing: bool,
    qualify_frequency: u32,
    caller_id: Option<&'a str>,
    notes: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
    contacts: Vec<ContactView<'a>>,
}

fn view<'a>(e: &'a Extension, contacts: &[&'a ContactInfo]) -> ExtensionView<'a> {
    ExtensionView {
        id: e.id,
        number: &e.number,
        name: &e.name,
        email: e.email.as_deref(),
        registered: !contacts.is_empty(),
        allow_external: e.allow_external,
        voicemail_enabled: e.voicemail_enabled,
        is_admin: e.is_admin,
        enabled: e.enabled,
        context: &e.context,
        transport: e.transport.as_deref(),
        codecs: &e.codecs,
        max_contacts: e.max_contacts,
        remove_existing: e.remove_existing,
        qualify_frequency: e.qualify_frequency,
        caller_id: e.caller_id.as_deref(),
        notes: e.notes.as_deref(),
        created_at: e.created_at,
        updated_at: e.updated_at,
        contacts: contacts.iter().map(|c| ContactView::from(*c)).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Input parsing and validation.

/// Create needs the required fields; update takes any subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode<'p> {
    Create,
    /// Update of the extension with this (path) number.
    Update(&'p str),
}

/// A validated request body. `None` = absent (keep); `Some(None)` = clear a nullable field.
#[derive(Debug, Default, Clone, PartialEq)]
struct ExtensionInput {
    number: Option<String>,
    name: Option<String>,
    password: Option<String>,
    email: Option<Option<String>>,
    voicemail_pin: Option<Option<String>>,
    enabled: Option<bool>,
    context: Option<String>,
    transport: Option<Option<String>>,
    codecs: Option<Vec<String>>,
    max_contacts: Option<u32>,
    remove_existing: Option<bool>,
    qualify_frequency: Option<u32>,
    caller_id: Option<Option<String>>,
    voicemail_enabled: Option<bool>,
    allow_external: Option<bool>,
    is_admin: Option<bool>,
    notes: Option<Option<String>>,
}

/// The value of `canonical` or one of its aliases (non-null), with the key the client used.
/// Two different non-null values under aliases of the same field are rejected.
fn aliased<'a>(
    obj: &'a Map<String, Value>,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'a Value)>, ApiError> {
    let mut found: Option<(&'static str, &'a Value)> = None;
    for &name in names {
        match (obj.get(name), found) {
            (None | Some(Value::Null), _) => {}
            (Some(v), None) => found = Some((name, v)),
            (Some(v), Some((first, fv))) if v != fv => {
                return Err(ApiError::validation(
                    name,
                    "alias_conflict",
                    format!("{name} conflicts with {first}"),
                ));
            }
            (Some(_), Some(_)) => {}
        }
    }
    Ok(found)
}

/// Whether the key is present with JSON `null`.
fn is_null(obj: &Map<String, Value>, names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| matches!(obj.get(*n), Some(Value::Null)))
}

fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, ApiError> {
    v.as_str()
        .ok_or_else(|| ApiError::validation(key, "type:string", format!("{key} must be a string")))
}

fn as_bool(key: &str, v: &Value) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::String(s) if s == "0" || s.eq_ignore_ascii_case("false") => Ok(false),
        Value::String(s) if s == "1" || s.eq_ignore_ascii_case("true") => Ok(true),
        _ => Err(ApiError::validation(
            key,
            "type:boolean",
            format!("{key} must be a boolean"),
        )),
    }
}

fn as_u32_in(key: &str, v: &Value, (min, max): (u32, u32)) -> Result<u32, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s)
            if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>().ok()
        }
        _ => None,
    };
    let Some(n) = n else {
        // Negative numbers are integers too, just out of range.
        if v.as_i64().is_some() {
            return Err(out_of_range(key, min, max));
        }
        return Err(ApiError::validation(
            key,
            "type:integer",
            format!("{key} must be an integer"),
        ));
    };
    u32::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| out_of_range(key, min, max))
}

fn out_of_range(key: &str, min: u32, max: u32) -> ApiError {
    ApiError::validation(
        key,
        format!("between:{min},{max}"),
        format!("{key} must be between {min} and {max}"),
    )
}

fn check_len(key: &str, label: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.chars().count() > max {
        return Err(ApiError::validation(
            key,
            format!("max_length:{max}"),
            format!("{label} must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn check_no_control(key: &str, label: &str, s: &str) -> Result<(), ApiError> {
    if s.chars().any(char::is_control) {
        return Err(ApiError::validation(
            key,
            "no_control_chars",
            format!("{label} must not contain control characters"),
        ));
    }
    Ok(())
}

/// A pragmatic address check: `local@domain.tld`, no spaces or specials, sane lengths.
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let atom_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && !part.ends_with('.')
            && !part.contains("..")
            && part
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\"\\".contains(c))
    };
    s.len() <= 254
        && local.len() <= 64
        && atom_ok(local)
        && atom_ok(domain)
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
}

/// A nullable free-text field: `null`/`""` clear it.
fn optional_text(
    obj: &Map<String, Value>,
    key: &'static str,
    label: &str,
    max: usize,
    allow_newlines: bool,
) -> Result<Option<Option<String>>, ApiError> {
    let Some((key, v)) = aliased(obj, &[key])? else {
        return Ok(is_null(obj, &[key]).then_some(None));
    };
    let s = as_str(key, v)?;
    if s.is_empty() {
        return Ok(Some(None));
    }
    check_len(key, label, s, max)?;
    let bad = s
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(ApiError::validation(
            key,
            "no_control_chars",
            format!("{label} must not contain control characters"),
        ));
    }
    Ok(Some(Some(s.to_owned())))
}

fn optional_bool(obj: &Map<String, Value>, key: &'static str) -> Result<Option<bool>, ApiError> {
    aliased(obj, &[key])?
        .map(|(k, v)| as_bool(k, v))
        .transpose()
}

fn parse_codecs(key: &str, v: &Value) -> Result<Vec<String>, ApiError> {
    let items: Vec<&Value>;
    let split: Vec<Value>;
    match v {
        Value::Array(a) => items = a.iter().collect(),
        Value::String(s) => {
            split = s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            items = split.iter().collect();
        }
        _ => {
            return Err(ApiError::validation(
                key,
                "type:array",
                format!("{key} must be an array of codec names"),
            ));
        }
    }
    let mut codecs: Vec<String> = Vec::with_capacity(KNOWN_CODECS.len());
    for (i, item) in items.iter().enumerate() {
        let field = || format!("{key}.{i}");
        let Some(name) = item.as_str() else {
            let field = field();
            let message = format!("{field} must be a string");
            return Err(ApiError::validation(field, "type:string", message));
        };
        let name = name.trim().to_ascii_lowercase();
        let name = match name.as_str() {
            "pcmu" | "g711u" => "ulaw",
            "pcma" | "g711a" => "alaw",
            other => other,
        };
        let Some(known) = KNOWN_CODECS.iter().find(|k| **k == name) else {
            let field = field();
            let message = format!("{field} must be one of {}", KNOWN_CODECS.join(", "));
            return Err(ApiError::validation(field, CODECS_RULE, message));
        };
        if !codecs.iter().any(|c| c == known) {
            codecs.push((*known).to_owned());
        }
    }
    if codecs.is_empty() {
        return Err(ApiError::validation(
            key,
            "min_items:1",
            "At least one codec is required",
        ));
    }
    Ok(codecs)
}

fn parse_input(body: &Value, mode: Mode<'_>) -> Result<ExtensionInput, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::InvalidJson("expected a JSON object".into()));
    };
    let create = mode == Mode::Create;
    let mut input = ExtensionInput::default();

    // number / extension_number
    match (aliased(obj, &["number", "extension_number"])?, mode) {
        (None, Mode::Create) => {
            return Err(ApiError::validation(
                "number",
                "required",
                "Extension number is required",
            ));
        }
        (None, Mode::Update(_)) => {}
        (Some((key, v)), _) => {
            let n = as_str(key, v)?;
            if let Mode::Update(path) = mode {
                if n != path {
                    return Err(ApiError::validation(
                        key,
                        "immutable",
                        "Extension number cannot be changed",
                    ));
                }
            } else if !is_valid_number(n) {
                return Err(ApiError::validation(
                    key,
                    "digits_between:2,20",
                    "Extension number must be 2-20 digits",
                ));
            }
            input.number = Some(n.to_owned());
        }
    }

    // name
    match aliased(obj, &["name"])? {
        None if create => {
            return Err(ApiError::validation("name", "required", "Name is required"));
        }
        None => {}
        Some((key, v)) => {
            let name = as_str(key, v)?.trim();
            if name.is_empty() {
                return Err(ApiError::validation(key, "required", "Name is required"));
            }
            check_len(key, "Name", name, 255)?;
            check_no_control(key, "Name", name)?;
            input.name = Some(name.to_owned());
        }
    }

    // password / secret ("" = not given: RayanPBX PR #179 keeps the old secret)
    let password = match aliased(obj, &["password", "secret"])? {
        Some((key, v)) => Some((key, as_str(key, v)?)).filter(|(_, s)| !s.is_empty()),
        None => None,
    };
    match password {
        None if create => {
            return Err(ApiError::validation(
                "password",
                "required",
                "Password is required",
            ));
        }
        None => {}
        Some((key, pw)) => {
            let len = pw.chars().count();
            if len < 8 {
                return Err(ApiError::validation(
                    key,
                    "min_length:8",
                    "Password must be at least 8 characters",
                ));
            }
            check_len(key, "Password", pw, 128)?;
            check_no_control(key, "Password", pw)?;
            input.password = Some(pw.to_owned());
        }
    }

    // email
    input.email = match aliased(obj, &["email"])? {
        None => is_null(obj, &["email"]).then_some(None),
        Some((key, v)) => {
            let e = as_str(key, v)?.trim();
            if e.is_empty() {
                Some(None)
            } else if is_valid_email(e) {
                Some(Some(e.to_owned()))
            } else {
                return Err(ApiError::validation(key, "email", "Invalid email format"));
            }
        }
    };

    // voicemail_pin
    input.voicemail_pin = match aliased(obj, &["voicemail_pin"])? {
        None => is_null(obj, &["voicemail_pin"]).then_some(None),
        Some((key, v)) => {
            let pin = as_str(key, v)?;
            if pin.is_empty() {
                Some(None)
            } else if (4..=6).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
                Some(Some(pin.to_owned()))
            } else {
                return Err(ApiError::validation(
                    key,
                    "digits_between:4,6",
                    "Voicemail PIN must be 4-6 digits",
                ));
            }
        }
    };

    input.enabled = optional_bool(obj, "enabled")?;

    // context
    if let Some((key, v)) = aliased(obj, &["context"])? {
        let c = as_str(key, v)?;
        let ok = (1..=80).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(ApiError::validation(
                key,
                "regex:^[A-Za-z0-9_.-]{1,80}$",
                "Context must be 1-80 letters, digits, '_', '-' or '.'",
            ));
        }
        input.context = Some(c.to_owned());
    }

    // transport
    input.transport = match aliased(obj, &["transport"])? {
        None => is_null(obj, &["transport"]).then_some(None),
        Some((key, v)) => {
            let t = as_str(key, v)?.trim().to_ascii_lowercase();
            let t = t.strip_prefix("transport-").unwrap_or(&t);
            match t {
                "" => Some(None),
                "udp" | "tcp" | "tls" => Some(Some(t.to_owned())),
                _ => {
                    return Err(ApiError::validation(
                        key,
                        "in:udp,tcp,tls",
                        "Transport must be one of udp, tcp, tls",
                    ));
                }
            }
        }
    };

    if let Some((key, v)) = aliased(obj, &["codecs"])? {
        input.codecs = Some(parse_codecs(key, v)?);
    }
    if let Some((key, v)) = aliased(obj, &["max_contacts"])? {
        input.max_contacts = Some(as_u32_in(key, v, MAX_CONTACTS_RANGE)?);
    }
    input.remove_existing = optional_bool(obj, "remove_existing")?;
    if let Some((key, v)) = aliased(obj, &["qualify_frequency"])? {
        input.qualify_frequency = Some(as_u32_in(key, v, QUALIFY_FREQUENCY_RANGE)?);
    }
    input.caller_id = optional_text(obj, "caller_id", "Caller ID", 255, false)?;
    input.voicemail_enabled = optional_bool(obj, "voicemail_enabled")?;
    input.allow_external = optional_bool(obj, "allow_external")?;
    input.is_admin = optional_bool(obj, "is_admin")?;
    input.notes = optional_text(obj, "notes", "Notes", 4096, true)?;
    Ok(input)
}

impl ExtensionInput {
    /// Applies every given field to `ext` (the number is never changed here).
    fn apply(self, ext: &mut Extension) {
        fn set<T>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut ext.name, self.name);
        set(&mut ext.secret, self.password);
        set(&mut ext.email, self.email);
        set(&mut ext.voicemail_pin, self.voicemail_pin);
        set(&mut ext.enabled, self.enabled);
        set(&mut ext.context, self.context);
        set(&mut ext.transport, self.transport);
        set(&mut ext.codecs, self.codecs);
        set(&mut ext.max_contacts, self.max_contacts);
        set(&mut ext.remove_existing, self.remove_existing);
        set(&mut ext.qualify_frequency, self.qualify_frequency);
        set(&mut ext.caller_id, self.caller_id);
        set(&mut ext.voicemail_enabled, self.voicemail_enabled);
        set(&mut ext.allow_external, self.allow_external);
        set(&mut ext.is_admin, self.is_admin);
        set(&mut ext.notes, self.notes);
    }

    /// A new extension from a create body (required fields were checked by `parse_input`).
    fn into_new(mut self, now_unix: i64) -> Extension {
        let number = self.number.take().unwrap_or_default();
        let name = self.name.take().unwrap_or_default();
        let secret = self.password.take().unwrap_or_default();
        let mut ext = Extension::new(number, name, secret);
        self.apply(&mut ext);
        ext.created_at = now_unix;
        ext.updated_at = now_unix;
        ext
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

fn who(p: Option<Ext<Principal>>) -> Principal {
    p.map(|Ext(p)| p).unwrap_or(Principal::Anonymous)
}

fn now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// `GET /api/extensions`: a bare array, live registration merged in from one `contacts(None)`.
pub async fn list(State(st): State<AppState>) -> Result<Response, ApiError> {
    let (extensions, contacts) =
        tokio::join!(st.backend.list_extensions(), st.backend.contacts(None));
    let extensions = extensions?;
    let mut by_number: HashMap<&str, Vec<&ContactInfo>> = HashMap::with_capacity(contacts.len());
    for c in &contacts {
        by_number.entry(c.number.as_str()).or_default().push(c);
    }
    let views: Vec<ExtensionView<'_>> = extensions
        .iter()
        .map(|e| {
            view(
                e,
                by_number
                    .get(e.number.as_str())
                    .map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    Ok(Json(views).into_response())
}

/// `GET /api/extensions/{number}`.
pub async fn show(
    State(st): State<AppState>,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    if !is_valid_number(&number) {
        return Err(ApiError::ExtensionNotFound);
    }
    let ext = st
        .backend
        .get_extension(&number)
        .await?
        .ok_or(ApiError::ExtensionNotFound)?;
    let contacts = st.backend.contacts(Some(&number)).await;
    let refs: Vec<&ContactInfo> = contacts.iter().filter(|c| c.number == number).collect();
    Ok(Json(view(&ext, &refs)).into_response())
}

/// `POST /api/extensions`.
pub async fn create(
    State(st): State<AppState>,
    principal: Option<Ext<Principal>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = parse_input(&parse_body(&body)?, Mode::Create)?;
    let ext = st
        .backend
        .create_extension(input.into_new(now_i64()))
        .await?;
    tracing::info!(who = %who(principal), number = %ext.number, "extension created");
    Ok(Json(json!({
        "success": true,
        "message": "Extension added successfully",
        "extension": view(&ext, &[]),
    }))
    .into_response())
}

/// `PUT /api/extensions/{number}`: partial update.
pub async fn update(
    State(st): State<AppState>,
    Path(number): Path<String>,
    principal: Option<Ext<Principal>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_valid_number(&number) {
        return Err(ApiError::ExtensionNotFound);
    }
    let input = parse_input(&parse_body(&body)?, Mode::Update(&number))?;
    let mut ext = st
        .backend
        .get_extension(&number)
        .await?
        .ok_or(ApiError::ExtensionNotFound)?;
    let password_changed = input.password.is_some();
    input.apply(&mut ext);
    ext.updated_at = now_i64();
    let ext = st.backend.update_extension(ext).await?;
    tracing::info!(who = %who(principal), number = %ext.number, password_changed, "extension updated");
    let contacts = st.backend.contacts(Some(&number)).await;
    let refs: Vec<&ContactInfo> = contacts.iter().filter(|c| c.number == number).collect();
    Ok(Json(json!({
        "success": true,
        "message": "Extension updated successfully",
        "extension": view(&ext, &refs),
    }))
    .into_response())
}

/// `DELETE /api/extensions/{number}`.
pub async fn delete(
    State(st): State<AppState>,
    Path(number): Path<String>,
    principal: Option<Ext<Principal>>,
) -> Result<Response, ApiError> {
    if !is_valid_number(&number) {
        return Err(ApiError::ExtensionNotFound);
    }
    st.backend.delete_extension(&number).await?;
    tracing::info!(who = %who(principal), number = %number, "extension deleted");
    Ok(Json(json!({"success": true, "message": "Extension deleted successfully"})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value) -> Result<ExtensionInput, ApiError> {
        parse_input(&body, Mode::Create)
    }

    fn err(body: Value) -> (String, String) {
        match create(body) {
            Err(ApiError::Validation { field, rule, .. }) => (field, rule),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn numbers() {
        assert!(is_valid_number("10"));
        assert!(is_valid_number("12345678901234567890"));
        assert!(!is_valid_number("1"));
        assert!(!is_valid_number("123456789012345678901"));
        assert!(!is_valid_number("10a"));
        assert!(!is_valid_number("١٢٣")); // non-ASCII digits
        assert!(!is_valid_number(""));
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@b..c", "a@-b.c", "a@b.c-", ".a@b.c",
            "a@b.c.", "a<@b.c", "a@b,c.d",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn minimal_warden_create() {
        let i = create(json!({"number":"1001","name":" Alice ","password":"password1"})).unwrap();
        let e = i.into_new(7);
        assert_eq!(e.number, "1001");
        assert_eq!(e.name, "Alice");
        assert_eq!(e.secret, "password1");
        assert_eq!(e.codecs, vec!["ulaw", "alaw", "g722"]);
        assert_eq!((e.created_at, e.updated_at), (7, 7));
        assert!(e.enabled);
    }

    #[test]
    fn rule_table() {
        let base = || json!({"number":"1001","name":"A","password":"password1"});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = base();
            b.as_object_mut().unwrap().remove(k);
            b
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (without("number"), "number", "required"),
            (with("number", json!(null)), "number", "required"),
            (with("number", json!({"x":1})), "number", "type:string"),
            (with("number", json!(1001)), "number", "type:string"),
            (with("number", json!("1")), "number", "digits_between:2,20"),
            (
                with("number", json!("12a4")),
                "number",
                "digits_between:2,20",
            ),
            (
                with("number", json!("1".repeat(21))),
                "number",
                "digits_between:2,20",
            ),
            (without("name"), "name", "required"),
            (with("name", json!("   ")), "name", "required"),
            (with("name", json!(["x"])), "name", "type:string"),
            (
                with("name", json!("x".repeat(256))),
                "name",
                "max_length:255",
            ),
            (with("name", json!("a\nb")), "name", "no_control_chars"),
            (without("password"), "password", "required"),
            (with("password", json!("")), "password", "required"),
            (with("password", json!("short")), "password", "min_length:8"),
            (with("password", json!(12345678)), "password", "type:string"),
            (
                with("password", json!("x".repeat(129))),
                "password",
                "max_length:128",
            ),
            (
                with("password", json!("pass\u{0}word")),
                "password",
                "no_control_chars",
            ),
            (with("email", json!("nope")), "email", "email"),
            (with("email", json!(5)), "email", "type:string"),
            (
                with("voicemail_pin", json!("12")),
                "voicemail_pin",
                "digits_between:4,6",
            ),
            (
                with("voicemail_pin", json!("1234567")),
                "voicemail_pin",
                "digits_between:4,6",
            ),
            (
                with("voicemail_pin", json!("12a4")),
                "voicemail_pin",
                "digits_between:4,6",
            ),
            (
                with("voicemail_pin", json!(1234)),
                "voicemail_pin",
                "type:string",
            ),
            (with("enabled", json!("yes")), "enabled", "type:boolean"),
            (
                with("allow_external", json!(2)),
                "allow_external",
                "type:boolean",
            ),
            (
                with("context", json!("from internal")),
                "context",
                "regex:^[A-Za-z0-9_.-]{1,80}$",
            ),
            (
                with("context", json!("")),
                "context",
                "regex:^[A-Za-z0-9_.-]{1,80}$",
            ),
            (
                with("transport", json!("sctp")),
                "transport",
                "in:udp,tcp,tls",
            ),
            (
                with("codecs", json!(["ulaw", "foo"])),
                "codecs.1",
                CODECS_RULE,
            ),
            (
                with("codecs", json!(["ulaw", 3])),
                "codecs.1",
                "type:string",
            ),
            (with("codecs", json!([])), "codecs", "min_items:1"),
            (with("codecs", json!({"a":1})), "codecs", "type:array"),
            (
                with("max_contacts", json!(0)),
                "max_contacts",
                "between:1,100",
            ),
            (
                with("max_contacts", json!(101)),
                "max_contacts",
                "between:1,100",
            ),
            (
                with("max_contacts", json!(-1)),
                "max_contacts",
                "between:1,100",
            ),
            (
                with("max_contacts", json!(1.5)),
                "max_contacts",
                "type:integer",
            ),
            (
                with("max_contacts", json!(u64::MAX)),
                "max_contacts",
                "between:1,100",
            ),
            (
                with("qualify_frequency", json!(3601)),
                "qualify_frequency",
                "between:0,3600",
            ),
            (
                with("qualify_frequency", json!("abc")),
                "qualify_frequency",
                "type:integer",
            ),
            (
                with("caller_id", json!("x".repeat(256))),
                "caller_id",
                "max_length:255",
            ),
            (
                with("caller_id", json!("a\rb")),
                "caller_id",
                "no_control_chars",
            ),
            (
                with("notes", json!("x".repeat(4097))),
                "notes",
                "max_length:4096",
            ),
            (with("notes", json!("a\u{7}")), "notes", "no_control_chars"),
            (
                with("remove_existing", json!([])),
                "remove_existing",
                "type:boolean",
            ),
            (
                with("extension_number", json!("2002")),
                "extension_number",
                "alias_conflict",
            ),
            (
                with("secret", json!("different1")),
                "secret",
                "alias_conflict",
            ),
        ];
        for (body, field, rule) in cases {
            assert_eq!(
                err(body.clone()),
                (field.to_owned(), rule.to_owned()),
                "{body}"
            );
        }
    }

    #[test]
    fn not_an_object() {
        for body in [json!([]), json!("x"), json!(null), json!(1)] {
            assert!(matches!(create(body), Err(ApiError::InvalidJson(_))));
        }
    }

    #[test]
    fn rayanpbx_aliases_and_normalisation() {
        let i = create(json!({
            "extension_number": "101", "name": "Bob", "secret": "s3cretpass",
            "enabled": "0", "context": "internal", "transport": "Transport-TCP",
            "codecs": ["PCMU", "g722", "pcma", "ulaw"], "max_contacts": "3",
            "qualify_frequency": 0, "caller_id": "\"Bob\" <101>", "voicemail_enabled": 1,
            "notes": "line1\nline2", "direct_media": "no", "email": "",
            // Both spellings with the same value are fine.
            "number": "101",
        }))
        .unwrap();
        let e = i.into_new(0);
        assert_eq!(e.number, "101");
        assert_eq!(e.secret, "s3cretpass");
        assert!(!e.enabled);
        assert_eq!(e.context, "internal");
        assert_eq!(e.transport.as_deref(), Some("tcp"));
        assert_eq!(e.codecs, vec!["ulaw", "g722", "alaw"]);
        assert_eq!(e.max_contacts, 3);
        assert_eq!(e.qualify_frequency, 0);
        assert_eq!(e.caller_id.as_deref(), Some("\"Bob\" <101>"));
        assert!(e.voicemail_enabled);
        assert_eq!(e.notes.as_deref(), Some("line1\nline2"));
        assert_eq!(e.email, None);
        assert_eq!(e.voicemail_pin, None);
    }

    #[test]
    fn codecs_as_comma_string() {
        let i =
            create(json!({"number":"10","name":"n","password":"password1","codecs":"opus, G729"}))
                .unwrap();
        assert_eq!(i.codecs.unwrap(), vec!["opus", "g729"]);
    }

    #[test]
    fn update_is_partial() {
        let i = parse_input(&json!({}), Mode::Update("1001")).unwrap();
        assert_eq!(i, ExtensionInput::default());
        let i = parse_input(
            &json!({"password":"", "secret": null}),
            Mode::Update("1001"),
        )
        .unwrap();
        assert_eq!(i.password, None);
        let i = parse_input(
            &json!({"number":"1001","email":null,"transport":""}),
            Mode::Update("1001"),
        )
        .unwrap();
        assert_eq!(i.email, Some(None));
        assert_eq!(i.transport, Some(None));
        let mut e = Extension::new("1001", "A", "oldsecret1");
        e.email = Some("a@b.co".into());
        i.apply(&mut e);
        assert_eq!(e.email, None);
        assert_eq!(e.secret, "oldsecret1");
        match parse_input(&json!({"extension_number":"1002"}), Mode::Update("1001")) {
            Err(ApiError::Validation { field, rule, .. }) => {
                assert_eq!(
                    (field.as_str(), rule.as_str()),
                    ("extension_number", "immutable")
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_input(&json!({"name":""}), Mode::Update("1001")) {
            Err(ApiError::Validation { field, rule, .. }) => {
                assert_eq!((field.as_str(), rule.as_str()), ("name", "required"));
            }
            other => panic!("{other:?}"),
        }
    }
}
