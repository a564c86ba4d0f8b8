//! INVITE server transaction (RFC 3261 §17.2.1, figure 7 as amended by RFC 6026 figure 7).
//!
//! ```text
//! Proceeding --2xx--> Accepted (Timer L; absorbs INVITE retransmissions) --L--> Terminated
//!     \--300-699--> Completed (Timer G retransmits, Timer H → Timeout)
//!                      --ACK--> Confirmed (Timer I; absorbs ACKs) --I--> Terminated
//! ```

use bytes::Bytes;

use super::{Ctx, ServerDisposition, Step, Timer, Tx, TxError, TxState};

/// The INVITE was retransmitted: absorb it, re-sending the last response if there is one (the
/// last provisional in Proceeding, the final in Completed, the last 2xx in Accepted). Nothing is
/// sent in Confirmed.
pub(super) fn on_retransmission<D: Clone>(
    tx: &mut Tx<D>,
    source: &D,
    cx: &mut Ctx<'_, D>,
) -> (ServerDisposition, Step) {
    if tx.state != TxState::Confirmed
        && let Some(bytes) = &tx.msg
    {
        cx.transmit(tx.id, source, bytes);
    }
    (ServerDisposition::Retransmission(tx.id), Step::Keep)
}

/// An ACK matched this transaction.
pub(super) fn on_ack<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) -> (ServerDisposition, Step) {
    match tx.state {
        TxState::Completed => {
            cx.disarm_all(tx);
            tx.msg = None;
            tx.state = TxState::Confirmed;
            if tx.reliable {
                // Timer I = 0.
                return (ServerDisposition::AckAbsorbed(tx.id), Step::Terminate);
            }
            cx.arm_timeout(tx, Timer::I, cx.cfg.t4);
            (ServerDisposition::AckAbsorbed(tx.id), Step::Keep)
        }
        TxState::Confirmed => (ServerDisposition::AckAbsorbed(tx.id), Step::Keep),
        // Proceeding (no final yet) or Accepted (RFC 6026: passed on): not ours to absorb.
        _ => (ServerDisposition::AckNoTx, Step::Keep),
    }
}

pub(super) fn respond<D: Clone>(
    tx: &mut Tx<D>,
    status: u16,
    bytes: Bytes,
    cx: &mut Ctx<'_, D>,
) -> Result<Step, TxError> {
    match (tx.state, status) {
        (TxState::Proceeding, 100..=199) => {
            tx.msg = Some(bytes);
            cx.send_msg(tx);
        }
        (TxState::Proceeding | TxState::Accepted, 200..=299) => {
            tx.msg = Some(bytes);
            cx.send_msg(tx);
            if tx.state == TxState::Proceeding {
                tx.state = TxState::Accepted;
                cx.arm_timeout(tx, Timer::L, cx.cfg.t1_x64());
            }
        }
        (TxState::Proceeding, _) => {
            tx.msg = Some(bytes);
            cx.send_msg(tx);
            tx.state = TxState::Completed;
            if !tx.reliable {
                cx.arm_retransmit(tx, cx.cfg.t1);
            }
            cx.arm_timeout(tx, Timer::H, cx.cfg.t1_x64());
        }
        (state, _) => return Err(TxError::InvalidState { tx: tx.id, state }),
    }
    Ok(Step::Keep)
}

