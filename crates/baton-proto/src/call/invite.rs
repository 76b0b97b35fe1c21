//! The INVITE server transaction (RFC 3261 §17.2.1) and the 2xx the UAS core keeps offering
//! until its ACK (§13.3.1.4). Each state carries what it needs and nothing else: the INVITE
//! itself only until it is answered, the answer only until it is acknowledged.

use crate::app::Headers;
use crate::transport::Transport;
use crate::txn::{Fire, Retransmit, Timers};
use std::time::Instant;

#[derive(Debug)]
pub enum InviteTxn {
    /// No final answer yet. The INVITE is kept to write the answers; the last provisional
    /// is sent again when the INVITE is.
    Proceeding { request: Box<[u8]>, provisional: Option<Box<[u8]>> },
    /// Answered with a failure: sent again (Timer G, unreliable transports only) until the
    /// ACK, or until Timer H gives up.
    Completed { response: Box<[u8]>, retx: Retransmit },
    /// Answered 2xx: sent again on every transport until the ACK, or 64·T1. A hang-up in
    /// the meantime waits for the ACK (no BYE before it, §15): its headers are kept here.
    Accepted { response: Box<[u8]>, retx: Retransmit, bye_after_ack: Option<Headers> },
    /// The 2xx was acknowledged.
    Confirmed,
    /// Over with nothing to send again: the failure was acknowledged or Timer H fired, or
    /// the call ended before its 2xx was acknowledged.
    Terminated,
}

/// What a timer of the transaction did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fired {
    /// The answer is to be sent again.
    Resend(Vec<u8>),
    /// The 2xx was never acknowledged (the call ends without a BYE: the caller's Contact
    /// was never confirmed, §13.3.1.4).
    NoAck,
    /// Timer H: the failure was never acknowledged; nothing more to do.
    Abandoned,
}

/// What an ACK did.
#[derive(Debug, PartialEq, Eq)]
pub enum Acked {
    /// It confirmed the 2xx; the hang-up that waited for it, if any.
    Confirmed(Option<Headers>),
    /// It acknowledged the failure.
    Failure,
    /// Nothing to acknowledge.
    Nothing,
}

impl InviteTxn {
    pub fn new(request: &[u8]) -> InviteTxn {
        InviteTxn::Proceeding { request: request.into(), provisional: None }
    }

    /// The INVITE, while it waits for its final answer.
    pub fn request(&self) -> Option<&[u8]> {
        match self {
            InviteTxn::Proceeding { request, .. } => Some(request),
            _ => None,
        }
    }

    /// The last answer sent, for a retransmitted INVITE.
    pub fn last_response(&self) -> Option<&[u8]> {
        match self {
            InviteTxn::Proceeding { provisional, .. } => provisional.as_deref(),
            InviteTxn::Completed { response, .. } | InviteTxn::Accepted { response, .. } => Some(response),
            InviteTxn::Confirmed | InviteTxn::Terminated => None,
        }
    }

    /// An answer was sent on `transport`: a final one moves the transaction on, with the
    /// retransmissions its class and the transport call for. Only an INVITE still waiting
    /// is answered; returns whether this one was.
    pub fn answered(&mut self, now: Instant, timers: &Timers, transport: Transport, code: u16, bytes: Vec<u8>) -> bool {
        let InviteTxn::Proceeding { provisional, .. } = self else { return false };
        let response = bytes.into_boxed_slice();
        *self = match code {
            ..200 => {
                *provisional = Some(response);
                return true;
            }
            200..300 => InviteTxn::Accepted { response, retx: Retransmit::for_2xx(now, timers), bye_after_ack: None },
            _ => InviteTxn::Completed { response, retx: Retransmit::new(now, timers, transport) },
        };
        true
    }

    /// An ACK arrived: `of_2xx` when it is in the dialog (a 2xx's ACK is a new
    /// transaction), `of_failure` when it carries the INVITE's branch (a failure's ACK is
    /// part of the INVITE transaction).
    pub fn on_ack(&mut self, of_2xx: bool, of_failure: bool) -> Acked {
        match self {
            InviteTxn::Accepted { bye_after_ack, .. } if of_2xx => {
                let bye = bye_after_ack.take();
                *self = InviteTxn::Confirmed;
                Acked::Confirmed(bye)
            }
            InviteTxn::Completed { .. } if of_failure => {
                *self = InviteTxn::Terminated;
                Acked::Failure
            }
            _ => Acked::Nothing,
        }
    }

