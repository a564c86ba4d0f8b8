//! AMI `Redirect` of one channel to an extension: the blind transfer a CRM does (Asterisk:
//! `ast_async_goto` of the channel to `Dial(PJSIP/<exten>)`).
//!
//! * Answered call, either party kept: the other party gets BYE; Dialtone then calls the
//!   target from the kept phone, in the kept phone's existing dialog (no re-INVITE of it). The
//!   target is offered only the codec the kept phone uses now (plus telephone-event), so the
//!   relay, which forwards and never transcodes, stays right; the relay leg of the dropped
//!   party is handed to the target ([`MediaCommand::ReplaceLeg`]: the kept phone's stream
//!   goes on with the same SSRC). When the callee's phone is the one kept, its dialog becomes
//!   leg A as if it had sent the INVITE (the way an originated call stores its caller), and
//!   the relay's legs are swapped under the engine's (`Transfer::swapped`). The call is then
//!   a ringing call whose caller is established (like click-to-dial once the caller picked
//!   up): a failure of the target (busy, no answer, 488) hangs the kept phone up (BYE), as
//!   Asterisk does after `Dial` fails with no more dialplan.
//! * Ringing call, the caller kept: the callee's branches are cancelled and the target is rung
//!   instead; the caller keeps its INVITE transaction (its 180/200 come from the new callee).
//!   If the caller already got SDP (183 early media), the target is offered only the codec of
//!   that SDP (plus telephone-event), and the next SDP to the caller gets a new o= version.
//! * Anything else (a ringing callee, a caller's phone still ringing for an originate) is not
//!   up: refused, nothing changes. So is an unknown target, a context that does not hold it,
//!   a target whose codecs exclude the codec in use, a relayed offer awaiting its answer, and
//!   any relayed in-dialog request (INFO, MESSAGE …) or session refresh of Dialtone's
//!   awaiting its answer (its response would be built toward a leg that changed). The caller
//!   may name the channel's extension (AMI): the leg is checked against it, and the other leg
//!   taken if that one is the extension's (legs swap under the AMI channel tracker).
//!
//! Session timers (RFC 4028). The kept phone still runs the session timer it agreed to with
//! the departed party (Dialtone keeps, per leg, the last `Session-Expires` and refresher each
//! phone saw in a 2xx). The target is offered no timer. Then:
//! * If the kept phone is its own refresher, nothing changes: its refreshes reach Dialtone —
//!   while the target rings, Dialtone answers one that changes nothing (no offer, or its last
//!   SDP with the same o= line) itself with 200, the SDP that phone has and
//!   `refresher=uac`; a real change gets 491. Once the target answered, refreshes are relayed
//!   as in any call (an offerless re-INVITE is still answered by Dialtone).
//! * If the departed party was the refresher, Dialtone becomes it: at half the interval
//!   (from the last refresh) it sends, in the kept dialog, an UPDATE without a body if the
//!   phone's Allow lists UPDATE, else a re-INVITE carrying exactly the SDP that phone last got
//!   (same o= version) — and ACKs its 2xx — with `Session-Expires: N;refresher=uac` and
//!   `Supported: timer`; each 2xx sets the next one. A 422 is retried with the phone's Min-SE,
//!   405/501 to an UPDATE with a re-INVITE, 491 after 3 s, a 408/481 or no answer hangs the
//!   call up (BYE, RFC 4028 §10), other refusals are retried (after a tenth of the interval).
//! * Dialtone stops once the phones settle it between them: the kept phone refreshes itself
//!   (Dialtone's answer makes it the refresher), a relayed INVITE/UPDATE from it gets a 2xx,
//!   or one from the new callee that asked for a timer does (a new callee that shows no timer
//!   support leaves Dialtone the refresher while the kept phone expects its peer to be), or
//!   a 2xx to Dialtone's own refresh says the phone refreshes (`refresher=uas`) or has no timer.
//!
//! The call keeps its engine id and its CDR: one record, from the kept party to the final
//! callee, answered when the first part was (start and answer times of the first part).

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::super::Pbx;
use super::{
    ALeg, Branch, CallEvent, ClientRole, Disposition, HungUpBy, KeptRefresh, Leg, MediaCommand,
    Originate, Phase, branch_key, build_ack, first_codec, leg_index, leg_timer, other, rebranch,
    supports_timer,
};
use crate::sdp::{SessionDescription, filter_offer};
use crate::sip::transaction::{ClientDisposition, TxId};
use crate::sip::{HeaderName, Method, NameAddr, Request, Response, Uri};

