//! The non-INVITE client transactions of one call (RFC 3261 §17.1.2): the REFERs, BYEs and
//! `sip:request`s it sends. The call names each by a small [`TxnId`]; the branch is only
//! read to match a response, which must also carry the request's method and CSeq number.

use super::{Fire, Retransmit, Timers};
use crate::output::{Output, Transmit};
use crate::sip::Method;
use crate::transport::Flow;
use std::collections::VecDeque;
use std::time::Instant;

/// One of a call's client transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnId(u32);

#[derive(Clone, Debug)]
struct ClientTxn {
    id: TxnId,
    branch: Box<str>,
    method: Method,
    cseq: u32,
    bytes: Box<[u8]>,
    /// Where it went: retransmissions follow it.
    flow: Flow,
    /// Timer E (resend, unreliable transports only) and Timer F (give up).
    timer: Retransmit,
    /// Timer K: after the final response, its retransmissions are absorbed until then.
    absorb_until: Option<Instant>,
}

impl ClientTxn {
    fn deadline(&self) -> Instant {
        self.absorb_until.unwrap_or_else(|| self.timer.deadline())
    }
}

/// What a response means to the call's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// It answers none of them.
    Stray,
    /// A provisional, or a final one repeated: nothing for the call to do.
    Absorbed,
    /// The final response of this transaction.
    Final(TxnId),
}

/// A call's client transactions, in the order they were started.
#[derive(Debug, Default)]
pub struct ClientTxns {
    next: u32,
    txns: Vec<ClientTxn>,
}

impl ClientTxns {
    /// Records a request just sent on `flow`, to retransmit and time it.
    #[allow(clippy::too_many_arguments)] // each is a distinct property of the request sent
    pub fn start(
        &mut self,
        now: Instant,
        timers: &Timers,
        branch: &str,
        method: Method,
        cseq: u32,
        bytes: &[u8],
        flow: Flow,
    ) -> TxnId {
        self.next = self.next.wrapping_add(1);
        let id = TxnId(self.next);
        let timer = Retransmit::new(now, timers, flow.transport);
        let (branch, bytes) = (branch.into(), bytes.into());
        self.txns.push(ClientTxn { id, branch, method, cseq, bytes, flow, timer, absorb_until: None });
        id
    }

    /// Matches a response by branch, method and CSeq number (RFC 3261 §17.1.3, and the
    /// number too, so that knowing a branch is not enough to forge an answer).
    pub fn on_response(
        &mut self,
        now: Instant,
        timers: &Timers,
        branch: &str,
        cseq: (u32, Method),
        code: u16,
    ) -> Response {
        let Some(txn) = self.txns.iter_mut().find(|t| &*t.branch == branch && t.method == cseq.1 && t.cseq == cseq.0)
        else {
            return Response::Stray;
        };
        if txn.absorb_until.is_some() {
            return Response::Absorbed;
        }
        if code < 200 {
            txn.timer.provisional(now);
            return Response::Absorbed;
        }
        // Timer K: T4 on an unreliable transport, nothing to absorb on a reliable one.
        let absorb = if txn.flow.transport.is_reliable() { now } else { now + timers.t4 };
        txn.absorb_until = Some(absorb);
        Response::Final(txn.id)
    }

    /// Retransmits what is due into `out` and returns the transactions that timed out
    /// (Timer F), which are forgotten; those done absorbing are forgotten too.
    pub fn poll(&mut self, now: Instant, out: &mut VecDeque<Output>) -> Vec<(TxnId, Method)> {
        self.txns.retain(|t| t.absorb_until.is_none_or(|until| until > now));
        let mut timed_out = Vec::new();
        self.txns.retain_mut(|t| {
            if t.absorb_until.is_some() {
                return true;
            }
            match t.timer.poll(now) {
                Some(Fire::Resend) => {
                    out.push_back(Output::Transmit(Transmit::on(t.flow, t.bytes.to_vec())));
                    true
                }
                Some(Fire::GiveUp) => {
                    timed_out.push((t.id, t.method));
                    false
                }
                None => true,
            }
        });
        timed_out
    }