/// Timer G: retransmit the final response, next interval min(2*interval, T2).
pub(super) fn on_timer_g<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) -> Step {
    if tx.state == TxState::Completed {
        cx.send_msg(tx);
        let next = (tx.retransmit_interval * 2).min(cx.cfg.t2);
        cx.arm_retransmit(tx, next);
    }
    Step::Keep
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    const BRANCH: &str = "z9hG4bKinv";

    fn invite(h: &mut Harness) -> TxId {
        h.new_server(BRANCH, TxMethod::Invite)
    }

    fn request(h: &mut Harness, at: Duration, method: TxMethod) -> ServerDisposition {
        h.run_until(at);
        let now = h.at(at);
        h.layer.handle_request(now, skey(BRANCH, method), false, 2)
    }

    #[test]
    fn timer_g_is_capped_at_t2_until_timer_h_times_out() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        assert_eq!(h.layer.state(tx), Some(TxState::Proceeding));
        assert_eq!(timers_of(&h.layer, tx), vec![], "no timer in Proceeding");
        h.respond(tx, 486);
        assert_eq!(h.layer.state(tx), Some(TxState::Completed));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::G, Timer::H]);
        h.run_until(secs(40));
        // 0 = the response itself, then G after 0.5, 1, 2, 4, 4, ... s; H at 32 s.
        assert_eq!(
            h.sent_at(),
            vec![
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert!(h.sent_bytes().iter().all(|m| m == &b("486")));
        assert_eq!(h.timeouts(), vec![tx], "no ACK: the TU is told");
        assert_eq!(h.timeout_times(), vec![32_000], "Timer H = 64*T1");
        assert!(
            h.events
                .contains(&TxEvent::Terminated(tx, TxKind::InviteServer))
        );
    }

    #[test]
    fn ack_for_non_2xx_is_absorbed_and_timer_i_absorbs_more() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        h.respond(tx, 404);
        assert_eq!(
            request(&mut h, ms(700), TxMethod::Ack),
            ServerDisposition::AckAbsorbed(tx)
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Confirmed));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::I]);
        // Retransmitted ACK and INVITE in Confirmed: absorbed, nothing sent.
        assert_eq!(
            request(&mut h, secs(1), TxMethod::Ack),
            ServerDisposition::AckAbsorbed(tx)
        );
        assert_eq!(
            request(&mut h, secs(2), TxMethod::Invite),
            ServerDisposition::Retransmission(tx)
        );
        h.run_until(secs(40));
        // The 404 and its one retransmission (G at 0.5 s); G stopped by the ACK.
        assert_eq!(h.sent_at(), vec![0, 500]);
        // Timer I = T4 = 5 s after the ACK; not a failure.
        assert_eq!(h.terminated_times(), vec![5_700]);
        assert!(h.timeouts().is_empty());
        // After termination an ACK matches nothing.
        assert_eq!(
            request(&mut h, secs(41), TxMethod::Ack),
            ServerDisposition::AckNoTx
        );
    }

    #[test]
    fn retransmitted_invite_resends_last_response() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        // Before any response: absorbed, nothing to re-send.
        assert_eq!(
            request(&mut h, ms(100), TxMethod::Invite),
            ServerDisposition::Retransmission(tx)
        );
        assert!(h.sent.is_empty());
        h.respond(tx, 180);
        assert_eq!(
            request(&mut h, ms(600), TxMethod::Invite),
            ServerDisposition::Retransmission(tx)
        );
        h.respond_at(secs(1), tx, 603, "603").unwrap();
        assert_eq!(
            request(&mut h, ms(1200), TxMethod::Invite),
            ServerDisposition::Retransmission(tx)
        );
        h.drain();
        let got: Vec<_> = h
            .sent
            .iter()
            .map(|s| (s.at.as_millis() as u64, s.dest, s.bytes.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (100, 1, b("180")),
                (600, 2, b("180")), // re-sent to the retransmission's source
                (1000, 1, b("603")),
                (1200, 2, b("603")),
            ]
        );
        // An ACK in Proceeding is not absorbed.
        let other = h.new_server("z9hG4bKother", TxMethod::Invite);
        assert_eq!(
            h.layer
                .handle_request(h.t0, skey("z9hG4bKother", TxMethod::Ack), false, 1),
            ServerDisposition::AckNoTx
        );
        assert_eq!(h.layer.state(other), Some(TxState::Proceeding));
    }

    #[test]
    fn timer_l_accepted_absorbs_invite_retransmissions() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        h.respond(tx, 100);
        h.respond_at(secs(1), tx, 200, "200").unwrap();
        assert_eq!(h.layer.state(tx), Some(TxState::Accepted));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::L]);
        // Retransmitted INVITE: absorbed (not New → not passed to the TU); the 2xx is re-sent.
        assert_eq!(
            request(&mut h, secs(2), TxMethod::Invite),
            ServerDisposition::Retransmission(tx)
        );
        // The TU retransmits the 2xx itself (§13.3.1.4): passed to the transport.
        h.respond_at(secs(3), tx, 200, "200").unwrap();
        // A non-2xx after a 2xx is refused.
        assert_eq!(
            h.respond_at(secs(3), tx, 500, "500"),
            Err(TxError::InvalidState {
                tx,
                state: TxState::Accepted
            })
        );
        // RFC 6026: an ACK matching the Accepted transaction is passed on, not absorbed.
        assert_eq!(
            request(&mut h, secs(4), TxMethod::Ack),
            ServerDisposition::AckNoTx
        );
        h.run_until(secs(40));
        assert_eq!(h.sent_at(), vec![0, 1000, 2000, 3000]);
        // Timer L = 64*T1 after the first 2xx, no Timeout event.
        assert_eq!(h.terminated_times(), vec![33_000]);
        assert!(h.timeouts().is_empty());
        // A retransmitted INVITE after Timer L is a new transaction.
        assert!(matches!(
            request(&mut h, secs(41), TxMethod::Invite),
            ServerDisposition::New(_)
        ));
    }

    #[test]
    fn cancel_matches_its_invite_and_has_its_own_transaction() {
        let mut h = Harness::new();
        let inv = invite(&mut h);
        h.respond(inv, 180);
        let ServerDisposition::CancelFor { cancel, invite } =
            request(&mut h, secs(1), TxMethod::Cancel)
        else {
            panic!("expected CancelFor")
        };
        assert_eq!(invite, Some(inv));
        assert_ne!(cancel, inv);
        assert_eq!(h.layer.kind(cancel), Some(TxKind::NonInviteServer));
        assert_eq!(h.layer.state(cancel), Some(TxState::Trying));
        assert_eq!(
            h.layer.invite_tx_for(&skey(BRANCH, TxMethod::Cancel)),
            Some(inv)
        );
        assert_eq!(
            h.layer.server_tx_for(&skey(BRANCH, TxMethod::Cancel)),
            Some(cancel)
        );
        assert_eq!(
            h.layer.server_tx_for(&skey(BRANCH, TxMethod::Ack)),
            Some(inv)
        );
        // The TU answers 200 to the CANCEL and 487 to the INVITE.
        h.respond_at(secs(1), cancel, 200, "200c").unwrap();
        h.respond_at(secs(1), inv, 487, "487").unwrap();
        // A retransmitted CANCEL hits the CANCEL transaction and gets its 200 again.
        assert_eq!(
            request(&mut h, ms(1200), TxMethod::Cancel),
            ServerDisposition::Retransmission(cancel)
        );
        h.drain();
        assert_eq!(h.sent.last().map(|s| s.bytes.clone()), Some(b("200c")));
        // A CANCEL from another sent-by does not match the INVITE.
        let other = h.layer.handle_request(
            h.at(secs(2)),
            TxKey::server(BRANCH, "10.9.9.9:5060", TxMethod::Cancel),
            false,
            3,
        );
        assert!(matches!(
            other,
            ServerDisposition::CancelFor { invite: None, .. }
        ));
        // A CANCEL with no INVITE at all.
        let lone = h.layer.handle_request(
            h.at(secs(2)),
            skey("z9hG4bKnone", TxMethod::Cancel),
            false,
            3,
        );
        assert!(matches!(
            lone,
            ServerDisposition::CancelFor { invite: None, .. }
        ));
    }

    #[test]
    fn rfc2543_fallback_keys_match_ack_to_invite() {
        let mut h = Harness::new();
        let fb = || "a84b4c76e66710@pc33;314159;1928301774".to_owned();
        let key = |m| TxKey::server_or_fallback(None, "pc33.atlanta.com", m, fb);
        let ServerDisposition::New(tx) =
            h.layer
                .handle_request(h.t0, key(TxMethod::Invite), false, 1)
        else {
            panic!()
        };
        assert_eq!(
            h.layer
                .handle_request(h.t0, key(TxMethod::Invite), false, 1),
            ServerDisposition::Retransmission(tx)
        );
        h.layer.respond(h.t0, tx, 486, b("486")).unwrap();
        assert_eq!(
            h.layer.handle_request(h.t0, key(TxMethod::Ack), false, 1),
            ServerDisposition::AckAbsorbed(tx)
        );
    }
}
