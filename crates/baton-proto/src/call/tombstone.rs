//! What is left of a call once it has ended and only has to answer retransmissions
//! (Timer J for the requests it answered, Timer K for its own requests): the dialog's
//! identifiers and how each answer is sent again, a few hundred bytes instead of the call.

use super::Ctx;
use super::{Call, Phase};
use crate::output::{Output, Transmit};
use crate::sip::parse::{Core, Message};
use crate::sip::Method;
use crate::transport::Flow;
use crate::txn::{Again, Answered};
use std::time::Instant;

pub struct Tombstone {
    pub call_id: Box<str>,
    local_tag: Box<str>,
    /// The flow the call arrived on: answers go out from its local end.
    flow: Flow,
    /// The INVITE's branch (`Ids::txn` of it alone): its retransmissions are absorbed and a
    /// late CANCEL of it still gets its 200.
    invite: u64,
    answered: Box<[Answered]>,
    until: Instant,
}

impl Call {
    /// The call's tombstone, once it has ended and nothing but retransmissions can reach
    /// it: no request of ours awaits an answer, no INVITE answer is being retransmitted or
    /// kept, and the refer subscription (if any) is over. What it needs is moved out of
    /// the call, which is then dropped.
    pub fn bury(&mut self, ids: &crate::tokens::Ids) -> Option<Tombstone> {
        let settled = self.phase() == Phase::Ended
            && self.invite.is_over()
            && self.client.settled()
            && self.sub.is_none_or(|s| s.is_over());
        let linger = self.linger_until.filter(|_| settled)?;
        let until = self.client.deadlines().chain(self.answered.iter().map(|a| a.until)).fold(linger, Instant::max);
        Some(Tombstone {
            invite: ids.txn(&self.invite_branch, ""),
            call_id: self.dialog.call_id().into(),
            local_tag: self.dialog.local_tag().into(),
            flow: self.dialog.flow,
            answered: std::mem::take(&mut self.answered).into(),
            until,
        })
    }
}

impl Tombstone {
    pub fn deadline(&self) -> Instant {
        self.until
    }

    /// Answers a request in the ended dialog as the call would have: the same answer to a
    /// retransmission, 200 to a CANCEL of the INVITE, 482 to a new INVITE reusing the
    /// Call-ID, 481 to anything else, and nothing to an ACK.
    pub fn on_request(&self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, src: Flow) {
        let method = core.cseq.method;
        if core.method == Method::Ack {
            return;
        }
        let branch = core.via.branch().unwrap_or_default();
        let id = ctx.ids.txn(branch, method);
        let of_invite = || ctx.ids.txn(branch, "") == self.invite;
        let again = match self.answered.iter().find(|a| a.id == id) {
            Some(done) => done.again.clone(),
            None if core.method == Method::Cancel && of_invite() => {
                Again::Reply { code: 200, our_tag: false, extra: &[] }
            }
            None if core.method == Method::Invite && core.to.tag().is_none() => {
                if of_invite() {
                    return; // answered and acknowledged long ago
                }
                Again::Reply { code: 482, our_tag: true, extra: &[] }
            }
            None => Again::Reply { code: 481, our_tag: true, extra: &[] },
        };
        if let Ok(bytes) = again.bytes(msg, src.remote, &self.local_tag) {
            ctx.out.push_back(Output::Transmit(Transmit::on(Flow { local: self.flow.local, ..src }, bytes)));
        }
    }

    /// Answers kept for retransmissions.
    pub fn transactions(&self) -> usize {
        self.answered.len()
    }
}