    /// Each transaction's next deadline.
    pub fn deadlines(&self) -> impl Iterator<Item = Instant> + Clone + '_ {
        self.txns.iter().map(ClientTxn::deadline)
    }

    /// Whether every transaction has its final response (and only absorbs repeats of it).
    pub fn settled(&self) -> bool {
        self.txns.iter().all(|t| t.absorb_until.is_some())
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{ConnId, Transport};
    use std::time::Duration;

    fn flow(transport: Transport) -> Flow {
        let conn = transport.is_reliable().then_some(ConnId(1));
        Flow { transport, conn, local: "10.0.0.1:5060".parse().unwrap(), remote: "10.0.0.2:5060".parse().unwrap() }
    }

    /// Runs one unanswered REFER to its end on a virtual clock: when it was sent again,
    /// and when it timed out.
    fn unanswered(transport: Transport) -> (Vec<u128>, u128) {
        let (t0, timers) = (Instant::now(), Timers::default());
        let mut txns = ClientTxns::default();
        let id = txns.start(t0, &timers, "z9hG4bK-1", Method::Refer, 2, b"REFER", flow(transport));
        let (mut out, mut resent) = (VecDeque::new(), Vec::new());
        loop {
            let now = txns.deadlines().min().expect("a deadline while it runs");
            let gone = txns.poll(now, &mut out);
            for o in out.drain(..) {
                assert!(matches!(o, Output::Transmit(t) if t.bytes == b"REFER" && t.conn == flow(transport).conn));
                resent.push((now - t0).as_millis());
            }
            if !gone.is_empty() {
                assert_eq!((gone, txns.len()), (vec![(id, Method::Refer)], 0));
                return (resent, (now - t0).as_millis());
            }
        }
    }

    #[test]
    fn unreliable_requests_are_resent_and_reliable_ones_only_time_out() {
        let (resent, timed_out) = unanswered(Transport::Udp);
        assert_eq!(resent[..5], [500, 1500, 3500, 7500, 11500]);
        assert_eq!(timed_out, 32_000);
        for reliable in [Transport::Tcp, Transport::Tls] {
            assert_eq!(unanswered(reliable), (vec![], 32_000), "{reliable}: Timer F alone");
        }
    }

    #[test]
    fn a_response_must_carry_branch_method_and_number() {
        let (t0, timers) = (Instant::now(), Timers::default());
        let mut txns = ClientTxns::default();
        let id = txns.start(t0, &timers, "z9hG4bK-1", Method::Refer, 2, b"REFER", flow(Transport::Udp));
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-2", (2, Method::Refer), 202), Response::Stray);
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-1", (2, Method::Bye), 202), Response::Stray);
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-1", (3, Method::Refer), 202), Response::Stray);
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-1", (2, Method::Refer), 100), Response::Absorbed);
        assert!(!txns.settled());
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-1", (2, Method::Refer), 202), Response::Final(id));
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-1", (2, Method::Refer), 202), Response::Absorbed);
        assert!(txns.settled());
        // Timer K: repeats are absorbed for T4, then the transaction is forgotten.
        let mut out = VecDeque::new();
        txns.poll(t0 + Duration::from_millis(4_999), &mut out);
        assert_eq!((txns.len(), out.len()), (1, 0));
        txns.poll(t0 + Duration::from_secs(5), &mut out);
        assert!(txns.is_empty());
    }

    #[test]
    fn a_provisional_moves_resends_to_t2_and_a_reliable_final_is_not_kept() {
        let (t0, timers) = (Instant::now(), Timers::default());
        let mut txns = ClientTxns::default();
        txns.start(t0, &timers, "z9hG4bK-1", Method::Bye, 3, b"BYE", flow(Transport::Udp));
        txns.on_response(t0 + Duration::from_millis(100), &timers, "z9hG4bK-1", (3, Method::Bye), 100);
        assert_eq!(txns.deadlines().min(), Some(t0 + Duration::from_millis(4_100)));
        let id = txns.start(t0, &timers, "z9hG4bK-2", Method::Bye, 4, b"BYE", flow(Transport::Tcp));
        assert_eq!(txns.on_response(t0, &timers, "z9hG4bK-2", (4, Method::Bye), 200), Response::Final(id));
        txns.poll(t0, &mut VecDeque::new());
        assert_eq!(txns.len(), 1, "Timer K is zero on TCP");
    }
}
