//! `GET /api/presence` and `POST /api/presence/set {extension, status, message}` (seed 004):
//! every extension's presence (`extension, name, status, custom_message, in_call,
//! last_activity, idle_time`), and setting it. `do_not_disturb` makes new calls to the
//! extension get 486 and lights its BLF lamp; a change is NOTIFYed to presence watchers.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::cdr::iso8601;
use super::error::ApiError;
use crate::pbx::presence::PresenceStatus;

pub(crate) async fn list(State(st): State<AppState>) -> Json<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let entries = st.backend.presence().await;
    Json(Value::Array(
        entries
            .into_iter()
            .map(|p| {
                let last = p.last_activity.map(|ms| ms as i64);
                json!({
                    "extension": p.extension,
                    "name": p.name,
                    "status": p.status.as_str(),
                    "custom_message": p.note.unwrap_or_default(),
                    "in_call": p.in_call,
                    "device_state": p.device_state.as_str(),
                    "last_activity": last.map(iso8601),
                    "idle_time": last.map_or(0, |l| ((now - l).max(0)) / 1000),
                })
            })
            .collect(),
    ))
}

pub(crate) async fn set(
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if !v.is_object() {
        return Err(ApiError::InvalidJson("expected a JSON object".into()));
    }
    let extension = match v.get("extension") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ApiError::validation(
                "extension",
                "required",
                "extension is required",
            ));
        }
    };
    let allowed: Vec<&str> = PresenceStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .and_then(PresenceStatus::parse)
        .ok_or_else(|| {
            ApiError::validation(
                "status",
                format!("in:{}", allowed.join(",")),
                format!("status must be one of: {}", allowed.join(", ")),
            )
        })?;
    let message = match v.get("message").or_else(|| v.get("custom_message")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 256 => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(_) => {
            return Err(ApiError::validation(
                "message",
                "string|max:256",
                "message must be a string of at most 256 characters",
            ));
        }
    };
    st.backend
        .set_presence(&extension, status, message)
        .await
        .map_err(|e| match e {
            super::BackendError::NotFound(_) => ApiError::ExtensionNotFound,
            other => ApiError::from(other),
        })?;
    tracing::info!(%extension, status = status.as_str(), "presence set through the API");
    Ok(Json(json!({"success": true})))
}
