//! One relayed call: two legs, latching, rewriting, stats, media timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::stats::{LegStats, SourceState};
use super::{Leg, MediaEvent, PortPair, SessionId};

/// Latching and timeout parameters of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Lock the latch after this many consecutive packets from the same source...
    pub latch_packets: u32,
    /// ...or once this long has passed since the first packet after (re)opening.
    pub latch_window: Duration,
    /// No RTP on either leg for this long while no leg is on hold → [`MediaEvent::Timeout`].
    /// `None` = off (`rtp_timeout: 0`).
    pub rtp_timeout: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            latch_packets: 5,
            latch_window: Duration::from_millis(500),
            rtp_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not RTP/RTCP version 2, or truncated headers.
    Malformed,
    /// The leg's latch is locked to another source.
    UnknownSource,
    /// The other leg has no remote address yet (no SDP, nothing latched).
    NoDestination,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    Drop(DropReason),
    /// Send the (rewritten) buffer from `leg`'s local RTP socket (`rtcp == false`) or RTCP socket
    /// (`rtcp == true`) to `dst`.
    To {
        leg: Leg,
        rtcp: bool,
        dst: SocketAddr,
    },
}

/// RFC 5761 §4: on an rtcp-mux port, a second byte of 192..=223 (payload type 64..=95 with the
/// marker bit set, i.e. RTCP packet types 192..=223) is RTCP.
#[inline]
pub fn is_rtcp_mux_packet(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// SSRC, sequence number and timestamp of an RTP packet (RFC 3550 §5.1), after checking that
/// it is version 2 and that the CSRC list and header extension fit in `buf`.
///
/// Not `rtp_rs::RtpReader::new`: that also validates the padding trailer, which SRTP encrypts
/// (RFC 3711 §3.1), so it would drop valid SRTP packets that the relay forwards without
/// decoding; only the fixed header matters here.
#[inline]
fn rtp_header(buf: &[u8]) -> Option<(u32, u16, u32)> {
    let h: &[u8; 12] = buf.get(..12)?.try_into().ok()?;
    if h[0] >> 6 != 2 {
        return None;
    }
    let mut end = 12 + 4 * usize::from(h[0] & 0x0f);
    if h[0] & 0x10 != 0 {
        let ext = buf.get(end..end + 4)?;
        end += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if end > buf.len() {
        return None;
    }
    Some((
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        u16::from_be_bytes([h[2], h[3]]),
        u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
    ))
}

/// Symmetric-RTP latch of one remote transport address.
#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    remote: Option<SocketAddr>,
    candidate: Option<SocketAddr>,
    count: u32,
    opened_at: Option<Instant>,
    locked: bool,
}

impl Latch {
    fn reopen(&mut self) {
        *self = Latch::default();
    }

    /// Whether a packet from `src` is accepted; learns `src` while open.
    #[inline]
    fn accept(&mut self, now: Instant, src: SocketAddr, cfg: &SessionConfig) -> bool {
        if self.locked {
            return self.remote == Some(src);
        }
        let opened = *self.opened_at.get_or_insert(now);
        if self.candidate == Some(src) {
            self.count += 1;
        } else {
            self.candidate = Some(src);
            self.count = 1;
        }
        self.remote = Some(src);
        if self.count >= cfg.latch_packets
            || now.saturating_duration_since(opened) >= cfg.latch_window
        {
            self.locked = true;
        }
        true
    }
}

/// SSRC/sequence/timestamp continuity of the stream sent out on a leg.
#[derive(Debug, Clone, Copy, Default)]
struct OutStream {
    /// Rewriting is on (after the first `replace_leg` of the other leg).
    rewrite: bool,
    /// The next packet starts a new source: recompute offsets.
    rebase: bool,
    out_ssrc: u32,
    src_ssrc: u32,
    seq_off: u16,
    ts_off: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
}

/// Up to this many payload-type mappings per leg (telephone-event, comfort noise, ...).
const PT_MAP_LEN: usize = 4;

#[derive(Debug, Clone)]
struct LegState {
    local: PortPair,
    rtcp_mux: bool,
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    rtp_latch: Latch,
    rtcp_latch: Latch,
    hold: bool,
    clock_rate: u32,
    /// Payload types received on this leg, rewritten before forwarding.
    pt_map: [(u8, u8); PT_MAP_LEN],
    pt_map_len: u8,
    source: SourceState,
    /// Expected/lost of earlier sources on this leg.
    prior_expected: u64,
    prior_lost: i64,
    stats: LegStats,
    /// The stream the relay sends to this leg's remote.
    out: OutStream,
}

impl LegState {
    fn new(local: PortPair) -> Self {
        LegState {
            local,
            rtcp_mux: false,
            sdp_rtp: None,
            sdp_rtcp: None,
            rtp_latch: Latch::default(),
            rtcp_latch: Latch::default(),
            hold: false,
            clock_rate: 8000,
            pt_map: [(0, 0); PT_MAP_LEN],
            pt_map_len: 0,
            source: SourceState::default(),
            prior_expected: 0,
            prior_lost: 0,
            stats: LegStats::default(),
            out: OutStream::default(),
        }
    }

    #[inline]
    fn rtp_destination(&self) -> Option<SocketAddr> {
        self.rtp_latch.remote.or(self.sdp_rtp)
    }

    fn finish_source(&mut self) {
        let (expected, lost) = self.source.expected_lost();
        self.prior_expected += u64::from(expected);
        self.prior_lost += lost;
        self.source = SourceState::default();
    }
}

/// One relayed call. See the module docs.
#[derive(Debug, Clone)]
pub struct RelaySession {
    id: SessionId,
    cfg: SessionConfig,
    epoch: Instant,
    legs: [LegState; 2],
    /// Last RTP accepted on any leg (or session start / end of hold).
    last_rtp: Instant,
    timed_out: bool,
    events: VecDeque<MediaEvent>,
}

impl RelaySession {
    /// A session whose legs use the local pairs `a` and `b`, created at `now`.
    pub fn new(now: Instant, id: SessionId, a: PortPair, b: PortPair, cfg: SessionConfig) -> Self {
        RelaySession {
            id,
            cfg,
            epoch: now,
            legs: [LegState::new(a), LegState::new(b)],
            last_rtp: now,
            timed_out: false,
            events: VecDeque::new(),
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The local port pair of `leg`.
    pub fn local_ports(&self, leg: Leg) -> PortPair {
        self.legs[leg.index()].local
    }

    /// The remote address from SDP (`c=` + `m=` port) for `leg`. RTCP goes to port + 1 unless
    /// rtcp-mux is on or [`RelaySession::set_remote_rtcp`] says otherwise. Re-opens latching
    /// (a signalled change, e.g. a re-INVITE), so the next packets teach the real source again.
    pub fn update_remote(&mut self, leg: Leg, sdp_rtp: SocketAddr) {
        let l = &mut self.legs[leg.index()];
        l.sdp_rtp = Some(sdp_rtp);
        let mut rtcp = sdp_rtp;
        rtcp.set_port(sdp_rtp.port().wrapping_add(1));
        l.sdp_rtcp = Some(rtcp);
        l.rtp_latch.reopen();
        l.rtcp_latch.reopen();
    }

    /// An explicit RTCP address (RFC 3605 `a=rtcp:`).
    pub fn set_remote_rtcp(&mut self, leg: Leg, addr: SocketAddr) {
        self.legs[leg.index()].sdp_rtcp = Some(addr);
    }

    /// RFC 5761 rtcp-mux negotiated on `leg`: RTCP shares the RTP port both ways.
    pub fn set_rtcp_mux(&mut self, leg: Leg, mux: bool) {
        self.legs[leg.index()].rtcp_mux = mux;
    }

    /// RTP clock rate of the codec on `leg` (for jitter and timestamp continuity), default 8000.
    pub fn set_clock_rate(&mut self, leg: Leg, hz: u32) {
        self.legs[leg.index()].clock_rate = hz.max(1);
    }

    /// Hold state of `leg` (from `sendonly`/`recvonly`/`inactive`): while any leg is on hold
    /// the media timeout is suspended, and it restarts from `now` when the hold ends.
    pub fn set_hold(&mut self, now: Instant, leg: Leg, hold: bool) {
        let l = &mut self.legs[leg.index()];
        if l.hold && !hold && now > self.last_rtp {
            self.last_rtp = now;
        }
        l.hold = hold;
    }

    /// Packets received on `leg` with payload type `from` are forwarded with `to` (RFC 4733
    /// telephone-event PT differs between the legs). Replaces an existing mapping for `from`;
    /// false when the table (4 entries) is full.
    pub fn set_pt_map(&mut self, leg: Leg, from: u8, to: u8) -> bool {
        let l = &mut self.legs[leg.index()];
        let (from, to) = (from & 0x7f, to & 0x7f);
        let n = usize::from(l.pt_map_len);
        if let Some(e) = l.pt_map[..n].iter_mut().find(|e| e.0 == from) {
            e.1 = to;
            return true;
        }
        if n == PT_MAP_LEN {
            return false;
        }
        l.pt_map[n] = (from, to);
        l.pt_map_len += 1;
        true
    }

    /// Remove every payload-type mapping of `leg`.
    pub fn clear_pt_map(&mut self, leg: Leg) {
        self.legs[leg.index()].pt_map_len = 0;
    }

    /// The far end of `leg` is replaced (park, transfer): new remote, latching re-opened, and the
    /// stream the other leg receives keeps its SSRC while sequence numbers and timestamps
    /// continue from the last values sent (timestamps advance by the wall time elapsed since
    /// then, at the other leg's clock rate). The leg's remote addresses, latches, rtcp-mux and
    /// hold flags are reset (set them again from the new end's SDP); its receive statistics
    /// continue (the old source's expected/lost are kept). Payload-type maps are kept; reset them with
    /// [`RelaySession::set_pt_map`]/[`RelaySession::clear_pt_map`] if the new end differs.
    pub fn replace_leg(&mut self, leg: Leg, sdp_rtp: Option<SocketAddr>) {
        {
            let l = &mut self.legs[leg.index()];
            l.sdp_rtp = None;
            l.sdp_rtcp = None;
            l.rtp_latch.reopen();
            l.rtcp_latch.reopen();
            l.rtcp_mux = false;
            l.hold = false;
            l.finish_source();
        }
        if let Some(addr) = sdp_rtp {
            self.update_remote(leg, addr);
        }
        let out = &mut self.legs[leg.other().index()].out;
        out.rewrite = true;
        out.rebase = true;
    }

    /// Handle one datagram received at `leg`'s local RTP socket (`is_rtcp == false`) or RTCP
    /// socket (`is_rtcp == true`) from `src`. On [`Forward::To`] the caller sends `buf` (possibly
    /// rewritten in place) as is. Never allocates.
    #[inline]
    pub fn handle_packet(
        &mut self,
        now: Instant,
        leg: Leg,
        is_rtcp: bool,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Forward {
        let li = leg.index();
        let rtcp = is_rtcp || (self.legs[li].rtcp_mux && is_rtcp_mux_packet(buf));
        if rtcp {
            return self.handle_rtcp(now, leg, is_rtcp, src, buf);
        }
        let Some((ssrc, seq, ts)) = rtp_header(buf) else {
            self.legs[li].stats.dropped_malformed += 1;
            return Forward::Drop(DropReason::Malformed);
        };
        let cfg = self.cfg;
        let epoch = self.epoch;
        let (rx, tx) = match leg {
            Leg::A => {
                let (a, b) = self.legs.split_at_mut(1);
                (&mut a[0], &mut b[0])
            }
            Leg::B => {
                let (a, b) = self.legs.split_at_mut(1);
                (&mut b[0], &mut a[0])
            }
        };
        if !rx.rtp_latch.accept(now, src, &cfg) {
            rx.stats.dropped_unknown_source += 1;
            return Forward::Drop(DropReason::UnknownSource);
        }

        // Receiver statistics (RFC 3550 A.1/A.3/A.8).
        rx.stats.packets += 1;
        rx.stats.bytes += buf.len() as u64;
        rx.stats.last_packet = Some(now);
        self.last_rtp = now;
        self.timed_out = false;
        if !rx.source.active || rx.source.ssrc != ssrc {
            if rx.source.active {
                rx.finish_source();
            }
            rx.source.start(ssrc, seq);
        }
        rx.source.update_seq(seq);
        let micros = now.saturating_duration_since(epoch).as_micros() as u64;
        let arrival = (micros.wrapping_mul(u64::from(rx.clock_rate)) / 1_000_000) as u32;
        rx.source.update_jitter(arrival, ts);

        let Some(dst) = tx.rtp_destination() else {
            rx.stats.dropped_no_destination += 1;
            return Forward::Drop(DropReason::NoDestination);
        };

        // Payload type rewrite (byte 1: marker bit + 7-bit PT).
        if rx.pt_map_len > 0 {
            let pt = buf[1] & 0x7f;
            let n = usize::from(rx.pt_map_len);
            if let Some(&(_, to)) = rx.pt_map[..n].iter().find(|e| e.0 == pt) {
                buf[1] = (buf[1] & 0x80) | to;
            }
        }

        // SSRC/sequence/timestamp continuity towards the other leg.
        let out = &mut tx.out;
        let (out_seq, out_ts) = if out.rewrite {
            if out.rebase || out.src_ssrc != ssrc {
                match out.last_at {
                    Some(last_at) => {
                        let gap = now.saturating_duration_since(last_at).as_micros() as u64;
                        let ts_gap =
                            (gap.wrapping_mul(u64::from(tx.clock_rate)) / 1_000_000).max(1) as u32;
                        out.seq_off = out.last_seq.wrapping_add(1).wrapping_sub(seq);
                        out.ts_off = out.last_ts.wrapping_add(ts_gap).wrapping_sub(ts);
                    }
                    None => {
                        out.out_ssrc = ssrc;
                        out.seq_off = 0;
                        out.ts_off = 0;
                    }
                }
                out.rebase = false;
                out.src_ssrc = ssrc;
            }
            let s = seq.wrapping_add(out.seq_off);
            let t = ts.wrapping_add(out.ts_off);
            buf[2..4].copy_from_slice(&s.to_be_bytes());
            buf[4..8].copy_from_slice(&t.to_be_bytes());
            buf[8..12].copy_from_slice(&out.out_ssrc.to_be_bytes());
            (s, t)
        } else {
            out.src_ssrc = ssrc;
            out.out_ssrc = ssrc;
            (seq, ts)
        };
        // Remember the newest values sent (a reordered packet does not move them back).
        if out.last_at.is_none() || (out_seq.wrapping_sub(out.last_seq) as i16) > 0 {
            out.last_seq = out_seq;
            out.last_ts = out_ts;
        }
        out.last_at = Some(now);
        rx.stats.forwarded += 1;
        Forward::To {
            leg: leg.other(),
            rtcp: false,
            dst,
        }
    }

    fn handle_rtcp(
        &mut self,
        now: Instant,
        leg: Leg,
        on_rtcp_socket: bool,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Forward {
        let cfg = self.cfg;
        let li = leg.index();
        // RTCP common header: V=2, length >= 8 bytes.
        if buf.len() < 8 || buf[0] >> 6 != 2 {
            self.legs[li].stats.dropped_malformed += 1;
            return Forward::Drop(DropReason::Malformed);
        }
        let rx = &mut self.legs[li];
        let accepted = if on_rtcp_socket {
            rx.rtcp_latch.accept(now, src, &cfg)
        } else {
            // rtcp-mux: same transport as RTP; only checked, RTP does the learning.
            !rx.rtp_latch.locked || rx.rtp_latch.remote == Some(src)
        };
        if !accepted {
            rx.stats.dropped_unknown_source += 1;
            return Forward::Drop(DropReason::UnknownSource);
        }
        rx.stats.rtcp_packets += 1;
        rx.stats.rtcp_bytes += buf.len() as u64;

        let tx = &self.legs[leg.other().index()];
        let (rtcp_socket, dst) = if tx.rtcp_mux {
            (false, tx.rtp_destination())
        } else {
            (true, tx.rtcp_latch.remote.or(tx.sdp_rtcp))
        };
        let Some(dst) = dst else {
            self.legs[li].stats.dropped_no_destination += 1;
            return Forward::Drop(DropReason::NoDestination);
        };
        if tx.out.rewrite {
            rewrite_rtcp_sender(buf, &tx.out);
        }
        Forward::To {
            leg: leg.other(),
            rtcp: rtcp_socket,
            dst,
        }
    }

    /// Fire [`MediaEvent::Timeout`] if the media timeout has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timed_out {
            return;
        }
        if let Some(deadline) = self.poll_timeout()
            && now >= deadline
        {
            self.timed_out = true;
            self.events.push_back(MediaEvent::Timeout {
                session: self.id,
                idle: now.saturating_duration_since(self.last_rtp),
            });
        }
    }

    /// When [`RelaySession::handle_timeout`] should run next (`None`: timeout off, on hold, or
    /// already fired and no RTP since).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out || self.legs.iter().any(|l| l.hold) {
            return None;
        }
        self.cfg.rtp_timeout.map(|t| self.last_rtp + t)
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Statistics of `leg` (what was received from its remote end).
    pub fn stats(&self, leg: Leg) -> LegStats {
        let l = &self.legs[leg.index()];
        let (expected, lost) = l.source.expected_lost();
        let jitter = l.source.jitter();
        LegStats {
            expected: l.prior_expected + u64::from(expected),
            lost: l.prior_lost + lost,
            jitter,
            jitter_ms: f64::from(jitter) * 1000.0 / f64::from(l.clock_rate),
            ssrc: l.source.active.then_some(l.source.ssrc),
            latched: l.rtp_latch.remote,
            locked: l.rtp_latch.locked,
            ..l.stats
        }
    }
}

/// In the stream continued after `replace_leg`, SR/RR packets of the current source carry its
/// SSRC and (SR) an RTP timestamp: map them like the RTP packets.
fn rewrite_rtcp_sender(buf: &mut [u8], out: &OutStream) {
    let mut off = 0usize;
    while off + 8 <= buf.len() {
        let pt = buf[off + 1];
        let words = usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
        let len = (words + 1) * 4;
        if off + len > buf.len() {
            return;
        }
        if pt == 200 || pt == 201 {
            let ssrc = u32::from_be_bytes([buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]]);
            if ssrc == out.src_ssrc {
                buf[off + 4..off + 8].copy_from_slice(&out.out_ssrc.to_be_bytes());
                if pt == 200 && len >= 20 {
                    let ts = u32::from_be_bytes([
                        buf[off + 16],
                        buf[off + 17],
                        buf[off + 18],
                        buf[off + 19],
                    ]);
                    let ts = ts.wrapping_add(out.ts_off);
                    buf[off + 16..off + 20].copy_from_slice(&ts.to_be_bytes());
                }
            }
        }
        off += len;
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
