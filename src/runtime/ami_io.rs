//! The AMI listener: one task per connection driving an [`AmiSession`], a fan-out task turning
//! engine events into AMI events, and the [`AmiBackend`] over the core and the store.
//!
//! Events reach sessions through a bounded `broadcast` channel: a client that cannot keep up
//! lags and is disconnected; the core is never held back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::core::CoreHandle;
use crate::ami::backend::{
    AmiBackend, BoxFut, ControlError, ControlOk, OriginateRequest, RedirectRequest, Reply, execute,
};
use crate::ami::channels::{ChannelTracker, OriginateOutcome, PendingOriginate};
use crate::ami::events::{self, AmiEvent, ContactState, DeviceState, OriginateTarget};
use crate::ami::filter::EventFilters;
use crate::ami::model::{
    Aor, Auth, Contact, DialplanContext, DialplanExten, DialplanPriority, Endpoint, Hint, Snapshot,
    Transport,
};
use crate::ami::perms::{Acl, Net, parse_perms};
use crate::ami::session::{AmiSession, AmiSettings, AmiUser, WireBatch};
use crate::ami::tracker::{EndpointTracker, contact_state};
use crate::api::events::EventFeed;
use crate::config::Config;
use crate::pbx::directory::Extension;
use crate::pbx::engine::{PbxEvent, RedirectError};
use crate::store::Store;

