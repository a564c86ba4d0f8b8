//! The B2BUA call state machine (sans-IO), a part of the [`Pbx`] engine.
//!
//! One call = one A-leg dialog (the caller's INVITE, answered by Dialtone) and one B-leg
//! dialog per forked branch (a new Call-ID, From tag and branch per contact of the callee).
//! Media goes through the relay: the engine asks for relay ports with
//! [`Output::Media`]`(`[`MediaCommand::Open`]`)` and waits for
//! [`Command::MediaOpened`](super::Command::MediaOpened) (or `MediaFailed` → 503) before it
//! forks. Every SDP crossing Dialtone is rewritten to the relay ports of the side it goes to.
//!
//! Flow: INVITE → 100 Trying → 407 challenge (Proxy-Authenticate) → authenticated → route
//! (404 unknown, 480 not registered, 483 Max-Forwards 0, 488 no common codec) → `Open` →
//! `MediaOpened` → one INVITE per binding. 180/183 are relayed to A (183 SDP rewritten); the
//! first 2xx wins (ACKed on B, other branches CANCELled, 200 to A retransmitted until A's ACK);
//! all branches failed → the best final status (486 if any branch was busy); a 6xx stops the
//! search; the ring timeout CANCELs every branch and answers 480. CANCEL from A → 200, 487,
//! CANCEL to every branch. In-dialog BYE ends both legs; re-INVITE, UPDATE and INFO are relayed
//! to the other leg (SDP rewritten, hold reported with [`MediaCommand::SetHold`]). When a call
//! ends, a [`CallRecord`] is emitted as [`Output::Cdr`].

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info};

use super::{Output, Pbx};
use crate::pbx::peer::{Peer, Proto};
use crate::sdp::{
    LocalOrigin, SessionDescription, build_offer, check_answer, filter_offer, is_hold,
    rewrite_for_relay,
};
use crate::sip::auth::{AuthError, Credentials};
use crate::sip::transaction::{ClientDisposition, TxId, TxKey, TxMethod};
use crate::sip::{HeaderName, Message, Method, NameAddr, Request, Response, Uri};

#[path = "redirect.rs"]
mod redirect;
pub use redirect::RedirectError;

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller's side.
    A,
    /// The callee's side.
    B,
}

/// Relay ports of a call, one per m= line of the caller's offer, for each leg (the port the
/// phone of that leg sends to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPorts {
    pub a: Vec<u16>,
    pub b: Vec<u16>,
}

/// What the engine asks of the media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Allocate relay ports for `streams` m= lines per leg; answer with
    /// `Command::MediaOpened { call, ports }` or `Command::MediaFailed { call }`.
    Open { call: u64, streams: usize },
    /// The SDP a phone of `leg` sent (where its media is, which codecs).
    SetRemote {
        call: u64,
        leg: Leg,
        sdp: Box<SessionDescription>,
    },
    /// `leg` put the call on hold (sendonly/inactive) or resumed it.
    SetHold { call: u64, leg: Leg, hold: bool },
    /// RTP received on `leg` with payload type `from` is forwarded with `to` (RFC 4733
    /// telephone-event numbered differently by the two phones).
    SetPtMap {
        call: u64,
        leg: Leg,
        from: u8,
        to: u8,
    },
    /// The far end of `leg` changes (a redirect): the relay forgets that leg's remote (until
    /// the next `SetRemote`) and the payload-type maps of both legs, while the stream the
    /// other leg receives continues (same SSRC, sequence numbers and timestamps go on).
    ReplaceLeg { call: u64, leg: Leg },
    /// Release the call's ports.
    Close { call: u64 },
}

/// A step in a call's life, for the event bus (AMI channel events, the events API). Leg A is
/// the caller's side, leg B the callee's; `branch` numbers the contacts rung on a leg (the
/// callee's, or the caller's for an originated call), each an Asterisk channel of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A call exists: an authenticated, routed INVITE (the caller's channel, state Ring) or an
    /// originate request (`originated`: Dialtone rings the caller first).
    Started {
        call: u64,
        call_id: String,
        caller: String,
        caller_name: String,
        callee: String,
        callee_name: String,
        originated: bool,
    },
    /// A branch is being called (a contact of the callee, or of the caller when originated).
    Dialing {
        call: u64,
        leg: Leg,
        branch: usize,
        number: String,
        contact: String,
    },
    /// That branch rings (its first 180/183).
    Ringing { call: u64, leg: Leg, branch: usize },
    /// That branch answered.
    Answered { call: u64, leg: Leg, branch: usize },
    /// A branch ended without being the answered one (`status`: its final response, 487 when
    /// Dialtone cancelled it).
    BranchEnded {
        call: u64,
        leg: Leg,
        branch: usize,
        status: u16,
    },
    /// Caller and callee connected (media bridged through the relay).
    Bridged { call: u64 },
    /// The phone of `leg` put the call on hold or resumed it.
    Hold { call: u64, leg: Leg, hold: bool },
    /// A SIP INFO DTMF digit (application/dtmf-relay or application/dtmf) from `leg`.
    Dtmf {
        call: u64,
        leg: Leg,
        digit: char,
        duration_ms: u32,
    },
    /// AMI `Redirect`: the channel of `kept` now dials `to`. For an answered call the other
    /// party was sent BYE (its channel is gone, normal clearing); for a ringing call the
    /// callee's branches were cancelled. From here on the kept party is leg A (the caller)
    /// and `to` is called on leg B with new branches (numbered from 0 again).
    Redirected {
        call: u64,
        kept: Leg,
        /// The call was answered (a bridge existed) when redirected.
        answered: bool,
        to: String,
        to_name: String,
        /// The dialplan context the redirect named (AMI), if any.
        context: Option<String>,
    },
    /// The call is over.
    Ended {
        call: u64,
        status: u16,
        q850: u8,
        by: HungUpBy,
        answered: bool,
    },
}

impl CallEvent {
    /// The engine id of the call this step belongs to.
    pub fn call(&self) -> u64 {
        match self {
            CallEvent::Started { call, .. }
            | CallEvent::Dialing { call, .. }
            | CallEvent::Ringing { call, .. }
            | CallEvent::Answered { call, .. }
            | CallEvent::BranchEnded { call, .. }
            | CallEvent::Bridged { call }
            | CallEvent::Hold { call, .. }
            | CallEvent::Dtmf { call, .. }
            | CallEvent::Redirected { call, .. }
            | CallEvent::Ended { call, .. } => *call,
        }
    }
}

/// How an originated call presents itself to the phone it rings first (AMI `Originate`'s
/// `Timeout` and `CallerID`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginateOptions {
    /// How long the first phone may ring (default: `server.ring_timeout`).
    pub ring_timeout: Option<Duration>,
    /// `(number, name)` shown on the first phone instead of the callee's.
    pub caller_id: Option<(String, String)>,
}

/// Why a click-to-dial / originate request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// `field` (`from` or `to`) names no enabled extension.
    #[error("{field}: extension {number} not found")]
    NotFound { field: &'static str, number: String },
    /// `from` has no registered contact to ring.
    #[error("from: extension {0} is not registered")]
    NotRegistered(String),
    /// `from` and `to` are the same extension.
    #[error("to: cannot call the originating extension itself")]
    SameExtension,
}

/// How a call ended (Asterisk CDR dispositions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
    Cancelled,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Cancelled => "CANCELLED",
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HungUpBy {
    Caller,
    Callee,
    /// Dialtone (ring timeout, routing failure, media failure).
    System,
}

/// One finished call, for the CDR store. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Engine call id (as in [`MediaCommand`]s).
    pub id: u64,
    /// The A-leg Call-ID.
    pub call_id: String,
    /// Caller extension (the authenticated user).
    pub from: String,
    /// Dialled number.
    pub to: String,
    pub start: u64,
    pub answer: Option<u64>,
    pub end: u64,
    pub disposition: Disposition,
    /// SIP status: the final response to the caller's INVITE, or 200 for an answered call.
    pub hangup_cause: u16,
    /// Q.850 cause ([`super::cause`]).
    pub q850_cause: u8,
    pub hung_up_by: HungUpBy,
    /// Negotiated codec per leg (Asterisk names), once an answer was seen.
    pub codec_a: Option<String>,
    pub codec_b: Option<String>,
}

/// One call in progress (API view). Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    /// Engine call id (as in [`MediaCommand`]s and `Command::Hangup`).
    pub id: u64,
    /// The A-leg Call-ID.
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub answered: bool,
    pub start: u64,
    pub answer: Option<u64>,
}

/// Default ring timeout (`Dial(PJSIP/101,30)`).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `MediaOpened`.
    Media,
    /// An originated call rings its caller.
    Originating,
    Ringing,
    Answered,
}

/// Click-to-dial: Dialtone rings the `from` extension first (these branches, with an offer of
/// its own), and calls the callee once it answers (RFC 3725 flow I, with the relay in the
/// middle).
#[derive(Debug)]
struct Originate {
    branches: Vec<Branch>,
    /// The offer sent to the caller's phones.
    offer: SessionDescription,
    /// The caller answered: the A leg is a dialog in which Dialtone is the UAC.
    answered: bool,
    /// `(number, name)` the first phone shows (AMI `CallerID`).
    caller_id: Option<(String, String)>,
}

#[derive(Debug)]
struct Branch {
    peer: Peer,
    tx: Option<TxId>,
    /// The INVITE sent (for CANCEL and ACK).
    invite: Request,
    call_id: String,
    /// The callee's To tag once a response carried one.
    to_tag: Option<String>,
    /// Final status once done.
    final_status: Option<u16>,
    got_provisional: bool,
    /// A 180/183 arrived (the branch rings).
    rang: bool,
    cancelled: bool,
}

/// The A leg: the dialog Dialtone answers.
#[derive(Debug)]
struct ALeg {
    peer: Peer,
    /// The caller's INVITE server transaction (None for an originated call).
    tx: Option<TxId>,
    /// The caller's INVITE; for an originated call, the dialog as if the phone had sent it
    /// (From = the phone's identity with its tag, To = ours).
    invite: Request,
    call_id: String,
    /// Dialtone's To tag.
    local_tag: String,
    /// The caller's Contact URI (remote target).
    target: String,
    cseq: u32,
}

/// The B leg once answered.
#[derive(Debug)]
struct BLeg {
    peer: Peer,
    call_id: String,
    /// Our From (with our tag) and their To (with their tag), as sent in requests.
    from: String,
    to: String,
    target: String,
    cseq: u32,
}

/// A 2xx being retransmitted: bytes, next send, current interval, give-up instant.
#[derive(Debug, Clone)]
struct Retx {
    bytes: Bytes,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

#[derive(Debug)]
struct Call {
    phase: Phase,
    a: ALeg,
    branches: Vec<Branch>,
    b: Option<BLeg>,
    a_offer: SessionDescription,
    b_offer: Option<SessionDescription>,
    ports: Option<MediaPorts>,
    a_origin: LocalOrigin,
    b_origin: LocalOrigin,
    caller: String,
    callee: String,
    ring_deadline: Instant,
    /// The 2xx to A and its retransmission state (next, interval) until A's ACK.
    /// Per leg (A, B): a 2xx to an INVITE from that leg, re-sent until its ACK
    /// (RFC 3261 §13.3.1.4).
    retx: [Option<Retx>; 2],
    start: u64,
    answer: Option<u64>,
    /// A relayed offer (re-INVITE/UPDATE with SDP) awaits its answer.
    offer_pending: bool,
    /// Negotiated codec per leg (A, B), Asterisk names.
    codecs: [Option<String>; 2],
    /// Set for a click-to-dial call.
    origin: Option<Box<Originate>>,
    /// RFC 4028: the session expires unless refreshed by then (the last 2xx to an INVITE or
    /// UPDATE that carried Session-Expires, minus the §10 margin).
    session_deadline: Option<Instant>,
    /// The last SDP Dialtone sent each leg (A, B): the session as that phone knows it.
    last_sdp_to: [Option<Bytes>; 2],
    /// The phone of each leg (A, B) has put the call on hold.
    held: [bool; 2],
    /// The Q.850 cause an outside hang-up asked for (AMI `Hangup` with `Cause`).
    hangup_q850: Option<u8>,
    /// What AMI `Redirect` needs and changes (see `redirect.rs`).
    xfer: Transfer,
}

/// Redirect state of a call.
#[derive(Debug, Default)]
struct Transfer {
    /// The engine's legs are the relay's legs swapped (the callee's phone was kept by a
    /// redirect and became leg A): [`MediaCommand`]s name relay legs.
    swapped: bool,
    /// The Call-ID the call is reported under (API, CDR) once a redirect made another
    /// dialog leg A.
    call_id: Option<String>,
    /// Redirected after it was answered: it stays an answered call in the CDR whatever
    /// happens to the new callee.
    was_answered: bool,
    /// The last SDP each phone (engine leg A, B) sent (what the relay was told with
    /// `SetRemote`).
    remote_sdp: [Option<Box<SessionDescription>>; 2],
    /// The RFC 4028 session timer each phone (engine leg A, B) last agreed to, as seen in the
    /// 2xx of an INVITE/UPDATE of its dialog (None: no timer).
    timer: [Option<LegTimer>; 2],
    /// The phone of each leg (A, B) lists UPDATE in its Allow.
    allow_update: [bool; 2],
    /// The next SDP to that leg (A, B) gets a new o= version even before the answer (a
    /// ringing caller that already had early media from a callee a redirect dropped).
    bump: [bool; 2],
    /// Dialtone refreshes the kept phone's session (leg A) itself (see `redirect.rs`).
    refresh: Option<KeptRefresh>,
}

/// A session timer as one phone sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LegTimer {
    /// The session interval (Session-Expires), seconds.
    secs: u64,
    /// The other end (Dialtone, for the other phone) is the refresher.
    remote_refreshes: bool,
    /// When it was agreed (the 2xx passed).
    at: Instant,
}

