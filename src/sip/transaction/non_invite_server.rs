//! Non-INVITE server transaction (RFC 3261 §17.2.2, figure 8).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed (Timer J) --J--> Terminated
//!   \----------------200-699-------------/
//! ```
//! No retransmit timer: responses are re-sent only when the request is retransmitted.

use bytes::Bytes;

use super::{Ctx, ServerDisposition, Step, Timer, Tx, TxError, TxState};

/// The request was retransmitted: absorb it; in Proceeding/Completed re-send the last response.
pub(super) fn on_retransmission<D: Clone>(
    tx: &mut Tx<D>,
    source: &D,
    cx: &mut Ctx<'_, D>,
) -> (ServerDisposition, Step) {
    if let Some(bytes) = &tx.msg {
        cx.transmit(tx.id, source, bytes);
    }
    (ServerDisposition::Retransmission(tx.id), Step::Keep)
}

pub(super) fn respond<D: Clone>(
    tx: &mut Tx<D>,
    status: u16,
    bytes: Bytes,
    cx: &mut Ctx<'_, D>,
) -> Result<Step, TxError> {
    match (tx.state, status) {
        (TxState::Trying | TxState::Proceeding, 100..=199) => {
            tx.msg = Some(bytes);
            cx.send_msg(tx);
            tx.state = TxState::Proceeding;
            Ok(Step::Keep)
        }
        (TxState::Trying | TxState::Proceeding, _) => {
            tx.msg = Some(bytes);
            cx.send_msg(tx);
            tx.state = TxState::Completed;
            if tx.reliable {
                // Timer J = 0.
                return Ok(Step::Terminate);
            }
            cx.arm_timeout(tx, Timer::J, cx.cfg.t1_x64());
            Ok(Step::Keep)
        }
        (state, _) => Err(TxError::InvalidState { tx: tx.id, state }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    const BRANCH: &str = "z9hG4bKreg";

    fn request(h: &mut Harness, at: Duration) -> ServerDisposition {
        h.run_until(at);
        let now = h.at(at);
        h.layer
            .handle_request(now, skey(BRANCH, TxMethod::Register), false, 2)
    }

    #[test]
    fn timer_j_absorbs_retransmissions_and_resends_the_final_response() {
        let mut h = Harness::new();
        let tx = h.new_server(BRANCH, TxMethod::Register);
        assert_eq!(h.layer.state(tx), Some(TxState::Trying));
        // Retransmission in Trying: absorbed, nothing to send.
        assert_eq!(
            request(&mut h, ms(500)),
            ServerDisposition::Retransmission(tx)
        );
        assert!(h.sent.is_empty());
        h.respond_at(secs(1), tx, 100, "100").unwrap();
        assert_eq!(h.layer.state(tx), Some(TxState::Proceeding));
        assert_eq!(
            request(&mut h, ms(1500)),
            ServerDisposition::Retransmission(tx)
        );
        h.respond_at(secs(2), tx, 200, "200").unwrap();
        assert_eq!(h.layer.state(tx), Some(TxState::Completed));
        assert_eq!(timers_of(&h.layer, tx), vec![Timer::J]);
        assert_eq!(
            request(&mut h, ms(3500)),
            ServerDisposition::Retransmission(tx)
        );
        assert_eq!(
            h.respond_at(secs(4), tx, 200, "200"),
            Err(TxError::InvalidState {
                tx,
                state: TxState::Completed
            })
        );
        h.run_until(secs(40));
        let got: Vec<_> = h
            .sent
            .iter()
            .map(|s| (s.at.as_millis() as u64, s.dest, s.bytes.clone()))
            .collect();
        // No timer-driven retransmission: only responses and their re-sends to the source.
        assert_eq!(
            got,
            vec![
                (1000, 1, b("100")),
                (1500, 2, b("100")),
                (2000, 1, b("200")),
                (3500, 2, b("200")),
            ]
        );
        // Timer J = 64*T1 after the final response.
        assert_eq!(h.terminated_times(), vec![34_000]);
        assert!(h.timeouts().is_empty());
        // After J a retransmission is a new request.
        assert!(matches!(
            request(&mut h, secs(41)),
            ServerDisposition::New(_)
        ));
    }

    #[test]
    fn distinct_keys_are_distinct_transactions() {
        let mut h = Harness::new();
        let a = h.new_server(BRANCH, TxMethod::Register);
        // Same branch, other sent-by / other method: other transactions.
        let b = h.layer.handle_request(
            h.t0,
            TxKey::server(BRANCH, "10.0.0.2:5060", TxMethod::Register),
            false,
            1,
        );
        let c = h
            .layer
            .handle_request(h.t0, skey(BRANCH, TxMethod::Options), false, 1);
        assert!(matches!(b, ServerDisposition::New(id) if id != a));
        assert!(matches!(c, ServerDisposition::New(id) if id != a));
        assert_eq!(h.layer.len(), 3);
        // Case-insensitive branch and sent-by (§7.3.1).
        assert_eq!(
            h.layer.handle_request(
                h.t0,
                TxKey::server("Z9HG4BKREG", "PBX.EXAMPLE.COM:5060", TxMethod::Register),
                false,
                1
            ),
            ServerDisposition::Retransmission(a)
        );
        // An ACK for a non-INVITE key does not create anything.
        assert_eq!(
            h.layer
                .handle_request(h.t0, skey("z9hG4bKnothing", TxMethod::Ack), false, 1),
            ServerDisposition::AckNoTx
        );
        assert_eq!(h.layer.len(), 3);
    }
}
