//! Virtual-time harness for the transaction tests: a fixed start `Instant`, durations added to
//! it, timers fired in deadline order, every transmit and event stamped with its virtual time.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    ServerDisposition, Timer, TimerConfig, TransactionLayer, TxEvent, TxId, TxKey, TxMethod,
};

/// The destination type in tests: a peer number.
pub(super) type Dest = u32;

pub(super) const SENT_BY: &str = "pbx.example.com:5060";

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(super) fn ckey(branch: &str, method: TxMethod) -> TxKey {
    TxKey::client(branch, method)
}

pub(super) fn skey(branch: &str, method: TxMethod) -> TxKey {
    TxKey::server(branch, SENT_BY, method)
}

pub(super) fn timers_of(layer: &TransactionLayer<Dest>, tx: TxId) -> Vec<Timer> {
    layer.armed_timers(tx).map(|(t, _)| t).collect()
}

#[derive(Debug)]
pub(super) struct Sent {
    pub(super) at: Duration,
    pub(super) dest: Dest,
    pub(super) bytes: Bytes,
}

pub(super) struct Harness {
    pub(super) layer: TransactionLayer<Dest>,
    pub(super) t0: Instant,
    /// Virtual time elapsed since `t0`.
    pub(super) now: Duration,
    pub(super) sent: Vec<Sent>,
    pub(super) events: Vec<TxEvent>,
    pub(super) event_times: Vec<(Duration, TxEvent)>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with(TimerConfig::default())
    }

    pub(super) fn with(cfg: TimerConfig) -> Harness {
        Harness {
            layer: TransactionLayer::new(cfg),
            t0: Instant::now(),
            now: Duration::ZERO,
            sent: Vec::new(),
            events: Vec::new(),
            event_times: Vec::new(),
        }
    }

    pub(super) fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Collect queued transmits and events, stamped with the current virtual time.
    pub(super) fn drain(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.sent.push(Sent {
                at: self.now,
                dest: t.dest,
                bytes: t.bytes,
            });
        }
        while let Some(e) = self.layer.poll_event() {
            self.events.push(e);
            self.event_times.push((self.now, e));
        }
    }

    /// Advance virtual time to `t0 + end`, firing every timer due on the way at its deadline.
    pub(super) fn run_until(&mut self, end: Duration) {
        self.drain();
        let end_at = self.at(end);
        while let Some(due) = self.layer.poll_timeout().filter(|&d| d <= end_at) {
            self.now = due - self.t0;
            self.layer.handle_timeout(due);
            self.drain();
        }
        self.now = self.now.max(end);
    }

    fn new_server_on(&mut self, branch: &str, method: TxMethod, reliable: bool) -> TxId {
        let now = self.at(self.now);
        match self
            .layer
            .handle_request(now, skey(branch, method), reliable, 1)
        {
            ServerDisposition::New(tx) => tx,
            other => panic!("expected a new transaction, got {other:?}"),
        }
    }

    /// A new server transaction over UDP from peer 1, at the current virtual time.
    pub(super) fn new_server(&mut self, branch: &str, method: TxMethod) -> TxId {
        self.new_server_on(branch, method, false)
    }

    pub(super) fn new_server_reliable(&mut self, branch: &str, method: TxMethod) -> TxId {
        self.new_server_on(branch, method, true)
    }

    /// Respond at the current virtual time; the body is the status code.
    pub(super) fn respond(&mut self, tx: TxId, status: u16) {
        let now = self.at(self.now);
        self.layer
            .respond(now, tx, status, b(&status.to_string()))
            .unwrap();
        self.drain();
    }

    /// Advance to `at`, then respond with `body`.
    pub(super) fn respond_at(
        &mut self,
        at: Duration,
        tx: TxId,
        status: u16,
        body: &str,
    ) -> Result<(), super::TxError> {
        self.run_until(at);
        let r = self.layer.respond(self.at(at), tx, status, b(body));
        self.drain();
        r
    }

    pub(super) fn sent_at(&mut self) -> Vec<u64> {
        self.drain();
        self.sent.iter().map(|s| s.at.as_millis() as u64).collect()
    }

    pub(super) fn sent_bytes(&mut self) -> Vec<Bytes> {
        self.drain();
        self.sent.iter().map(|s| s.bytes.clone()).collect()
    }

    pub(super) fn timeouts(&mut self) -> Vec<TxId> {
        self.drain();
        self.events
            .iter()
            .filter_map(|e| match e {
                TxEvent::Timeout(tx) => Some(*tx),
                _ => None,
            })
            .collect()
    }

    fn times_of(&mut self, pick: impl Fn(&TxEvent) -> bool) -> Vec<u64> {
        self.drain();
        self.event_times
            .iter()
            .filter(|(_, e)| pick(e))
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }

    pub(super) fn timeout_times(&mut self) -> Vec<u64> {
        self.times_of(|e| matches!(e, TxEvent::Timeout(_)))
    }

    pub(super) fn terminated_times(&mut self) -> Vec<u64> {
        self.times_of(|e| matches!(e, TxEvent::Terminated(..)))
    }
}
