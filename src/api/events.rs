//! RayanPBX's event monitoring (rest-api.md §1.3, §1.11): the last 100 events of the AMI
//! stream as `extension.registration` / `extension.ringing` / `extension.hangup`, over HTTP
//! and a WebSocket.
//!
//! | Method | Path | Auth |
//! |---|---|---|
//! | GET | `/api/events` | token |
//! | GET | `/api/events/registrations` | token |
//! | GET | `/api/events/calls` | token |
//! | GET | `/api/events/extension/{number}` | token |
//! | POST | `/api/events/clear` | token |
//! | GET | `/ws` (WebSocket; `?token=` or `Authorization: Bearer`) | token |
//!
//! Events are derived exactly as RayanPBX's `AmiEventMonitor` does it: `ContactStatus` of an
//! all-digit AOR, `Newstate` to `Ring`/`Ringing`, `Hangup`. The runtime feeds the
//! [`EventFeed`] from the AMI fan-out task, never from the SIP core. Every WebSocket message
//! carries `type` and `event` (the same value), `payload` and `data` (the same object) and
//! `timestamp`, so clients of each of RayanPBX's three envelopes understand it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiError, AppState};
use crate::ami::events::AmiEvent;

/// Events kept for `GET /api/events`.
pub const MAX_EVENTS: usize = 100;
/// WebSocket messages buffered per client before it counts as too slow (and is closed).
const WS_BUFFER: usize = 1024;

/// One RayanPBX event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: Value,
    pub timestamp: String,
}

#[derive(Debug, Clone)]
struct Registration {
    status: String,
    uri: String,
    timestamp: String,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<Arc<FeedEvent>>,
    registrations: HashMap<String, Registration>,
}

/// The in-memory event history and the WebSocket fan-out.
#[derive(Debug)]
pub struct EventFeed {
    inner: Mutex<Inner>,
    ws: broadcast::Sender<Arc<str>>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a `ContactStatus` means the extension is registered. RayanPBX counts `Created`
/// and `Reachable`; Dialtone reports a fresh binding as `Unknown` (not yet qualified) or
/// `NonQualified`, which are registered too.
pub fn is_registered(status: &str) -> bool {
    matches!(
        status,
        "Created" | "Reachable" | "Unknown" | "NonQualified" | "Updated"
    )
}

/// RayanPBX's event for an AMI event, if it makes one.
pub fn from_ami(ev: &AmiEvent, timestamp: &str) -> Option<FeedEvent> {
    let h = |k: &str| ev.header(k).unwrap_or("").to_string();
    let (kind, data) = match &*ev.name {
        "ContactStatus" => {
            let aor = h("AOR");
            if aor.is_empty() || !aor.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let status = h("ContactStatus");
            let registered = is_registered(&status);
            (
                "extension.registration",
                json!({"extension": aor, "status": status, "uri": h("URI"), "registered": registered}),
            )
        }
        "Newstate" => {
            let state = h("ChannelStateDesc");
            if state != "Ring" && state != "Ringing" {
                return None;
            }
            (
                "extension.ringing",
                json!({"channel": h("Channel"), "caller": h("CallerIDNum"), "destination": h("Exten"), "state": state}),
            )
        }
        "Hangup" => (
            "extension.hangup",
            json!({"channel": h("Channel"), "cause": h("Cause"), "cause_text": h("Cause-txt")}),
        ),
        _ => return None,
    };
    Some(FeedEvent {
        kind,
        data,
        timestamp: timestamp.to_string(),
    })
}

/// The WebSocket message of an event (every envelope alias).
pub fn ws_envelope(kind: &str, data: &Value, timestamp: &str) -> String {
    json!({"type": kind, "event": kind, "payload": data, "data": data, "timestamp": timestamp})
        .to_string()
}

impl EventFeed {
    pub fn new() -> Arc<EventFeed> {
        let (ws, _) = broadcast::channel(WS_BUFFER);
        Arc::new(EventFeed {
            inner: Mutex::new(Inner::default()),
            ws,
        })
    }

    /// Take one AMI event (`now_ms`: unix milliseconds).
    pub fn push_ami(&self, ev: &AmiEvent, now_ms: i64) {
        if !matches!(&*ev.name, "ContactStatus" | "Newstate" | "Hangup") {
            return;
        }
        let ts = super::cdr::iso8601(now_ms);
        if let Some(fe) = from_ami(ev, &ts) {
            self.push(fe);
        }
    }

    /// Record an event and send it to the WebSocket clients.
    pub fn push(&self, fe: FeedEvent) {
        {
            let mut g = lock(&self.inner);
            if fe.kind == "extension.registration"
                && let Some(ext) = fe.data.get("extension").and_then(Value::as_str)
            {
                g.registrations.insert(
                    ext.to_string(),
                    Registration {
                        status: fe.data["status"].as_str().unwrap_or("").to_string(),
                        uri: fe.data["uri"].as_str().unwrap_or("").to_string(),
                        timestamp: fe.timestamp.clone(),
                    },
                );
            }
            if g.recent.len() >= MAX_EVENTS {
                g.recent.pop_front();
            }
            g.recent.push_back(Arc::new(fe.clone()));
        }
        if self.ws.receiver_count() > 0 {
            let _ = self
                .ws
                .send(ws_envelope(fe.kind, &fe.data, &fe.timestamp).into());
        }
    }

