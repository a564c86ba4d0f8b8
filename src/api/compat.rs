//! The compat listener (`compat_api:`, port 8000): the RayanPBX API ([`super::rayanpbx`]) and
//! the ISPBX v1 API ([`super::ispbx`]) on one port. Their paths do not collide except `GET /`,
//! which answers as ISPBX. Errors use each flavour's envelope (rest-api.md §0.1): `/api/...`
//! gets Laravel's `{"success":false,"error","message","http_code"}`, everything else FastAPI's
//! `{"detail": …}`.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::Response;

use super::auth::{self, ApiConfig};
use super::backend::{ApiBackend, BackendError, BoxFut};
use super::{ispbx, rayanpbx};
use crate::ami::cli::CliOutput;
use crate::ami::model::Snapshot;
use crate::pjsip_conf::PjsipObject;

/// What the compat APIs need beyond [`ApiBackend`]: the CLI emulation, pjsip objects and
/// reloads.
pub trait CompatBackend: Send + Sync + 'static {
    /// The PBX as the CLI emulation sees it (endpoints with device states and contacts).
    fn snapshot(&self) -> BoxFut<'_, Arc<Snapshot>>;
    /// Run an Asterisk CLI command (`pjsip show endpoints`, `pjsip reload`, ...).
    fn cli<'a>(&'a self, command: &'a str) -> BoxFut<'a, CliOutput>;
    /// The stored pjsip objects (transports, global, trunks, ...).
    fn pjsip_objects(&self) -> BoxFut<'_, Result<Vec<PjsipObject>, BackendError>>;
    /// Insert or replace objects (by type and name) in one transaction, then apply the NAT
    /// settings at once.
    fn save_pjsip_objects(&self, objects: Vec<PjsipObject>)
    -> BoxFut<'_, Result<(), BackendError>>;
    /// The pjsip.conf Dialtone runs from, if any.
    fn pjsip_file(&self) -> Option<String> {
        None
    }
}

/// Compat listener settings.
#[derive(Debug, Clone)]
pub struct CompatConfig {
    /// Auth of the RayanPBX routes (same users and tokens as the Warden API).
    pub api: ApiConfig,
    /// ISPBX routes without authentication (as ISPBX).
    pub ispbx_public: bool,
}

/// State of the RayanPBX handlers.
#[derive(Clone)]
pub(crate) struct CompatState {
    pub(crate) api: Arc<dyn ApiBackend>,
    pub(crate) compat: Arc<dyn CompatBackend>,
    pub(crate) auth: Arc<auth::AuthState>,
}

/// The compat router (RayanPBX + ISPBX v1). Serve it with [`super::serve`].
pub fn router(
    api: Arc<dyn ApiBackend>,
    compat: Arc<dyn CompatBackend>,
    cfg: CompatConfig,
) -> Router {
    let state = CompatState {
        api: api.clone(),
        compat,
        auth: auth::state(cfg.api),
    };
    let mut ispbx = ispbx::routes(api);
    if !cfg.ispbx_public {
        ispbx = ispbx.route_layer(middleware::from_fn_with_state(
            state.clone(),
            rayanpbx::require_auth,
        ));
    }
    rayanpbx::routes(state)
        .merge(ispbx)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

fn is_rayanpbx(uri: &Uri) -> bool {
    uri.path() == "/api" || uri.path().starts_with("/api/")
}

async fn fallback(uri: Uri) -> Response {
    if is_rayanpbx(&uri) {
        let path = uri.path().trim_start_matches('/');
        rayanpbx::envelope(
            StatusCode::NOT_FOUND,
            "Resource not found",
            format!("The route {path} could not be found."),
        )
    } else {
        ispbx::detail(StatusCode::NOT_FOUND, "Not Found")
    }
}

async fn method_not_allowed(uri: Uri, method: axum::http::Method) -> Response {
    if is_rayanpbx(&uri) {
        let path = uri.path().trim_start_matches('/');
        rayanpbx::envelope(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!("The {method} method is not supported for route {path}."),
        )
    } else {
        ispbx::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }
}
