//! Small deterministic fuzz (like `sip::msg` torture tests): truncations at every offset and
//! random mutations of the fixtures must never panic anywhere in the module, and whatever
//! parses must round-trip through the printer, also after the offer/answer functions.

use std::net::IpAddr;

use super::fixtures::ALL;
use super::*;

fn check(buf: &[u8]) {
    let s = match SessionDescription::parse(buf) {
        Ok(s) => s,
        Err(e) => {
            let _ = (e.status(), e.warning_value("pbx"));
            return;
        }
    };
    let printed = s.print();
    let again = SessionDescription::parse(printed.as_bytes()).unwrap_or_else(|e| {
        panic!(
            "canonical print does not parse ({e}): {printed:?} from {:?}",
            String::from_utf8_lossy(buf)
        )
    });
    assert_eq!(
        again,
        s,
        "round trip of fuzzed input {:?}",
        String::from_utf8_lossy(buf)
    );

    for m in &s.media {
        for pt in 0..=128u8 {
            let _ = (m.rtpmap(pt), m.fmtp(pt));
        }
        let _ = (
            m.direction(&s),
            m.ptime(),
            m.maxptime(),
            m.rtcp(),
            m.rtcp_mux(),
            m.first_codec(),
            dtmf_pt(m),
            is_hold(m, &s),
        );
        let _ = DtmfPtMapping::from_media(m, m).needs_rewrite();
        let _ = s.connection_for(m).map(|c| (c.ip(), c.is_unspecified()));
    }
    let _ = check_answer(&s, &s);
    let relay: IpAddr = "198.51.100.1".parse().unwrap();
    let ports: Vec<u16> = (0..s.media.len())
        .map(|i| 65530u16.wrapping_add((i as u16).wrapping_mul(2)))
        .collect();
    let lists: [&[&str]; 3] = [&["ulaw", "alaw", "g722"], &["opus", "vp8", "h264"], &[]];
    for allowed in lists {
        match filter_offer(&s, allowed) {
            Ok(mut f) => {
                let _ = check_answer(&s, &f);
                let mut origin = LocalOrigin::new(u64::MAX);
                rewrite_for_relay(&mut f, relay, &ports, &mut origin, true)
                    .expect("one port per m= line");
                let p = f.print();
                assert_eq!(
                    SessionDescription::parse(p.as_bytes()).as_ref(),
                    Ok(&f),
                    "rewritten SDP round trip: {p:?}"
                );
            }
            Err(e) => {
                let _ = (e.status(), e.warning_value("pbx"));
            }
        }
    }
}

#[test]
fn fuzz_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const INTERESTING: &[u8] = b"=:/ \t\r\n0123456789amcotvrb-.*\0\xff\xc3";
    for (_, text) in ALL {
        let raw = text.as_bytes();
        for cut in 0..=raw.len() {
            check(&raw[..cut]);
        }
        let crlf = text.replace('\n', "\r\n");
        for cut in (0..=crlf.len()).step_by(7) {
            check(&crlf.as_bytes()[..cut]);
        }
        for _ in 0..400 {
            let mut b = raw.to_vec();
            for _ in 0..=(rnd() % 4) {
                if b.is_empty() {
                    break;
                }
                let i = (rnd() as usize) % b.len();
                match rnd() % 5 {
                    0 => b[i] = INTERESTING[(rnd() as usize) % INTERESTING.len()],
                    1 => b.insert(i, INTERESTING[(rnd() as usize) % INTERESTING.len()]),
                    2 => {
                        let n = ((rnd() as usize) % 8).min(b.len() - i);
                        b.drain(i..i + n);
                    }
                    3 => {
                        // duplicate a line elsewhere (repeated / misplaced lines)
                        let start = b[..i]
                            .iter()
                            .rposition(|&c| c == b'\n')
                            .map_or(0, |p| p + 1);
                        let end = b[i..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(b.len(), |p| i + p + 1);
                        let line = b[start..end].to_vec();
                        let at = (rnd() as usize) % (b.len() + 1);
                        b.splice(at..at, line);
                    }
                    _ => b[i] = rnd() as u8,
                }
            }
            check(&b);
        }
    }
    // arbitrary byte strings that start like SDP
    for _ in 0..2000 {
        let mut b = b"v=0\n".to_vec();
        for _ in 0..(rnd() % 64) {
            b.push(INTERESTING[(rnd() as usize) % INTERESTING.len()]);
        }
        check(&b);
    }
}
