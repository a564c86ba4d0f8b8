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
//! * Anything else (a ringing callee, a caller's phone still ringing for an originate) is not
//!   up: refused, nothing changes. So is an unknown target, a context that does not hold it,
//!   or a target whose codecs exclude the codec in use.
//!
//! The call keeps its engine id and its CDR: one record, from the kept party to the final
//! callee, answered when the first part was (start and answer times of the first part).

use std::cmp::Reverse;
use std::time::Instant;

use tracing::info;

use super::super::Pbx;
use super::{
    ALeg, Branch, CallEvent, ClientRole, HungUpBy, Leg, MediaCommand, Originate, Phase, leg_index,
    other,
};
use crate::sdp::{SessionDescription, filter_offer};
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
}

/// Contexts accepted for any extension besides its own and the kept party's.
const GENERIC_CONTEXTS: [&str; 2] = ["default", "from-internal"];

impl Pbx {
    /// Redirect the channel of `leg` of call `id` to extension `to` (see the module docs).
    /// `context`: the dialplan context asked for (AMI), `None` to skip that check.
    pub(in crate::pbx) fn redirect(
        &mut self,
        now: Instant,
        id: u64,
        leg: Leg,
        to: &str,
        context: Option<&str>,
    ) -> Result<(), RedirectError> {
        let call = self.calls.calls.get(&id).ok_or(RedirectError::NoSuchCall)?;
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
        let target_codecs: Vec<String> = if target.codecs.is_empty() {
            crate::pbx::directory::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            target.codecs.clone()
        };
        let to_name = target.name.clone();
        // What the kept phone sends: its last SDP, narrowed to the codec in use (answered),
        // or the caller's offer as it stands (ringing).
        let base = if answered {
            let sdp = call.xfer.remote_sdp[leg_index(leg)]
                .as_deref()
                .cloned()
                .unwrap_or_else(|| call.a_offer.clone());
            match &call.codecs[leg_index(leg)] {
                Some(codec) => {
                    filter_offer(&sdp, &[codec]).map_err(|_| RedirectError::NoCommonCodec {
                        exten: to.to_owned(),
                        codec: codec.clone(),
                    })?
                }
                None => sdp,
            }
        } else {
            call.a_offer.clone()
        };
        let offer =
            filter_offer(&base, &target_codecs).map_err(|_| RedirectError::NoCommonCodec {
                exten: to.to_owned(),
                codec: call.codecs[leg_index(leg)]
                    .clone()
                    .unwrap_or_else(|| "any offered".to_owned()),
            })?;
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
            } else {
                drop_dialogs.push(b.call_id);
                // The caller's INVITE was answered long ago: a late CANCEL no longer matches.
                released_invite = call.a.tx.take();
            }
            // The kept dialog's session timer belonged to the old session.
            for h in [
                HeaderName::SessionExpires,
                HeaderName::MinSe,
                HeaderName::Supported,
            ] {
                call.a.invite.headers.remove(&h);
            }
            call.session_deadline = None;
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
