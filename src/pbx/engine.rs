//! The PBX engine: the one owner of signalling state (sans-IO).
//!
//! It takes raw SIP bytes with their [`Peer`] through [`Pbx::handle_datagram`], commands
//! through [`Pbx::handle_command`], time through [`Pbx::handle_timeout`], and emits
//! [`Output`]s (packets to send, bindings to persist, events) from [`Pbx::poll_output`].
//! The runtime drives it from a single task.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::directory::{BindingRecord, Extension};
use super::peer::{ConnId, Peer, Proto};
use super::registrar::{
    AorPolicy, ContactSpec, QualifyStatus, RegisterRequest, Registrar, RegistrarConfig,
    RegistrarEvent, RemoveReason,
};
use crate::sip::auth::{AuthError, Credentials, DigestServer};
use crate::sip::transaction::{
    ClientDisposition, ServerDisposition, TimerConfig, TransactionLayer, TxEvent, TxId, TxKey,
    TxMethod,
};
use crate::sip::{
    Contact, HeaderName, Message, Method, NameAddr, Request, Response, Scheme, parse_datagram,
};

#[path = "call.rs"]
pub mod call;
#[path = "subscribe.rs"]
pub mod subscribe;
pub use call::{
    CallEvent, CallRecord, CallView, DEFAULT_RING_TIMEOUT, Disposition, HungUpBy, Leg,
    MediaCommand, MediaPorts, OriginateError, OriginateOptions, RedirectError,
};
pub use subscribe::{PresenceEntry, PresenceError};

/// Methods Dialtone answers (Allow header).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, SUBSCRIBE, NOTIFY, PUBLISH";

/// Engine settings (from config.yml).
#[derive(Debug, Clone)]
pub struct PbxConfig {
    pub realm: String,
    pub user_agent: String,
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    /// Failed authentications from one IP within `auth_failure_window` before it is banned.
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    pub ban_duration: Duration,
    /// Address put in Via/Contact of requests Dialtone sends (qualify OPTIONS), per transport.
    pub local_udp: SocketAddr,
    pub local_tcp: Option<SocketAddr>,
    /// Secret for nonces (random per start unless configured).
    pub nonce_secret: [u8; 32],
    pub nonce_lifetime: Duration,
    /// How long a call rings before it is given up (480), [`DEFAULT_RING_TIMEOUT`] by default.
    pub ring_timeout: Duration,
    /// Public address for peers outside `local_nets` (SDP, Via, Contact).
    pub external_ip: Option<IpAddr>,
    /// Public media address for peers outside `local_nets` (SDP only; pjsip.conf
    /// `external_media_address`); None = `external_ip`.
    pub external_media_ip: Option<IpAddr>,
    /// Networks reached directly; empty = private, loopback and link-local ranges.
    pub local_nets: Vec<ipnet::IpNet>,
    /// What a call to an extension in do-not-disturb gets (486 Busy Here by default).
    pub dnd_status: u16,
}

impl PbxConfig {
    /// Whether `ip` is on a local network (gets the local address, not `external_ip`).
    pub fn is_local(&self, ip: IpAddr) -> bool {
        if !self.local_nets.is_empty() {
            return self.local_nets.iter().any(|n| n.contains(&ip));
        }
        match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        }
    }
}

#[cfg(test)]
impl PbxConfig {
    /// The settings the engine's scenario tests start from (realm `test`, default timers,
    /// 3 failures ban for 300 s, loopback addresses, a fixed nonce secret).
    pub(crate) fn for_tests() -> PbxConfig {
        PbxConfig {
            realm: "test".into(),
            user_agent: "Dialtone-test".into(),
            timers: TimerConfig::default(),
            registrar: RegistrarConfig::default(),
            auth_failure_limit: 3,
            auth_failure_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(300),
            local_udp: SocketAddr::from(([127, 0, 0, 1], 5060)),
            local_tcp: Some(SocketAddr::from(([127, 0, 0, 1], 5060))),
            nonce_secret: [7; 32],
            nonce_lifetime: Duration::from_secs(300),
            ring_timeout: DEFAULT_RING_TIMEOUT,
            external_ip: None,
            external_media_ip: None,
            local_nets: Vec::new(),
            dnd_status: 486,
        }
    }
}

/// Commands from the rest of the system (API, store watcher, runtime). Per call or per
/// directory change, never per packet: the size of the largest variant does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Replace the whole directory (start-up, reload). Bindings of extensions that vanish or are
    /// disabled are dropped.
    LoadDirectory(Vec<Extension>),
    /// Add or change one extension.
    UpsertExtension(Extension),
    /// Delete one extension and its bindings.
    RemoveExtension(String),
    /// Reload persisted bindings (start-up).
    RestoreBindings(Vec<BindingRecord>),
    /// A stream connection closed.
    ConnectionClosed(ConnId),
    /// The media relay answers [`MediaCommand::Open`].
    MediaOpened { call: u64, ports: MediaPorts },
    /// The media relay could not open ports for `call` (exhausted): the caller gets 503.
    MediaFailed { call: u64 },
    /// End a call (API hangup, media timeout). `status`: the final response for a call not yet
    /// answered (default 480); the CDR hangup cause of an answered one (default 200).
    Hangup { call: u64, status: Option<u16> },
    /// Hang up with a Q.850 cause (AMI `Hangup` with `Cause`).
    HangupWithCause { call: u64, cause: u8 },
    /// Replace the NAT settings (a pjsip.conf reload): from the next message on, peers outside
    /// `local_nets` get `external_ip` in Via/Contact and `external_media_ip` (else
    /// `external_ip`) in SDP.
    SetNat {
        external_ip: Option<IpAddr>,
        external_media_ip: Option<IpAddr>,
        local_nets: Vec<ipnet::IpNet>,
    },
}

