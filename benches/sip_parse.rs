//! SIP parse/print speed: dialtone::sip::msg vs rsip 0.4 on the same bytes.
//! `cargo bench --bench sip_parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use dialtone::sip::{Message, parse_datagram};

const REGISTER: &[u8] = b"REGISTER sip:pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK.aZ9kXf3Q;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@pbx.local>;tag=kQ3uB9xJ\r\n\
To: <sip:1001@pbx.local>\r\n\
Call-ID: 6f1c2a9e-4b7d-4e0f-9a61-2c3b5d7e8f90\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"1001\", realm=\"pbx.local\", nonce=\"1d6b4c2a9f0e8d7c6b5a49382716f5e4\", uri=\"sip:pbx.local\", response=\"4f6b1a2c3d4e5f60718293a4b5c6d7e8\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n\
User-Agent: Dialtone-Bench/1.0\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &[u8] = b"INVITE sip:1002@pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK.77hsu2ke;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:1001@pbx.local>;tag=9fxced76sl\r\n\
To: <sip:1002@pbx.local>\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, MESSAGE, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Dialtone-Bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 209\r\n\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    for (name, raw) in [("register", REGISTER), ("invite_sdp", INVITE)] {
        let msg: Message = parse_datagram(raw).expect("bench message parses");
        assert!(rsip::SipMessage::try_from(raw).is_ok());
        c.bench_function(&format!("{name}/dialtone_parse"), |b| {
            b.iter(|| parse_datagram(black_box(raw)).unwrap())
        });
        c.bench_function(&format!("{name}/dialtone_print"), |b| {
            b.iter(|| black_box(&msg).to_bytes())
        });
        c.bench_function(&format!("{name}/rsip_try_from"), |b| {
            b.iter(|| rsip::SipMessage::try_from(black_box(raw)).unwrap())
        });
    }
}

/// Best-of-batches timing, robust against other load on a shared machine (criterion's
/// estimates include it).
fn best_of(name: &str, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..60 {
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 2000.0);
    }
    println!("best-of {name:<28} {best:>8.0} ns");
}

fn best_of_all() {
    for (name, raw) in [("register", REGISTER), ("invite_sdp", INVITE)] {
        let msg = parse_datagram(raw).unwrap();
        best_of(&format!("{name}/dialtone_parse"), || {
            black_box(parse_datagram(black_box(raw)).unwrap());
        });
        best_of(&format!("{name}/dialtone_print"), || {
            black_box(black_box(&msg).to_bytes());
        });
        best_of(&format!("{name}/rsip_try_from"), || {
            black_box(rsip::SipMessage::try_from(black_box(raw)).unwrap());
        });
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list") {
        best_of_all();
    }
}
