//! Sans-IO transaction layer (RFC 3261 §17, with RFC 6026's Accepted states).
//!
//! The layer knows nothing about SIP message types: the glue parses messages, builds
//! [`TxKey`]s, and hands over already-serialised messages as [`Bytes`] for (re)transmission.
//! `D` is the destination/transport handle chosen by the runtime (e.g. `(SocketAddr, Transport)`);
//! the layer only clones it into [`Transmit`]s.
//!
//! Inputs: [`handle_request`](TransactionLayer::handle_request),
//! [`handle_response`](TransactionLayer::handle_response),
//! [`send_request`](TransactionLayer::send_request), [`respond`](TransactionLayer::respond),
//! [`set_ack_for_non_2xx`](TransactionLayer::set_ack_for_non_2xx),
//! [`report_transport_error`](TransactionLayer::report_transport_error),
//! [`handle_timeout`](TransactionLayer::handle_timeout). Outputs:
//! [`poll_transmit`](TransactionLayer::poll_transmit), [`poll_event`](TransactionLayer::poll_event),
//! [`poll_timeout`](TransactionLayer::poll_timeout). The runtime must drain both output queues
//! after every input (every terminated transaction yields a [`TxEvent::Terminated`]).
//!
//! What the glue/TU must do itself (the layer cannot build messages):
//! * send `100 Trying` for a new INVITE server transaction (§17.2.1) via `respond`;
//! * build the ACK for a non-2xx final response to an INVITE (§17.1.1.3) when `handle_response`
//!   returns [`ClientDisposition::PassToTuThenAck`], and hand it to `set_ack_for_non_2xx`, which
//!   transmits it at once and re-sends it on every retransmission of that final response. This
//!   must happen before the next `handle_timeout` (over reliable transports Timer D is 0 and the
//!   transaction ends at the next timeout, or as soon as the ACK is set);
//! * retransmit 2xx responses to INVITE until the ACK arrives (§13.3.1.4, a UA-core duty): the
//!   server transaction passes further 2xx handed to `respond` in the Accepted state to the
//!   transport, and re-sends the last 2xx when the INVITE is retransmitted;
//! * ACK 2xx responses (passed to the TU every time, also retransmissions, §13.2.2.4);
//! * give up on INVITE client transactions stuck in Proceeding (there is no Timer C here, see
//!   [`Timer`]) with [`terminate`](TransactionLayer::terminate).
//!
//! Provisional responses are all passed to the TU (§17.1.1.2, §17.1.2.2): the layer sees only a
//! status code and cannot tell a retransmitted 1xx from a new one; reliable provisionals (RFC 3262)
//! are deduplicated by RSeq in the TU anyway.
//!
//! Storage is a slab (a `TxId` is slot index + generation, so lookups by id do not hash), two
//! `HashMap<Arc<TxKey>, TxId>` (server/client; the key's strings are shared with the slab entry,
//! never cloned) and a binary heap of timer deadlines with lazy deletion (cancelling is O(1);
//! stale entries are dropped at the top or compacted once they outnumber live ones).

mod invite_client;
mod invite_server;
mod key;
mod non_invite_client;
mod non_invite_server;
mod timers;

#[cfg(test)]
mod test_support;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use key::{FALLBACK_PREFIX, MAGIC_COOKIE, TxKey, TxMethod};
pub use timers::{Timer, TimerConfig};

use timers::{Entry, TimerQueue, TimerSlot};

/// Handle of a transaction. Ids are reused only after 2^32 reuses of the same slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TxId(u64);

impl TxId {
    fn new(index: u32, generation: u32) -> TxId {
        TxId((u64::from(generation) << 32) | u64::from(index))
    }

    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The raw value, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The four transaction state machines of RFC 3261 §17.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxKind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

impl TxKind {
    pub fn is_server(self) -> bool {
        matches!(self, TxKind::InviteServer | TxKind::NonInviteServer)
    }

    pub fn is_invite(self) -> bool {
        matches!(self, TxKind::InviteClient | TxKind::InviteServer)
    }
}

/// Transaction states (RFC 3261 figures 5–8, RFC 6026 figures 5 and 7). Terminated
/// transactions are removed at once, so `Terminated` never appears.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxState {
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client and server: no response yet.
    Trying,
    /// A provisional response was received (client) or sent (server, INVITE server from start).
    Proceeding,
    /// A final response (non-2xx for INVITE) was received or sent.
    Completed,
    /// INVITE server: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// RFC 6026: a 2xx to INVITE was received (client) or sent (server).
    Accepted,
}