/// A binding change for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum PersistOp {
    Upsert(BindingRecord),
    Delete { aor: String, contact: String },
}

/// Things the engine reports (the event bus will carry more later).
#[derive(Debug, Clone, PartialEq)]
pub enum PbxEvent {
    /// A step of a call (channels, dials, bridge, hold, DTMF, hangup).
    Call(CallEvent),
    /// The device state of an extension changed (from its registrations and calls; coalesced
    /// per extension). `dnd`: do-not-disturb is set.
    DeviceState {
        extension: String,
        state: super::presence::DeviceState,
        dnd: bool,
    },
    /// The presence an extension set (REST, or its phone's PUBLISH) changed.
    Presence {
        extension: String,
        status: super::presence::PresenceStatus,
        note: Option<String>,
    },
    Registered {
        aor: String,
        contact: String,
        source: Peer,
        user_agent: Option<String>,
    },
    Unregistered {
        aor: String,
        contact: String,
        reason: RemoveReason,
    },
    ContactStatus {
        aor: String,
        contact: String,
        status: QualifyStatus,
        rtt: Option<Duration>,
    },
    /// A finished call's record (published by the runtime from [`Output::Cdr`], right after
    /// the call's `Ended`), for the AMI `Cdr` event.
    Cdr(Box<CallRecord>),
    /// An extension appeared or changed (`Some(context)`), or went away or was disabled
    /// (`None`): AMI keeps its hints (`ExtensionStatus`) in step.
    Directory {
        number: String,
        context: Option<String>,
    },
}

/// What the engine wants done.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send these bytes to a peer.
    Transmit {
        to: Peer,
        bytes: Bytes,
    },
    Persist(PersistOp),
    Event(PbxEvent),
    /// A request for the media relay (answered, for `Open`, by a [`Command`]).
    Media(MediaCommand),
    /// A call ended: its record for the CDR store.
    Cdr(Box<CallRecord>),
}

/// Live view of one binding for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactView {
    pub number: String,
    pub uri: String,
    pub source: Peer,
    pub user_agent: Option<String>,
    pub expires_in: u32,
    pub registered_at: i64,
    pub qualify: QualifyStatus,
    pub rtt: Option<Duration>,
}

/// Counters for status endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub extensions: usize,
    pub registered_aors: usize,
    pub bindings: usize,
    pub transactions: usize,
    pub banned_sources: usize,
    pub requests: u64,
    pub parse_errors: u64,
    /// Calls in progress (ringing or answered).
    pub active_calls: usize,
    /// Calls since start (ended + in progress).
    pub total_calls: u64,
    /// Active SUBSCRIBE dialogs (BLF, presence, MWI).
    pub subscriptions: usize,
}

#[derive(Debug, Default)]
struct FailureCount {
    count: u32,
    window_start: Option<Instant>,
}

/// Per-source failed-auth counting and banning.
#[derive(Debug, Default)]
struct AuthGuard {
    failures: HashMap<IpAddr, FailureCount>,
    bans: HashMap<IpAddr, Instant>,
}

impl AuthGuard {
    fn is_banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        match self.bans.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.bans.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Count a failure; true when this failure triggers a ban.
    fn fail(
        &mut self,
        now: Instant,
        ip: IpAddr,
        limit: u32,
        window: Duration,
        ban: Duration,
    ) -> bool {
        if limit == 0 {
            return false;
        }
        let f = self.failures.entry(ip).or_default();
        match f.window_start {
            Some(start) if now.duration_since(start) <= window => f.count += 1,
            _ => {
                f.window_start = Some(now);
                f.count = 1;
            }
        }
        if f.count >= limit {
            self.failures.remove(&ip);
            self.bans.insert(ip, now + ban);
            return true;
        }
        false
    }

    fn succeed(&mut self, ip: IpAddr) {
        if !self.failures.is_empty() {
            self.failures.remove(&ip);
        }
    }

    fn sweep(&mut self, now: Instant, window: Duration) {
        self.bans.retain(|_, until| *until > now);
        self.failures.retain(|_, f| {
            f.window_start
                .is_some_and(|s| now.duration_since(s) <= window)
        });
    }
}

/// An outstanding qualify OPTIONS.
#[derive(Debug, Clone, Copy)]
struct QualifyProbe {
    binding: u64,
    sent_at: Instant,
}

/// The engine.
pub struct Pbx {
    cfg: PbxConfig,
    directory: HashMap<String, Extension>,
    registrar: Registrar,
    txs: TransactionLayer<Peer>,
    digest: DigestServer,
    guard: AuthGuard,
    /// (due, binding id) of the next qualify per binding (lazy: re-checked when due).
    qualify_queue: BinaryHeap<Reverse<(Instant, u64)>>,
    qualify_due: HashMap<u64, Instant>,
    probes: HashMap<TxId, QualifyProbe>,
    /// binding id → its outstanding probe.
    probing: HashMap<u64, TxId>,
    out: VecDeque<Output>,
    epoch: (Instant, i64),
    tag_seq: u64,
    branch_seq: u64,
    next_sweep: Instant,
    requests: u64,
    /// Calls that have ended since start (a CDR was emitted).
    calls_ended: u64,
    parse_errors: u64,
    calls: call::Calls,
    events: subscribe::Events,
}