/// Dialtone as the refresher of the kept phone's dialog after a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeptRefresh {
    secs: u64,
    /// When to send the next refresh.
    due: Instant,
    /// A refresh request awaits its final response.
    in_flight: bool,
}

impl Call {
    /// The Call-ID the API and the CDR know the call by.
    fn report_call_id(&self) -> &str {
        self.xfer.call_id.as_deref().unwrap_or(&self.a.call_id)
    }

    /// The A-leg dialog exists (a caller's INVITE was answered, or an originated call's
    /// caller picked up).
    fn a_established(&self) -> bool {
        self.phase == Phase::Answered || self.origin.as_ref().is_some_and(|o| o.answered)
    }
}

/// What a client transaction of ours belongs to.
#[derive(Debug)]
enum ClientRole {
    Branch {
        call: u64,
        index: usize,
    },
    /// A branch ringing the caller of an originated call.
    Origin {
        call: u64,
        index: usize,
    },
    /// A relayed in-dialog request: the server transaction it answers.
    Relay(Box<Relay>),
    /// BYE or CANCEL: the answer is not awaited.
    Fire,
    /// An INVITE of a branch a redirect dropped (its entry in `orphans`): a final response is
    /// ACKed, a late 2xx hung up.
    Orphan,
    /// A session refresh (UPDATE or re-INVITE) Dialtone sent the kept phone of a redirected
    /// call (leg A): the call and the request sent.
    Refresh(Box<(u64, Request)>),
}

/// A relayed in-dialog request awaiting the other leg's answer.
#[derive(Debug)]
struct Relay {
    call: u64,
    from: Leg,
    server: TxId,
    request: Request,
    sent: Request,
}

/// Calls state, owned by [`Pbx`].
#[derive(Debug, Default)]
pub(super) struct Calls {
    calls: HashMap<u64, Call>,
    /// Call-ID → (call, leg).
    dialogs: HashMap<String, (u64, Leg)>,
    /// A-leg INVITE server transaction → call.
    by_invite: HashMap<TxId, u64>,
    clients: HashMap<TxId, ClientRole>,
    /// INVITE client transactions of calls that ended while they were pending: their final
    /// response must still be ACKed (and a late 2xx hung up).
    orphans: HashMap<TxId, (Request, Peer)>,
    /// CANCELs waiting for a provisional response of the INVITE transaction they cancel.
    pending_cancel: HashMap<TxId, (Request, Peer)>,
    timers: std::collections::BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    /// Extension → its calls (as caller or callee), for device state.
    by_ext: HashMap<String, Vec<u64>>,
}

/// The calls of one extension, as device state and dialog-info see them.
#[derive(Debug, Default)]
pub(super) struct ExtCalls {
    /// Calls ringing this extension's phone.
    pub ringing: usize,
    /// Calls this extension is on (dialling out or answered).
    pub in_use: usize,
    /// Of those, the ones its phone put on hold.
    pub held: usize,
    pub dialogs: Vec<crate::pbx::presence::DialogView>,
}

impl Calls {
    fn index(&mut self, id: u64, exts: [&str; 2]) {
        for e in exts {
            self.by_ext.entry(e.to_owned()).or_default().push(id);
        }
    }

    fn unindex(&mut self, id: u64, exts: [&str; 2]) {
        for e in exts {
            if let Some(v) = self.by_ext.get_mut(e) {
                v.retain(|c| *c != id);
                if v.is_empty() {
                    self.by_ext.remove(e);
                }
            }
        }
    }

    /// The caller and callee of a call.
    pub(super) fn parties(&self, id: u64) -> Option<(String, String)> {
        self.calls
            .get(&id)
            .map(|c| (c.caller.clone(), c.callee.clone()))
    }
    pub(super) fn active(&self) -> usize {
        self.calls.len()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
}

fn warning(text: &str) -> (HeaderName, String) {
    (
        HeaderName::Warning,
        format!("399 dialtone \"{}\"", text.replace('"', "'")),
    )
}

fn with_tag(na: &str, tag: &str) -> String {
    match NameAddr::parse(na) {
        Ok(mut n) => {
            if n.tag().is_none() {
                n.set_param("tag", Some(tag.to_owned()));
            }
            n.to_string()
        }
        Err(_) => format!("{na};tag={tag}"),
    }
}

fn contact_uri(headers_contact: Option<&str>) -> Option<String> {
    let c = headers_contact?;
    NameAddr::parse(c).ok().map(|n| n.uri.to_string())
}

impl Pbx {
    /// The address written in SDP for `peer` (the media relay's).
    fn relay_ip(&self, peer: Peer) -> IpAddr {
        if let Some(ext) = self.cfg.external_media_ip.or(self.cfg.external_ip)
            && !self.cfg.is_local(peer.addr.ip())
        {
            return ext;
        }
        self.signal_ip(peer)
    }

    /// The address written in Via/Contact for `peer`.
    fn signal_ip(&self, peer: Peer) -> IpAddr {
        if let Some(ext) = self.cfg.external_ip
            && !self.cfg.is_local(peer.addr.ip())
        {
            return ext;
        }
        let ip = self.cfg.local_udp.ip();
        if ip.is_unspecified() {
            super::target_local_guess(peer.addr)
        } else {
            ip
        }
    }

    fn local_addr_for(&self, peer: Peer) -> (String, u16, &'static str) {
        let local = match peer.proto {
            Proto::Tcp => self.cfg.local_tcp.unwrap_or(self.cfg.local_udp),
            Proto::Udp => self.cfg.local_udp,
        };
        (
            super::fmt_host(self.signal_ip(peer)),
            local.port(),
            peer.proto.via_name(),
        )
    }

    fn new_branch(&mut self) -> String {
        self.branch_seq += 1;
        format!("z9hG4bK-dt{:x}", self.branch_seq)
    }

    /// Ask the relay. Legs are the engine's; they become the relay's here (a redirect may
    /// have swapped them), and the SDP each phone sent is remembered for a redirect.
    fn emit_media(&mut self, mut cmd: MediaCommand) {
        let call = match &cmd {
            MediaCommand::SetRemote { call, .. }
            | MediaCommand::SetHold { call, .. }
            | MediaCommand::SetPtMap { call, .. }
            | MediaCommand::ReplaceLeg { call, .. } => *call,
            MediaCommand::Open { .. } | MediaCommand::Close { .. } => {
                self.out.push_back(Output::Media(cmd));
                return;
            }
        };
        if let Some(c) = self.calls.calls.get_mut(&call) {
            if let MediaCommand::SetRemote { leg, sdp, .. } = &cmd {
                c.xfer.remote_sdp[leg_index(*leg)] = Some(sdp.clone());
            }
            if c.xfer.swapped {
                match &mut cmd {
                    MediaCommand::SetRemote { leg, .. }
                    | MediaCommand::SetHold { leg, .. }
                    | MediaCommand::SetPtMap { leg, .. }
                    | MediaCommand::ReplaceLeg { leg, .. } => *leg = other(*leg),
                    MediaCommand::Open { .. } | MediaCommand::Close { .. } => {}
                }
            }
        }
        self.out.push_back(Output::Media(cmd));
    }

    fn call_event(&mut self, ev: CallEvent) {
        let id = ev.call();
        if !matches!(ev, CallEvent::Dtmf { .. })
            && let Some((a, b)) = self.calls.parties(id)
        {
            self.mark_dirty(&a);
            self.mark_dirty(&b);
        }
        self.out.push_back(Output::Event(super::PbxEvent::Call(ev)));
    }

    /// The calls of `ext` (device state counts; dialog views only when `dialogs`).
    pub(super) fn ext_calls(&self, ext: &str, dialogs: bool, host: &str, now_ms: u64) -> ExtCalls {
        let mut out = ExtCalls::default();
        let Some(ids) = self.calls.by_ext.get(ext) else {
            return out;
        };
        for &id in ids {
            let Some(c) = self.calls.calls.get(&id) else {
                continue;
            };
            let originating_ring =
                c.phase == Phase::Originating || (c.phase == Phase::Media && c.origin.is_some());
            if c.caller == ext {
                if originating_ring {
                    out.ringing += 1;
                } else {
                    out.in_use += 1;
                    if c.held[0] {
                        out.held += 1;
                    }
                }
            }
            if c.callee == ext && c.caller != ext {
                match c.phase {
                    Phase::Ringing => out.ringing += 1,
                    Phase::Answered => {
                        out.in_use += 1;
                        if c.held[1] {
                            out.held += 1;
                        }
                    }
                    _ => {}
                }
            }
            if dialogs {
                out.dialogs.extend(self.call_dialogs(id, ext, host, now_ms));
            }
        }
        out
    }

    /// The dialog-info views of call `id` seen from extension `ext`.
    fn call_dialogs(
        &self,
        id: u64,
        ext: &str,
        host: &str,
        now_ms: u64,
    ) -> Vec<crate::pbx::presence::DialogView> {
        use crate::pbx::presence::{DialogState, DialogView, Party};
        let Some(c) = self.calls.calls.get(&id) else {
            return Vec::new();
        };
        let party = |n: &str| Party {
            uri: format!("sip:{n}@{host}"),
            display: self
                .directory
                .get(n)
                .map(|e| e.name.clone())
                .filter(|s| !s.is_empty()),
        };
        let duration = c.answer.map(|a| now_ms.saturating_sub(a) / 1000);
        let mut out = Vec::new();
        if c.caller == ext {
            let (state, initiator) = match c.phase {
                Phase::Answered => (DialogState::Confirmed, true),
                _ if c.origin.as_ref().is_some_and(|o| o.answered) => {
                    (DialogState::Confirmed, false)
                }
                Phase::Originating | Phase::Media if c.origin.is_some() => {
                    (DialogState::Early, false)
                }
                Phase::Media => (DialogState::Trying, true),
                Phase::Ringing | Phase::Originating => {
                    if c.branches.iter().any(|b| b.rang) {
                        (DialogState::Early, true)
                    } else {
                        (DialogState::Proceeding, true)
                    }
                }
            };
            out.push(DialogView {
                id: format!("{id}-a"),
                call_id: c.a.call_id.clone(),
                local_tag: c.a.invite.from().and_then(|f| f.tag().map(str::to_owned)),
                remote_tag: Some(c.a.local_tag.clone()),
                initiator,
                state,
                local: party(&c.caller),
                remote: party(&c.callee),
                held: c.held[0],
                duration: if state == DialogState::Confirmed {
                    duration
                } else {
                    None
                },
            });
        }
        if c.callee == ext && c.caller != ext {
            let (state, branch) = match c.phase {
                Phase::Answered => (
                    DialogState::Confirmed,
                    c.b.as_ref()
                        .and_then(|b| c.branches.iter().find(|x| x.call_id == b.call_id)),
                ),
                Phase::Ringing => (
                    DialogState::Early,
                    c.branches
                        .iter()
                        .find(|b| b.final_status.is_none() && !b.cancelled),
                ),
                _ => return out,
            };
            if let Some(b) = branch {
                out.push(DialogView {
                    id: format!("{id}-b"),
                    call_id: b.call_id.clone(),
                    local_tag: b.to_tag.clone(),
                    remote_tag: b.invite.from().and_then(|f| f.tag().map(str::to_owned)),
                    initiator: false,
                    state,
                    local: party(&c.callee),
                    remote: party(&c.caller),
                    held: c.held[1],
                    duration: if state == DialogState::Confirmed {
                        duration
                    } else {
                        None
                    },
                });
            }
        }
        out
    }

    fn started_event(&mut self, id: u64, originated: bool) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let name = |n: &str| {
            self.directory
                .get(n)
                .map(|e| e.name.clone())
                .unwrap_or_default()
        };
        let ev = CallEvent::Started {
            call: id,
            call_id: c.a.call_id.clone(),
            caller: c.caller.clone(),
            caller_name: name(&c.caller),
            callee: c.callee.clone(),
            callee_name: name(&c.callee),
            originated,
        };
        self.call_event(ev);
    }

    // ------------------------------------------------------------- requests in

