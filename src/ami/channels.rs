//! Call steps → Asterisk 22 channel events (sans-IO).
//!
//! [`ChannelTracker`] follows every call of the engine ([`CallEvent`]) and turns it into the
//! events chan_pjsip + app_dial emit: one channel per leg and branch (`PJSIP/<ext>-%08x`,
//! a global counter), `Uniqueid`/`Linkedid` as `<epoch>.<seq>`, `Newchannel`, `Newstate`,
//! `NewCallerid`, `NewConnectedLine`, `DialBegin`/`DialState`/`DialEnd`, the bridge events,
//! `Hold`/`Unhold`, `DTMFBegin`/`DTMFEnd`, `HangupRequest`/`SoftHangupRequest`, `Hangup` and
//! `Cdr`. It also keeps the live channels for `CoreShowChannels`, `Status`, the CLI and the
//! `Hangup`/`Setvar` actions, and settles `Originate` requests (`OriginateResponse`).
//!
//! Wall time comes in as an argument (`now_unix`, seconds); nothing here reads a clock.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::events::{
    self, AmiEvent, BridgeSnapshot, CdrFields, ChannelSnapshot, ChannelState, DeviceState,
    DtmfDirection, OriginateReport, OriginateTarget,
};
use crate::pbx::cause;
use crate::pbx::engine::{CallEvent, CallRecord, Disposition, HungUpBy, Leg};

/// Context used for an extension the tracker was not told about.
pub const DEFAULT_CONTEXT: &str = "from-internal";
/// How many ended calls are remembered for their `Cdr` (which follows `Ended` at once).
const ENDED_MEMORY: usize = 512;

/// `DialStatus` of a `DialEnd` for a branch's final SIP status.
pub fn dial_status(status: u16) -> &'static str {
    match status {
        200..=299 => "ANSWER",
        486 | 600 => "BUSY",
        487 => "CANCEL",
        408 | 480 => "NOANSWER",
        500 | 503 | 502 | 504 => "CONGESTION",
        _ => "CHANUNAVAIL",
    }
}

/// `OriginateResponse` `Reason` for the final status of a failed originate.
fn originate_reason(status: u16, by: HungUpBy) -> u8 {
    match status {
        486 | 600 => 5,
        503 | 500 | 502 | 504 => 8,
        480 | 408 if by == HungUpBy::System => 3,
        487 => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone)]
struct Chan {
    snap: ChannelSnapshot,
    held: bool,
}

#[derive(Debug)]
struct CallState {
    caller: String,
    caller_name: String,
    callee: String,
    callee_name: String,
    originated: bool,
    /// Caller side: one channel (an inbound call), or one per branch ringing the caller of an
    /// originated call. `None` once hung up.
    a: Vec<Option<Chan>>,
    a_main: Option<usize>,
    b: Vec<Option<Chan>>,
    b_main: Option<usize>,
    bridge: Option<BridgeSnapshot>,
    /// Branches Dialtone cancelled (487) while nobody answered: settled by `Ended` (which
    /// tells CANCEL from NOANSWER).
    deferred: Vec<(Leg, usize)>,
    linkedid: String,
}

impl CallState {
    fn chans(&self, leg: Leg) -> &Vec<Option<Chan>> {
        match leg {
            Leg::A => &self.a,
            Leg::B => &self.b,
        }
    }

    fn chans_mut(&mut self, leg: Leg) -> &mut Vec<Option<Chan>> {
        match leg {
            Leg::A => &mut self.a,
            Leg::B => &mut self.b,
        }
    }

    fn main(&self, leg: Leg) -> Option<usize> {
        match leg {
            Leg::A => self.a_main,
            Leg::B => self.b_main,
        }
    }

    fn caller_chan(&self) -> Option<&ChannelSnapshot> {
        self.a_main
            .and_then(|i| self.a.get(i))
            .and_then(|c| c.as_ref())
            .map(|c| &c.snap)
    }
}

/// What an ended call leaves for its `Cdr`.
#[derive(Debug, Clone)]
struct Ended {
    call: u64,
    a_name: String,
    b_name: String,
    a_uniqueid: String,
    caller_name: String,
    context: String,
}

/// An `Originate` waiting for its call's outcome.
#[derive(Debug, Clone)]
pub struct PendingOriginate {
    pub action_id: Option<String>,
    /// As asked (`PJSIP/1001`), reported when no channel was made.
    pub channel: String,
    pub target: OriginateTarget,
    /// `(num, name)` of the Originate's `CallerID`.
    pub caller_id: Option<(String, String)>,
    /// Async: report with an `OriginateResponse` event.
    pub is_async: bool,
    /// `Variable:` headers: set on the originated channel (each announced by `VarSet`).
    pub variables: Vec<(String, String)>,
}

