//! SIP events (RFC 6665) in the [`Pbx`] engine (sans-IO): SUBSCRIBE for `dialog` (BLF,
//! RFC 4235), `presence` (RFC 3856; PIDF or XPIDF by Accept) and `message-summary` (MWI,
//! RFC 3842), NOTIFY on every change of an extension's state, and PUBLISH of presence by
//! phones (RFC 3903).
//!
//! Device state is derived per extension from its registrations, its calls and DND. Changes
//! mark the extension dirty; once per input (datagram, command, timer) every dirty extension
//! is recomputed and, when something a watcher can see changed, one NOTIFY goes to each of its
//! watchers — coalesced per extension, never blocking call handling.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info};

use super::{Output, Pbx, PbxEvent};
use crate::pbx::peer::Peer;
use crate::pbx::presence::{
    self, DeviceState, DialogView, MailboxCounts, NoVoicemail, PresenceStatus, PresenceView,
};
use crate::sip::transaction::{TxId, TxKey, TxMethod};
use crate::sip::{HeaderName, Method, NameAddr, Request, Response, Uri};

/// Event packages Dialtone serves (`Allow-Events`).
pub const ALLOW_EVENTS: &str = "presence, dialog, message-summary";
/// Shortest subscription accepted (423 below it), and the longest granted.
pub const MIN_EXPIRES: u32 = 60;
pub const MAX_EXPIRES: u32 = 3600;
const DEFAULT_EXPIRES: u32 = 3600;
/// A publication's lifetime when the PUBLISH names none (RFC 3903 §6: 3600 s).
const PUBLISH_DEFAULT_EXPIRES: u32 = 3600;

/// What a subscription watches and how its bodies are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// `dialog`, application/dialog-info+xml.
    Dialog,
    /// `presence`, application/pidf+xml.
    Pidf,
    /// `presence`, application/xpidf+xml.
    Xpidf,
    /// `message-summary`, application/simple-message-summary.
    MessageSummary,
}

impl Package {
    fn event(self) -> &'static str {
        match self {
            Package::Dialog => "dialog",
            Package::Pidf | Package::Xpidf => "presence",
            Package::MessageSummary => "message-summary",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Package::Dialog => "application/dialog-info+xml",
            Package::Pidf => "application/pidf+xml",
            Package::Xpidf => "application/xpidf+xml",
            Package::MessageSummary => "application/simple-message-summary",
        }
    }
}

/// One subscription (a dialog in which Dialtone is the notifier).
#[derive(Debug)]
struct Subscription {
    package: Package,
    /// Watched extension (the SUBSCRIBE's Request-URI user).
    resource: String,
    /// Authenticated subscriber.
    watcher: String,
    peer: Peer,
    call_id: String,
    /// Our tag (the To tag of our 200).
    local_tag: String,
    /// Their From header (with their tag): our NOTIFYs' To.
    remote: String,
    /// Our identity (the SUBSCRIBE's To, with our tag): our NOTIFYs' From.
    local: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    target: String,
    /// The Event header's `id` parameter, echoed.
    event_id: Option<String>,
    cseq: u32,
    expires_at: Instant,
    /// dialog-info `version`, per subscription.
    version: u32,
}

/// Presence an extension set (REST or PUBLISH).
#[derive(Debug, Clone, Default)]
struct PresenceInfo {
    status: PresenceStatus,
    note: Option<String>,
    /// Unix ms of the last change.
    changed_ms: u64,
}

/// What watchers last saw of an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    state: DeviceState,
    dnd: bool,
    dialogs: u64,
    open: bool,
    on_the_phone: bool,
}

/// A phone's presence publication (RFC 3903).
#[derive(Debug)]
struct Publication {
    extension: String,
    expires_at: Instant,
}

/// Subscriptions and device state, owned by [`Pbx`].
#[derive(Debug, Default)]
pub(super) struct Events {
    subs: HashMap<u64, Subscription>,
    /// (Call-ID, our tag) → subscription.
    by_dialog: HashMap<(String, String), u64>,
    /// Extension → its watchers.
    watchers: HashMap<String, Vec<u64>>,
    /// NOTIFY client transaction → subscription.
    notifies: HashMap<TxId, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    dirty: HashSet<String>,
    seen: HashMap<String, Seen>,
    presence: HashMap<String, PresenceInfo>,
    /// Dialogs that ended since the last NOTIFY, shown once as terminated.
    ended: HashMap<String, Vec<DialogView>>,
    publications: HashMap<String, Publication>,
    etag_seq: u64,
}