    /// An INVITE on a new server transaction (precheck passed).
    pub(super) fn handle_invite(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let trying = self.build_response_with_tag(&req, 100, "Trying", &[], None, None);
        let _ = self.txs.respond(now, tx, 100, trying);
        if self.is_own_request(&req) {
            // Our own B-leg INVITE came back (a contact that points at Dialtone): a loop.
            self.respond(now, tx, &req, 482, "Loop Detected", &[]);
            return;
        }
        let has_to_tag = req.to().is_some_and(|t| t.tag().is_some());
        if has_to_tag
            && req
                .call_id()
                .is_some_and(|c| self.calls.dialogs.contains_key(c))
        {
            // A re-INVITE in a known dialog: not challenged again.
            self.in_dialog(now, peer, tx, req);
            return;
        }
        // Authentication (RFC 3261 §22.3: 407 + Proxy-Authenticate). An INVITE for a dialog
        // that does not exist is challenged like any other before it learns that (481).
        let Some(caller) = self.authenticate_invite(now, peer, tx, &req) else {
            return;
        };
        if has_to_tag {
            self.respond(now, tx, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        if req.max_forwards() == Some(0) {
            self.respond(now, tx, &req, 483, "Too Many Hops", &[]);
            return;
        }
        let callee = req.uri.user.clone().unwrap_or_default();
        let Some(ext) = self.directory.get(&callee).filter(|e| e.enabled) else {
            self.respond(now, tx, &req, 404, "Not Found", &[]);
            return;
        };
        let codecs = if ext.codecs.is_empty() {
            super::super::directory::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            ext.codecs.clone()
        };
        if callee == caller {
            self.respond(now, tx, &req, 482, "Loop Detected", &[]);
            return;
        }
        if self.registrar.bindings_of(&callee).is_empty() {
            self.respond(now, tx, &req, 480, "Temporarily Unavailable", &[]);
            return;
        }
        if self.refuses_calls(&callee) {
            let status = self.cfg.dnd_status;
            let reason = Response::default_reason(status);
            self.respond(now, tx, &req, status, reason, &[warning("do not disturb")]);
            return;
        }
        if req.body.is_empty() {
            self.respond(
                now,
                tx,
                &req,
                488,
                "Not Acceptable Here",
                &[warning("an INVITE without an SDP offer is not supported")],
            );
            return;
        }
        let a_offer = match SessionDescription::parse(&req.body) {
            Ok(s) => s,
            Err(e) => {
                self.respond(
                    now,
                    tx,
                    &req,
                    400,
                    "Bad Request (SDP)",
                    &[warning(&e.to_string())],
                );
                return;
            }
        };
        let b_offer = match filter_offer(&a_offer, &codecs) {
            Ok(s) => s,
            Err(e) => {
                let w = (HeaderName::Warning, e.warning_value("dialtone"));
                self.respond(now, tx, &req, e.status(), "Not Acceptable Here", &[w]);
                return;
            }
        };
        let Some(call_id) = req.call_id().map(str::to_owned) else {
            self.respond(now, tx, &req, 400, "Bad Request", &[]);
            return;
        };
        self.calls.next_id += 1;
        let id = self.calls.next_id;
        let local_tag = self.new_tag();
        let target = contact_uri(req.headers.get(&HeaderName::Contact))
            .unwrap_or_else(|| format!("sip:{}", peer.addr));
        let streams = a_offer.media.len();
        let origin_seed = self.tag_seq ^ id;
        let a_allows_update = allows(&req.headers, &Method::Update);
        let call = Call {
            phase: Phase::Media,
            a: ALeg {
                peer,
                tx: Some(tx),
                invite: req,
                call_id: call_id.clone(),
                local_tag,
                target,
                cseq: 1,
            },
            branches: Vec::new(),
            b: None,
            a_offer,
            b_offer: Some(b_offer),
            ports: None,
            a_origin: LocalOrigin::new(origin_seed & 0xffff_ffff),
            b_origin: LocalOrigin::new((origin_seed >> 16) & 0xffff_ffff),
            caller,
            callee,
            ring_deadline: now + self.cfg.ring_timeout,
            retx: [None, None],
            start: self.unix_ms(now),
            answer: None,
            offer_pending: false,
            codecs: [None, None],
            origin: None,
            session_deadline: None,
            last_sdp_to: [None, None],
            held: [false, false],
            hangup_q850: None,
            xfer: Transfer {
                allow_update: [a_allows_update, false],
                ..Transfer::default()
            },
        };
        info!(call = id, caller = %call.caller, callee = %call.callee, "new call");
        let (caller_for_index, callee_for_index) = (call.caller.clone(), call.callee.clone());
        self.calls.index(id, [&caller_for_index, &callee_for_index]);
        self.calls.calls.insert(id, call);
        self.started_event(id, false);
        self.calls.dialogs.insert(call_id, (id, Leg::A));
        self.calls.by_invite.insert(tx, id);
        // The ring timeout also bounds the wait for the relay.
        self.calls
            .timers
            .push(Reverse((now + self.cfg.ring_timeout, id)));
        self.emit_media(MediaCommand::Open { call: id, streams });
    }

    /// A Via of this request was put there by Dialtone (its branch prefix and address).
    fn is_own_request(&self, req: &Request) -> bool {
        let ports = [
            Some(self.cfg.local_udp.port()),
            self.cfg.local_tcp.map(|a| a.port()),
        ];
        req.headers.get_all(&HeaderName::Via).any(|v| {
            crate::sip::Via::parse(v).is_ok_and(|via| {
                via.branch().is_some_and(|b| b.starts_with("z9hG4bK-dt"))
                    && via.port.is_some_and(|p| ports.contains(&Some(p)))
                    && via
                        .host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip == self.signal_ip(Peer::udp(self.cfg.local_udp)))
            })
        })
    }

    /// Digest check of an INVITE; the caller's extension number when it passes.
    fn authenticate_invite(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: &Request,
    ) -> Option<String> {
        self.authenticate_request(now, peer, tx, req, true)
    }

    /// Digest check of a request on a server transaction: the user when it passes, else the
    /// challenge (407 + Proxy-Authenticate when `proxy`, as for INVITE; 401 + WWW-Authenticate
    /// otherwise), 403 for a wrong password (counted towards the source's ban) or 400.
    pub(super) fn authenticate_request(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: &Request,
        proxy: bool,
    ) -> Option<String> {
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let challenge = |pbx: &mut Pbx, stale: bool| {
            if proxy {
                pbx.proxy_challenge(now, peer, tx, req, stale);
            } else {
                pbx.challenge(now, peer, Some(tx), req, stale);
            }
        };
        let Some(value) = req.headers.get(&header) else {
            challenge(self, false);
            return None;
        };
        let creds = match Credentials::parse(value) {
            Ok(c) => c,
            Err(AuthError::UnsupportedScheme { .. }) => {
                challenge(self, false);
                return None;
            }
            Err(e) => {
                let reason = if proxy {
                    "Bad Request (malformed Proxy-Authorization)"
                } else {
                    "Bad Request (malformed Authorization)"
                };
                self.respond(now, tx, req, e.status(), reason, &[]);
                return None;
            }
        };
        let directory = &self.directory;
        let verified = self.digest.verify(
            self.unix_ms(now),
            req.method.as_str(),
            &creds,
            |user| {
                directory
                    .get(user)
                    .filter(|e| e.enabled)
                    .and_then(|e| e.digest_secret())
            },
            Some(peer.addr.ip()),
        );
        match verified {
            Ok(v) => {
                self.guard.succeed(peer.addr.ip());
                Some(v.username.to_string())
            }
            Err(e) if e.wants_challenge() => {
                challenge(self, e.stale());
                None
            }
            Err(e) => {
                let status = e.status();
                if status == 403 {
                    let user = creds.username.to_string();
                    self.auth_failed(now, peer, &user);
                    self.respond(now, tx, req, 403, "Forbidden", &[]);
                } else {
                    self.respond(now, tx, req, status, "Bad Request", &[]);
                }
                None
            }
        }
    }

    fn proxy_challenge(&mut self, now: Instant, peer: Peer, tx: TxId, req: &Request, stale: bool) {
        let extra: Vec<(HeaderName, String)> = self
            .digest
            .challenge(self.unix_ms(now), stale, Some(peer.addr.ip()))
            .into_iter()
            .map(|v| (HeaderName::ProxyAuthenticate, v))
            .collect();
        self.respond(now, tx, req, 407, "Proxy Authentication Required", &extra);
    }

    /// The relay answered `MediaCommand::Open`: fork (or, for an originated call, ring the
    /// caller first).
    pub(super) fn media_opened(&mut self, now: Instant, id: u64, ports: MediaPorts) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            self.emit_media(MediaCommand::Close { call: id });
            return;
        };
        if call.phase != Phase::Media {
            return;
        }
        call.ports = Some(ports);
        if call.origin.is_some() {
            self.ring_caller(now, id);
            return;
        }
        call.phase = Phase::Ringing;
        let a_offer = call.a_offer.clone();
        let b_offer = call.b_offer.take().unwrap_or_else(|| a_offer.clone());
        self.emit_media(MediaCommand::SetRemote {
            call: id,
            leg: Leg::A,
            sdp: Box::new(a_offer),
        });
        self.fork_callee(now, id, b_offer);
    }

    /// INVITE every contact of the callee with `b_offer` (rewritten to the B-leg relay port).
    fn fork_callee(&mut self, now: Instant, id: u64, b_offer: SessionDescription) {
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        let callee = call.callee.clone();
        let caller = call.caller.clone();
        let mf = call.a.invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let b_origin = call.b_origin;
        let b_ports = call.ports.as_ref().map(|p| p.b.clone()).unwrap_or_default();
        let timer_headers = request_timer_headers(&call.a.invite.headers);
        // The offer per relay address (a branch outside local_net gets external_ip).
        let mut bodies: Vec<(IpAddr, Bytes)> = Vec::new();
        let display = self
            .directory
            .get(&caller)
            .map(|e| e.name.replace('"', ""))
            .unwrap_or_default();
        let targets: Vec<(String, Peer)> = self
            .registrar
            .bindings_of(&callee)
            .iter()
            .map(|b| (b.contact.clone(), b.source))
            .collect();
        for (contact, peer) in targets {
            let Ok(uri) = Uri::parse(&contact) else {
                continue;
            };
            let (host, port, proto) = self.local_addr_for(peer);
            let relay_ip = self.relay_ip(peer);
            let body = match bodies.iter().find(|(ip, _)| *ip == relay_ip) {
                Some((_, b)) => b.clone(),
                None => {
                    let mut offer = b_offer.clone();
                    let mut origin = b_origin;
                    if let Err(e) =
                        rewrite_for_relay(&mut offer, relay_ip, &b_ports, &mut origin, false)
                    {
                        debug!(call = id, error = %e, "relay rewrite failed");
                        self.fail_call(now, id, 500, "Server Internal Error", HungUpBy::System);
                        return;
                    }
                    let b = Bytes::from(offer.print());
                    if let Some(call) = self.calls.calls.get_mut(&id) {
                        call.b_offer = Some(offer);
                    }
                    bodies.push((relay_ip, b.clone()));
                    b
                }
            };
            let branch = self.new_branch();
            let tag = self.new_tag();
            let call_id = format!("{branch}@{host}");
            let mut r = Request::new(Method::Invite, uri);
            let h = &mut r.headers;
            h.push(
                HeaderName::Via,
                format!("SIP/2.0/{proto} {host}:{port};branch={branch};rport"),
            );
            h.push(HeaderName::MaxForwards, mf.to_string());
            h.push(
                HeaderName::From,
                format!("\"{display}\" <sip:{caller}@{host}>;tag={tag}"),
            );
            h.push(HeaderName::To, format!("<sip:{callee}@{host}>"));
            h.push(HeaderName::CallId, call_id.clone());
            h.push(HeaderName::CSeq, "1 INVITE");
            h.push(HeaderName::Contact, format!("<sip:{caller}@{host}:{port}>"));
            h.push(HeaderName::Allow, super::ALLOW);
            h.push(HeaderName::UserAgent, self.cfg.user_agent.clone());
            h.push(HeaderName::ContentType, "application/sdp");
            for (name, value) in &timer_headers {
                h.push(name.clone(), value.clone());
            }
            r.body = body;
            let bytes = r.to_bytes();
            let key = TxKey::client(branch, TxMethod::Invite);
            let tx = self
                .txs
                .send_request(now, key, peer, peer.proto.is_reliable(), bytes)
                .ok();
            let Some(call) = self.calls.calls.get_mut(&id) else {
                return;
            };
            let index = call.branches.len();
            self.out
                .push_back(Output::Event(super::PbxEvent::Call(CallEvent::Dialing {
                    call: id,
                    leg: Leg::B,
                    branch: index,
                    number: callee.clone(),
                    contact: contact.clone(),
                })));
            call.branches.push(Branch {
                peer,
                tx,
                invite: r,
                call_id: call_id.clone(),
                to_tag: None,
                final_status: None,
                got_provisional: false,
                rang: false,
                cancelled: false,
            });
            self.calls.dialogs.insert(call_id, (id, Leg::B));
            if let Some(tx) = tx {
                self.calls
                    .clients
                    .insert(tx, ClientRole::Branch { call: id, index });
            }
        }
        if self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.branches.is_empty())
        {
            self.fail_call(now, id, 480, "Temporarily Unavailable", HungUpBy::System);
            return;
        }
        self.drain_tx(now);
    }

    /// Click-to-dial (`POST /api/call`, AMI Originate): ring `from`'s phones with an offer of
    /// Dialtone's own; when one answers, call `to` like a call from `from`. Returns the engine
    /// call id and the Call-ID of the caller's leg.
    pub(super) fn originate(
        &mut self,
        now: Instant,
        from: &str,
        to: &str,
        opts: OriginateOptions,
    ) -> Result<(u64, String), OriginateError> {
        let ring_timeout = opts.ring_timeout.unwrap_or(self.cfg.ring_timeout);
        let caller = self
            .directory
            .get(from)
            .filter(|e| e.enabled)
            .ok_or_else(|| OriginateError::NotFound {
                field: "from",
                number: from.to_owned(),
            })?;
        if self.directory.get(to).filter(|e| e.enabled).is_none() {
            return Err(OriginateError::NotFound {
                field: "to",
                number: to.to_owned(),
            });
        }
        if from == to {
            return Err(OriginateError::SameExtension);
        }
        let Some(first) = self.registrar.bindings_of(from).first().map(|b| b.source) else {
            return Err(OriginateError::NotRegistered(from.to_owned()));
        };
        let _ = caller;
        self.calls.next_id += 1;
        let id = self.calls.next_id;
        let call_id = format!("api-call-{from}-{to}-{id}");
        let local_tag = self.new_tag();
        let (host, _, _) = self.local_addr_for(first);
        // The caller's leg as if its phone had sent the INVITE: From = its identity (the tag
        // arrives with its answer), To = Dialtone's side (the callee) with our tag.
        let mut invite = Request::new(
            Method::Invite,
            Uri::parse(&format!("sip:{to}@{host}"))
                .unwrap_or_else(|_| Uri::sip(Some(to), &host, None)),
        );
        invite
            .headers
            .push(HeaderName::From, format!("<sip:{from}@{host}>"));
        invite
            .headers
            .push(HeaderName::To, format!("<sip:{to}@{host}>;tag={local_tag}"));
        invite.headers.push(HeaderName::CallId, call_id.clone());
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        let origin_seed = self.tag_seq ^ id;
        let call = Call {
            phase: Phase::Media,
            a: ALeg {
                peer: first,
                tx: None,
                invite,
                call_id: call_id.clone(),
                local_tag,
                target: String::new(),
                cseq: 1,
            },
            branches: Vec::new(),
            b: None,
            a_offer: SessionDescription::parse(
                b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
            )
            .expect("static SDP"),
            b_offer: None,
            ports: None,
            a_origin: LocalOrigin::new(origin_seed & 0xffff_ffff),
            b_origin: LocalOrigin::new((origin_seed >> 16) & 0xffff_ffff),
            caller: from.to_owned(),
            callee: to.to_owned(),
            ring_deadline: now + ring_timeout,
            retx: [None, None],
            start: self.unix_ms(now),
            answer: None,
            offer_pending: false,
            codecs: [None, None],
            origin: Some(Box::new(Originate {
                caller_id: opts.caller_id,
                branches: Vec::new(),
                offer: SessionDescription::parse(
                    b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
                )
                .expect("static SDP"),
                answered: false,
            })),
            session_deadline: None,
            last_sdp_to: [None, None],
            held: [false, false],
            hangup_q850: None,
            xfer: Transfer::default(),
        };
        info!(call = id, from, to, "originate: ringing the caller first");
        self.calls.index(id, [from, to]);
        self.calls.calls.insert(id, call);
        self.started_event(id, true);
        self.calls.dialogs.insert(call_id.clone(), (id, Leg::A));
        self.calls.timers.push(Reverse((now + ring_timeout, id)));
        self.emit_media(MediaCommand::Open {
            call: id,
            streams: 1,
        });
        Ok((id, call_id))
    }

    /// Originated call, relay ports ready: INVITE every contact of the caller.
    fn ring_caller(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        call.phase = Phase::Originating;
        let (from, to) = (call.caller.clone(), call.callee.clone());
        let a_port = call
            .ports
            .as_ref()
            .and_then(|p| p.a.first().copied())
            .unwrap_or(0);
        let a_peer = call.a.peer;
        let call_id = call.a.call_id.clone();
        let tag = call.a.local_tag.clone();
        let relay_ip = self.relay_ip(a_peer);
        let codecs = self
            .directory
            .get(&from)
            .map(|e| e.codecs.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                super::super::directory::DEFAULT_CODECS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let offer = match build_offer(&codecs, relay_ip, a_port, &call.a_origin) {
            Ok(o) => o,
            Err(e) => {
                info!(call = id, error = %e, "originate: no usable codec for the caller");
                self.fail_call(now, id, 488, "Not Acceptable Here", HungUpBy::System);
                return;
            }
        };
        let mut presented = None;
        if let Some(o) = call.origin.as_mut() {
            o.offer = offer.clone();
            presented = o.caller_id.clone();
        }
        let body = Bytes::from(offer.print());
        // Who the phone sees calling: the callee, or the CallerID the originator asked for.
        let (shown_user, display) = match presented {
            Some((num, name)) => (num, name),
            None => (
                to.clone(),
                self.directory
                    .get(&to)
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
            ),
        };
        let display = display.replace(['"', '\\', '\r', '\n'], "");
        let shown_user: String = shown_user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(*c))
            .collect();
        let shown_user = if shown_user.is_empty() {
            to.clone()
        } else {
            shown_user
        };
        let targets: Vec<(String, Peer)> = self
            .registrar
            .bindings_of(&from)
            .iter()
            .map(|b| (b.contact.clone(), b.source))
            .collect();
        let mut branches = Vec::new();
        for (contact, peer) in targets {
            let Ok(uri) = Uri::parse(&contact) else {
                continue;
            };
            let (host, port, proto) = self.local_addr_for(peer);
            let branch = self.new_branch();
            let mut r = Request::new(Method::Invite, uri);
            let h = &mut r.headers;
            h.push(
                HeaderName::Via,
                format!("SIP/2.0/{proto} {host}:{port};branch={branch};rport"),
            );
            h.push(HeaderName::MaxForwards, "70");
            h.push(
                HeaderName::From,
                format!("\"{display}\" <sip:{shown_user}@{host}>;tag={tag}"),
            );
            h.push(HeaderName::To, format!("<sip:{from}@{host}>"));
            h.push(HeaderName::CallId, call_id.clone());
            h.push(HeaderName::CSeq, "1 INVITE");
            h.push(HeaderName::Contact, format!("<sip:{to}@{host}:{port}>"));
            h.push(HeaderName::Allow, super::ALLOW);
            h.push(HeaderName::UserAgent, self.cfg.user_agent.clone());
            h.push(HeaderName::ContentType, "application/sdp");
            r.body = body.clone();
            let key = TxKey::client(branch, TxMethod::Invite);
            let tx = self
                .txs
                .send_request(now, key, peer, peer.proto.is_reliable(), r.to_bytes())
                .ok();
            let index = branches.len();
            if let Some(tx) = tx {
                self.calls
                    .clients
                    .insert(tx, ClientRole::Origin { call: id, index });
            }
            self.call_event(CallEvent::Dialing {
                call: id,
                leg: Leg::A,
                branch: index,
                number: from.clone(),
                contact: contact.clone(),
            });
            branches.push(Branch {
                peer,
                tx,
                invite: r,
                call_id: call_id.clone(),
                to_tag: None,
                final_status: None,
                got_provisional: false,
                rang: false,
                cancelled: false,
            });
        }
        let empty = branches.is_empty();
        if let Some(o) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.origin.as_mut())
        {
            o.branches = branches;
        }
        if empty {
            self.fail_call(now, id, 480, "Temporarily Unavailable", HungUpBy::System);
            return;
        }
        self.drain_tx(now);
    }

    /// A response to an INVITE ringing the caller of an originated call.
    fn origin_response(
        &mut self,
        now: Instant,
        tx: TxId,
        disp: ClientDisposition,
        id: u64,
        index: usize,
        resp: &Response,
    ) {
        let status = resp.status;
        let Some(origin) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.origin.as_mut())
        else {
            self.orphan_response(now, tx, disp, resp);
            return;
        };
        let Some(branch) = origin.branches.get_mut(index) else {
            return;
        };
        if status < 200 {
            let first = !branch.got_provisional;
            branch.got_provisional = true;
            if first && status > 100 {
                self.call_event(CallEvent::Ringing {
                    call: id,
                    leg: Leg::A,
                    branch: index,
                });
            }
            return;
        }
        if (200..300).contains(&status) {
            let target = contact_uri(resp.headers.get(&HeaderName::Contact));
            let (invite, peer) = (branch.invite.clone(), branch.peer);
            let first = branch.final_status.is_none();
            branch.final_status = Some(status);
            let already = origin.answered;
            let ack = rebranch(
                build_ack(&invite, resp, target.as_deref()),
                &self.new_branch(),
            );
            self.transmit(peer, ack.to_bytes());
            if already {
                // A retransmitted 2xx (re-ACKed above), or a second phone answering: BYE it.
                let winner = self.calls.calls.get(&id).is_some_and(|c| {
                    resp.to().and_then(|t| t.tag().map(str::to_owned))
                        == c.a.invite.from().and_then(|f| f.tag().map(str::to_owned))
                });
                if first && !winner {
                    let mut bye = rebranch(
                        build_ack(&invite, resp, target.as_deref()),
                        &self.new_branch(),
                    );
                    bye.method = Method::Bye;
                    bye.headers.set(HeaderName::CSeq, "2 BYE");
                    if let Some(key) = branch_key(&bye)
                        && let Ok(t) = self.txs.send_request(
                            now,
                            key,
                            peer,
                            peer.proto.is_reliable(),
                            bye.to_bytes(),
                        )
                    {
                        self.calls.clients.insert(t, ClientRole::Fire);
                    }
                }
                self.drain_tx(now);
                return;
            }
            self.call_event(CallEvent::Answered {
                call: id,
                leg: Leg::A,
                branch: index,
            });
            self.caller_answered(now, id, index, resp, target);
            return;
        }
        if disp == ClientDisposition::PassToTuThenAck {
            let ack = build_ack(&branch.invite, resp, None);
            let _ = self.txs.set_ack_for_non_2xx(now, tx, ack.to_bytes());
        }
        self.calls.clients.remove(&tx);
        self.origin_branch_failed(now, id, index, status);
    }

    /// A branch ringing the caller of an originated call failed with `status`.
    fn origin_branch_failed(&mut self, now: Instant, id: u64, index: usize, status: u16) {
        let Some(origin) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.origin.as_mut())
        else {
            return;
        };
        if let Some(b) = origin.branches.get_mut(index) {
            b.final_status = Some(status);
        }
        self.call_event(CallEvent::BranchEnded {
            call: id,
            leg: Leg::A,
            branch: index,
            status,
        });
        let Some(origin) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.origin.as_mut())
        else {
            return;
        };
        if origin.answered {
            return;
        }
        if status < 600 && origin.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        let statuses: Vec<u16> = origin
            .branches
            .iter()
            .filter_map(|b| b.final_status)
            .collect();
        let best = if statuses.contains(&486) || status >= 600 {
            486
        } else {
            statuses
                .iter()
                .copied()
                .filter(|s| *s != 408 && *s != 487)
                .min()
                .unwrap_or(480)
        };
        info!(
            call = id,
            status = best,
            "originate: the caller did not answer"
        );
        self.fail_call(
            now,
            id,
            best,
            Response::default_reason(best),
            HungUpBy::Caller,
        );
    }

    /// The caller of an originated call answered: its leg becomes the A dialog, and the
    /// callee is called with the caller's answer as the offer.
    fn caller_answered(
        &mut self,
        now: Instant,
        id: u64,
        index: usize,
        resp: &Response,
        target: Option<String>,
    ) {
        self.cancel_origin_branches(now, id, Some(index));
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(origin) = call.origin.as_mut() else {
            return;
        };
        origin.answered = true;
        let branch = &origin.branches[index];
        let answer = SessionDescription::parse(&resp.body)
            .map_err(|e| e.to_string())
            .and_then(|sdp| match check_answer(&origin.offer, &sdp) {
                Ok(()) => Ok(sdp),
                Err(e) => Err(e.to_string()),
            });
        // The A dialog as if the phone had sent the INVITE (see `originate`).
        let our_from = branch
            .invite
            .headers
            .get(&HeaderName::From)
            .unwrap_or_default()
            .to_owned();
        let their_to = resp
            .headers
            .get(&HeaderName::To)
            .unwrap_or_default()
            .to_owned();
        call.a.peer = branch.peer;
        call.xfer.allow_update[0] = allows(&resp.headers, &Method::Update);
        call.last_sdp_to[0] = Some(branch.invite.body.clone());
        call.a.target = target.unwrap_or_else(|| branch.invite.uri.to_string());
        call.a.invite.headers.set(HeaderName::From, their_to);
        call.a.invite.headers.set(HeaderName::To, our_from);
        let answer = match answer {
            Ok(a) => a,
            Err(why) => {
                info!(call = id, %why, "originate: the caller's answer is unusable");
                self.fail_call_with(now, id, 488, "Not Acceptable Here", &[], HungUpBy::System);
                return;
            }
        };
        call.codecs[0] = first_codec(&answer);
        call.a_offer = answer.clone();
        let callee_codecs = self
            .directory
            .get(&call.callee)
            .map(|e| e.codecs.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                super::super::directory::DEFAULT_CODECS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });
        self.emit_media(MediaCommand::SetRemote {
            call: id,
            leg: Leg::A,
            sdp: Box::new(answer.clone()),
        });
        // The caller's answer is the offer to the callee: the codec the caller chose.
        let b_offer = match filter_offer(&answer, &callee_codecs) {
            Ok(o) => o,
            Err(e) => {
                info!(call = id, error = %e, "originate: no codec in common with the callee");
                self.fail_call(now, id, 488, "Not Acceptable Here", HungUpBy::System);
                return;
            }
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.phase = Phase::Ringing;
            call.ring_deadline = now + self.cfg.ring_timeout;
            self.calls
                .timers
                .push(Reverse((now + self.cfg.ring_timeout, id)));
        }
        info!(
            call = id,
            "originate: the caller answered, calling the callee"
        );
        self.fork_callee(now, id, b_offer);
    }

    /// Hang up a call from outside (API, media timeout): a ringing call is cancelled (its
    /// caller gets `status`, 480 by default), an answered one gets BYE on both legs. Returns
    /// false for an unknown call.
    pub(super) fn hangup(&mut self, now: Instant, id: u64, status: Option<u16>) -> bool {
        self.hangup_with(now, id, status, None)
    }

    /// [`Self::hangup`] with the Q.850 cause to clear with (AMI `Hangup` `Cause`): the
    /// caller of a ringing call gets the cause's SIP status, BYEs carry a `Reason` header,
    /// and the CDR and AMI `Hangup` events show the cause.
    pub(super) fn hangup_with(
        &mut self,
        now: Instant,
        id: u64,
        status: Option<u16>,
        q850: Option<u8>,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return false;
        };
        call.hangup_q850 = q850;
        if call.phase == Phase::Answered {
            self.send_bye(now, id, Leg::A);
            self.send_bye(now, id, Leg::B);
            self.end_call(
                now,
                id,
                Disposition::Answered,
                status.unwrap_or(200),
                HungUpBy::System,
            );
        } else {
            let status = status
                .or(q850.map(crate::pbx::cause::to_sip))
                .filter(|s| (300..700).contains(s))
                .unwrap_or(480);
            let reason = Response::default_reason(status);
            self.fail_call(now, id, status, reason, HungUpBy::System);
        }
        true
    }

    /// Calls in progress, for the API.
    pub(super) fn call_views(&self) -> Vec<CallView> {
        let mut v: Vec<CallView> = self
            .calls
            .calls
            .iter()
            .map(|(&id, c)| CallView {
                id,
                call_id: c.report_call_id().to_owned(),
                from: c.caller.clone(),
                to: c.callee.clone(),
                answered: c.phase == Phase::Answered,
                start: c.start,
                answer: c.answer,
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// The relay could not open ports (exhausted): 503.
    pub(super) fn media_failed(&mut self, now: Instant, id: u64) {
        if self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.phase == Phase::Media)
        {
            self.fail_call(
                now,
                id,
                503,
                "Service Unavailable (no media ports)",
                HungUpBy::System,
            );
        }
    }

    /// CANCEL for an INVITE server transaction (`invite` = None: no match → 481).
    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        cancel: TxId,
        invite: Option<TxId>,
        req: &Request,
    ) {
        let Some(id) = invite.and_then(|i| self.calls.by_invite.get(&i).copied()) else {
            self.respond(
                now,
                cancel,
                req,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        self.respond(now, cancel, req, 200, "OK", &[]);
        let ringing = self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.phase != Phase::Answered);
        if ringing {
            self.fail_call(now, id, 487, "Request Terminated", HungUpBy::Caller);
        }
    }

    /// An ACK that no transaction absorbed: the ACK for a 2xx.
    pub(super) fn handle_ack(&mut self, req: &Request) {
        let Some(&(id, leg)) = req.call_id().and_then(|c| self.calls.dialogs.get(c)) else {
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.retx[leg_index(leg)] = None;
        }
    }

    /// BYE, re-INVITE, UPDATE, INFO inside a dialog (not challenged).
    pub(super) fn in_dialog(&mut self, now: Instant, peer: Peer, tx: TxId, req: Request) {
        let found = req
            .call_id()
            .and_then(|c| self.calls.dialogs.get(c).copied());
        let Some((id, leg)) = found else {
            self.respond(now, tx, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        // The dialog must match: the remote tag (the request's From tag) and, for B, the
        // answered branch (RFC 3261 §12.2.2).
        let from_tag = req.from().and_then(|f| f.tag().map(str::to_owned));
        let answered = self.calls.calls.get(&id).is_some_and(|c| {
            (c.phase == Phase::Answered || (leg == Leg::A && c.a_established()))
                && match leg {
                    Leg::A => {
                        from_tag.is_some()
                            && from_tag
                                == c.a.invite.from().and_then(|f| f.tag().map(str::to_owned))
                    }
                    Leg::B => c.b.as_ref().is_some_and(|b| {
                        Some(b.call_id.as_str()) == req.call_id()
                            && from_tag.is_some()
                            && NameAddr::parse(&b.to)
                                .ok()
                                .is_some_and(|n| n.tag() == from_tag.as_deref())
                    }),
                }
        });
        if !answered {
            // BYE/requests on a branch that lost, before the answer, or from a stranger.
            self.respond(now, tx, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        debug!(call = id, %peer, method = %req.method, "in-dialog request");
        if self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.phase != Phase::Answered)
        {
            // The caller of an originated call (or the kept phone of a redirect), while the
            // callee still rings.
            if req.method == Method::Bye {
                self.respond(now, tx, &req, 200, "OK", &[]);
                self.cancel_branches(now, id, None);
                self.end_call(now, id, Disposition::Cancelled, 487, HungUpBy::Caller);
            } else if !(self.is_session_refresh(id, leg, &req)
                && self.answer_refresh(now, id, leg, tx, &req))
            {
                self.respond(now, tx, &req, 491, "Request Pending", &[]);
            }
            return;
        }
        match req.method {
            Method::Bye => {
                self.respond(now, tx, &req, 200, "OK", &[]);
                self.send_bye(now, id, other(leg));
                let by = if leg == Leg::A {
                    HungUpBy::Caller
                } else {
                    HungUpBy::Callee
                };
                self.end_call(now, id, Disposition::Answered, 200, by);
            }
            _ => self.relay_in_dialog(now, id, leg, tx, req),
        }
    }

    /// An INVITE or UPDATE from the phone of `leg` that changes nothing: no offer, or the SDP
    /// that phone sent last (same o= line). Dialtone can answer it itself.
    fn is_session_refresh(&self, id: u64, leg: Leg, req: &Request) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        if !matches!(req.method, Method::Invite | Method::Update) || c.offer_pending {
            return false;
        }
        if req.body.is_empty() {
            return true;
        }
        let Some(last) = c.xfer.remote_sdp[leg_index(leg)].as_deref() else {
            return false;
        };
        SessionDescription::parse(&req.body).is_ok_and(|sdp| {
            sdp.origin.username == last.origin.username
                && sdp.origin.sess_id == last.origin.sess_id
                && sdp.origin.sess_version == last.origin.sess_version
        })
    }

    /// Answer a session refresh from the phone of `from` without relaying it: 200 with the
    /// session as that phone knows it (the SDP Dialtone last sent it; none for an UPDATE
    /// without a body), `Session-Expires` with the phone as the refresher. A re-INVITE's ACK
    /// brings the same answer back. False (nothing sent) when Dialtone has sent that phone
    /// no SDP yet.
    fn answer_refresh(
        &mut self,
        now: Instant,
        id: u64,
        from: Leg,
        server: TxId,
        req: &Request,
    ) -> bool {
        let Some(call) = self.calls.calls.get(&id) else {
            return false;
        };
        let with_sdp = req.method == Method::Invite || !req.body.is_empty();
        let body = match (with_sdp, call.last_sdp_to[leg_index(from)].clone()) {
            (false, _) => Bytes::new(),
            (true, Some(sdp)) => sdp,
            (true, None) => return false,
        };
        let tag = match from {
            Leg::A => Some(call.a.local_tag.clone()),
            Leg::B => call.b.as_ref().and_then(|b| {
                NameAddr::parse(b.from.as_str())
                    .ok()
                    .and_then(|n| n.tag().map(str::to_owned))
            }),
        };
        let mut extra = Vec::new();
        if with_sdp {
            extra.push((HeaderName::ContentType, "application/sdp".to_owned()));
        }
        extra.extend(self.local_contact(id, from));
        if let Some(se) = req.headers.get(&HeaderName::SessionExpires) {
            let secs = se.split(';').next().unwrap_or("1800").trim().to_owned();
            extra.push((HeaderName::SessionExpires, format!("{secs};refresher=uac")));
            if supports_timer(&req.headers) {
                extra.push((HeaderName::Require, "timer".to_owned()));
            }
        }
        let bytes =
            self.build_response_with_tag(req, 200, "OK", &extra, tag.as_deref(), Some(body));
        let _ = self.txs.respond(now, server, 200, bytes.clone());
        if req.method == Method::Invite
            && let Some(peer) = self.leg_peer(id, from)
        {
            self.retransmit_2xx(now, id, from, peer, bytes.clone());
        }
        if let Ok(Message::Response(r)) = crate::sip::parse_datagram(&bytes) {
            self.arm_session_timer(now, id, &r.headers);
            // The phone refreshes its session itself from now on (or has no timer).
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.xfer.timer[leg_index(from)] = leg_timer(&r.headers, true, now);
                if from == Leg::A {
                    c.xfer.refresh = None;
                }
            }
        }
        self.drain_tx(now);
        true
    }

    fn relay_in_dialog(&mut self, now: Instant, id: u64, from: Leg, server: TxId, req: Request) {
        let to = other(from);
        let is_sdp = !req.body.is_empty()
            && match req.content_type() {
                Some(ct) => ct
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")),
                None => matches!(req.method, Method::Invite | Method::Update),
            };
        let is_offer = matches!(req.method, Method::Invite | Method::Update) && is_sdp;
        if req.method == Method::Info
            && let Some((digit, duration_ms)) = info_dtmf(&req)
        {
            self.call_event(CallEvent::Dtmf {
                call: id,
                leg: from,
                digit,
                duration_ms,
            });
        }
        if req.method == Method::Invite && req.body.is_empty() {
            // A re-INVITE without an offer (a session refresh, mostly): Dialtone answers it
            // itself with the session as this phone knows it; the ACK brings the same answer
            // back. Relaying it would make the other phone offer in its 2xx and expect the
            // answer in an ACK that Dialtone has to send before this phone's ACK arrives.
            if self.answer_refresh(now, id, from, server, &req) {
                return;
            }
        }
        if is_offer && self.calls.calls.get(&id).is_some_and(|c| c.offer_pending) {
            // Glare (RFC 3261 §14.2, RFC 3311 §5.2): one offer at a time.
            self.respond(now, server, &req, 491, "Request Pending", &[]);
            return;
        }
        // SDP: rewrite to the relay ports of the receiving leg.
        let mut body = req.body.clone();
        if is_sdp {
            let parsed = SessionDescription::parse(&req.body).map_err(|e| e.to_string());
            // An offer carries only what the receiving phone's extension allows.
            let parsed = match parsed {
                Ok(sdp) if is_offer => {
                    let codecs = self.leg_codecs(id, to);
                    match filter_offer(&sdp, &codecs) {
                        Ok(filtered) => Ok(filtered),
                        Err(e) => {
                            let w = (HeaderName::Warning, e.warning_value("dialtone"));
                            self.respond(now, server, &req, 488, "Not Acceptable Here", &[w]);
                            return;
                        }
                    }
                }
                other => other,
            };
            match parsed {
                Ok(sdp) => {
                    let hold = sdp.audio().is_some_and(|m| is_hold(m, &sdp));
                    self.emit_media(MediaCommand::SetRemote {
                        call: id,
                        leg: from,
                        sdp: Box::new(sdp.clone()),
                    });
                    self.emit_media(MediaCommand::SetHold {
                        call: id,
                        leg: from,
                        hold,
                    });
                    if let Some(c) = self.calls.calls.get_mut(&id)
                        && c.held[leg_index(from)] != hold
                    {
                        c.held[leg_index(from)] = hold;
                        self.call_event(CallEvent::Hold {
                            call: id,
                            leg: from,
                            hold,
                        });
                    }
                    match self.rewrite_for(id, to, sdp) {
                        Some(b) => body = b,
                        None => {
                            self.respond(now, server, &req, 500, "Server Internal Error", &[]);
                            return;
                        }
                    }
                }
                Err(e) => {
                    self.respond(now, server, &req, 400, "Bad Request (SDP)", &[warning(&e)]);
                    return;
                }
            }
        }
        let Some(mut sent) = self.dialog_request(id, to, req.method.clone()) else {
            self.respond(
                now,
                server,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        if let Some(ct) = req.content_type() {
            sent.headers.push(HeaderName::ContentType, ct.to_owned());
        }
        for (name, value) in request_timer_headers(&req.headers) {
            sent.headers.push(name, value);
        }
        sent.body = body;
        let Some((peer, key)) = self.leg_peer(id, to).zip(branch_key(&sent)) else {
            return;
        };
        let bytes = sent.to_bytes();
        match self
            .txs
            .send_request(now, key, peer, peer.proto.is_reliable(), bytes)
        {
            Ok(tx) => {
                if is_offer && let Some(c) = self.calls.calls.get_mut(&id) {
                    c.offer_pending = true;
                }
                self.calls.clients.insert(
                    tx,
                    ClientRole::Relay(Box::new(Relay {
                        call: id,
                        from,
                        server,
                        request: req,
                        sent,
                    })),
                );
            }
            Err(e) => {
                debug!(error = %e, "relay not sent");
                self.respond(now, server, &req, 500, "Server Internal Error", &[]);
            }
        }
        self.drain_tx(now);
    }

    /// The codecs the extension on `leg` allows (the default list when it has none).
    fn leg_codecs(&self, id: u64, leg: Leg) -> Vec<String> {
        let number = self.calls.calls.get(&id).map(|c| match leg {
            Leg::A => c.caller.clone(),
            Leg::B => c.callee.clone(),
        });
        number
            .and_then(|n| self.directory.get(&n))
            .map(|e| e.codecs.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                super::super::directory::DEFAULT_CODECS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            })
    }

    /// Rewrite an SDP for `to` with that leg's relay ports (bumping our version).
    fn rewrite_for(&mut self, id: u64, to: Leg, mut sdp: SessionDescription) -> Option<Bytes> {
        let call = self.calls.calls.get(&id)?;
        let peer = match to {
            Leg::A => call.a.peer,
            Leg::B => call.b.as_ref().map_or(call.a.peer, |b| b.peer),
        };
        let ports = call.ports.as_ref()?;
        let ports = match to {
            Leg::A => ports.a.clone(),
            Leg::B => ports.b.clone(),
        };
        let ip = self.relay_ip(peer);
        let call = self.calls.calls.get_mut(&id)?;
        let origin = match to {
            Leg::A => &mut call.a_origin,
            Leg::B => &mut call.b_origin,
        };
        let bump = call.answer.is_some() | std::mem::take(&mut call.xfer.bump[leg_index(to)]);
        rewrite_for_relay(&mut sdp, ip, &ports, origin, bump).ok()?;
        let bytes = Bytes::from(sdp.print());
        call.last_sdp_to[leg_index(to)] = Some(bytes.clone());
        Some(bytes)
    }

    fn leg_peer(&self, id: u64, leg: Leg) -> Option<Peer> {
        let call = self.calls.calls.get(&id)?;
        match leg {
            Leg::A => Some(call.a.peer),
            Leg::B => call.b.as_ref().map(|b| b.peer),
        }
    }

    /// A new request inside the `leg` dialog (Via, From, To, Call-ID, CSeq, Contact filled).
    fn dialog_request(&mut self, id: u64, leg: Leg, method: Method) -> Option<Request> {
        let branch = self.new_branch();
        let call = self.calls.calls.get(&id)?;
        let peer = self.leg_peer(id, leg)?;
        let (host, port, proto) = self.local_addr_for(peer);
        let (target, from, to, call_id, cseq, user) = match leg {
            Leg::A => {
                let a = &call.a;
                let from = with_tag(a.invite.headers.get(&HeaderName::To)?, &a.local_tag);
                let to = a.invite.headers.get(&HeaderName::From)?.to_owned();
                (
                    a.target.clone(),
                    from,
                    to,
                    a.call_id.clone(),
                    a.cseq + 1,
                    call.callee.clone(),
                )
            }
            Leg::B => {
                let b = call.b.as_ref()?;
                (
                    b.target.clone(),
                    b.from.clone(),
                    b.to.clone(),
                    b.call_id.clone(),
                    b.cseq + 1,
                    call.caller.clone(),
                )
            }
        };
        let uri = Uri::parse(&target).ok()?;
        let mut r = Request::new(method.clone(), uri);
        let h = &mut r.headers;
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/{proto} {host}:{port};branch={branch};rport"),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, from);
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, call_id);
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        h.push(HeaderName::Contact, format!("<sip:{user}@{host}:{port}>"));
        h.push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        let call = self.calls.calls.get_mut(&id)?;
        match leg {
            Leg::A => call.a.cseq = cseq,
            Leg::B => {
                if let Some(b) = call.b.as_mut() {
                    b.cseq = cseq;
                }
            }
        }
        Some(r)
    }

    fn send_bye(&mut self, now: Instant, id: u64, leg: Leg) {
        let Some(mut bye) = self.dialog_request(id, leg, Method::Bye) else {
            return;
        };
        if let Some(cause) = self.calls.calls.get(&id).and_then(|c| c.hangup_q850) {
            // RFC 3326: why the call was cleared.
            bye.headers.push(
                HeaderName::Reason,
                format!(
                    "Q.850;cause={cause};text=\"{}\"",
                    crate::pbx::cause::text(cause)
                ),
            );
        }
        let Some((peer, key)) = self.leg_peer(id, leg).zip(branch_key(&bye)) else {
            return;
        };
        if let Ok(tx) =
            self.txs
                .send_request(now, key, peer, peer.proto.is_reliable(), bye.to_bytes())
        {
            self.calls.clients.insert(tx, ClientRole::Fire);
        }
        self.drain_tx(now);
    }

    // ------------------------------------------------------------- responses in

    /// A response matched to a client transaction of ours. Returns false if it is not a call's.
    pub(super) fn call_response(
        &mut self,
        now: Instant,
        tx: TxId,
        disp: ClientDisposition,
        resp: &Response,
    ) -> bool {
        if !self.calls.pending_cancel.is_empty()
            && let Some((cancel, peer)) = self.calls.pending_cancel.remove(&tx)
            && resp.status < 200
        {
            self.send_cancels(now, vec![(peer, cancel)]);
        }
        let Some(role) = self.calls.clients.get(&tx) else {
            return false;
        };
        match *role {
            ClientRole::Fire => {
                if resp.status >= 200 {
                    self.calls.clients.remove(&tx);
                }
            }
            ClientRole::Orphan => self.orphan_response(now, tx, disp, resp),
            ClientRole::Branch { call, index } => {
                self.branch_response(now, tx, disp, call, index, resp)
            }
            ClientRole::Origin { call, index } => {
                self.origin_response(now, tx, disp, call, index, resp)
            }
            ClientRole::Refresh(_) => self.kept_refresh_response(now, tx, disp, resp),
            ClientRole::Relay(_) => {
                if resp.status < 200 {
                    return true;
                }
                let Some(ClientRole::Relay(relay)) = self.calls.clients.remove(&tx) else {
                    return true;
                };
                let Relay {
                    call,
                    from,
                    server,
                    request,
                    sent,
                } = *relay;
                if let Some(c) = self.calls.calls.get_mut(&call)
                    && !sent.body.is_empty()
                {
                    c.offer_pending = false;
                }
                if disp == ClientDisposition::PassToTuThenAck {
                    let ack = build_ack(&sent, resp, None);
                    let _ = self.txs.set_ack_for_non_2xx(now, tx, ack.to_bytes());
                } else if sent.method == Method::Invite {
                    // ACK the 2xx ourselves (the other side's ACK is absorbed).
                    let to = other(from);
                    let target = contact_uri(resp.headers.get(&HeaderName::Contact));
                    let ack = build_ack(&sent, resp, target.as_deref());
                    let branch = self.new_branch();
                    let ack = rebranch(ack, &branch);
                    if let Some(peer) = self.leg_peer(call, to) {
                        self.transmit(peer, ack.to_bytes());
                    }
                }
                let mut extra: Vec<(HeaderName, String)> = Vec::new();
                let mut body = Bytes::new();
                if !resp.body.is_empty()
                    && let Ok(sdp) = SessionDescription::parse(&resp.body)
                {
                    self.emit_media(MediaCommand::SetRemote {
                        call,
                        leg: other(from),
                        sdp: Box::new(sdp.clone()),
                    });
                    if let Some(b) = self.rewrite_for(call, from, sdp) {
                        body = b;
                        extra.push((HeaderName::ContentType, "application/sdp".into()));
                    }
                }
                let tag = self.calls.calls.get(&call).map(|c| match from {
                    Leg::A => c.a.local_tag.clone(),
                    Leg::B => String::new(),
                });
                let contact = self.local_contact(call, from);
                extra.extend(contact);
                extra.extend(response_timer_headers(&resp.headers, &request.headers));
                let bytes = self.build_response_with_tag(
                    &request,
                    resp.status,
                    &resp.reason,
                    &extra,
                    tag.as_deref().filter(|t| !t.is_empty()),
                    Some(body),
                );
                let _ = self.txs.respond(now, server, resp.status, bytes.clone());
                if matches!(sent.method, Method::Invite | Method::Update)
                    && (200..300).contains(&resp.status)
                {
                    self.arm_session_timer(now, call, &resp.headers);
                    self.relayed_timer(now, call, from, &request.headers, &resp.headers);
                }
                if sent.method == Method::Invite
                    && (200..300).contains(&resp.status)
                    && let Some(peer) = self.leg_peer(call, from)
                {
                    self.retransmit_2xx(now, call, from, peer, bytes);
                }
            }
        }
        self.drain_tx(now);
        true
    }

    /// A 2xx with `Session-Expires` (RFC 4028) passed: the session must be refreshed within
    /// the interval, else Dialtone ends it (BYE both ways) shortly before it expires (§10).
    fn arm_session_timer(&mut self, now: Instant, id: u64, headers: &crate::sip::Headers) {
        let Some(secs) = headers
            .get(&HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s >= 90)
        else {
            return;
        };
        let margin = (secs / 3).min(32);
        let due = now + Duration::from_secs(secs - margin);
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.session_deadline = Some(due);
            self.calls.timers.push(Reverse((due, id)));
        }
    }

    fn local_contact(&self, id: u64, toward: Leg) -> Option<(HeaderName, String)> {
        let call = self.calls.calls.get(&id)?;
        let peer = self.leg_peer(id, toward)?;
        let (host, port, _) = self.local_addr_for(peer);
        let user = match toward {
            Leg::A => &call.callee,
            Leg::B => &call.caller,
        };
        Some((HeaderName::Contact, format!("<sip:{user}@{host}:{port}>")))
    }

    /// A final response for an INVITE of a call that is gone: ACK a failure, ACK and BYE a
    /// late 2xx.
    fn orphan_response(
        &mut self,
        now: Instant,
        tx: TxId,
        disp: ClientDisposition,
        resp: &Response,
    ) {
        let status = resp.status;
        if status < 200 {
            return;
        }
        self.calls.clients.remove(&tx);
        let Some((invite, peer)) = self.calls.orphans.remove(&tx) else {
            return;
        };
        if disp == ClientDisposition::PassToTuThenAck {
            let ack = build_ack(&invite, resp, None);
            let _ = self.txs.set_ack_for_non_2xx(now, tx, ack.to_bytes());
        } else if status < 300 {
            let target = contact_uri(resp.headers.get(&HeaderName::Contact));
            let b1 = self.new_branch();
            let ack = rebranch(build_ack(&invite, resp, target.as_deref()), &b1);
            self.transmit(peer, ack.to_bytes());
            let b2 = self.new_branch();
            let mut bye = rebranch(build_ack(&invite, resp, target.as_deref()), &b2);
            bye.method = Method::Bye;
            bye.headers.set(HeaderName::CSeq, "2 BYE");
            if let Some(key) = branch_key(&bye)
                && let Ok(t) =
                    self.txs
                        .send_request(now, key, peer, peer.proto.is_reliable(), bye.to_bytes())
            {
                self.calls.clients.insert(t, ClientRole::Fire);
            }
        }
    }

    fn branch_response(
        &mut self,
        now: Instant,
        tx: TxId,
        disp: ClientDisposition,
        id: u64,
        index: usize,
        resp: &Response,
    ) {
        let status = resp.status;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            self.orphan_response(now, tx, disp, resp);
            return;
        };
        let Some(branch) = call.branches.get_mut(index) else {
            return;
        };
        if branch.to_tag.is_none() {
            branch.to_tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
        }
        if status < 200 {
            branch.got_provisional = true;
            if status == 100 {
                return;
            }
            let first_ring = !branch.rang;
            branch.rang = true;
            if call.phase != Phase::Ringing {
                return; // a late 180 after the 200: ignored
            }
            if first_ring {
                self.call_event(CallEvent::Ringing {
                    call: id,
                    leg: Leg::B,
                    branch: index,
                });
            }
            let mut extra = Vec::new();
            let mut body = Bytes::new();
            if !resp.body.is_empty()
                && let Ok(sdp) = SessionDescription::parse(&resp.body)
            {
                self.emit_media(MediaCommand::SetRemote {
                    call: id,
                    leg: Leg::B,
                    sdp: Box::new(sdp.clone()),
                });
                // Only a caller whose INVITE is pending gets the early media SDP: the kept
                // phone of a redirect (or the caller of an originated call) has its session.
                let a_waits = self.calls.calls.get(&id).is_some_and(|c| c.a.tx.is_some());
                if a_waits && let Some(b) = self.rewrite_for(id, Leg::A, sdp) {
                    body = b;
                    extra.push((HeaderName::ContentType, "application/sdp".into()));
                }
            }
            self.respond_a(now, id, status, &resp.reason, extra, body);
            return;
        }
        if (200..300).contains(&status) {
            let target = contact_uri(resp.headers.get(&HeaderName::Contact));
            let invite = branch.invite.clone();
            let peer = branch.peer;
            let ack = build_ack(&invite, resp, target.as_deref());
            let ack_branch = self.new_branch();
            let ack = rebranch(ack, &ack_branch);
            self.transmit(peer, ack.to_bytes());
            let call = self.calls.calls.get_mut(&id).expect("present");
            if call.phase == Phase::Answered {
                // A second 2xx from another branch: it already got ACK; hang it up.
                let already = call
                    .b
                    .as_ref()
                    .is_some_and(|b| b.call_id == call.branches[index].call_id);
                if !already {
                    self.bye_branch(now, id, index, resp, target);
                }
                return;
            }
            call.branches[index].final_status = Some(status);
            call.last_sdp_to[1] = Some(call.branches[index].invite.body.clone());
            call.phase = Phase::Answered;
            self.call_event(CallEvent::Answered {
                call: id,
                leg: Leg::B,
                branch: index,
            });
            self.call_event(CallEvent::Bridged { call: id });
            let answer_ms = self.unix_ms(now);
            let call = self.calls.calls.get_mut(&id).expect("present");
            // A redirected call keeps the time it was first answered.
            call.answer.get_or_insert(answer_ms);
            let br = &call.branches[index];
            call.b = Some(BLeg {
                peer: br.peer,
                call_id: br.call_id.clone(),
                from: br
                    .invite
                    .headers
                    .get(&HeaderName::From)
                    .unwrap_or_default()
                    .to_owned(),
                to: resp
                    .headers
                    .get(&HeaderName::To)
                    .unwrap_or_default()
                    .to_owned(),
                target: target.unwrap_or_else(|| br.invite.uri.to_string()),
                cseq: 1,
            });
            call.xfer.allow_update[1] = allows(&resp.headers, &Method::Update);
            call.xfer.timer[1] = leg_timer(&resp.headers, false, now);
            self.cancel_branches(now, id, Some(index));
            let mut extra = Vec::new();
            let mut body = Bytes::new();
            // The 2xx carries the answer to our offer (RFC 3264): it must be usable.
            let answer = SessionDescription::parse(&resp.body)
                .map_err(|e| e.to_string())
                .and_then(|sdp| {
                    match self
                        .calls
                        .calls
                        .get(&id)
                        .and_then(|c| c.b_offer.as_ref())
                        .map(|o| check_answer(o, &sdp))
                    {
                        Some(Err(e)) => Err(e.to_string()),
                        _ => Ok(sdp),
                    }
                });
            let sdp = match answer {
                Ok(sdp) => sdp,
                Err(why) => {
                    debug!(call = id, %why, "callee's answer unusable");
                    self.send_bye(now, id, Leg::B);
                    self.fail_call_with(
                        now,
                        id,
                        488,
                        "Not Acceptable Here",
                        &[warning(&format!("callee answer: {why}"))],
                        HungUpBy::System,
                    );
                    return;
                }
            };
            self.emit_media(MediaCommand::SetRemote {
                call: id,
                leg: Leg::B,
                sdp: Box::new(sdp.clone()),
            });
            let codec = first_codec(&sdp);
            let Some(call) = self.calls.calls.get_mut(&id) else {
                return;
            };
            if call.origin.is_some() {
                // Click-to-dial: the caller has had its answer since it picked up.
                call.codecs[1] = codec;
                let our_te = call
                    .origin
                    .as_ref()
                    .and_then(|o| o.offer.audio().and_then(crate::sdp::dtmf_pt));
                let b_te = sdp.audio().and_then(crate::sdp::dtmf_pt);
                if let (Some(from), Some(to)) = (our_te, b_te)
                    && from != to
                {
                    // The caller sends events with the number of Dialtone's offer; the callee
                    // expects the one of its answer.
                    self.emit_media(MediaCommand::SetPtMap {
                        call: id,
                        leg: Leg::A,
                        from,
                        to,
                    });
                }
                info!(call = id, "answered");
                self.drain_tx(now);
                return;
            }
            call.codecs = [codec.clone(), codec];
            if let Some(b) = self.rewrite_for_answer(id, sdp) {
                body = b;
                extra.push((HeaderName::ContentType, "application/sdp".into()));
            }
            info!(call = id, "answered");
            self.arm_session_timer(now, id, &resp.headers);
            if let Some(call) = self.calls.calls.get_mut(&id) {
                // The caller gets the callee's Session-Expires (if any) in its 200.
                call.xfer.timer[0] = leg_timer(&resp.headers, true, now);
                extra.extend(response_timer_headers(
                    &resp.headers,
                    &call.a.invite.headers,
                ));
            }
            self.respond_a(now, id, 200, &resp.reason, extra, body);
            return;
        }
        // Final failure of this branch.
        if disp == ClientDisposition::PassToTuThenAck {
            let ack = build_ack(&branch.invite, resp, None);
            let _ = self.txs.set_ack_for_non_2xx(now, tx, ack.to_bytes());
        }
        self.calls.clients.remove(&tx);
        self.branch_failed(now, id, index, status, &resp.reason.clone());
    }

    fn rewrite_for_answer(&mut self, id: u64, sdp: SessionDescription) -> Option<Bytes> {
        // First answer to A: no version bump.
        let call = self.calls.calls.get_mut(&id)?;
        let answer = call.answer.take();
        let out = self.rewrite_for(id, Leg::A, sdp);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.answer = answer;
        }
        out
    }

    fn bye_branch(
        &mut self,
        now: Instant,
        id: u64,
        index: usize,
        resp: &Response,
        target: Option<String>,
    ) {
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        let Some(br) = call.branches.get(index) else {
            return;
        };
        let peer = br.peer;
        let invite = br.invite.clone();
        let branch = self.new_branch();
        let mut bye = build_ack(&invite, resp, target.as_deref());
        bye.method = Method::Bye;
        bye.headers.set(HeaderName::CSeq, "2 BYE");
        let bye = rebranch(bye, &branch);
        if let Some(key) = branch_key(&bye)
            && let Ok(tx) =
                self.txs
                    .send_request(now, key, peer, peer.proto.is_reliable(), bye.to_bytes())
        {
            self.calls.clients.insert(tx, ClientRole::Fire);
        }
        self.drain_tx(now);
    }

    fn branch_failed(&mut self, now: Instant, id: u64, index: usize, status: u16, reason: &str) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let was_pending = call
            .branches
            .get(index)
            .is_some_and(|b| b.final_status.is_none() && !b.cancelled);
        if let Some(b) = call.branches.get_mut(index) {
            b.final_status = Some(status);
        }
        if was_pending {
            self.call_event(CallEvent::BranchEnded {
                call: id,
                leg: Leg::B,
                branch: index,
                status,
            });
        }
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Ringing {
            return;
        }
        if status >= 600 {
            self.cancel_branches(now, id, None);
            self.fail_call(now, id, status, reason, HungUpBy::Callee);
            return;
        }
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        if call.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        let statuses: Vec<u16> = call
            .branches
            .iter()
            .filter_map(|b| b.final_status)
            .collect();
        let best = if statuses.contains(&486) {
            486
        } else {
            statuses
                .iter()
                .copied()
                .filter(|s| *s != 408 && *s != 487)
                .min()
                .unwrap_or(480)
        };
        // Redirects and the callee's own challenges mean nothing to the caller (Dialtone does
        // not recurse on 3xx nor answer a phone's challenge): the callee is unavailable.
        let best = if (300..400).contains(&best) || best == 401 || best == 407 {
            480
        } else {
            best
        };
        let reason = if best == status {
            reason.to_owned()
        } else {
            Response::default_reason(best).to_owned()
        };
        self.fail_call(now, id, best, &reason, HungUpBy::Callee);
    }

    /// CANCEL every branch still pending, except `keep`.
    fn cancel_branches(&mut self, now: Instant, id: u64, keep: Option<usize>) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let (cancels, deferred, newly) = cancel_requests(&mut call.branches, keep);
        self.cancelled(now, id, Leg::B, cancels, deferred, newly);
    }

    /// CANCEL every pending branch ringing the caller of an originated call, except `keep`.
    fn cancel_origin_branches(&mut self, now: Instant, id: u64, keep: Option<usize>) {
        let Some(origin) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.origin.as_mut())
        else {
            return;
        };
        let (cancels, deferred, newly) = cancel_requests(&mut origin.branches, keep);
        self.cancelled(now, id, Leg::A, cancels, deferred, newly);
    }

    /// Report the branches of `leg` just cancelled, and send (or defer) their CANCELs.
    #[allow(clippy::type_complexity)]
    fn cancelled(
        &mut self,
        now: Instant,
        id: u64,
        leg: Leg,
        cancels: Vec<(Peer, Request)>,
        deferred: Vec<(TxId, (Request, Peer))>,
        newly: Vec<usize>,
    ) {
        for branch in newly {
            self.call_event(CallEvent::BranchEnded {
                call: id,
                leg,
                branch,
                status: 487,
            });
        }
        self.calls.pending_cancel.extend(deferred);
        self.send_cancels(now, cancels);
    }

    fn send_cancels(&mut self, now: Instant, cancels: Vec<(Peer, Request)>) {
        for (peer, c) in cancels {
            let Some(key) = c.top_via().and_then(|v| v.branch().map(str::to_owned)) else {
                continue;
            };
            if let Ok(tx) = self.txs.send_request(
                now,
                TxKey::client(key, TxMethod::Cancel),
                peer,
                peer.proto.is_reliable(),
                c.to_bytes(),
            ) {
                self.calls.clients.insert(tx, ClientRole::Fire);
            }
        }
        self.drain_tx(now);
    }

    /// Answer A's INVITE (1xx or 2xx) with Dialtone's To tag and Contact.
    fn respond_a(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        reason: &str,
        mut extra: Vec<(HeaderName, String)>,
        body: Bytes,
    ) {
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        let Some(tx) = call.a.tx else {
            // An originated call: the caller's phone already answered Dialtone.
            return;
        };
        let (peer, tag, invite) = (call.a.peer, call.a.local_tag.clone(), call.a.invite.clone());
        extra.extend(self.local_contact(id, Leg::A));
        let bytes =
            self.build_response_with_tag(&invite, status, reason, &extra, Some(&tag), Some(body));
        let _ = self.txs.respond(now, tx, status, bytes.clone());
        if (200..300).contains(&status) {
            self.retransmit_2xx(now, id, Leg::A, peer, bytes);
        }
        self.drain_tx(now);
    }

    /// Keep re-sending a 2xx to an INVITE from `leg` until its ACK (unreliable transports).
    fn retransmit_2xx(&mut self, now: Instant, id: u64, leg: Leg, peer: Peer, bytes: Bytes) {
        if peer.proto.is_reliable() {
            return;
        }
        let t1 = self.txs.config().t1;
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.retx[leg_index(leg)] = Some(Retx {
                bytes,
                next: now + t1,
                interval: t1,
                give_up: now + t1 * 64,
            });
            self.calls.timers.push(Reverse((now + t1, id)));
        }
    }

    /// End a call that was not answered: final status to A, CANCEL branches, close media, CDR.
    fn fail_call(&mut self, now: Instant, id: u64, status: u16, reason: &str, by: HungUpBy) {
        self.fail_call_with(now, id, status, reason, &[], by);
    }

    fn fail_call_with(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
        by: HungUpBy,
    ) {
        self.cancel_branches(now, id, None);
        self.cancel_origin_branches(now, id, None);
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        match call.a.tx {
            Some(tx) => {
                let (invite, tag) = (call.a.invite.clone(), call.a.local_tag.clone());
                let bytes =
                    self.build_response_with_tag(&invite, status, reason, extra, Some(&tag), None);
                let _ = self.txs.respond(now, tx, status, bytes);
            }
            None if call.a_established() => self.send_bye(now, id, Leg::A),
            None => {}
        }
        let disposition = match status {
            486 | 600 => Disposition::Busy,
            487 => Disposition::Cancelled,
            480 | 408 => Disposition::NoAnswer,
            _ => Disposition::Failed,
        };
        self.end_call(now, id, disposition, status, by);
    }

    fn end_call(
        &mut self,
        now: Instant,
        id: u64,
        disposition: Disposition,
        cause: u16,
        by: HungUpBy,
    ) {
        // The dialogs as they were, shown once more as terminated to the watchers.
        if let Some((caller, callee)) = self.calls.parties(id) {
            let now_ms = self.unix_ms(now);
            let host = self.presence_host();
            for ext in [caller, callee] {
                let mut views = self.call_dialogs(id, &ext, &host, now_ms);
                for v in &mut views {
                    v.state = crate::pbx::presence::DialogState::Terminated;
                    v.duration = None;
                }
                self.presence_call_ended(&ext, views);
            }
        }
        let Some(call) = self.calls.calls.remove(&id) else {
            return;
        };
        self.calls.unindex(id, [&call.caller, &call.callee]);
        self.calls.dialogs.remove(&call.a.call_id);
        let call_id = call.report_call_id().to_owned();
        for b in call.branches {
            self.calls.dialogs.remove(&b.call_id);
            if b.final_status.is_none()
                && let Some(tx) = b.tx
                && self.calls.clients.contains_key(&tx)
            {
                self.calls.orphans.insert(tx, (b.invite, b.peer));
            }
        }
        if let Some(tx) = call.a.tx {
            self.calls.by_invite.remove(&tx);
        }
        if let Some(origin) = call.origin {
            for b in origin.branches {
                if b.final_status.is_none()
                    && let Some(tx) = b.tx
                    && self.calls.clients.contains_key(&tx)
                {
                    self.calls.orphans.insert(tx, (b.invite, b.peer));
                }
            }
        }
        if call.ports.is_some() || call.phase == Phase::Media {
            self.emit_media(MediaCommand::Close { call: id });
        }
        info!(
            call = id,
            disposition = disposition.as_str(),
            cause,
            "call ended"
        );
        let disposition = if call.xfer.was_answered {
            Disposition::Answered
        } else {
            disposition
        };
        let [codec_a, codec_b] = call.codecs;
        let q850_cause = match (disposition, by) {
            (Disposition::Answered, _) if cause == 200 => crate::pbx::cause::q850::NORMAL_CLEARING,
            (Disposition::NoAnswer, HungUpBy::System) => crate::pbx::cause::q850::NO_ANSWER,
            _ => crate::pbx::cause::from_sip(cause),
        };
        let q850_cause = call.hangup_q850.unwrap_or(q850_cause);
        let record = CallRecord {
            id,
            call_id,
            from: call.caller,
            to: call.callee,
            start: call.start,
            answer: call.answer,
            end: self.unix_ms(now),
            disposition,
            hangup_cause: cause,
            q850_cause,
            hung_up_by: by,
            codec_a,
            codec_b,
        };
        self.calls_ended += 1;
        self.call_event(CallEvent::Ended {
            call: id,
            status: record.hangup_cause,
            q850: record.q850_cause,
            by: record.hung_up_by,
            answered: record.answer.is_some(),
        });
        self.out.push_back(Output::Cdr(Box::new(record)));
        self.drain_tx(now);
    }

    // ------------------------------------------------------------- time

    pub(super) fn call_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((due, id))) = self.calls.timers.peek().copied() {
            if due > now {
                break;
            }
            self.calls.timers.pop();
            let Some(call) = self.calls.calls.get_mut(&id) else {
                continue;
            };
            if call.phase == Phase::Media && call.ring_deadline <= now {
                info!(call = id, "no answer from the media relay");
                self.fail_call(
                    now,
                    id,
                    503,
                    "Service Unavailable (media relay)",
                    HungUpBy::System,
                );
                continue;
            }
            if matches!(call.phase, Phase::Ringing | Phase::Originating)
                && call.ring_deadline <= now
            {
                info!(call = id, "ring timeout");
                self.fail_call(
                    now,
                    id,
                    480,
                    "Temporarily Unavailable (no answer)",
                    HungUpBy::System,
                );
                continue;
            }
            if call.phase == Phase::Answered && call.session_deadline.is_some_and(|d| d <= now) {
                info!(
                    call = id,
                    "session timer expired without a refresh (RFC 4028): hanging up"
                );
                self.send_bye(now, id, Leg::A);
                self.send_bye(now, id, Leg::B);
                self.end_call(now, id, Disposition::Answered, 408, HungUpBy::System);
                continue;
            }
            let t2 = self.txs.config().t2;
            let mut sends = Vec::new();
            let mut no_ack = false;
            for leg in [Leg::A, Leg::B] {
                let Some(r) = call.retx[leg_index(leg)].as_mut() else {
                    continue;
                };
                if r.next > now {
                    continue;
                }
                if now >= r.give_up {
                    no_ack = true;
                    call.retx[leg_index(leg)] = None;
                    continue;
                }
                r.interval = (r.interval * 2).min(t2);
                r.next = now + r.interval;
                self.calls.timers.push(Reverse((r.next, id)));
                sends.push((leg, r.bytes.clone()));
            }
            for (leg, bytes) in sends {
                if let Some(peer) = self.leg_peer(id, leg) {
                    self.transmit(peer, bytes);
                }
            }
            if no_ack {
                // No ACK for a 2xx: RFC 3261 §13.3.1.4 — end the call.
                info!(call = id, "no ACK for a 2xx: hanging up");
                self.send_bye(now, id, Leg::B);
                self.send_bye(now, id, Leg::A);
                self.end_call(now, id, Disposition::Answered, 408, HungUpBy::System);
                continue;
            }
            // Dialtone refreshes a redirect's kept phone (see `redirect.rs`).
            self.send_kept_refresh(now, id);
        }
    }

    /// A client transaction of a call timed out (Timer B/F) or failed: a 408 for a branch.
    pub(super) fn call_tx_failed(&mut self, now: Instant, tx: TxId) {
        self.calls.orphans.remove(&tx);
        self.calls.pending_cancel.remove(&tx);
        match self.calls.clients.remove(&tx) {
            Some(ClientRole::Branch { call, index }) => {
                self.branch_failed(now, call, index, 408, "Request Timeout")
            }
            Some(ClientRole::Origin { call, index }) => {
                self.origin_branch_failed(now, call, index, 408)
            }
            Some(ClientRole::Refresh(r)) => self.kept_refresh_timed_out(now, r.0, &r.1),
            Some(ClientRole::Relay(relay)) => {
                if let Some(c) = self.calls.calls.get_mut(&relay.call) {
                    c.offer_pending = false;
                }
                self.respond(
                    now,
                    relay.server,
                    &relay.request,
                    408,
                    "Request Timeout",
                    &[],
                );
            }
            _ => {}
        }
    }

    pub(super) fn call_tx_terminated(&mut self, tx: TxId) {
        self.calls.clients.remove(&tx);
        self.calls.pending_cancel.remove(&tx);
        self.calls.orphans.remove(&tx);
        self.calls.by_invite.remove(&tx);
    }

    fn build_response_with_tag(
        &mut self,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(HeaderName, String)],
        tag: Option<&str>,
        body: Option<Bytes>,
    ) -> Bytes {
        let mut resp = req.make_response(status, reason);
        if status > 100 {
            let tag = match tag {
                Some(t) => t.to_owned(),
                None => self.new_tag(),
            };
            resp.set_to_tag(&tag);
        }
        for (name, value) in extra {
            resp.headers.push(name.clone(), value.clone());
        }
        resp.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        if let Some(b) = body {
            resp.body = b;
        }
        crate::sip::Message::Response(resp).to_bytes()
    }
}