impl Pbx {
    /// `epoch` maps `now` values to unix milliseconds.
    pub fn new(cfg: PbxConfig, epoch: (Instant, i64)) -> Pbx {
        let digest = DigestServer::new(cfg.realm.clone(), cfg.nonce_secret, cfg.nonce_lifetime);
        Pbx {
            registrar: Registrar::new(cfg.registrar, epoch),
            txs: TransactionLayer::new(cfg.timers),
            digest,
            guard: AuthGuard::default(),
            directory: HashMap::new(),
            qualify_queue: BinaryHeap::new(),
            qualify_due: HashMap::new(),
            probes: HashMap::new(),
            probing: HashMap::new(),
            out: VecDeque::new(),
            tag_seq: u64::from(cfg.nonce_secret[0]) << 32 | u64::from(cfg.nonce_secret[1]) << 40,
            branch_seq: u64::from(cfg.nonce_secret[2]) << 32,
            next_sweep: epoch.0 + Duration::from_secs(60),
            cfg,
            epoch,
            requests: 0,
            calls_ended: 0,
            parse_errors: 0,
            calls: call::Calls::default(),
            events: subscribe::Events::default(),
        }
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let (base, ms) = self.epoch;
        let d = now.saturating_duration_since(base).as_millis() as i64;
        (ms + d).max(0) as u64
    }

    // ----------------------------------------------------------------- queries

    /// Live contacts, of one extension or all.
    pub fn contacts(&self, now: Instant, number: Option<&str>) -> Vec<ContactView> {
        let view = |b: &super::registrar::Binding| ContactView {
            number: b.aor.clone(),
            uri: b.contact.clone(),
            source: b.source,
            user_agent: b.user_agent.clone(),
            expires_in: b.expires_in(now),
            registered_at: b.registered_at,
            qualify: b.qualify,
            rtt: b.rtt,
        };
        match number {
            Some(n) => self.registrar.bindings_of(n).iter().map(view).collect(),
            None => self.registrar.iter().map(view).collect(),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            extensions: self.directory.len(),
            registered_aors: self.registrar.registered_aors(),
            bindings: self.registrar.binding_count(),
            transactions: self.txs.len(),
            banned_sources: self.guard.bans.len(),
            requests: self.requests,
            parse_errors: self.parse_errors,
            active_calls: self.calls.active(),
            total_calls: self.calls_ended + self.calls.active() as u64,
            subscriptions: self.events.count(),
        }
    }

    /// Calls in progress (ringing or answered).
    pub fn active_calls(&self) -> usize {
        self.calls.active()
    }

    /// The calls in progress, by engine call id.
    pub fn calls(&self) -> Vec<CallView> {
        self.call_views()
    }

    /// Click-to-dial: ring `from`, and when it answers, call `to`. Returns the engine call id
    /// and the caller leg's Call-ID (what the API reports and hangs up by).
    pub fn originate_call(
        &mut self,
        now: Instant,
        from: &str,
        to: &str,
    ) -> Result<(u64, String), OriginateError> {
        self.originate_call_with(now, from, to, OriginateOptions::default())
    }

    /// [`Pbx::originate_call`] with AMI's `Timeout` and `CallerID`.
    pub fn originate_call_with(
        &mut self,
        now: Instant,
        from: &str,
        to: &str,
        opts: OriginateOptions,
    ) -> Result<(u64, String), OriginateError> {
        let r = self.originate(now, from, to, opts);
        self.flush_presence(now);
        self.drain_tx(now);
        r
    }

    /// AMI `Redirect`: the channel of `leg` of call `call` now dials extension `to` (the other
    /// party of an answered call is hung up; a ringing caller's callee is cancelled).
    /// `context`: the dialplan context asked for, checked against `to`'s (None: not checked).
    /// On an error nothing changed.
    pub fn redirect_call(
        &mut self,
        now: Instant,
        call: u64,
        leg: Leg,
        to: &str,
        context: Option<&str>,
    ) -> Result<(), RedirectError> {
        self.redirect_channel(now, call, leg, None, to, context)
    }

    /// [`Self::redirect_call`] of the channel of extension `endpoint` (AMI: the `1002` of
    /// `PJSIP/1002-…`): `leg` is a hint, checked against the extension on each leg (after a
    /// redirect that kept the callee, the legs are swapped). Not up when neither leg is
    /// `endpoint`'s.
    pub fn redirect_channel(
        &mut self,
        now: Instant,
        call: u64,
        leg: Leg,
        endpoint: Option<&str>,
        to: &str,
        context: Option<&str>,
    ) -> Result<(), RedirectError> {
        let r = self.redirect(now, call, leg, endpoint, to, context);
        self.flush_presence(now);
        self.drain_tx(now);
        r
    }

    pub fn extension(&self, number: &str) -> Option<&Extension> {
        self.directory.get(number)
    }

    fn directory_event(&mut self, number: &str, context: Option<&str>) {
        self.out.push_back(Output::Event(PbxEvent::Directory {
            number: number.to_owned(),
            context: context.map(str::to_owned),
        }));
    }

    // ----------------------------------------------------------------- inputs

