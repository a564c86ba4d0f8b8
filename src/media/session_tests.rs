use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::media::{Leg, MediaEvent, PortPair, SessionId};

const A_PORTS: PortPair = PortPair {
    rtp: 10000,
    rtcp: 10001,
};
const B_PORTS: PortPair = PortPair {
    rtp: 10002,
    rtcp: 10003,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// A G.711 RTP packet (12-byte header + `len` bytes of payload).
fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..len).map(|i| i as u8));
    p
}

fn header(p: &[u8]) -> (u8, bool, u16, u32, u32) {
    (
        p[1] & 0x7f,
        p[1] & 0x80 != 0,
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

fn session(t0: Instant, cfg: SessionConfig) -> RelaySession {
    RelaySession::new(t0, SessionId(1), A_PORTS, B_PORTS, cfg)
}

fn to(leg: Leg, dst: SocketAddr) -> Forward {
    Forward::To {
        leg,
        rtcp: false,
        dst,
    }
}

#[test]
fn rtp_is_forwarded_both_ways_byte_identical() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb) = (addr("192.0.2.10:4000"), addr("192.0.2.20:5000"));
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    for i in 0..10u16 {
        let orig = rtp(0, i == 0, 100 + i, 160 * u32::from(i), 0xAAAA, 160);
        let mut buf = orig.clone();
        assert_eq!(
            s.handle_packet(ms(t0, 20 * u64::from(i)), Leg::A, false, pa, &mut buf),
            to(Leg::B, pb)
        );
        assert_eq!(buf, orig);
        let orig = rtp(8, false, 9000 + i, 4000 + 160 * u32::from(i), 0xBBBB, 160);
        let mut buf = orig.clone();
        assert_eq!(
            s.handle_packet(ms(t0, 20 * u64::from(i)), Leg::B, false, pb, &mut buf),
            to(Leg::A, pa)
        );
        assert_eq!(buf, orig);
    }
    let st = s.stats(Leg::A);
    assert_eq!((st.packets, st.bytes, st.forwarded), (10, 1720, 10));
    assert_eq!(st.ssrc, Some(0xAAAA));
    assert_eq!(st.last_packet, Some(ms(t0, 180)));
    assert_eq!(
        (st.expected, st.lost),
        (9, 0),
        "RFC 3550 A.1: first packet on probation"
    );
    assert_eq!(st.jitter, 0);
    assert!(st.locked);
    assert_eq!(s.stats(Leg::B).packets, 10);
}

#[test]
fn natted_phone_is_latched_to_its_real_source() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let sdp_a = addr("10.0.0.5:4000"); // private address from the phone's SDP
    let real_a = addr("203.0.113.7:61000"); // what the NAT makes of it
    let pb = addr("192.0.2.20:5000");
    s.update_remote(Leg::A, sdp_a);
    s.update_remote(Leg::B, pb);

    // Before A sends anything, B's audio goes to the SDP address.
    let mut buf = rtp(0, false, 1, 0, 0xB, 160);
    assert_eq!(
        s.handle_packet(t0, Leg::B, false, pb, &mut buf),
        to(Leg::A, sdp_a)
    );
    // A's first packet comes from the NAT address: accepted and learned at once.
    let mut buf = rtp(0, false, 1, 0, 0xA, 160);
    assert_eq!(
        s.handle_packet(ms(t0, 1), Leg::A, false, real_a, &mut buf),
        to(Leg::B, pb)
    );
    let st = s.stats(Leg::A);
    assert_eq!((st.latched, st.locked), (Some(real_a), false));
    let mut buf = rtp(0, false, 2, 160, 0xB, 160);
    assert_eq!(
        s.handle_packet(ms(t0, 20), Leg::B, false, pb, &mut buf),
        to(Leg::A, real_a)
    );
}

#[test]
fn latch_locks_after_n_packets_then_unknown_sources_are_dropped_and_counted() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        latch_packets: 3,
        latch_window: Duration::from_secs(10),
        ..SessionConfig::default()
    };
    let mut s = session(t0, cfg);
    let (pa, pb, evil) = (
        addr("192.0.2.10:4000"),
        addr("192.0.2.20:5000"),
        addr("198.51.100.66:6666"),
    );
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    for i in 0..3u16 {
        let mut buf = rtp(0, false, i, 0, 0xA, 20);
        assert_eq!(
            s.handle_packet(ms(t0, u64::from(i)), Leg::A, false, pa, &mut buf),
            to(Leg::B, pb)
        );
        assert_eq!(s.stats(Leg::A).locked, i == 2);
    }
    for i in 0..4u16 {
        let mut buf = rtp(0, false, 100 + i, 0, 0xE, 20);
        assert_eq!(
            s.handle_packet(ms(t0, 10), Leg::A, false, evil, &mut buf),
            Forward::Drop(DropReason::UnknownSource)
        );
    }
    let st = s.stats(Leg::A);
    assert_eq!(
        (st.packets, st.dropped_unknown_source, st.latched),
        (3, 4, Some(pa))
    );
    // The other leg's audio still goes to the locked address.
    let mut buf = rtp(0, false, 1, 0, 0xB, 20);
    assert_eq!(
        s.handle_packet(ms(t0, 11), Leg::B, false, pb, &mut buf),
        to(Leg::A, pa)
    );
}

