//! One AMI connection as a state machine: banner, login (plain or MD5 challenge), action
//! dispatch with backend round trips, and event delivery that never interleaves with a
//! response.
//!
//! Drive it with [`AmiSession::handle_input`], [`AmiSession::handle_reply`] (answering
//! [`AmiSession::poll_request`]), [`AmiSession::handle_event`] and
//! [`AmiSession::handle_timeout`]; write out [`AmiSession::poll_transmit`] and close when
//! [`AmiSession::is_closed`].

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::BANNER;
use super::actions::{self, Ctx, Outcome};
use super::backend::{Reply, Request};
use super::events::{self, AmiEvent};
use super::filter::EventFilters;
use super::frame::{self, Frame, FrameParser, push_kv, response_head};
use super::perms::{self, Acl};

/// One manager account.
#[derive(Debug, Clone)]
pub struct AmiUser {
    pub username: String,
    pub secret: String,
    pub read: u32,
    pub write: u32,
    pub acl: Acl,
    pub filters: EventFilters,
}

/// Settings shared by every session.
#[derive(Debug, Clone)]
pub struct AmiSettings {
    pub users: Vec<AmiUser>,
    /// Unauthenticated sessions are closed after this long (`authtimeout`, 30 s).
    pub auth_timeout: Duration,
    /// Failed logins are answered after this long (1 s).
    pub fail_delay: Duration,
    /// Unix seconds the PBX started (FullyBooted `Uptime`).
    pub started_unix: f64,
    pub system_name: String,
    /// `disabledevents`: event names never sent.
    pub disabled_events: Vec<String>,
}

impl AmiSettings {
    pub fn new(users: Vec<AmiUser>, started_unix: f64) -> AmiSettings {
        AmiSettings {
            users,
            auth_timeout: Duration::from_secs(30),
            fail_delay: Duration::from_secs(1),
            started_unix,
            system_name: String::new(),
            disabled_events: Vec::new(),
        }
    }

    /// Whether any account may log in from `ip` (checked at accept time).
    pub fn any_user_allows(&self, ip: IpAddr) -> bool {
        self.users.iter().any(|u| u.acl.allows(ip))
    }
}

/// An event prepared once for every session: the event and its wire form.
#[derive(Debug, Clone)]
pub struct WireEvent {
    pub event: AmiEvent,
    pub wire: String,
}

impl WireEvent {
    pub fn new(event: AmiEvent) -> WireEvent {
        let wire = event.to_wire();
        WireEvent { event, wire }
    }
}

/// The AMI events of one engine step, published together: one broadcast message (one wake-up
/// and one ring slot per client) instead of one per event, and one pre-joined wire text that
/// a session reading everything copies in one go.
#[derive(Debug)]
pub struct WireBatch {
    pub events: Vec<Arc<WireEvent>>,
    /// The events' wire texts joined (empty for a single event: use its own).
    joined: String,
    /// The union of the events' classes.
    classes: u32,
}

impl WireBatch {
    pub fn new(events: Vec<AmiEvent>) -> WireBatch {
        let events: Vec<Arc<WireEvent>> = events
            .into_iter()
            .map(|e| Arc::new(WireEvent::new(e)))
            .collect();
        let classes = events.iter().fold(0, |m, e| m | e.event.class);
        let joined = if events.len() > 1 {
            let mut s = String::with_capacity(events.iter().map(|e| e.wire.len()).sum());
            for e in &events {
                s.push_str(&e.wire);
            }
            s
        } else {
            String::new()
        };
        WireBatch {
            events,
            joined,
            classes,
        }
    }

    pub fn one(event: AmiEvent) -> WireBatch {
        WireBatch::new(vec![event])
    }

    /// All the events on the wire, in order.
    pub fn wire(&self) -> &str {
        match self.events.as_slice() {
            [one] => &one.wire,
            _ => &self.joined,
        }
    }
}

/// Events held while an action is answered (e.g. a sync `Originate`) before the session
/// counts as unable to keep up.
pub const MAX_QUEUED_EVENTS: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unauthenticated,
    Authenticated {
        user: usize,
    },
    /// A failed login: answer at `at`, then close.
    Failing {
        at: Instant,
    },
    Closed,
}