/// Why a redirect was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("no such call")]
    NoSuchCall,
    /// The channel is not up (a callee still ringing, a caller's phone still ringing).
    #[error("the channel is not up")]
    NotUp,
    #[error("extension {0} not found")]
    NotFound(String),
    #[error("extension {exten} is not in context {context}")]
    NoSuchContext { context: String, exten: String },
    #[error("the kept party is extension {0} itself")]
    SameExtension(String),
    #[error("extension {exten} does not allow the codec in use ({codec})")]
    NoCommonCodec { exten: String, codec: String },
    /// A relayed offer (re-INVITE/UPDATE) awaits its answer.
    #[error("a media renegotiation is in progress")]
    Pending,
    /// A relayed in-dialog request (INFO, MESSAGE, UPDATE …) or a session refresh of
    /// Dialtone's awaits its answer: its response would go to the wrong leg after the legs
    /// change.
    #[error("an in-dialog request awaits its answer")]
    RequestPending,
}

/// Contexts accepted for any extension besides its own and the kept party's (those FreePBX
/// CRMs redirect to).
const GENERIC_CONTEXTS: [&str; 5] = [
    "default",
    "from-internal",
    "ext-local",
    "from-internal-xfer",
    "from-internal-additional",
];

/// How long Dialtone waits before it tries a session refresh again (an INVITE transaction in
/// the way, a 491).
const REFRESH_RETRY: Duration = Duration::from_secs(3);

