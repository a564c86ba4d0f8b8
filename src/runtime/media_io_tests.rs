//! Real sockets on 127.0.0.1, a small random port range above 40000, deadlines instead of sleeps.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;

const DEADLINE: Duration = Duration::from_secs(5);

fn cfg(pairs: u16) -> RelayConfig {
    let start = 40000 + 2 * rand::random_range(0..9000u16);
    RelayConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port_start: start,
        port_end: start + 2 * pairs,
        socket_buffer: 1 << 20,
        workers: 2,
        rtp_timeout: Duration::from_secs(60),
        latch_packets: 3,
        latch_window: Duration::from_millis(500),
        port_quarantine: Duration::ZERO,
    }
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(160 * u32::from(seq)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// The next datagram on `s` before the deadline.
fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[tokio::test]
async fn rtp_both_ways_arrives_byte_identical() {
    let relay = MediaRelay::start(cfg(8)).unwrap();
    let h = relay.handle();
    let (pa, pb) = (phone(), phone());
    let ports = h.open_session("call-1").await.unwrap();
    let id = ports.session;
    h.set_remote(id, Leg::A, pa.local_addr().unwrap())
        .await
        .unwrap();
    h.set_remote(id, Leg::B, pb.local_addr().unwrap())
        .await
        .unwrap();
    let (ra, rb) = (local(ports.a.rtp), local(ports.b.rtp));
    assert_eq!(h.rtp_addr(&ports, Leg::A), ra);
    for seq in 0..20u16 {
        let p = rtp(seq, 0xAAAA_0001);
        pa.send_to(&p, ra).unwrap();
        assert_eq!(recv(&pb), Some((p, rb)), "A→B packet {seq}");
        let p = rtp(1000 + seq, 0xBBBB_0002);
        pb.send_to(&p, rb).unwrap();
        assert_eq!(recv(&pa), Some((p, ra)), "B→A packet {seq}");
    }
    // RTCP port to port.
    let (ca, cb) = (phone(), phone());
    h.set_remote_rtcp(id, Leg::B, cb.local_addr().unwrap())
        .await
        .unwrap();
    let rr = [0x80u8, 201, 0, 1, 0xAA, 0xAA, 0, 1];
    ca.send_to(&rr, local(ports.a.rtcp)).unwrap();
    assert_eq!(recv(&cb), Some((rr.to_vec(), local(ports.b.rtcp))));

    let (sa, sb) = h.stats(id).await.unwrap();
    assert_eq!((sa.packets, sa.forwarded, sa.rtcp_packets), (20, 20, 1));
    assert_eq!((sb.packets, sb.lost), (20, 0));
    let (sa, sb) = h.close_session(id).await.unwrap();
    assert_eq!((sa.bytes, sb.bytes), (20 * 172, 20 * 172));
    assert!(matches!(
        h.close_session(id).await,
        Err(MediaError::UnknownSession(_))
    ));
    assert!(matches!(
        h.stats(id).await,
        Err(MediaError::UnknownSession(_))
    ));
    let c = h.counters();
    assert_eq!((c.received, c.forwarded, c.send_failed), (41, 41, 0));
}

#[tokio::test]
async fn natted_phone_gets_audio_after_latching() {
    let relay = MediaRelay::start(cfg(8)).unwrap();
    let h = relay.handle();
    let sdp_a = phone(); // the address the phone's SDP claims
    let real_a = phone(); // where its packets really come from
    let pb = phone();
    let ports = h.open_session("call-nat").await.unwrap();
    let id = ports.session;
    h.set_remote(id, Leg::A, sdp_a.local_addr().unwrap())
        .await
        .unwrap();
    h.set_remote(id, Leg::B, pb.local_addr().unwrap())
        .await
        .unwrap();
    let (ra, rb) = (local(ports.a.rtp), local(ports.b.rtp));

    // Before A sends, B's audio goes to the SDP address.
    pb.send_to(&rtp(1, 0xB), rb).unwrap();
    assert_eq!(recv(&sdp_a).map(|p| p.0), Some(rtp(1, 0xB)));
    // A sends from its real (NAT) address; once B got it, the relay has latched.
    for seq in 0..3 {
        real_a.send_to(&rtp(seq, 0xA), ra).unwrap();
        assert_eq!(recv(&pb).map(|p| p.0), Some(rtp(seq, 0xA)));
    }
    for seq in 2..6 {
        pb.send_to(&rtp(seq, 0xB), rb).unwrap();
        assert_eq!(recv(&real_a), Some((rtp(seq, 0xB), ra)));
    }
    // Locked after 3 packets: a stranger on A's port is dropped and counted.
    let stranger = phone();
    stranger.send_to(&rtp(99, 0xE), ra).unwrap();
    real_a.send_to(&rtp(3, 0xA), ra).unwrap();
    assert_eq!(recv(&pb).map(|p| p.0), Some(rtp(3, 0xA)));
    let end = Instant::now() + DEADLINE;
    let sa = loop {
        let (sa, _) = h.stats(id).await.unwrap();
        if sa.dropped_unknown_source == 1 || Instant::now() > end {
            break sa;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(sa.dropped_unknown_source, 1);
    assert_eq!(sa.latched, Some(real_a.local_addr().unwrap()));
    assert!(sa.locked);
}

#[tokio::test]
async fn media_timeout_fires() {
    let mut c = cfg(8);
    c.rtp_timeout = Duration::from_millis(200);
    let relay = MediaRelay::start(c).unwrap();
    let h = relay.handle();
    let mut events = h.subscribe();
    let held = h.open_session("call-held").await.unwrap();
    h.set_hold(held.session, Leg::B, true).await.unwrap();
    let ports = h.open_session("call-silent").await.unwrap();
    let ev = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    match ev {
        MediaEvent::Timeout { session, idle } => {
            assert_eq!(session, ports.session, "the held call does not time out");
            assert!(idle >= Duration::from_millis(200));
        }
    }
}

#[tokio::test]
async fn port_exhaustion_is_an_error() {
    let relay = MediaRelay::start(cfg(4)).unwrap();
    let h = relay.handle();
    let s1 = h.open_session("c1").await.unwrap();
    let _s2 = h.open_session("c2").await.unwrap();
    let e = h.open_session("c3").await.unwrap_err();
    assert!(matches!(e, MediaError::PortsExhausted { .. }), "{e:?}");
    assert_eq!(e.sip_status(), 503);
    // Closing frees the pairs (quarantine is zero in this test).
    h.close_session(s1.session).await.unwrap();
    let s3 = h.open_session("c3").await.unwrap();
    assert_ne!(s3.session, s1.session);
}

#[tokio::test]
async fn transfer_keeps_the_stream_continuous_and_maps_telephone_events() {
    let relay = MediaRelay::start(cfg(8)).unwrap();
    let h = relay.handle();
    let (pa, pb, pc) = (phone(), phone(), phone());
    let ports = h.open_session("call-xfer").await.unwrap();
    let id = ports.session;
    h.set_remote(id, Leg::A, pa.local_addr().unwrap())
        .await
        .unwrap();
    h.set_remote(id, Leg::B, pb.local_addr().unwrap())
        .await
        .unwrap();
    let rb = local(ports.b.rtp);
    for seq in 0..3u16 {
        pb.send_to(&rtp(seq, 0xB), rb).unwrap();
        assert_eq!(recv(&pa).map(|p| p.0), Some(rtp(seq, 0xB)));
    }
    // B is transferred to C, who sends telephone-events with PT 96; A expects 101.
    h.replace_leg(id, Leg::B, Some(pc.local_addr().unwrap()))
        .await
        .unwrap();
    assert!(h.set_pt_map(id, Leg::B, 96, 101).await.unwrap());
    let mut p = rtp(5000, 0xC);
    p[1] = 96;
    pc.send_to(&p, rb).unwrap();
    let (got, _) = recv(&pa).unwrap();
    assert_eq!(got[1], 101);
    assert_eq!(&got[2..4], &3u16.to_be_bytes(), "sequence continues");
    assert_eq!(&got[8..12], &0xBu32.to_be_bytes(), "SSRC kept");
    assert_eq!(&got[12..], &p[12..], "payload untouched");
    // And A's audio now reaches C.
    pa.send_to(&rtp(1, 0xA), local(ports.a.rtp)).unwrap();
    assert_eq!(recv(&pc), Some((rtp(1, 0xA), rb)));
}