#[test]
fn latch_locks_to_the_last_source_when_the_window_ends() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        latch_packets: 5,
        latch_window: Duration::from_millis(100),
        ..SessionConfig::default()
    };
    let mut s = session(t0, cfg);
    let (x, y) = (addr("192.0.2.1:1000"), addr("192.0.2.2:2000"));
    s.update_remote(Leg::B, addr("192.0.2.20:5000"));
    // Alternating sources never reach 5 in a row; the window decides.
    for (i, src) in [x, y, x, y].into_iter().enumerate() {
        let mut buf = rtp(0, false, i as u16, 0, 0xA, 20);
        assert!(matches!(
            s.handle_packet(ms(t0, 30 * i as u64), Leg::A, false, src, &mut buf),
            Forward::To { .. }
        ));
        assert!(!s.stats(Leg::A).locked);
    }
    let mut buf = rtp(0, false, 4, 0, 0xA, 20);
    assert!(matches!(
        s.handle_packet(ms(t0, 100), Leg::A, false, x, &mut buf),
        Forward::To { .. }
    ));
    let st = s.stats(Leg::A);
    assert_eq!((st.locked, st.latched), (true, Some(x)));
    let mut buf = rtp(0, false, 5, 0, 0xA, 20);
    assert_eq!(
        s.handle_packet(ms(t0, 120), Leg::A, false, y, &mut buf),
        Forward::Drop(DropReason::UnknownSource)
    );
}

#[test]
fn update_remote_reopens_latching() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        latch_packets: 2,
        ..SessionConfig::default()
    };
    let mut s = session(t0, cfg);
    let (pa, pa2, pb) = (
        addr("192.0.2.10:4000"),
        addr("192.0.2.11:4100"),
        addr("192.0.2.20:5000"),
    );
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    for i in 0..2u16 {
        let mut buf = rtp(0, false, i, 0, 0xA, 20);
        s.handle_packet(ms(t0, u64::from(i)), Leg::A, false, pa, &mut buf);
    }
    let mut buf = rtp(0, false, 2, 0, 0xA, 20);
    assert_eq!(
        s.handle_packet(ms(t0, 3), Leg::A, false, pa2, &mut buf),
        Forward::Drop(DropReason::UnknownSource)
    );
    // re-INVITE: the phone moved to pa2.
    s.update_remote(Leg::A, pa2);
    let st = s.stats(Leg::A);
    assert_eq!((st.locked, st.latched), (false, None));
    // Until it sends, the other side's audio goes to the new SDP address.
    let mut buf = rtp(0, false, 1, 0, 0xB, 20);
    assert_eq!(
        s.handle_packet(ms(t0, 4), Leg::B, false, pb, &mut buf),
        to(Leg::A, pa2)
    );
    for i in 3..5u16 {
        let mut buf = rtp(0, false, i, 0, 0xA, 20);
        assert_eq!(
            s.handle_packet(ms(t0, 5 + u64::from(i)), Leg::A, false, pa2, &mut buf),
            to(Leg::B, pb)
        );
    }
    let st = s.stats(Leg::A);
    assert_eq!((st.locked, st.latched), (true, Some(pa2)));
    let mut buf = rtp(0, false, 5, 0, 0xA, 20);
    assert_eq!(
        s.handle_packet(ms(t0, 20), Leg::A, false, pa, &mut buf),
        Forward::Drop(DropReason::UnknownSource)
    );
}

