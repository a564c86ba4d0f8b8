//! RTP relay speed.
//! `cargo bench --bench rtp_relay -- --warm-up-time 1 --measurement-time 3`
//! Load mode (see `load`): `RTP_RELAY_LOAD_CALLS=2000 RTP_RELAY_LOAD_SECS=10 cargo bench --bench rtp_relay`
//! (add `RTP_RELAY_LOAD_DIRECT=1` for the no-relay baseline).
//!
//! - `handle_packet/*`: the sans-IO per-packet path (latched session, G.711 packet).
//! - `loopback/*`: one call through a real [`MediaRelay`] on 127.0.0.1: batches of 32 packets
//!   sent from phone A, all received at phone B (end-to-end time per packet, kernel included).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dialtone::media::{Leg, PortPair, RelaySession, SessionConfig, SessionId};
use dialtone::runtime::media_io::{MediaRelay, RelayConfig};

fn rtp(seq: u16, pt: u8, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(160 * u32::from(seq)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xd5u8, 160));
    p
}

fn latched_session(t0: Instant) -> (RelaySession, SocketAddr) {
    let mut s = RelaySession::new(
        t0,
        SessionId(1),
        PortPair {
            rtp: 10000,
            rtcp: 10001,
        },
        PortPair {
            rtp: 10002,
            rtcp: 10003,
        },
        SessionConfig::default(),
    );
    let pa: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    s.update_remote(Leg::A, pa);
    s.update_remote(Leg::B, "192.0.2.20:5000".parse().unwrap());
    (s, pa)
}

fn bench_handle_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("handle_packet");
    g.bench_function("forward_latched", |b| {
        let t0 = Instant::now();
        let (mut s, pa) = latched_session(t0);
        let mut buf = rtp(0, 0, 0xAAAA);
        let mut seq = 0u16;
        let mut now = t0;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            now += Duration::from_millis(20);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(s.handle_packet(now, Leg::A, false, pa, black_box(&mut buf)))
        });
    });
    g.bench_function("forward_rewrite_continuity_and_pt", |b| {
        let t0 = Instant::now();
        let (mut s, pa) = latched_session(t0);
        let pc: SocketAddr = "192.0.2.30:6000".parse().unwrap();
        let mut buf = rtp(0, 0, 0xBBBB);
        s.handle_packet(
            t0,
            Leg::B,
            false,
            "192.0.2.20:5000".parse().unwrap(),
            &mut buf,
        );
        s.replace_leg(Leg::B, Some(pc));
        s.set_pt_map(Leg::B, 96, 101);
        let mut seq = 0u16;
        let mut now = t0;
        let orig = rtp(0, 96, 0xCCCC);
        b.iter(|| {
            seq = seq.wrapping_add(1);
            now += Duration::from_millis(20);
            buf.copy_from_slice(&orig);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(s.handle_packet(now, Leg::B, false, pc, black_box(&mut buf)))
        });
        let _ = pa;
    });
    g.bench_function("drop_unknown_source", |b| {
        let t0 = Instant::now();
        let (mut s, pa) = latched_session(t0);
        let mut buf = rtp(0, 0, 0xAAAA);
        for i in 0..10 {
            s.handle_packet(t0 + Duration::from_millis(i), Leg::A, false, pa, &mut buf);
        }
        let evil: SocketAddr = "198.51.100.66:6666".parse().unwrap();
        b.iter(|| black_box(s.handle_packet(t0, Leg::A, false, evil, black_box(&mut buf))));
    });
    g.finish();
}

fn bench_loopback(c: &mut Criterion) {
    let start = 40000 + 2 * (std::process::id() % 9000) as u16;
    let relay = MediaRelay::start(RelayConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port_start: start,
        port_end: start + 16,
        workers: 1,
        ..RelayConfig::default()
    })
    .unwrap();
    let h = relay.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pa = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pb = UdpSocket::bind("127.0.0.1:0").unwrap();
    pb.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ports = rt.block_on(async {
        let p = h.open_session("bench").await.unwrap();
        h.set_remote(p.session, Leg::A, pa.local_addr().unwrap())
            .await
            .unwrap();
        h.set_remote(p.session, Leg::B, pb.local_addr().unwrap())
            .await
            .unwrap();
        p
    });
    let ra = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports.a.rtp);
    let pkts: Vec<Vec<u8>> = (0..32u16).map(|i| rtp(i, 0, 0xAAAA)).collect();
    let mut buf = [0u8; 2048];
    let mut g = c.benchmark_group("loopback");
    g.throughput(criterion::Throughput::Elements(32));
    g.bench_function("one_call_batch_of_32", |b| {
        b.iter(|| {
            for p in &pkts {
                pa.send_to(p, ra).unwrap();
            }
            for _ in 0..32 {
                // A lost packet shows up as a 2 s stall in the numbers.
                let _ = pb.recv_from(&mut buf);
            }
        });
    });
    g.finish();
    drop(relay);
}