/// What to do with an incoming request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServerDisposition {
    /// A new server transaction was created; pass the request to the TU, which must answer it
    /// with [`TransactionLayer::respond`].
    New(TxId),
    /// A retransmission of the request of this transaction: absorbed. If a response was already
    /// sent, it has been queued again for the request's source.
    Retransmission(TxId),
    /// ACK for the non-2xx final response of this INVITE server transaction: absorbed (the
    /// transaction moved to Confirmed and started Timer I, or was already Confirmed).
    AckAbsorbed(TxId),
    /// An ACK not absorbed by a transaction: it matches none (the ACK for a 2xx has its own
    /// branch), or it matches an INVITE server transaction that has not sent a non-2xx final
    /// response (e.g. Accepted: RFC 6026 passes it on). The TU/dialog layer handles it.
    AckNoTx,
    /// A new CANCEL: its own non-INVITE server transaction `cancel` (the TU answers it), and the
    /// INVITE server transaction it cancels, if any (none → the TU answers 481, §9.2).
    CancelFor { cancel: TxId, invite: Option<TxId> },
}

/// What to do with an incoming response matched to a client transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientDisposition {
    /// Pass the response to the TU.
    PassToTu,
    /// Pass the response (the first non-2xx final response to an INVITE) to the TU, build the
    /// ACK (§17.1.1.3) and hand it to [`TransactionLayer::set_ack_for_non_2xx`].
    PassToTuThenAck,
    /// A retransmission (or a stray response in a state that ignores it): drop it. For a
    /// retransmitted non-2xx final response to INVITE the stored ACK has been queued again.
    Absorbed,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<D> {
    /// The transaction it belongs to (for [`TransactionLayer::report_transport_error`]).
    pub tx: TxId,
    pub dest: D,
    pub bytes: Bytes,
}

/// Notifications for the TU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxEvent {
    /// Timer B, F (client: the TU acts as if a 408 arrived) or H (server: the ACK never came)
    /// fired. A `Terminated` follows.
    Timeout(TxId),
    /// The runtime reported a transport failure (§17.1.4, §17.2.4). A `Terminated` follows.
    TransportError(TxId),
    /// The transaction reached Terminated and was removed.
    Terminated(TxId, TxKind),
}

/// Misuse of the layer by the TU/glue (these are programming errors, not network input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("no transaction {0:?} (unknown or terminated)")]
    UnknownTransaction(TxId),
    #[error("status code {0} is outside 100..=699")]
    InvalidStatus(u16),
    #[error("transaction {tx:?} is an {kind:?} transaction, which does not allow this")]
    WrongKind { tx: TxId, kind: TxKind },
    #[error("transaction {tx:?} in state {state:?} does not allow this")]
    InvalidState { tx: TxId, state: TxState },
    #[error("an ACK never creates a client transaction")]
    AckWithoutTransaction,
    #[error("a client transaction with this key already exists: {0:?}")]
    DuplicateKey(TxId),
}

/// The smallest retransmit interval we arm (guards against T1 = 0 looping in `handle_timeout`).
const MIN_RETRANSMIT: Duration = Duration::from_millis(1);

/// One transaction. Compact on purpose: the key is shared with the key map, the only payload is
/// one refcounted `Bytes`.
#[derive(Debug)]
struct Tx<D> {
    id: TxId,
    key: Arc<TxKey>,
    kind: TxKind,
    state: TxState,
    reliable: bool,
    /// Client: where the request goes. Server: where responses go (the request's source).
    dest: D,
    /// Client: the request while it may be retransmitted; for an INVITE in Completed, the ACK.
    /// Server: the most recent response.
    msg: Option<Bytes>,
    retransmit_at: Option<Instant>,
    retransmit_interval: Duration,
    timeout_at: Option<Instant>,
    timeout_timer: Timer,
}

impl<D> Tx<D> {
    fn deadline(&self, slot: TimerSlot) -> Option<Instant> {
        match slot {
            TimerSlot::Retransmit => self.retransmit_at,
            TimerSlot::Timeout => self.timeout_at,
        }
    }

    fn retransmit_timer(&self) -> Timer {
        match self.kind {
            TxKind::InviteClient => Timer::A,
            TxKind::NonInviteClient => Timer::E,
            // Non-INVITE server transactions never arm a retransmit timer.
            TxKind::InviteServer | TxKind::NonInviteServer => Timer::G,
        }
    }
}

/// Whether a state machine step leaves the transaction alive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Keep,
    Terminate,
}

/// Everything a state machine step may touch besides its own transaction.
struct Ctx<'a, D> {
    now: Instant,
    cfg: &'a TimerConfig,
    timers: &'a mut TimerQueue,
    transmits: &'a mut VecDeque<Transmit<D>>,
    events: &'a mut VecDeque<TxEvent>,
}

