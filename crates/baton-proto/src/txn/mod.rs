//! RFC 3261 §17 transactions, sans-IO: each schedule is advanced with `now`, and follows
//! its transport (nothing is retransmitted on a reliable one).

mod client;

pub use client::{ClientTxns, Response, TxnId};

use crate::sip::parse::Message;
use crate::sip::write::{reason, Unwritable, Writer};
use crate::transport::Transport;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RFC 3261 §17's base timers; every other timer derives from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// The round-trip estimate (500 ms).
    pub t1: Duration,
    /// The longest retransmission interval (4 s).
    pub t2: Duration,
    /// How long a message may live in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5) }
    }
}

impl Timers {
    /// Timer B/F/H and the 2xx-retransmission limit: 64·T1.
    pub fn give_up(&self) -> Duration {
        self.t1 * 64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fire {
    Resend,
    GiveUp,
}

/// A retransmission schedule: first after T1, doubling up to T2, abandoned after 64·T1.
/// Timers E/F (client non-INVITE), G/H (INVITE final responses) and the UAS 2xx
/// retransmission of §13.3.1.4 all follow this shape.
#[derive(Clone, Debug)]
pub struct Retransmit {
    next: Instant,
    interval: Duration,
    cap: Duration,
    give_up: Instant,
}

impl Retransmit {
    /// A schedule for a message sent on `transport`: on a reliable one nothing is sent
    /// again (RFC 3261 §17.1.2.2, §17.2.1) and only the 64·T1 bound fires. The UAS 2xx
    /// is the exception, retransmitted on every transport (`for_2xx`, §13.3.1.4).
    pub fn new(now: Instant, timers: &Timers, transport: Transport) -> Retransmit {
        let give_up = now + timers.give_up();
        let next = if transport.is_reliable() { give_up } else { now + timers.t1 };
        Retransmit { next, interval: timers.t1, cap: timers.t2, give_up }
    }

    /// The UAS 2xx schedule (RFC 3261 §13.3.1.4): retransmitted until the ACK on every
    /// transport, since a hop beyond the connection may be UDP.
    pub fn for_2xx(now: Instant, timers: &Timers) -> Retransmit {
        Retransmit::new(now, timers, Transport::Udp)
    }

    pub fn deadline(&self) -> Instant {
        self.next.min(self.give_up)
    }

    /// A provisional response moves a non-INVITE client transaction to T2 spacing (§17.1.2.2).
    pub fn provisional(&mut self, now: Instant) {
        self.interval = self.cap;
        if self.next < self.give_up {
            self.next = now + self.cap;
        }
    }

    pub fn poll(&mut self, now: Instant) -> Option<Fire> {
        if now >= self.give_up {
            return Some(Fire::GiveUp);
        }
        if now < self.next {
            return None;
        }
        self.interval = (self.interval * 2).min(self.cap);
        self.next = (now + self.interval).min(self.give_up);
        Some(Fire::Resend)
    }
}

/// What a server transaction answered, kept until Timer J so retransmissions get the same
/// answer again without reaching the application.
#[derive(Clone, Debug)]
pub struct Answered {
    /// The request's branch and method (`Ids::txn`): a retransmission carries both again.
    pub id: u64,
    pub again: Again,
    pub until: Instant,
}

/// How an answer is sent again. Most are rebuilt from the retransmitted request itself,
/// which carries the same Via, From, To, Call-ID and CSeq, so only the status is kept.
#[derive(Clone, Debug)]
pub enum Again {
    Reply {
        code: u16,
        /// Whether the To gets our tag (not in the answer to a CANCEL, RFC 3261 §9.2).
        our_tag: bool,
        extra: &'static [(&'static str, &'static str)],
    },
    /// An answer with a body (a session refresh), kept as sent.
    Bytes(Box<[u8]>),
}

impl Again {
    /// The answer to `req` from `src`, whose To gets `local_tag` where it has none.
    pub fn bytes(&self, req: &Message<'_>, src: SocketAddr, local_tag: &str) -> Result<Vec<u8>, Unwritable> {
        match self {
            Again::Reply { code, our_tag, extra } => {
                let mut w = Writer::response_to(req, src, *code, reason(*code), our_tag.then_some(local_tag));
                for (name, value) in *extra {
                    w.header(name, value);
                }
                w.finish(None)
            }
            Again::Bytes(bytes) => Ok(bytes.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_t2_then_gives_up_at_64_t1() {
        let t = Timers::default();
        let start = Instant::now();
        let mut r = Retransmit::new(start, &t, Transport::Udp);
        let mut fired = Vec::new();
        let mut now;
        loop {
            now = r.deadline();
            match r.poll(now) {
                Some(Fire::Resend) => fired.push((now - start).as_millis()),
                Some(Fire::GiveUp) => break,
                None => unreachable!("deadline reached without firing"),
            }
        }
        assert_eq!(fired[..5], [500, 1500, 3500, 7500, 11500]);
        assert_eq!((now - start).as_millis(), 32_000);
    }
}