/// Event batches (one per engine step) buffered for all clients before a client counts as
/// too slow.
const EVENT_BUFFER: usize = 8_192;
/// Events taken at once before writing to a client.
const EVENT_BATCH: usize = 512;
/// A client that does not take a write within this long is dropped (a stalled reader never
/// holds more than the shared event ring).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one write per client per this long while events stream in (adds at most this
/// much latency, saves a wake-up and a syscall per event per client).
const COALESCE: Duration = Duration::from_millis(1);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The AMI users of config.yml (validated at load, so parsing cannot fail here; a bad entry
/// is skipped with a warning all the same).
pub fn settings(cfg: &Config, started_unix: f64) -> AmiSettings {
    let mut users = Vec::new();
    for u in &cfg.ami.users {
        let nets = |list: &[String]| -> Vec<Net> {
            list.iter().filter_map(|n| Net::parse(n).ok()).collect()
        };
        let filters = match EventFilters::parse(&u.eventfilter) {
            Ok(f) => f,
            Err(e) => {
                warn!(user = %u.username, error = %e, "AMI user skipped");
                continue;
            }
        };
        users.push(AmiUser {
            username: u.username.clone(),
            secret: u.secret.expose().to_string(),
            read: parse_perms(&u.read),
            write: parse_perms(&u.write),
            acl: Acl::new(&nets(&u.deny), &nets(&u.permit)),
            filters,
        });
    }
    let mut s = AmiSettings::new(users, started_unix);
    s.disabled_events = cfg.ami.disabledevents.clone();
    s.auth_timeout = Duration::from_secs(u64::from(cfg.ami.authtimeout.max(1)));
    s
}

/// Locks a tracker (a poisoned lock still holds usable state).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds → local `%Y-%m-%d %H:%M:%S` (the `Cdr` event's times).
pub fn local_time(ms: u64) -> String {
    let t = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r writes into the `tm` we own; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return String::new();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The fan-out from the engine's event bus to AMI events: registrations and device states
/// ([`EndpointTracker`]) and calls ([`ChannelTracker`]). It runs whether or not the AMI
/// listens (the RayanPBX events API reads the same stream), off the SIP core.
pub struct EventHub {
    events: broadcast::Sender<Arc<WireBatch>>,
    channels: Arc<Mutex<ChannelTracker>>,
    waiters: Waiters,
    task: JoinHandle<()>,
}

impl EventHub {
    /// Seed the trackers (hints, contexts, restored contacts) and start the fan-out.
    /// `timestamps`: manager.conf `timestampevents` (a `Timestamp:` header on every event).
    pub async fn start(
        core: &CoreHandle,
        store: &Store,
        feed: Option<Arc<EventFeed>>,
        timestamps: bool,
    ) -> EventHub {
        let (events, _) = broadcast::channel::<Arc<WireBatch>>(EVENT_BUFFER);
        // Subscribe first so no engine event is missed.
        let engine_events = core.subscribe();
        // Hints and contacts are known before the first client can connect: a phone that
        // registers after a client logged in is always reported as a change.
        let mut tracker = EndpointTracker::new();
        let mut channels = ChannelTracker::new(rand::random());
        if let Ok(exts) = store.list_extensions().await {
            for e in exts.iter().filter(|e| e.enabled) {
                tracker.set_hint(&e.number, &e.number, &e.context);
                channels.set_context(&e.number, &e.context);
            }
        }
        for c in core.contacts(None).await {
            tracker.seed_contact(&c.number, &c.uri, contact_state(c.qualify));
        }
        let channels = Arc::new(Mutex::new(channels));
        let waiters = Waiters::default();
        let task = tokio::spawn(fan_out(
            tracker,
            channels.clone(),
            waiters.clone(),
            engine_events,
            events.clone(),
            feed,
            core.clone(),
            timestamps,
        ));
        EventHub {
            events,
            channels,
            waiters,
            task,
        }
    }

    /// The AMI events as sessions receive them.
    pub fn publisher(&self) -> broadcast::Sender<Arc<WireBatch>> {
        self.events.clone()
    }

    /// The live channels.
    pub fn channels(&self) -> Arc<Mutex<ChannelTracker>> {
        self.channels.clone()
    }

    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// A running AMI listener.
pub struct AmiServer {
    addr: SocketAddr,
    events: broadcast::Sender<Arc<WireBatch>>,
    tasks: Vec<JoinHandle<()>>,
}

impl AmiServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publish an event to every session (the call engine's events go through here).
    pub fn publisher(&self) -> broadcast::Sender<Arc<WireBatch>> {
        self.events.clone()
    }

    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Bind and start. `started_unix_ms`: when the PBX started; `hub`: the event fan-out.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    cfg: &Config,
    hub: &EventHub,
    core: CoreHandle,
    store: Store,
    started_unix_ms: i64,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    pjsip: Arc<super::pjsip_reload::PjsipReloader>,
) -> std::io::Result<AmiServer> {
    let addr = SocketAddr::new(cfg.ami.host, cfg.ami.port);
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let started = started_unix_ms as f64 / 1000.0;
    let settings = Arc::new(settings(cfg, started));
    if settings.users.is_empty() {
        warn!(%bound, "AMI is listening but ami.users is empty: nobody can log in");
    }
    let events = hub.publisher();
    let backend = Arc::new(new_backend(
        cfg,
        core.clone(),
        store.clone(),
        started,
        udp_addr,
        tcp_addr,
        events.clone(),
        hub,
        pjsip,
    ));
    let accept = tokio::spawn(accept_loop(listener, settings, backend, events.clone()));
    info!(%bound, "AMI listening");
    Ok(AmiServer {
        addr: bound,
        events,
        tasks: vec![accept],
    })
}

/// The AMI backend (snapshots for the CLI emulation, reloads, call control).
#[allow(clippy::too_many_arguments)]
fn new_backend(
    cfg: &Config,
    core: CoreHandle,
    store: Store,
    started: f64,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    events: broadcast::Sender<Arc<WireBatch>>,
    hub: &EventHub,
    pjsip: Arc<super::pjsip_reload::PjsipReloader>,
) -> Backend {
    let mut transports = vec![Transport {
        id: "transport-udp".into(),
        protocol: "udp".into(),
        bind: udp_addr.to_string(),
        options: transport_options("udp", udp_addr),
        ..Transport::default()
    }];
    if let Some(t) = tcp_addr {
        transports.push(Transport {
            id: "transport-tcp".into(),
            protocol: "tcp".into(),
            bind: t.to_string(),
            options: transport_options("tcp", t),
            ..Transport::default()
        });
    }
    Backend {
        core,
        channels: hub.channels(),
        waiters: hub.waiters.clone(),
        store,
        started,
        last_reload: Mutex::new(started),
        globals: Mutex::new(Vec::new()),
        events,
        realm: cfg.sip.realm.clone(),
        registrar: (
            cfg.registrar.min_expires,
            cfg.registrar.max_expires,
            cfg.registrar.default_expires,
        ),
        transports,
        pjsip,
        timestamps: cfg.ami.timestampevents,
    }
}

/// A backend for the CLI emulation outside an AMI session (the compat REST API's console):
/// reload events go to `events` (the AMI's publisher when it runs).
#[allow(clippy::too_many_arguments)]
pub fn console(
    cfg: &Config,
    core: CoreHandle,
    store: Store,
    started_unix_ms: i64,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    hub: &EventHub,
    pjsip: Arc<super::pjsip_reload::PjsipReloader>,
) -> Arc<dyn AmiBackend> {
    let events = hub.publisher();
    Arc::new(new_backend(
        cfg,
        core,
        store,
        started_unix_ms as f64 / 1000.0,
        udp_addr,
        tcp_addr,
        events,
        hub,
        pjsip,
    ))
}

/// Run one Asterisk CLI command against a backend, as `Action: Command` does (reload commands
/// reload; others format a snapshot).
pub async fn run_cli(backend: &dyn AmiBackend, cmd: &str) -> crate::ami::cli::CliOutput {
    use crate::ami::cli::{self, CliReload};
    if let Some(CliReload::Module(module)) = cli::reload_command(cmd) {
        let module = match module {
            Some(m) => match cli::known_module(&m) {
                Some(k) => Some(k.to_string()),
                None => return cli::reload_output(cmd, Err(format!("No such module '{m}'"))),
            },
            None => None,
        };
        let r = backend.reload(module).await.map_err(|e| e.to_string());
        return cli::reload_output(cmd, r);
    }
    let snap = backend.snapshot().await;
    cli::run(cmd, &snap)
}

/// manager.conf `timestampevents`: `Timestamp: <unix>.<micros>` first in the body.
fn stamp(ev: &mut AmiEvent) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ev.body.insert(
        0,
        (
            "Timestamp".into(),
            format!("{}.{:06}", t.as_secs(), t.subsec_micros()),
        ),
    );
}

/// Engine events → AMI events for every session (and the RayanPBX feed).
#[allow(clippy::too_many_arguments)]
async fn fan_out(
    mut tracker: EndpointTracker,
    channels: Arc<Mutex<ChannelTracker>>,
    waiters: Waiters,
    mut rx: broadcast::Receiver<PbxEvent>,
    tx: broadcast::Sender<Arc<WireBatch>>,
    feed: Option<Arc<EventFeed>>,
    core: CoreHandle,
    timestamps: bool,
) {
    loop {
        match rx.recv().await {
            Ok(ev) => {
                let now_ms = unix_ms();
                let out: Vec<AmiEvent> = match &ev {
                    PbxEvent::Call(ce) => {
                        let mut ch = lock(&channels);
                        let mut eps = ch.endpoints_of(ce);
                        let mut out = ch.handle(now_ms as f64 / 1000.0, ce);
                        if eps.is_empty() {
                            eps = ch.endpoints_of(ce);
                        }
                        for ep in eps {
                            out.extend(tracker.set_call_state(&ep, ch.endpoint_state(&ep)));
                        }
                        for (call, o) in ch.take_outcomes() {
                            if let Some(w) = lock(&waiters).remove(&call) {
                                let _ = w.send(o);
                            }
                        }
                        out
                    }
                    PbxEvent::Cdr(r) => vec![lock(&channels).cdr(r, &local_time)],
                    PbxEvent::Directory { number, context } => {
                        if let Some(ctx) = context {
                            lock(&channels).set_context(number, ctx);
                        }
                        tracker.handle(&ev)
                    }
                    _ => tracker.handle(&ev),
                };
                let mut out = out;
                for ami in &mut out {
                    if let Some(f) = &feed {
                        f.push_ami(ami, now_ms);
                    }
                    if timestamps {
                        stamp(ami);
                    }
                }
                if !out.is_empty() {
                    // One message for the step's events. No receivers is fine.
                    let _ = tx.send(Arc::new(WireBatch::new(out)));
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "AMI event fan-out lagged behind the engine");
                // Channels of calls whose end was missed would stay forever: drop them.
                let alive: Vec<u64> = core.calls().await.iter().map(|c| c.id).collect();
                let gone = lock(&channels).retain_calls(&alive);
                if gone > 0 {
                    warn!(calls = gone, "AMI forgot calls whose end it missed");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<AmiSettings>,
    backend: Arc<Backend>,
    events: broadcast::Sender<Arc<WireBatch>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "AMI accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !settings.any_user_allows(peer.ip()) {
            debug!(%peer, "AMI connection refused by every user's deny/permit");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let rx = events.subscribe();
        tokio::spawn(connection(
            stream,
            peer.ip(),
            settings.clone(),
            backend.clone(),
            rx,
        ));
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: IpAddr,
    settings: Arc<AmiSettings>,
    backend: Arc<Backend>,
    mut events: broadcast::Receiver<Arc<WireBatch>>,
) {
    let mut session = AmiSession::new(
        Instant::now(),
        unix_now(),
        settings,
        peer,
        rand::random::<u32>() % 1_000_000_000,
    );
    debug!(%peer, "AMI connection");
    let mut buf = vec![0u8; 8192];
    let mut pending: Option<BoxFut<'static, Reply>> = None;
    let mut last_write: Option<Instant> = None;
    loop {
        if let Some(out) = session.poll_transmit() {
            match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(out.as_bytes())).await {
                Ok(Ok(())) => last_write = Some(Instant::now()),
                _ => break,
            }
            session.recycle(out);
        }
        if session.is_closed() {
            break;
        }
        if pending.is_none()
            && let Some(req) = session.poll_request()
        {
            let b = backend.clone();
            pending = Some(Box::pin(async move { execute(&*b, req).await }));
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
            },
            ev = events.recv() => match ev {
                Ok(ev) => {
                    session.handle_batch(&ev);
                    // Under a stream of events, write at most once per COALESCE: wait out the
                    // rest of it so one wake-up and one write carry the burst. An idle client
                    // gets its first event at once.
                    if let Some(t) = last_write
                        && t.elapsed() < COALESCE
                    {
                        tokio::time::sleep_until((t + COALESCE).into()).await;
                    }
                    // Take what else is waiting: one write for a burst, not one per event.
                    for _ in 0..EVENT_BATCH {
                        match events.try_recv() {
                            Ok(ev) => session.handle_batch(&ev),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                session.handle_lag(Instant::now(), n);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => session.handle_lag(Instant::now(), n),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            reply = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                session.handle_reply(Instant::now(), reply);
            }
            () = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            } => session.handle_timeout(Instant::now()),
        }
    }
    let _ = stream.shutdown().await;
    debug!(%peer, user = ?session.username(), "AMI connection closed");
}

// ------------------------------------------------------------------ backend

/// Sync `Originate`s waiting for their call's first leg, by engine call id.
type Waiters = Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<OriginateOutcome>>>>;

struct Backend {
    core: CoreHandle,
    channels: Arc<Mutex<ChannelTracker>>,
    waiters: Waiters,
    store: Store,
    started: f64,
    last_reload: Mutex<f64>,
    globals: Mutex<Vec<(String, String)>>,
    events: broadcast::Sender<Arc<WireBatch>>,
    realm: String,
    /// min, max, default expiration.
    registrar: (u32, u32, u32),
    transports: Vec<Transport>,
    /// `pjsip reload` re-reads the pjsip.conf (when Dialtone runs from one).
    pjsip: Arc<super::pjsip_reload::PjsipReloader>,
    /// manager.conf `timestampevents` for the events published here.
    timestamps: bool,
}

fn kv(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn transport_options(proto: &str, bind: SocketAddr) -> Vec<(String, String)> {
    kv(&[
        ("async_operations", "1".into()),
        ("bind", bind.to_string()),
        ("ca_list_file", String::new()),
        ("cert_file", String::new()),
        ("cipher", String::new()),
        ("cos", "0".into()),
        ("domain", String::new()),
        ("external_media_address", String::new()),
        ("external_signaling_address", String::new()),
        ("external_signaling_port", "0".into()),
        ("local_net", String::new()),
        ("method", "unspecified".into()),
        ("password", String::new()),
        ("priv_key_file", String::new()),
        ("protocol", proto.into()),
        ("require_client_cert", "No".into()),
        ("tos", "0".into()),
        ("verify_client", "No".into()),
        ("verify_server", "No".into()),
    ])
}

fn caller_id(e: &Extension) -> String {
    e.caller_id
        .clone()
        .unwrap_or_else(|| format!("\"{}\" <{}>", e.name, e.number))
}

fn endpoint_options(e: &Extension, transport: &str) -> Vec<(String, String)> {
    let yn = |b: bool| {
        if b {
            "true".to_string()
        } else {
            "false".to_string()
        }
    };
    kv(&[
        ("100rel", "yes".into()),
        ("accountcode", String::new()),
        ("aggregate_mwi", "true".into()),
        ("allow", format!("({})", e.codecs.join("|"))),
        ("allow_subscribe", "true".into()),
        ("allow_transfer", "true".into()),
        ("aors", e.number.clone()),
        ("auth", e.number.clone()),
        ("call_group", String::new()),
        ("callerid", caller_id(e)),
        ("callerid_privacy", "allowed_not_screened".into()),
        ("context", e.context.clone()),
        ("device_state_busy_at", "0".into()),
        ("direct_media", "false".into()),
        ("disable_direct_media_on_nat", "false".into()),
        ("dtls_rekey", "0".into()),
        ("dtls_setup", "active".into()),
        ("dtls_verify", "No".into()),
        ("dtmf_mode", "rfc4733".into()),
        ("force_rport", "true".into()),
        ("from_domain", String::new()),
        ("from_user", String::new()),
        ("ice_support", "false".into()),
        ("identify_by", "username,ip".into()),
        ("language", String::new()),
        ("mailboxes", String::new()),
        ("max_audio_streams", "1".into()),
        ("media_encryption", "no".into()),
        ("moh_suggest", "default".into()),
        ("mwi_subscribe_replaces_unsolicited", "no".into()),
        ("outbound_auth", String::new()),
        ("pickup_group", String::new()),
        ("record_off_feature", "automixmon".into()),
        ("record_on_feature", "automixmon".into()),
        ("rewrite_contact", "false".into()),
        ("rtp_engine", "asterisk".into()),
        ("rtp_symmetric", "false".into()),
        ("sdp_owner", "-".into()),
        ("sdp_session", "Asterisk".into()),
        ("send_connected_line", "yes".into()),
        ("send_pai", "false".into()),
        ("t38_udptl", "false".into()),
        ("t38_udptl_ec", "none".into()),
        ("timers", "yes".into()),
        ("timers_min_se", "90".into()),
        ("timers_sess_expires", "1800".into()),
        ("transport", transport.into()),
        ("trust_connected_line", "yes".into()),
        ("trust_id_inbound", "false".into()),
        ("use_avpf", "false".into()),
        ("voicemail_extension", String::new()),
        ("webrtc", "no".into()),
        ("send_rpid", yn(false)),
    ])
}

impl Backend {
    async fn build(&self) -> Snapshot {
        let now = unix_now();
        let exts: Vec<Extension> = self
            .store
            .list_extensions()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.enabled)
            .collect();
        let contacts = self.core.contacts(None).await;
        let stats = self.core.stats().await;
        // The channels the events named.
        let (channels, call_state) = {
            let t = lock(&self.channels);
            (t.channels(), t.endpoint_states())
        };

        let (min_exp, max_exp, def_exp) = self.registrar;
        let mut endpoints = Vec::new();
        let mut hints = Vec::new();
        let mut contexts: Vec<DialplanContext> = Vec::new();
        for e in &exts {
            let transport = match e.transport.as_deref() {
                Some("udp") => "transport-udp",
                Some("tcp") => "transport-tcp",
                _ => "",
            };
            let aor_contacts: Vec<Contact> = contacts
                .iter()
                .filter(|c| c.number == e.number)
                .map(|c| {
                    let status = match contact_state(c.qualify) {
                        ContactState::Unknown if e.qualify_frequency == 0 => {
                            ContactState::NonQualified
                        }
                        s => s,
                    };
                    Contact {
                        aor: e.number.clone(),
                        uri: c.uri.clone(),
                        endpoint: e.number.clone(),
                        user_agent: c.user_agent.clone().unwrap_or_default(),
                        expiration_unix: now as i64 + i64::from(c.expires_in),
                        status,
                        rtt_usec: c.rtt.map(|d| d.as_micros() as u64),
                        via_addr: c.source.addr.ip().to_string(),
                        via_port: c.source.addr.port(),
                        qualify_frequency: e.qualify_frequency,
                        qualify_timeout: 3.0,
                        ..Contact::default()
                    }
                })
                .collect();
            let available = aor_contacts.iter().any(|c| c.status.is_available());
            let device_state = match call_state.get(&e.number) {
                Some(s) => *s,
                None if available => DeviceState::NotInUse,
                None => DeviceState::Unavailable,
            };
            let active = channels.iter().filter(|c| c.endpoint == e.number).count() as u32;
            let aor = Aor {
                id: e.number.clone(),
                max_contacts: e.max_contacts,
                contacts: aor_contacts,
                options: kv(&[
                    ("authenticate_qualify", "false".into()),
                    ("default_expiration", def_exp.to_string()),
                    ("mailboxes", String::new()),
                    ("max_contacts", e.max_contacts.to_string()),
                    ("maximum_expiration", max_exp.to_string()),
                    ("minimum_expiration", min_exp.to_string()),
                    ("outbound_proxy", String::new()),
                    ("qualify_2xx_only", "false".into()),
                    ("qualify_frequency", e.qualify_frequency.to_string()),
                    ("qualify_timeout", "3.000000".into()),
                    (
                        "remove_existing",
                        if e.remove_existing { "true" } else { "false" }.into(),
                    ),
                    ("remove_unavailable", "false".into()),
                    ("support_path", "false".into()),
                    ("voicemail_extension", String::new()),
                ]),
            };
            let auth = Auth {
                id: e.number.clone(),
                username: e.number.clone(),
                password: e.secret.clone(),
                realm: self.realm.clone(),
                options: kv(&[
                    ("auth_type", "userpass".into()),
                    ("md5_cred", String::new()),
                    ("nonce_lifetime", "32".into()),
                    ("oauth_clientid", String::new()),
                    ("oauth_secret", String::new()),
                    ("password", e.secret.clone()),
                    ("realm", self.realm.clone()),
                    ("refresh_token", String::new()),
                    ("username", e.number.clone()),
                ]),
            };
            endpoints.push(Endpoint {
                id: e.number.clone(),
                callerid_num: e.number.clone(),
                transport: transport.into(),
                aors: vec![aor],
                auths: vec![auth],
                outbound_auths: Vec::new(),
                identifies: Vec::new(),
                device_state,
                active_channels: active,
                device_state_busy_at: 0,
                options: endpoint_options(e, transport),
            });
            hints.push(Hint {
                exten: e.number.clone(),
                context: e.context.clone(),
                hint: format!("PJSIP/{}", e.number),
                state: device_state.extension_state(),
                presence: "not_set".into(),
                watchers: 0,
            });
            let ctx = match contexts.iter_mut().position(|c| c.name == e.context) {
                Some(i) => &mut contexts[i],
                None => {
                    contexts.push(DialplanContext {
                        name: e.context.clone(),
                        registrar: "pbx_config".into(),
                        ..DialplanContext::default()
                    });
                    contexts.last_mut().expect("just pushed")
                }
            };
            let p = |priority: i32, app: &str, data: String| DialplanPriority {
                priority,
                label: None,
                app: app.into(),
                data,
                source: None,
            };
            ctx.extensions.push(DialplanExten {
                name: e.number.clone(),
                cid: None,
                priorities: vec![
                    p(-1, &format!("PJSIP/{}", e.number), String::new()),
                    p(1, "Dial", format!("PJSIP/{},30", e.number)),
                    p(2, "Hangup", String::new()),
                ],
            });
        }
        Snapshot {
            now_unix: now,
            started_unix: self.started,
            last_reload_unix: *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()),
            system_name: String::new(),
            endpoints,
            transports: self.transports.clone(),
            channels,
            contexts,
            hints,
            active_calls: stats.active_calls,
            processed_calls: stats.total_calls,
            globals: self
                .globals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// `"Name" <num>` → `(num, name)`; a bare phone number is the number, anything else the name
/// (Asterisk's `ast_callerid_parse`).
fn parse_caller_id(s: &str) -> (String, String) {
    let s = s.trim();
    match (s.find('<'), s.rfind('>')) {
        (Some(l), Some(r)) if l < r => {
            let name = s[..l].trim().trim_matches('"').to_string();
            (s[l + 1..r].trim().to_string(), name)
        }
        _ if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || "+*#-(). ".contains(c)) =>
        {
            (s.to_string(), String::new())
        }
        _ => (String::new(), s.trim_matches('"').to_string()),
    }
}

impl Backend {
    /// Send the party on `leg` of `call` (channel `channel`) to extension `to` (Redirect,
    /// BlindTransfer), mapping the engine's refusal to the AMI error.
    async fn move_leg(
        &self,
        call: u64,
        leg: crate::pbx::engine::Leg,
        channel: &str,
        to: String,
        context: Option<String>,
    ) -> Result<(), ControlError> {
        match self
            .core
            .redirect(call, leg, channel_endpoint(channel), to.clone(), context)
            .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(RedirectError::NoSuchCall | RedirectError::NotUp)) => {
                Err(ControlError::ChannelNotUp)
            }
            Some(Err(e)) => {
                debug!(%channel, exten = %to, error = %e, "AMI transfer refused");
                Err(ControlError::Failed)
            }
            None => Err(ControlError::Failed),
        }
    }

    fn publish(&self, mut ev: AmiEvent) {
        if self.timestamps {
            stamp(&mut ev);
        }
        let _ = self.events.send(Arc::new(WireBatch::one(ev)));
    }

    /// `Originate` of `PJSIP/<from>` to `Exten <to>`: the engine's click-to-dial (it rings
    /// `from`, then calls `to`). Async: queued at once, reported by `OriginateResponse`
    /// (published while the action is still pending, so the session sends it after the
    /// response). Sync: answered once `from` picked up.
    async fn originate_call(&self, req: OriginateRequest) -> Result<ControlOk, ControlError> {
        let (tech, resource) = req.channel.split_once('/').unwrap_or(("", ""));
        if !tech.eq_ignore_ascii_case("PJSIP") {
            return Err(ControlError::Unsupported(format!(
                "Originate supports PJSIP/<extension> channels only, not {}",
                req.channel
            )));
        }
        let from = resource.split(['@', '/']).next().unwrap_or("").to_string();
        let to = match &req.target {
            OriginateTarget::Exten { exten, .. } => exten.clone(),
            OriginateTarget::App { application, .. } => {
                return Err(ControlError::Unsupported(format!(
                    "Originate to an application ({application}) is not available in Dialtone; use Context/Exten"
                )));
            }
        };
        let caller_id = req.caller_id.as_deref().map(parse_caller_id);
        let pending = PendingOriginate {
            action_id: req.action_id.clone(),
            channel: req.channel.clone(),
            target: req.target.clone(),
            caller_id: caller_id.clone(),
            is_async: req.is_async,
            variables: req.variables.clone(),
        };
        let opts = crate::pbx::engine::OriginateOptions {
            ring_timeout: Some(Duration::from_millis(req.timeout_ms)),
            caller_id: caller_id.clone(),
        };
        let call = match self.core.originate_with(from.clone(), to, opts).await {
            Some(Ok((id, _call_id))) => id,
            Some(Err(e)) => {
                debug!(error = %e, "AMI Originate refused");
                if !req.is_async {
                    return Err(ControlError::Failed);
                }
                let (num, name) = caller_id.unwrap_or_default();
                self.publish(events::originate_response(&events::OriginateReport {
                    action_id: req.action_id,
                    success: false,
                    channel: req.channel,
                    target: req.target,
                    reason: 0,
                    uniqueid: String::new(),
                    caller_id_num: num,
                    caller_id_name: name,
                }));
                return Ok(ControlOk::OriginateQueued);
            }
            None => return Err(ControlError::Failed),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<OriginateOutcome>();
        {
            let mut t = lock(&self.channels);
            match t.register_originate(call, pending) {
                Some((outcome, ev)) => {
                    drop(t);
                    if let Some(ev) = ev {
                        self.publish(ev);
                    }
                    return match (req.is_async, outcome.success) {
                        (true, _) => Ok(ControlOk::OriginateQueued),
                        (false, true) => Ok(ControlOk::OriginateAnswered),
                        (false, false) => Err(ControlError::Failed),
                    };
                }
                None if !req.is_async => {
                    lock(&self.waiters).insert(call, tx);
                }
                None => {}
            }
            // Published under the tracker's lock: before any later event of the call.
            for ev in t.take_late_events() {
                self.publish(ev);
            }
        }
        if req.is_async {
            return Ok(ControlOk::OriginateQueued);
        }
        let wait = Duration::from_millis(req.timeout_ms.saturating_add(5_000));
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(o)) if o.success => Ok(ControlOk::OriginateAnswered),
            Ok(_) => Err(ControlError::Failed),
            Err(_) => {
                lock(&self.channels).forget_originate(call);
                lock(&self.waiters).remove(&call);
                Err(ControlError::Failed)
            }
        }
    }
}

impl AmiBackend for Backend {
    fn snapshot(&self) -> BoxFut<'_, Snapshot> {
        Box::pin(self.build())
    }

    fn user_event(&self, body: Vec<(String, String)>) -> BoxFut<'_, Result<(), ControlError>> {
        let mut ev = AmiEvent::new("UserEvent", crate::ami::perms::USER);
        for (k, v) in body {
            ev.push(k, v);
        }
        self.publish(ev);
        Box::pin(async { Ok(()) })
    }

    fn hangup(
        &self,
        channels: Vec<String>,
        cause: Option<u8>,
    ) -> BoxFut<'_, Result<Vec<String>, ControlError>> {
        Box::pin(async move {
            let mut done = Vec::new();
            for want in channels {
                let call = lock(&self.channels).call_of(&want);
                if let Some(id) = call
                    && self
                        .core
                        .hangup_with_cause(id.to_string(), cause.filter(|c| *c != 0))
                        .await
                {
                    done.push(want);
                }
            }
            Ok(done)
        })
    }

    fn originate(&self, req: OriginateRequest) -> BoxFut<'_, Result<ControlOk, ControlError>> {
        Box::pin(self.originate_call(req))
    }

    /// `Redirect` of one channel to `Exten` (a blind transfer: see `pbx/redirect.rs`). Any
    /// priority is accepted (an extension's dialplan is one `Dial` step); `Context` must be the
    /// extension's own, the redirected party's, `default`, `from-internal`, `ext-local`,
    /// `from-internal-xfer` or `from-internal-additional`. The channel's extension goes with
    /// the leg the tracker knows: the engine checks it (the tracker learns of a leg swap
    /// after the engine).
    fn redirect(&self, req: RedirectRequest) -> BoxFut<'_, Result<(), ControlError>> {
        Box::pin(async move {
            if req.extra.is_some() {
                return Err(ControlError::Unsupported(
                    "Dual Redirect (ExtraChannel) is not supported by Dialtone; redirect one channel"
                        .into(),
                ));
            }
            let found = lock(&self.channels).leg_of(&req.channel);
            let Some((call, leg, main)) = found else {
                return Err(ControlError::NoSuchChannel);
            };
            if !main {
                return Err(ControlError::ChannelNotUp);
            }
            self.move_leg(call, leg, &req.channel, req.exten, Some(req.context))
                .await
        })
    }

    fn blind_transfer(
        &self,
        channel: String,
        exten: String,
        context: Option<String>,
    ) -> BoxFut<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let (known, peer) = {
                let t = lock(&self.channels);
                (t.leg_of(&channel).is_some(), t.peer_of(&channel))
            };
            if !known {
                return Err(ControlError::NoSuchChannel);
            }
            // Only a channel bridged with one other can hand that other on.
            let Some((call, peer_leg, peer_name)) = peer else {
                return Err(ControlError::ChannelNotUp);
            };
            self.move_leg(call, peer_leg, &peer_name, exten, context)
                .await
        })
    }

    fn setvar(
        &self,
        channel: Option<String>,
        variable: String,
        value: String,
    ) -> BoxFut<'_, Result<(), ControlError>> {
        Box::pin(async move {
            match channel {
                None => {
                    let ev = events::var_set(None, &variable, &value);
                    {
                        let mut g = self.globals.lock().unwrap_or_else(|p| p.into_inner());
                        match g.iter_mut().find(|(k, _)| *k == variable) {
                            Some(slot) => slot.1 = value,
                            None => g.push((variable, value)),
                        }
                    }
                    self.publish(ev);
                    Ok(())
                }
                Some(name) => {
                    let ev = lock(&self.channels).set_var_event(&name, &variable, &value);
                    match ev {
                        Some(ev) => {
                            self.publish(ev);
                            Ok(())
                        }
                        None => Err(ControlError::NoSuchChannel),
                    }
                }
            }
        })
    }

    fn reload(&self, module: Option<String>) -> BoxFut<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let reload_directory = matches!(
                module.as_deref(),
                None | Some("res_pjsip.so") | Some("pbx_config.so") | Some("chan_pjsip.so")
            );
            if reload_directory {
                // Re-reads pjsip.conf (when configured), else the store; NAT re-applied.
                let report = self.pjsip.reload().await.map_err(|e| {
                    warn!(error = %e, "pjsip reload failed");
                    ControlError::ReloadFailed(format!("Unable to reload pjsip.conf: {e}"))
                })?;
                info!(
                    ?module,
                    added = report.added,
                    changed = report.changed,
                    removed = report.removed,
                    "AMI reload"
                );
            }
            *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = unix_now();
            let name = module.as_deref().unwrap_or("All");
            let _ = self
                .events
                .send(Arc::new(WireBatch::one(events::reload(name, 0))));
            Ok(())
        })
    }
}

