//! The call's side of a blind transfer (docs/behaviour.md §2): what happens when the REFER
//! is answered, challenged or never sent, and how the transfer's outcome ends the verb or
//! the call. The decisions themselves are `refer::Transfer`'s.

use super::payload;
use super::refer::{self, Outcome};
use super::verbs::Running;
use super::{Call, Ctx, Subscription};
use crate::app::{Step, Verb};
use crate::hook::Payload;
use crate::sip::digest;
use crate::sip::parse::Message;
use crate::sip::write::Unwritable;
use crate::txn::TxnId;
use std::time::Instant;

impl Call {
    /// The REFER could not be written (a value would have changed its structure): the verb
    /// fails as a REFER refused with 500 would, its actionHook says why, nothing is sent.
    pub(super) fn refer_not_sent(&mut self, ctx: &mut Ctx<'_>, e: Unwritable) {
        tracing::info!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "REFER not sent");
        let outcome = Outcome { refer_status: 500, final_status: None, end: refer::End::NotSent };
        self.swml_refer_failed(&e);
        self.complete_refer_with(ctx, outcome, false, Some(&e));
    }

    /// The caller is gone (or the call is being ended under it): a transfer in progress
    /// reports its end, and verbs its actionHook returns will not run.
    pub(super) fn caller_gone(&mut self, ctx: &mut Ctx<'_>) {
        let outcome = match &mut self.running {
            Running::Refer { transfer, .. } => transfer.on_far_end_bye(),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.complete_refer(ctx, outcome, true);
        }
    }

    /// `caller_gone`: the far end hung up during the transfer.
    pub(super) fn complete_refer(&mut self, ctx: &mut Ctx<'_>, outcome: Outcome, caller_gone: bool) {
        self.complete_refer_with(ctx, outcome, caller_gone, None);
    }

    pub(super) fn complete_refer_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        outcome: Outcome,
        caller_gone: bool,
        unsent: Option<&Unwritable>,
    ) {
        let (verb_id, action_hook) = match self.current.as_deref() {
            Some(Step { id, verb: Verb::Refer(r) }) => (id.clone(), r.action_hook.clone()),
            _ => (None, None),
        };
        ctx.stats.transfers[outcome.counted_as() as usize] += 1;
        if let (Some(_), Running::Refer { since, .. }) = (outcome.final_status, &self.running) {
            ctx.stats.refer_final.record(ctx.now - *since);
        }
        tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), refer_status = outcome.refer_status,
                       final_status = ?outcome.final_status, end = ?outcome.end, "transfer completed");
        let action = action_hook.map(|hook| (hook, payload::refer_action(self, &outcome, verb_id, unsent)));
        self.swml_refer_done(&outcome);
        let call_over = outcome.transferred() || caller_gone;
        if call_over {
            // The caller has left (or hung up): the hook still fires, its verbs cannot run.
            self.verb_status(ctx, "finished");
            self.current = None;
            if let Some((hook, body)) = action {
                self.hook(ctx, &hook, Payload::Event(body), None);
            }
            self.running = Running::Stopped;
            if outcome.transferred() {
                self.hang_up(ctx, &[]);
            }
            return;
        }
        self.finish_verb(ctx, action);
        self.advance(ctx);
    }

    /// Sends the REFER again with Digest credentials (docs/behaviour.md §2.2): once per
    /// challenge; a second challenge is final unless it says the nonce was only stale.
    pub(super) fn answer_challenge(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, code: u16, txn: TxnId) -> bool {
        const MAX_CHALLENGES: u8 = 3;
        let Some(Step { verb: Verb::Refer(r), .. }) = self.current.as_deref() else { return false };
        let Some(creds) = r.auth.clone() else { return false };
        let Running::Refer { txn: refer, headers, challenges, .. } = &self.running else { return false };
        let (challenge_header, answer_header) = if code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let offered = msg.headers.iter().filter(|h| h.raw_name.eq_ignore_ascii_case(challenge_header)).map(|h| h.value);
        let Some(challenge) = digest::best(offered) else { return false };
        if *refer != txn || (*challenges > 0 && !challenge.stale) || *challenges >= MAX_CHALLENGES {
            return false;
        }
        let cnonce = format!("{:016x}", ctx.ids.random());
        let value = challenge.answer(&creds.username, &creds.password, "REFER", self.dialog.remote_target(), &cnonce);
        let mut headers = headers.clone();
        headers.retain(|(n, _)| {
            !n.eq_ignore_ascii_case("Authorization") && !n.eq_ignore_ascii_case("Proxy-Authorization")
        });
        headers.push((answer_header.to_string(), value));
        let Ok((again, cseq)) = self.send_request(ctx, "REFER", &headers, None) else {
            return false; // a challenge whose values cannot be written back is final
        };
        self.sub = Some(Subscription::new(cseq));
        if let Running::Refer { transfer, txn, headers: kept, challenges, .. } = &mut self.running {
            transfer.cseq = cseq;
            *txn = again;
            *kept = headers;
            *challenges += 1;
        }
        true
    }

    /// A client transaction ended: with a final response, or timed out (408).
    pub(super) fn on_final(&mut self, ctx: &mut Ctx<'_>, txn: TxnId, code: u16, why: &str, refer_sub_false: bool) {
        match &mut self.running {
            Running::Refer { transfer, txn: refer, since, .. } if *refer == txn => {
                if code >= 300 {
                    self.sub = None;
                }
                let was_accepted = transfer.accepted();
                let outcome = transfer.on_response(ctx.now, code, refer_sub_false);
                count_acceptance(ctx, was_accepted, transfer, *since);
                self.swml_status(ctx, Some(code), None);
                if let Some(outcome) = outcome {
                    self.complete_refer(ctx, outcome, false);
                }
            }
            Running::Request { txn: request } if *request == txn => {
                let hook = match self.current.as_deref() {
                    Some(Step { verb: Verb::Request(r), .. }) => r.action_hook.clone(),
                    _ => None,
                };
                let action = hook.map(|h| (h, self.request_result(code, why, None)));
                self.finish_verb(ctx, action);
                self.advance(ctx);
            }
            _ => {}
        }
    }
}

/// Counts the REFER's time to acceptance once: when the transfer has just become accepted
/// (its 2xx, or a NOTIFY before it).
pub(super) fn count_acceptance(ctx: &mut Ctx<'_>, was_accepted: bool, transfer: &refer::Transfer, since: Instant) {
    if !was_accepted && transfer.accepted() {
        ctx.stats.refer_accepted.record(ctx.now - since);
    }
}