impl Events {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    pub(super) fn count(&self) -> usize {
        self.subs.len()
    }
}

/// One extension's presence for the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    pub extension: String,
    pub name: String,
    pub status: PresenceStatus,
    pub note: Option<String>,
    pub in_call: bool,
    pub device_state: DeviceState,
    /// Unix ms of the last presence change or call activity (None: none since start).
    pub last_activity: Option<u64>,
}

/// Why a presence change through the API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("extension {0} not found")]
    NotFound(String),
}

fn event_token(value: &str) -> Option<(String, Option<String>)> {
    let mut parts = value.split(';');
    let pkg = parts.next()?.trim();
    let valid = !pkg.is_empty()
        && pkg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    if !valid {
        return None;
    }
    let id = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("id")
            .then(|| v.trim().to_owned())
    });
    Some((pkg.to_ascii_lowercase(), id))
}

/// The media ranges of Accept headers, lower-case; Err when one is not `type/subtype`.
fn accept_ranges(req: &Request) -> Result<Vec<String>, ()> {
    let mut out = Vec::new();
    for v in req.headers.get_all(&HeaderName::Accept) {
        for item in v.split(',') {
            let range = item.split(';').next().unwrap_or("").trim();
            if range.is_empty() {
                continue;
            }
            let ok = range.split_once('/').is_some_and(|(t, s)| {
                let tok = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
                };
                tok(t) && tok(s)
            });
            if !ok {
                return Err(());
            }
            out.push(range.to_ascii_lowercase());
        }
    }
    Ok(out)
}

fn accepts(ranges: &[String], ct: &str) -> bool {
    let (t, _) = ct.split_once('/').unwrap_or((ct, ""));
    ranges.is_empty()
        || ranges
            .iter()
            .any(|r| r == ct || r == "*/*" || r == &format!("{t}/*"))
}

fn dialogs_hash(d: &[DialogView]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in d {
        // State changes only: a tag arriving with a 180 is not news to a lamp.
        (&v.id, v.state, v.held).hash(&mut h);
    }
    h.finish()
}

impl Pbx {
    /// The host part of the URIs in NOTIFY bodies.
    pub(super) fn presence_host(&self) -> String {
        let ip = self.cfg.local_udp.ip();
        if ip.is_unspecified() {
            self.cfg.realm.clone()
        } else {
            super::fmt_host(ip)
        }
    }

    pub(super) fn mark_dirty(&mut self, ext: &str) {
        if !self.events.dirty.contains(ext) {
            self.events.dirty.insert(ext.to_owned());
        }
    }

    /// A call of `ext` ended: its last dialog views go out once as terminated.
    pub(super) fn presence_call_ended(&mut self, ext: &str, views: Vec<DialogView>) {
        if self.events.watchers.contains_key(ext) && !views.is_empty() {
            self.events
                .ended
                .entry(ext.to_owned())
                .or_default()
                .extend(views);
        }
        self.mark_dirty(ext);
    }

    /// The device state of `ext` now, and its dialogs (only built when wanted).
    fn device_state(
        &self,
        ext: &str,
        dialogs: bool,
        now: Instant,
    ) -> (DeviceState, Vec<DialogView>) {
        let host = self.presence_host();
        let c = self.ext_calls(ext, dialogs, &host, self.unix_ms(now));
        let busy_at = self
            .directory
            .get(ext)
            .map(|e| e.device_state_busy_at)
            .unwrap_or(0);
        let state = if c.ringing > 0 && c.in_use > 0 {
            DeviceState::RingInUse
        } else if c.ringing > 0 {
            DeviceState::Ringing
        } else if c.in_use > 0 {
            if busy_at > 0 && c.in_use >= busy_at as usize {
                DeviceState::Busy
            } else if c.held == c.in_use {
                DeviceState::OnHold
            } else {
                DeviceState::InUse
            }
        } else if self.registrar.bindings_of(ext).is_empty() {
            DeviceState::Unavailable
        } else {
            DeviceState::NotInUse
        };
        (state, c.dialogs)
    }