impl<D: Clone> Ctx<'_, D> {
    fn transmit(&mut self, tx: TxId, dest: &D, bytes: &Bytes) {
        self.transmits.push_back(Transmit {
            tx,
            dest: dest.clone(),
            bytes: bytes.clone(),
        });
    }

    /// (Re)send the stored message to the transaction's destination, if there is one.
    fn send_msg(&mut self, tx: &Tx<D>) {
        if let Some(bytes) = &tx.msg {
            self.transmit(tx.id, &tx.dest, bytes);
        }
    }

    fn arm_retransmit(&mut self, tx: &mut Tx<D>, interval: Duration) {
        let interval = interval.max(MIN_RETRANSMIT);
        tx.retransmit_interval = interval;
        self.timers.arm(
            &mut tx.retransmit_at,
            self.now + interval,
            tx.id,
            TimerSlot::Retransmit,
        );
    }

    fn arm_timeout(&mut self, tx: &mut Tx<D>, timer: Timer, after: Duration) {
        tx.timeout_timer = timer;
        self.timers.arm(
            &mut tx.timeout_at,
            self.now + after,
            tx.id,
            TimerSlot::Timeout,
        );
    }

    fn disarm_all(&mut self, tx: &mut Tx<D>) {
        self.timers.disarm(&mut tx.retransmit_at);
        self.timers.disarm(&mut tx.timeout_at);
    }

    fn event(&mut self, event: TxEvent) {
        self.events.push_back(event);
    }
}

#[derive(Debug)]
struct Slot<D> {
    generation: u32,
    tx: Option<Tx<D>>,
}

fn slot_get<D>(slots: &[Slot<D>], id: TxId) -> Option<&Tx<D>> {
    let slot = slots.get(id.index())?;
    if slot.generation != id.generation() {
        return None;
    }
    slot.tx.as_ref()
}

fn slot_get_mut<D>(slots: &mut [Slot<D>], id: TxId) -> Option<&mut Tx<D>> {
    let slot = slots.get_mut(id.index())?;
    if slot.generation != id.generation() {
        return None;
    }
    slot.tx.as_mut()
}

fn entry_live<D>(slots: &[Slot<D>], e: &Entry) -> bool {
    slot_get(slots, e.id).is_some_and(|tx| tx.deadline(e.slot) == Some(e.at))
}

/// The transaction layer: all client and server transactions of one endpoint.
#[derive(Debug)]
pub struct TransactionLayer<D: Clone> {
    cfg: TimerConfig,
    slots: Vec<Slot<D>>,
    free: Vec<u32>,
    live: usize,
    server_keys: HashMap<Arc<TxKey>, TxId>,
    client_keys: HashMap<Arc<TxKey>, TxId>,
    timers: TimerQueue,
    transmits: VecDeque<Transmit<D>>,
    events: VecDeque<TxEvent>,
}

impl<D: Clone> TransactionLayer<D> {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            server_keys: HashMap::new(),
            client_keys: HashMap::new(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.cfg
    }

    /// A request arrived over a `reliable` (TCP/TLS/WS) or unreliable (UDP) transport from
    /// `source` (where responses go). `key` is built with [`TxKey::server`] (or
    /// [`TxKey::server_or_fallback`]) using the request's own method, ACK included.
    pub fn handle_request(
        &mut self,
        now: Instant,
        mut key: TxKey,
        reliable: bool,
        source: D,
    ) -> ServerDisposition {
        // An ACK matches the INVITE transaction (§17.2.3); look it up under INVITE.
        let is_ack = key.method == TxMethod::Ack;
        if is_ack {
            key.method = TxMethod::Invite;
        }
        if let Some(&id) = self.server_keys.get(&key) {
            let disposition = self.on_matched_request(now, id, is_ack, source);
            self.maintain();
            return disposition;
        }
        if is_ack {
            return ServerDisposition::AckNoTx;
        }
        let cancelled = if key.method == TxMethod::Cancel {
            key.method = TxMethod::Invite;
            let invite = self.server_keys.get(&key).copied();
            key.method = TxMethod::Cancel;
            Some(invite)
        } else {
            None
        };
        let (kind, state) = if key.method == TxMethod::Invite {
            (TxKind::InviteServer, TxState::Proceeding)
        } else {
            (TxKind::NonInviteServer, TxState::Trying)
        };
        let key = Arc::new(key);
        let id = self.insert(key.clone(), kind, state, reliable, source, None);
        self.server_keys.insert(key, id);
        match cancelled {
            Some(invite) => ServerDisposition::CancelFor { cancel: id, invite },
            None => ServerDisposition::New(id),
        }
    }

