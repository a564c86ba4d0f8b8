//! Stateless, self-validating nonces and nonce-count replay rejection.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in a nonce (128 bits).
const MAC_LEN: usize = 16;
/// timestamp (8) || counter (8) || MAC (16).
const RAW_LEN: usize = 8 + 8 + MAC_LEN;
/// base64url without padding of [`RAW_LEN`] bytes.
pub(crate) const NONCE_LEN: usize = 43;
/// Domain separation of the nonce MAC from the other uses of the secret.
const NONCE_DOMAIN: &[u8] = b"dialtone digest nonce v1\0";

/// What [`NonceManager::check`] says about a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours, untampered and within its lifetime.
    Valid,
    /// Ours and untampered, but expired (or from too far in the future after a clock step):
    /// answer with a new challenge carrying `stale=true`.
    Stale,
    /// Not issued by us with this secret (forged, corrupted, from another server or an earlier
    /// secret, bound to another client address): answer with a new challenge, without `stale`.
    Invalid,
}

/// Issues and checks nonces that need no per-nonce storage.
///
/// A nonce is `base64url(timestamp_ms || counter || HMAC-SHA256(secret, timestamp_ms ||
/// counter [|| client IP])[..16])`: 43 characters of `[A-Za-z0-9_-]`. The base64url alphabet has
/// no `=`, `"`, `,` or space, so even clients that find parameters by substring search (old
/// sipp) cannot mistake part of a nonce for a parameter. The counter makes nonces issued in the
/// same millisecond distinct, which [`ReplayGuard`] needs; the MAC makes them unpredictable.
///
/// **Client IP binding** is off by default: phones behind NAT see their public address change
/// when the NAT rebinds (or roam between networks), and a bound nonce would then fail as
/// [`NonceStatus::Invalid`] until the next challenge. Turn it on
/// ([`NonceManager::set_bind_client_ip`]) where clients have stable addresses. IPv4-mapped IPv6
/// addresses are bound as their IPv4 address.
///
/// Nonces do not survive a change of secret: keep the secret across restarts if phones should
/// not all be re-challenged (they will be, transparently, with a `401`).
#[derive(Clone)]
pub struct NonceManager {
    mac: HmacSha256,
    lifetime_ms: u64,
    bind_client_ip: bool,
    counter: u64,
}

