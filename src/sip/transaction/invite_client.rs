//! INVITE client transaction (RFC 3261 §17.1.1, figure 5 as amended by RFC 6026 figure 5).
//!
//! ```text
//! Calling --1xx--> Proceeding --2xx--> Accepted (Timer M) --M--> Terminated
//!    |  (Timer A retransmits,  \--300-699--> Completed (Timer D, ACK) --D--> Terminated
//!    |   Timer B → Timeout)
//! ```

use bytes::Bytes;

use super::{ClientDisposition, Ctx, Step, Timer, Tx, TxError, TxState};

/// Calling: send the INVITE, arm A (unreliable only) and B.
pub(super) fn start<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) {
    cx.send_msg(tx);
    if !tx.reliable {
        cx.arm_retransmit(tx, cx.cfg.t1);
    }
    cx.arm_timeout(tx, Timer::B, cx.cfg.t1_x64());
}

/// Timer A: retransmit and double the interval (no cap, §17.1.1.2).
pub(super) fn on_timer_a<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) -> Step {
    if tx.state == TxState::Calling {
        cx.send_msg(tx);
        let next = tx.retransmit_interval * 2;
        cx.arm_retransmit(tx, next);
    }
    Step::Keep
}

pub(super) fn on_response<D: Clone>(
    tx: &mut Tx<D>,
    status: u16,
    cx: &mut Ctx<'_, D>,
) -> (ClientDisposition, Step) {
    match (tx.state, status) {
        (TxState::Calling | TxState::Proceeding, 100..=199) => {
            if tx.state == TxState::Calling {
                // No more retransmissions; Timer B only guards Calling.
                cx.disarm_all(tx);
                tx.state = TxState::Proceeding;
            }
            (ClientDisposition::PassToTu, Step::Keep)
        }
        (TxState::Calling | TxState::Proceeding, 200..=299) => {
            cx.disarm_all(tx);
            tx.msg = None;
            tx.state = TxState::Accepted;
            cx.arm_timeout(tx, Timer::M, cx.cfg.t1_x64());
            (ClientDisposition::PassToTu, Step::Keep)
        }
        (TxState::Calling | TxState::Proceeding, _) => {
            cx.disarm_all(tx);
            // The INVITE is no longer needed; the slot will hold the ACK.
            tx.msg = None;
            tx.state = TxState::Completed;
            // Reliable: D = 0, fires at the next handle_timeout unless the ACK comes first.
            let d = if tx.reliable {
                std::time::Duration::ZERO
            } else {
                cx.cfg.timer_d()
            };
            cx.arm_timeout(tx, Timer::D, d);
            (ClientDisposition::PassToTuThenAck, Step::Keep)
        }
        // RFC 6026: every 2xx (retransmission or another fork) goes to the TU, which ACKs it.
        (TxState::Accepted, 200..=299) => (ClientDisposition::PassToTu, Step::Keep),
        (TxState::Completed, 300..=699) => {
            // Retransmitted final response: re-send the ACK (§17.1.1.2).
            cx.send_msg(tx);
            (ClientDisposition::Absorbed, Step::Keep)
        }
        _ => (ClientDisposition::Absorbed, Step::Keep),
    }
}

