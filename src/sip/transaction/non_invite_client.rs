//! Non-INVITE client transaction (RFC 3261 §17.1.2, figure 6).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed (Timer K) --K--> Terminated
//!   \----------------200-699-------------/
//! Timer E retransmits (T1 doubling, capped at T2; every T2 in Proceeding),
//! Timer F (64*T1) in Trying/Proceeding → Timeout.
//! ```

use super::{ClientDisposition, Ctx, Step, Timer, Tx, TxState};

/// Trying: send the request, arm E (unreliable only) and F.
pub(super) fn start<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) {
    cx.send_msg(tx);
    if !tx.reliable {
        cx.arm_retransmit(tx, cx.cfg.t1);
    }
    cx.arm_timeout(tx, Timer::F, cx.cfg.t1_x64());
}

/// Timer E: retransmit; next interval min(2*interval, T2) in Trying, T2 in Proceeding.
pub(super) fn on_timer_e<D: Clone>(tx: &mut Tx<D>, cx: &mut Ctx<'_, D>) -> Step {
    match tx.state {
        TxState::Trying => {
            cx.send_msg(tx);
            let next = (tx.retransmit_interval * 2).min(cx.cfg.t2);
            cx.arm_retransmit(tx, next);
        }
        TxState::Proceeding => {
            cx.send_msg(tx);
            cx.arm_retransmit(tx, cx.cfg.t2);
        }
        _ => {}
    }
    Step::Keep
}

pub(super) fn on_response<D: Clone>(
    tx: &mut Tx<D>,
    status: u16,
    cx: &mut Ctx<'_, D>,
) -> (ClientDisposition, Step) {
    match (tx.state, status) {
        (TxState::Trying | TxState::Proceeding, 100..=199) => {
            // Timer E keeps its current deadline and continues every T2 from then on.
            tx.state = TxState::Proceeding;
            (ClientDisposition::PassToTu, Step::Keep)
        }
        (TxState::Trying | TxState::Proceeding, _) => {
            cx.disarm_all(tx);
            tx.msg = None;
            tx.state = TxState::Completed;
            if tx.reliable {
                // Timer K = 0.
                return (ClientDisposition::PassToTu, Step::Terminate);
            }
            cx.arm_timeout(tx, Timer::K, cx.cfg.t4);
            (ClientDisposition::PassToTu, Step::Keep)
        }
        // Completed: response retransmissions are absorbed.
        _ => (ClientDisposition::Absorbed, Step::Keep),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    fn register(h: &mut Harness) -> TxId {
        h.layer
            .send_request(
                h.t0,
                ckey("z9hG4bKreg", TxMethod::Register),
                1,
                false,
                b("REG"),
            )
            .unwrap()
    }

    fn resp(h: &mut Harness, at: Duration, status: u16) -> Option<(TxId, ClientDisposition)> {
        h.run_until(at);
        let now = h.at(at);
        h.layer
            .handle_response(now, &ckey("z9hG4bKreg", TxMethod::Register), status)
    }

    #[test]
    fn timer_e_is_capped_at_t2_until_timer_f_times_out() {
        let mut h = Harness::new();
        let tx = register(&mut h);
        assert_eq!(h.layer.state(tx), Some(TxState::Trying));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::E, Timer::F]);
        h.run_until(secs(40));
        // Intervals 0.5, 1, 2, 4, 4, 4, ... (capped at T2 = 4 s); F at 32 s.
        assert_eq!(
            h.sent_at(),
            vec![
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(h.timeouts(), vec![tx]);
        assert_eq!(h.timeout_times(), vec![32_000], "Timer F = 64*T1");
        assert!(
            h.events
                .contains(&TxEvent::Terminated(tx, TxKind::NonInviteClient))
        );
        assert!(h.layer.is_empty());
    }

    #[test]
    fn timer_e_switches_to_t2_after_a_provisional() {
        let mut h = Harness::new();
        let tx = register(&mut h);
        // E fired at 0.5 s (next due 1.5 s); a 100 Trying arrives at 0.7 s.
        assert_eq!(
            resp(&mut h, ms(700), 100),
            Some((tx, ClientDisposition::PassToTu))
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Proceeding));
        h.run_until(secs(40));
        // 1.5 s as already scheduled, then every T2 = 4 s; F still ends it at 32 s.
        assert_eq!(
            h.sent_at(),
            vec![0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
        );
        assert_eq!(h.timeouts(), vec![tx]);
    }

    #[test]
    fn timer_k_absorbs_final_retransmissions() {
        let mut h = Harness::new();
        let tx = register(&mut h);
        assert_eq!(
            resp(&mut h, ms(600), 180),
            Some((tx, ClientDisposition::PassToTu))
        );
        assert_eq!(
            resp(&mut h, ms(800), 181),
            Some((tx, ClientDisposition::PassToTu)),
            "every provisional goes to the TU"
        );
        assert_eq!(
            resp(&mut h, secs(2), 401),
            Some((tx, ClientDisposition::PassToTu))
        );
        assert_eq!(h.layer.state(tx), Some(TxState::Completed));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::K]);
        assert_eq!(
            resp(&mut h, secs(3), 401),
            Some((tx, ClientDisposition::Absorbed))
        );
        assert_eq!(
            resp(&mut h, secs(4), 200),
            Some((tx, ClientDisposition::Absorbed))
        );
        h.run_until(secs(40));
        // Only the request and the retransmissions at 0.5 and 1.5 s; nothing after the final.
        assert_eq!(h.sent_at(), vec![0, 500, 1500]);
        // Timer K = T4 = 5 s after the final response, no Timeout event.
        assert_eq!(h.terminated_times(), vec![7_000]);
        assert!(h.timeouts().is_empty());
    }

    #[test]
    fn cancel_is_its_own_client_transaction() {
        let mut h = Harness::new();
        let inv = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKx", TxMethod::Invite), 1, false, b("INV"))
            .unwrap();
        let can = h
            .layer
            .send_request(h.t0, ckey("z9hG4bKx", TxMethod::Cancel), 1, false, b("CAN"))
            .unwrap();
        assert_ne!(inv, can);
        assert_eq!(h.layer.kind(can), Some(TxKind::NonInviteClient));
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKx", TxMethod::Cancel), 200),
            Some((can, ClientDisposition::PassToTu))
        );
        assert_eq!(
            h.layer
                .handle_response(h.t0, &ckey("z9hG4bKx", TxMethod::Invite), 487),
            Some((inv, ClientDisposition::PassToTuThenAck))
        );
    }
}
