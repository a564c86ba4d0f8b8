//! SDP speed: parse, filter_offer, rewrite_for_relay and print of a typical 4-codec offer
//! (the B-leg offer path of every relayed call). Target: the whole pipeline < 10 µs.
//! `cargo bench --bench sdp -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group};
use dialtone::sdp::{
    LocalOrigin, SessionDescription, filter_offer, filter_offer_in_place, rewrite_for_relay,
};

/// A MicroSIP-shaped offer: PCMU, PCMA, G722, G729 and telephone-event.
const OFFER: &[u8] = b"v=0\r\n\
o=- 3911286153 3911286153 IN IP4 192.168.1.50\r\n\
s=pjmedia\r\n\
b=AS:84\r\n\
t=0 0\r\n\
a=X-nat:0\r\n\
m=audio 4000 RTP/AVP 0 8 9 18 101\r\n\
c=IN IP4 192.168.1.50\r\n\
b=TIAS:64000\r\n\
a=rtcp:4001 IN IP4 192.168.1.50\r\n\
a=sendrecv\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ssrc:1432405376 cname:2c8a6b1e0e4f4b5d\r\n";

const ALLOWED: &[&str] = &["ulaw", "alaw", "g722"];

fn relay() -> IpAddr {
    "203.0.113.1".parse().unwrap()
}

fn pipeline(raw: &[u8], relay: IpAddr) -> String {
    let offer = SessionDescription::parse(raw).unwrap();
    let mut b_offer = filter_offer(&offer, ALLOWED).unwrap();
    let mut origin = LocalOrigin::new(42);
    rewrite_for_relay(&mut b_offer, relay, &[30000], &mut origin, false).unwrap();
    b_offer.print()
}

/// The same without the copy of the A-leg offer.
fn pipeline_in_place(raw: &[u8], relay: IpAddr) -> String {
    let mut sdp = SessionDescription::parse(raw).unwrap();
    filter_offer_in_place(&mut sdp, ALLOWED).unwrap();
    let mut origin = LocalOrigin::new(42);
    rewrite_for_relay(&mut sdp, relay, &[30000], &mut origin, false).unwrap();
    sdp.print()
}

fn bench(c: &mut Criterion) {
    let relay = relay();
    let offer = SessionDescription::parse(OFFER).unwrap();
    let filtered = filter_offer(&offer, ALLOWED).unwrap();
    assert_eq!(filtered.media[0].formats, ["0", "8", "9", "101"]);
    c.bench_function("sdp/parse", |b| {
        b.iter(|| SessionDescription::parse(black_box(OFFER)).unwrap())
    });
    c.bench_function("sdp/print", |b| b.iter(|| black_box(&offer).print()));
    c.bench_function("sdp/filter_offer", |b| {
        b.iter(|| filter_offer(black_box(&offer), ALLOWED).unwrap())
    });
    c.bench_function("sdp/clone+rewrite_for_relay", |b| {
        b.iter(|| {
            let mut s = black_box(&filtered).clone();
            let mut origin = LocalOrigin::new(42);
            rewrite_for_relay(&mut s, relay, &[30000], &mut origin, false).unwrap();
            s
        })
    });
    c.bench_function("sdp/parse+filter+rewrite+print", |b| {
        b.iter(|| pipeline(black_box(OFFER), relay))
    });
    c.bench_function("sdp/parse+filter_in_place+rewrite+print", |b| {
        b.iter(|| pipeline_in_place(black_box(OFFER), relay))
    });
}

/// Best-of-batches timing, robust against other load on a shared machine.
fn best_of(name: &str, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..60 {
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 2000.0);
    }
    println!("best-of {name:<42} {best:>8.0} ns");
}

fn best_of_all() {
    let relay = relay();
    let offer = SessionDescription::parse(OFFER).unwrap();
    best_of("sdp/parse", || {
        black_box(SessionDescription::parse(black_box(OFFER)).unwrap());
    });
    best_of("sdp/print", || {
        black_box(black_box(&offer).print());
    });
    best_of("sdp/filter_offer", || {
        black_box(filter_offer(black_box(&offer), ALLOWED).unwrap());
    });
    best_of("sdp/parse+filter+rewrite+print", || {
        black_box(pipeline(black_box(OFFER), relay));
    });
    best_of("sdp/parse+filter_in_place+rewrite+print", || {
        black_box(pipeline_in_place(black_box(OFFER), relay));
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list") {
        best_of_all();
    }
}