    /// Hang up once the 2xx is acknowledged, with these headers. False when no 2xx waits.
    pub fn hang_up_after_ack(&mut self, headers: &[(String, String)]) -> bool {
        match self {
            InviteTxn::Accepted { bye_after_ack, .. } => {
                *bye_after_ack = Some(headers.to_vec());
                true
            }
            _ => false,
        }
    }

    /// The call ended before its 2xx was acknowledged: stop offering it.
    pub fn abandon(&mut self) {
        if matches!(self, InviteTxn::Accepted { .. }) {
            *self = InviteTxn::Terminated;
        }
    }

    pub fn poll(&mut self, now: Instant) -> Option<Fired> {
        let (InviteTxn::Completed { response, retx } | InviteTxn::Accepted { response, retx, .. }) = self else {
            return None;
        };
        match retx.poll(now)? {
            Fire::Resend => Some(Fired::Resend(response.to_vec())),
            Fire::GiveUp => {
                let fired = if matches!(self, InviteTxn::Accepted { .. }) { Fired::NoAck } else { Fired::Abandoned };
                *self = InviteTxn::Terminated;
                Some(fired)
            }
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self {
            InviteTxn::Completed { retx, .. } | InviteTxn::Accepted { retx, .. } => Some(retx.deadline()),
            _ => None,
        }
    }

    /// Whether nothing of it needs keeping: it is acknowledged or over.
    pub fn is_over(&self) -> bool {
        matches!(self, InviteTxn::Confirmed | InviteTxn::Terminated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls at every deadline until the transaction stops firing: (ms, what fired).
    fn run(txn: &mut InviteTxn, t0: Instant) -> Vec<(u128, Fired)> {
        let mut fired = Vec::new();
        while let Some(at) = txn.deadline() {
            if let Some(f) = txn.poll(at) {
                fired.push(((at - t0).as_millis(), f));
            }
        }
        fired
    }

    fn answered(transport: Transport, code: u16) -> (InviteTxn, Instant) {
        let (t0, timers) = (Instant::now(), Timers::default());
        let mut txn = InviteTxn::new(b"INVITE");
        assert!(txn.answered(t0, &timers, transport, 100, b"100".to_vec()));
        assert_eq!((txn.request(), txn.last_response()), (Some(&b"INVITE"[..]), Some(&b"100"[..])));
        assert!(txn.answered(t0, &timers, transport, code, b"final".to_vec()));
        assert_eq!((txn.request(), txn.last_response()), (None, Some(&b"final"[..])));
        assert!(!txn.answered(t0, &timers, transport, 500, b"again".to_vec()), "one final answer");
        (txn, t0)
    }

    #[test]
    fn a_2xx_is_offered_on_every_transport_until_64_t1() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let (mut txn, t0) = answered(transport, 200);
            let fired = run(&mut txn, t0);
            let resent: Vec<u128> = fired.iter().filter(|(_, f)| matches!(f, Fired::Resend(_))).map(|f| f.0).collect();
            assert_eq!(resent[..4], [500, 1500, 3500, 7500], "{transport}");
            assert_eq!(fired.last(), Some(&(32_000, Fired::NoAck)));
            assert!(txn.is_over());
        }
    }

    #[test]
    fn a_failure_is_resent_on_udp_only_and_timer_h_ends_it() {
        let (mut udp, t0) = answered(Transport::Udp, 486);
        assert_eq!(run(&mut udp, t0).iter().filter(|(_, f)| matches!(f, Fired::Resend(_))).count(), 10);
        let (mut tcp, t0) = answered(Transport::Tcp, 486);
        assert_eq!(run(&mut tcp, t0), [(32_000, Fired::Abandoned)]);
    }

    #[test]
    fn acks_end_what_they_acknowledge_and_release_a_waiting_hang_up() {
        let (mut ok, _) = answered(Transport::Udp, 200);
        assert_eq!(ok.on_ack(false, true), Acked::Nothing, "a 2xx's ACK is in the dialog");
        let headers = vec![("X-Why".to_string(), "done".to_string())];
        assert!(ok.hang_up_after_ack(&headers));
        assert_eq!(ok.on_ack(true, false), Acked::Confirmed(Some(headers)));
        assert!(ok.is_over() && ok.deadline().is_none());
        let (mut busy, _) = answered(Transport::Udp, 486);
        assert!(!busy.hang_up_after_ack(&[]));
        assert_eq!(busy.on_ack(false, true), Acked::Failure);
        assert!(busy.is_over());
    }

    #[test]
    fn an_abandoned_2xx_is_no_longer_offered() {
        let (mut txn, t0) = answered(Transport::Udp, 200);
        txn.abandon();
        assert_eq!((txn.deadline(), txn.poll(t0 + Duration::from_secs(1))), (None, None));
    }
}