    fn on_matched_request(
        &mut self,
        now: Instant,
        id: TxId,
        is_ack: bool,
        source: D,
    ) -> ServerDisposition {
        let Self {
            cfg,
            slots,
            timers,
            transmits,
            events,
            ..
        } = self;
        let Some(tx) = slot_get_mut(slots, id) else {
            return ServerDisposition::AckNoTx;
        };
        let mut cx = Ctx {
            now,
            cfg,
            timers,
            transmits,
            events,
        };
        let (disposition, step) = match (tx.kind, is_ack) {
            (TxKind::InviteServer, true) => invite_server::on_ack(tx, &mut cx),
            (TxKind::InviteServer, false) => invite_server::on_retransmission(tx, &source, &mut cx),
            (_, true) => (ServerDisposition::AckNoTx, Step::Keep),
            (_, false) => non_invite_server::on_retransmission(tx, &source, &mut cx),
        };
        if step == Step::Terminate {
            self.remove(id);
        }
        disposition
    }

    /// The TU sends a response with this `status` (the serialised message is `bytes`) on a server
    /// transaction.
    pub fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TxError> {
        if !(100..=699).contains(&status) {
            return Err(TxError::InvalidStatus(status));
        }
        let Self {
            cfg,
            slots,
            timers,
            transmits,
            events,
            ..
        } = self;
        let t = slot_get_mut(slots, tx).ok_or(TxError::UnknownTransaction(tx))?;
        let mut cx = Ctx {
            now,
            cfg,
            timers,
            transmits,
            events,
        };
        let step = match t.kind {
            TxKind::InviteServer => invite_server::respond(t, status, bytes, &mut cx)?,
            TxKind::NonInviteServer => non_invite_server::respond(t, status, bytes, &mut cx)?,
            kind @ (TxKind::InviteClient | TxKind::NonInviteClient) => {
                return Err(TxError::WrongKind { tx, kind });
            }
        };
        if step == Step::Terminate {
            self.remove(tx);
        }
        self.maintain();
        Ok(())
    }

    /// Start a client transaction: queues the first transmit of `bytes` to `dest` and arms Timers
    /// A+B (INVITE) or E+F (others); A and E only over unreliable transports. `key` is built with
    /// [`TxKey::client`] from the request's top-Via branch and method.
    pub fn send_request(
        &mut self,
        now: Instant,
        key: TxKey,
        dest: D,
        reliable: bool,
        bytes: Bytes,
    ) -> Result<TxId, TxError> {
        let kind = match key.method {
            TxMethod::Ack => return Err(TxError::AckWithoutTransaction),
            TxMethod::Invite => TxKind::InviteClient,
            _ => TxKind::NonInviteClient,
        };
        if let Some(&existing) = self.client_keys.get(&key) {
            return Err(TxError::DuplicateKey(existing));
        }
        let state = match kind {
            TxKind::InviteClient => TxState::Calling,
            _ => TxState::Trying,
        };
        let key = Arc::new(key);
        let id = self.insert(key.clone(), kind, state, reliable, dest, Some(bytes));
        self.client_keys.insert(key, id);
        let Self {
            cfg,
            slots,
            timers,
            transmits,
            events,
            ..
        } = self;
        if let Some(tx) = slot_get_mut(slots, id) {
            let mut cx = Ctx {
                now,
                cfg,
                timers,
                transmits,
                events,
            };
            match kind {
                TxKind::InviteClient => invite_client::start(tx, &mut cx),
                _ => non_invite_client::start(tx, &mut cx),
            }
        }
        self.maintain();
        Ok(id)
    }

    /// A response arrived. `key` is built with [`TxKey::client`] from its top-Via branch and
    /// CSeq method. `None`: no client transaction matches (a stray response, e.g. a 2xx after
    /// Timer M; the TU may look at it), or the status is outside 100..=699 (drop it).
    pub fn handle_response(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
    ) -> Option<(TxId, ClientDisposition)> {
        if !(100..=699).contains(&status) {
            return None;
        }
        let id = *self.client_keys.get(key)?;
        let Self {
            cfg,
            slots,
            timers,
            transmits,
            events,
            ..
        } = self;
        let tx = slot_get_mut(slots, id)?;
        let mut cx = Ctx {
            now,
            cfg,
            timers,
            transmits,
            events,
        };
        let (disposition, step) = match tx.kind {
            TxKind::InviteClient => invite_client::on_response(tx, status, &mut cx),
            _ => non_invite_client::on_response(tx, status, &mut cx),
        };
        if step == Step::Terminate {
            self.remove(id);
        }
        self.maintain();
        Some((id, disposition))
    }

