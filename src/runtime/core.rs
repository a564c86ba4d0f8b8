//! The core task: the single owner of the [`Pbx`] engine. It reads the UDP socket itself
//! (no hand-off per datagram), takes framed TCP messages and commands from a channel, and
//! drives the engine's timers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, warn};

use super::media_bridge::BridgeMsg;
use super::sip_io::{self, ConnWriter, TcpSettings, WriteError};
use crate::pbx::Pbx;
use crate::pbx::engine::{
    CallRecord, CallView, HungUpBy, OriginateError, OriginateOptions, PresenceEntry,
};
use crate::pbx::engine::{Command, ContactView, MediaCommand, Output, PbxEvent, PersistOp, Stats};
use crate::pbx::engine::{Leg, RedirectError};
use crate::pbx::peer::{ConnId, Peer, Proto};
use crate::pbx::presence::PresenceStatus;
use crate::store::{BindingOp, CdrRow};

/// The stored form of a finished call.
pub fn cdr_row(r: &CallRecord) -> CdrRow {
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (start, end) = (ms(r.start), ms(r.end));
    let answer = r.answer.map(ms);
    CdrRow {
        call_id: r.call_id.clone(),
        from_extension: r.from.clone(),
        to_extension: r.to.clone(),
        start_time: start,
        answer_time: answer,
        end_time: end,
        disposition: r.disposition.as_str().to_string(),
        duration: (end - start).max(0) / 1000,
        billsec: answer.map(|a| (end - a).max(0) / 1000).unwrap_or(0),
        recording_file: None,
        hangup_cause: r.hangup_cause,
        hung_up_by: match r.hung_up_by {
            HungUpBy::Caller => "caller",
            HungUpBy::Callee => "callee",
            HungUpBy::System => "system",
        }
        .to_string(),
        q850_cause: r.q850_cause,
        codec_a: r.codec_a.clone(),
        codec_b: r.codec_b.clone(),
        rtp_a: Default::default(),
        rtp_b: Default::default(),
    }
}

/// Messages into the core task (per message or per API call, never per packet).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum CoreMsg {
    /// A framed SIP message from a stream connection.
    Inbound {
        peer: Peer,
        bytes: Bytes,
    },
    ConnOpened {
        id: ConnId,
        addr: SocketAddr,
        writer: ConnWriter,
    },
    ConnClosed {
        id: ConnId,
    },
    /// An outgoing stream connection could not be opened: drop what waited for it.
    ConnectFailed {
        addr: SocketAddr,
    },
    Command(Command),
    Contacts {
        number: Option<String>,
        reply: oneshot::Sender<Vec<ContactView>>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    Calls {
        reply: oneshot::Sender<Vec<CallView>>,
    },
    /// Every extension's presence.
    PresenceList {
        reply: oneshot::Sender<Vec<PresenceEntry>>,
    },
    /// Set an extension's presence; replies false for an unknown extension.
    SetPresence {
        extension: String,
        status: PresenceStatus,
        note: Option<String>,
        reply: oneshot::Sender<bool>,
    },
    /// Hang up the call whose Call-ID (or engine id) is `key`; replies whether it existed.
    Hangup {
        key: String,
        /// Q.850 cause to clear with (AMI `Hangup` `Cause`).
        cause: Option<u8>,
        reply: oneshot::Sender<bool>,
    },
    /// Click-to-dial (`from` rings first, then `to`).
    Originate {
        from: String,
        to: String,
        opts: OriginateOptions,
        reply: oneshot::Sender<Result<(u64, String), OriginateError>>,
    },
    /// AMI `Redirect`: the channel of `leg` of engine call `call` dials extension `to`.
    /// `endpoint`: the channel's extension, checked against the legs (see
    /// `Pbx::redirect_channel`).
    Redirect {
        call: u64,
        leg: Leg,
        endpoint: Option<String>,
        to: String,
        context: Option<String>,
        reply: oneshot::Sender<Result<(), RedirectError>>,
    },
    /// Stop: answer nothing more, flush, exit.
    Shutdown,
}

/// A cheap, cloneable handle to talk to the core task.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<CoreMsg>,
    events: broadcast::Sender<PbxEvent>,
}