pub(super) fn set_ack<D: Clone>(
    tx: &mut Tx<D>,
    ack: Bytes,
    cx: &mut Ctx<'_, D>,
) -> Result<Step, TxError> {
    if tx.state != TxState::Completed {
        return Err(TxError::InvalidState {
            tx: tx.id,
            state: tx.state,
        });
    }
    tx.msg = Some(ack);
    cx.send_msg(tx);
    Ok(if tx.reliable {
        Step::Terminate
    } else {
        Step::Keep
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    fn invite(h: &mut Harness) -> TxId {
        h.layer
            .send_request(
                h.t0,
                ckey("z9hG4bKinv", TxMethod::Invite),
                1,
                false,
                b("INVITE"),
            )
            .unwrap()
    }

    fn resp(h: &mut Harness, at: Duration, status: u16) -> Option<(TxId, ClientDisposition)> {
        let now = h.at(at);
        h.run_until(at);
        h.layer
            .handle_response(now, &ckey("z9hG4bKinv", TxMethod::Invite), status)
    }

    #[test]
    fn timer_a_doubles_until_timer_b_times_out() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        assert_eq!(h.layer.state(tx), Some(TxState::Calling));
        assert_eq!(
            timers_of(&h.layer, tx),
            vec![Timer::A, Timer::B],
            "A and B armed over UDP"
        );
        h.run_until(secs(40));
        // Initial send at 0, then A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (intervals 0.5, 1, 2, 4,
        // 8, 16 s); B at 32 s ends it.
        assert_eq!(h.sent_at(), vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert!(h.sent_bytes().iter().all(|m| m == &b("INVITE")));
        assert_eq!(h.timeouts(), vec![tx]);
        assert_eq!(h.timeout_times(), vec![32_000], "Timer B = 64*T1 = 32 s");
        assert_eq!(h.layer.state(tx), None);
        assert!(
            h.events
                .contains(&TxEvent::Terminated(tx, TxKind::InviteClient))
        );
    }

    #[test]
    fn provisional_stops_timer_a_and_b() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        assert_eq!(
            resp(&mut h, ms(700), 100),
            Some((tx, ClientDisposition::PassToTu))
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Proceeding));
        assert_eq!(timers_of(&h.layer, tx), vec![]);
        assert_eq!(
            resp(&mut h, ms(900), 180),
            Some((tx, ClientDisposition::PassToTu))
        );
        h.run_until(secs(100));
        assert_eq!(h.sent_at(), vec![0, 500]);
        assert!(h.timeouts().is_empty());
        assert_eq!(h.layer.state(tx), Some(TxState::Proceeding));
    }

    #[test]
    fn timer_d_absorbs_final_retransmissions_and_resends_the_ack() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        resp(&mut h, ms(100), 180);
        assert_eq!(
            resp(&mut h, secs(2), 486),
            Some((tx, ClientDisposition::PassToTuThenAck))
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Completed));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::D]);
        h.layer
            .set_ack_for_non_2xx(h.at(secs(2)), tx, b("ACK"))
            .unwrap();
        // Retransmitted 486: absorbed, ACK re-sent by the layer.
        assert_eq!(
            resp(&mut h, secs(3), 486),
            Some((tx, ClientDisposition::Absorbed))
        );
        assert_eq!(
            resp(&mut h, secs(5), 486),
            Some((tx, ClientDisposition::Absorbed))
        );
        // Other responses in Completed are absorbed without an ACK.
        assert_eq!(
            resp(&mut h, secs(6), 180),
            Some((tx, ClientDisposition::Absorbed))
        );
        h.run_until(secs(60));
        assert_eq!(h.sent_at(), vec![0, 2000, 3000, 5000]);
        assert_eq!(
            h.sent_bytes(),
            vec![b("INVITE"), b("ACK"), b("ACK"), b("ACK")]
        );
        // Timer D = 32 s after the final response; no Timeout event (it is not a failure).
        assert_eq!(h.terminated_times(), vec![34_000]);
        assert!(h.timeouts().is_empty());
        assert_eq!(
            h.layer.set_ack_for_non_2xx(h.at(secs(60)), tx, b("ACK")),
            Err(TxError::UnknownTransaction(tx))
        );
    }

    #[test]
    fn ack_can_only_be_set_in_completed() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        assert_eq!(
            h.layer.set_ack_for_non_2xx(h.t0, tx, b("ACK")),
            Err(TxError::InvalidState {
                tx,
                state: TxState::Calling
            })
        );
    }

    #[test]
    fn timer_m_passes_2xx_retransmissions_to_the_tu() {
        let mut h = Harness::new();
        let tx = invite(&mut h);
        assert_eq!(
            resp(&mut h, secs(1), 200),
            Some((tx, ClientDisposition::PassToTu))
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Accepted));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::M]);
        // Retransmitted (or forked) 2xx: passed again, the TU re-ACKs.
        assert_eq!(
            resp(&mut h, secs(2), 200),
            Some((tx, ClientDisposition::PassToTu))
        );
        // Late provisional or error: absorbed.
        assert_eq!(
            resp(&mut h, secs(3), 180),
            Some((tx, ClientDisposition::Absorbed))
        );
        assert_eq!(
            resp(&mut h, secs(3), 503),
            Some((tx, ClientDisposition::Absorbed))
        );
        h.run_until(secs(40));
        // Only the initial INVITE and the A retransmission at 0.5 s went out; no ACK by the layer.
        assert_eq!(h.sent_at(), vec![0, 500]);
        // Timer M = 64*T1 after the first 2xx, no Timeout event.
        assert_eq!(h.terminated_times(), vec![33_000]);
        assert!(h.timeouts().is_empty());
        assert_eq!(
            h.layer
                .handle_response(h.at(secs(40)), &ckey("z9hG4bKinv", TxMethod::Invite), 200),
            None,
            "stray 2xx after Timer M"
        );
    }
}