/// RFC 4028 session timers pass through end to end: the phones refresh with re-INVITE/UPDATE,
/// which Dialtone relays. Only the `timer` option tag is carried (not 100rel etc., which
/// Dialtone does not relay).
fn request_timer_headers(h: &crate::sip::Headers) -> Vec<(HeaderName, String)> {
    let mut out = Vec::new();
    if let Some(se) = h.get(&HeaderName::SessionExpires) {
        out.push((HeaderName::SessionExpires, se.to_owned()));
        if let Some(min) = h.get(&HeaderName::MinSe) {
            out.push((HeaderName::MinSe, min.to_owned()));
        }
    }
    if supports_timer(h) {
        out.push((HeaderName::Supported, "timer".to_owned()));
    }
    out
}

/// The Allow header lists `method`.
fn allows(h: &crate::sip::Headers, method: &Method) -> bool {
    h.get_all(&HeaderName::Allow)
        .flat_map(|v| v.split(','))
        .any(|m| m.trim().eq_ignore_ascii_case(method.as_str()))
}

/// The session timer the 2xx of an INVITE/UPDATE (its headers `h`) sets for the phone of that
/// dialog (`phone_is_uac`: that phone sent the request): none without `Session-Expires`; the
/// refresher is the UAC unless the parameter says `uas` (RFC 4028 §7.2, §9).
fn leg_timer(h: &crate::sip::Headers, phone_is_uac: bool, now: Instant) -> Option<LegTimer> {
    let se = h.get(&HeaderName::SessionExpires)?;
    let mut parts = se.split(';');
    let secs = parts.next()?.trim().parse::<u64>().ok()?;
    let uas_refreshes = parts.filter_map(|p| p.split_once('=')).any(|(k, v)| {
        k.trim().eq_ignore_ascii_case("refresher") && v.trim().eq_ignore_ascii_case("uas")
    });
    Some(LegTimer {
        secs,
        remote_refreshes: uas_refreshes == phone_is_uac,
        at: now,
    })
}

