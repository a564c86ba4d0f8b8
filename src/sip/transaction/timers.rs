//! Timer values (RFC 3261 Table 4, RFC 6026 §8.11) and the timer queue.
//!
//! A transaction has at most two timers armed at once: a *retransmit* timer (A, E or G) and a
//! *timeout* timer (B, D, F, H, I, J, K, L or M). Each transaction stores the deadline of both
//! slots; the queue is a binary heap of `(deadline, TxId, slot)` with lazy deletion: an entry is
//! live only while the transaction still exists and its slot still holds that exact deadline.
//! Arming is O(log n), cancelling is O(1) (clear the slot); stale entries are dropped when they
//! reach the top, or all at once when they outnumber the live ones (amortised O(1) each).
//!
//! Timer C (> 3 min, proxy INVITE client transactions in Proceeding) is a proxy-only timer and is
//! not implemented: Dialtone is a B2BUA, whose TU owns ringing timeouts and may drop a stuck
//! client transaction with [`TransactionLayer::terminate`](super::TransactionLayer::terminate).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::TxId;

/// RFC 3261 timer base values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J, L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D over unreliable transports: "> 32 s". We use 32 s, or 64*T1 if that is larger,
    /// so that the client outlives the server's response retransmissions (Timer H = 64*T1).
    pub fn timer_d(&self) -> Duration {
        Duration::from_secs(32).max(self.t1_x64())
    }
}

/// Timer names from RFC 3261 Table 4 and RFC 6026.
///
/// Timer C (> 3 min, proxy INVITE client transactions in Proceeding) is proxy-only and not
/// implemented: the TU (a B2BUA) owns ringing timeouts and drops a stuck client transaction with
/// [`TransactionLayer::terminate`](super::TransactionLayer::terminate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (unreliable only): T1, doubling.
    A,
    /// INVITE transaction timeout: 64*T1.
    B,
    /// Wait time for response retransmits: 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit (unreliable only): T1 doubling up to T2; T2 in Proceeding.
    E,
    /// Non-INVITE transaction timeout: 64*T1.
    F,
    /// INVITE non-2xx final response retransmit (unreliable only): T1 doubling up to T2.
    G,
    /// Wait time for ACK receipt: 64*T1.
    H,
    /// Wait time for ACK retransmits: T4 unreliable, 0 reliable.
    I,
    /// Wait time for non-INVITE request retransmits: 64*T1 unreliable, 0 reliable.
    J,
    /// Wait time for non-INVITE response retransmits: T4 unreliable, 0 reliable.
    K,
    /// RFC 6026: INVITE server Accepted state, absorbs INVITE retransmissions: 64*T1.
    L,
    /// RFC 6026: INVITE client Accepted state, passes 2xx retransmissions/forks to the TU: 64*T1.
    M,
}

/// Which of a transaction's two timer slots an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerSlot {
    Retransmit,
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    pub(super) at: Instant,
    pub(super) id: TxId,
    pub(super) slot: TimerSlot,
}

/// Below this many entries the queue is never compacted.
const COMPACT_MIN: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Number of slots currently holding a deadline (live entries, duplicates aside).
    armed: usize,
}

impl TimerQueue {
    /// Arm the slot whose deadline is stored in `deadline`.
    pub(super) fn arm(
        &mut self,
        deadline: &mut Option<Instant>,
        at: Instant,
        id: TxId,
        slot: TimerSlot,
    ) {
        if deadline.is_none() {
            self.armed += 1;
        }
        *deadline = Some(at);
        self.heap.push(Reverse(Entry { at, id, slot }));
    }

    /// Cancel the slot; its heap entry becomes stale.
    pub(super) fn disarm(&mut self, deadline: &mut Option<Instant>) {
        if deadline.take().is_some() {
            self.armed -= 1;
        }
    }

    pub(super) fn peek(&self) -> Option<&Entry> {
        self.heap.peek().map(|Reverse(e)| e)
    }

    pub(super) fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Pop the earliest entry if it is due at `now` (live or stale: the caller checks).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.pop(),
            _ => None,
        }
    }

    /// Drop stale entries (those for which `live` is false) from the top, and compact the whole
    /// heap when stale entries outnumber live ones.
    pub(super) fn maintain(&mut self, mut live: impl FnMut(&Entry) -> bool) {
        while let Some(Reverse(e)) = self.heap.peek() {
            if live(e) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > COMPACT_MIN && self.heap.len() > 2 * self.armed {
            self.heap.retain(|Reverse(e)| live(e));
        }
    }

    #[cfg(test)]
    pub(super) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    #[cfg(test)]
    pub(super) fn armed(&self) -> usize {
        self.armed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_derived_values() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, Duration::from_millis(500));
        assert_eq!(c.t2, Duration::from_secs(4));
        assert_eq!(c.t4, Duration::from_secs(5));
        assert_eq!(c.t1_x64(), Duration::from_secs(32));
        assert_eq!(c.timer_d(), Duration::from_secs(32));
        let slow = TimerConfig {
            t1: Duration::from_secs(1),
            ..c
        };
        assert_eq!(slow.timer_d(), Duration::from_secs(64));
    }

    #[test]
    fn queue_orders_by_deadline_and_counts_armed_slots() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let (mut a, mut b) = (None, None);
        q.arm(
            &mut a,
            t0 + Duration::from_secs(2),
            TxId(1),
            TimerSlot::Timeout,
        );
        q.arm(
            &mut b,
            t0 + Duration::from_secs(1),
            TxId(2),
            TimerSlot::Retransmit,
        );
        assert_eq!(q.armed(), 2);
        // Re-arming a slot does not count twice.
        q.arm(
            &mut a,
            t0 + Duration::from_secs(3),
            TxId(1),
            TimerSlot::Timeout,
        );
        assert_eq!(q.armed(), 2);
        assert_eq!(q.heap_len(), 3);
        assert_eq!(q.pop_due(t0), None);
        let e = q.pop_due(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(e.id, TxId(2));
        q.disarm(&mut b);
        q.disarm(&mut b);
        assert_eq!(q.armed(), 1);
        // The entry for a@2s is stale now: maintain drops it from the top.
        q.maintain(|e| Some(e.at) == a);
        assert_eq!(q.peek().map(|e| e.at), a);
        assert_eq!(q.heap_len(), 1);
    }
}
