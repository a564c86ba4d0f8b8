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

/// `POST /api/call {"from","to"}`: click-to-dial. `from` rings first; when it answers,
/// Dialtone calls `to`. Answers `{"success": true, "call_id": …}` at once (the call goes on).
pub(crate) async fn originate(
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    use super::backend::OriginateFailure;
    use crate::pbx::engine::OriginateError;
    use axum::http::StatusCode;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if !v.is_object() {
        return Err(ApiError::InvalidJson("expected a JSON object".into()));
    }
    let field = |name: &'static str| -> Result<String, ApiError> {
        let n = match v.get(name) {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            None | Some(Value::Null) => {
                return Err(ApiError::validation(
                    name,
                    "required",
                    format!("{name} is required"),
                ));
            }
            Some(_) => {
                return Err(ApiError::validation(
                    name,
                    "string",
                    format!("{name} must be an extension number"),
                ));
            }
        };
        if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::validation(
                name,
                "digits",
                format!("{name} must be an extension number (digits)"),
            ));
        }
        Ok(n)
    };
    let from = field("from")?;
    let to = field("to")?;
    if from == to {
        return Err(ApiError::validation(
            "to",
            "different:from",
            "to must differ from from",
        ));
    }
    let call_id = st
        .backend
        .originate(&from, &to)
        .await
        .map_err(|e| match e {
            OriginateFailure::Rejected(OriginateError::NotFound { field, number }) => {
                ApiError::Field {
                    status: StatusCode::NOT_FOUND,
                    field,
                    message: format!("Extension {number} not found"),
                }
            }
            OriginateFailure::Rejected(OriginateError::NotRegistered(n)) => ApiError::Field {
                status: StatusCode::CONFLICT,
                field: "from",
                message: format!("Extension {n} is not registered"),
            },
            OriginateFailure::Rejected(OriginateError::SameExtension) => {
                ApiError::validation("to", "different:from", "to must differ from from")
            }
            OriginateFailure::Unavailable(d) => ApiError::Unavailable(d),
        })?;
    tracing::info!(%from, %to, %call_id, "click-to-dial through the API");
    Ok(Json(json!({"success": true, "call_id": call_id})))
}