fn supports_timer(h: &crate::sip::Headers) -> bool {
    h.get_all(&HeaderName::Supported)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("timer"))
}

/// Session-Expires of a 2xx, with `Require: timer` when the requester supports it.
fn response_timer_headers(
    resp: &crate::sip::Headers,
    request: &crate::sip::Headers,
) -> Vec<(HeaderName, String)> {
    let mut out = Vec::new();
    if let Some(se) = resp.get(&HeaderName::SessionExpires) {
        out.push((HeaderName::SessionExpires, se.to_owned()));
        if supports_timer(request) {
            out.push((HeaderName::Require, "timer".to_owned()));
        }
    }
    out
}

/// The digit of a SIP INFO DTMF request: `application/dtmf-relay` (`Signal=5`,
/// `Duration=160`) or `application/dtmf` (the digit alone).
fn info_dtmf(req: &Request) -> Option<(char, u32)> {
    let ct = req
        .content_type()?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let valid = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
    match ct.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration = 250;
            for line in body.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = v.trim().chars().next().map(|c| c.to_ascii_uppercase()),
                    "duration" => duration = v.trim().parse().unwrap_or(250),
                    _ => {}
                }
            }
            digit.filter(|c| valid(*c)).map(|d| (d, duration))
        }
        "application/dtmf" => body
            .trim()
            .chars()
            .next()
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| valid(*c))
            .map(|d| (d, 250)),
        _ => None,
    }
}