    /// Give the INVITE client transaction `tx` (in Completed, after
    /// [`ClientDisposition::PassToTuThenAck`]) the ACK for its non-2xx final response: it is
    /// transmitted now and again for every retransmission of the final response until Timer D.
    /// Over a reliable transport the transaction terminates right after queuing it.
    pub fn set_ack_for_non_2xx(
        &mut self,
        now: Instant,
        tx: TxId,
        ack: Bytes,
    ) -> Result<(), TxError> {
        let Self {
            cfg,
            slots,
            timers,
            transmits,
            events,
            ..
        } = self;
        let t = slot_get_mut(slots, tx).ok_or(TxError::UnknownTransaction(tx))?;
        if t.kind != TxKind::InviteClient {
            return Err(TxError::WrongKind { tx, kind: t.kind });
        }
        let mut cx = Ctx {
            now,
            cfg,
            timers,
            transmits,
            events,
        };
        if invite_client::set_ack(t, ack, &mut cx)? == Step::Terminate {
            self.remove(tx);
        }
        self.maintain();
        Ok(())
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.pop_due(now) {
            let Self {
                cfg,
                slots,
                timers,
                transmits,
                events,
                ..
            } = self;
            let Some(tx) = slot_get_mut(slots, entry.id) else {
                continue;
            };
            if tx.deadline(entry.slot) != Some(entry.at) {
                continue;
            }
            let mut cx = Ctx {
                now,
                cfg,
                timers,
                transmits,
                events,
            };
            let step = match entry.slot {
                TimerSlot::Retransmit => {
                    cx.timers.disarm(&mut tx.retransmit_at);
                    match tx.kind {
                        TxKind::InviteClient => invite_client::on_timer_a(tx, &mut cx),
                        TxKind::NonInviteClient => non_invite_client::on_timer_e(tx, &mut cx),
                        TxKind::InviteServer => invite_server::on_timer_g(tx, &mut cx),
                        TxKind::NonInviteServer => Step::Keep,
                    }
                }
                TimerSlot::Timeout => {
                    cx.timers.disarm(&mut tx.timeout_at);
                    timeout_fired(tx, &mut cx)
                }
            };
            if step == Step::Terminate {
                self.remove(entry.id);
            }
        }
        self.maintain();
    }

    /// The runtime could not send a message of `tx` (§17.1.4, §17.2.4): the TU is told with
    /// [`TxEvent::TransportError`] and the transaction terminates. Returns `false` if `tx` is
    /// already gone.
    pub fn report_transport_error(&mut self, tx: TxId) -> bool {
        if slot_get(&self.slots, tx).is_none() {
            return false;
        }
        self.events.push_back(TxEvent::TransportError(tx));
        self.remove(tx);
        self.maintain();
        true
    }

    /// The TU abandons `tx` (e.g. an INVITE client transaction stuck in Proceeding: the role of
    /// the proxy-only Timer C). Returns `false` if `tx` is already gone.
    pub fn terminate(&mut self, tx: TxId) -> bool {
        if slot_get(&self.slots, tx).is_none() {
            return false;
        }
        self.remove(tx);
        self.maintain();
        true
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit<D>> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The earliest pending timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|e| e.at)
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn state(&self, tx: TxId) -> Option<TxState> {
        slot_get(&self.slots, tx).map(|t| t.state)
    }

    pub fn kind(&self, tx: TxId) -> Option<TxKind> {
        slot_get(&self.slots, tx).map(|t| t.kind)
    }

    /// The key of a live transaction.
    pub fn key(&self, tx: TxId) -> Option<&TxKey> {
        slot_get(&self.slots, tx).map(|t| &*t.key)
    }

    /// Timers currently armed on `tx` (at most two), with their deadlines.
    pub fn armed_timers(&self, tx: TxId) -> impl Iterator<Item = (Timer, Instant)> + use<D> {
        let pair = slot_get(&self.slots, tx).map(|t| {
            [
                t.retransmit_at.map(|at| (t.retransmit_timer(), at)),
                t.timeout_at.map(|at| (t.timeout_timer, at)),
            ]
        });
        pair.into_iter().flatten().flatten()
    }

    /// The server transaction a request with this key belongs to (an ACK key finds the INVITE).
    pub fn server_tx_for(&self, key: &TxKey) -> Option<TxId> {
        if key.method == TxMethod::Ack {
            return self.invite_tx_for(key);
        }
        self.server_keys.get(key).copied()
    }

    /// The INVITE server transaction that a CANCEL (or ACK) with this key refers to (§9.2).
    pub fn invite_tx_for(&self, key: &TxKey) -> Option<TxId> {
        let invite = TxKey {
            branch: key.branch.clone(),
            sent_by: key.sent_by.clone(),
            method: TxMethod::Invite,
        };
        self.server_keys.get(&invite).copied()
    }

    /// The client transaction a response with this key belongs to.
    pub fn client_tx_for(&self, key: &TxKey) -> Option<TxId> {
        self.client_keys.get(key).copied()
    }