    /// A command from outside the signalling path.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::LoadDirectory(list) => {
                let new: HashMap<String, Extension> =
                    list.into_iter().map(|e| (e.number.clone(), e)).collect();
                let gone: Vec<String> = self
                    .directory
                    .keys()
                    .filter(|n| new.get(*n).is_none_or(|e| !e.enabled))
                    .cloned()
                    .collect();
                for e in new.values().filter(|e| e.enabled) {
                    let was = self.directory.get(&e.number).filter(|o| o.enabled);
                    if was.is_none_or(|o| o.context != e.context) {
                        self.directory_event(&e.number, Some(&e.context));
                    }
                }
                for n in &gone {
                    self.directory_event(n, None);
                }
                self.directory = new;
                for n in gone {
                    self.registrar.remove_aor(&n, RemoveReason::Disabled);
                }
                // Bindings restored for extensions that no longer exist go too.
                let orphans: Vec<String> = self
                    .registrar
                    .iter()
                    .filter(|b| self.directory.get(&b.aor).is_none_or(|e| !e.enabled))
                    .map(|b| b.aor.clone())
                    .collect();
                for n in orphans {
                    self.registrar.remove_aor(&n, RemoveReason::Disabled);
                }
            }
            Command::UpsertExtension(ext) => {
                let number = ext.number.clone();
                let enabled = ext.enabled;
                let was = self.directory.get(&number).filter(|o| o.enabled);
                match (enabled, was) {
                    (true, Some(o)) if o.context == ext.context => {}
                    (true, _) => self.directory_event(&number, Some(&ext.context)),
                    (false, Some(_)) => self.directory_event(&number, None),
                    (false, None) => {}
                }
                self.directory.insert(number.clone(), ext);
                if !enabled {
                    self.registrar.remove_aor(&number, RemoveReason::Disabled);
                }
            }
            Command::RemoveExtension(number) => {
                if self.directory.remove(&number).is_some_and(|e| e.enabled) {
                    self.directory_event(&number, None);
                }
                self.registrar.remove_aor(&number, RemoveReason::Disabled);
            }
            Command::RestoreBindings(records) => {
                self.registrar.restore(now, records);
                let ids: Vec<u64> = self.registrar.iter().map(|b| b.id).collect();
                for id in ids {
                    self.schedule_qualify_soon(now, id);
                }
            }
            Command::ConnectionClosed(conn) => {
                debug!(conn, "stream connection closed");
            }
            Command::SetNat {
                external_ip,
                external_media_ip,
                local_nets,
            } => {
                self.cfg.external_ip = external_ip;
                self.cfg.external_media_ip = external_media_ip;
                self.cfg.local_nets = local_nets;
            }
            Command::MediaOpened { call, ports } => self.media_opened(now, call, ports),
            Command::MediaFailed { call } => self.media_failed(now, call),
            Command::Hangup { call, status } => {
                if !self.hangup(now, call, status) {
                    debug!(call, "hangup for an unknown call");
                }
            }
            Command::HangupWithCause { call, cause } => {
                if !self.hangup_with(now, call, None, Some(cause)) {
                    debug!(call, "hangup for an unknown call");
                }
            }
        }
        self.drain_registrar(now);
        self.flush_presence(now);
        self.drain_tx(now);
    }

    /// One datagram (or one framed stream message) from `peer`.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        match parse_datagram(data) {
            Ok(Message::Request(req)) => {
                self.requests += 1;
                self.handle_request(now, peer, req);
                self.drain_registrar(now);
                self.flush_presence(now);
                self.drain_tx(now);
            }
            Ok(Message::Response(resp)) => {
                self.handle_response(now, peer, resp);
                self.flush_presence(now);
                self.drain_tx(now);
            }
            Err(e) => {
                if matches!(e, crate::sip::ParseError::KeepAlive) {
                    return;
                }
                self.parse_errors += 1;
                debug!(%peer, error = %e, "malformed SIP message");
                if let Some(resp) = e.error_response() {
                    let to = response_target(peer, resp.top_via().as_ref());
                    self.transmit(to, Message::Response(resp).to_bytes());
                }
            }
        }
    }

    /// Advance timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txs.handle_timeout(now);
        self.drain_tx(now);
        self.registrar.handle_timeout(now);
        self.drain_registrar(now);
        self.run_qualify(now);
        self.call_timeouts(now);
        self.subscription_timeouts(now);
        self.flush_presence(now);
        self.drain_tx(now);
        if now >= self.next_sweep {
            self.guard.sweep(now, self.cfg.auth_failure_window);
            self.next_sweep = now + Duration::from_secs(60);
        }
    }

    /// The earliest instant at which [`Pbx::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.txs.poll_timeout(),
            self.registrar.poll_timeout(),
            self.qualify_queue.peek().map(|Reverse((t, _))| *t),
            self.calls.poll_timeout(),
            self.events.poll_timeout(),
            Some(self.next_sweep),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    // ----------------------------------------------------------------- requests

    fn handle_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        if self.guard.is_banned(now, peer.addr.ip()) {
            return;
        }
        stamp_via(&mut req, peer);

        let Some(key) = server_key(&req) else {
            self.reply_stateless(peer, &req, 400, "Bad Request (missing Via branch)", &[]);
            return;
        };
        // REGISTER challenges are stateless (RFC 3261 §8.2.7): a retransmission just gets a fresh
        // nonce, and the registrar keeps no state for unauthenticated requests.
        if req.method == Method::Register && req.headers.get(&HeaderName::Authorization).is_none() {
            if let Some((status, reason, extra)) = self.precheck(&req) {
                self.reply_stateless(peer, &req, status, reason, &extra);
                return;
            }
            self.challenge(now, peer, None, &req, false);
            return;
        }
        match self
            .txs
            .handle_request(now, key, peer.proto.is_reliable(), peer)
        {
            ServerDisposition::New(tx) => self.dispatch(now, peer, tx, req),
            ServerDisposition::CancelFor { cancel, invite } => {
                self.handle_cancel(now, cancel, invite, &req);
            }
            ServerDisposition::AckNoTx => self.handle_ack(&req),
            ServerDisposition::Retransmission(_) | ServerDisposition::AckAbsorbed(_) => {}
        }
        self.drain_tx(now);
    }

    /// Checks made before any transaction or authentication: an answer here ends processing.
    /// Returns (status, reason, extra headers).
    #[allow(clippy::type_complexity)]
    fn precheck(&self, req: &Request) -> Option<(u16, &'static str, Vec<(HeaderName, String)>)> {
        if !matches!(req.uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Some((416, "Unsupported URI Scheme", Vec::new()));
        }
        if req.method == Method::Ack || req.method == Method::Cancel {
            return None;
        }
        // RFC 3261 §8.2.2.3: we support no option tags that a UAC could require.
        // `timer` (RFC 4028) is understood: session timers pass through calls end to end.
        let required: Vec<&str> = req
            .headers
            .get_all(&HeaderName::Require)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("timer"))
            .collect();
        if !required.is_empty() {
            return Some((
                420,
                "Bad Extension",
                vec![(HeaderName::Unsupported, required.join(", "))],
            ));
        }
        match req.method {
            Method::Register => match req.to() {
                Some(to)
                    if matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips)
                        && to.uri.user.is_some() =>
                {
                    None
                }
                _ => Some((400, "Bad Request (To must be a SIP AOR)", Vec::new())),
            },
            Method::Invite => {
                // RFC 3261 §8.2.3: bodies we cannot read, answers we cannot write.
                if !req.body.is_empty() {
                    let ct = req.content_type().unwrap_or("").to_ascii_lowercase();
                    let ct = ct.split(';').next().unwrap_or("").trim().to_string();
                    if ct != "application/sdp" && !ct.starts_with("multipart/") {
                        return Some((
                            415,
                            "Unsupported Media Type",
                            vec![(HeaderName::Accept, "application/sdp".into())],
                        ));
                    }
                }
                let accepts: Vec<&str> = req.headers.get_all(&HeaderName::Accept).collect();
                if !accepts.is_empty()
                    && !accepts.iter().any(|a| {
                        let a = a
                            .split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase();
                        a == "application/sdp" || a == "application/*" || a == "*/*"
                    })
                {
                    return Some((
                        406,
                        "Not Acceptable",
                        vec![(
                            HeaderName::Warning,
                            "399 dialtone \"only application/sdp can be answered\"".into(),
                        )],
                    ));
                }
                None
            }
            _ => None,
        }
    }

    fn dispatch(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        if let Some((status, reason, extra)) = self.precheck(&req) {
            self.respond(now, tx, &req, status, reason, &extra);
            return;
        }
        match &req.method {
            Method::Register => self.handle_register(now, peer, tx, &req),
            Method::Options => {
                let extra = vec![
                    (HeaderName::Allow, ALLOW.to_string()),
                    (HeaderName::Accept, "application/sdp".to_string()),
                    // The option tags honoured in a Require header (see `precheck`).
                    (HeaderName::Supported, "timer".to_string()),
                    (HeaderName::AllowEvents, subscribe::ALLOW_EVENTS.to_string()),
                ];
                self.respond(now, tx, &req, 200, "OK", &extra);
            }
            Method::Bye | Method::Info | Method::Update => self.in_dialog(now, peer, tx, req),
            Method::Cancel | Method::Prack => {
                self.respond(now, tx, &req, 481, "Call/Transaction Does Not Exist", &[]);
            }
            Method::Ack => {}
            Method::Invite => self.handle_invite(now, peer, tx, req),
            Method::Subscribe => self.handle_subscribe(now, peer, tx, req),
            Method::Publish => self.handle_publish(now, peer, tx, req),
            _ => {
                self.respond(
                    now,
                    tx,
                    &req,
                    501,
                    "Not Implemented",
                    &[(HeaderName::Allow, ALLOW.to_string())],
                );
            }
        }
    }

    fn challenge(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: Option<TxId>,
        req: &Request,
        stale: bool,
    ) {
        let values = self
            .digest
            .challenge(self.unix_ms(now), stale, Some(peer.addr.ip()));
        let extra: Vec<(HeaderName, String)> = values
            .into_iter()
            .map(|v| (HeaderName::WwwAuthenticate, v))
            .collect();
        match tx {
            Some(tx) => self.respond(now, tx, req, 401, "Unauthorized", &extra),
            None => self.reply_stateless(peer, req, 401, "Unauthorized", &extra),
        }
    }

    fn handle_register(&mut self, now: Instant, peer: Peer, tx: TxId, req: &Request) {
        // The AOR is the To URI; it must be one of our extensions.
        let to = match req.to() {
            Some(to) if matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips) => to,
            _ => {
                self.respond(now, tx, req, 400, "Bad Request (To must be a SIP URI)", &[]);
                return;
            }
        };
        let Some(aor) = to.uri.user.clone() else {
            self.respond(now, tx, req, 400, "Bad Request (To has no user part)", &[]);
            return;
        };
        let Some(auth_value) = req.headers.get(&HeaderName::Authorization) else {
            self.challenge(now, peer, Some(tx), req, false);
            return;
        };
        let creds = match Credentials::parse(auth_value) {
            Ok(c) => c,
            Err(AuthError::UnsupportedScheme { .. }) => {
                self.challenge(now, peer, Some(tx), req, false);
                return;
            }
            Err(e) => {
                self.respond(
                    now,
                    tx,
                    req,
                    e.status(),
                    "Bad Request (malformed Authorization)",
                    &[],
                );
                return;
            }
        };
        let method = req.method.as_str();
        let directory = &self.directory;
        let verified = self.digest.verify(
            self.unix_ms(now),
            method,
            &creds,
            |user| {
                directory
                    .get(user)
                    .filter(|e| e.enabled)
                    .and_then(|e| e.digest_secret())
            },
            Some(peer.addr.ip()),
        );
        match verified {
            Ok(v) if v.username == aor => {}
            Ok(_) => {
                self.auth_failed(now, peer, &aor);
                self.respond(
                    now,
                    tx,
                    req,
                    403,
                    "Forbidden (user does not own this AOR)",
                    &[],
                );
                return;
            }
            Err(e) if e.wants_challenge() => {
                let stale = e.stale();
                self.challenge(now, peer, Some(tx), req, stale);
                return;
            }
            Err(e) => {
                let status = e.status();
                if status == 403 {
                    self.auth_failed(now, peer, &aor);
                    self.respond(now, tx, req, 403, "Forbidden", &[]);
                } else {
                    self.respond(now, tx, req, status, "Bad Request", &[]);
                }
                return;
            }
        }
        self.guard.succeed(peer.addr.ip());
        let Some(ext) = self.directory.get(&aor) else {
            self.respond(now, tx, req, 404, "Not Found", &[]);
            return;
        };
        let policy = AorPolicy {
            max_contacts: ext.max_contacts,
            remove_existing: ext.remove_existing,
        };

        // Contacts.
        let mut wildcard = false;
        let mut contacts = Vec::new();
        match req.contacts() {
            Ok(list) => {
                for c in list {
                    match c {
                        Contact::Star => wildcard = true,
                        Contact::Addr(na) => contacts.push(ContactSpec {
                            expires: na.param("expires").and_then(|v| v.map(parse_delta)),
                            instance: na
                                .param("+sip.instance")
                                .and_then(|v| v.map(|s| s.trim_matches('"').to_string())),
                            q: na.param("q").and_then(|v| v.map(str::to_string)),
                            uri: na.uri.to_string(),
                        }),
                    }
                }
            }
            Err(_) => {
                self.respond(now, tx, req, 400, "Bad Request (malformed Contact)", &[]);
                return;
            }
        }
        let expires_header = req.headers.get(&HeaderName::Expires).map(parse_delta);
        let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else {
            self.respond(now, tx, req, 400, "Bad Request", &[]);
            return;
        };
        let rr = RegisterRequest {
            aor: &aor,
            wildcard,
            contacts,
            expires_header,
            call_id,
            cseq: cseq.seq,
            source: peer,
            user_agent: req.user_agent(),
        };
        match self.registrar.handle_register(now, &rr, policy) {
            Ok(ok) => {
                let mut extra: Vec<(HeaderName, String)> = ok
                    .contacts
                    .iter()
                    .map(|(uri, exp)| (HeaderName::Contact, format!("<{uri}>;expires={exp}")))
                    .collect();
                extra.push((HeaderName::Date, http_date(self.unix_ms(now) / 1000)));
                self.respond(now, tx, req, 200, "OK", &extra);
            }
            Err(e) => {
                let mut extra = Vec::new();
                if let super::registrar::RegisterError::IntervalTooBrief { min_expires } = e {
                    extra.push((HeaderName::MinExpires, min_expires.to_string()));
                }
                let reason = match e.status() {
                    423 => "Interval Too Brief",
                    400 => "Bad Request",
                    403 => "Forbidden (too many contacts)",
                    _ => "Server Internal Error (CSeq out of order)",
                };
                self.respond(now, tx, req, e.status(), reason, &extra);
            }
        }
        self.drain_registrar(now);
    }

    fn auth_failed(&mut self, now: Instant, peer: Peer, aor: &str) {
        let ip = peer.addr.ip();
        if self.guard.fail(
            now,
            ip,
            self.cfg.auth_failure_limit,
            self.cfg.auth_failure_window,
            self.cfg.ban_duration,
        ) {
            warn!(%ip, user = aor, seconds = self.cfg.ban_duration.as_secs(), "too many failed authentications: ignoring this source");
        }
    }

    // ----------------------------------------------------------------- responses in

    fn handle_response(&mut self, now: Instant, _peer: Peer, resp: Response) {
        let Some(key) = client_key(&resp) else { return };
        let Some((tx, disp)) = self.txs.handle_response(now, &key, resp.status) else {
            debug!(status = resp.status, "response matches no transaction");
            return;
        };
        if matches!(disp, ClientDisposition::Absorbed) {
            self.drain_tx(now);
            return;
        }
        if self.notify_response(now, tx, &resp)
            || self.call_response(now, tx, disp, &resp)
            || resp.status < 200
        {
            self.drain_tx(now);
            return;
        }
        if let Some(probe) = self.probes.remove(&tx) {
            self.probing.remove(&probe.binding);
            // Any final response proves the contact is alive (Asterisk counts 2xx–6xx alike).
            let rtt = now.saturating_duration_since(probe.sent_at);
            self.qualify_result(now, probe.binding, QualifyStatus::Reachable, Some(rtt));
        }
        self.drain_tx(now);
    }

    // ----------------------------------------------------------------- qualify

    fn schedule_qualify_soon(&mut self, now: Instant, binding: u64) {
        // First probe shortly after registration (spread by id to avoid bursts).
        let due = now + Duration::from_millis(500 + (binding % 64) * 50);
        self.qualify_due.insert(binding, due);
        self.qualify_queue.push(Reverse((due, binding)));
    }

    fn run_qualify(&mut self, now: Instant) {
        while let Some(Reverse((due, id))) = self.qualify_queue.peek().copied() {
            if due > now {
                break;
            }
            self.qualify_queue.pop();
            if self.qualify_due.get(&id) != Some(&due) {
                continue;
            }
            let Some(b) = self.registrar.binding(id) else {
                self.qualify_due.remove(&id);
                continue;
            };
            let freq = self
                .directory
                .get(&b.aor)
                .map(|e| e.qualify_frequency)
                .unwrap_or(0);
            if freq == 0 {
                self.qualify_due.remove(&id);
                continue;
            }
            let (target, contact, aor) = (b.source, b.contact.clone(), b.aor.clone());
            let next = now + Duration::from_secs(u64::from(freq));
            self.qualify_due.insert(id, next);
            self.qualify_queue.push(Reverse((next, id)));
            if self.probing.contains_key(&id) {
                continue;
            }
            let (key, bytes, target) = self.build_options(&contact, &aor, target);
            match self
                .txs
                .send_request(now, key, target, target.proto.is_reliable(), bytes)
            {
                Ok(tx) => {
                    self.probing.insert(id, tx);
                    self.probes.insert(
                        tx,
                        QualifyProbe {
                            binding: id,
                            sent_at: now,
                        },
                    );
                }
                Err(e) => debug!(error = %e, "qualify OPTIONS not sent"),
            }
        }
        self.drain_tx(now);
    }

    fn qualify_result(
        &mut self,
        _now: Instant,
        id: u64,
        status: QualifyStatus,
        rtt: Option<Duration>,
    ) {
        if self.registrar.set_qualify(id, status, rtt)
            && let Some(b) = self.registrar.binding(id)
        {
            info!(aor = %b.aor, contact = %b.contact, status = status.as_str(), "contact status changed");
            self.out.push_back(Output::Event(PbxEvent::ContactStatus {
                aor: b.aor.clone(),
                contact: b.contact.clone(),
                status,
                rtt,
            }));
        }
    }

    /// Build a qualify OPTIONS for `contact`; returns the key, the bytes and the peer to send
    /// to (which may have moved from UDP to TCP, see [`request_transport`]).
    fn build_options(&mut self, contact: &str, aor: &str, target: Peer) -> (TxKey, Bytes, Peer) {
        self.branch_seq += 1;
        let branch = format!("z9hG4bK-dt{:x}", self.branch_seq);
        let tag = self.new_tag();
        let render = |pbx: &Pbx, target: Peer| {
            let local = match target.proto {
                Proto::Tcp => pbx.cfg.local_tcp.unwrap_or(pbx.cfg.local_udp),
                Proto::Udp => pbx.cfg.local_udp,
            };
            let local_host = match pbx.cfg.external_ip {
                Some(ext) if !pbx.cfg.is_local(target.addr.ip()) => ext,
                _ if local.ip().is_unspecified() => target_local_guess(target.addr),
                _ => local.ip(),
            };
            format!(
                "OPTIONS {contact} SIP/2.0\r\n\
                 Via: SIP/2.0/{proto} {host}:{port};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:dialtone@{host}>;tag={tag}\r\n\
                 To: <sip:{aor}@{host}>\r\n\
                 Call-ID: {branch}@{host}\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 User-Agent: {ua}\r\n\
                 Accept: application/sdp\r\n\
                 Content-Length: 0\r\n\r\n",
                proto = target.proto.via_name(),
                host = fmt_host(local_host),
                port = local.port(),
                ua = pbx.cfg.user_agent,
            )
        };
        let mut text = render(self, target);
        let sent_to = request_transport(target, text.len(), self.cfg.local_tcp.is_some());
        if sent_to != target {
            text = render(self, sent_to);
        }
        (
            TxKey::client(branch, TxMethod::Options),
            Bytes::from(text),
            sent_to,
        )
    }

    // ----------------------------------------------------------------- plumbing

    fn new_tag(&mut self) -> String {
        self.tag_seq = self.tag_seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
        format!("{:x}", self.tag_seq >> 16)
    }

    fn build_response(
        &mut self,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
    ) -> Bytes {
        let mut resp = req.make_response(status, reason);
        if status > 100 {
            let tag = self.new_tag();
            resp.set_to_tag(&tag);
        }
        for (name, value) in extra {
            if value.is_empty() && matches!(name, HeaderName::Supported | HeaderName::AllowEvents) {
                continue;
            }
            resp.headers.push(name.clone(), value.clone());
        }
        resp.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        Message::Response(resp).to_bytes()
    }

    fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
    ) {
        let bytes = self.build_response(req, status, reason, extra);
        if let Err(e) = self.txs.respond(now, tx, status, bytes) {
            debug!(error = %e, "response on a finished transaction");
        }
        self.drain_tx(now);
    }

    fn reply_stateless(
        &mut self,
        peer: Peer,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
    ) {
        let bytes = self.build_response(req, status, reason, extra);
        let to = response_target(peer, req.top_via().as_ref());
        self.transmit(to, bytes);
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.out.push_back(Output::Transmit { to, bytes });
    }

    fn drain_tx(&mut self, now: Instant) {
        loop {
            while let Some(t) = self.txs.poll_transmit() {
                self.out.push_back(Output::Transmit {
                    to: t.dest,
                    bytes: t.bytes,
                });
            }
            let Some(ev) = self.txs.poll_event() else {
                break;
            };
            match ev {
                TxEvent::Timeout(tx) | TxEvent::TransportError(tx) => {
                    if let Some(probe) = self.probes.remove(&tx) {
                        self.probing.remove(&probe.binding);
                        self.qualify_result(now, probe.binding, QualifyStatus::Unreachable, None);
                    } else if !self.notify_failed(tx) {
                        self.call_tx_failed(now, tx);
                    }
                }
                TxEvent::Terminated(tx, _) => {
                    if let Some(probe) = self.probes.remove(&tx) {
                        self.probing.remove(&probe.binding);
                    }
                    self.call_tx_terminated(tx);
                    self.notify_tx_terminated(tx);
                }
            }
        }
    }

    fn drain_registrar(&mut self, now: Instant) {
        while let Some(ev) = self.registrar.poll_event() {
            match ev {
                RegistrarEvent::Bound {
                    record,
                    new,
                    persist,
                } => {
                    if new {
                        self.mark_dirty(&record.aor);
                        info!(aor = %record.aor, contact = %record.contact, source = %record.source, "registered");
                        self.out.push_back(Output::Event(PbxEvent::Registered {
                            aor: record.aor.clone(),
                            contact: record.contact.clone(),
                            source: parse_peer(&record.source, &record.transport),
                            user_agent: record.user_agent.clone(),
                        }));
                        if let Some(b) = self
                            .registrar
                            .bindings_of(&record.aor)
                            .iter()
                            .find(|b| b.contact == record.contact)
                        {
                            let id = b.id;
                            self.schedule_qualify_soon(now, id);
                        }
                    }
                    if persist {
                        self.out
                            .push_back(Output::Persist(PersistOp::Upsert(record)));
                    }
                }
                RegistrarEvent::Removed {
                    aor,
                    contact,
                    reason,
                    ..
                } => {
                    info!(%aor, %contact, ?reason, "unregistered");
                    self.mark_dirty(&aor);
                    self.out.push_back(Output::Persist(PersistOp::Delete {
                        aor: aor.clone(),
                        contact: contact.clone(),
                    }));
                    self.out.push_back(Output::Event(PbxEvent::Unregistered {
                        aor,
                        contact,
                        reason,
                    }));
                }
            }
        }
    }
}