/// The first codec of an SDP's audio stream, by its Asterisk name (`ulaw`, `g722` …).
fn first_codec(sdp: &SessionDescription) -> Option<String> {
    let m = sdp.audio()?;
    m.rtpmaps()
        .find(|(_, r)| !r.is_telephone_event())
        .map(|(_, r)| {
            crate::sdp::codec::asterisk_name(r.encoding, r.clock_rate)
                .map(str::to_owned)
                .unwrap_or_else(|| r.encoding.to_ascii_lowercase())
        })
}

/// CANCEL requests for the pending branches (all but `keep`): those to send now, and those
/// that wait for the branch's first provisional response (RFC 3261 §9.1).
#[allow(clippy::type_complexity)]
/// Also returns the indexes of the branches newly marked cancelled.
fn cancel_requests(
    branches: &mut [Branch],
    keep: Option<usize>,
) -> (
    Vec<(Peer, Request)>,
    Vec<(TxId, (Request, Peer))>,
    Vec<usize>,
) {
    let mut cancels = Vec::new();
    let mut deferred = Vec::new();
    let mut newly = Vec::new();
    for (i, b) in branches.iter_mut().enumerate() {
        if Some(i) == keep || b.final_status.is_some() || b.cancelled {
            continue;
        }
        b.cancelled = true;
        newly.push(i);
        let Some(tx) = b.tx else { continue };
        let mut c = Request::new(Method::Cancel, b.invite.uri.clone());
        for name in [
            HeaderName::Via,
            HeaderName::MaxForwards,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = b.invite.headers.get(&name) {
                c.headers.push(name.clone(), v.to_owned());
            }
        }
        c.headers.push(HeaderName::CSeq, "1 CANCEL");
        if b.got_provisional {
            cancels.push((b.peer, c));
        } else {
            // RFC 3261 §9.1: no CANCEL before a provisional response; it goes out with
            // the first one (a final response makes it moot).
            deferred.push((tx, (c, b.peer)));
        }
    }
    (cancels, deferred, newly)
}