impl Pbx {
    /// Redirect the channel of `leg` of call `id` to extension `to` (see the module docs).
    /// `context`: the dialplan context asked for (AMI), `None` to skip that check.
    /// `endpoint`: the extension whose channel it is (AMI: the `1002` of `PJSIP/1002-…`), when
    /// known: `leg` must be that extension's (a redirect that kept the callee swapped the
    /// legs, and the caller of this may not know yet); else the other leg is taken if it is
    /// that extension's, and the redirect is refused (not up) if neither is.
    pub(in crate::pbx) fn redirect(
        &mut self,
        now: Instant,
        id: u64,
        leg: Leg,
        endpoint: Option<&str>,
        to: &str,
        context: Option<&str>,
    ) -> Result<(), RedirectError> {
        let call = self.calls.calls.get(&id).ok_or(RedirectError::NoSuchCall)?;
        let leg = match endpoint {
            None => leg,
            Some(ep) => {
                let ext_of = |l: Leg| match l {
                    Leg::A => call.caller.as_str(),
                    Leg::B => call.callee.as_str(),
                };
                if ext_of(leg).eq_ignore_ascii_case(ep) {
                    leg
                } else if ext_of(other(leg)).eq_ignore_ascii_case(ep) {
                    other(leg)
                } else {
                    return Err(RedirectError::NotUp);
                }
            }
        };
        let answered = call.phase == Phase::Answered;
        let up = answered || (call.phase == Phase::Ringing && leg == Leg::A);
        if !up || (answered && call.b.is_none()) {
            return Err(RedirectError::NotUp);
        }
        let kept_ext = match leg {
            Leg::A => call.caller.clone(),
            Leg::B => call.callee.clone(),
        };
        let target = self
            .directory
            .get(to)
            .filter(|e| e.enabled)
            .ok_or_else(|| RedirectError::NotFound(to.to_owned()))?;
        if let Some(ctx) = context {
            let kept_ctx = self.directory.get(&kept_ext).map(|e| e.context.as_str());
            let ok =
                ctx == target.context || Some(ctx) == kept_ctx || GENERIC_CONTEXTS.contains(&ctx);
            if !ok {
                return Err(RedirectError::NoSuchContext {
                    context: ctx.to_owned(),
                    exten: to.to_owned(),
                });
            }
        }
        if to == kept_ext {
            return Err(RedirectError::SameExtension(to.to_owned()));
        }
        if call.offer_pending {
            return Err(RedirectError::Pending);
        }
        // A relayed request's response is built toward the leg it came from: a redirect that
        // swaps or replaces legs would send it to the wrong party.
        let in_flight = self.calls.clients.values().any(|r| match r {
            ClientRole::Relay(x) => x.call == id,
            ClientRole::Refresh(x) => x.0 == id,
            _ => false,
        });
        if in_flight {
            return Err(RedirectError::RequestPending);
        }
        let target_codecs: Vec<String> = if target.codecs.is_empty() {
            crate::pbx::directory::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            target.codecs.clone()
        };
        let to_name = target.name.clone();
        // The codec the kept phone uses now: the one negotiated (answered), or for a ringing
        // caller that already got SDP (early media), the one of that SDP — the next SDP it
        // gets may not move it (the same session as far as it knows).
        let in_use = if answered {
            call.codecs[leg_index(leg)].clone()
        } else {
            call.last_sdp_to[0]
                .as_ref()
                .and_then(|b| SessionDescription::parse(b).ok())
                .and_then(|s| first_codec(&s))
        };
        let no_codec = || RedirectError::NoCommonCodec {
            exten: to.to_owned(),
            codec: in_use.clone().unwrap_or_else(|| "any offered".to_owned()),
        };
        // What the kept phone sends: its last SDP (answered) or the caller's offer (ringing),
        // narrowed to the codec in use (plus telephone-event).
        let sdp = if answered {
            call.xfer.remote_sdp[leg_index(leg)]
                .as_deref()
                .cloned()
                .unwrap_or_else(|| call.a_offer.clone())
        } else {
            call.a_offer.clone()
        };
        let base = match &in_use {
            Some(codec) => filter_offer(&sdp, &[codec]).map_err(|_| no_codec())?,
            None => sdp,
        };
        let offer = filter_offer(&base, &target_codecs).map_err(|_| no_codec())?;
        let (old_caller, old_callee) = (call.caller.clone(), call.callee.clone());
        info!(call = id, ?leg, kept = %kept_ext, to, answered, "redirect");

        // The other party goes.
        if answered {
            let dropped = other(leg);
            let dropped_ext = match dropped {
                Leg::A => old_caller.clone(),
                Leg::B => old_callee.clone(),
            };
            let now_ms = self.unix_ms(now);
            let host = self.presence_host();
            let mut views = self.call_dialogs(id, &dropped_ext, &host, now_ms);
            for v in &mut views {
                v.state = crate::pbx::presence::DialogState::Terminated;
                v.duration = None;
            }
            self.send_bye(now, id, dropped);
            self.presence_call_ended(&dropped_ext, views);
        } else {
            self.cancel_branches(now, id, None);
            if let Some(c) = self.calls.calls.get_mut(&id) {
                // Whatever the target answers differs from the dropped callee's early SDP.
                c.xfer.bump[0] = c.a.tx.is_some() && c.last_sdp_to[0].is_some();
            }
        }
        self.call_event(CallEvent::Redirected {
            call: id,
            kept: leg,
            answered,
            to: to.to_owned(),
            to_name,
            context: context.map(str::to_owned),
        });

        // The call as it goes on: the kept party is leg A, `to` is rung on leg B.
        let ring_deadline = now + self.cfg.ring_timeout;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return Ok(());
        };
        let mut drop_dialogs: Vec<String> =
            call.branches.iter().map(|b| b.call_id.clone()).collect();
        let mut old_branches = std::mem::take(&mut call.branches);
        let mut released_invite = None;
        if answered {
            let b = call.b.take().expect("an answered call has its B leg");
            if leg == Leg::B {
                // The callee's dialog becomes leg A, as if its phone had sent the INVITE:
                // From = its identity (with its tag), To = ours (with our tag).
                let local_tag = NameAddr::parse(&b.from)
                    .ok()
                    .and_then(|n| n.tag().map(str::to_owned))
                    .unwrap_or_default();
                let uri = Uri::parse(&b.target).unwrap_or_else(|_| call.a.invite.uri.clone());
                let mut invite = Request::new(Method::Invite, uri);
                invite.headers.push(HeaderName::From, b.to.clone());
                invite.headers.push(HeaderName::To, b.from.clone());
                invite.headers.push(HeaderName::CallId, b.call_id.clone());
                invite.headers.push(HeaderName::CSeq, "1 INVITE");
                drop_dialogs.retain(|c| *c != b.call_id);
                let old_a = std::mem::replace(
                    &mut call.a,
                    ALeg {
                        peer: b.peer,
                        tx: None,
                        invite,
                        call_id: b.call_id.clone(),
                        local_tag,
                        target: b.target,
                        cseq: b.cseq,
                    },
                );
                drop_dialogs.push(old_a.call_id.clone());
                released_invite = old_a.tx;
                if call.xfer.call_id.is_none() {
                    call.xfer.call_id = Some(old_a.call_id);
                }
                call.xfer.swapped = !call.xfer.swapped;
                if let Some(p) = call.ports.as_mut() {
                    std::mem::swap(&mut p.a, &mut p.b);
                }
                std::mem::swap(&mut call.a_origin, &mut call.b_origin);
                call.retx.swap(0, 1);
                call.last_sdp_to.swap(0, 1);
                call.held.swap(0, 1);
                call.codecs.swap(0, 1);
                call.xfer.remote_sdp.swap(0, 1);
                call.xfer.timer.swap(0, 1);
                call.xfer.allow_update.swap(0, 1);
                call.xfer.bump.swap(0, 1);
            } else {
                drop_dialogs.push(b.call_id);
                // The caller's INVITE was answered long ago: a late CANCEL no longer matches.
                released_invite = call.a.tx.take();
            }
            // The kept dialog's INVITE headers are not the target's business (the target is
            // offered no session timer), and Dialtone's own watchdog belonged to the old pair.
            for h in [
                HeaderName::SessionExpires,
                HeaderName::MinSe,
                HeaderName::Supported,
            ] {
                call.a.invite.headers.remove(&h);
            }
            call.session_deadline = None;
            // RFC 4028: the kept phone still runs the session timer it agreed to with the
            // departed party. When that party was the refresher, nobody would refresh and the
            // phone would hang up when it expires: Dialtone takes the refresher's part.
            call.xfer.refresh =
                call.xfer.timer[0]
                    .filter(|t| t.remote_refreshes)
                    .map(|t| KeptRefresh {
                        secs: t.secs,
                        due: (t.at + Duration::from_secs(t.secs / 2)).max(now),
                        in_flight: false,
                    });
            if let Some(r) = call.xfer.refresh {
                self.calls.timers.push(Reverse((r.due, id)));
            }
            call.xfer.was_answered = true;
            // The kept phone's leg is established with Dialtone as its peer (the caller of a
            // click-to-dial call once it picked up): its offer is the SDP it last got.
            let to_kept = call.last_sdp_to[0]
                .as_ref()
                .and_then(|b| SessionDescription::parse(b).ok())
                .unwrap_or_else(|| base.clone());
            call.origin = match call.origin.take() {
                Some(mut o) if leg == Leg::A => {
                    o.offer = to_kept;
                    o.answered = true;
                    Some(o)
                }
                other_origin => {
                    if let Some(o) = other_origin {
                        old_branches.extend(o.branches);
                    }
                    Some(Box::new(Originate {
                        branches: Vec::new(),
                        offer: to_kept,
                        answered: true,
                        caller_id: None,
                    }))
                }
            };
            call.a_offer = base;
        }
        call.phase = Phase::Ringing;
        call.b_offer = None;
        call.caller = kept_ext.clone();
        call.callee = to.to_owned();
        call.ring_deadline = ring_deadline;
        call.retx[1] = None;
        call.last_sdp_to[1] = None;
        call.held[1] = false;
        call.codecs[1] = None;
        call.xfer.remote_sdp[1] = None;
        call.xfer.timer[1] = None;
        call.xfer.allow_update[1] = false;
        call.xfer.bump[1] = false;
        if let Some(tx) = released_invite {
            self.calls.by_invite.remove(&tx);
        }
        for c in drop_dialogs {
            self.calls.dialogs.remove(&c);
        }
        let a_call_id = self.calls.calls.get(&id).map(|c| c.a.call_id.clone());
        if let Some(c) = a_call_id {
            self.calls.dialogs.insert(c, (id, Leg::A));
        }
        self.retire_branches(old_branches);
        self.calls.unindex(id, [&old_caller, &old_callee]);
        self.calls.index(id, [&kept_ext, to]);
        for ext in [&old_caller, &old_callee, &kept_ext, &to.to_owned()] {
            self.mark_dirty(ext);
        }
        self.calls.timers.push(Reverse((ring_deadline, id)));
        // The dropped party's relay leg (or the cancelled callee's early media) goes to `to`.
        self.emit_media(MediaCommand::ReplaceLeg {
            call: id,
            leg: Leg::B,
        });
        if self.refuses_calls(to) {
            let status = self.cfg.dnd_status;
            self.fail_call(
                now,
                id,
                status,
                Response::default_reason(status),
                HungUpBy::Callee,
            );
            return Ok(());
        }
        self.fork_callee(now, id, offer);
        Ok(())
    }

    /// A relayed INVITE/UPDATE from the phone of `from` got its 2xx (`resp`, to `request`):
    /// the timers both phones agreed to. On a redirected call this also decides whether
    /// Dialtone stays the refresher of the kept phone (leg A): not once the phones have
    /// negotiated with each other — unless the new callee asked for no timer (no
    /// `Session-Expires`, no `Supported: timer`) and the kept phone still expects its peer to
    /// refresh.
    pub(in crate::pbx) fn relayed_timer(
        &mut self,
        now: Instant,
        id: u64,
        from: Leg,
        request: &crate::sip::Headers,
        resp: &crate::sip::Headers,
    ) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        call.xfer.timer[leg_index(from)] = leg_timer(resp, true, now);
        call.xfer.timer[leg_index(other(from))] = leg_timer(resp, false, now);
        if !call.xfer.was_answered {
            return;
        }
        let b_silent =
            request.get(&HeaderName::SessionExpires).is_none() && !supports_timer(request);
        call.xfer.refresh = match call.xfer.timer[0] {
            Some(t) if from == Leg::B && b_silent && t.remote_refreshes => Some(KeptRefresh {
                secs: t.secs,
                due: now + Duration::from_secs(t.secs / 2),
                in_flight: false,
            }),
            _ => None,
        };
        if let Some(r) = call.xfer.refresh {
            self.calls.timers.push(Reverse((r.due, id)));
        }
    }

    /// Dialtone as the refresher of a redirect's kept phone (leg A), when its refresh is due
    /// (RFC 4028 §7.4): an UPDATE without a body if the phone allows UPDATE, else a re-INVITE
    /// with exactly the SDP it last got (same o= version: nothing changes), with
    /// `Session-Expires: N;refresher=uac`. Its 2xx sets the next one (half the interval the
    /// phone answered).
    pub(in crate::pbx) fn send_kept_refresh(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(r) = call.xfer.refresh else {
            return;
        };
        if r.in_flight || r.due > now || !call.a_established() {
            return;
        }
        let sdp = call.last_sdp_to[0].clone();
        let update = call.xfer.allow_update[0] || sdp.is_none();
        if !update && (call.offer_pending || call.retx[0].is_some()) {
            // An INVITE transaction is under way in that dialog: a little later.
            let due = now + REFRESH_RETRY;
            call.xfer.refresh = Some(KeptRefresh { due, ..r });
            self.calls.timers.push(Reverse((due, id)));
            return;
        }
        let method = if update {
            Method::Update
        } else {
            Method::Invite
        };
        let Some(mut req) = self.dialog_request(id, Leg::A, method) else {
            return;
        };
        let h = &mut req.headers;
        h.push(
            HeaderName::SessionExpires,
            format!("{};refresher=uac", r.secs),
        );
        h.push(HeaderName::Supported, "timer");
        h.push(HeaderName::Allow, super::super::ALLOW);
        if let (false, Some(sdp)) = (update, sdp) {
            h.push(HeaderName::ContentType, "application/sdp");
            req.body = sdp;
        }
        let Some((peer, key)) = self.leg_peer(id, Leg::A).zip(branch_key(&req)) else {
            return;
        };
        info!(call = id, method = %req.method, secs = r.secs, "session refresh of the kept phone");
        match self
            .txs
            .send_request(now, key, peer, peer.proto.is_reliable(), req.to_bytes())
        {
            Ok(tx) => {
                self.calls
                    .clients
                    .insert(tx, ClientRole::Refresh(Box::new((id, req))));
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.xfer.refresh = Some(KeptRefresh {
                        in_flight: true,
                        ..r
                    });
                    c.offer_pending |= !update;
                }
            }
            Err(e) => {
                debug!(call = id, error = %e, "session refresh not sent");
                let due = now + REFRESH_RETRY;
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.xfer.refresh = Some(KeptRefresh { due, ..r });
                }
                self.calls.timers.push(Reverse((due, id)));
            }
        }
        self.drain_tx(now);
    }

    /// The kept phone answered Dialtone's session refresh.
    pub(in crate::pbx) fn kept_refresh_response(
        &mut self,
        now: Instant,
        tx: TxId,
        disp: ClientDisposition,
        resp: &Response,
    ) {
        if resp.status < 200 {
            return;
        }
        let Some(ClientRole::Refresh(role)) = self.calls.clients.remove(&tx) else {
            return;
        };
        let (id, sent) = *role;
        let invite = sent.method == Method::Invite;
        let ok = (200..300).contains(&resp.status);
        if disp == ClientDisposition::PassToTuThenAck {
            let ack = build_ack(&sent, resp, None);
            let _ = self.txs.set_ack_for_non_2xx(now, tx, ack.to_bytes());
        } else if invite && ok {
            let target = super::contact_uri(resp.headers.get(&HeaderName::Contact));
            let ack = rebranch(
                build_ack(&sent, resp, target.as_deref()),
                &self.new_branch(),
            );
            if let Some(peer) = self.leg_peer(id, Leg::A) {
                self.transmit(peer, ack.to_bytes());
            }
        }
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if Some(call.a.call_id.as_str()) != sent.call_id() {
            return;
        }
        if invite {
            call.offer_pending = false;
        }
        let secs = call.xfer.refresh.map_or(1800, |r| r.secs);
        let retry = |call: &mut super::Call, secs: u64, due: Instant| {
            call.xfer.refresh = Some(KeptRefresh {
                secs,
                due,
                in_flight: false,
            });
        };
        match resp.status {
            200..=299 => {
                let t = leg_timer(&resp.headers, false, now);
                call.xfer.timer[0] = t;
                // The phone may have taken the refresher's part, or dropped the timer.
                call.xfer.refresh = t.filter(|t| t.remote_refreshes).map(|t| KeptRefresh {
                    secs: t.secs,
                    due: now + Duration::from_secs(t.secs / 2),
                    in_flight: false,
                });
                if let Some(r) = call.xfer.refresh {
                    self.calls.timers.push(Reverse((r.due, id)));
                }
                self.arm_session_timer(now, id, &resp.headers);
            }
            422 => {
                // Session Interval Too Small: again at once with the phone's Min-SE.
                let min = resp
                    .headers
                    .get(&HeaderName::MinSe)
                    .and_then(|v| v.split(';').next())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(secs);
                retry(call, secs.max(min), now);
                self.send_kept_refresh(now, id);
            }
            405 | 501 if !invite => {
                // UPDATE after all not welcome: a re-INVITE.
                call.xfer.allow_update[0] = false;
                retry(call, secs, now);
                self.send_kept_refresh(now, id);
            }
            408 | 481 => self.kept_refresh_failed(now, id, resp.status),
            491 => {
                retry(call, secs, now + REFRESH_RETRY);
                self.calls.timers.push(Reverse((now + REFRESH_RETRY, id)));
            }
            status => {
                // Tried again (the phone ends the session itself if none gets through).
                let due = now + Duration::from_secs((secs / 10).max(5));
                debug!(call = id, status, "session refresh refused");
                retry(call, secs, due);
                self.calls.timers.push(Reverse((due, id)));
            }
        }
        self.drain_tx(now);
    }

    /// Dialtone's session refresh got no answer (Timer B/F).
    pub(in crate::pbx) fn kept_refresh_timed_out(&mut self, now: Instant, id: u64, sent: &Request) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if Some(call.a.call_id.as_str()) != sent.call_id() {
            return;
        }
        if sent.method == Method::Invite {
            call.offer_pending = false;
        }
        self.kept_refresh_failed(now, id, 408);
    }

    /// RFC 4028 §10: a refresh answered 408/481 or timed out — the session is gone: BYE.
    fn kept_refresh_failed(&mut self, now: Instant, id: u64, status: u16) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        info!(
            call = id,
            status, "the kept phone did not take the session refresh: hanging up"
        );
        call.xfer.refresh = None;
        if call.phase == Phase::Answered {
            self.send_bye(now, id, Leg::A);
            self.send_bye(now, id, Leg::B);
            self.end_call(now, id, Disposition::Answered, 408, HungUpBy::System);
        } else {
            self.fail_call(now, id, 408, "Request Timeout", HungUpBy::System);
        }
    }

    /// INVITE branches a redirect took out of their call: a pending one becomes an orphan (its
    /// final response is ACKed, a late 2xx hung up), a finished one is forgotten.
    fn retire_branches(&mut self, branches: Vec<Branch>) {
        for b in branches {
            let Some(tx) = b.tx else { continue };
            if !self.calls.clients.contains_key(&tx) {
                continue;
            }
            if b.final_status.is_none() {
                self.calls.clients.insert(tx, ClientRole::Orphan);
                self.calls.orphans.insert(tx, (b.invite, b.peer));
            } else {
                self.calls.clients.remove(&tx);
            }
        }
    }
}