criterion_group!(benches, bench_handle_packet, bench_loopback);

fn main() {
    if let Ok(calls) = std::env::var("RTP_RELAY_LOAD_CALLS") {
        let calls = calls.parse().expect("RTP_RELAY_LOAD_CALLS: a number");
        let secs = std::env::var("RTP_RELAY_LOAD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        load::run(calls, secs);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// `RTP_RELAY_LOAD_CALLS=2000 RTP_RELAY_LOAD_SECS=10 cargo bench --bench rtp_relay`:
/// N concurrent calls at 50 pps each way through the relay (2 workers), with all A phones on one
/// socket and all B phones on another (sendmmsg/recvmmsg on the generator side too, so the
/// generator stays cheap). Reports loss, one-way latency through the relay (send → receive,
/// loopback kernel path included), relay thread CPU per forwarded packet and RSS per call.
mod load {
    use std::mem::{size_of, zeroed};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use dialtone::media::Leg;
    use dialtone::runtime::media_io::{MediaRelay, RelayConfig};

    const PKT: usize = 172;
    const BUCKET_NS: u64 = 10_000;
    const BUCKETS: usize = 10_000;

    fn set_buf(s: &UdpSocket, bytes: i32) {
        for opt in [
            libc::SO_RCVBUFFORCE,
            libc::SO_SNDBUFFORCE,
            libc::SO_RCVBUF,
            libc::SO_SNDBUF,
        ] {
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const i32).cast(),
                    4,
                );
            }
        }
    }

    fn relay_cpu_ticks() -> u64 {
        let mut total = 0;
        for e in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let Some(open) = stat.find('(') else { continue };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            if !stat[open + 1..close].starts_with("rtp-relay") {
                continue;
            }
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            // Fields after ")": state=0, ... utime=11, stime=12.
            total += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            total += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        total
    }

    fn rss_bytes() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = s
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    fn to_sockaddr(a: SocketAddr, ss: &mut libc::sockaddr_in) {
        let SocketAddr::V4(a) = a else {
            panic!("v4 only")
        };
        ss.sin_family = libc::AF_INET as u16;
        ss.sin_port = a.port().to_be();
        ss.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    }

    struct Rx {
        received: u64,
        hist: Vec<u64>,
    }

    fn receiver(sock: UdpSocket, base: Instant, stop: Arc<AtomicBool>) -> Rx {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        const B: usize = 64;
        let mut bufs = vec![[0u8; 256]; B];
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: 256,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = (0..B)
            .map(|i| {
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_iov = &mut iov[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let mut rx = Rx {
            received: 0,
            hist: vec![0; BUCKETS],
        };
        while !stop.load(Ordering::Relaxed) {
            let n = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    B as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                continue;
            }
            let now = base.elapsed().as_nanos() as u64;
            for b in &bufs[..n as usize] {
                let sent = u64::from_be_bytes(b[12..20].try_into().unwrap());
                let lat = now.saturating_sub(sent);
                rx.hist[((lat / BUCKET_NS) as usize).min(BUCKETS - 1)] += 1;
            }
            rx.received += n as u64;
        }
        rx
    }

    fn percentile(hist: &[u64], total: u64, p: f64) -> f64 {
        let want = (total as f64 * p).ceil() as u64;
        let mut acc = 0;
        for (i, c) in hist.iter().enumerate() {
            acc += c;
            if acc >= want {
                return ((i + 1) as u64 * BUCKET_NS) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }

    pub fn run(calls: usize, secs: u64) {
        let start = 42000 + 2 * (std::process::id() % 1000) as u16;
        let rss0 = rss_bytes();
        let relay = MediaRelay::start(RelayConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_start: start,
            port_end: start + 4 * calls as u16 + 64,
            ..RelayConfig::default()
        })
        .unwrap();
        let h = relay.handle();
        let pa = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pb = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_buf(&pa, 32 << 20);
        set_buf(&pb, 32 << 20);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut dst = Vec::with_capacity(calls * 2);
        rt.block_on(async {
            for i in 0..calls {
                let p = h.open_session(&format!("load-{i}")).await.unwrap();
                h.set_remote(p.session, Leg::A, pa.local_addr().unwrap())
                    .await
                    .unwrap();
                h.set_remote(p.session, Leg::B, pb.local_addr().unwrap())
                    .await
                    .unwrap();
                dst.push((h.rtp_addr(&p, Leg::A), h.rtp_addr(&p, Leg::B)));
            }
        });
        let rss1 = rss_bytes();
        // Baseline: phones send to each other directly (same generator, no relay hop), to tell
        // the relay's added latency from the generator's and the scheduler's.
        if std::env::var_os("RTP_RELAY_LOAD_DIRECT").is_some() {
            let (a, b) = (pa.local_addr().unwrap(), pb.local_addr().unwrap());
            dst.iter_mut().for_each(|d| *d = (b, a));
            println!("DIRECT baseline: no relay in the path");
        }
        let base = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let ra = {
            let (s, st) = (pa.try_clone().unwrap(), stop.clone());
            std::thread::spawn(move || receiver(s, base, st))
        };
        let rb = {
            let (s, st) = (pb.try_clone().unwrap(), stop.clone());
            std::thread::spawn(move || receiver(s, base, st))
        };
        // Generator: every 1 ms a 1/20 slice of the calls sends one packet each way.
        let mut addrs_a: Vec<libc::sockaddr_in> = vec![unsafe { zeroed() }; calls];
        let mut addrs_b: Vec<libc::sockaddr_in> = vec![unsafe { zeroed() }; calls];
        for (i, (a, b)) in dst.iter().enumerate() {
            to_sockaddr(*a, &mut addrs_a[i]);
            to_sockaddr(*b, &mut addrs_b[i]);
        }
        let mut pkts = vec![[0u8; PKT]; calls];
        let mut iov: Vec<libc::iovec> = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: PKT
            };
            calls
        ];
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; calls];
        let ticks0 = relay_cpu_ticks();
        let c0 = h.counters();
        let mut sent = 0u64;
        let end = base + Duration::from_secs(secs);
        let mut seq = 0u16;
        let mut next = base;
        let mut slice = 0usize;
        while Instant::now() < end {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            next += Duration::from_millis(1);
            let lo = slice * calls / 20;
            let hi = (slice + 1) * calls / 20;
            slice = (slice + 1) % 20;
            if slice == 0 {
                seq = seq.wrapping_add(1);
            }
            for (sock, addrs, dir) in [(&pa, &mut addrs_a, 0u32), (&pb, &mut addrs_b, 1u32)] {
                let t = base.elapsed().as_nanos() as u64;
                for i in lo..hi {
                    let p = &mut pkts[i];
                    p[0] = 0x80;
                    p[1] = 0;
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    p[8..12].copy_from_slice(&(((i as u32) << 1) | dir).to_be_bytes());
                    p[12..20].copy_from_slice(&t.to_be_bytes());
                    iov[i].iov_base = p.as_mut_ptr().cast();
                    hdrs[i].msg_hdr.msg_iov = &mut iov[i];
                    hdrs[i].msg_hdr.msg_iovlen = 1;
                    hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
                    hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                }
                let mut off = lo;
                while off < hi {
                    let r = unsafe {
                        libc::sendmmsg(
                            sock.as_raw_fd(),
                            hdrs.as_mut_ptr().add(off),
                            (hi - off) as u32,
                            0,
                        )
                    };
                    if r <= 0 {
                        off += 1;
                        continue;
                    }
                    off += r as usize;
                    sent += r as u64;
                }
            }
        }
        let wall = base.elapsed();
        let ticks1 = relay_cpu_ticks();
        let c1 = h.counters();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let (ra, rb) = (ra.join().unwrap(), rb.join().unwrap());
        let received = ra.received + rb.received;
        let mut hist = ra.hist;
        for (x, y) in hist.iter_mut().zip(&rb.hist) {
            *x += y;
        }
        let clk = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let cpu_s = (ticks1 - ticks0) as f64 / clk;
        let fwd = (c1.forwarded - c0.forwarded).max(1);
        println!(
            "calls {calls}, {secs} s, {:.0} pps offered",
            sent as f64 / wall.as_secs_f64()
        );
        println!(
            "sent {sent}, received {received}, loss {:.4} %, relay send failures {}",
            100.0 * (sent.saturating_sub(received)) as f64 / sent.max(1) as f64,
            c1.send_failed - c0.send_failed
        );
        println!(
            "relay CPU {:.2} s over {:.1} s wall = {:.2} us per forwarded packet",
            cpu_s,
            wall.as_secs_f64(),
            cpu_s * 1e6 / fwd as f64
        );
        println!(
            "latency send->receive (loopback, through relay): p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us",
            percentile(&hist, received, 0.50),
            percentile(&hist, received, 0.99),
            percentile(&hist, received, 0.999)
        );
        println!(
            "RSS: {:.1} MiB before, +{:.1} KiB per call (sessions + relay)",
            rss0 as f64 / 1048576.0,
            rss1.saturating_sub(rss0) as f64 / 1024.0 / calls as f64
        );
        drop(relay);
    }
}
