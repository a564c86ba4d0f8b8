//! AMI event fan-out under load: 100 AMI clients (plus one that never reads) logged in to a
//! real Dialtone on 127.0.0.1 while events arrive at the rate ~1,000 calls/s produce.
//!
//!   cargo bench --bench ami_fanout            (defaults: 100 clients, 20,000 events/s, 5 s)
//!   AMI_CLIENTS=100 AMI_RATE=20000 AMI_SECS=5 cargo bench --bench ami_fanout
//!   cargo bench --bench ami_fanout -- --clients-only 127.0.0.1:5038 user secret SECS
//!       (only the clients, against a running server: for a sipp run with/without them)
//!
//! Events are published on the server's AMI bus (what the call tracker feeds) with the send
//! time in a header; each client notes when the event's last byte arrived. Reported: events
//! delivered per second, p50/p99/max delivery latency, the server's RSS before/after, and
//! whether the stalled client was disconnected.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialtone::ami::events::AmiEvent;
use dialtone::ami::session::WireBatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn login(addr: std::net::SocketAddr, user: &str, secret: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect AMI");
    s.write_all(
        format!("Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("Authentication accepted") {
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0, "login refused");
        buf.extend_from_slice(&b[..n]);
    }
    s
}

/// Read until EOF or `until`; latencies (ns) of events carrying `X-Sent`, and the count of
/// all events.
async fn client(mut s: TcpStream, until: Instant) -> (Hist, u64) {
    let mut lat = Hist::new();
    let mut count = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut b = vec![0u8; 1 << 17];
    let end_of_frame = memchr::memmem::Finder::new(b"\r\n\r\n");
    let sent_hdr = memchr::memmem::Finder::new(b"X-Sent: ");
    let stamp_hdr = memchr::memmem::Finder::new(b"Timestamp: ");
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let n = match tokio::time::timeout(left, s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        let t = now_ns();
        buf.extend_from_slice(&b[..n]);
        let mut start = 0;
        while let Some(p) = end_of_frame.find(&buf[start..]) {
            let msg = &buf[start..start + p];
            if msg.starts_with(b"Event:") {
                count += 1;
                // Both stamps sit near the top of the frame (Timestamp is the first header
                // after Event): look only there.
                let head = &msg[..msg.len().min(96)];
                if let Some(i) = sent_hdr.find(head) {
                    let v = &msg[i + 8..];
                    let end = memchr::memchr(b'\r', v).unwrap_or(v.len());
                    if let Ok(sent) = std::str::from_utf8(&v[..end]).unwrap_or("").parse::<u64>() {
                        lat.record(t.saturating_sub(sent));
                    }
                } else if let Some(i) = stamp_hdr.find(head) {
                    // A live server with `timestampevents`: stamped when the event was built.
                    let v = &msg[i + 11..];
                    let end = memchr::memchr(b'\r', v).unwrap_or(v.len());
                    if let Ok(sent) = std::str::from_utf8(&v[..end]).unwrap_or("").parse::<f64>() {
                        lat.record(t.saturating_sub((sent * 1e9) as u64));
                    }
                }
            }
            start += p + 4;
        }
        buf.drain(..start);
    }
    (lat, count)
}

/// Delivery latencies as a fixed histogram (10 µs buckets to 100 ms, then 1 ms buckets to
/// 10 s): constant memory and no sort, so the measuring clients stay cheap next to the server.
#[derive(Clone)]
struct Hist {
    counts: Vec<u64>,
    max_ns: u64,
    n: u64,
}

const FINE: u64 = 10_000; // 10 µs
const FINE_BUCKETS: u64 = 10_000; // to 100 ms
const COARSE: u64 = 1_000_000; // 1 ms
const COARSE_BUCKETS: u64 = 9_900; // to 10 s

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; (FINE_BUCKETS + COARSE_BUCKETS + 1) as usize],
            max_ns: 0,
            n: 0,
        }
    }

    fn record(&mut self, ns: u64) {
        let i = if ns < FINE * FINE_BUCKETS {
            ns / FINE
        } else {
            (FINE_BUCKETS + (ns - FINE * FINE_BUCKETS) / COARSE).min(FINE_BUCKETS + COARSE_BUCKETS)
        };
        self.counts[i as usize] += 1;
        self.max_ns = self.max_ns.max(ns);
        self.n += 1;
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.max_ns = self.max_ns.max(o.max_ns);
        self.n += o.n;
    }

    /// The upper edge of the bucket holding quantile `p`, in ms.
    fn pct(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        if p >= 1.0 {
            return self.max_ns as f64 / 1e6;
        }
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                let i = i as u64;
                let edge = if i < FINE_BUCKETS {
                    (i + 1) * FINE
                } else {
                    FINE * FINE_BUCKETS + (i - FINE_BUCKETS + 1) * COARSE
                };
                return edge.min(self.max_ns) as f64 / 1e6;
            }
        }
        self.max_ns as f64 / 1e6
    }
}