/// The URI of a request's Contact header.
pub(crate) fn call_contact(req: &Request) -> Option<String> {
    let c = req.headers.get(&HeaderName::Contact)?;
    NameAddr::parse(c).ok().map(|n| n.uri.to_string())
}

fn parse_peer(source: &str, transport: &str) -> Peer {
    let addr = source
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    Peer {
        addr,
        proto: Proto::parse(transport).unwrap_or(Proto::Udp),
        conn: None,
    }
}

fn fmt_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// With a wildcard bind, use loopback for loopback peers, else the peer's own family's
/// unspecified address is useless: the runtime fills `local_udp` with a concrete address when it
/// can; this is the fallback.
fn target_local_guess(target: SocketAddr) -> IpAddr {
    if target.ip().is_loopback() {
        target.ip()
    } else {
        IpAddr::from([127, 0, 0, 1])
    }
}

/// RFC 3261 §18.1.1: a request within 200 bytes of the path MTU (1500, so above 1300 bytes)
/// must not go over UDP; it goes over TCP to the same address (a new connection) when Dialtone
/// has TCP enabled.
pub(crate) fn request_transport(target: Peer, len: usize, tcp_enabled: bool) -> Peer {
    const UDP_REQUEST_LIMIT: usize = 1300;
    if target.proto == Proto::Udp && len > UDP_REQUEST_LIMIT && tcp_enabled {
        Peer {
            addr: target.addr,
            proto: Proto::Tcp,
            conn: None,
        }
    } else {
        target
    }
}