    fn presence_view(&self, ext: &str, state: DeviceState) -> PresenceView {
        let p = self.events.presence.get(ext).cloned().unwrap_or_default();
        PresenceView {
            open: state != DeviceState::Unavailable && p.status != PresenceStatus::Offline,
            status: p.status,
            on_the_phone: matches!(
                state,
                DeviceState::InUse
                    | DeviceState::Busy
                    | DeviceState::OnHold
                    | DeviceState::RingInUse
            ),
            note: p.note,
        }
    }

    fn is_dnd(&self, ext: &str) -> bool {
        self.events
            .presence
            .get(ext)
            .is_some_and(|p| p.status == PresenceStatus::DoNotDisturb)
    }

    /// Recompute every dirty extension; report changes and NOTIFY its watchers.
    pub(super) fn flush_presence(&mut self, now: Instant) {
        if self.events.dirty.is_empty() {
            return;
        }
        let dirty: Vec<String> = self.events.dirty.drain().collect();
        for ext in dirty {
            let watched = self.events.watchers.contains_key(&ext);
            let (state, dialogs) = self.device_state(&ext, watched, now);
            let dnd = self.is_dnd(&ext);
            let pv = self.presence_view(&ext, state);
            let ended = self.events.ended.remove(&ext).unwrap_or_default();
            let seen = Seen {
                state,
                dnd,
                dialogs: dialogs_hash(&dialogs),
                open: pv.open,
                on_the_phone: pv.on_the_phone,
            };
            let before = self.events.seen.get(&ext).copied();
            if before == Some(seen) && ended.is_empty() {
                continue;
            }
            self.events.seen.insert(ext.clone(), seen);
            if before.is_none_or(|b| b.state != state || b.dnd != dnd) {
                self.out.push_back(Output::Event(PbxEvent::DeviceState {
                    extension: ext.clone(),
                    state,
                    dnd,
                }));
            }
            if !watched {
                continue;
            }
            let mut shown = ended;
            shown.extend(dialogs);
            let ids = self.events.watchers.get(&ext).cloned().unwrap_or_default();
            for id in ids {
                let Some(sub) = self.events.subs.get(&id) else {
                    continue;
                };
                let send = match sub.package {
                    Package::Dialog => true,
                    Package::Pidf | Package::Xpidf => before.is_none_or(|b| {
                        b.open != seen.open || b.on_the_phone != seen.on_the_phone || b.dnd != dnd
                    }),
                    Package::MessageSummary => false,
                };
                if send {
                    self.send_notify(now, id, Some(&shown), None);
                }
            }
        }
    }

    /// The body of a NOTIFY for subscription `id`.
    fn notify_body(&mut self, now: Instant, id: u64, dialogs: Option<&[DialogView]>) -> String {
        let Some(sub) = self.events.subs.get(&id) else {
            return String::new();
        };
        let (package, resource) = (sub.package, sub.resource.clone());
        let host = self.presence_host();
        let entity = format!("sip:{resource}@{host}");
        match package {
            Package::Dialog => {
                let owned;
                let dialogs = match dialogs {
                    Some(d) => d,
                    None => {
                        owned = self.device_state(&resource, true, now).1;
                        &owned
                    }
                };
                let mut shown: Vec<DialogView> = dialogs.to_vec();
                if shown.is_empty() && self.is_dnd(&resource) {
                    // DND lights the lamp like a call does (there is no dialog state for it).
                    shown.push(DialogView {
                        id: format!("dnd-{resource}"),
                        call_id: format!("dnd-{resource}"),
                        local_tag: None,
                        remote_tag: None,
                        initiator: false,
                        state: presence::DialogState::Confirmed,
                        local: presence::Party {
                            uri: entity.clone(),
                            display: None,
                        },
                        remote: presence::Party {
                            uri: entity.clone(),
                            display: Some("Do not disturb".into()),
                        },
                        held: false,
                        duration: None,
                    });
                }
                let sub = self.events.subs.get_mut(&id).expect("checked");
                let v = sub.version;
                sub.version = sub.version.wrapping_add(1);
                presence::dialog_info(&entity, v, &shown)
            }
            Package::Pidf | Package::Xpidf => {
                let (state, _) = self.device_state(&resource, false, now);
                let pv = self.presence_view(&resource, state);
                if package == Package::Pidf {
                    presence::pidf(&entity, &entity, &resource, &pv)
                } else {
                    presence::xpidf(&entity, &entity, &resource, &pv)
                }
            }
            Package::MessageSummary => {
                let mailbox = self
                    .directory
                    .get(&resource)
                    .and_then(|e| e.mailboxes.clone())
                    .unwrap_or_else(|| format!("{resource}@default"));
                presence::message_summary(&entity, NoVoicemail.counts(&mailbox))
            }
        }
    }