    fn insert(
        &mut self,
        key: Arc<TxKey>,
        kind: TxKind,
        state: TxState,
        reliable: bool,
        dest: D,
        msg: Option<Bytes>,
    ) -> TxId {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len())
                    .expect("more than 2^32 concurrent transactions");
                self.slots.push(Slot {
                    generation: 0,
                    tx: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        let id = TxId::new(index, slot.generation);
        slot.tx = Some(Tx {
            id,
            key,
            kind,
            state,
            reliable,
            dest,
            msg,
            retransmit_at: None,
            retransmit_interval: Duration::ZERO,
            timeout_at: None,
            timeout_timer: Timer::B,
        });
        self.live += 1;
        id
    }

    /// Terminated: drop the transaction, its key and its timers, and tell the TU.
    fn remove(&mut self, id: TxId) {
        let Some(slot) = self.slots.get_mut(id.index()) else {
            return;
        };
        if slot.generation != id.generation() {
            return;
        }
        let Some(mut tx) = slot.tx.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index() as u32);
        self.live -= 1;
        self.timers.disarm(&mut tx.retransmit_at);
        self.timers.disarm(&mut tx.timeout_at);
        let keys = if tx.kind.is_server() {
            &mut self.server_keys
        } else {
            &mut self.client_keys
        };
        keys.remove(&*tx.key);
        self.events.push_back(TxEvent::Terminated(id, tx.kind));
    }

    fn maintain(&mut self) {
        let slots = &self.slots;
        self.timers.maintain(|e| entry_live(slots, e));
    }

    #[cfg(test)]
    fn timer_heap_len(&self) -> usize {
        self.timers.heap_len()
    }
}

