//! REST API (axum), Warden ("Python PBX") flavour, accepting RayanPBX field names on input.
//!
//! See `/work/shared/spec/rest-api.md` §0.1, §3.1, §3.2 rows 1–5, §4.3, §4.4. Routes:
//!
//! | Method | Path | Auth |
//! |---|---|---|
//! | GET | `/health` | public |
//! | GET | `/api/status` (exactly the 8 Warden keys) | public |
//! | GET | `/api/status/detail` (the 8 keys + `registered_contacts`, `extensions`, `version`) | token |
//! | POST | `/api/auth/login`, `/api/auth/logout` | public |
//! | GET, POST | `/api/extensions` | token |
//! | GET, PUT, DELETE | `/api/extensions/{number}` | token |
//! | any | `/api/v1/{*rest}` → 307 `/api/{rest}` | public |
//!
//! Errors are `{"error": "<text>"}`; validation errors add `field` and `rule`. Unknown `/api/…`
//! paths answer 404 `{"error":"Not found"}`, wrong methods 405 `{"error":"Method not allowed"}`.
//! The API reaches the store and the SIP core only through [`ApiBackend`].

mod auth;
mod backend;
mod calls;
mod cdr;
pub mod compat;
mod error;
pub mod events;
mod extensions;
pub mod ispbx;
pub mod jwt;
mod presence;
mod rayanpbx;
mod statistics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, middleware};
use serde::Serialize;

pub use auth::{ApiConfig, LOGIN_MAX_ATTEMPTS, LOGIN_WINDOW, LoginThrottle, Principal};
pub use backend::{
    ApiBackend, BackendError, BoxFut, CallInfo, CdrInfo, ContactInfo, OriginateFailure,
    StatusCounts,
};
pub use compat::{CompatBackend, CompatConfig};
pub use error::ApiError;
pub use extensions::{
    KNOWN_CODECS, MAX_CONTACTS_RANGE, QUALIFY_FREQUENCY_RANGE, is_valid_email, is_valid_number,
};

/// State shared by all handlers of one router.
#[derive(Clone)]
pub(crate) struct AppState {
    backend: Arc<dyn ApiBackend>,
    auth: Arc<auth::AuthState>,
    events: Arc<events::EventFeed>,
}

/// Builds the API router. Serve it with [`serve`] (or with
/// `into_make_service_with_connect_info::<SocketAddr>()`) so that the login throttle sees
/// client addresses; without connect info all clients share one throttle bucket.
///
/// The router has no global fallback (it only claims `/api/*` and `/health`), so it can be
/// merged with other routers.
pub fn router(backend: Arc<dyn ApiBackend>, cfg: ApiConfig) -> Router {
    router_with_events(backend, cfg, events::EventFeed::new())
}

/// [`router`] with the RayanPBX event history and WebSocket fed from `feed`.
pub fn router_with_events(
    backend: Arc<dyn ApiBackend>,
    cfg: ApiConfig,
    feed: Arc<events::EventFeed>,
) -> Router {
    let state = AppState {
        backend,
        auth: auth::state(cfg),
        events: feed,
    };
    let protected = Router::new()
        .route(
            "/api/extensions",
            get(extensions::list).post(extensions::create),
        )
        .route(
            "/api/extensions/{number}",
            get(extensions::show)
                .put(extensions::update)
                .delete(extensions::delete),
        )
        .route("/api/status/detail", get(status_detail))
        .route("/api/cdr", get(cdr::list))
        .route("/api/statistics", get(statistics::get))
        .route("/api/presence", get(presence::list))
        .route("/api/presence/set", post(presence::set))
        .route("/api/calls", get(calls::list))
        .route("/api/calls/detail", get(calls::detail))
        .route("/api/calls/{id}", axum::routing::delete(calls::hangup_path))
        .route("/api/call/hangup", post(calls::hangup_body))
        .route("/api/call", post(calls::originate))
        .route("/api/events", get(events::all))
        .route("/api/events/registrations", get(events::registrations))
        .route("/api/events/calls", get(events::calls))
        .route("/api/events/extension/{number}", get(events::extension))
        .route("/api/events/clear", post(events::clear))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/api/status", get(status))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/ws", get(events::ws))
        .route("/api/v1/{*rest}", any(redirect_v1))
        .route("/api", any(not_found))
        .route("/api/", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .merge(protected)
        // Must come after every route: it is attached to the routes present now.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// CORS for browser front ends (`api.enable_cors`): the listed origins (any when empty), the
/// methods and headers the API uses; preflight requests are answered by the layer.
pub fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(std::time::Duration::from_secs(600))
}

/// Serves `app` on `listener` with client addresses available to the handlers, until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// `GET /api/status` body: exactly Warden's `PBXCore.get_status()` keys.
#[derive(Serialize)]
struct StatusBody {
    running: bool,
    registered_extensions: usize,
    active_calls: usize,
    total_calls: u64,
    active_recordings: usize,
    active_conferences: usize,
    parked_calls: usize,
    queued_calls: usize,
}

/// `GET /api/status/detail` body: the Warden keys plus Dialtone's extras.
#[derive(Serialize)]
struct StatusDetailBody {
    #[serde(flatten)]
    status: StatusBody,
    registered_contacts: usize,
    extensions: usize,
    version: &'static str,
}

impl From<&StatusCounts> for StatusBody {
    fn from(c: &StatusCounts) -> Self {
        StatusBody {
            running: true,
            registered_extensions: c.registered_extensions,
            active_calls: c.active_calls,
            total_calls: c.total_calls,
            active_recordings: c.active_recordings,
            active_conferences: c.active_conferences,
            parked_calls: c.parked_calls,
            queued_calls: c.queued_calls,
        }
    }
}

async fn status(axum::extract::State(st): axum::extract::State<AppState>) -> Json<StatusBody> {
    Json(StatusBody::from(&st.backend.status().await))
}

async fn status_detail(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> Json<StatusDetailBody> {
    let c = st.backend.status().await;
    Json(StatusDetailBody {
        status: StatusBody::from(&c),
        registered_contacts: c.registered_contacts,
        extensions: c.extensions,
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `/api/v1/...` → 307 `/api/...` (query kept), as the Python PBX does.
async fn redirect_v1(uri: Uri) -> Response {
    let path = uri.path();
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut location = String::with_capacity(path.len() + 1);
    location.push_str("/api");
    location.push_str(rest);
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    match HeaderValue::try_from(location) {
        Ok(v) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => ApiError::RouteNotFound.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests;
