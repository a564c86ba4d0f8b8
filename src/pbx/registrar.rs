//! The registrar (RFC 3261 §10.3), sans-IO: bindings of contacts to extensions (AORs) with expiry.
//!
//! Input is an already-authenticated REGISTER reduced to what a registrar needs
//! ([`RegisterRequest`]); output is the list of current contacts for the 200 response, or a
//! [`RegisterError`] that maps to a SIP status. Binding changes are queued as
//! [`RegistrarEvent`]s (persistence, AMI and REST consume them); expiry runs on the `now`
//! the caller passes in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::directory::BindingRecord;
use super::peer::{Peer, Proto};

/// Registrar limits (config.yml `registrar.*`).
#[derive(Debug, Clone, Copy)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// Per-AOR policy taken from the extension.
#[derive(Debug, Clone, Copy)]
pub struct AorPolicy {
    pub max_contacts: u32,
    pub remove_existing: bool,
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactSpec {
    /// The contact URI, printed canonically (URI parameters included, header params excluded).
    pub uri: String,
    /// `;expires=` contact parameter.
    pub expires: Option<u32>,
    /// `+sip.instance` (RFC 5626), used as the binding identity when present.
    pub instance: Option<String>,
    /// `;q=` as written.
    pub q: Option<String>,
}

/// A REGISTER reduced to what the registrar needs.
#[derive(Debug, Clone)]
pub struct RegisterRequest<'a> {
    /// The AOR (extension number, the To user part).
    pub aor: &'a str,
    /// `Contact: *`.
    pub wildcard: bool,
    /// The contacts (empty and not wildcard = a query for the current bindings).
    pub contacts: Vec<ContactSpec>,
    /// The `Expires` header value.
    pub expires_header: Option<u32>,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Where the REGISTER came from (RFC 3581: the address responses and requests go to).
    pub source: Peer,
    pub user_agent: Option<&'a str>,
}

/// Why a REGISTER failed; each maps to a SIP status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    #[error("Interval Too Brief")]
    IntervalTooBrief { min_expires: u32 },
    #[error("wildcard Contact with other contacts")]
    WildcardWithContacts,
    #[error("wildcard Contact requires Expires: 0")]
    WildcardNeedsExpiresZero,
    #[error("CSeq out of order for this Call-ID")]
    OutOfOrder,
    #[error("too many contacts (max_contacts={max})")]
    TooManyContacts { max: u32 },
}

impl RegisterError {
    /// The SIP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::WildcardWithContacts | RegisterError::WildcardNeedsExpiresZero => 400,
            RegisterError::OutOfOrder => 500,
            RegisterError::TooManyContacts { .. } => 403,
        }
    }
}

/// Reachability from OPTIONS qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualifyStatus {
    Unknown,
    Reachable,
    Unreachable,
}

impl QualifyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QualifyStatus::Unknown => "Unknown",
            QualifyStatus::Reachable => "Reachable",
            QualifyStatus::Unreachable => "Unreachable",
        }
    }
}

/// One binding of a contact to an AOR.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Registrar-unique id (stable across refreshes).
    pub id: u64,
    pub aor: String,
    pub contact: String,
    pub instance: Option<String>,
    pub q: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub expires_at: Instant,
    pub source: Peer,
    pub user_agent: Option<String>,
    /// Unix seconds of the first registration of this binding.
    pub registered_at: i64,
    pub qualify: QualifyStatus,
    /// Round-trip time of the last answered qualify OPTIONS.
    pub rtt: Option<Duration>,
    /// Unix seconds of the expiry last written to the store (refreshes that move the expiry
    /// only a little are not persisted, to keep REGISTER storms off the disk).
    persisted_expires_at: i64,
}