impl std::fmt::Debug for NonceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceManager")
            .field("lifetime_ms", &self.lifetime_ms)
            .field("bind_client_ip", &self.bind_client_ip)
            .finish_non_exhaustive()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl NonceManager {
    /// `secret` keys the nonce MAC (generate it randomly; persist it to keep nonces valid across
    /// restarts). `lifetime` is how long a nonce is [`NonceStatus::Valid`] after issue.
    pub fn new(secret: [u8; 32], lifetime: Duration) -> NonceManager {
        let mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes any key length");
        // Start the counter at a secret-derived value rather than 0.
        let mut init = mac.clone();
        init.update(b"dialtone digest counter v1\0");
        let tag = init.finalize().into_bytes();
        let mut start = [0u8; 8];
        start.copy_from_slice(&tag[..8]);
        NonceManager {
            mac,
            lifetime_ms: duration_ms(lifetime),
            bind_client_ip: false,
            counter: u64::from_be_bytes(start),
        }
    }

    /// Binds (or stops binding) the client IP into new nonces' MAC. Nonces issued under the
    /// other setting become [`NonceStatus::Invalid`].
    pub fn set_bind_client_ip(&mut self, bind: bool) {
        self.bind_client_ip = bind;
    }

    pub fn bind_client_ip(&self) -> bool {
        self.bind_client_ip
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms)
    }

    fn tag(&self, ts_and_counter: &[u8], client_ip: Option<IpAddr>) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(NONCE_DOMAIN);
        mac.update(ts_and_counter);
        if self.bind_client_ip {
            match client_ip.map(|ip| ip.to_canonical()) {
                None => mac.update(&[0]),
                Some(IpAddr::V4(v4)) => {
                    mac.update(&[4]);
                    mac.update(&v4.octets());
                }
                Some(IpAddr::V6(v6)) => {
                    mac.update(&[6]);
                    mac.update(&v6.octets());
                }
            }
        } else {
            mac.update(&[0xff]);
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&full[..MAC_LEN]);
        tag
    }

    /// A new nonce, issued at `now_unix_ms` (wall-clock milliseconds, passed in).
    pub fn issue(&mut self, now_unix_ms: u64, client_ip: Option<IpAddr>) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&now_unix_ms.to_be_bytes());
        raw[8..16].copy_from_slice(&self.counter.to_be_bytes());
        let tag = self.tag(&raw[..16], client_ip);
        raw[16..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce from a client. Never panics, whatever the string.
    pub fn check(&self, now_unix_ms: u64, nonce: &str, client_ip: Option<IpAddr>) -> NonceStatus {
        match self.check_issued(now_unix_ms, nonce, client_ip) {
            Ok(_) => NonceStatus::Valid,
            Err(status) => status,
        }
    }

    /// Like [`NonceManager::check`]; a valid nonce gives its issue time (unix ms).
    pub fn check_issued(
        &self,
        now_unix_ms: u64,
        nonce: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<u64, NonceStatus> {
        if nonce.len() != NONCE_LEN {
            return Err(NonceStatus::Invalid);
        }
        let mut raw = [0u8; RAW_LEN + 3];
        // The engine rejects non-canonical encodings (stray trailing bits), so one nonce has
        // exactly one spelling.
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return Err(NonceStatus::Invalid),
        }
        let tag = self.tag(&raw[..16], client_ip);
        let diff = tag
            .iter()
            .zip(&raw[16..RAW_LEN])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if std::hint::black_box(diff) != 0 {
            return Err(NonceStatus::Invalid);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let issued = u64::from_be_bytes(ts);
        let age_ok = now_unix_ms.saturating_sub(issued) <= self.lifetime_ms;
        // Issued "in the future": the wall clock stepped back. Accept within one lifetime.
        let future_ok = issued.saturating_sub(now_unix_ms) <= self.lifetime_ms;
        if age_ok && future_ok {
            Ok(issued)
        } else {
            Err(NonceStatus::Stale)
        }
    }

    /// A value derived from the secret, for uses other than nonces (`opaque`).
    pub(crate) fn derive(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// Default capacity of a [`ReplayGuard`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 200_000;

/// A nonce as a fixed-size map key: inline when short (ours are 43 bytes), else its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct NonceKey {
    len: u8,
    bytes: [u8; 48],
}

impl NonceKey {
    fn new(nonce: &str) -> NonceKey {
        let mut bytes = [0u8; 48];
        match bytes.get_mut(..nonce.len()) {
            Some(dst) => {
                dst.copy_from_slice(nonce.as_bytes());
                NonceKey {
                    len: nonce.len() as u8, // <= 48
                    bytes,
                }
            }
            None => {
                bytes[..32].copy_from_slice(&Sha256::digest(nonce.as_bytes()));
                NonceKey { len: 0xff, bytes }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Seen {
    last_nc: u32,
    issued_ms: u64,
    expires_ms: u64,
}

/// Rejects replayed nonce-counts (RFC 7616 §3.4: `nc` must grow for each request a client
/// makes with one nonce).
///
/// Remembers the highest `nc` seen per nonce, until the nonce expires. The map is bounded: past
/// `capacity` the oldest entries are evicted, and then any nonce issued no later than the
/// newest evicted one and not remembered is refused (the client gets a new nonce with
/// `stale=true`), so eviction cannot reopen a replay window.
///
/// Without `qop` (RFC 2069 compatibility) there is no `nc`: such a nonce can be reused (and a
/// captured request replayed) until the nonce expires. Keep nonce lifetimes short, or refuse
/// responses without `qop`.
#[derive(Clone)]
pub struct ReplayGuard {
    lifetime_ms: u64,
    capacity: usize,
    seen: HashMap<NonceKey, Seen>,
    /// Insertion order, for expiry and eviction. Holds each key of `seen` exactly once.
    order: VecDeque<NonceKey>,
    /// Newest issue time of an evicted, unexpired nonce.
    evicted_issued_ms: Option<u64>,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("lifetime_ms", &self.lifetime_ms)
            .field("capacity", &self.capacity)
            .field("len", &self.seen.len())
            .field("evicted_issued_ms", &self.evicted_issued_ms)
            .finish()
    }
}

impl ReplayGuard {
    /// `lifetime`: the nonce lifetime (entries are dropped once their nonce has expired).
    /// `capacity`: the most nonces remembered (at least 1).
    pub fn new(lifetime: Duration, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            lifetime_ms: duration_ms(lifetime),
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            evicted_issued_ms: None,
        }
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// `true` if `nc` is fresh: strictly greater than the last `nc` seen for `nonce` (and then
    /// records it). A nonce not yet seen is taken as issued at `now_unix_ms`; prefer
    /// [`ReplayGuard::check_nc_issued`] when the issue time is known.
    pub fn check_nc(&mut self, now_unix_ms: u64, nonce: &str, nc: u32) -> bool {
        self.check_nc_issued(now_unix_ms, nonce, now_unix_ms, nc)
    }

    /// Like [`ReplayGuard::check_nc`], for a nonce issued at `issued_unix_ms` (from
    /// [`NonceManager::check_issued`]). Call it only after the response has been verified, so
    /// that forged requests cannot burn a client's counts.
    pub fn check_nc_issued(
        &mut self,
        now_unix_ms: u64,
        nonce: &str,
        issued_unix_ms: u64,
        nc: u32,
    ) -> bool {
        self.expire(now_unix_ms);
        let key = NonceKey::new(nonce);
        if let Some(seen) = self.seen.get_mut(&key) {
            if nc > seen.last_nc {
                seen.last_nc = nc;
                return true;
            }
            return false;
        }
        if nc == 0 {
            return false;
        }
        if self
            .evicted_issued_ms
            .is_some_and(|evicted| issued_unix_ms <= evicted)
        {
            // It might have been evicted: we no longer know its last nc.
            return false;
        }
        while self.seen.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.seen.remove(&old) {
                let newest = self.evicted_issued_ms.unwrap_or(0).max(gone.issued_ms);
                self.evicted_issued_ms = Some(newest);
            }
        }
        self.seen.insert(
            key,
            Seen {
                last_nc: nc,
                issued_ms: issued_unix_ms,
                expires_ms: issued_unix_ms.saturating_add(self.lifetime_ms),
            },
        );
        self.order.push_back(key);
        true
    }

    /// Drops the entries at the front whose nonce has expired.
    fn expire(&mut self, now_unix_ms: u64) {
        while let Some(front) = self.order.front() {
            match self.seen.get(front) {
                Some(seen) if seen.expires_ms >= now_unix_ms => break,
                _ => {
                    if let Some(k) = self.order.pop_front() {
                        self.seen.remove(&k);
                    }
                }
            }
        }
        // Every evicted nonce has expired by now: forget the watermark.
        if self
            .evicted_issued_ms
            .is_some_and(|t| t.saturating_add(self.lifetime_ms) < now_unix_ms)
        {
            self.evicted_issued_ms = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SECRET: [u8; 32] = [7; 32];
    const T0: u64 = 1_700_000_000_000;
    const LIFE: Duration = Duration::from_secs(300);

    fn mgr() -> NonceManager {
        NonceManager::new(SECRET, LIFE)
    }

    #[test]
    fn valid_then_stale() {
        let mut m = mgr();
        let n = m.issue(T0, None);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(m.check(T0, &n, None), NonceStatus::Valid);
        assert_eq!(m.check_issued(T0 + 5, &n, None), Ok(T0));
        assert_eq!(m.check(T0 + 300_000, &n, None), NonceStatus::Valid);
        assert_eq!(m.check(T0 + 300_001, &n, None), NonceStatus::Stale);
        assert_eq!(m.check(u64::MAX, &n, None), NonceStatus::Stale);
        // Clock stepped back: tolerated within one lifetime.
        assert_eq!(m.check(T0 - 1000, &n, None), NonceStatus::Valid);
        assert_eq!(m.check(T0 - 300_001, &n, None), NonceStatus::Stale);
        assert_eq!(m.check(0, &n, None), NonceStatus::Stale);
    }

    #[test]
    fn nonces_are_unique_within_a_millisecond() {
        let mut m = mgr();
        let a = m.issue(T0, None);
        let b = m.issue(T0, None);
        assert_ne!(a, b);
        assert_eq!(m.check(T0, &a, None), NonceStatus::Valid);
        assert_eq!(m.check(T0, &b, None), NonceStatus::Valid);
    }

    #[test]
    fn tampered_nonce_is_invalid() {
        let mut m = mgr();
        let n = m.issue(T0, None);
        for i in 0..n.len() {
            let mut bytes = n.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(bytes).expect("ascii");
            assert_eq!(m.check(T0, &t, None), NonceStatus::Invalid, "byte {i}");
        }
        // A forged timestamp (say, to extend the lifetime) breaks the MAC.
        let mut raw = URL_SAFE_NO_PAD.decode(&n).expect("b64");
        raw[7] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(m.check(T0, &forged, None), NonceStatus::Invalid);
    }

    #[test]
    fn other_secret_is_invalid() {
        let n = mgr().issue(T0, None);
        let other = NonceManager::new([8; 32], LIFE);
        assert_eq!(other.check(T0, &n, None), NonceStatus::Invalid);
    }

    #[test]
    fn garbage_never_panics_and_is_invalid() {
        let m = mgr();
        let samples = [
            String::new(),
            "x".into(),
            "=".repeat(NONCE_LEN),
            "\u{e9}".repeat(NONCE_LEN),
            "A".repeat(NONCE_LEN),
            "A".repeat(NONCE_LEN - 1) + "B", // non-canonical trailing bits
            "/".repeat(NONCE_LEN),
            "a".repeat(1 << 20),
            "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
        ];
        for s in &samples {
            assert_eq!(m.check(T0, s, None), NonceStatus::Invalid);
        }
        // Multi-byte characters making up exactly 43 bytes.
        let odd = format!("{}{}", "\u{e9}".repeat(21), "a");
        assert_eq!(odd.len(), NONCE_LEN);
        assert_eq!(m.check(T0, &odd, None), NonceStatus::Invalid);
    }

    #[test]
    fn client_ip_binding() {
        let ip1 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let ip2 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        let mapped = Some(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()));
        let v6 = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));

        // Off (default): the address does not matter.
        let mut m = mgr();
        assert!(!m.bind_client_ip());
        let n = m.issue(T0, ip1);
        assert_eq!(m.check(T0, &n, ip2), NonceStatus::Valid);
        assert_eq!(m.check(T0, &n, None), NonceStatus::Valid);

        m.set_bind_client_ip(true);
        assert_eq!(m.check(T0, &n, ip1), NonceStatus::Invalid, "issued unbound");
        let n = m.issue(T0, ip1);
        assert_eq!(m.check(T0, &n, ip1), NonceStatus::Valid);
        assert_eq!(m.check(T0, &n, mapped), NonceStatus::Valid);
        assert_eq!(m.check(T0, &n, ip2), NonceStatus::Invalid);
        assert_eq!(m.check(T0, &n, None), NonceStatus::Invalid);
        assert_eq!(m.check(T0 + 300_001, &n, ip1), NonceStatus::Stale);
        let n6 = m.issue(T0, v6);
        assert_eq!(m.check(T0, &n6, v6), NonceStatus::Valid);
        assert_eq!(m.check(T0, &n6, ip1), NonceStatus::Invalid);
        let none = m.issue(T0, None);
        assert_eq!(m.check(T0, &none, None), NonceStatus::Valid);
        assert_eq!(m.check(T0, &none, ip1), NonceStatus::Invalid);
    }

    #[test]
    fn replay_same_nc_twice_rejected() {
        let mut g = ReplayGuard::new(LIFE, 10);
        assert!(g.check_nc(T0, "n1", 1));
        assert!(!g.check_nc(T0, "n1", 1));
        assert!(g.check_nc(T0, "n1", 2));
        assert!(g.check_nc(T0, "n1", 5));
        assert!(!g.check_nc(T0, "n1", 4));
        assert!(!g.check_nc(T0, "n1", 5));
        assert!(g.check_nc(T0, "n1", u32::MAX));
        assert!(!g.check_nc(T0, "n1", u32::MAX));
        // Counts are per nonce.
        assert!(g.check_nc(T0, "n2", 1));
        assert!(!g.check_nc(T0, "n3", 0), "nc starts at 1");
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn replay_long_nonces_are_keyed_by_hash() {
        let mut g = ReplayGuard::new(LIFE, 10);
        let a = "a".repeat(100);
        let b = format!("{}b", "a".repeat(99));
        assert!(g.check_nc(T0, &a, 1));
        assert!(g.check_nc(T0, &b, 1));
        assert!(!g.check_nc(T0, &a, 1));
        let short = "a".repeat(48);
        assert!(g.check_nc(T0, &short, 1));
        assert!(!g.check_nc(T0, &short, 1));
    }

    #[test]
    fn replay_entries_expire_with_their_nonce() {
        let mut g = ReplayGuard::new(LIFE, 10);
        assert!(g.check_nc_issued(T0 + 10, "n1", T0, 3));
        assert!(g.check_nc_issued(T0 + 1000, "n2", T0 + 1000, 1));
        assert_eq!(g.len(), 2);
        // n1 expires at T0 + 300_000 (its issue time + lifetime), n2 later.
        assert!(g.check_nc(T0 + 300_000, "x", 1));
        assert_eq!(g.len(), 3);
        assert!(g.check_nc(T0 + 300_001, "y", 1));
        assert_eq!(g.len(), 3, "n1 dropped");
        assert!(g.check_nc(T0 + 301_001, "z", 1));
        assert_eq!(g.len(), 3, "n2 dropped");
        assert!(g.check_nc(T0 + 10_000_000, "w", 1));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn replay_cap_evicts_oldest_and_refuses_possibly_evicted() {
        let mut g = ReplayGuard::new(LIFE, 3);
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(g.check_nc_issued(T0, n, T0 + i as u64, 1));
        }
        assert_eq!(g.len(), 3);
        // A fourth nonce evicts "a" (issued T0).
        assert!(g.check_nc_issued(T0 + 10, "d", T0 + 10, 1));
        assert_eq!(g.len(), 3);
        // "a" is forgotten, but must not be accepted again with a low nc.
        assert!(!g.check_nc_issued(T0 + 11, "a", T0, 1));
        assert!(!g.check_nc_issued(T0 + 11, "a", T0, 2));
        // A never-seen nonce issued no later than the evicted one is refused too (the client
        // will get a fresh nonce); one issued later is fine.
        assert!(!g.check_nc_issued(T0 + 11, "old", T0, 1));
        assert!(g.check_nc_issued(T0 + 11, "new", T0 + 11, 1));
        // Kept entries still work.
        assert!(!g.check_nc_issued(T0 + 12, "d", T0 + 10, 1));
        assert!(g.check_nc_issued(T0 + 12, "d", T0 + 10, 2));
        // Once everything evicted has expired the watermark is forgotten.
        assert!(g.check_nc_issued(T0 + 300_001, "late", T0 + 300_001, 1));
        assert!(g.check_nc_issued(T0 + 600_000, "old2", T0 + 299_999, 1));
        assert!(g.len() <= 3);
    }

    #[test]
    fn replay_cap_holds_under_load() {
        let mut g = ReplayGuard::new(LIFE, 1000);
        for i in 0..10_000u64 {
            let n = format!("nonce-{i}");
            assert!(g.check_nc_issued(T0 + i, &n, T0 + i, 1));
            assert!(g.len() <= 1000);
            assert_eq!(g.order.len(), g.seen.len());
        }
        // The most recent ones are still remembered.
        assert!(!g.check_nc_issued(T0 + 10_000, "nonce-9999", T0 + 9999, 1));
        assert!(g.check_nc_issued(T0 + 10_000, "nonce-9999", T0 + 9999, 2));
    }
}