#[test]
fn replace_leg_keeps_ssrc_and_continues_seq_and_ts() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb, pc, pd) = (
        addr("192.0.2.10:4000"),
        addr("192.0.2.20:5000"),
        addr("192.0.2.30:6000"),
        addr("192.0.2.40:7000"),
    );
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    // B talks to A: seq 1000.., ts 50000.., 20 ms apart.
    for i in 0..3u16 {
        let orig = rtp(
            0,
            false,
            1000 + i,
            50000 + 160 * u32::from(i),
            0xB0B0_B0B0,
            160,
        );
        let mut buf = orig.clone();
        assert_eq!(
            s.handle_packet(ms(t0, 20 * u64::from(i)), Leg::B, false, pb, &mut buf),
            to(Leg::A, pa)
        );
        assert_eq!(buf, orig, "no rewriting before a replacement");
    }
    // Transfer: B's far end becomes C (new SSRC, unrelated seq/ts).
    s.replace_leg(Leg::B, Some(pc));
    let mut buf = rtp(0, true, 7, 900, 0xC0C0_C0C0, 160);
    assert_eq!(
        s.handle_packet(ms(t0, 60), Leg::B, false, pc, &mut buf),
        to(Leg::A, pa)
    );
    assert_eq!(header(&buf), (0, true, 1003, 50480, 0xB0B0_B0B0));
    assert_eq!(
        &buf[12..],
        &rtp(0, true, 7, 900, 0xC0C0_C0C0, 160)[12..],
        "payload untouched"
    );
    let mut buf = rtp(0, false, 8, 1060, 0xC0C0_C0C0, 160);
    s.handle_packet(ms(t0, 80), Leg::B, false, pc, &mut buf);
    assert_eq!(header(&buf), (0, false, 1004, 50640, 0xB0B0_B0B0));
    // A reordered older packet maps with the same offsets and does not move "last sent" back.
    let mut buf = rtp(0, false, 6, 740, 0xC0C0_C0C0, 160);
    s.handle_packet(ms(t0, 81), Leg::B, false, pc, &mut buf);
    assert_eq!(header(&buf), (0, false, 1002, 50320, 0xB0B0_B0B0));
    // A second transfer to D, 120 ms after the last packet: ts advances by 120 ms * 8 kHz.
    s.replace_leg(Leg::B, Some(pd));
    let mut buf = rtp(0, false, 300, 7000, 0xD0D0_D0D0, 160);
    assert_eq!(
        s.handle_packet(ms(t0, 201), Leg::B, false, pd, &mut buf),
        to(Leg::A, pa)
    );
    assert_eq!(header(&buf), (0, false, 1005, 51600, 0xB0B0_B0B0));
    // A's audio reaches the new end untouched.
    let orig = rtp(0, false, 5, 100, 0xA, 160);
    let mut buf = orig.clone();
    assert_eq!(
        s.handle_packet(ms(t0, 202), Leg::A, false, pa, &mut buf),
        to(Leg::B, pd)
    );
    assert_eq!(buf, orig);
}

#[test]
fn telephone_event_payload_type_is_rewritten() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb) = (addr("192.0.2.10:4000"), addr("192.0.2.20:5000"));
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    assert!(s.set_pt_map(Leg::A, 101, 96));
    assert!(s.set_pt_map(Leg::B, 96, 101));
    let mut buf = rtp(101, true, 1, 0, 0xA, 4);
    s.handle_packet(t0, Leg::A, false, pa, &mut buf);
    assert_eq!(header(&buf), (96, true, 1, 0, 0xA), "marker bit kept");
    let mut buf = rtp(101, false, 2, 0, 0xA, 4);
    s.handle_packet(t0, Leg::A, false, pa, &mut buf);
    assert_eq!(header(&buf).0, 96);
    let mut buf = rtp(0, false, 3, 0, 0xA, 160);
    s.handle_packet(t0, Leg::A, false, pa, &mut buf);
    assert_eq!(header(&buf).0, 0, "audio PT untouched");
    let mut buf = rtp(96, false, 1, 0, 0xB, 4);
    s.handle_packet(t0, Leg::B, false, pb, &mut buf);
    assert_eq!(header(&buf).0, 101);
    // Replacing a mapping, the table limit, and clearing.
    assert!(s.set_pt_map(Leg::A, 101, 97));
    for pt in 13..16 {
        assert!(s.set_pt_map(Leg::A, pt, pt));
    }
    assert!(!s.set_pt_map(Leg::A, 20, 21));
    let mut buf = rtp(101, false, 4, 0, 0xA, 4);
    s.handle_packet(t0, Leg::A, false, pa, &mut buf);
    assert_eq!(header(&buf).0, 97);
    s.clear_pt_map(Leg::A);
    let mut buf = rtp(101, false, 5, 0, 0xA, 4);
    s.handle_packet(t0, Leg::A, false, pa, &mut buf);
    assert_eq!(header(&buf).0, 101);
}