    /// Send a NOTIFY in subscription `id`; `terminated`: the reason of a final one.
    fn send_notify(
        &mut self,
        now: Instant,
        id: u64,
        dialogs: Option<&[DialogView]>,
        terminated: Option<Option<&str>>,
    ) {
        let body = self.notify_body(now, id, dialogs);
        let branch = self.new_branch_id();
        let Some(sub) = self.events.subs.get_mut(&id) else {
            return;
        };
        sub.cseq += 1;
        let Ok(uri) = Uri::parse(&sub.target) else {
            return;
        };
        let peer = sub.peer;
        let state = match terminated {
            Some(Some(reason)) => format!("terminated;reason={reason}"),
            Some(None) => "terminated".to_owned(),
            None => format!(
                "active;expires={}",
                sub.expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        let mut r = Request::new(Method::Notify, uri);
        let (local_host, port, proto) = self.notify_local(peer);
        let sub = self.events.subs.get(&id).expect("present");
        let h = &mut r.headers;
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/{proto} {local_host}:{port};branch={branch};rport"),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, sub.local.clone());
        h.push(HeaderName::To, sub.remote.clone());
        h.push(HeaderName::CallId, sub.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} NOTIFY", sub.cseq));
        h.push(
            HeaderName::Contact,
            format!("<sip:{}@{local_host}:{port}>", sub.resource),
        );
        h.push(
            HeaderName::Event,
            match &sub.event_id {
                Some(i) => format!("{};id={i}", sub.package.event()),
                None => sub.package.event().to_owned(),
            },
        );
        h.push(HeaderName::SubscriptionState, state);
        h.push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        h.push(HeaderName::ContentType, sub.package.content_type());
        r.body = Bytes::from(body);
        let key = TxKey::client(branch, TxMethod::from_name("NOTIFY"));
        match self
            .txs
            .send_request(now, key, peer, peer.proto.is_reliable(), r.to_bytes())
        {
            Ok(tx) => {
                if terminated.is_none() {
                    self.events.notifies.insert(tx, id);
                }
            }
            Err(e) => debug!(error = %e, "NOTIFY not sent"),
        }
    }

    fn notify_local(&self, peer: Peer) -> (String, u16, &'static str) {
        let local = match peer.proto {
            crate::pbx::peer::Proto::Tcp => self.cfg.local_tcp.unwrap_or(self.cfg.local_udp),
            crate::pbx::peer::Proto::Udp => self.cfg.local_udp,
        };
        let ip = match self.cfg.external_ip {
            Some(ext) if !self.cfg.is_local(peer.addr.ip()) => ext,
            _ if local.ip().is_unspecified() => super::target_local_guess(peer.addr),
            _ => local.ip(),
        };
        (super::fmt_host(ip), local.port(), peer.proto.via_name())
    }

    fn new_branch_id(&mut self) -> String {
        self.branch_seq += 1;
        format!("z9hG4bK-dt{:x}", self.branch_seq)
    }

    fn drop_subscription(&mut self, id: u64) {
        if let Some(sub) = self.events.subs.remove(&id) {
            self.events
                .by_dialog
                .remove(&(sub.call_id.clone(), sub.local_tag.clone()));
            if let Some(w) = self.events.watchers.get_mut(&sub.resource) {
                w.retain(|x| *x != id);
                if w.is_empty() {
                    self.events.watchers.remove(&sub.resource);
                }
            }
            debug!(id, resource = %sub.resource, watcher = %sub.watcher, "subscription ended");
        }
    }

    /// Terminate with a final NOTIFY, then forget.
    fn end_subscription(&mut self, now: Instant, id: u64, reason: Option<&str>) {
        self.send_notify(now, id, None, Some(reason));
        self.drop_subscription(id);
    }

    // ------------------------------------------------------------- requests in

    /// Digest check with a 401 challenge (SUBSCRIBE, PUBLISH): the user when it passes.
    fn authenticate_uas(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: &Request,
    ) -> Option<String> {
        self.authenticate_request(now, peer, tx, req, false)
    }

    /// RFC 6665 §4.2.1.1 / RFC 3903 §6: a non-zero interval below the minimum gets 423 with
    /// Min-Expires. Returns whether it was answered.
    fn interval_too_brief(&mut self, now: Instant, tx: TxId, req: &Request, expires: u32) -> bool {
        if expires == 0 || expires >= MIN_EXPIRES {
            return false;
        }
        self.respond(
            now,
            tx,
            req,
            423,
            "Interval Too Brief",
            &[(HeaderName::MinExpires, MIN_EXPIRES.to_string())],
        );
        true
    }

    pub(super) fn handle_subscribe(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let allow_events = (HeaderName::AllowEvents, ALLOW_EVENTS.to_owned());
        let Some(event) = req.headers.get(&HeaderName::Event) else {
            self.respond(
                now,
                tx,
                &req,
                400,
                "Bad Request (missing Event header)",
                &[allow_events],
            );
            return;
        };
        let Some((pkg, event_id)) = event_token(event) else {
            self.respond(
                now,
                tx,
                &req,
                400,
                "Bad Request (malformed Event header)",
                &[allow_events],
            );
            return;
        };
        if !matches!(pkg.as_str(), "dialog" | "presence" | "message-summary") {
            self.respond(now, tx, &req, 489, "Bad Event", &[allow_events]);
            return;
        }
        let Ok(ranges) = accept_ranges(&req) else {
            self.respond(
                now,
                tx,
                &req,
                400,
                "Bad Request (malformed Accept header)",
                &[],
            );
            return;
        };
        let requested = match req.headers.get(&HeaderName::Expires) {
            None => None,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.respond(
                        now,
                        tx,
                        &req,
                        400,
                        "Bad Request (malformed Expires header)",
                        &[],
                    );
                    return;
                }
            },
        };
        // A refresh or unsubscribe inside an existing subscription (not challenged again).
        if let Some(tag) = req.to().and_then(|t| t.tag().map(str::to_owned)) {
            let key = (req.call_id().unwrap_or_default().to_owned(), tag);
            let Some(&id) = self.events.by_dialog.get(&key) else {
                self.respond(now, tx, &req, 481, "Subscription Does Not Exist", &[]);
                return;
            };
            let expires = requested.unwrap_or(DEFAULT_EXPIRES);
            if self.interval_too_brief(now, tx, &req, expires) {
                return;
            }
            let expires = expires.min(MAX_EXPIRES);
            self.respond(
                now,
                tx,
                &req,
                200,
                "OK",
                &[(HeaderName::Expires, expires.to_string())],
            );
            if expires == 0 {
                self.end_subscription(now, id, None);
            } else if let Some(sub) = self.events.subs.get_mut(&id) {
                sub.expires_at = now + Duration::from_secs(u64::from(expires));
                if let Some(c) = crate::pbx::engine::call_contact(&req) {
                    sub.target = c;
                }
                self.events.timers.push(Reverse((sub.expires_at, id)));
                self.send_notify(now, id, None, None);
            }
            return;
        }
        let Some(watcher) = self.authenticate_uas(now, peer, tx, &req) else {
            return;
        };
        let package = match pkg.as_str() {
            "dialog" => Package::Dialog,
            "message-summary" => Package::MessageSummary,
            _ if accepts(&ranges, "application/pidf+xml") => Package::Pidf,
            _ => Package::Xpidf,
        };
        if !accepts(&ranges, package.content_type()) {
            self.respond(
                now,
                tx,
                &req,
                406,
                "Not Acceptable",
                &[(HeaderName::Accept, package.content_type().to_owned())],
            );
            return;
        }
        let resource = req.uri.user.clone().unwrap_or_default();
        let Some(target_ext) = self.directory.get(&resource).filter(|e| e.enabled) else {
            self.respond(now, tx, &req, 404, "Not Found", &[]);
            return;
        };
        let target_context = target_ext.context.clone();
        let watcher_context = self
            .directory
            .get(&watcher)
            .map(|e| {
                e.subscribe_context
                    .clone()
                    .unwrap_or_else(|| e.context.clone())
            })
            .unwrap_or_default();
        if package == Package::MessageSummary {
            // MWI: one's own mailbox only.
            let own = resource == watcher
                || self.directory.get(&watcher).is_some_and(|e| {
                    e.mailboxes
                        .as_deref()
                        .unwrap_or("")
                        .split(',')
                        .any(|m| m.trim().split('@').next() == Some(resource.as_str()))
                });
            if !own {
                self.respond(now, tx, &req, 403, "Forbidden (not your mailbox)", &[]);
                return;
            }
        } else if watcher_context != target_context {
            // Every extension has a hint in its own context; the watcher looks in its
            // subscribe_context (Asterisk: no hint there → 404).
            self.respond(
                now,
                tx,
                &req,
                404,
                "Not Found (no hint in the subscribe context)",
                &[],
            );
            return;
        }
        let expires = requested.unwrap_or(DEFAULT_EXPIRES);
        if self.interval_too_brief(now, tx, &req, expires) {
            return;
        }
        let expires = expires.min(MAX_EXPIRES);
        let Some(target) = crate::pbx::engine::call_contact(&req) else {
            self.respond(
                now,
                tx,
                &req,
                400,
                "Bad Request (missing Contact header)",
                &[],
            );
            return;
        };
        let (Some(call_id), Some(from), Some(to)) = (
            req.call_id().map(str::to_owned),
            req.headers.get(&HeaderName::From).map(str::to_owned),
            req.headers.get(&HeaderName::To).map(str::to_owned),
        ) else {
            self.respond(now, tx, &req, 400, "Bad Request", &[]);
            return;
        };
        let local_tag = self.new_tag();
        let local = match NameAddr::parse(&to) {
            Ok(mut n) => {
                n.set_param("tag", Some(local_tag.clone()));
                n.to_string()
            }
            Err(_) => format!("{to};tag={local_tag}"),
        };
        self.events.next_id += 1;
        let id = self.events.next_id;
        let resp = {
            let mut r: Response = req.make_response(200, "OK");
            r.set_to_tag(&local_tag);
            let (host, port, _) = self.notify_local(peer);
            r.headers.push(HeaderName::Expires, expires.to_string());
            r.headers.push(
                HeaderName::Contact,
                format!("<sip:{resource}@{host}:{port}>"),
            );
            r.headers.push(HeaderName::AllowEvents, ALLOW_EVENTS);
            r.headers
                .push(HeaderName::Server, self.cfg.user_agent.clone());
            crate::sip::Message::Response(r).to_bytes()
        };
        let _ = self.txs.respond(now, tx, 200, resp);
        self.events.subs.insert(
            id,
            Subscription {
                package,
                resource: resource.clone(),
                watcher: watcher.clone(),
                peer,
                call_id: call_id.clone(),
                local_tag: local_tag.clone(),
                remote: from,
                local,
                target,
                event_id,
                cseq: 0,
                expires_at: now + Duration::from_secs(u64::from(expires)),
                version: 0,
            },
        );
        info!(%watcher, %resource, package = package.event(), expires, "subscribed");
        if expires == 0 {
            // A fetch (RFC 6665 §4.4.3): the state once, then terminated.
            self.send_notify(now, id, None, Some(Some("timeout")));
            self.events.subs.remove(&id);
            self.drain_tx(now);
            return;
        }
        // Seed what watchers have seen (before this one is listed: it gets the full state
        // below), so the next change is measured against now.
        if !self.events.seen.contains_key(&resource) {
            self.mark_dirty(&resource);
            self.flush_presence(now);
        }
        self.events.by_dialog.insert((call_id, local_tag), id);
        self.events
            .watchers
            .entry(resource.clone())
            .or_default()
            .push(id);
        self.events
            .timers
            .push(Reverse((now + Duration::from_secs(u64::from(expires)), id)));
        self.send_notify(now, id, None, None);
        self.drain_tx(now);
    }