fn other(leg: Leg) -> Leg {
    match leg {
        Leg::A => Leg::B,
        Leg::B => Leg::A,
    }
}

fn branch_key(req: &Request) -> Option<TxKey> {
    let branch = req.top_via()?.branch()?.to_owned();
    Some(TxKey::client(
        branch,
        TxMethod::from_name(req.method.as_str()),
    ))
}

/// An ACK for `resp` to the request `sent` (RFC 3261 §17.1.1.3 / §13.2.2.4): same Via (the
/// caller replaces the branch for a 2xx), From, Call-ID, CSeq number; To from the response.
fn build_ack(sent: &Request, resp: &Response, target: Option<&str>) -> Request {
    let uri = target
        .and_then(|t| Uri::parse(t).ok())
        .unwrap_or_else(|| sent.uri.clone());
    let mut ack = Request::new(Method::Ack, uri);
    for name in [HeaderName::Via, HeaderName::MaxForwards, HeaderName::From] {
        if let Some(v) = sent.headers.get(&name) {
            ack.headers.push(name.clone(), v.to_owned());
        }
    }
    if let Some(to) = resp.headers.get(&HeaderName::To) {
        ack.headers.push(HeaderName::To, to.to_owned());
    }
    if let Some(v) = sent.headers.get(&HeaderName::CallId) {
        ack.headers.push(HeaderName::CallId, v.to_owned());
    }
    let seq = sent.cseq().map(|c| c.seq).unwrap_or(1);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

/// Replace the branch of the top Via (a 2xx ACK is its own transaction).
fn rebranch(mut req: Request, branch: &str) -> Request {
    if let Some(mut via) = req.top_via() {
        via.set_param("branch", Some(branch.to_owned()));
        req.headers.set(HeaderName::Via, via.to_string());
    }
    req
}
