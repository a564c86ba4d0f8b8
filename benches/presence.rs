//! Presence/BLF load through the sans-IO engine (no sockets): 1,000 registered extensions,
//! 5,000 authenticated `dialog` subscriptions (5 watchers each), then bursts of state changes
//! (do-not-disturb on and off through the same path as the REST API). Reports NOTIFYs per
//! second, the per-change latency (from the change to its last NOTIFY leaving the engine) at
//! p50/p99, and the heap bytes per subscription (a counting allocator).
//!
//! `cargo bench --bench presence` (env: PRESENCE_EXTENSIONS, PRESENCE_WATCHERS, PRESENCE_ROUNDS)

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use dialtone::pbx::Pbx;
use dialtone::pbx::directory::{BindingRecord, Extension};
use dialtone::pbx::engine::{Command, Output, PbxConfig};
use dialtone::pbx::peer::Peer;
use dialtone::pbx::presence::PresenceStatus;
use dialtone::pbx::registrar::RegistrarConfig;
use dialtone::sip::auth::{Algorithm, expected_response, ha1};
use dialtone::sip::transaction::TimerConfig;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ext(n: usize) -> String {
    format!("{}", 10000 + n)
}

fn watcher_peer(i: usize) -> Peer {
    let a: SocketAddr = format!("127.1.{}.{}:5060", (i / 250) % 250 + 1, i % 250 + 1)
        .parse()
        .unwrap();
    Peer::udp(a)
}

/// Drain outputs; count NOTIFYs, answer them 200 (as a phone would).
fn pump(pbx: &mut Pbx, now: Instant, answer: bool) -> usize {
    let mut notifies = 0;
    let mut replies = Vec::new();
    while let Some(o) = pbx.poll_output() {
        if let Output::Transmit { to, bytes } = o
            && bytes.starts_with(b"NOTIFY ")
        {
            notifies += 1;
            if answer {
                replies.push((to, ok_for(&bytes)));
            }
        }
    }
    for (to, r) in replies {
        pbx.handle_datagram(now, to, r.as_bytes());
        while pbx.poll_output().is_some() {}
    }
    notifies
}