    /// PUBLISH of presence (RFC 3903) from a phone: the extension's own presence.
    pub(super) fn handle_publish(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let allow_events = (HeaderName::AllowEvents, "presence".to_owned());
        match req.headers.get(&HeaderName::Event).and_then(event_token) {
            Some((pkg, _)) if pkg == "presence" => {}
            Some(_) => {
                self.respond(now, tx, &req, 489, "Bad Event", &[allow_events]);
                return;
            }
            None => {
                self.respond(
                    now,
                    tx,
                    &req,
                    400,
                    "Bad Request (missing or malformed Event header)",
                    &[allow_events],
                );
                return;
            }
        }
        let Some(user) = self.authenticate_uas(now, peer, tx, &req) else {
            return;
        };
        let resource = req.uri.user.clone().unwrap_or_default();
        if resource != user {
            self.respond(
                now,
                tx,
                &req,
                403,
                "Forbidden (publish your own presence)",
                &[],
            );
            return;
        }
        let expires = match req.headers.get(&HeaderName::Expires) {
            None => PUBLISH_DEFAULT_EXPIRES,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) => n.min(MAX_EXPIRES),
                Err(_) => {
                    self.respond(
                        now,
                        tx,
                        &req,
                        400,
                        "Bad Request (malformed Expires header)",
                        &[],
                    );
                    return;
                }
            },
        };
        if self.interval_too_brief(now, tx, &req, expires) {
            return;
        }
        let if_match = req
            .headers
            .get(&HeaderName::SipIfMatch)
            .map(|s| s.trim().to_owned());
        if let Some(etag) = &if_match
            && !self
                .events
                .publications
                .get(etag)
                .is_some_and(|p| p.extension == user && p.expires_at > now)
        {
            self.respond(now, tx, &req, 412, "Conditional Request Failed", &[]);
            return;
        }
        if let Some(etag) = &if_match {
            self.events.publications.remove(etag);
        }
        if expires == 0 {
            // Removal: back to the status set through the API (or available).
            self.respond(
                now,
                tx,
                &req,
                200,
                "OK",
                &[(HeaderName::Expires, "0".into())],
            );
            self.set_presence_inner(now, &user, PresenceStatus::Available, None);
            return;
        }
        if !req.body.is_empty() {
            let ct = req.content_type().unwrap_or("").to_ascii_lowercase();
            if !ct.starts_with("application/pidf+xml") {
                self.respond(
                    now,
                    tx,
                    &req,
                    415,
                    "Unsupported Media Type",
                    &[(HeaderName::Accept, "application/pidf+xml".into())],
                );
                return;
            }
            match std::str::from_utf8(&req.body)
                .map_err(|e| e.to_string())
                .and_then(presence::parse_published)
            {
                Ok((status, note)) => self.set_presence_inner(now, &user, status, note),
                Err(e) => {
                    self.respond(
                        now,
                        tx,
                        &req,
                        400,
                        "Bad Request (PIDF)",
                        &[(
                            HeaderName::Warning,
                            format!("399 dialtone \"{}\"", e.replace('"', "'")),
                        )],
                    );
                    return;
                }
            }
        } else if if_match.is_none() {
            // An initial PUBLISH must carry a body (RFC 3903 §6 step 4).
            self.respond(
                now,
                tx,
                &req,
                400,
                "Bad Request (initial PUBLISH without a body)",
                &[],
            );
            return;
        }
        self.events.etag_seq += 1;
        let etag = format!("dt{:x}{:x}", self.tag_seq >> 20, self.events.etag_seq);
        self.events.publications.insert(
            etag.clone(),
            Publication {
                extension: user,
                expires_at: now + Duration::from_secs(u64::from(expires)),
            },
        );
        self.respond(
            now,
            tx,
            &req,
            200,
            "OK",
            &[
                (HeaderName::SipEtag, etag),
                (HeaderName::Expires, expires.to_string()),
            ],
        );
        self.flush_presence(now);
    }

    // ------------------------------------------------------------- responses, time

    /// A response to one of our NOTIFYs. Returns false if it is not one.
    pub(super) fn notify_response(&mut self, now: Instant, tx: TxId, resp: &Response) -> bool {
        if resp.status < 200 {
            return self.events.notifies.contains_key(&tx);
        }
        let Some(id) = self.events.notifies.remove(&tx) else {
            return false;
        };
        if matches!(resp.status, 481 | 408) || resp.status >= 500 && resp.status != 503 {
            info!(
                id,
                status = resp.status,
                "NOTIFY refused: subscription ended"
            );
            self.drop_subscription(id);
        }
        let _ = now;
        true
    }

    /// A NOTIFY transaction timed out or could not be sent: the subscription ends.
    pub(super) fn notify_failed(&mut self, tx: TxId) -> bool {
        match self.events.notifies.remove(&tx) {
            Some(id) => {
                info!(id, "NOTIFY timed out: subscription ended");
                self.drop_subscription(id);
                true
            }
            None => false,
        }
    }

    pub(super) fn notify_tx_terminated(&mut self, tx: TxId) {
        self.events.notifies.remove(&tx);
    }

    pub(super) fn subscription_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((due, id))) = self.events.timers.peek().copied() {
            if due > now {
                break;
            }
            self.events.timers.pop();
            if self
                .events
                .subs
                .get(&id)
                .is_some_and(|s| s.expires_at <= now)
            {
                self.end_subscription(now, id, Some("timeout"));
            }
        }
        self.events.publications.retain(|_, p| p.expires_at > now);
    }

    // ------------------------------------------------------------- API

    fn set_presence_inner(
        &mut self,
        now: Instant,
        ext: &str,
        status: PresenceStatus,
        note: Option<String>,
    ) {
        let changed_ms = self.unix_ms(now);
        let entry = self.events.presence.entry(ext.to_owned()).or_default();
        if entry.status == status && entry.note == note {
            return;
        }
        entry.status = status;
        entry.note = note.clone();
        entry.changed_ms = changed_ms;
        self.out.push_back(Output::Event(PbxEvent::Presence {
            extension: ext.to_owned(),
            status,
            note,
        }));
        self.mark_dirty(ext);
        // Presence watchers see every change of status or note.
        let ids: Vec<u64> =
            self.events
                .watchers
                .get(ext)
                .map(|w| {
                    w.iter()
                        .copied()
                        .filter(|id| {
                            self.events.subs.get(id).is_some_and(|s| {
                                matches!(s.package, Package::Pidf | Package::Xpidf)
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
        for id in ids {
            self.send_notify(now, id, None, None);
        }
    }

    /// Set an extension's presence (REST `POST /api/presence/set`).
    pub fn set_presence(
        &mut self,
        now: Instant,
        ext: &str,
        status: PresenceStatus,
        note: Option<String>,
    ) -> Result<(), PresenceError> {
        if !self.directory.contains_key(ext) {
            return Err(PresenceError::NotFound(ext.to_owned()));
        }
        self.set_presence_inner(now, ext, status, note);
        self.flush_presence(now);
        self.drain_tx(now);
        Ok(())
    }

    /// Every extension's presence (REST `GET /api/presence`), sorted by number.
    pub fn presence_list(&self, now: Instant) -> Vec<PresenceEntry> {
        let mut v: Vec<PresenceEntry> = self
            .directory
            .values()
            .map(|e| {
                let (state, _) = self.device_state(&e.number, false, now);
                let p = self
                    .events
                    .presence
                    .get(&e.number)
                    .cloned()
                    .unwrap_or_default();
                let status =
                    if state == DeviceState::Unavailable && p.status == PresenceStatus::Available {
                        PresenceStatus::Offline
                    } else {
                        p.status
                    };
                PresenceEntry {
                    extension: e.number.clone(),
                    name: e.name.clone(),
                    status,
                    note: p.note,
                    in_call: matches!(
                        state,
                        DeviceState::InUse
                            | DeviceState::Busy
                            | DeviceState::OnHold
                            | DeviceState::RingInUse
                    ),
                    device_state: state,
                    last_activity: (p.changed_ms > 0).then_some(p.changed_ms),
                }
            })
            .collect();
        v.sort_by(|a, b| a.extension.cmp(&b.extension));
        v
    }

    /// Do-not-disturb is set for `ext` (new calls to it are refused).
    pub(super) fn refuses_calls(&self, ext: &str) -> bool {
        self.is_dnd(ext)
    }
}