/// One AMI connection.
#[derive(Debug)]
pub struct AmiSession {
    settings: Arc<AmiSettings>,
    peer: IpAddr,
    /// `(instant, unix seconds)` at the same moment, to turn `now` into wall time.
    epoch: (Instant, f64),
    parser: FrameParser,
    out: String,
    state: State,
    challenge: String,
    read: u32,
    write: u32,
    send_events: u32,
    /// The frame whose action waits for a reply, and whether its request was taken.
    pending: Option<(Frame, Option<Request>)>,
    queued: VecDeque<Arc<WireEvent>>,
    auth_deadline: Instant,
    fail_action_id: Option<String>,
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

impl AmiSession {
    /// A new connection from `peer`; writes the banner. `challenge` is the MD5 challenge this
    /// session will hand out (a random decimal from the runtime).
    pub fn new(
        now: Instant,
        unix_now: f64,
        settings: Arc<AmiSettings>,
        peer: IpAddr,
        challenge: u32,
    ) -> AmiSession {
        let auth_deadline = now + settings.auth_timeout;
        AmiSession {
            settings,
            peer,
            epoch: (now, unix_now),
            parser: FrameParser::new(),
            out: BANNER.to_string(),
            state: State::Unauthenticated,
            challenge: challenge.to_string(),
            read: 0,
            write: 0,
            send_events: 0,
            pending: None,
            queued: VecDeque::new(),
            auth_deadline,
            fail_action_id: None,
        }
    }

    fn unix(&self, now: Instant) -> f64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs_f64()
    }

    /// The logged-in user name.
    pub fn username(&self) -> Option<&str> {
        match self.state {
            State::Authenticated { user } => Some(&self.settings.users[user].username),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes to write (everything produced so far).
    pub fn poll_transmit(&mut self) -> Option<String> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// Hand a written buffer back so the next batch reuses its capacity (no regrowth and
    /// page zeroing per write under an event stream). Oversized buffers are dropped.
    pub fn recycle(&mut self, mut buf: String) {
        if self.out.is_empty() && buf.capacity() <= 1 << 18 {
            buf.clear();
            self.out = buf;
        }
    }

    /// The backend request an action waits for (once).
    pub fn poll_request(&mut self) -> Option<Request> {
        self.pending.as_mut().and_then(|(_, r)| r.take())
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Unauthenticated => Some(self.auth_deadline),
            State::Failing { at } => Some(at),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Failing { at } if now >= at => {
                let id = self.fail_action_id.take();
                self.out
                    .push_str(&frame::error(id.as_deref(), "Authentication failed"));
                self.state = State::Closed;
            }
            State::Unauthenticated if now >= self.auth_deadline => {
                self.state = State::Closed;
            }
            _ => {}
        }
    }

    /// Bytes from the client.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.parser.push(data);
        self.pump(now);
    }

    /// The answer to [`AmiSession::poll_request`].
    pub fn handle_reply(&mut self, now: Instant, reply: Reply) {
        let Some((frame, _)) = self.pending.take() else {
            return;
        };
        self.dispatch(now, frame, Some(&reply));
        if self.pending.is_none() {
            self.flush_queued();
            self.pump(now);
        }
    }

    /// The client fell behind the event stream by `missed` events.
    pub fn handle_lag(&mut self, _now: Instant, missed: u64) {
        tracing::warn!(peer = %self.peer, missed, "AMI client too slow for the event stream; closing");
        self.state = State::Closed;
    }

    /// A batch of async events: a session that takes every one of them (its read and event
    /// masks cover the batch's classes, no filters, no disabled events) copies the joined
    /// text at once; others filter event by event.
    pub fn handle_batch(&mut self, b: &WireBatch) {
        let State::Authenticated { user } = self.state else {
            return;
        };
        let takes_all = self.pending.is_none()
            && self.read & b.classes == b.classes
            && self.send_events & b.classes == b.classes
            && self.settings.disabled_events.is_empty()
            && self.settings.users[user].filters.is_empty();
        if takes_all {
            self.out.push_str(b.wire());
        } else {
            for ev in &b.events {
                self.handle_event(ev);
            }
        }
    }

    /// An async event: delivered if the user may read it, after any response in progress.
    pub fn handle_event(&mut self, ev: &Arc<WireEvent>) {
        let State::Authenticated { user } = self.state else {
            return;
        };
        let class = ev.event.class;
        if self.read & class != class || self.send_events & class != class {
            return;
        }
        if self
            .settings
            .disabled_events
            .iter()
            .any(|d| *d == ev.event.name)
        {
            return;
        }
        if !self.settings.users[user]
            .filters
            .allows(&ev.event, &ev.wire)
        {
            return;
        }
        if self.pending.is_some() {
            if self.queued.len() >= MAX_QUEUED_EVENTS {
                // A long action (a sync Originate) while events pour in: bounded memory.
                tracing::warn!(peer = %self.peer, "AMI events queued behind an action overflowed; closing");
                self.state = State::Closed;
                return;
            }
            self.queued.push_back(ev.clone());
        } else {
            self.out.push_str(&ev.wire);
        }
    }

    fn flush_queued(&mut self) {
        while let Some(ev) = self.queued.pop_front() {
            self.out.push_str(&ev.wire);
        }
    }