impl Binding {
    /// Seconds left until expiry (rounded up), 0 when expired.
    pub fn expires_in(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    fn same_identity(&self, c: &ContactSpec) -> bool {
        match (&self.instance, &c.instance) {
            (Some(a), Some(b)) => a == b,
            _ => self.contact == c.uri,
        }
    }
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    Unregistered,
    Expired,
    Replaced,
    /// The extension was deleted or disabled.
    Disabled,
}

/// Binding changes, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrarEvent {
    /// A new binding (`persist` is always true) or a refresh (`persist` says whether the
    /// store needs the new expiry).
    Bound {
        record: BindingRecord,
        new: bool,
        persist: bool,
    },
    Removed {
        aor: String,
        contact: String,
        source: Peer,
        reason: RemoveReason,
    },
}

/// Successful REGISTER: the contacts to list in the 200, with their remaining expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOk {
    pub contacts: Vec<(String, u32)>,
}

/// How far a refreshed expiry may drift from the stored one before it is written again.
const PERSIST_SLACK_SECS: i64 = 60;

/// The registrar state: bindings per AOR with an expiry queue.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
    expiry: BinaryHeap<Reverse<(Instant, u64)>>,
    /// binding id → AOR, for the expiry queue.
    index: HashMap<u64, String>,
    next_id: u64,
    events: VecDeque<RegistrarEvent>,
    /// A monotonic instant and the unix time (ms) it corresponds to.
    epoch: (Instant, i64),
}

impl Registrar {
    /// `epoch` maps the caller's monotonic clock to unix milliseconds (persisted expiries are
    /// wall-clock so they survive a restart).
    pub fn new(cfg: RegistrarConfig, epoch: (Instant, i64)) -> Self {
        Registrar {
            cfg,
            bindings: HashMap::new(),
            expiry: BinaryHeap::new(),
            index: HashMap::new(),
            next_id: 1,
            events: VecDeque::new(),
            epoch,
        }
    }

    pub fn config(&self) -> RegistrarConfig {
        self.cfg
    }

    pub fn set_config(&mut self, cfg: RegistrarConfig) {
        self.cfg = cfg;
    }

    /// Unix seconds at `now`.
    pub fn unix_secs(&self, now: Instant) -> i64 {
        self.unix_ms(now) / 1000
    }

    fn unix_ms(&self, now: Instant) -> i64 {
        let (base, base_ms) = self.epoch;
        if now >= base {
            base_ms + i64::try_from(now.duration_since(base).as_millis()).unwrap_or(i64::MAX / 2)
        } else {
            base_ms - i64::try_from(base.duration_since(now).as_millis()).unwrap_or(0)
        }
    }

    fn instant_at_unix(&self, unix_secs: i64) -> Option<Instant> {
        let (base, base_ms) = self.epoch;
        let delta_ms = unix_secs.saturating_mul(1000) - base_ms;
        if delta_ms >= 0 {
            base.checked_add(Duration::from_millis(delta_ms as u64))
        } else {
            base.checked_sub(Duration::from_millis(delta_ms.unsigned_abs()))
        }
    }