async fn clients_only(args: &[String]) {
    let addr: std::net::SocketAddr = args[0].parse().expect("addr");
    let (user, secret) = (&args[1], &args[2]);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30);
    let n = env("AMI_CLIENTS", 100);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let s = login(addr, user, secret).await;
        tasks.push(tokio::spawn(client(s, until)));
    }
    // One more that logs in and never reads: the server must drop it, not buffer for it.
    let mut stalled = login(addr, user, secret).await;
    println!("{n} AMI clients logged in (+1 that never reads); reading for {secs} s");
    let mut total = 0;
    let mut per_client = Vec::new();
    let mut lat = Hist::new();
    for t in tasks {
        let (l, c) = t.await.unwrap();
        total += c;
        per_client.push(c);
        lat.merge(&l);
    }
    per_client.sort_unstable();
    println!(
        "events received: {total} over {n} clients (per client min {} max {}); delivery latency \
         (needs ami.timestampevents): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        per_client.first().copied().unwrap_or(0),
        per_client.last().copied().unwrap_or(0),
        lat.pct(0.5),
        lat.pct(0.99),
        lat.pct(1.0)
    );
    let mut b = vec![0u8; 1 << 20];
    let mut stalled_bytes = 0usize;
    let disconnected = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => stalled_bytes += n,
            Err(_) => break false,
        }
    };
    println!(
        "stalled client disconnected by the server: {disconnected} ({stalled_bytes} bytes were \
         waiting in its socket)"
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--clients-only") {
        return clients_only(&args[i + 1..]).await;
    }
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n_clients = env("AMI_CLIENTS", 100);
    let rate = env("AMI_RATE", 20_000);
    let secs = env("AMI_SECS", 5);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "server: {{ sip_host: 127.0.0.1, sip_port: 0 }}\napi: {{ host: 127.0.0.1, port: 0 }}\n\
         ami:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n  users:\n    - {{ username: bench, secret: bench-secret, read: all, write: all }}\n\
         database: {{ url: \"sqlite://{}/b.db\" }}\nlogging: {{ level: error }}\n",
        dir.path().display()
    );
    let cfg = dialtone::config::parse(&yaml, "bench").unwrap().config;
    let server = dialtone::runtime::Server::start(&cfg).await.unwrap();
    let addr = server.ami_addr().unwrap();
    let bus = server.ami_events().unwrap();
    let rss0 = rss_kib();

    let until = Instant::now() + Duration::from_secs(secs + 3);
    let mut tasks = Vec::new();
    for _ in 0..n_clients {
        let s = login(addr, "bench", "bench-secret").await;
        tasks.push(tokio::spawn(client(s, until)));
    }
    // One client that logs in and never reads again.
    let mut stalled = login(addr, "bench", "bench-secret").await;
    let rss1 = rss_kib();

    // A Newstate-sized event (a channel block) per tick, in batches every millisecond.
    let per_ms = (rate / 1000).max(1);
    let total = rate * secs;
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut rss_peak = rss1;
    while sent < total {
        tick.tick().await;
        for _ in 0..per_ms {
            let mut ch = dialtone::ami::events::ChannelSnapshot::new(
                format!("PJSIP/1001-{:08x}", sent as u32),
                format!("1700000000.{sent}"),
            );
            ch.state = dialtone::ami::events::ChannelState::Ringing;
            ch.caller_id_num = "1001".into();
            ch.exten = "1002".into();
            let mut ev: AmiEvent = dialtone::ami::events::newstate(&ch);
            ev.body.insert(0, ("X-Sent".into(), now_ns().to_string()));
            let _ = bus.send(Arc::new(WireBatch::one(ev)));
            sent += 1;
        }
        if sent % (rate / 2).max(1) < per_ms {
            rss_peak = rss_peak.max(rss_kib());
        }
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let mut lat = Hist::new();
    let mut delivered = 0u64;
    for t in tasks {
        let (l, c) = t.await.unwrap();
        lat.merge(&l);
        delivered += c;
    }
    // The stalled client: the server gave up on it (EOF or reset once we read).
    let mut b = vec![0u8; 1 << 20];
    let mut stalled_bytes = 0usize;
    let disconnected = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => stalled_bytes += n,
            Err(_) => break false,
        }
    };
    let rss2 = rss_kib();
    println!("AMI fan-out: {n_clients} clients + 1 stalled, {rate} events/s for {secs} s");
    println!(
        "  published {sent} events in {send_secs:.2} s; delivered {delivered} ({:.0}/s across clients, {:.1}% of expected)",
        delivered as f64 / send_secs,
        100.0 * delivered as f64 / (sent * n_clients) as f64
    );
    println!(
        "  delivery latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        lat.pct(0.5),
        lat.pct(0.99),
        lat.pct(0.999),
        lat.pct(1.0)
    );
    println!(
        "  RSS KiB: before clients {rss0}, with clients {rss1}, peak during run {rss_peak}, after {rss2}"
    );
    println!(
        "  stalled client disconnected: {disconnected} (it had {stalled_bytes} bytes waiting in its socket)"
    );
    server.shutdown().await.unwrap();
}