/// `delta-seconds`: digits, saturating at u32::MAX (RFC 3261 §20.19 / RFC 4475 scalar02).
fn parse_delta(v: &str) -> u32 {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return 3600;
    }
    v.parse::<u64>()
        .map(|n| n.min(u64::from(u32::MAX)) as u32)
        .unwrap_or(u32::MAX)
}

/// RFC 3581 / RFC 3261 §18.2.1: note where the request really came from in its top Via.
fn stamp_via(req: &mut Request, peer: Peer) {
    let Some(mut via) = req.top_via() else { return };
    let ip = peer.addr.ip().to_string();
    let mut changed = false;
    if via.host.trim_start_matches('[').trim_end_matches(']') != ip {
        via.set_param("received", Some(ip));
        changed = true;
    }
    if let Some(None) = via.rport() {
        via.set_param("rport", Some(peer.addr.port().to_string()));
        if via.received().is_none() {
            via.set_param("received", Some(peer.addr.ip().to_string()));
        }
        changed = true;
    }
    if changed {
        replace_top_via(req, via.to_string());
    }
}

fn replace_top_via(req: &mut Request, value: String) {
    let vias: Vec<String> = req
        .headers
        .get_all(&HeaderName::Via)
        .map(str::to_string)
        .collect();
    req.headers.remove(&HeaderName::Via);
    req.headers.push(HeaderName::Via, value);
    for v in vias.into_iter().skip(1) {
        req.headers.push(HeaderName::Via, v);
    }
}

