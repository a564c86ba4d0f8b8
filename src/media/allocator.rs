//! RTP/RTCP port pair allocation with quarantine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MediaError;

/// A local RTP port (even) and its RTCP port (RTP + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    InUse,
    Quarantined,
}

/// Hands out port pairs from the half-open range `start..end`: every even RTP port `p` with
/// `start <= p` and `p + 1 < end`. Free pairs are used in FIFO order (so a released pair is reused
/// as late as possible), and a released pair sits in quarantine for `quarantine` before it can
/// be handed out again.
#[derive(Debug)]
pub struct PortAllocator {
    start: u16,
    end: u16,
    base: u32,
    slots: Vec<Slot>,
    free: VecDeque<u16>,
    quarantine: VecDeque<(Instant, u16)>,
    quarantine_for: Duration,
}

/// Default quarantine of a released pair.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(5);

impl PortAllocator {
    /// All even RTP ports in `start..end` whose RTCP port is also below `end`.
    pub fn new(start: u16, end: u16) -> Self {
        Self::with_quarantine(start, end, DEFAULT_QUARANTINE)
    }

    pub fn with_quarantine(start: u16, end: u16, quarantine: Duration) -> Self {
        let base = u32::from(start) + u32::from(start) % 2;
        let mut free = VecDeque::new();
        let mut p = base;
        while p + 1 < u32::from(end) {
            // p + 1 < end <= 65535, so both fit in u16.
            free.push_back(p as u16);
            p += 2;
        }
        PortAllocator {
            start,
            end,
            base,
            slots: vec![Slot::Free; free.len()],
            free,
            quarantine: VecDeque::new(),
            quarantine_for: quarantine,
        }
    }

    /// Total number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Pairs that can be handed out at `now` (free plus quarantine expired by `now`).
    pub fn available(&self, now: Instant) -> usize {
        self.free.len()
            + self
                .quarantine
                .iter()
                .take_while(|(until, _)| *until <= now)
                .count()
    }

    fn slot(&self, rtp: u16) -> Option<usize> {
        let p = u32::from(rtp);
        if p < self.base || p % 2 != 0 {
            return None;
        }
        let i = ((p - self.base) / 2) as usize;
        (i < self.slots.len()).then_some(i)
    }

    fn reclaim(&mut self, now: Instant) {
        while let Some(&(until, port)) = self.quarantine.front() {
            if until > now {
                break;
            }
            self.quarantine.pop_front();
            if let Some(i) = self.slot(port) {
                self.slots[i] = Slot::Free;
            }
            self.free.push_back(port);
        }
    }

    /// The next free pair, or [`MediaError::PortsExhausted`].
    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, MediaError> {
        self.reclaim(now);
        let rtp = self.free.pop_front().ok_or(MediaError::PortsExhausted {
            start: self.start,
            end: self.end,
        })?;
        if let Some(i) = self.slot(rtp) {
            self.slots[i] = Slot::InUse;
        }
        Ok(PortPair { rtp, rtcp: rtp + 1 })
    }

    /// Return a pair; it becomes allocatable again `quarantine` after `now`. Returns false (and
    /// does nothing) for a pair that is not from this allocator or not currently allocated.
    pub fn release(&mut self, now: Instant, pair: PortPair) -> bool {
        let Some(i) = self.slot(pair.rtp) else {
            return false;
        };
        if self.slots[i] != Slot::InUse {
            return false;
        }
        self.slots[i] = Slot::Quarantined;
        // Time only moves forward for one caller; keep the queue sorted anyway.
        let until = now + self.quarantine_for;
        let until = match self.quarantine.back() {
            Some(&(last, _)) if last > until => last,
            _ => until,
        };
        self.quarantine.push_back((until, pair.rtp));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_rtp_with_rtcp_plus_one_inside_the_range() {
        let now = Instant::now();
        // 10001..10008: RTP 10002, 10004, 10006 (RTCP 10007 < 10008).
        let mut a = PortAllocator::new(10001, 10008);
        assert_eq!(a.capacity(), 3);
        let got: Vec<_> = (0..3).map(|_| a.allocate(now).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                PortPair {
                    rtp: 10002,
                    rtcp: 10003
                },
                PortPair {
                    rtp: 10004,
                    rtcp: 10005
                },
                PortPair {
                    rtp: 10006,
                    rtcp: 10007
                },
            ]
        );
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let now = Instant::now();
        let mut a = PortAllocator::new(20000, 20004);
        a.allocate(now).unwrap();
        a.allocate(now).unwrap();
        match a.allocate(now) {
            Err(MediaError::PortsExhausted { start, end }) => {
                assert_eq!((start, end), (20000, 20004));
            }
            other => panic!("expected exhaustion, got {other:?}"),
        }
        // Degenerate ranges have no pairs at all.
        assert_eq!(PortAllocator::new(65535, 65535).capacity(), 0);
        assert!(PortAllocator::new(65534, 65535).allocate(now).is_err());
        let e = PortAllocator::new(5, 5).allocate(now).unwrap_err();
        assert_eq!(e.sip_status(), 503);
    }

    #[test]
    fn released_pairs_are_quarantined() {
        let t0 = Instant::now();
        let q = Duration::from_secs(5);
        let mut a = PortAllocator::with_quarantine(30000, 30004, q);
        let p1 = a.allocate(t0).unwrap();
        let p2 = a.allocate(t0).unwrap();
        assert!(a.release(t0, p1));
        assert!(!a.release(t0, p1), "double release is ignored");
        assert!(!a.release(
            t0,
            PortPair {
                rtp: 40000,
                rtcp: 40001
            }
        ));
        assert_eq!(a.available(t0), 0);
        assert!(a.allocate(t0 + Duration::from_millis(4999)).is_err());
        assert_eq!(a.available(t0 + q), 1);
        assert_eq!(a.allocate(t0 + q).unwrap(), p1);
        assert!(a.release(t0 + q, p2));
        assert!(a.allocate(t0 + q).is_err());
        assert_eq!(a.allocate(t0 + q + q).unwrap(), p2);
    }

    #[test]
    fn free_pairs_are_reused_in_fifo_order() {
        let t0 = Instant::now();
        let mut a = PortAllocator::with_quarantine(30000, 30006, Duration::ZERO);
        let p1 = a.allocate(t0).unwrap();
        a.release(t0, p1);
        // The never-used pairs come first, the released one last.
        assert_eq!(a.allocate(t0).unwrap().rtp, 30002);
        assert_eq!(a.allocate(t0).unwrap().rtp, 30004);
        assert_eq!(a.allocate(t0).unwrap(), p1);
    }
}