/// A timeout-slot timer fired (the slot is already cleared).
fn timeout_fired<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) -> Step {
    match tx.timeout_timer {
        // B, F: no final response; H: no ACK. The TU must learn about it.
        Timer::B | Timer::F | Timer::H => {
            cx.event(TxEvent::Timeout(tx.id));
            Step::Terminate
        }
        // D, I, J, K, L, M: the wait for retransmissions is over.
        Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => Step::Terminate,
        // Retransmit letters never sit in the timeout slot.
        Timer::A | Timer::E | Timer::G => Step::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn tx_ids_are_reused_with_a_new_generation() {
        let mut h = Harness::new();
        let a = h.new_server("z9hG4bKa", TxMethod::Options);
        h.respond(a, 200);
        assert!(h.layer.terminate(a));
        assert!(!h.layer.terminate(a));
        let b = h.new_server("z9hG4bKb", TxMethod::Options);
        assert_eq!(a.index(), b.index());
        assert_ne!(a, b);
        assert_eq!(h.layer.state(a), None);
        assert_eq!(h.layer.state(b), Some(TxState::Trying));
        assert_eq!(
            h.layer.respond(h.t0, a, 200, Bytes::new()),
            Err(TxError::UnknownTransaction(a))
        );
    }

    #[test]
    fn reliable_transport_arms_no_retransmit_timers_and_zero_wait_timers() {
        let mut h = Harness::new();
        // Client INVITE over TCP: only Timer B.
        let inv = h
            .layer
            .send_request(
                h.t0,
                ckey("z9hG4bKi", TxMethod::Invite),
                1,
                true,
                b("INVITE"),
            )
            .unwrap();
        assert_eq!(timers_of(&h.layer, inv), vec![Timer::B]);
        // Client non-INVITE over TCP: only Timer F.
        let reg = h
            .layer
            .send_request(
                h.t0,
                ckey("z9hG4bKr", TxMethod::Register),
                1,
                true,
                b("REG"),
            )
            .unwrap();
        assert_eq!(timers_of(&h.layer, reg), vec![Timer::F]);
        // No retransmission over 40 s: only the initial sends.
        h.run_until(secs(40));
        assert_eq!(h.sent_bytes(), vec![b("INVITE"), b("REG")]);
        assert_eq!(h.timeouts(), vec![inv, reg]);
        assert!(h.layer.is_empty());

        // Server INVITE over TCP, non-2xx final: Timer H only (no G), ACK → I = 0.
        let mut h = Harness::new();
        let k = skey("z9hG4bKs", TxMethod::Invite);
        let ServerDisposition::New(s) = h.layer.handle_request(h.t0, k.clone(), true, 7) else {
            panic!()
        };
        h.layer.respond(h.t0, s, 486, b("486")).unwrap();
        assert_eq!(timers_of(&h.layer, s), vec![Timer::H]);
        let ack = skey("z9hG4bKs", TxMethod::Ack);
        assert_eq!(
            h.layer.handle_request(h.t0, ack, true, 7),
            ServerDisposition::AckAbsorbed(s)
        );
        assert_eq!(h.layer.state(s), None, "Timer I is 0 over TCP");
        // Server non-INVITE over TCP: J = 0, gone right after the final response.
        let n = h.new_server_reliable("z9hG4bKn", TxMethod::Register);
        h.layer.respond(h.t0, n, 200, b("200")).unwrap();
        assert_eq!(h.layer.state(n), None, "Timer J is 0 over TCP");
        // Client non-INVITE over TCP: K = 0.
        let c = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKc", TxMethod::Bye), 1, true, b("BYE"))
            .unwrap();
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKc", TxMethod::Bye), 200),
            Some((c, ClientDisposition::PassToTu))
        );
        assert_eq!(h.layer.state(c), None, "Timer K is 0 over TCP");
        // Client INVITE over TCP: D = 0 (ends once the ACK is set, or at the next timeout).
        let i = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKd", TxMethod::Invite), 1, true, b("INV"))
            .unwrap();
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKd", TxMethod::Invite), 404),
            Some((i, ClientDisposition::PassToTuThenAck))
        );
        assert_eq!(timers_of(&h.layer, i), vec![Timer::D]);
        assert_eq!(h.layer.poll_timeout(), Some(h.t0));
        h.layer.set_ack_for_non_2xx(h.t0, i, b("ACK")).unwrap();
        assert_eq!(h.layer.state(i), None, "Timer D is 0 over TCP");
        let i2 = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKe", TxMethod::Invite), 1, true, b("INV"))
            .unwrap();
        h.layer
            .handle_response(h.t0, &ckey("z9hG4bKe", TxMethod::Invite), 500)
            .unwrap();
        h.layer.handle_timeout(h.t0);
        assert_eq!(h.layer.state(i2), None);
        assert!(h.layer.is_empty());
        assert_eq!(h.layer.poll_timeout(), None);
    }

    #[test]
    fn termination_removes_and_reports() {
        let mut h = Harness::new();
        let a = h.new_server("z9hG4bKa", TxMethod::Bye);
        let c = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKc", TxMethod::Invite), 1, false, b("INV"))
            .unwrap();
        assert_eq!(h.layer.len(), 2);
        h.respond(a, 200);
        h.run_until(secs(32));
        h.drain();
        assert_eq!(h.layer.len(), 0);
        assert!(h.layer.is_empty());
        assert!(
            h.events
                .contains(&TxEvent::Terminated(a, TxKind::NonInviteServer))
        );
        assert!(
            h.events
                .contains(&TxEvent::Terminated(c, TxKind::InviteClient))
        );
        // The keys are gone too: the same requests now create new transactions.
        assert!(matches!(
            h.layer
                .handle_request(h.at(secs(33)), skey("z9hG4bKa", TxMethod::Bye), false, 9),
            ServerDisposition::New(_)
        ));
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKc", TxMethod::Invite), 200),
            None
        );
        assert!(
            h.layer
                .client_tx_for(&ckey("z9hG4bKc", TxMethod::Invite))
                .is_none()
        );
    }

    #[test]
    fn transport_error_terminates_with_an_event() {
        let mut h = Harness::new();
        let c = h
            .layer
            .send_request(
                h.t0,
                ckey("z9hG4bKc", TxMethod::Options),
                1,
                false,
                b("OPT"),
            )
            .unwrap();
        let t = h.layer.poll_transmit().unwrap();
        assert_eq!(t.tx, c);
        assert!(h.layer.report_transport_error(t.tx));
        assert!(!h.layer.report_transport_error(t.tx));
        h.drain();
        assert_eq!(
            h.events,
            vec![
                TxEvent::TransportError(c),
                TxEvent::Terminated(c, TxKind::NonInviteClient)
            ]
        );
        assert!(h.layer.is_empty());
        assert_eq!(h.layer.poll_timeout(), None, "its timers are gone");
    }

    #[test]
    fn misuse_is_reported() {
        let mut h = Harness::new();
        let s = h.new_server("z9hG4bKs", TxMethod::Options);
        let c = h
            .layer
            .send_request(
                h.t0,
                ckey("z9hG4bKc", TxMethod::Options),
                1,
                false,
                b("OPT"),
            )
            .unwrap();
        assert_eq!(
            h.layer.respond(h.t0, s, 99, b("x")),
            Err(TxError::InvalidStatus(99))
        );
        assert_eq!(
            h.layer.respond(h.t0, s, 700, b("x")),
            Err(TxError::InvalidStatus(700))
        );
        assert_eq!(
            h.layer.respond(h.t0, c, 200, b("x")),
            Err(TxError::WrongKind {
                tx: c,
                kind: TxKind::NonInviteClient
            })
        );
        assert_eq!(
            h.layer.set_ack_for_non_2xx(h.t0, s, b("ACK")),
            Err(TxError::WrongKind {
                tx: s,
                kind: TxKind::NonInviteServer
            })
        );
        assert_eq!(
            h.layer
                .send_request(h.t0, ckey("z9hG4bKc", TxMethod::Options), 1, false, b("x")),
            Err(TxError::DuplicateKey(c))
        );
        assert_eq!(
            h.layer
                .send_request(h.t0, ckey("z9hG4bKa", TxMethod::Ack), 1, false, b("ACK")),
            Err(TxError::AckWithoutTransaction)
        );
        // Out-of-range statuses in responses are dropped, not matched.
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKc", TxMethod::Options), 800),
            None
        );
        assert_eq!(h.layer.state(c), Some(TxState::Trying));
        // A response for a key we never used.
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKzz", TxMethod::Options), 200),
            None
        );
    }

    #[test]
    fn zero_t1_does_not_loop_forever() {
        let mut h = Harness::with(TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        });
        let c = h
            .layer
            .send_request(
                h.t0,
                ckey("z9hG4bKc", TxMethod::Options),
                1,
                false,
                b("OPT"),
            )
            .unwrap();
        h.layer.handle_timeout(h.t0);
        // Timer F = 0 fired; Timer E (clamped to 1 ms) did not loop.
        assert_eq!(h.layer.state(c), None);
    }

    /// Cancelled timers leave stale heap entries; they must not pile up.
    #[test]
    fn cancelled_timers_do_not_accumulate() {
        let mut h = Harness::new();
        for i in 0..20_000u32 {
            let key = ckey(&format!("z9hG4bK{i}"), TxMethod::Options);
            h.layer
                .send_request(h.t0, key.clone(), 1, false, b("OPT"))
                .unwrap();
            // The final response cancels E and F and arms K: two stale entries per transaction.
            h.layer.handle_response(h.t0, &key, 200).unwrap();
            assert!(h.layer.timer_heap_len() <= 2 * h.layer.timers.armed() + 1024);
        }
        assert_eq!(h.layer.len(), 20_000);
        assert_eq!(h.layer.timers.armed(), 20_000);
        h.layer.handle_timeout(h.at(secs(5)));
        assert!(h.layer.is_empty());
        assert_eq!(h.layer.timer_heap_len(), 0);
        assert_eq!(h.layer.poll_timeout(), None);
    }

    /// Registrar load: 16,000 REGISTER/s over UDP keep ~512k non-INVITE server transactions alive
    /// in Completed (Timer J = 32 s). Creation, lookup, response and expiry must stay cheap.
    #[test]
    fn many_non_invite_server_transactions_are_created_and_expired() {
        let n: u64 = if cfg!(debug_assertions) {
            100_000
        } else {
            500_000
        };
        let rate = 16_000u64;
        let mut h = Harness::new();
        let response = b("SIP/2.0 200 OK\r\n\r\n");
        let started = std::time::Instant::now();
        let mut peak = 0;
        let mut terminated = 0u64;
        for i in 0..n {
            let now = h.t0 + Duration::from_micros(i * 1_000_000 / rate);
            // The runtime calls handle_timeout whenever poll_timeout is due.
            if h.layer.poll_timeout().is_some_and(|t| t <= now) {
                h.layer.handle_timeout(now);
            }
            let key = TxKey::server(format!("z9hG4bK{i}"), "10.0.0.1:5060", TxMethod::Register);
            let ServerDisposition::New(tx) = h.layer.handle_request(now, key, false, 1) else {
                panic!("new key must create a transaction");
            };
            h.layer.respond(now, tx, 200, response.clone()).unwrap();
            while h.layer.poll_transmit().is_some() {}
            while let Some(ev) = h.layer.poll_event() {
                assert!(matches!(
                    ev,
                    TxEvent::Terminated(_, TxKind::NonInviteServer)
                ));
                terminated += 1;
            }
            peak = peak.max(h.layer.len());
        }
        // All alive at once as long as n/rate < 32 s.
        assert_eq!(peak as u64, n.min(rate * 32));
        assert!(h.layer.timer_heap_len() <= h.layer.len() + 1024);
        let end = h.t0 + Duration::from_micros(n * 1_000_000 / rate) + secs(32);
        h.layer.handle_timeout(end);
        while let Some(ev) = h.layer.poll_event() {
            assert!(matches!(
                ev,
                TxEvent::Terminated(_, TxKind::NonInviteServer)
            ));
            terminated += 1;
        }
        assert_eq!(h.layer.len(), 0);
        assert_eq!(h.layer.server_keys.len(), 0);
        assert_eq!(h.layer.timer_heap_len(), 0);
        assert_eq!(terminated, n);
        // Generous bound: linear work is well under this even unoptimised; quadratic is not.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
    }
}
