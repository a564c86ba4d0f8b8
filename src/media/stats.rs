//! RFC 3550 receiver statistics: A.1 sequence tracking with probation, A.3 expected/lost,
//! A.8 interarrival jitter (integer form, scaled by 16).

use std::net::SocketAddr;
use std::time::Instant;

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u32 = 3000;
const MAX_MISORDER: u32 = 100;
const MIN_SEQUENTIAL: u32 = 2;

/// Per-source state of RFC 3550 appendix A.1 (`source` struct) plus A.8 jitter.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SourceState {
    pub(crate) active: bool,
    pub(crate) ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    transit: i32,
    have_transit: bool,
    /// Jitter scaled by 16 (A.8 integer form).
    jitter16: u32,
}

impl SourceState {
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    /// A new source (A.1: `init_seq(s, seq); s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL`).
    pub(crate) fn start(&mut self, ssrc: u32, seq: u16) {
        *self = SourceState {
            active: true,
            ssrc,
            ..SourceState::default()
        };
        self.init_seq(seq);
        self.max_seq = seq.wrapping_sub(1);
        self.probation = MIN_SEQUENTIAL;
    }

    /// A.1 `update_seq`: true when the packet counts as received.
    pub(crate) fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = u32::from(seq.wrapping_sub(self.max_seq));
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        } else {
            // Duplicate or reordered packet.
        }
        self.received += 1;
        true
    }

    /// A.8: `arrival` and `ts` in RTP timestamp units.
    pub(crate) fn update_jitter(&mut self, arrival: u32, ts: u32) {
        let transit = arrival.wrapping_sub(ts) as i32;
        if self.have_transit {
            let d = transit.wrapping_sub(self.transit).unsigned_abs();
            self.jitter16 = self
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = transit;
        self.have_transit = true;
    }

    /// A.3: (expected, lost) since this source became valid.
    pub(crate) fn expected_lost(&self) -> (u32, i64) {
        if !self.active || self.probation > 0 {
            return (0, 0);
        }
        let extended_max = self.cycles.wrapping_add(u32::from(self.max_seq));
        let expected = extended_max.wrapping_sub(self.base_seq).wrapping_add(1);
        (expected, i64::from(expected) - i64::from(self.received))
    }

    /// Interarrival jitter in timestamp units.
    pub(crate) fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }
}

/// Statistics of one leg: what the relay received from that leg's remote end.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegStats {
    /// RTP packets accepted from the remote (including those that could not be forwarded).
    pub packets: u64,
    /// RTP bytes (whole UDP payload) accepted.
    pub bytes: u64,
    pub rtcp_packets: u64,
    pub rtcp_bytes: u64,
    /// RTP packets sent on to the other leg.
    pub forwarded: u64,
    /// RFC 3550 A.3 expected packets (summed over the sources seen on this leg).
    pub expected: u64,
    /// RFC 3550 A.3 cumulative lost (negative with duplicates).
    pub lost: i64,
    /// RFC 3550 A.8 interarrival jitter of the current source, in RTP timestamp units.
    pub jitter: u32,
    /// The same in milliseconds (using the leg's clock rate).
    pub jitter_ms: f64,
    /// Arrival of the last accepted RTP packet.
    pub last_packet: Option<Instant>,
    /// Packets from a source other than the locked one (dropped, never forwarded).
    pub dropped_unknown_source: u64,
    /// Packets that are not RTP/RTCP version 2 or are truncated.
    pub dropped_malformed: u64,
    /// Packets with nowhere to go (the other leg has no remote address yet).
    pub dropped_no_destination: u64,
    /// SSRC of the current source.
    pub ssrc: Option<u32>,
    /// The latched remote RTP address, if any.
    pub latched: Option<SocketAddr>,
    /// Whether the latch is locked.
    pub locked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probation_then_counting() {
        let mut s = SourceState::default();
        s.start(7, 100);
        assert!(!s.update_seq(100), "first packet is on probation");
        assert_eq!(s.expected_lost(), (0, 0));
        assert!(s.update_seq(101));
        assert!(s.update_seq(102));
        assert_eq!(s.expected_lost(), (2, 0));
    }

    #[test]
    fn wraparound_counts_cycles() {
        let mut s = SourceState::default();
        s.start(7, 65533);
        for seq in [65533u16, 65534, 65535, 0, 1, 3] {
            s.update_seq(seq);
        }
        // base 65534 .. extended max 65536 + 3 = 65539 → expected 6, received 5 (2 missing).
        assert_eq!(s.expected_lost(), (6, 1));
    }

    #[test]
    fn restart_after_big_jump_needs_two_sequential_packets() {
        let mut s = SourceState::default();
        s.start(7, 10);
        for seq in 10..20u16 {
            s.update_seq(seq);
        }
        assert!(!s.update_seq(40000));
        assert!(s.update_seq(40001), "sequential after jump → resync");
        assert_eq!(s.expected_lost(), (1, 0));
    }
}