/// How an originated call's first leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateOutcome {
    pub success: bool,
    pub reason: u8,
    pub channel: String,
    pub uniqueid: String,
    pub caller_id_num: String,
    pub caller_id_name: String,
}

/// Follows calls and produces their AMI events (one per runtime).
#[derive(Debug)]
pub struct ChannelTracker {
    uid_seq: u64,
    chan_seq: u32,
    bridge_state: u64,
    calls: BTreeMap<u64, CallState>,
    contexts: HashMap<String, String>,
    ended: VecDeque<Ended>,
    /// Originates waiting for their call (by engine call id).
    originates: HashMap<u64, PendingOriginate>,
    /// Outcomes of originated calls nobody asked about yet (the action's reply may register
    /// after the call was answered or failed).
    outcomes: VecDeque<(u64, OriginateOutcome)>,
    /// Outcomes settled since the last [`ChannelTracker::take_outcomes`] (sync Originate).
    settled: Vec<(u64, OriginateOutcome)>,
    /// Events for channels an Originate registered after they were created.
    late: Vec<AmiEvent>,
    /// Per endpoint: channels in use, ringing, on hold (kept up to date per call event, so a
    /// device state costs O(1) however many calls an endpoint has).
    counts: HashMap<String, [u32; 3]>,
    /// What each call adds to `counts`.
    contrib: HashMap<u64, Vec<(String, [u32; 3])>>,
}