/// Where a response goes. Over a stream: back on the connection. Over UDP: to the source
/// address and port of the request, whatever the Via says — Asterisk's `force_rport=yes`
/// default, which is what phones behind NAT need (RFC 3581 behaviour for every request).
fn response_target(peer: Peer, _via: Option<&crate::sip::Via>) -> Peer {
    peer
}

/// The server transaction key of a request (RFC 3261 §17.2.3; RFC 2543 fallback).
fn server_key(req: &Request) -> Option<TxKey> {
    let via = req.top_via()?;
    let sent_by = match via.port {
        Some(p) => format!("{}:{}", via.host.to_ascii_lowercase(), p),
        None => via.host.to_ascii_lowercase(),
    };
    let method = tx_method(&req.method);
    let fallback = || {
        // RFC 2543 peers: Call-ID, CSeq number, From tag and Request-URI stand in for the branch.
        let call_id = req.call_id().unwrap_or("");
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let from_tag = req
            .from()
            .and_then(|f| f.tag().map(str::to_string))
            .unwrap_or_default();
        format!("{call_id} {cseq} {from_tag} {}", req.uri)
    };
    Some(TxKey::server_or_fallback(
        via.branch(),
        &sent_by,
        method,
        fallback,
    ))
}

fn client_key(resp: &Response) -> Option<TxKey> {
    let via = resp.top_via()?;
    let branch = via.branch()?.to_string();
    let cseq = resp.cseq()?;
    Some(TxKey::client(branch, tx_method(&cseq.method)))
}

fn tx_method(m: &Method) -> TxMethod {
    TxMethod::from_name(m.as_str())
}

/// RFC 7231 IMF-fixdate for the Date header.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let weekday = DAYS[(days % 7) as usize];
    // civil-from-days (Howard Hinnant)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{weekday}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}
