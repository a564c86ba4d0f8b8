//! Tokio shells: sockets, the core task, timers, the REST listener and the store writer.
//!
//! [`Server::start`] wires everything from a [`Config`] and returns the bound addresses, so
//! tests can run a whole PBX on `127.0.0.1:0`.

pub mod ami_io;
pub mod backend;
pub mod compat;
pub mod core;
pub mod media_bridge;
pub mod media_io;
pub mod pjsip_reload;
pub mod sip_io;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::api;
use crate::config::Config;
use crate::pbx::Pbx;
use crate::pbx::engine::{Command, PbxConfig};
use crate::pbx::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;
use crate::store::{BindingOp, Store, StoreError};

pub use self::core::CoreHandle;
use self::core::{Core, CoreMsg};
use self::sip_io::TcpSettings;

/// Start-up failures.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("cannot bind SIP UDP {addr}: {source}")]
    BindUdp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind SIP TCP {addr}: {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind REST API {addr}: {source}")]
    BindApi {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind the compat API {addr}: {source}")]
    BindCompatApi {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("pjsip.config_file: {0}")]
    Pjsip(String),
    #[error("cannot bind AMI {addr}: {source}")]
    BindAmi {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("media relay: {0}")]
    Media(String),
}

/// A running PBX.
pub struct Server {
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    api_addr: Option<SocketAddr>,
    handle: CoreHandle,
    core_done: oneshot::Receiver<()>,
    writer_task: JoinHandle<()>,
    api_stop: Option<oneshot::Sender<()>>,
    api_task: Option<JoinHandle<()>>,
    compat_addr: Option<SocketAddr>,
    compat_stop: Option<oneshot::Sender<()>>,
    compat_task: Option<JoinHandle<()>>,
    reloader: Arc<pjsip_reload::PjsipReloader>,
    watcher_task: JoinHandle<()>,
    store: Store,
    relay: media_io::MediaRelay,
    cdr_task: JoinHandle<()>,
    ami: Option<ami_io::AmiServer>,
    /// Engine events → AMI events (AMI sessions and the events API).
    events_hub: ami_io::EventHub,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The address Dialtone writes into Via/Contact of its own requests when bound to a wildcard.
fn advertised_ip(bind: IpAddr, external: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = external {
        return ip;
    }
    if !bind.is_unspecified() {
        return bind;
    }
    // The address of the default route, found without sending anything.
    StdUdp::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Write finished calls in batches (at most every 200 ms); on close, write the rest. A crash
/// loses at most the last batch window.
async fn cdr_writer(store: Store, mut rx: mpsc::UnboundedReceiver<crate::store::CdrRow>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut closed = false;
        while batch.len() < 1000 {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(row) => batch.push(row),
                    None => { closed = true; break; }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Err(e) = store.insert_cdrs(&batch).await {
            warn!(error = %e, rows = batch.len(), "writing call records failed; retrying once");
            if let Err(e) = store.insert_cdrs(&batch).await {
                warn!(error = %e, rows = batch.len(), "call records dropped");
            }
        }
        batch.clear();
        if closed {
            break;
        }
    }
}

impl Server {
    /// Open the store, seed it, bind every listener and start the tasks.
    pub async fn start(cfg: &Config) -> Result<Server, RuntimeError> {
        let store = Store::open(cfg.database.url()).await?;

        // Running from a pjsip.conf: it is the source of truth (extensions[] is not seeded).
        let pjsip_file = cfg.pjsip.config_file.as_ref().map(std::path::PathBuf::from);
        if let Some(file) = &pjsip_file {
            let report = pjsip_reload::PjsipReloader::import_file(&store, file)
                .await
                .map_err(|e| RuntimeError::Pjsip(e.to_string()))?;
            for w in &report.warnings {
                warn!("{w}");
            }
            info!(
                file = %file.display(),
                added = report.added,
                changed = report.changed,
                removed = report.removed,
                "pjsip.conf imported"
            );
        }
        // Seed extensions[] per extensions_seed_mode; never overwrites an edited extension.
        let seeds = if pjsip_file.is_some() {
            Vec::new()
        } else {
            cfg.seed_extensions()
        };
        if !seeds.is_empty() {
            let report = store
                .seed_extensions(&seeds, cfg.extensions_seed_mode)
                .await?;
            info!(
                inserted = report.inserted.len(),
                kept = report.kept.len(),
                skipped = report.skipped.len(),
                "extensions[] from config.yml"
            );
        }
        // Read the directory version first: a change after this point is seen by the watcher.
        let directory_version = store.directory_version().await?;
        let extensions = store.list_extensions().await?;
        let bindings = store.load_bindings().await?;

        // Sockets.
        let sip_bind = SocketAddr::new(cfg.server.sip_host, cfg.server.sip_port);
        let udp =
            sip_io::bind_udp(sip_bind, cfg.sip.udp_buffer_bytes as usize).map_err(|source| {
                RuntimeError::BindUdp {
                    addr: sip_bind,
                    source,
                }
            })?;
        let udp_addr = udp.local_addr().map_err(|source| RuntimeError::BindUdp {
            addr: sip_bind,
            source,
        })?;
        let (rcv, snd) = sip_io::udp_buffers(&udp);
        if rcv < cfg.sip.udp_buffer_bytes as usize {
            warn!(
                asked = cfg.sip.udp_buffer_bytes,
                got = rcv,
                "UDP receive buffer capped by the kernel (raise net.core.rmem_max for REGISTER storms)"
            );
        }
        debug!(rcv, snd, "UDP buffers");
        let tcp_listener = if cfg.sip.tcp {
            // Same port as UDP (also when the UDP port was chosen by the kernel).
            let addr = SocketAddr::new(cfg.server.sip_host, udp_addr.port());
            Some(sip_io::bind_tcp(addr).map_err(|source| RuntimeError::BindTcp { addr, source })?)
        } else {
            None
        };
        let tcp_addr = tcp_listener.as_ref().and_then(|l| l.local_addr().ok());

        // The engine.
        let now = Instant::now();
        let epoch = (now, unix_ms());
        // Local phones get the local address; external_ip is applied per peer (local_net).
        let adv = advertised_ip(cfg.server.sip_host, None);
        let mut nonce_secret = [0u8; 32];
        rand::fill(&mut nonce_secret);
        let pcfg = PbxConfig {
            realm: cfg.sip.realm.clone(),
            user_agent: cfg.sip.user_agent.clone(),
            timers: TimerConfig {
                t1: cfg.sip.t1(),
                t2: cfg.sip.t2(),
                t4: cfg.sip.t4(),
            },
            registrar: RegistrarConfig {
                min_expires: cfg.registrar.min_expires,
                max_expires: cfg.registrar.max_expires,
                default_expires: cfg.registrar.default_expires,
            },
            auth_failure_limit: cfg.security.rate_limit.max_attempts,
            auth_failure_window: cfg.security.rate_limit.window(),
            ban_duration: cfg.security.rate_limit.lockout(),
            local_udp: SocketAddr::new(adv, udp_addr.port()),
            local_tcp: tcp_addr.map(|a| SocketAddr::new(adv, a.port())),
            nonce_secret,
            nonce_lifetime: cfg.registrar.nonce_lifetime(),
            ring_timeout: Duration::from_secs(u64::from(cfg.server.ring_timeout.max(1))),
            external_ip: cfg.server.external_ip,
            external_media_ip: None,
            local_nets: cfg.server.local_net.clone(),
            dnd_status: cfg.server.dnd_status,
        };
        let mut pbx = Pbx::new(pcfg, epoch);
        pbx.handle_command(now, Command::LoadDirectory(extensions));
        pbx.handle_command(now, Command::RestoreBindings(bindings));
        info!(
            extensions = pbx.stats().extensions,
            bindings = pbx.stats().bindings,
            "directory and registrations loaded"
        );

        // Persistence: binding changes go to a batching writer, off the signalling path.
        let (op_tx, op_rx) = mpsc::unbounded_channel::<BindingOp>();
        let writer_task = crate::store::spawn_binding_writer(store.clone(), op_rx);

        // The media relay (RTP workers on their own threads) and the bridge task that turns the
        // engine's per-call media commands into relay operations.
        let relay = media_io::MediaRelay::start(media_io::RelayConfig {
            bind_ip: cfg.server.sip_host,
            port_start: cfg.server.rtp_port_range_start,
            // config.yml's end is inclusive; the relay's range is half-open.
            port_end: cfg.server.rtp_port_range_end.saturating_add(1),
            rtp_timeout: Duration::from_secs(u64::from(cfg.server.rtp_timeout)),
            ..media_io::RelayConfig::default()
        })
        .map_err(|e| RuntimeError::Media(e.to_string()))?;
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        // Finished calls go to the CDR writer in batches, off the signalling path.
        let (cdr_tx, cdr_rx) = mpsc::unbounded_channel();
        let cdr_task = tokio::spawn(cdr_writer(store.clone(), cdr_rx));

        let (handle, rx, events) = core::channel(4096);
        // The bridge gets a thread (and single-threaded runtime) of its own: call set-up waits
        // on it, so it must never queue behind AMI writers or API work on the shared pool.
        {
            let (relay_h, media_events, core_tx) =
                (relay.handle(), relay.handle().subscribe(), handle.sender());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| RuntimeError::Media(e.to_string()))?;
            std::thread::Builder::new()
                .name("dialtone-media-bridge".into())
                .spawn(move || {
                    rt.block_on(media_bridge::run(
                        relay_h,
                        media_events,
                        media_rx,
                        core_tx,
                        cdr_tx,
                    ))
                })
                .map_err(|e| RuntimeError::Media(e.to_string()))?;
        }
        let tcp_settings = TcpSettings {
            max_message: cfg.sip.tcp_max_message_bytes as usize,
            idle_timeout: cfg.sip.tcp_idle_timeout(),
        };
        // The core runs on a thread of its own with a single-threaded runtime: the UDP socket,
        // the engine and its timers share one reactor, so a datagram costs no cross-thread wake.
        let self_tx = handle.sender();
        let io_runtime = tokio::runtime::Handle::current();
        let (done_tx, core_done) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name("dialtone-core".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let udp = match tokio::net::UdpSocket::from_std(udp) {
                        Ok(u) => u,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let core = Core {
                        pbx,
                        udp: Arc::new(udp),
                        rx,
                        self_tx,
                        persist: op_tx,
                        events,
                        tcp: tcp_settings,
                        io_runtime,
                        media: media_tx,
                    };
                    core.run().await;
                });
                let _ = done_tx.send(());
            })
            .map_err(|source| RuntimeError::BindUdp {
                addr: sip_bind,
                source,
            })?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(RuntimeError::BindUdp {
                    addr: sip_bind,
                    source,
                });
            }
            Err(_) => {
                return Err(RuntimeError::BindUdp {
                    addr: sip_bind,
                    source: std::io::Error::other("core thread failed to start"),
                });
            }
        }
        if let Some(l) = tcp_listener {
            tokio::spawn(sip_io::accept_loop(l, handle.sender(), tcp_settings));
        }

        // pjsip.conf reloads and NAT settings (pjsip transports over config.yml's).
        let reloader = Arc::new(pjsip_reload::PjsipReloader::new(
            store.clone(),
            handle.clone(),
            pjsip_file,
            pjsip_reload::Nat {
                external_ip: cfg.server.external_ip,
                external_media_ip: None,
                local_nets: cfg.server.local_net.clone(),
            },
        ));
        if let Err(e) = reloader.apply_nat().await {
            warn!(error = %e, "NAT settings from the store not applied");
        }

        // Directory changes made by other processes (the `dialtone extension` CLI).
        let watcher_task = tokio::spawn(backend::watch_directory(
            store.clone(),
            handle.clone(),
            directory_version,
            reloader.clone(),
        ));

        // The event fan-out (off the core) feeding AMI and the RayanPBX events API.
        let feed = api::events::EventFeed::new();
        let events_hub =
            ami_io::EventHub::start(&handle, &store, Some(feed.clone()), cfg.ami.timestampevents)
                .await;

        // REST API.
        let (api_addr, api_stop, api_task) = {
            let addr = SocketAddr::new(cfg.api.host, cfg.api.port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RuntimeError::BindApi { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| RuntimeError::BindApi { addr, source })?;
            let backend = Arc::new(backend::Backend::new(
                store.clone(),
                handle.clone(),
                epoch.1,
            ));
            let mut router = api::router_with_events(backend, backend::api_config(cfg), feed);
            if cfg.api.enable_cors {
                router = router.layer(api::cors_layer(&cfg.api.cors_allowed_origins));
            }
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let stop = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = api::serve(listener, router, stop).await {
                    warn!(error = %e, "REST API server stopped");
                }
            });
            (Some(bound), Some(stop_tx), Some(task))
        };

        // Asterisk Manager Interface.
        let ami = if cfg.ami.enabled {
            let addr = cfg.ami_addr();
            Some(
                ami_io::start(
                    cfg,
                    &events_hub,
                    handle.clone(),
                    store.clone(),
                    epoch.1,
                    udp_addr,
                    tcp_addr,
                    reloader.clone(),
                )
                .await
                .map_err(|source| RuntimeError::BindAmi { addr, source })?,
            )
        } else {
            None
        };
        let ami_addr = ami.as_ref().map(|a| a.addr());

        // The compat listener: RayanPBX + ISPBX v1 APIs (port 8000 by default).
        let (compat_addr, compat_stop, compat_task) = if cfg.compat_api.enabled {
            let addr = SocketAddr::new(cfg.compat_api.host, cfg.compat_api.port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RuntimeError::BindCompatApi { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| RuntimeError::BindCompatApi { addr, source })?;
            let api_backend = Arc::new(backend::Backend::new(
                store.clone(),
                handle.clone(),
                epoch.1,
            ));
            let console = ami_io::console(
                cfg,
                handle.clone(),
                store.clone(),
                epoch.1,
                udp_addr,
                tcp_addr,
                &events_hub,
                reloader.clone(),
            );
            let compat = Arc::new(compat::Compat {
                store: store.clone(),
                ami: console,
                reloader: reloader.clone(),
            });
            let router = api::compat::router(
                api_backend,
                compat,
                api::CompatConfig {
                    api: backend::api_config(cfg),
                    ispbx_public: cfg.compat_api.ispbx_public,
                },
            );
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let stop = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = api::serve(listener, router, stop).await {
                    warn!(error = %e, "compat API server stopped");
                }
            });
            (Some(bound), Some(stop_tx), Some(task))
        } else {
            (None, None, None)
        };

        info!(%udp_addr, ?tcp_addr, ?api_addr, ?ami_addr, ?compat_addr, realm = %cfg.sip.realm, "listening");
        Ok(Server {
            udp_addr,
            tcp_addr,
            api_addr,
            handle,
            core_done,
            writer_task,
            api_stop,
            api_task,
            compat_addr,
            compat_stop,
            compat_task,
            reloader,
            watcher_task,
            store,
            relay,
            cdr_task,
            ami,
            events_hub,
        })
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Where the compat API (RayanPBX + ISPBX) listens (when `compat_api.enabled`).
    pub fn compat_addr(&self) -> Option<SocketAddr> {
        self.compat_addr
    }

    /// `pjsip reload`: re-read `pjsip.config_file` (when set) and apply the difference.
    pub async fn pjsip_reload(
        &self,
    ) -> Result<pjsip_reload::ReloadReport, pjsip_reload::ReloadError> {
        self.reloader.reload().await
    }

    pub fn handle(&self) -> CoreHandle {
        self.handle.clone()
    }

    /// Where the AMI listens (when `ami.enabled`).
    pub fn ami_addr(&self) -> Option<SocketAddr> {
        self.ami.as_ref().map(|a| a.addr())
    }

    /// The AMI event publisher (the call engine's channel events go through it).
    pub fn ami_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Sender<Arc<crate::ami::session::WireBatch>>> {
        self.ami.as_ref().map(|a| a.publisher())
    }

    /// Stop accepting work, let the core finish what it has, flush the store, stop.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        if let Some(stop) = self.api_stop {
            let _ = stop.send(());
        }
        if let Some(t) = self.api_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(stop) = self.compat_stop {
            let _ = stop.send(());
        }
        if let Some(t) = self.compat_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.watcher_task.abort();
        self.events_hub.shutdown();
        if let Some(ami) = self.ami {
            ami.shutdown();
        }
        let _ = self.handle.sender().send(CoreMsg::Shutdown).await;
        let _ = self.core_done.await;
        // The core dropped its persistence sender: the writer drains and exits.
        drop(self.handle);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.writer_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.cdr_task).await;
        self.relay.shutdown();
        self.store.close().await;
        Ok(())
    }
}
