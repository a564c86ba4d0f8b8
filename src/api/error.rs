//! API errors and their JSON envelopes (Warden flavour: `{"error": "<text>"}`, plus `field` and
//! `rule` on validation errors so that humans and tools can tell which input was wrong).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::backend::BackendError;

/// Everything a handler can fail with; each variant maps to one HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A field failed a validation rule (400).
    #[error("{message}")]
    Validation {
        field: String,
        rule: String,
        message: String,
    },
    /// The body is not JSON (or not a JSON object) (400).
    #[error("Invalid JSON body: {0}")]
    InvalidJson(String),
    /// Login without username or password (400).
    #[error("Username and password required")]
    MissingCredentials { field: &'static str },
    /// No or an invalid bearer token on a protected route (401).
    #[error("Authentication required")]
    Unauthenticated {
        /// A token was presented but is invalid or expired (RFC 6750 `invalid_token`).
        invalid_token: bool,
    },
    /// Wrong username or password on login (401).
    #[error("Invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins from one address (429).
    #[error("Too many login attempts. Please try again later.")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The extension in the path does not exist (404).
    #[error("Extension not found")]
    ExtensionNotFound,
    /// No call in progress with this id (404).
    #[error("Call not found")]
    CallNotFound,
    /// The number is taken (409).
    #[error("Extension already exists")]
    Duplicate,
    /// No route for this path (404).
    #[error("Not found")]
    RouteNotFound,
    /// The route exists but not with this method (405).
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// A request that names something that does not exist or cannot be used now (`status`
    /// 404 or 409), with the field that named it.
    #[error("{message}")]
    Field {
        status: StatusCode,
        field: &'static str,
        message: String,
    },
    /// The backend cannot answer (503); the detail is logged, not returned.
    #[error("Service unavailable")]
    Unavailable(String),
}

impl ApiError {
    /// A validation error on `field` breaking `rule`.
    pub fn validation(
        field: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation {
            field: field.into(),
            rule: rule.into(),
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. }
            | ApiError::InvalidJson(_)
            | ApiError::MissingCredentials { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated { .. } | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ExtensionNotFound | ApiError::CallNotFound | ApiError::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::Duplicate => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Field { status, .. } => *status,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.to_string()));
        match self {
            ApiError::Validation { field, rule, .. } => {
                body.insert("field".into(), json!(field));
                body.insert("rule".into(), json!(rule));
            }
            ApiError::MissingCredentials { field } => {
                body.insert("field".into(), json!(field));
                body.insert("rule".into(), json!("required"));
            }
            ApiError::Field { field, message, .. } => {
                body.insert("error".into(), json!(message));
                body.insert("field".into(), json!(field));
            }
            ApiError::Duplicate => {
                body.insert("field".into(), json!("number"));
                body.insert("rule".into(), json!("unique"));
            }
            _ => {}
        }
        Value::Object(body)
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Duplicate(_) => ApiError::Duplicate,
            BackendError::NotFound(_) => ApiError::ExtensionNotFound,
            BackendError::Unavailable(detail) => ApiError::Unavailable(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(detail) = &self {
            tracing::warn!(%detail, "API backend unavailable");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated { invalid_token } => {
                let challenge = if *invalid_token {
                    "Bearer realm=\"dialtone\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"dialtone\""
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::TooManyAttempts { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let e = ApiError::validation(
            "password",
            "min_length:8",
            "Password must be at least 8 characters",
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body(),
            json!({"error":"Password must be at least 8 characters","field":"password","rule":"min_length:8"})
        );
        assert_eq!(
            ApiError::Duplicate.body(),
            json!({"error":"Extension already exists","field":"number","rule":"unique"})
        );
        assert_eq!(ApiError::Duplicate.status(), StatusCode::CONFLICT);
        assert_eq!(
            ApiError::InvalidJson("eof".into()).body(),
            json!({"error":"Invalid JSON body: eof"})
        );
        assert_eq!(
            ApiError::from(BackendError::NotFound("1001".into())).body(),
            json!({"error":"Extension not found"})
        );
        let unavailable = ApiError::from(BackendError::Unavailable("db locked at /var/x".into()));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.body(), json!({"error":"Service unavailable"}));
    }

    #[test]
    fn challenge_headers() {
        let r = ApiError::Unauthenticated {
            invalid_token: true,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let h = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(h.starts_with("Bearer") && h.contains("invalid_token"));
        let r = ApiError::TooManyAttempts {
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "42");
    }
}