/// The endpoint of a channel name: `PJSIP/1002-0000000a` → `1002` (None for another shape).
fn channel_endpoint(channel: &str) -> Option<String> {
    let (tech, rest) = channel.split_once('/')?;
    if !tech.eq_ignore_ascii_case("PJSIP") {
        return None;
    }
    let (ep, _) = rest.rsplit_once('-')?;
    (!ep.is_empty()).then(|| ep.to_owned())
}

// ------------------------------------------------------------------ client (`dialtone cli`)

/// Read one message (lines up to a blank line), skipping the banner line.
async fn next_msg(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> std::io::Result<Vec<String>> {
    loop {
        while buf.starts_with(b"Asterisk Call Manager/") {
            match buf.windows(2).position(|w| w == b"\r\n") {
                Some(p) => {
                    buf.drain(..p + 2);
                }
                None => break,
            }
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n")
            && !buf.starts_with(b"Asterisk Call Manager/")
        {
            let m: Vec<u8> = buf.drain(..p + 4).collect();
            let text = String::from_utf8_lossy(&m[..p]).into_owned();
            return Ok(text.split("\r\n").map(str::to_string).collect());
        }
        let n = s.read(chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `dialtone monitor-events`: log in to the AMI at `addr` and hand RayanPBX's human line for
/// each registration, ringing and hangup event to `on_line` (first the line
/// `Monitoring AMI events at <addr>` once logged in). Returns when the connection closes.
pub async fn monitor_events(
    addr: SocketAddr,
    username: &str,
    secret: &str,
    mut on_line: impl FnMut(&str),
) -> std::io::Result<()> {
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("AMI did not answer in time"))??;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    let login = format!(
        "Action: Login\r\nActionID: monitor-login\r\nUsername: {username}\r\nSecret: {secret}\r\nEvents: system,call\r\n\r\n"
    );
    s.write_all(login.as_bytes()).await?;
    let m = tokio::time::timeout(
        Duration::from_secs(10),
        next_msg(&mut s, &mut buf, &mut chunk),
    )
    .await
    .map_err(|_| std::io::Error::other("AMI did not answer in time"))??;
    if !m.iter().any(|l| l == "Response: Success") {
        return Err(std::io::Error::other("AMI login failed"));
    }
    on_line(&format!("Monitoring AMI events at {addr}"));
    loop {
        let m = next_msg(&mut s, &mut buf, &mut chunk).await?;
        let header = |k: &str| {
            m.iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(k).then(|| v.trim_start())
            })
        };
        let Some(event) = header("Event") else {
            continue;
        };
        if let Some(line) = crate::ami::monitor::line(event, header) {
            on_line(&line);
        }
    }
}

/// Log in to an AMI at `addr`, run one CLI command and return `(success, output text)` with
/// the `Output:` lines joined by newlines (what `asterisk -rx` prints).
pub async fn run_command(
    addr: SocketAddr,
    username: &str,
    secret: &str,
    command: &str,
) -> std::io::Result<(bool, String)> {
    let io_err = |m: &str| std::io::Error::other(m.to_string());
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        let login = format!(
            "Action: Login\r\nActionID: cli-login\r\nUsername: {username}\r\nSecret: {secret}\r\nEvents: off\r\n\r\n"
        );
        s.write_all(login.as_bytes()).await?;
        let m = next_msg(&mut s, &mut buf, &mut chunk).await?;
        if !m.iter().any(|l| l == "Response: Success") {
            return Err(io_err("AMI login failed"));
        }
        let cmd = command.replace(['\r', '\n'], " ");
        let req = format!("Action: Command\r\nActionID: cli-cmd\r\nCommand: {cmd}\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        loop {
            let m = next_msg(&mut s, &mut buf, &mut chunk).await?;
            if !m.iter().any(|l| l == "ActionID: cli-cmd") {
                continue;
            }
            let ok = m.first().is_some_and(|l| l == "Response: Success");
            let lines: Vec<&str> = m
                .iter()
                .filter_map(|l| {
                    l.strip_prefix("Output: ")
                        .or((l == "Output:").then_some(""))
                })
                .collect();
            let mut text = lines.join("\n");
            if !lines.is_empty() {
                text.push('\n');
            } else if !ok && let Some(msg) = m.iter().find_map(|l| l.strip_prefix("Message: ")) {
                text = format!("{msg}\n");
            }
            let _ = s
                .write_all(b"Action: Logoff\r\nActionID: cli-bye\r\n\r\n")
                .await;
            return Ok((ok, text));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| io_err("AMI did not answer in time"))?
}

#[cfg(test)]
mod caller_id_tests {
    use super::parse_caller_id;

    #[test]
    fn asterisk_caller_id_forms() {
        let p = |s: &str| parse_caller_id(s);
        assert_eq!(p("\"CRM\" <5551234>"), ("5551234".into(), "CRM".into()));
        assert_eq!(p("Sales <200>"), ("200".into(), "Sales".into()));
        assert_eq!(
            p("+1 (555) 123-4567"),
            ("+1 (555) 123-4567".into(), String::new())
        );
        assert_eq!(p("John Smith"), (String::new(), "John Smith".into()));
        assert_eq!(p("\"John\""), (String::new(), "John".into()));
    }
}

#[cfg(test)]
mod channel_endpoint_tests {
    use super::channel_endpoint;

    #[test]
    fn channel_endpoint_of_pjsip_channels() {
        assert_eq!(
            channel_endpoint("PJSIP/1002-0000000a").as_deref(),
            Some("1002")
        );
        assert_eq!(
            channel_endpoint("pjsip/sales-desk-00000001").as_deref(),
            Some("sales-desk")
        );
        assert_eq!(channel_endpoint("PJSIP/1002"), None);
        assert_eq!(channel_endpoint("SIP/1002-0001"), None);
        assert_eq!(channel_endpoint("Local/1002@ctx-0001;1"), None);
    }
}