    fn pump(&mut self, now: Instant) {
        while self.pending.is_none()
            && matches!(
                self.state,
                State::Unauthenticated | State::Authenticated { .. }
            )
        {
            match self.parser.next_frame() {
                Ok(Some(f)) => self.dispatch(now, f, None),
                Ok(None) => break,
                Err(e) => {
                    self.out.push_str(&frame::error(None, &e.to_string()));
                    self.state = State::Closed;
                }
            }
        }
    }

    fn dispatch(&mut self, now: Instant, f: Frame, reply: Option<&Reply>) {
        let id = f.action_id().map(str::to_string);
        let id = id.as_deref();
        if let Some(p) = f.problem {
            self.out.push_str(&frame::error(id, p.message()));
            return;
        }
        let action = f.get_nonempty("Action").to_string();
        if action.is_empty() {
            self.out
                .push_str(&frame::error(id, "Missing action in request"));
            return;
        }
        let authed = matches!(self.state, State::Authenticated { .. });
        let a = action.to_ascii_lowercase();
        if !authed && a != "login" && a != "logoff" && a != "challenge" {
            self.out.push_str(&frame::error(id, "Permission denied"));
            return;
        }
        match a.as_str() {
            "login" => return self.login(now, &f),
            "logoff" => {
                self.out.push_str(&frame::end(response_head(
                    "Goodbye",
                    id,
                    Some("Thanks for all the fish."),
                )));
                self.state = State::Closed;
                return;
            }
            "challenge" => {
                if f.get("AuthType").eq_ignore_ascii_case("md5") {
                    let mut out = response_head("Success", id, None);
                    push_kv(&mut out, "Challenge", &self.challenge);
                    self.out.push_str(&frame::end(out));
                } else {
                    self.out
                        .push_str(&frame::error(id, "Must specify AuthType"));
                }
                return;
            }
            "events" => {
                let Some(mask) = perms::event_mask(f.get("EventMask")) else {
                    self.out.push_str(&frame::error(id, "Invalid event mask"));
                    return;
                };
                self.send_events = mask & self.read;
                let mut out = response_head("Success", id, None);
                push_kv(
                    &mut out,
                    "Events",
                    if self.send_events != 0 { "On" } else { "Off" },
                );
                self.out.push_str(&frame::end(out));
                return;
            }
            _ => {}
        }
        let Some(def) = actions::find(&action) else {
            self.out.push_str(&frame::error(
                id,
                &format!(
                    "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
                ),
            ));
            return;
        };
        if !actions::permitted(def, self.write) {
            self.out.push_str(&frame::error(id, "Permission denied"));
            return;
        }
        let ctx = Ctx {
            write: self.write,
            now_unix: self.unix(now),
            system_name: &self.settings.system_name,
        };
        match actions::run(def, ctx, &f, reply) {
            Outcome::Done(text) => self.out.push_str(&text),
            Outcome::Need(req) => self.pending = Some((f, Some(req))),
        }
    }

    fn login(&mut self, now: Instant, f: &Frame) {
        let id = f.action_id().map(str::to_string);
        if matches!(self.state, State::Authenticated { .. }) {
            self.out
                .push_str(&frame::success(id.as_deref(), "Already authenticated"));
            return;
        }
        let username = f.get("Username");
        let found = self
            .settings
            .users
            .iter()
            .position(|u| u.username.eq_ignore_ascii_case(username));
        let ok = found.is_some_and(|i| {
            let u = &self.settings.users[i];
            if !u.acl.allows(self.peer) {
                return false;
            }
            if f.get("AuthType").eq_ignore_ascii_case("md5") {
                let key = f.get("Key");
                !key.is_empty()
                    && md5_hex(&format!("{}{}", self.challenge, u.secret)).eq_ignore_ascii_case(key)
            } else {
                !u.secret.is_empty() && f.get("Secret") == u.secret
            }
        });
        let Some(user) = found.filter(|_| ok) else {
            tracing::info!(peer = %self.peer, user = %username, "AMI authentication failed");
            self.fail_action_id = id;
            self.state = State::Failing {
                at: now + self.settings.fail_delay,
            };
            return;
        };
        let u = &self.settings.users[user];
        self.read = u.read;
        self.write = u.write;
        self.send_events = u.read;
        let events = f.get("Events");
        if !events.is_empty()
            && let Some(mask) = perms::event_mask(events)
        {
            self.send_events = mask & self.read;
        }
        tracing::info!(peer = %self.peer, user = %u.username, "AMI login");
        self.state = State::Authenticated { user };
        self.out
            .push_str(&frame::success(id.as_deref(), "Authentication accepted"));
        if self.send_events & perms::SYSTEM != 0 {
            let up = (self.unix(now) - self.settings.started_unix).max(0.0) as u64;
            self.out.push_str(&events::fully_booted(up, up).to_wire());
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
