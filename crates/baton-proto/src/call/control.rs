//! What is done to a call from outside it: the server's shutdown, the operator's live
//! control (docs/operating.md, "The HTTP endpoint") and the summary the operator sees.

use super::verbs::{AfterHook, Running};
use super::{payload, Call, Ctx, Phase, Status};
use crate::event::{Detail, Event, Kind};
use crate::hook::{Expect, Payload};
use crate::settings::Settings;
use crate::summary::{CallSummary, CallUpdate, UpdateError};

impl Call {
    /// Shutdown: a transfer in progress reports its end, then the call is ended.
    pub fn shut_down(&mut self, ctx: &mut Ctx<'_>) {
        self.abandon_program();
        self.caller_gone(ctx);
        match self.phase() {
            Phase::Early => {
                let retry = [("Retry-After".to_string(), "5".to_string())];
                self.answer_with(ctx, 503, &retry);
                self.end(ctx, Status::Failed, Some("baton"));
            }
            Phase::Answering | Phase::Confirmed => self.hang_up(ctx, &[]),
            Phase::Ended => {}
        }
    }

    /// Applies what the operator asks (docs/operating.md, "The HTTP endpoint").
    pub fn update(&mut self, ctx: &mut Ctx<'_>, update: CallUpdate) -> Result<(), UpdateError> {
        if self.phase() == Phase::Ended {
            return Err(UpdateError::NotFound);
        }
        if let CallUpdate::Hangup = update {
            self.abandon_program();
            self.caller_gone(ctx);
            self.running = Running::Stopped;
            self.hang_up(ctx, &[]);
            return Ok(());
        }
        // A transfer or request awaits its answer, or the caller has already left.
        if matches!(self.running, Running::Refer { .. } | Running::Request { .. }) || self.left.is_some() {
            return Err(UpdateError::Busy);
        }
        // The verb that waits (a pause, a hook's answer, the ACK) is cut short.
        if self.current.is_some() {
            self.verb_status(ctx, "finished");
            self.current = None;
        }
        match update {
            CallUpdate::Application(app) => {
                self.install(ctx, app);
                self.running = Running::Idle;
                self.advance(ctx);
            }
            CallUpdate::Fetch(hook) => {
                let body = Payload::Event(Event(Kind::Call(payload::call_fields(self), Detail::Nothing)));
                self.wait_for(ctx, &hook, body, Expect::Application, AfterHook::Replace);
            }
            CallUpdate::Hangup => {}
        }
        Ok(())
    }

    /// The call as an operator sees it.
    pub fn summary(&self, cfg: &Settings) -> CallSummary {
        let (state, transfer) = match (&self.running, self.phase()) {
            (Running::Refer { transfer, .. }, phase) => {
                (phase, Some((transfer.refer_status(), transfer.last_status())))
            }
            (_, phase) => (phase, None),
        };
        CallSummary {
            call_sid: self.sid.clone(),
            call_id: self.dialog.call_id().to_string(),
            from: self.identity.from_user.clone(),
            to: self.identity.to_user.clone(),
            state: match state {
                Phase::Early => "early",
                Phase::Answering => "answering",
                Phase::Confirmed => "confirmed",
                Phase::Ended => "ended",
            },
            call_status: self.status.as_str(),
            sip_status: self.sip_status,
            verb: self.current.as_deref().map(|step| step.verb.name()),
            transfer,
            profile: self.trunk(cfg).map(|p| p.name.clone()),
        }
    }
}
