//! ISPBX Manager v1 API (rest-api.md §2.1, the seed's "variant A" shapes): public, no `/api`
//! prefix, FastAPI error envelopes `{"detail": …}`, AMI field names lower-cased, every config
//! value a string.
//!
//! | Method | Path |
//! |---|---|
//! | GET | `/` |
//! | GET | `/endpoints` |
//! | GET | `/endpoints/{extension}` |
//! | GET | `/endpoints/{extension}/config` |
//!
//! Served on the compat listener (`compat_api:`, port 8000) together with the RayanPBX API. ISPBX shows the auth password (AMI AuthDetail does); this router never
//! does — `password` is always empty.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::backend::{ApiBackend, BackendError};
use crate::pbx::directory::Extension;

type St = Arc<dyn ApiBackend>;

/// The ISPBX v1 router.
pub fn router(backend: Arc<dyn ApiBackend>) -> Router {
    routes(backend)
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
}

/// The ISPBX v1 routes without fallbacks (to merge with other routers).
pub fn routes(backend: Arc<dyn ApiBackend>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/endpoints", get(list))
        .route("/endpoints/{extension}", get(show))
        .route("/endpoints/{extension}/config", get(config))
        .with_state(backend)
}

/// A FastAPI error body `{"detail": text}`.
pub(crate) fn detail(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "detail": text.into() }))).into_response()
}

fn backend_error(e: BackendError, what: &str) -> Response {
    match e {
        BackendError::NotFound(_) => detail(StatusCode::NOT_FOUND, "Extension not found"),
        other => {
            tracing::warn!(error = %other, "ISPBX API backend error");
            detail(StatusCode::INTERNAL_SERVER_ERROR, what)
        }
    }
}

async fn root() -> Response {
    Json(json!({ "message": "ISPBX Manager API" })).into_response()
}

/// Asterisk's device state text for an endpoint.
fn devicestate(e: &Extension, contacts: usize) -> &'static str {
    if !e.enabled || contacts == 0 {
        "Unavailable"
    } else {
        "Not in use"
    }
}

fn transport_name(e: &Extension) -> String {
    e.pjsip_extra.transport_name.clone().unwrap_or_else(|| {
        e.transport
            .as_deref()
            .map(|p| format!("transport-{p}"))
            .unwrap_or_default()
    })
}

async fn list(State(b): State<St>) -> Response {
    let exts = match b.list_extensions().await {
        Ok(e) => e,
        Err(e) => return backend_error(e, "Failed to get endpoint details"),
    };
    let contacts = b.contacts(None).await;
    let endpoints: Vec<Value> = exts
        .iter()
        .map(|e| {
            let n = contacts.iter().filter(|c| c.number == e.number).count();
            json!({
                "extension": e.number,
                "exists_in_config": true,
                "details": {
                    "objecttype": "endpoint",
                    "objectname": e.number,
                    "devicestate": devicestate(e, n),
                    "transport": transport_name(e),
                    "aor": e.number,
                    "auths": e.number,
                }
            })
        })
        .collect();
    Json(json!({ "status": "success", "endpoints": endpoints })).into_response()
}

async fn show(State(b): State<St>, Path(ext): Path<String>) -> Response {
    let e = match b.get_extension(&ext).await {
        Ok(Some(e)) => e,
        Ok(None) => return detail(StatusCode::NOT_FOUND, "Extension not found"),
        Err(e) => return backend_error(e, "Failed to get endpoint details"),
    };
    let n = b.contacts(Some(&e.number)).await.len();
    let callerid = e
        .caller_id
        .clone()
        .unwrap_or_else(|| format!("\"{}\" <{}>", e.name, e.number));
    Json(json!({
        "status": "success",
        "extension": e.number,
        "details": {
            "endpoint": {
                "objecttype": "endpoint",
                "objectname": e.number,
                "devicestate": devicestate(&e, n),
                "context": e.context,
                "callerid": callerid,
            },
            "auth": {
                "objectname": e.number,
                "username": e.number,
                "authtype": "userpass",
                "password": "",
            },
            "aor": {
                "objectname": e.number,
                "maxcontacts": e.max_contacts.to_string(),
                "contactsregistered": n.to_string(),
                "totalcontacts": n.to_string(),
                "endpointname": e.number,
            }
        }
    }))
    .into_response()
}

/// The endpoint's pjsip.conf options, as strings (what ISPBX read from pjsip.conf).
fn endpoint_config(e: &Extension) -> Map<String, Value> {
    let yn = |b: bool| if b { "yes" } else { "no" };
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_owned(), Value::String(v));
    };
    put("type", "endpoint".into());
    let t = transport_name(e);
    if !t.is_empty() {
        put("transport", t);
    }
    put("context", e.context.clone());
    put("disallow", "all".into());
    put("allow", e.codecs.join(","));
    put("auth", e.number.clone());
    put("aors", e.number.clone());
    put("direct_media", yn(e.direct_media).into());
    put("force_rport", yn(e.force_rport).into());
    put("rewrite_contact", yn(e.rewrite_contact).into());
    put("rtp_symmetric", yn(e.rtp_symmetric).into());
    put("dtmf_mode", e.dtmf_mode.clone());
    if let Some(c) = &e.caller_id {
        put("callerid", c.clone());
    }
    if let Some(mb) = &e.mailboxes {
        put("mailboxes", mb.clone());
    }
    for (k, v) in &e.pjsip_extra.endpoint {
        if k.eq_ignore_ascii_case("ice_support") {
            put("ice_support", v.clone());
        }
    }
    m
}