    /// The kept events, oldest first, optionally only some types.
    pub fn recent(&self, kinds: Option<&[&str]>) -> Vec<Arc<FeedEvent>> {
        lock(&self.inner)
            .recent
            .iter()
            .filter(|e| kinds.is_none_or(|k| k.contains(&e.kind)))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        let mut g = lock(&self.inner);
        g.recent.clear();
        g.registrations.clear();
    }

    /// A WebSocket subscription (messages already serialised).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.ws.subscribe()
    }
}

fn list(feed: &EventFeed, kinds: Option<&[&str]>) -> Response {
    let events = feed.recent(kinds);
    let events: Vec<&FeedEvent> = events.iter().map(|e| &**e).collect();
    axum::Json(json!({"events": events, "count": events.len()})).into_response()
}

pub(crate) async fn all(State(st): State<AppState>) -> Response {
    list(&st.events, None)
}

pub(crate) async fn registrations(State(st): State<AppState>) -> Response {
    list(&st.events, Some(&["extension.registration"]))
}

pub(crate) async fn calls(State(st): State<AppState>) -> Response {
    list(&st.events, Some(&["extension.ringing", "extension.hangup"]))
}

pub(crate) async fn extension(State(st): State<AppState>, Path(number): Path<String>) -> Response {
    let reg = lock(&st.events.inner).registrations.get(&number).cloned();
    let body = match reg {
        Some(r) => json!({
            "extension": number,
            "registered": is_registered(&r.status),
            "status": r.status,
            "uri": r.uri,
            "timestamp": r.timestamp,
        }),
        None => json!({"extension": number, "registered": false, "status": "unknown"}),
    };
    axum::Json(body).into_response()
}

pub(crate) async fn clear(State(st): State<AppState>) -> Response {
    st.events.clear();
    axum::Json(json!({"message": "Event history cleared"})).into_response()
}

/// `GET /ws`: a WebSocket of every event. The token comes as `?token=`, or as a bearer
/// header; a welcome message is sent first.
pub(crate) async fn ws(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = q
        .get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| super::auth::bearer_token(&headers));
    let ok = match token {
        Some(t) => st.auth.authenticate(t, super::auth::unix_now()).is_some(),
        None => !st.auth.requires_authentication(),
    };
    if !ok {
        return ApiError::Unauthenticated {
            invalid_token: token.is_some(),
        }
        .into_response();
    }
    let Ok(upgrade) = upgrade else {
        return ApiError::validation(
            "upgrade",
            "websocket",
            "GET /ws must be a WebSocket upgrade request",
        )
        .into_response();
    };
    let rx = st.events.subscribe();
    upgrade.on_upgrade(move |socket| ws_session(socket, rx))
}

async fn ws_session(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<str>>) {
    let now = super::cdr::iso8601(super::auth::unix_now() as i64 * 1000);
    let welcome = ws_envelope(
        "welcome",
        &json!({"message": "Connected to Dialtone events", "user": "admin"}),
        &now,
    );
    if socket.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(text) => {
                    if socket.send(Message::Text((&*text).into())).await.is_err() {
                        return;
                    }
                }
                // Too slow for the stream: close rather than buffer without bound.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ami::events;

    #[test]
    fn rayanpbx_shapes() {
        let cs = events::contact_status(
            "sip:1001@127.0.0.1:5070",
            events::ContactState::Reachable,
            "1001",
            "1001",
            None,
        );
        let fe = from_ami(&cs, "2025-01-01T00:00:00Z").unwrap();
        assert_eq!(fe.kind, "extension.registration");
        assert_eq!(
            fe.data,
            json!({"extension":"1001","status":"Reachable","uri":"sip:1001@127.0.0.1:5070","registered":true})
        );
        let trunk = events::contact_status(
            "sip:x@h",
            events::ContactState::Reachable,
            "trunk",
            "trunk",
            None,
        );
        assert!(from_ami(&trunk, "t").is_none());
        let mut ch = events::ChannelSnapshot::new("PJSIP/1002-00000001", "1.1");
        ch.state = events::ChannelState::Ringing;
        ch.caller_id_num = "1002".into();
        ch.exten = "1002".into();
        let fe = from_ami(&events::newstate(&ch), "t").unwrap();
        assert_eq!(fe.kind, "extension.ringing");
        assert_eq!(fe.data["state"], "Ringing");
        ch.state = events::ChannelState::Up;
        assert!(from_ami(&events::newstate(&ch), "t").is_none());
        let fe = from_ami(&events::hangup(&ch, 17), "t").unwrap();
        assert_eq!(
            fe.data,
            json!({"channel":"PJSIP/1002-00000001","cause":"17","cause_text":"User busy"})
        );
        let env: Value = serde_json::from_str(&ws_envelope(fe.kind, &fe.data, "t")).unwrap();
        assert_eq!(env["type"], env["event"]);
        assert_eq!(env["payload"], env["data"]);
    }

    #[test]
    fn keeps_the_last_hundred() {
        let feed = EventFeed::new();
        for i in 0..150 {
            let cs = events::contact_status(
                &format!("sip:{i}@h"),
                events::ContactState::Removed,
                "1001",
                "1001",
                None,
            );
            feed.push_ami(&cs, 0);
        }
        let r = feed.recent(None);
        assert_eq!(r.len(), MAX_EVENTS);
        assert_eq!(r[0].data["uri"], "sip:50@h");
        assert_eq!(r[99].data["registered"], false);
        feed.clear();
        assert!(feed.recent(None).is_empty());
    }
}
