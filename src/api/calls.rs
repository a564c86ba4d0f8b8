//! Calls in progress: `GET /api/calls` (seed 004: an array of strings), `GET /api/calls/detail`
//! (the same calls as objects), `POST /api/call/hangup {call_id}` and `DELETE /api/calls/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::cdr::iso8601;
use super::error::ApiError;

pub(crate) async fn list(State(st): State<AppState>) -> Json<Value> {
    let calls = st.backend.calls().await;
    Json(Value::Array(
        calls
            .into_iter()
            .map(|c| {
                let state = if c.answered { "connected" } else { "ringing" };
                Value::String(format!(
                    "Call {}: {} -> {} ({state})",
                    c.call_id, c.from, c.to
                ))
            })
            .collect(),
    ))
}

pub(crate) async fn detail(State(st): State<AppState>) -> Json<Value> {
    let calls = st.backend.calls().await;
    Json(Value::Array(
        calls
            .into_iter()
            .map(|c| {
                json!({
                    "call_id": c.call_id,
                    "from": c.from,
                    "to": c.to,
                    "state": if c.answered { "connected" } else { "ringing" },
                    "start_time": iso8601(c.start),
                    "answer_time": c.answer.map(iso8601),
                })
            })
            .collect(),
    ))
}

async fn hangup_id(st: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    st.backend.hangup(id).await.map_err(|e| match e {
        super::BackendError::NotFound(_) => ApiError::CallNotFound,
        other => ApiError::from(other),
    })?;
    tracing::info!(call_id = id, "call hung up through the API");
    Ok(Json(json!({"success": true, "message": "Call hung up"})))
}

pub(crate) async fn hangup_body(
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let Some(id) = v
        .get("call_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError::Validation {
            field: "call_id".into(),
            rule: "required|string".into(),
            message: "call_id is required".into(),
        });
    };
    hangup_id(&st, id).await
}

pub(crate) async fn hangup_path(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    hangup_id(&st, &id).await
}