async fn config(State(b): State<St>, Path(ext): Path<String>) -> Response {
    match b.get_extension(&ext).await {
        Ok(Some(e)) => Json(json!({
            "status": "success",
            "extension": e.number,
            "config": endpoint_config(&e),
        }))
        .into_response(),
        Ok(None) => detail(StatusCode::NOT_FOUND, format!("Extension {ext} not found")),
        Err(e) => backend_error(e, "Error reading PJSIP configuration"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::api::backend::{BoxFut, ContactInfo, StatusCounts};

    struct Fake(Mutex<Vec<Extension>>);

    impl ApiBackend for Fake {
        fn list_extensions(&self) -> BoxFut<'_, Result<Vec<Extension>, BackendError>> {
            Box::pin(async move { Ok(self.0.lock().unwrap().clone()) })
        }
        fn get_extension<'a>(
            &'a self,
            number: &'a str,
        ) -> BoxFut<'a, Result<Option<Extension>, BackendError>> {
            Box::pin(async move {
                Ok(self
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|e| e.number == number)
                    .cloned())
            })
        }
        fn create_extension(&self, e: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
            Box::pin(async move { Ok(e) })
        }
        fn update_extension(&self, e: Extension) -> BoxFut<'_, Result<Extension, BackendError>> {
            Box::pin(async move { Ok(e) })
        }
        fn delete_extension<'a>(&'a self, _: &'a str) -> BoxFut<'a, Result<(), BackendError>> {
            Box::pin(async move { Ok(()) })
        }
        fn contacts<'a>(&'a self, number: Option<&'a str>) -> BoxFut<'a, Vec<ContactInfo>> {
            Box::pin(async move {
                if number.is_none_or(|n| n == "101") {
                    vec![ContactInfo {
                        number: "101".into(),
                        uri: "sip:101@192.0.2.5:5060".into(),
                        ip: "192.0.2.5".into(),
                        port: 5060,
                        transport: "udp".into(),
                        user_agent: None,
                        expires_in: 60,
                        registered_at: 0,
                        qualify_status: "Reachable".into(),
                        rtt_ms: None,
                    }]
                } else {
                    Vec::new()
                }
            })
        }
        fn status(&self) -> BoxFut<'_, StatusCounts> {
            Box::pin(async move { StatusCounts::default() })
        }
    }

    async fn get(path: &str, method: &str) -> (StatusCode, Value) {
        let mut a = Extension::new("101", "Alice", "secret-101");
        a.transport = Some("udp".into());
        a.pjsip_extra.endpoint = vec![("ice_support".into(), "yes".into())];
        let b = Extension::new("102", "Bob", "secret-102");
        let app = router(Arc::new(Fake(Mutex::new(vec![a, b]))));
        let resp = app
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!text.contains("secret-10"), "secret leaked: {text}");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn ispbx_v1_shapes() {
        assert_eq!(
            get("/", "GET").await.1,
            json!({"message": "ISPBX Manager API"})
        );
        let (s, v) = get("/endpoints", "GET").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["status"], "success");
        assert_eq!(v["endpoints"][0]["extension"], "101");
        assert_eq!(v["endpoints"][0]["exists_in_config"], true);
        assert_eq!(v["endpoints"][0]["details"]["devicestate"], "Not in use");
        assert_eq!(v["endpoints"][0]["details"]["transport"], "transport-udp");
        assert_eq!(v["endpoints"][1]["details"]["devicestate"], "Unavailable");
        let (s, v) = get("/endpoints/101", "GET").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["details"]["endpoint"]["callerid"], "\"Alice\" <101>");
        assert_eq!(v["details"]["aor"]["contactsregistered"], "1");
        assert_eq!(v["details"]["auth"]["password"], "");
        let (s, v) = get("/endpoints/101/config", "GET").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["config"]["allow"], "ulaw,alaw,g722");
        assert_eq!(v["config"]["ice_support"], "yes");
        assert_eq!(v["config"]["direct_media"], "yes");
        assert!(
            v["config"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
        assert_eq!(
            get("/endpoints/999", "GET").await,
            (
                StatusCode::NOT_FOUND,
                json!({"detail": "Extension not found"})
            )
        );
        assert_eq!(
            get("/endpoints/999/config", "GET").await,
            (
                StatusCode::NOT_FOUND,
                json!({"detail": "Extension 999 not found"})
            )
        );
        assert_eq!(
            get("/endpoints", "POST").await,
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"detail": "Method Not Allowed"})
            )
        );
        assert_eq!(
            get("/nope", "GET").await,
            (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
        );
    }
}
