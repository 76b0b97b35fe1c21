//! The verb interpreter: runs a call's application one verb at a time (jambonz verbs in
//! order, or a SWML machine's actions), waits where a verb must (a hook's answer, the ACK,
//! a pause, a transfer, a request) and goes on when that is over.

use super::payload;
use super::refer::Transfer;
use super::{Call, Ctx, Phase, Status};
use crate::app::{Application, Doc, Headers, Hook, Step, Verb};
use crate::event::{Detail, Event, Kind};
use crate::hook::{Answer, Expect, HookOutcome, Payload};
use crate::sip::header::Name;
use crate::sip::write::{reason, Unwritable};
use crate::txn::TxnId;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// What the application is doing.
#[derive(Clone, Debug)]
pub(super) enum Running {
    /// Ready to start the next verb.
    Idle,
    /// Waiting for a hook's answer, until `until` (then it goes on as if the hook failed).
    Hook {
        token: u64,
        after: AfterHook,
        until: Instant,
    },
    /// The current verb needs the dialog: waiting for the ACK of our 200.
    AwaitAck,
    Pause {
        until: Instant,
    },
    Refer {
        transfer: Transfer,
        txn: TxnId,
        /// The REFER's own headers, to send it again with credentials.
        headers: Vec<(String, String)>,
        /// Challenges answered so far.
        challenges: u8,
        /// When this REFER left: the transfer's latencies count from then.
        since: Instant,
    },
    Request {
        txn: TxnId,
    },
    /// The application is over.
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum AfterHook {
    /// The call_hook: its answer is the application.
    Application,
    /// An actionHook or redirect: its verbs, if any, replace the rest.
    Replace,
    /// A SWML `request`: its answer goes into variables.
    SwmlRequest { url: String, save: bool },
    /// A SWML `execute` or `transfer` to a URL: its answer is a document to run.
    SwmlFetch { params: Map<String, Value>, execute: bool },
}

/// What the call runs: jambonz verbs in order, or a SWML machine.
pub(super) enum Program {
    /// The steps and the index of the next one.
    Verbs(Arc<[Arc<Step>]>, usize),
    Swml(Box<crate::app::swml::run::Machine>),
}

/// The next thing the program asks for.
pub(super) enum Next {
    Step(Arc<Step>),
    /// A hook the program needs was sent; the call waits for it.
    Waiting,
    End,
}

impl Call {
    /// Runs verbs until one has to wait.
    pub(super) fn advance(&mut self, ctx: &mut Ctx<'_>) {
        while matches!(self.running, Running::Idle) {
            let detached = self.detached();
            if self.phase() == Phase::Ended && !detached {
                self.running = Running::Stopped;
                return;
            }
            let step = match self.next_step(ctx) {
                Next::Step(step) => step,
                Next::Waiting => return,
                Next::End => {
                    tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), "application ended");
                    self.running = Running::Stopped;
                    if !detached {
                        self.hang_up(ctx, &[]);
                    }
                    return;
                }
            };
            let needs_dialog = step.verb.needs_dialog();
            self.current = Some(step);
            self.verb_status(ctx, "starting");
            if needs_dialog && self.phase() != Phase::Confirmed {
                if self.phase() == Phase::Early {
                    self.answer(ctx);
                }
                self.running = Running::AwaitAck;
                return;
            }
            self.start_current(ctx);
        }
    }

    pub(super) fn start_current(&mut self, ctx: &mut Ctx<'_>) {
        let Some(step) = self.current.clone() else { return };
        match &step.verb {
            Verb::Refer(_) => {
                self.tried.clear();
                self.send_refer(ctx, 0);
            }
            Verb::Decline { status, reason: why, headers } => {
                if self.phase() == Phase::Early {
                    let why = why.as_deref().unwrap_or_else(|| reason(*status));
                    match self.respond_invite(ctx, *status, why, headers, None) {
                        Ok(()) => self.end(ctx, Status::Failed, Some("baton")),
                        Err(e) => self.reject(ctx, &format!("sip:decline: {e}")),
                    }
                } else {
                    tracing::warn!(call_sid = %self.sid, call_id = self.dialog.call_id(), "sip:decline on an answered call is skipped");
                    self.finish_verb(ctx, None);
                }
            }
            Verb::Hangup { headers } => self.hang_up(ctx, headers),
            Verb::Pause { length } => self.running = Running::Pause { until: ctx.now + *length },
            Verb::Answer => self.finish_verb(ctx, None),
            Verb::Skipped(name) => {
                crate::app::skipped(name);
                self.finish_verb(ctx, None);
            }
            Verb::Redirect { action_hook } => {
                let body = Payload::Event(Event(Kind::Call(payload::call_fields(self), Detail::Nothing)));
                self.wait_for(ctx, action_hook, body, Expect::Verbs, AfterHook::Replace);
            }
            Verb::Tag { data } => {
                let shared = self.customer_data.get_or_insert_with(Default::default);
                Arc::make_mut(shared).extend(data.clone());
                self.finish_verb(ctx, None);
            }
            Verb::Config { notify_events } => {
                if let Some(n) = *notify_events {
                    self.notify_events = n;
                }
                self.finish_verb(ctx, None);
            }
            Verb::Request(r) => {
                let content_type =
                    r.headers.iter().find(|(n, _)| Name::lookup(n) == Name::ContentType).map(|(_, v)| v.clone());
                let headers: Headers =
                    r.headers.iter().filter(|(n, _)| Name::lookup(n) != Name::ContentType).cloned().collect();
                let body = r.body.as_deref().map(|b| (content_type.as_deref().unwrap_or("text/plain"), b.as_bytes()));
                match self.send_request(ctx, &r.method, &headers, body) {
                    Ok((txn, _)) => self.running = Running::Request { txn },
                    Err(e) => {
                        let action = r.action_hook.clone().map(|hook| (hook, self.request_result(500, "", Some(&e))));
                        self.finish_verb(ctx, action);
                    }
                }
            }
        }
    }

    /// The current verb is done; its actionHook (when given) is awaited before the next.
    pub(super) fn finish_verb(&mut self, ctx: &mut Ctx<'_>, action: Option<(Hook, Event)>) {
        self.verb_status(ctx, "finished");
        self.current = None;
        match action {
            Some((hook, body)) => self.wait_for(ctx, &hook, Payload::Event(body), Expect::Verbs, AfterHook::Replace),
            None => self.running = Running::Idle,
        }
    }

    /// A `sip:request`'s actionHook body: its result, and why it was never sent if it was not.
    pub(super) fn request_result(&self, code: u16, why: &str, unsent: Option<&Unwritable>) -> Event {
        let detail = Detail::Request { code, reason: why.into(), error: unsent.map(ToString::to_string) };
        Event(Kind::Call(payload::call_fields(self), detail))
    }

    pub fn on_hook_reply(&mut self, ctx: &mut Ctx<'_>, token: u64, outcome: HookOutcome) {
        let after = match &self.running {
            Running::Hook { token: waiting, after, .. } if *waiting == token => after.clone(),
            _ => return,
        };
        match (after, outcome) {
            (AfterHook::Application, Ok(Answer::Application(app))) => self.install(ctx, app),
            (AfterHook::Application, Ok(_)) => return self.reject(ctx, "call_hook returned no application"),
            (AfterHook::Application, Err(why)) => return self.reject(ctx, &why),
            (AfterHook::Replace, Ok(Answer::Application(_))) if self.replaced >= ctx.cfg.max_redirects => {
                let why = format!("more than {} redirects (--max-redirects)", ctx.cfg.max_redirects);
                tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), reason = %why, "application ends");
                self.running = Running::Stopped;
                return match self.phase() {
                    Phase::Early => self.reject(ctx, &why),
                    _ => self.hang_up(ctx, &[]),
                };
            }
            (AfterHook::Replace, Ok(Answer::Application(app))) => {
                self.replaced += 1;
                self.install(ctx, app);
                self.finish_redirect(ctx);
            }
            (AfterHook::Replace, Ok(_)) => self.finish_redirect(ctx),
            (AfterHook::Replace, Err(why)) => {
                // Debug, not warn: the hook side counts and logs failures once per period.
                tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %why, "hook failed; the application goes on");
                self.finish_redirect(ctx);
            }
            (AfterHook::SwmlRequest { url, save }, outcome) => self.swml_request_done(&url, save, outcome),
            (AfterHook::SwmlFetch { params, execute }, outcome) => self.swml_fetched(params, execute, outcome),
        }
        self.running = Running::Idle;
        self.advance(ctx);
    }

    /// A redirect's verb finishes once its new application arrived.
    pub(super) fn finish_redirect(&mut self, ctx: &mut Ctx<'_>) {
        if self.current.is_some() {
            self.verb_status(ctx, "finished");
            self.current = None;
        }
    }

    /// Makes `app` the rest of the call's application.
    pub(super) fn install(&mut self, ctx: &mut Ctx<'_>, app: Application) {
        self.program = match app.0 {
            Doc::Verbs(steps) => Program::Verbs(steps, 0),
            Doc::Swml(doc) => Program::Swml(Box::new(self.swml_machine(ctx, doc))),
        };
    }

    pub(super) fn next_step(&mut self, ctx: &mut Ctx<'_>) -> Next {
        match &mut self.program {
            Program::Verbs(steps, next) => match steps.get(*next) {
                Some(step) => {
                    *next += 1;
                    Next::Step(step.clone())
                }
                None => Next::End,
            },
            Program::Swml(machine) => {
                let action = machine.advance();
                self.swml_action(ctx, action)
            }
        }
    }
}