impl Default for ChannelTracker {
    fn default() -> Self {
        ChannelTracker::new(0)
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ChannelTracker {
    /// `seed` varies the bridge ids between runs (any value is fine).
    pub fn new(seed: u64) -> ChannelTracker {
        ChannelTracker {
            uid_seq: 0,
            chan_seq: 0,
            bridge_state: seed,
            calls: BTreeMap::new(),
            contexts: HashMap::new(),
            ended: VecDeque::new(),
            originates: HashMap::new(),
            outcomes: VecDeque::new(),
            settled: Vec::new(),
            late: Vec::new(),
            counts: HashMap::new(),
            contrib: HashMap::new(),
        }
    }

    /// The dialplan context of an extension (its endpoint `context`).
    pub fn set_context(&mut self, extension: &str, context: &str) {
        self.contexts
            .insert(extension.to_string(), context.to_string());
    }

    fn context(&self, extension: &str) -> String {
        self.contexts
            .get(extension)
            .cloned()
            .unwrap_or_else(|| DEFAULT_CONTEXT.to_string())
    }

    fn bridge_id(&mut self) -> String {
        let a = splitmix(&mut self.bridge_state);
        let b = splitmix(&mut self.bridge_state);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn new_chan(&mut self, now_unix: f64, endpoint: &str, linkedid: Option<&str>) -> Chan {
        let name = events::channel_name(endpoint, self.chan_seq);
        self.chan_seq = self.chan_seq.wrapping_add(1);
        let uid = events::uniqueid(now_unix as i64, self.uid_seq);
        self.uid_seq += 1;
        let mut snap = ChannelSnapshot::new(name, uid);
        if let Some(l) = linkedid {
            snap.linkedid = l.to_string();
        }
        snap.created_unix = now_unix;
        snap.endpoint = endpoint.to_string();
        Chan { snap, held: false }
    }

    /// Live channels, oldest first.
    pub fn channels(&self) -> Vec<ChannelSnapshot> {
        let mut v: Vec<ChannelSnapshot> = self
            .calls
            .values()
            .flat_map(|c| c.a.iter().chain(c.b.iter()))
            .flatten()
            .map(|c| c.snap.clone())
            .collect();
        v.sort_by(|x, y| {
            x.created_unix
                .total_cmp(&y.created_unix)
                .then_with(|| uid_seq(&x.uniqueid).cmp(&uid_seq(&y.uniqueid)))
        });
        v
    }

    /// Number of calls being tracked.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The engine call a live channel belongs to.
    pub fn call_of(&self, channel: &str) -> Option<u64> {
        self.calls.iter().find_map(|(id, c)| {
            c.a.iter()
                .chain(c.b.iter())
                .flatten()
                .any(|ch| ch.snap.name.eq_ignore_ascii_case(channel))
                .then_some(*id)
        })
    }

    /// The engine call and leg of a live channel, and whether it is that leg's main channel
    /// (the caller's, or the callee's once answered) rather than a branch still ringing.
    pub fn leg_of(&self, channel: &str) -> Option<(u64, Leg, bool)> {
        self.calls.iter().find_map(|(id, c)| {
            [Leg::A, Leg::B].into_iter().find_map(|leg| {
                c.chans(leg)
                    .iter()
                    .position(|ch| {
                        ch.as_ref()
                            .is_some_and(|ch| ch.snap.name.eq_ignore_ascii_case(channel))
                    })
                    .map(|i| (*id, leg, c.main(leg) == Some(i)))
            })
        })
    }

    /// The bridge peer of `channel`: `(call, the peer's leg, the peer's channel name)`; None
    /// when the channel is unknown or not in a two-party bridge.
    pub fn peer_of(&self, channel: &str) -> Option<(u64, Leg, String)> {
        let (call, leg, main) = self.leg_of(channel)?;
        let c = self.calls.get(&call)?;
        c.bridge.as_ref()?;
        if !main {
            return None;
        }
        let other = match leg {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        };
        let i = c.main(other)?;
        let peer = c.chans(other).get(i)?.as_ref()?;
        Some((call, other, peer.snap.name.clone()))
    }

    /// Set a channel variable; false when there is no such channel.
    pub fn set_var(&mut self, channel: &str, name: &str, value: &str) -> bool {
        self.set_var_event(channel, name, value).is_some()
    }

    /// Set a channel variable; its `VarSet` event, or None when there is no such channel.
    pub fn set_var_event(&mut self, channel: &str, name: &str, value: &str) -> Option<AmiEvent> {
        for c in self.calls.values_mut() {
            for ch in c.a.iter_mut().chain(c.b.iter_mut()).flatten() {
                if ch.snap.name.eq_ignore_ascii_case(channel) {
                    set_variable(&mut ch.snap.variables, name, value);
                    return Some(events::var_set(Some(&ch.snap), name, value));
                }
            }
        }
        None
    }

    /// Forget calls the engine no longer has (after the event stream lagged).
    pub fn retain_calls(&mut self, alive: &[u64]) -> usize {
        let before = self.calls.len();
        self.calls.retain(|id, _| alive.contains(id));
        let gone: Vec<u64> = self
            .contrib
            .keys()
            .filter(|id| !self.calls.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.refresh_counts(id);
        }
        before - self.calls.len()
    }

    /// The call-derived device state of every endpoint with a live channel (`InUse`,
    /// `Ringing`, `RingInUse`, `OnHold`).
    pub fn endpoint_states(&self) -> HashMap<String, DeviceState> {
        self.counts
            .iter()
            .filter_map(|(k, c)| state_of(*c).map(|s| (k.clone(), s)))
            .collect()
    }

    /// The call-derived device state of one endpoint (`None` = no channel).
    pub fn endpoint_state(&self, endpoint: &str) -> Option<DeviceState> {
        self.counts.get(endpoint).and_then(|c| state_of(*c))
    }

    fn refresh_counts(&mut self, call: u64) {
        let new: Vec<(String, [u32; 3])> = match self.calls.get(&call) {
            Some(c) => {
                let mut v: Vec<(String, [u32; 3])> = Vec::with_capacity(2);
                for ch in c.a.iter().chain(c.b.iter()).flatten() {
                    let i = match ch.snap.state {
                        ChannelState::Ringing | ChannelState::Down => 1,
                        _ if ch.held => 2,
                        _ => 0,
                    };
                    match v.iter_mut().find(|(e, _)| *e == ch.snap.endpoint) {
                        Some((_, n)) => n[i] += 1,
                        None => {
                            let mut n = [0; 3];
                            n[i] = 1;
                            v.push((ch.snap.endpoint.clone(), n));
                        }
                    }
                }
                v
            }
            None => Vec::new(),
        };
        if let Some(old) = self.contrib.remove(&call) {
            for (e, n) in old {
                if let Some(c) = self.counts.get_mut(&e) {
                    for i in 0..3 {
                        c[i] = c[i].saturating_sub(n[i]);
                    }
                    if *c == [0; 3] {
                        self.counts.remove(&e);
                    }
                }
            }
        }
        for (e, n) in &new {
            let c = self.counts.entry(e.clone()).or_default();
            for i in 0..3 {
                c[i] += n[i];
            }
        }
        if !new.is_empty() {
            self.contrib.insert(call, new);
        }
    }

    /// The endpoints a call has channels on (device states to refresh after its events).
    pub fn endpoints_of(&self, ev: &CallEvent) -> Vec<String> {
        let call = ev.call();
        match self.calls.get(&call) {
            Some(c) => {
                let mut v = vec![c.caller.clone()];
                if c.callee != c.caller {
                    v.push(c.callee.clone());
                }
                v
            }
            None => Vec::new(),
        }
    }

    // ------------------------------------------------------------------ originate

    /// Wait for the outcome of originated call `call`. When it is already known the outcome
    /// is returned (and, for an async Originate, its `OriginateResponse` event too).
    pub fn register_originate(
        &mut self,
        call: u64,
        p: PendingOriginate,
    ) -> Option<(OriginateOutcome, Option<AmiEvent>)> {
        if let Some(i) = self.outcomes.iter().position(|(c, _)| *c == call) {
            let (_, o) = self.outcomes.remove(i)?;
            let ev = p.is_async.then(|| originate_event(&p, &o));
            return Some((o, ev));
        }
        // The first channel may already exist (its Newchannel went out before the Originate
        // was registered): give it the variables and caller ID now, announced as they would
        // have been at its creation.
        if let Some(c) = self.calls.get_mut(&call) {
            for ch in c.a.iter_mut().flatten() {
                if let Some((num, name)) = &p.caller_id
                    && (ch.snap.caller_id_num != *num || ch.snap.caller_id_name != *name)
                {
                    ch.snap.caller_id_num = num.clone();
                    ch.snap.caller_id_name = name.clone();
                    self.late.push(events::new_callerid(&ch.snap, 0));
                }
                for (k, v) in &p.variables {
                    set_variable(&mut ch.snap.variables, k, v);
                    self.late.push(events::var_set(Some(&ch.snap), k, v));
                }
            }
        }
        self.originates.insert(call, p);
        None
    }

    /// Events [`Self::register_originate`] produced for channels that already existed.
    pub fn take_late_events(&mut self) -> Vec<AmiEvent> {
        std::mem::take(&mut self.late)
    }

    /// Drop an originate nobody waits for any more (sync Originate timed out).
    pub fn forget_originate(&mut self, call: u64) {
        self.originates.remove(&call);
    }

    /// Outcomes of sync originates settled since the last call.
    pub fn take_outcomes(&mut self) -> Vec<(u64, OriginateOutcome)> {
        std::mem::take(&mut self.settled)
    }

    fn settle_originate(&mut self, call: u64, o: OriginateOutcome, out: &mut Vec<AmiEvent>) {
        match self.originates.remove(&call) {
            Some(p) => {
                let mut o = o;
                if let Some((num, name)) = &p.caller_id {
                    o.caller_id_num = num.clone();
                    o.caller_id_name = name.clone();
                }
                if p.is_async {
                    out.push(originate_event(&p, &o));
                } else {
                    self.settled.push((call, o));
                }
            }
            None => {
                self.outcomes.push_back((call, o));
                while self.outcomes.len() > 64 {
                    self.outcomes.pop_front();
                }
            }
        }
    }

    // ------------------------------------------------------------------ events

    /// The AMI events for one call step, in Asterisk's order.
    pub fn handle(&mut self, now_unix: f64, ev: &CallEvent) -> Vec<AmiEvent> {
        let out = self.handle_inner(now_unix, ev);
        if !matches!(ev, CallEvent::Dtmf { .. } | CallEvent::Bridged { .. }) {
            self.refresh_counts(ev.call());
        }
        out
    }

    fn handle_inner(&mut self, now_unix: f64, ev: &CallEvent) -> Vec<AmiEvent> {
        let mut out = Vec::new();
        match ev {
            CallEvent::Started {
                call,
                call_id,
                caller,
                caller_name,
                callee,
                callee_name,
                originated,
                ..
            } => {
                let mut st = CallState {
                    caller: caller.clone(),
                    caller_name: caller_name.clone(),
                    callee: callee.clone(),
                    callee_name: callee_name.clone(),
                    originated: *originated,
                    a: Vec::new(),
                    a_main: None,
                    b: Vec::new(),
                    b_main: None,
                    bridge: None,
                    deferred: Vec::new(),
                    linkedid: String::new(),
                };
                if !originated {
                    let mut a = self.new_chan(now_unix, caller, None);
                    a.snap.state = ChannelState::Ring;
                    a.snap.caller_id_num = caller.clone();
                    a.snap.caller_id_name = caller_name.clone();
                    a.snap.context = self.context(caller);
                    a.snap.exten = callee.clone();
                    a.snap.application = "Dial".into();
                    a.snap.app_data = format!("PJSIP/{callee},30");
                    a.snap.dnid = callee.clone();
                    a.snap.variables = vec![("SIPCALLID".into(), call_id.clone())];
                    st.linkedid = a.snap.uniqueid.clone();
                    out.push(events::newchannel(&a.snap));
                    // The dialplan step that dials the callee.
                    out.push(events::newexten(&a.snap));
                    st.a.push(Some(a));
                    st.a_main = Some(0);
                }
                self.calls.insert(*call, st);
            }
            CallEvent::Dialing {
                call,
                leg,
                branch,
                number,
                ..
            } => self.dialing(now_unix, *call, *leg, *branch, number, &mut out),
            CallEvent::Ringing { call, leg, branch } => {
                if let Some(c) = self.calls.get_mut(call) {
                    let caller = if *leg == Leg::B {
                        c.caller_chan().cloned()
                    } else {
                        None
                    };
                    if let Some(Some(ch)) = c.chans_mut(*leg).get_mut(*branch)
                        && ch.snap.state != ChannelState::Ringing
                        && ch.snap.state != ChannelState::Up
                    {
                        ch.snap.state = ChannelState::Ringing;
                        out.push(events::newstate(&ch.snap));
                        out.push(events::dial_state(
                            caller.as_ref(),
                            &ch.snap,
                            "RINGING",
                            None,
                        ));
                    }
                }
            }
            CallEvent::Answered { call, leg, branch } => {
                self.answered(now_unix, *call, *leg, *branch, &mut out)
            }
            CallEvent::BranchEnded {
                call,
                leg,
                branch,
                status,
            } => {
                let Some(c) = self.calls.get_mut(call) else {
                    return out;
                };
                if c.main(*leg).is_none() && *status == 487 {
                    c.deferred.push((*leg, *branch));
                    return out;
                }
                let (ds, cause) = if c.main(*leg).is_some() {
                    ("CANCEL", 26)
                } else {
                    (dial_status(*status), cause::from_sip(*status))
                };
                end_branch(c, *leg, *branch, ds, cause, &mut out);
            }
            CallEvent::Bridged { call } => {
                let id = self.bridge_id();
                let Some(c) = self.calls.get_mut(call) else {
                    return out;
                };
                let (Some(ai), Some(bi)) = (c.a_main, c.b_main) else {
                    return out;
                };
                let mut bridge = BridgeSnapshot::basic(id, 0);
                out.push(events::bridge_create(&bridge));
                for (leg, i) in [(Leg::A, ai), (Leg::B, bi)] {
                    if let Some(Some(ch)) = c.chans_mut(leg).get_mut(i) {
                        ch.snap.bridge_id = bridge.uniqueid.clone();
                        bridge.num_channels += 1;
                        out.push(events::bridge_enter(&bridge, &ch.snap, None));
                    }
                }
                c.bridge = Some(bridge);
            }
            CallEvent::Hold { call, leg, hold } => {
                if let Some(c) = self.calls.get_mut(call)
                    && let Some(i) = c.main(*leg)
                    && let Some(Some(ch)) = c.chans_mut(*leg).get_mut(i)
                    && ch.held != *hold
                {
                    ch.held = *hold;
                    out.push(if *hold {
                        events::hold(&ch.snap, None)
                    } else {
                        events::unhold(&ch.snap)
                    });
                }
            }
            CallEvent::Dtmf {
                call,
                leg,
                digit,
                duration_ms,
            } => {
                if let Some(c) = self.calls.get(call)
                    && let Some(i) = c.main(*leg)
                    && let Some(Some(ch)) = c.chans(*leg).get(i)
                {
                    out.push(events::dtmf_begin(
                        &ch.snap,
                        *digit,
                        DtmfDirection::Received,
                    ));
                    out.push(events::dtmf_end(
                        &ch.snap,
                        *digit,
                        *duration_ms,
                        DtmfDirection::Received,
                    ));
                }
            }
            CallEvent::Redirected {
                call,
                kept,
                to,
                to_name,
                context,
                ..
            } => self.redirected(*call, *kept, to, to_name, context.as_deref(), &mut out),
            CallEvent::Ended {
                call,
                status,
                q850,
                by,
                ..
            } => self.ended(*call, *status, *q850, *by, &mut out),
        }
        out
    }

    /// AMI `Redirect` of the channel of `kept`: the bridge breaks up (the kept channel leaves
    /// first, the other party leaves and hangs up with normal clearing), or the ringing
    /// callee's channels end (`DialEnd` CANCEL); the kept channel is the caller from now on
    /// and dials `to` (its `Dial` events follow with the engine's `Dialing`).
    fn redirected(
        &mut self,
        call: u64,
        kept: Leg,
        to: &str,
        to_name: &str,
        context: Option<&str>,
        out: &mut Vec<AmiEvent>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let dropped = match kept {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        };
        let main = |c: &CallState, leg: Leg| -> Option<ChannelSnapshot> {
            c.main(leg)
                .and_then(|i| c.chans(leg).get(i))
                .and_then(|x| x.as_ref())
                .map(|x| x.snap.clone())
        };
        let kept_snap = main(c, kept);
        let dropped_snap = main(c, dropped);
        if let Some(mut bridge) = c.bridge.take() {
            for ch in [&kept_snap, &dropped_snap].into_iter().flatten() {
                bridge.num_channels = bridge.num_channels.saturating_sub(1);
                out.push(events::bridge_leave(&bridge, ch));
            }
            out.push(events::bridge_destroy(&bridge));
        }
        if let Some(ch) = &dropped_snap {
            // Its bridge peer went elsewhere: the system hangs it up.
            out.push(events::soft_hangup_request(
                ch,
                Some(cause::q850::NORMAL_CLEARING),
            ));
            out.push(events::hangup(ch, cause::q850::NORMAL_CLEARING));
        }
        // Whatever else rang or lived on the dropped side (a ringing caller's callee
        // branches, the losing phones of an originate) ends now.
        c.deferred.clear();
        for leg in [Leg::B, Leg::A] {
            let main = c.main(leg);
            for i in 0..c.chans(leg).len() {
                if Some(i) != main && c.chans(leg)[i].is_some() {
                    end_branch(c, leg, i, "CANCEL", cause::q850::NORMAL_CLEARING, out);
                }
            }
        }
        let (keep_chan, caller_name) = match kept {
            Leg::A => (
                c.a_main.and_then(|i| c.a.get_mut(i)?.take()),
                c.caller_name.clone(),
            ),
            Leg::B => (
                c.b_main.and_then(|i| c.b.get_mut(i)?.take()),
                c.callee_name.clone(),
            ),
        };
        let kept_ext = match kept {
            Leg::A => c.caller.clone(),
            Leg::B => c.callee.clone(),
        };
        c.caller = kept_ext;
        c.caller_name = caller_name;
        c.callee = to.to_string();
        c.callee_name = to_name.to_string();
        c.a.clear();
        c.b.clear();
        c.a_main = None;
        c.b_main = None;
        if let Some(mut ch) = keep_chan {
            ch.snap.bridge_id.clear();
            if let Some(ctx) = context {
                ch.snap.context = ctx.to_string();
            }
            ch.snap.exten = to.to_string();
            ch.snap.priority = 1;
            ch.snap.application = "Dial".into();
            ch.snap.app_data = format!("PJSIP/{to},30");
            // The channel runs the extension it was sent to.
            out.push(events::newexten(&ch.snap));
            c.a.push(Some(ch));
            c.a_main = Some(0);
        }
    }

    fn dialing(
        &mut self,
        now_unix: f64,
        call: u64,
        leg: Leg,
        branch: usize,
        number: &str,
        out: &mut Vec<AmiEvent>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let linkedid = (!c.linkedid.is_empty()).then(|| c.linkedid.clone());
        let ctx = self.context(number);
        let mut ch = self.new_chan(now_unix, number, linkedid.as_deref());
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.linkedid.is_empty() {
            c.linkedid = ch.snap.uniqueid.clone();
        }
        ch.snap.state = ChannelState::Down;
        ch.snap.context = ctx;
        ch.snap.application = "AppDial".into();
        ch.snap.app_data = "(Outgoing Line)".into();
        match leg {
            Leg::B => {
                ch.snap.exten = number.to_string();
                out.push(events::newchannel(&ch.snap));
                ch.snap.caller_id_num = number.to_string();
                out.push(events::new_callerid(&ch.snap, 0));
                ch.snap.connected_line_num = c.caller.clone();
                ch.snap.connected_line_name = c.caller_name.clone();
                out.push(events::new_connected_line(&ch.snap));
                let caller = c.caller_chan();
                out.push(events::dial_begin(caller, &ch.snap, number));
            }
            Leg::A => {
                // Originate: Dialtone rings the caller's phone first (no calling channel).
                ch.snap.exten = c.callee.clone();
                ch.snap.caller_id_num = c.caller.clone();
                ch.snap.caller_id_name = c.caller_name.clone();
                let pending = self.originates.get(&call);
                if let Some((num, name)) = pending.and_then(|p| p.caller_id.as_ref()) {
                    ch.snap.caller_id_num = num.clone();
                    ch.snap.caller_id_name = name.clone();
                }
                out.push(events::newchannel(&ch.snap));
                for (k, v) in pending.map(|p| p.variables.as_slice()).unwrap_or_default() {
                    set_variable(&mut ch.snap.variables, k, v);
                    out.push(events::var_set(Some(&ch.snap), k, v));
                }
                out.push(events::dial_begin(None, &ch.snap, number));
            }
        }
        let v = c.chans_mut(leg);
        if v.len() <= branch {
            v.resize(branch + 1, None);
        }
        v[branch] = Some(ch);
    }

    fn answered(
        &mut self,
        _now_unix: f64,
        call: u64,
        leg: Leg,
        branch: usize,
        out: &mut Vec<AmiEvent>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let caller = c.caller_chan().cloned();
        let callee_name = c.callee_name.clone();
        let (callee, caller_num, caller_name) =
            (c.callee.clone(), c.caller.clone(), c.caller_name.clone());
        let Some(Some(ch)) = c.chans_mut(leg).get_mut(branch) else {
            return;
        };
        match leg {
            Leg::B => {
                if !callee_name.is_empty() && ch.snap.caller_id_name != callee_name {
                    ch.snap.caller_id_name = callee_name.clone();
                    out.push(events::new_callerid(&ch.snap, 0));
                }
                ch.snap.state = ChannelState::Up;
                out.push(events::newstate(&ch.snap));
                out.push(events::dial_end(caller.as_ref(), &ch.snap, "ANSWER", None));
                c.b_main = Some(branch);
                if let Some(ai) = c.a_main
                    && let Some(Some(a)) = c.a.get_mut(ai)
                {
                    if a.snap.state != ChannelState::Up {
                        a.snap.state = ChannelState::Up;
                        out.push(events::newstate(&a.snap));
                    }
                    a.snap.connected_line_num = callee;
                    a.snap.connected_line_name = callee_name;
                    out.push(events::new_connected_line(&a.snap));
                }
            }
            Leg::A => {
                ch.snap.state = ChannelState::Up;
                out.push(events::newstate(&ch.snap));
                out.push(events::dial_end(None, &ch.snap, "ANSWER", None));
                ch.snap.application = "Dial".into();
                ch.snap.app_data = format!("PJSIP/{callee},30");
                // Answered, the originated channel runs the dialplan at Context/Exten (after
                // the OriginateResponse, as Asterisk's originate thread reports first).
                let exten = events::newexten(&ch.snap);
                let outcome = OriginateOutcome {
                    success: true,
                    reason: 4,
                    channel: ch.snap.name.clone(),
                    uniqueid: ch.snap.uniqueid.clone(),
                    caller_id_num: caller_num,
                    caller_id_name: caller_name,
                };
                c.linkedid = outcome.uniqueid.clone();
                c.a_main = Some(branch);
                self.settle_originate(call, outcome, out);
                out.push(exten);
            }
        }
    }

    fn ended(&mut self, call: u64, status: u16, q850: u8, by: HungUpBy, out: &mut Vec<AmiEvent>) {
        let Some(mut c) = self.calls.remove(&call) else {
            return;
        };
        let q850 = if q850 == 0 {
            cause::from_sip(status)
        } else {
            q850
        };
        // A request to hang up the caller's channel before anything else goes.
        let a_main = c.a_main;
        let b_main = c.b_main;
        let main_chan = |c: &CallState, leg: Leg| -> Option<ChannelSnapshot> {
            c.main(leg)
                .and_then(|i| c.chans(leg).get(i))
                .and_then(|x| x.as_ref())
                .map(|x| x.snap.clone())
        };
        let a = main_chan(&c, Leg::A);
        let b = main_chan(&c, Leg::B);
        if let Some(a) = &a {
            match by {
                HungUpBy::Caller => out.push(events::hangup_request(a, Some(q850))),
                HungUpBy::System => out.push(events::soft_hangup_request(a, Some(q850))),
                HungUpBy::Callee => {}
            }
        }
        if let Some(b) = &b {
            match by {
                HungUpBy::Callee => out.push(events::hangup_request(b, Some(q850))),
                _ => out.push(events::soft_hangup_request(b, Some(q850))),
            }
            if by == HungUpBy::Callee
                && let Some(a) = &a
            {
                out.push(events::soft_hangup_request(a, Some(q850)));
            }
        }
        // Branches cancelled because the call ended.
        let (ds, dcause) = match by {
            HungUpBy::System if matches!(status, 480 | 408) => ("NOANSWER", q850),
            HungUpBy::Callee => ("CANCEL", 16),
            _ => ("CANCEL", q850),
        };
        for (leg, i) in std::mem::take(&mut c.deferred) {
            end_branch(&mut c, leg, i, ds, dcause, out);
        }
        // The bridge empties: the side that hung up leaves first.
        if let Some(mut bridge) = c.bridge.take() {
            let order: [&Option<ChannelSnapshot>; 2] = if by == HungUpBy::Callee {
                [&b, &a]
            } else {
                [&a, &b]
            };
            for ch in order.into_iter().flatten() {
                bridge.num_channels = bridge.num_channels.saturating_sub(1);
                out.push(events::bridge_leave(&bridge, ch));
            }
            out.push(events::bridge_destroy(&bridge));
        }
        let order = if by == HungUpBy::Caller {
            [(Leg::A, a_main), (Leg::B, b_main)]
        } else {
            [(Leg::B, b_main), (Leg::A, a_main)]
        };
        for (leg, i) in order {
            if let Some(i) = i
                && let Some(Some(ch)) = c.chans_mut(leg).get_mut(i).map(Option::take)
            {
                out.push(events::hangup(&ch.snap, q850));
            }
        }
        // Anything left (should not happen): hung up with the call's cause.
        for leg in [Leg::B, Leg::A] {
            for slot in c.chans_mut(leg).iter_mut() {
                if let Some(ch) = slot.take() {
                    out.push(events::hangup(&ch.snap, q850));
                }
            }
        }
        if c.originated && a_main.is_none() {
            let outcome = OriginateOutcome {
                success: false,
                reason: originate_reason(status, by),
                channel: format!("PJSIP/{}", c.caller),
                uniqueid: String::new(),
                caller_id_num: c.caller.clone(),
                caller_id_name: c.caller_name.clone(),
            };
            self.settle_originate(call, outcome, out);
        }
        self.ended.push_back(Ended {
            call,
            a_name: a.as_ref().map(|x| x.name.clone()).unwrap_or_default(),
            b_name: b.as_ref().map(|x| x.name.clone()).unwrap_or_default(),
            a_uniqueid: a
                .as_ref()
                .map(|x| x.uniqueid.clone())
                .unwrap_or_else(|| c.linkedid.clone()),
            caller_name: c.caller_name.clone(),
            context: a
                .as_ref()
                .map(|x| x.context.clone())
                .unwrap_or_else(|| self.context(&c.caller)),
        });
        while self.ended.len() > ENDED_MEMORY {
            self.ended.pop_front();
        }
    }

    /// The `Cdr` event of a finished call; `local_time` formats unix milliseconds as local
    /// `%Y-%m-%d %H:%M:%S`.
    pub fn cdr(&mut self, r: &CallRecord, local_time: &dyn Fn(u64) -> String) -> AmiEvent {
        let ended = self
            .ended
            .iter()
            .position(|e| e.call == r.id)
            .and_then(|i| self.ended.remove(i));
        let (a_name, b_name, uid, name, ctx) = match ended {
            Some(e) => (e.a_name, e.b_name, e.a_uniqueid, e.caller_name, e.context),
            None => (
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                self.context(&r.from),
            ),
        };
        let duration = r.end.saturating_sub(r.start) / 1000;
        let billable = r
            .answer
            .map(|a| r.end.saturating_sub(a) / 1000)
            .unwrap_or(0);
        let disposition = match r.disposition {
            Disposition::Cancelled => "NO ANSWER",
            d => d.as_str(),
        };
        events::cdr(&CdrFields {
            account_code: String::new(),
            source: r.from.clone(),
            destination: r.to.clone(),
            destination_context: ctx,
            caller_id: format!("\"{name}\" <{}>", r.from),
            channel: a_name,
            destination_channel: b_name,
            last_application: "Dial".into(),
            last_data: format!("PJSIP/{},30", r.to),
            start_time: local_time(r.start),
            answer_time: r.answer.map(local_time).unwrap_or_default(),
            end_time: local_time(r.end),
            duration,
            billable_seconds: billable,
            disposition: disposition.into(),
            ama_flags: "DOCUMENTATION".into(),
            unique_id: uid,
            user_field: String::new(),
        })
    }
}

fn state_of(c: [u32; 3]) -> Option<DeviceState> {
    let [busy, ringing, held] = c;
    match (busy > 0, ringing > 0, held > 0) {
        (true, true, _) => Some(DeviceState::RingInUse),
        (true, false, _) => Some(DeviceState::InUse),
        (false, true, _) => Some(DeviceState::Ringing),
        (false, false, true) => Some(DeviceState::OnHold),
        (false, false, false) => None,
    }
}

fn uid_seq(uid: &str) -> u64 {
    uid.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A branch that did not become the call: `DialEnd` then its `Hangup`.
fn end_branch(
    c: &mut CallState,
    leg: Leg,
    branch: usize,
    dial_status: &str,
    cause: u8,
    out: &mut Vec<AmiEvent>,
) {
    let caller = if leg == Leg::B {
        c.caller_chan().cloned()
    } else {
        None
    };
    let Some(ch) = c.chans_mut(leg).get_mut(branch).and_then(Option::take) else {
        return;
    };
    out.push(events::dial_end(
        caller.as_ref(),
        &ch.snap,
        dial_status,
        None,
    ));
    out.push(events::hangup(&ch.snap, cause));
}

fn originate_event(p: &PendingOriginate, o: &OriginateOutcome) -> AmiEvent {
    events::originate_response(&OriginateReport {
        action_id: p.action_id.clone(),
        success: o.success,
        channel: if o.success {
            o.channel.clone()
        } else {
            p.channel.clone()
        },
        target: p.target.clone(),
        reason: o.reason,
        uniqueid: o.uniqueid.clone(),
        caller_id_num: o.caller_id_num.clone(),
        caller_id_name: o.caller_id_name.clone(),
    })
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;

/// Set (or replace) one variable in a channel's list.
fn set_variable(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => vars.push((name.into(), value.into())),
    }
}
