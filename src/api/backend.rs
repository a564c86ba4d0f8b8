//! The seam between the REST API and the rest of the PBX.
//!
//! The API never touches the store or the SIP core directly: it talks to an [`ApiBackend`],
//! implemented by the runtime over the store (extensions) and the registrar (live contacts).

use std::future::Future;
use std::pin::Pin;

use crate::pbx::directory::Extension;

/// A boxed, `Send` future borrowing from the backend (object-safe async trait methods).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the REST API needs from the PBX.
pub trait ApiBackend: Send + Sync + 'static {
    /// All extensions, in the store's order.
    fn list_extensions(&self) -> BoxFut<'_, Result<Vec<Extension>, BackendError>>;
    /// One extension by number; `Ok(None)` when it does not exist.
    fn get_extension<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFut<'a, Result<Option<Extension>, BackendError>>;
    /// Inserts a new extension and returns it as stored (with its id).
    /// [`BackendError::Duplicate`] when the number is taken (→ HTTP 409).
    fn create_extension(&self, ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>>;
    /// Replaces the extension with the same number and returns it as stored.
    /// [`BackendError::NotFound`] when it does not exist (→ HTTP 404).
    fn update_extension(&self, ext: Extension) -> BoxFut<'_, Result<Extension, BackendError>>;
    /// Removes an extension. [`BackendError::NotFound`] when it does not exist (→ HTTP 404).
    fn delete_extension<'a>(&'a self, number: &'a str) -> BoxFut<'a, Result<(), BackendError>>;
    /// Live registration state (from the registrar, in memory): the contacts of one
    /// extension, or of all extensions when `number` is `None`.
    fn contacts<'a>(&'a self, number: Option<&'a str>) -> BoxFut<'a, Vec<ContactInfo>>;
    /// Live counters for `GET /api/status`.
    fn status(&self) -> BoxFut<'_, StatusCounts>;
    /// Calls in progress. Backends without calls answer an empty list.
    fn calls(&self) -> BoxFut<'_, Vec<CallInfo>> {
        Box::pin(async { Vec::new() })
    }
    /// Click-to-dial: ring `from`, then call `to`; the caller leg's Call-ID.
    fn originate<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFut<'a, Result<String, OriginateFailure>> {
        let _ = (from, to);
        Box::pin(async { Err(OriginateFailure::Unavailable("no call engine".into())) })
    }
    /// Aggregates of the call records in `[from_ms, to_ms)`.
    fn cdr_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFut<'_, Result<crate::store::CdrSummary, BackendError>> {
        let _ = (from_ms, to_ms);
        Box::pin(async { Err(BackendError::Unavailable("no CDR store".into())) })
    }
    /// Every extension's presence.
    fn presence(&self) -> BoxFut<'_, Vec<crate::pbx::engine::PresenceEntry>> {
        Box::pin(async { Vec::new() })
    }
    /// Set an extension's presence; `NotFound` for an unknown extension.
    fn set_presence<'a>(
        &'a self,
        extension: &'a str,
        status: crate::pbx::presence::PresenceStatus,
        note: Option<String>,
    ) -> BoxFut<'a, Result<(), BackendError>> {
        let _ = (status, note);
        Box::pin(async move { Err(BackendError::NotFound(extension.to_string())) })
    }
    /// Hang up a call by Call-ID; `NotFound` when there is none.
    fn hangup<'a>(&'a self, call_id: &'a str) -> BoxFut<'a, Result<(), BackendError>> {
        Box::pin(async move { Err(BackendError::NotFound(call_id.to_string())) })
    }
    /// Call records that started in `[from_ms, to_ms)`, newest first. Backends without a CDR
    /// store answer `Unavailable` (HTTP 503).
    fn cdrs(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> BoxFut<'_, Result<Vec<CdrInfo>, BackendError>> {
        let _ = (from_ms, to_ms, limit);
        Box::pin(async { Err(BackendError::Unavailable("no CDR store".into())) })
    }
}

/// Why a click-to-dial request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginateFailure {
    /// The engine refused it (unknown or unregistered extension …).
    Rejected(crate::pbx::engine::OriginateError),
    /// The core cannot answer (HTTP 503).
    Unavailable(String),
}

/// A call in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller's SIP Call-ID (what hangup takes).
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub answered: bool,
    /// Unix milliseconds.
    pub start: i64,
    pub answer: Option<i64>,
}

/// One call detail record as the API shows it (times in unix milliseconds here; the handler
/// renders ISO 8601).
#[derive(Debug, Clone, PartialEq)]
pub struct CdrInfo {
    pub call_id: String,
    pub from_extension: String,
    pub to_extension: String,
    pub start_time: i64,
    pub answer_time: Option<i64>,
    pub end_time: i64,
    /// ANSWERED, NO ANSWER, BUSY, FAILED, CANCELLED.
    pub disposition: String,
    pub duration: i64,
    pub billsec: i64,
    pub recording_file: Option<String>,
    pub hangup_cause: u16,
    pub hung_up_by: String,
    /// Q.850 cause and Asterisk's text for it.
    pub q850_cause: u8,
    pub codec_a: Option<String>,
    pub codec_b: Option<String>,
    /// RTP received from the caller's (a) and the callee's (b) phone.
    pub rtp_a: crate::store::CdrRtpStats,
    pub rtp_b: crate::store::CdrRtpStats,
}

/// Failures of the backend, mapped to HTTP statuses by the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The extension number already exists (HTTP 409).
    #[error("extension {0} already exists")]
    Duplicate(String),
    /// The extension number does not exist (HTTP 404).
    #[error("extension {0} not found")]
    NotFound(String),
    /// The store or the core cannot answer right now (HTTP 503). The text is logged, never
    /// sent to the client.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// One registered contact (binding) of an extension, as the registrar sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactInfo {
    /// The extension number (AOR user part).
    pub number: String,
    /// The Contact URI as registered.
    pub uri: String,
    /// Source IP of the REGISTER.
    pub ip: String,
    /// Source port of the REGISTER.
    pub port: u16,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    pub user_agent: Option<String>,
    /// Seconds until the binding expires.
    pub expires_in: u64,
    /// Unix seconds of the (last) registration.
    pub registered_at: i64,
    /// `"Reachable"`, `"Unreachable"` or `"Unknown"`.
    pub qualify_status: String,
    /// Round-trip time of the last qualify OPTIONS, when known.
    pub rtt_ms: Option<f64>,
}

/// Live counters of the PBX.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Extensions with at least one live contact.
    pub registered_extensions: usize,
    pub active_calls: usize,
    /// Calls since start.
    pub total_calls: u64,
    pub active_recordings: usize,
    pub active_conferences: usize,
    pub parked_calls: usize,
    pub queued_calls: usize,
    /// Live contacts (bindings) over all extensions.
    pub registered_contacts: usize,
    /// Configured extensions.
    pub extensions: usize,
}