#[test]
fn rfc3550_loss_and_jitter_with_reordering_and_a_gap() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb) = (addr("192.0.2.10:4000"), addr("192.0.2.20:5000"));
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    // Sent every 20 ms with ts = 1000 + 160 * seq. Arrivals: 0..=4 on time, 6 on time then 5
    // right after it (20 ms late), 7 on time, 8..=10 lost, 11 on time.
    let arrivals: [(u16, u64); 9] = [
        (0, 0),
        (1, 20),
        (2, 40),
        (3, 60),
        (4, 80),
        (6, 120),
        (5, 120),
        (7, 140),
        (11, 220),
    ];
    for (seq, at) in arrivals {
        let mut buf = rtp(0, false, seq, 1000 + 160 * u32::from(seq), 0x5555, 160);
        s.handle_packet(ms(t0, at), Leg::A, false, pa, &mut buf);
    }
    let st = s.stats(Leg::A);
    // A.1/A.3: base = 1 (seq 0 is on probation), extended max 11 → expected 11, received 8.
    assert_eq!((st.packets, st.expected, st.lost), (9, 11, 3));
    // A.8 (scaled by 16): seq 5 transit +160 → J16 = 160; seq 7 |D| = 160 → 160 + 160 - 10 = 310;
    // seq 11 D = 0 → 310 - 19 = 291; J = 291 >> 4 = 18 timestamp units = 2.25 ms at 8 kHz.
    assert_eq!(st.jitter, 18);
    assert!((st.jitter_ms - 2.25).abs() < 1e-9);
}

#[test]
fn media_timeout_fires_once_and_rearms_on_new_rtp() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        rtp_timeout: Some(Duration::from_secs(60)),
        ..SessionConfig::default()
    };
    let mut s = session(t0, cfg);
    let pa = addr("192.0.2.10:4000");
    s.update_remote(Leg::A, pa);
    assert_eq!(s.poll_timeout(), Some(ms(t0, 60_000)));
    let mut buf = rtp(0, false, 1, 0, 0xA, 20);
    s.handle_packet(ms(t0, 30_000), Leg::A, false, pa, &mut buf);
    assert_eq!(s.poll_timeout(), Some(ms(t0, 90_000)));
    s.handle_timeout(ms(t0, 89_999));
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(ms(t0, 90_000));
    assert_eq!(
        s.poll_event(),
        Some(MediaEvent::Timeout {
            session: SessionId(1),
            idle: Duration::from_secs(60)
        })
    );
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(ms(t0, 200_000));
    assert_eq!(s.poll_event(), None, "fires once");
    let mut buf = rtp(0, false, 2, 160, 0xA, 20);
    s.handle_packet(ms(t0, 300_000), Leg::A, false, pa, &mut buf);
    assert_eq!(s.poll_timeout(), Some(ms(t0, 360_000)));
}

#[test]
fn hold_suspends_the_media_timeout() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    s.set_hold(ms(t0, 10_000), Leg::B, true);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(ms(t0, 1_000_000));
    assert_eq!(s.poll_event(), None);
    s.set_hold(ms(t0, 1_000_000), Leg::B, false);
    assert_eq!(
        s.poll_timeout(),
        Some(ms(t0, 1_060_000)),
        "restarts when the hold ends"
    );
    s.handle_timeout(ms(t0, 1_060_000));
    assert!(matches!(s.poll_event(), Some(MediaEvent::Timeout { .. })));
}

#[test]
fn media_timeout_can_be_off() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        rtp_timeout: None,
        ..SessionConfig::default()
    };
    let mut s = session(t0, cfg);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(ms(t0, 10_000_000));
    assert_eq!(s.poll_event(), None);
}