    /// Process a REGISTER for `req.aor` (already authenticated and authorised).
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &RegisterRequest<'_>,
        policy: AorPolicy,
    ) -> Result<RegisterOk, RegisterError> {
        if req.wildcard {
            if !req.contacts.is_empty() {
                return Err(RegisterError::WildcardWithContacts);
            }
            if req.expires_header != Some(0) {
                return Err(RegisterError::WildcardNeedsExpiresZero);
            }
            // RFC 3261 §10.3 step 6: Call-ID/CSeq ordering applies to each binding.
            if let Some(list) = self.bindings.get(req.aor)
                && list
                    .iter()
                    .any(|b| b.call_id == req.call_id && req.cseq <= b.cseq)
            {
                return Err(RegisterError::OutOfOrder);
            }
            self.remove_aor(req.aor, RemoveReason::Unregistered);
            return Ok(RegisterOk {
                contacts: Vec::new(),
            });
        }

        // Work out each contact's expiry first: a 423 must change nothing.
        let mut plan: Vec<(usize, u32)> = Vec::with_capacity(req.contacts.len());
        for (i, c) in req.contacts.iter().enumerate() {
            let mut exp = c
                .expires
                .or(req.expires_header)
                .unwrap_or(self.cfg.default_expires);
            if exp != 0 && exp < self.cfg.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min_expires: self.cfg.min_expires,
                });
            }
            if exp > self.cfg.max_expires {
                exp = self.cfg.max_expires;
            }
            plan.push((i, exp));
        }

        let existing = self.bindings.get(req.aor).map(Vec::as_slice).unwrap_or(&[]);
        for (i, _) in &plan {
            let c = &req.contacts[*i];
            if let Some(b) = existing.iter().find(|b| b.same_identity(c))
                && b.call_id == req.call_id
                && req.cseq <= b.cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
        }

        // Count what the AOR would hold afterwards.
        let max = policy.max_contacts.max(1) as usize;
        let mut survivors: Vec<&Binding> = existing
            .iter()
            .filter(|b| !plan.iter().any(|(i, _)| b.same_identity(&req.contacts[*i])))
            .collect();
        let added = plan.iter().filter(|(_, e)| *e > 0).count();
        if added > max {
            return Err(RegisterError::TooManyContacts {
                max: policy.max_contacts,
            });
        }
        let mut evict: Vec<u64> = Vec::new();
        if survivors.len() + added > max {
            if !policy.remove_existing {
                return Err(RegisterError::TooManyContacts {
                    max: policy.max_contacts,
                });
            }
            // Remove the bindings that would expire soonest (the oldest registrations).
            survivors.sort_by_key(|b| b.expires_at);
            let excess = survivors.len() + added - max;
            evict.extend(survivors.iter().take(excess).map(|b| b.id));
        }

        let unix_now = self.unix_secs(now);
        for id in evict {
            self.remove_binding(req.aor, id, RemoveReason::Replaced);
        }
        for (i, exp) in plan {
            let c = &req.contacts[i];
            if exp == 0 {
                if let Some(list) = self.bindings.get(req.aor)
                    && let Some(b) = list.iter().find(|b| b.same_identity(c))
                {
                    let id = b.id;
                    self.remove_binding(req.aor, id, RemoveReason::Unregistered);
                }
                continue;
            }
            let expires_at = now + Duration::from_secs(u64::from(exp));
            let expires_unix = unix_now + i64::from(exp);
            // Exact capacities: most AORs hold one binding, and Vec's amortised growth would
            // reserve four (≈1 KiB) per AOR.
            let list = self
                .bindings
                .entry(req.aor.to_string())
                .or_insert_with(|| Vec::with_capacity(1));
            let (pos, new, persist) = match list.iter_mut().position(|b| b.same_identity(c)) {
                Some(pos) => {
                    let b = &mut list[pos];
                    // A new Call-ID alone is not worth a disk write: after a restart the next
                    // REGISTER (any Call-ID, or a higher CSeq) refreshes the binding anyway.
                    let changed = b.contact != c.uri || b.source != req.source;
                    if b.contact != c.uri {
                        b.contact.clone_from(&c.uri);
                    }
                    b.q.clone_from(&c.q);
                    if b.call_id != req.call_id {
                        b.call_id = req.call_id.to_string();
                    }
                    b.cseq = req.cseq;
                    b.expires_at = expires_at;
                    if b.source != req.source {
                        b.source = req.source;
                        b.qualify = QualifyStatus::Unknown;
                        b.rtt = None;
                    }
                    if b.user_agent.as_deref() != req.user_agent {
                        b.user_agent = req.user_agent.map(str::to_string);
                    }
                    let persist = changed
                        || (expires_unix - b.persisted_expires_at).abs() >= PERSIST_SLACK_SECS;
                    if persist {
                        b.persisted_expires_at = expires_unix;
                    }
                    (pos, false, persist)
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    list.reserve_exact(1);
                    list.push(Binding {
                        id,
                        aor: req.aor.to_string(),
                        contact: c.uri.clone(),
                        instance: c.instance.clone(),
                        q: c.q.clone(),
                        call_id: req.call_id.to_string(),
                        cseq: req.cseq,
                        expires_at,
                        source: req.source,
                        user_agent: req.user_agent.map(str::to_string),
                        registered_at: unix_now,
                        qualify: QualifyStatus::Unknown,
                        rtt: None,
                        persisted_expires_at: expires_unix,
                    });
                    self.index.insert(id, req.aor.to_string());
                    (list.len() - 1, true, true)
                }
            };
            let b = &list[pos];
            self.expiry.push(Reverse((b.expires_at, b.id)));
            let record = record_of(b, expires_unix);
            self.events.push_back(RegistrarEvent::Bound {
                record,
                new,
                persist,
            });
        }
        Ok(RegisterOk {
            contacts: self.contacts_of(now, req.aor),
        })
    }

    /// The contacts of an AOR with their remaining seconds.
    pub fn contacts_of(&self, now: Instant, aor: &str) -> Vec<(String, u32)> {
        self.bindings
            .get(aor)
            .map(|l| {
                l.iter()
                    .map(|b| (b.contact.clone(), b.expires_in(now)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Current bindings of one AOR.
    pub fn bindings_of(&self, aor: &str) -> &[Binding] {
        self.bindings.get(aor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// All bindings.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values().flatten()
    }

    /// Number of AORs with at least one binding.
    pub fn registered_aors(&self) -> usize {
        self.bindings.len()
    }

    /// Number of bindings.
    pub fn binding_count(&self) -> usize {
        self.index.len()
    }

    /// Find a binding by id.
    pub fn binding(&self, id: u64) -> Option<&Binding> {
        let aor = self.index.get(&id)?;
        self.bindings.get(aor)?.iter().find(|b| b.id == id)
    }

    /// Record a qualify result; returns true when the status changed.
    pub fn set_qualify(&mut self, id: u64, status: QualifyStatus, rtt: Option<Duration>) -> bool {
        let Some(aor) = self.index.get(&id) else {
            return false;
        };
        let Some(b) = self
            .bindings
            .get_mut(aor)
            .and_then(|l| l.iter_mut().find(|b| b.id == id))
        else {
            return false;
        };
        let changed = b.qualify != status;
        b.qualify = status;
        if rtt.is_some() || status != QualifyStatus::Reachable {
            b.rtt = rtt;
        }
        changed
    }

    /// Drop every binding of an AOR (extension deleted or disabled, or `Contact: *`).
    pub fn remove_aor(&mut self, aor: &str, reason: RemoveReason) {
        if let Some(list) = self.bindings.remove(aor) {
            for b in list {
                self.index.remove(&b.id);
                self.events.push_back(RegistrarEvent::Removed {
                    aor: b.aor,
                    contact: b.contact,
                    source: b.source,
                    reason,
                });
            }
        }
    }

    /// Remove one binding. (A TCP binding outlives its connection until it expires, as in
    /// Asterisk; requests then go to the contact address.)
    fn remove_binding(&mut self, aor: &str, id: u64, reason: RemoveReason) {
        let Some(list) = self.bindings.get_mut(aor) else {
            return;
        };
        if let Some(pos) = list.iter().position(|b| b.id == id) {
            let b = list.remove(pos);
            self.index.remove(&id);
            self.events.push_back(RegistrarEvent::Removed {
                aor: b.aor,
                contact: b.contact,
                source: b.source,
                reason,
            });
        }
        if list.is_empty() {
            self.bindings.remove(aor);
        }
    }

    /// Expire bindings whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let Some(aor) = self.index.get(&id).cloned() else {
                continue;
            };
            let live = self
                .bindings
                .get(&aor)
                .and_then(|l| l.iter().find(|b| b.id == id))
                .map(|b| b.expires_at <= now)
                .unwrap_or(false);
            if live {
                self.remove_binding(&aor, id, RemoveReason::Expired);
            }
        }
        // Keep the lazy queue from growing without bound under refresh storms.
        if self.expiry.len() > 4 * self.index.len() + 1024 {
            let mut heap = BinaryHeap::with_capacity(self.index.len());
            for b in self.bindings.values().flatten() {
                heap.push(Reverse((b.expires_at, b.id)));
            }
            self.expiry = heap;
        }
    }

    /// The next expiry, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Next binding change.
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// Reload persisted bindings at start-up; expired ones are dropped (and reported as
    /// removed so the store forgets them).
    pub fn restore(&mut self, now: Instant, records: Vec<BindingRecord>) {
        let unix_now = self.unix_secs(now);
        for r in records {
            let source = match (r.source.parse(), Proto::parse(&r.transport)) {
                (Ok(addr), Some(proto)) => Peer {
                    addr,
                    proto,
                    conn: None,
                },
                _ => {
                    self.events.push_back(RegistrarEvent::Removed {
                        aor: r.aor,
                        contact: r.contact,
                        source: Peer::udp(([0, 0, 0, 0], 0).into()),
                        reason: RemoveReason::Expired,
                    });
                    continue;
                }
            };
            if r.expires_at <= unix_now {
                self.events.push_back(RegistrarEvent::Removed {
                    aor: r.aor,
                    contact: r.contact,
                    source,
                    reason: RemoveReason::Expired,
                });
                continue;
            }
            let Some(expires_at) = self.instant_at_unix(r.expires_at) else {
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            self.index.insert(id, r.aor.clone());
            self.expiry.push(Reverse((expires_at, id)));
            let list = self
                .bindings
                .entry(r.aor.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            list.reserve_exact(1);
            list.push(Binding {
                id,
                aor: r.aor,
                contact: r.contact,
                instance: r.instance,
                q: None,
                call_id: r.call_id,
                cseq: r.cseq,
                expires_at,
                source,
                user_agent: r.user_agent,
                registered_at: r.registered_at,
                qualify: QualifyStatus::Unknown,
                rtt: None,
                persisted_expires_at: r.expires_at,
            });
        }
    }

    /// The persistable form of a binding.
    pub fn record(&self, b: &Binding) -> BindingRecord {
        let unix_now = self.unix_ms(b.expires_at) / 1000;
        record_of(b, unix_now)
    }
}

fn record_of(b: &Binding, expires_unix: i64) -> BindingRecord {
    BindingRecord {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        source: b.source.addr.to_string(),
        transport: b.source.proto.as_str().to_string(),
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        expires_at: expires_unix,
        user_agent: b.user_agent.clone(),
        instance: b.instance.clone(),
        registered_at: b.registered_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn peer(port: u16) -> Peer {
        Peer::udp(([192, 0, 2, 10], port).into())
    }

    fn contact(uri: &str, expires: Option<u32>) -> ContactSpec {
        ContactSpec {
            uri: uri.into(),
            expires,
            instance: None,
            q: None,
        }
    }

    fn req<'a>(
        aor: &'a str,
        call_id: &'a str,
        cseq: u32,
        contacts: Vec<ContactSpec>,
        exp: Option<u32>,
    ) -> RegisterRequest<'a> {
        RegisterRequest {
            aor,
            wildcard: false,
            contacts,
            expires_header: exp,
            call_id,
            cseq,
            source: peer(5060),
            user_agent: Some("test"),
        }
    }

    const ONE: AorPolicy = AorPolicy {
        max_contacts: 1,
        remove_existing: true,
    };
    const THREE_STRICT: AorPolicy = AorPolicy {
        max_contacts: 3,
        remove_existing: false,
    };

    fn reg(now: Instant) -> Registrar {
        Registrar::new(RegistrarConfig::default(), (now, 1_700_000_000_000))
    }

    #[test]
    fn register_refresh_unregister() {
        let now = t0();
        let mut r = reg(now);
        let ok = r
            .handle_register(
                now,
                &req(
                    "1001",
                    "c1",
                    1,
                    vec![contact("sip:1001@192.0.2.10", None)],
                    Some(600),
                ),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts, vec![("sip:1001@192.0.2.10".to_string(), 600)]);
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Bound {
                new: true,
                persist: true,
                ..
            })
        ));
        // refresh, same call-id higher cseq
        let later = now + Duration::from_secs(100);
        let ok = r
            .handle_register(
                later,
                &req(
                    "1001",
                    "c1",
                    2,
                    vec![contact("sip:1001@192.0.2.10", None)],
                    Some(600),
                ),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts[0].1, 600);
        assert_eq!(r.binding_count(), 1);
        // same cseq again → out of order
        let err = r
            .handle_register(
                later,
                &req(
                    "1001",
                    "c1",
                    2,
                    vec![contact("sip:1001@192.0.2.10", None)],
                    Some(600),
                ),
                ONE,
            )
            .unwrap_err();
        assert_eq!(err.status(), 500);
        // unregister with Expires: 0
        let ok = r
            .handle_register(
                later,
                &req(
                    "1001",
                    "c1",
                    3,
                    vec![contact("sip:1001@192.0.2.10", None)],
                    Some(0),
                ),
                ONE,
            )
            .unwrap();
        assert!(ok.contacts.is_empty());
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn refresh_persists_only_when_expiry_moves_enough() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        while r.poll_event().is_some() {}
        r.handle_register(
            now + Duration::from_secs(5),
            &req("1001", "c1", 2, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Bound { persist: false, .. })
        ));
        r.handle_register(
            now + Duration::from_secs(100),
            &req("1001", "c1", 3, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Bound { persist: true, .. })
        ));
    }

    #[test]
    fn new_call_id_alone_is_not_persisted() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        while r.poll_event().is_some() {}
        r.handle_register(
            now + Duration::from_secs(1),
            &req("1001", "c2", 1, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Bound {
                persist: false,
                new: false,
                ..
            })
        ));
        assert_eq!(r.bindings_of("1001")[0].call_id, "c2");
    }

    #[test]
    fn interval_too_brief_changes_nothing() {
        let now = t0();
        let mut r = reg(now);
        let err = r
            .handle_register(
                now,
                &req("1001", "c1", 1, vec![contact("sip:a@h", Some(30))], None),
                ONE,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::IntervalTooBrief { min_expires: 60 });
        assert_eq!(err.status(), 423);
        assert_eq!(r.binding_count(), 0);
        assert!(r.poll_event().is_none());
    }

    #[test]
    fn expires_clamped_to_max_and_default_applied() {
        let now = t0();
        let mut r = reg(now);
        let ok = r
            .handle_register(
                now,
                &req(
                    "1001",
                    "c1",
                    1,
                    vec![contact("sip:a@h", Some(999_999))],
                    None,
                ),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts[0].1, 3600);
        let ok = r
            .handle_register(
                now,
                &req("1002", "c2", 1, vec![contact("sip:b@h", None)], None),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts[0].1, 3600);
    }

    #[test]
    fn max_contacts_with_and_without_remove_existing() {
        let now = t0();
        let mut r = reg(now);
        // remove_existing: new contact replaces the old one
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h1", None)], Some(600)),
            ONE,
        )
        .unwrap();
        let ok = r
            .handle_register(
                now,
                &req("1001", "c2", 1, vec![contact("sip:a@h2", None)], Some(600)),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts.len(), 1);
        assert_eq!(ok.contacts[0].0, "sip:a@h2");
        // strict: fourth contact refused
        for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
            r.handle_register(
                now,
                &req(
                    "2001",
                    "x",
                    i as u32 + 1,
                    vec![contact(&format!("sip:b@{h}"), None)],
                    Some(600),
                ),
                THREE_STRICT,
            )
            .unwrap();
        }
        let err = r
            .handle_register(
                now,
                &req("2001", "y", 1, vec![contact("sip:b@h4", None)], Some(600)),
                THREE_STRICT,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::TooManyContacts { max: 3 });
        assert_eq!(r.bindings_of("2001").len(), 3);
        // re-registering an existing one is still fine
        r.handle_register(
            now,
            &req("2001", "x", 10, vec![contact("sip:b@h1", None)], Some(600)),
            THREE_STRICT,
        )
        .unwrap();
    }

    #[test]
    fn wildcard_rules() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        let mut w = req("1001", "c9", 1, vec![], Some(600));
        w.wildcard = true;
        assert_eq!(r.handle_register(now, &w, ONE).unwrap_err().status(), 400);
        w.expires_header = Some(0);
        assert!(r.handle_register(now, &w, ONE).unwrap().contacts.is_empty());
        assert_eq!(r.binding_count(), 0);
        let mut w2 = req("1001", "c9", 2, vec![contact("sip:a@h", None)], Some(0));
        w2.wildcard = true;
        assert_eq!(
            r.handle_register(now, &w2, ONE).unwrap_err(),
            RegisterError::WildcardWithContacts
        );
    }

    #[test]
    fn query_lists_without_change() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(600)),
            ONE,
        )
        .unwrap();
        let ok = r
            .handle_register(
                now + Duration::from_secs(10),
                &req("1001", "q", 1, vec![], None),
                ONE,
            )
            .unwrap();
        assert_eq!(ok.contacts, vec![("sip:a@h".to_string(), 590)]);
    }

    #[test]
    fn expiry_on_virtual_time() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(60)),
            ONE,
        )
        .unwrap();
        while r.poll_event().is_some() {}
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(60)));
        r.handle_timeout(now + Duration::from_secs(59));
        assert_eq!(r.binding_count(), 1);
        r.handle_timeout(now + Duration::from_secs(60));
        assert_eq!(r.binding_count(), 0);
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Removed {
                reason: RemoveReason::Expired,
                ..
            })
        ));
    }

    #[test]
    fn refresh_postpones_expiry() {
        let now = t0();
        let mut r = reg(now);
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![contact("sip:a@h", None)], Some(60)),
            ONE,
        )
        .unwrap();
        r.handle_register(
            now + Duration::from_secs(50),
            &req("1001", "c1", 2, vec![contact("sip:a@h", None)], Some(60)),
            ONE,
        )
        .unwrap();
        r.handle_timeout(now + Duration::from_secs(61));
        assert_eq!(r.binding_count(), 1);
        r.handle_timeout(now + Duration::from_secs(110));
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn restore_drops_expired() {
        let now = t0();
        let mut r = reg(now);
        let unix = r.unix_secs(now);
        let rec = |contact: &str, exp: i64| BindingRecord {
            aor: "1001".into(),
            contact: contact.into(),
            source: "192.0.2.1:5060".into(),
            transport: "udp".into(),
            call_id: "c".into(),
            cseq: 1,
            expires_at: exp,
            user_agent: None,
            instance: None,
            registered_at: unix - 100,
        };
        r.restore(
            now,
            vec![rec("sip:live@h", unix + 300), rec("sip:dead@h", unix - 1)],
        );
        assert_eq!(r.binding_count(), 1);
        assert_eq!(
            r.contacts_of(now, "1001"),
            vec![("sip:live@h".to_string(), 300)]
        );
        assert!(matches!(
            r.poll_event(),
            Some(RegistrarEvent::Removed {
                reason: RemoveReason::Expired,
                ..
            })
        ));
    }

    #[test]
    fn instance_id_identifies_binding() {
        let now = t0();
        let mut r = reg(now);
        let mut c = contact("sip:a@10.0.0.1:5060", None);
        c.instance = Some("<urn:uuid:1>".into());
        r.handle_register(
            now,
            &req("1001", "c1", 1, vec![c.clone()], Some(600)),
            THREE_STRICT,
        )
        .unwrap();
        c.uri = "sip:a@10.0.0.2:5060".into();
        r.handle_register(now, &req("1001", "c2", 1, vec![c], Some(600)), THREE_STRICT)
            .unwrap();
        assert_eq!(r.bindings_of("1001").len(), 1);
        assert_eq!(r.bindings_of("1001")[0].contact, "sip:a@10.0.0.2:5060");
    }
}