/// `200 OK` for a NOTIFY (copies Via, From, To, Call-ID, CSeq).
fn ok_for(req: &[u8]) -> String {
    let text = String::from_utf8_lossy(req);
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in text.split("\r\n").take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if matches!(name.as_str(), "via" | "from" | "to" | "call-id" | "cseq") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn subscribe_text(
    watcher: &str,
    resource: &str,
    i: usize,
    cseq: u32,
    auth: Option<&str>,
) -> String {
    let mut t = format!(
        "SUBSCRIBE sip:{resource}@bench SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsub{i}x{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{watcher}@bench>;tag=w{i}\r\nTo: <sip:{resource}@bench>\r\n\
         Call-ID: blf-{i}@bench\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{watcher}@127.0.0.1:5060>\r\n\
         Event: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 3600\r\n"
    );
    if let Some(a) = auth {
        t.push_str(&format!("Authorization: {a}\r\n"));
    }
    t.push_str("Content-Length: 0\r\n\r\n");
    t
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / list mode: nothing to list
    }
    let n_ext = env("PRESENCE_EXTENSIONS", 1000);
    let n_watch = env("PRESENCE_WATCHERS", 5000);
    let rounds = env("PRESENCE_ROUNDS", 5);
    let t0 = Instant::now();
    let cfg = PbxConfig {
        realm: "bench".into(),
        user_agent: "bench".into(),
        timers: TimerConfig::default(),
        registrar: RegistrarConfig::default(),
        auth_failure_limit: 0,
        auth_failure_window: Duration::from_secs(60),
        ban_duration: Duration::from_secs(1),
        local_udp: "127.0.0.1:5060".parse().unwrap(),
        local_tcp: None,
        nonce_secret: [3; 32],
        nonce_lifetime: Duration::from_secs(3600),
        ring_timeout: Duration::from_secs(30),
        external_ip: None,
        external_media_ip: None,
        local_nets: Vec::new(),
        dnd_status: 486,
    };
    let mut pbx = Pbx::new(cfg, (t0, 1_800_000_000_000));
    let exts: Vec<Extension> = (0..n_ext)
        .map(|i| Extension::new(ext(i), format!("User {i}"), format!("pw{i}")))
        .collect();
    pbx.handle_command(t0, Command::LoadDirectory(exts));
    let records: Vec<BindingRecord> = (0..n_ext)
        .map(|i| BindingRecord {
            aor: ext(i),
            contact: format!("sip:{}@127.2.{}.{}:5060", ext(i), i / 250 + 1, i % 250 + 1),
            source: format!("127.2.{}.{}:5060", i / 250 + 1, i % 250 + 1),
            transport: "udp".into(),
            call_id: format!("reg-{i}"),
            cseq: 1,
            expires_at: 1_800_000_000 + 3600,
            user_agent: None,
            instance: None,
            registered_at: 1_800_000_000,
        })
        .collect();
    pbx.handle_command(t0, Command::RestoreBindings(records));
    while pbx.poll_output().is_some() {}

    // 5,000 subscriptions: watcher i (extension i % n_ext) watches extension (i / 5) % n_ext.
    let heap0 = LIVE.load(Ordering::Relaxed);
    let now = t0;
    let mut first = 0;
    for i in 0..n_watch {
        let watcher = ext(i % n_ext);
        let resource = ext((i * 7 + i / n_ext) % n_ext);
        let peer = watcher_peer(i);
        pbx.handle_datagram(
            now,
            peer,
            subscribe_text(&watcher, &resource, i, 1, None).as_bytes(),
        );
        let mut nonce = String::new();
        while let Some(o) = pbx.poll_output() {
            if let Output::Transmit { bytes, .. } = o {
                let t = String::from_utf8_lossy(&bytes);
                if let Some(p) = t.find("nonce=\"") {
                    let rest = &t[p + 7..];
                    nonce = rest[..rest.find('"').unwrap()].to_owned();
                }
            }
        }
        let uri = format!("sip:{resource}@bench");
        let pw = format!("pw{}", i % n_ext);
        let h1 = ha1(Algorithm::Md5, &watcher, "bench", &pw);
        let resp = expected_response(
            Algorithm::Md5,
            &h1,
            &nonce,
            Some("00000001"),
            Some("c0ffee"),
            Some("auth"),
            "SUBSCRIBE",
            &uri,
            None,
        );
        let auth = format!(
            "Digest username=\"{watcher}\", realm=\"bench\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
        );
        pbx.handle_datagram(
            now,
            peer,
            subscribe_text(&watcher, &resource, i, 2, Some(&auth)).as_bytes(),
        );
        first += pump(&mut pbx, now, true);
    }
    let subs = pbx.stats().subscriptions;
    // Let the subscribe transactions finish (Timer J), so only subscriptions stay.
    let later = now + Duration::from_secs(40);
    pbx.handle_timeout(later);
    while pbx.poll_output().is_some() {}
    let heap1 = LIVE.load(Ordering::Relaxed);
    println!(
        "{subs} subscriptions on {n_ext} extensions ({first} initial NOTIFYs); heap per subscription: {} bytes",
        (heap1 - heap0) / subs.max(1) as isize
    );

    // Bursts: every extension changes state (DND on, then off) — 5 watchers each.
    let mut lat: Vec<Duration> = Vec::with_capacity(rounds * n_ext * 2);
    let mut total = 0usize;
    let mut busy = Duration::ZERO;
    let mut now = later;
    for round in 0..rounds {
        for status in [PresenceStatus::DoNotDisturb, PresenceStatus::Available] {
            let burst = Instant::now();
            for i in 0..n_ext {
                let s = Instant::now();
                pbx.set_presence(now, &ext(i), status, None).unwrap();
                let n = pump(&mut pbx, now, true);
                total += n;
                lat.push(s.elapsed());
            }
            busy += burst.elapsed();
            now += Duration::from_millis(10);
            let _ = round;
        }
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{} state changes, {total} NOTIFYs in {:.3} s of engine time: {:.0} NOTIFY/s (incl. parsing each 200 OK); \
         per change (to its last NOTIFY): p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        busy.as_secs_f64(),
        total as f64 / busy.as_secs_f64(),
        p(0.50),
        p(0.99),
        lat.last().unwrap()
    );
    println!(
        "(a burst of all {n_ext} extensions changing at once is fully notified in {:.1} ms)",
        busy.as_secs_f64() * 1000.0 / (rounds * 2) as f64
    );
}
