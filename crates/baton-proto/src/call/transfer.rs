//! The call's side of a blind transfer (docs/behaviour.md §2): what happens when the REFER
//! is answered, challenged or never sent, and how the transfer's outcome ends the verb or
//! the call. The decisions themselves are `refer::Transfer`'s.

use super::payload;
use super::refer::{self, Attempt, Outcome, Transfer};
use super::verbs::Running;
use super::{Call, Ctx, Left, Subscription};
use crate::app::{ByeAfter, Step, Verb};
use crate::hook::Payload;
use crate::profile::ReferredBy;
use crate::sip::digest;
use crate::sip::parse::Message;
use crate::sip::write::address;
use crate::sip::write::Unwritable;
use crate::txn::TxnId;
use std::time::Instant;

impl Call {
    /// Sends the REFER for target `attempt` of the current `sip:refer` (docs/behaviour.md
    /// §2.1), written the call's trunk profile's way (§8).
    pub(super) fn send_refer(&mut self, ctx: &mut Ctx<'_>, attempt: usize) {
        let Some(step) = self.current.clone() else { return };
        let Verb::Refer(r) = &step.verb else { return };
        let Some(target) = r.target(attempt) else { return };
        let profile = self.trunk(ctx.cfg);
        let host = match profile.and_then(|p| p.refer_host.clone()).or_else(|| ctx.cfg.refer_domain.clone()) {
            Some(host) => host,
            None => self.dialog.remote_host(),
        };
        let uui = r.uui.iter().map(|u| ("User-to-User".to_string(), u.clone()));
        let uri_headers: Vec<(String, String)> = uui.chain(r.refer_to_headers.iter().cloned()).collect();
        let refer_to = match crate::profile::refer_to(&target.uri, profile, &host, &uri_headers) {
            Ok(value) => value,
            Err(e) => return self.refer_not_sent(ctx, e, target.uri.clone()),
        };
        let mut headers = vec![("Refer-To".to_string(), refer_to)];
        let referred_by = match (profile.map(|p| &p.referred_by), &r.referred_by) {
            (Some(ReferredBy::Omit), _) => None,
            (_, Some(by)) => Some(address(by, r.referred_by_display.as_deref(), &host)),
            (Some(ReferredBy::Fixed(by)), None) => Some(address(by, None, &host)),
            (Some(ReferredBy::Transferee) | None, None) => Some(payload::referred_by(&self.identity, &host)),
        };
        headers.extend(referred_by.map(|by| ("Referred-By".to_string(), by)));
        if let Some(p) = profile {
            let own = |name: &str| r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            headers.extend(p.headers.iter().filter(|(n, _)| !own(n)).cloned());
        }
        headers.extend(r.headers.iter().cloned());
        let (txn, cseq) = match self.send_request(ctx, "REFER", &headers, None) {
            Ok(sent) => sent,
            Err(e) => return self.refer_not_sent(ctx, e, std::mem::take(&mut headers[0].1)),
        };
        let timeout = target.timeout.or(r.timeout).or(profile.and_then(|p| p.notify_timeout));
        self.sub = Some(Subscription::new(cseq));
        self.running = Running::Refer {
            transfer: Transfer::new(cseq, timeout.unwrap_or(ctx.cfg.notify_timeout)),
            txn,
            headers,
            challenges: 0,
            since: ctx.now,
        };
    }

    /// The REFER could not be written (a value would have changed its structure): the
    /// attempt fails as a REFER refused with 500 would, its actionHook says why, nothing
    /// is sent.
    fn refer_not_sent(&mut self, ctx: &mut Ctx<'_>, e: Unwritable, target: String) {
        tracing::info!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "REFER not sent");
        let outcome = Outcome { refer_status: 500, final_status: None, end: refer::End::NotSent };
        self.swml_refer_failed(&e);
        self.complete_attempt(ctx, outcome, false, Some(&e), target);
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

    /// The REFER in flight ended; `caller_gone`: the far end hung up during the transfer.
    pub(super) fn complete_refer(&mut self, ctx: &mut Ctx<'_>, outcome: Outcome, caller_gone: bool) {
        // The REFER's own headers start with its Refer-To; they are not needed once it ended.
        let target = match &mut self.running {
            Running::Refer { headers, .. } => headers.first_mut().map(|(_, to)| std::mem::take(to)).unwrap_or_default(),
            _ => String::new(),
        };
        self.complete_attempt(ctx, outcome, caller_gone, None, target);
    }

    /// One target's attempt ended: the next target is tried if there is one and this
    /// outcome allows it (docs/behaviour.md §2.5), else the verb completes.
    fn complete_attempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        outcome: Outcome,
        caller_gone: bool,
        unsent: Option<&Unwritable>,
        target: String,
    ) {
        let Some(step) = self.current.clone() else { return };
        let Step { id: verb_id, verb: Verb::Refer(r) } = &*step else { return };
        ctx.stats.transfers[outcome.counted_as() as usize] += 1;
        if let (Some(_), Running::Refer { since, .. }) = (outcome.final_status, &self.running) {
            ctx.stats.refer_final.record(ctx.now - *since);
        }
        tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), refer_status = outcome.refer_status,
                       final_status = ?outcome.final_status, end = ?outcome.end, target, "transfer attempt completed");
        let failover = !r.failover.is_empty();
        let attempt = Attempt { target, outcome };
        if failover {
            if let Some(hook) = r.event_hook.clone() {
                let body = payload::attempt_event(self, verb_id.clone(), self.tried.len(), &attempt, unsent);
                self.hook(ctx, &hook, Payload::Event(body), None);
            }
            self.tried.push(attempt);
            let next = self.tried.len();
            if !caller_gone && outcome.may_fail_over() && r.target(next).is_some() {
                return self.send_refer(ctx, next);
            }
        }
        let attempts = std::mem::take(&mut self.tried);
        let action = r.action_hook.clone().map(|hook| {
            let body = payload::refer_action(self, &outcome, verb_id.clone(), unsent, attempts);
            (hook, body)
        });
        self.swml_refer_done(&outcome);
        let call_over = outcome.transferred() || caller_gone;
        if !call_over {
            self.finish_verb(ctx, action);
            return self.advance(ctx);
        }
        // The caller has left (or hung up): the hook still fires, its verbs cannot run.
        self.verb_status(ctx, "finished");
        self.current = None;
        if let Some((hook, body)) = action {
            self.hook(ctx, &hook, Payload::Event(body), None);
        }
        self.running = Running::Stopped;
        let after = r.bye_after_success.or_else(|| self.trunk(ctx.cfg).and_then(|p| p.bye_after_success));
        self.left = Some(Left::Gone);
        if outcome.transferred() {
            match after.unwrap_or(ByeAfter::Now) {
                ByeAfter::Now => self.hang_up(ctx, &[]),
                ByeAfter::Wait(wait) => self.left = Some(Left::ByeAt(ctx.now + wait)),
                ByeAfter::Never => {}
            }
        }
        // A SWML document goes on without the call (docs/behaviour.md §3.3).
        if self.detached() {
            self.running = Running::Idle;
            self.advance(ctx);
        }
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