impl CoreHandle {
    pub async fn command(&self, cmd: Command) -> bool {
        self.tx.send(CoreMsg::Command(cmd)).await.is_ok()
    }

    pub async fn contacts(&self, number: Option<String>) -> Vec<ContactView> {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(CoreMsg::Contacts { number, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn stats(&self) -> Stats {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(CoreMsg::Stats { reply }).await.is_err() {
            return Stats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Calls in progress.
    pub async fn calls(&self) -> Vec<CallView> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(CoreMsg::Calls { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Hang up a call by Call-ID (or engine id); false when there is no such call.
    pub async fn hangup(&self, key: String) -> bool {
        self.hangup_with_cause(key, None).await
    }

    /// [`Self::hangup`] clearing with a Q.850 cause.
    pub async fn hangup_with_cause(&self, key: String, cause: Option<u8>) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(CoreMsg::Hangup { key, cause, reply })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Every extension's presence (empty when the core is gone).
    pub async fn presence(&self) -> Vec<PresenceEntry> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(CoreMsg::PresenceList { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Set presence; None when the core is gone, Some(false) for an unknown extension.
    pub async fn set_presence(
        &self,
        extension: String,
        status: PresenceStatus,
        note: Option<String>,
    ) -> Option<bool> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(CoreMsg::SetPresence {
                extension,
                status,
                note,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Click-to-dial; None when the core is gone.
    pub async fn originate(
        &self,
        from: String,
        to: String,
    ) -> Option<Result<(u64, String), OriginateError>> {
        self.originate_with(from, to, OriginateOptions::default())
            .await
    }

    /// Click-to-dial with a ring timeout and caller ID for the first phone.
    pub async fn originate_with(
        &self,
        from: String,
        to: String,
        opts: OriginateOptions,
    ) -> Option<Result<(u64, String), OriginateError>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(CoreMsg::Originate {
                from,
                to,
                opts,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// AMI `Redirect` (see [`CoreMsg::Redirect`]); None when the core is gone.
    pub async fn redirect(
        &self,
        call: u64,
        leg: Leg,
        endpoint: Option<String>,
        to: String,
        context: Option<String>,
    ) -> Option<Result<(), RedirectError>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(CoreMsg::Redirect {
                call,
                leg,
                endpoint,
                to,
                context,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Subscribe to engine events (a slow subscriber lags; it never blocks the core).
    pub fn subscribe(&self) -> broadcast::Receiver<PbxEvent> {
        self.events.subscribe()
    }

    pub(crate) fn sender(&self) -> mpsc::Sender<CoreMsg> {
        self.tx.clone()
    }
}

/// Everything the core task owns.
pub struct Core {
    pub pbx: Pbx,
    pub udp: Arc<UdpSocket>,
    pub rx: mpsc::Receiver<CoreMsg>,
    pub self_tx: mpsc::Sender<CoreMsg>,
    pub persist: mpsc::UnboundedSender<BindingOp>,
    pub events: broadcast::Sender<PbxEvent>,
    pub tcp: TcpSettings,
    /// The multi-threaded runtime, for tasks the core starts (outgoing TCP connections).
    pub io_runtime: tokio::runtime::Handle,
    /// Media commands and finished calls to the relay bridge task (which hands the calls'
    /// records, with their RTP statistics, to the CDR writer).
    pub media: mpsc::UnboundedSender<BridgeMsg>,
}

/// Create the channel pair for a core.
pub fn channel(
    events_capacity: usize,
) -> (
    CoreHandle,
    mpsc::Receiver<CoreMsg>,
    broadcast::Sender<PbxEvent>,
) {
    let (tx, rx) = mpsc::channel(8192);
    let (events, _) = broadcast::channel(events_capacity);
    (
        CoreHandle {
            tx,
            events: events.clone(),
        },
        rx,
        events,
    )
}

const UDP_BATCH: usize = 64;

impl Core {
    /// Run until a `Shutdown` message arrives or every handle is gone.
    pub async fn run(mut self) {
        let mut conns: HashMap<ConnId, ConnWriter> = HashMap::new();
        // Outgoing stream connections being set up: bytes wait here until connected.
        let mut pending_connect: HashMap<SocketAddr, Vec<Bytes>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        let mut outbox: Vec<(Peer, Bytes)> = Vec::with_capacity(UDP_BATCH);
        loop {
            // Drain everything the engine wants done.
            self.flush(&mut conns, &mut pending_connect, &mut outbox)
                .await;
            let deadline = self.pbx.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                r = self.udp.readable() => {
                    if let Err(e) = r {
                        error!(error = %e, "UDP socket failed");
                        return;
                    }
                    let now = Instant::now();
                    let pbx = &mut self.pbx;
                    if let Err(e) = sip_io::recv_batch(&self.udp, &mut buf, UDP_BATCH, |from, data| {
                        pbx.handle_datagram(now, Peer::udp(from), data);
                    }) {
                        warn!(error = %e, "UDP receive failed");
                    }
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return };
                    if !self.on_msg(msg, &mut conns, &mut pending_connect) {
                        self.flush(&mut conns, &mut pending_connect, &mut outbox).await;
                        return;
                    }
                    // Take whatever else is queued without waiting.
                    for _ in 0..256 {
                        match self.rx.try_recv() {
                            Ok(msg) => {
                                if !self.on_msg(msg, &mut conns, &mut pending_connect) {
                                    self.flush(&mut conns, &mut pending_connect, &mut outbox).await;
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep => {
                    self.pbx.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Returns false on shutdown.
    fn on_msg(
        &mut self,
        msg: CoreMsg,
        conns: &mut HashMap<ConnId, ConnWriter>,
        pending: &mut HashMap<SocketAddr, Vec<Bytes>>,
    ) -> bool {
        let now = Instant::now();
        match msg {
            CoreMsg::Inbound { peer, bytes } => self.pbx.handle_datagram(now, peer, &bytes),
            CoreMsg::ConnOpened { id, addr, writer } => {
                if let Some(queued) = pending.remove(&addr) {
                    for b in queued {
                        let _ = writer.send(b);
                    }
                }
                conns.insert(id, writer);
            }
            CoreMsg::ConnClosed { id } => {
                conns.remove(&id);
                self.pbx.handle_command(now, Command::ConnectionClosed(id));
            }
            CoreMsg::ConnectFailed { addr } => {
                if let Some(q) = pending.remove(&addr) {
                    debug!(%addr, dropped = q.len(), "messages dropped: TCP connect failed");
                }
            }
            CoreMsg::Command(cmd) => self.pbx.handle_command(now, cmd),
            CoreMsg::Contacts { number, reply } => {
                let _ = reply.send(self.pbx.contacts(now, number.as_deref()));
            }
            CoreMsg::Stats { reply } => {
                let _ = reply.send(self.pbx.stats());
            }
            CoreMsg::Calls { reply } => {
                let _ = reply.send(self.pbx.calls());
            }
            CoreMsg::PresenceList { reply } => {
                let _ = reply.send(self.pbx.presence_list(now));
            }
            CoreMsg::SetPresence {
                extension,
                status,
                note,
                reply,
            } => {
                let ok = self.pbx.set_presence(now, &extension, status, note).is_ok();
                let _ = reply.send(ok);
            }
            CoreMsg::Originate {
                from,
                to,
                opts,
                reply,
            } => {
                let _ = reply.send(self.pbx.originate_call_with(now, &from, &to, opts));
            }
            CoreMsg::Hangup { key, cause, reply } => {
                let found = self
                    .pbx
                    .calls()
                    .into_iter()
                    .find(|c| c.call_id == key || c.id.to_string() == key);
                if let Some(c) = &found {
                    let cmd = match cause {
                        Some(cause) => Command::HangupWithCause { call: c.id, cause },
                        None => Command::Hangup {
                            call: c.id,
                            status: None,
                        },
                    };
                    self.pbx.handle_command(now, cmd);
                }
                let _ = reply.send(found.is_some());
            }
            CoreMsg::Redirect {
                call,
                leg,
                endpoint,
                to,
                context,
                reply,
            } => {
                let r = self.pbx.redirect_channel(
                    now,
                    call,
                    leg,
                    endpoint.as_deref(),
                    &to,
                    context.as_deref(),
                );
                let _ = reply.send(r);
            }
            CoreMsg::Shutdown => return false,
        }
        true
    }

    async fn flush(
        &mut self,
        conns: &mut HashMap<ConnId, ConnWriter>,
        pending: &mut HashMap<SocketAddr, Vec<Bytes>>,
        outbox: &mut Vec<(Peer, Bytes)>,
    ) {
        while let Some(out) = self.pbx.poll_output() {
            match out {
                Output::Media(cmd) => {
                    // Per call, never per packet: the bridge task owns the relay sessions.
                    if let Err(e) = self.media.send(BridgeMsg::Media(cmd))
                        && let BridgeMsg::Media(MediaCommand::Open { call, .. }) = e.0
                    {
                        self.pbx
                            .handle_command(Instant::now(), Command::MediaFailed { call });
                    }
                }
                Output::Cdr(record) => {
                    tracing::info!(call_id = %record.call_id, from = %record.from, to = %record.to, disposition = record.disposition.as_str(), cause = record.hangup_cause, "call ended");
                    // Once per call, for the AMI `Cdr` event.
                    if self.events.receiver_count() > 0 {
                        let _ = self.events.send(PbxEvent::Cdr(record.clone()));
                    }
                    let _ = self.media.send(BridgeMsg::Cdr {
                        call: record.id,
                        row: Box::new(cdr_row(&record)),
                    });
                }
                Output::Transmit { to, bytes } => match to.proto {
                    Proto::Udp => outbox.push((to, bytes)),
                    Proto::Tcp => self.send_stream(to, bytes, conns, pending),
                },
                Output::Persist(op) => {
                    let op = match op {
                        PersistOp::Upsert(r) => BindingOp::Upsert(r),
                        PersistOp::Delete { aor, contact } => BindingOp::Delete { aor, contact },
                    };
                    let _ = self.persist.send(op);
                }
                Output::Event(ev) => {
                    let _ = self.events.send(ev);
                }
            }
            if outbox.len() >= UDP_BATCH {
                self.send_outbox(outbox).await;
            }
        }
        self.send_outbox(outbox).await;
    }

    async fn send_outbox(&self, outbox: &mut Vec<(Peer, Bytes)>) {
        for (to, bytes) in outbox.drain(..) {
            sip_io::send_udp(&self.udp, to.addr, &bytes).await;
        }
    }

    fn send_stream(
        &self,
        to: Peer,
        bytes: Bytes,
        conns: &mut HashMap<ConnId, ConnWriter>,
        pending: &mut HashMap<SocketAddr, Vec<Bytes>>,
    ) {
        if let Some(c) = to.conn
            && let Some(w) = conns.get(&c)
        {
            match w.send(bytes) {
                Ok(()) => return,
                Err((WriteError::Stalled, _)) => {
                    // The peer stopped reading: drop the connection (its tasks end when the
                    // writer handle goes), as Asterisk and Kamailio do with stuck TCP peers.
                    warn!(peer = %to, "TCP peer does not read; closing the connection");
                    if let Some(w) = conns.remove(&c) {
                        w.close();
                    }
                    return;
                }
                Err((WriteError::Closed, b)) => {
                    conns.remove(&c);
                    return self.reconnect(to.addr, b, pending);
                }
            }
        }
        self.reconnect(to.addr, bytes, pending);
    }

    /// The connection is gone: open a new one to the peer's address (RFC 3261 §18.2.2 for
    /// responses; for requests, the registered contact's source).
    fn reconnect(
        &self,
        addr: SocketAddr,
        bytes: Bytes,
        pending: &mut HashMap<SocketAddr, Vec<Bytes>>,
    ) {
        let first = !pending.contains_key(&addr);
        pending.entry(addr).or_default().push(bytes);
        if first {
            let core = self.self_tx.clone();
            let settings = self.tcp;
            self.io_runtime.spawn(async move {
                if let Err(e) = sip_io::connect(addr, core.clone(), settings).await {
                    debug!(%addr, error = %e, "TCP connect failed");
                    let _ = core.send(CoreMsg::ConnectFailed { addr }).await;
                }
            });
        }
    }
}