#[test]
fn malformed_and_undeliverable_packets_are_dropped() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let pa = addr("192.0.2.10:4000");
    s.update_remote(Leg::A, pa);
    for bad in [
        &[][..],
        &[0x80, 0, 0, 1][..],
        &rtp(0, false, 1, 0, 1, 10)[..],
    ] {
        let mut buf = bad.to_vec();
        if buf.len() > 12 {
            buf[0] = 0x40; // version 1
        }
        assert_eq!(
            s.handle_packet(t0, Leg::A, false, pa, &mut buf),
            Forward::Drop(DropReason::Malformed)
        );
    }
    // CSRC count says 15 but the packet is short.
    let mut buf = rtp(0, false, 1, 0, 1, 10);
    buf[0] = 0x8f;
    assert_eq!(
        s.handle_packet(t0, Leg::A, false, pa, &mut buf),
        Forward::Drop(DropReason::Malformed)
    );
    // Extension header announced but truncated, and an extension that fits.
    let mut buf = rtp(0, false, 1, 0, 1, 2);
    buf[0] = 0x90;
    assert_eq!(
        s.handle_packet(t0, Leg::A, false, pa, &mut buf),
        Forward::Drop(DropReason::Malformed)
    );
    let mut buf = rtp(0, false, 1, 0, 1, 0);
    buf[0] = 0x90;
    buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
    assert_eq!(rtp_header(&buf), Some((1, 1, 0)));
    buf.truncate(buf.len() - 1);
    assert_eq!(rtp_header(&buf), None);
    // SRTP-style: padding bit set, last byte is an auth tag, not a pad count: still forwarded.
    let mut buf = rtp(0, false, 1, 0, 1, 10);
    buf[0] = 0xa0;
    *buf.last_mut().unwrap() = 0xff;
    assert_eq!(rtp_header(&buf), Some((1, 1, 0)));
    // B has no remote yet.
    let mut buf = rtp(0, false, 1, 0, 1, 10);
    assert_eq!(
        s.handle_packet(t0, Leg::A, false, pa, &mut buf),
        Forward::Drop(DropReason::NoDestination)
    );
    let st = s.stats(Leg::A);
    assert_eq!(
        (st.dropped_malformed, st.dropped_no_destination, st.packets),
        (5, 1, 1)
    );
}

#[test]
fn rtcp_goes_port_to_port_or_over_the_mux() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb) = (addr("192.0.2.10:4000"), addr("192.0.2.20:5000"));
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    // A receiver report: V=2, RC=0, PT=201, length 1 word, SSRC.
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 0xA];
    let mut buf = rr;
    let a_rtcp = addr("192.0.2.10:4001");
    assert_eq!(
        s.handle_packet(t0, Leg::A, true, a_rtcp, &mut buf),
        Forward::To {
            leg: Leg::B,
            rtcp: true,
            dst: addr("192.0.2.20:5001")
        }
    );
    assert_eq!(buf, rr);
    // B uses rtcp-mux: its RTCP arrives on the RTP port, and A's RTCP goes to its RTP port
    // from B's RTP socket.
    s.set_rtcp_mux(Leg::B, true);
    let mut buf = rr;
    assert_eq!(
        s.handle_packet(t0, Leg::A, true, a_rtcp, &mut buf),
        Forward::To {
            leg: Leg::B,
            rtcp: false,
            dst: pb
        }
    );
    let mut buf = [0x80u8, 200, 0, 1, 0, 0, 0, 0xB];
    assert_eq!(
        s.handle_packet(t0, Leg::B, false, pb, &mut buf),
        Forward::To {
            leg: Leg::A,
            rtcp: true,
            dst: a_rtcp
        }
    );
    assert_eq!(s.stats(Leg::B).rtcp_packets, 1);
    assert_eq!(s.stats(Leg::B).packets, 0, "not counted as RTP");
    assert!(is_rtcp_mux_packet(&rr));
    assert!(!is_rtcp_mux_packet(&rtp(0, true, 1, 0, 1, 0)));
    assert!(!is_rtcp_mux_packet(&rtp(101, true, 1, 0, 1, 0)));
}

#[test]
fn rtcp_sender_reports_follow_the_continued_stream() {
    let t0 = Instant::now();
    let mut s = session(t0, SessionConfig::default());
    let (pa, pb, pc) = (
        addr("192.0.2.10:4000"),
        addr("192.0.2.20:5000"),
        addr("192.0.2.30:6000"),
    );
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, pb);
    let mut buf = rtp(0, false, 10, 1000, 0xB, 160);
    s.handle_packet(t0, Leg::B, false, pb, &mut buf);
    s.replace_leg(Leg::B, Some(pc));
    let mut buf = rtp(0, false, 500, 80_000, 0xC, 160);
    s.handle_packet(ms(t0, 20), Leg::B, false, pc, &mut buf);
    assert_eq!(header(&buf), (0, false, 11, 1160, 0xB));
    // SR from C: SSRC 0xC, NTP (8 bytes), RTP ts 80_160, counts (8 bytes) → 28 bytes, length 6.
    let mut sr = vec![0x80u8, 200, 0, 6, 0, 0, 0, 0xC];
    sr.extend_from_slice(&[0; 8]);
    sr.extend_from_slice(&80_160u32.to_be_bytes());
    sr.extend_from_slice(&[0; 8]);
    s.handle_packet(ms(t0, 21), Leg::B, true, addr("192.0.2.30:6001"), &mut sr);
    assert_eq!(&sr[4..8], &0xBu32.to_be_bytes());
    assert_eq!(&sr[16..20], &1320u32.to_be_bytes());
}
