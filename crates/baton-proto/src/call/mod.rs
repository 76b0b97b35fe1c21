//! One call's session: answers the INVITE, runs the application's verbs one at a time,
//! executes transfers and reports to the application's hooks. Sans-IO: every entry point
//! takes `now`, and every effect is pushed to the [`Ctx`] outputs.

mod invite;
mod payload;
pub mod refer;
mod subscription;
mod swml;
mod tombstone;

use crate::app::{Application, Doc, Headers, Hook, Step, Verb};
use crate::dialog::Dialog;
use crate::hook::{Answer, Expect, HookJob, HookOutcome, Payload, ReplyTo};
use crate::output::{Output, Transmit};
use crate::settings::Settings;
use crate::sip::header::Name;
use crate::sip::parse::{parse, Core, Message};
use crate::sip::uri::starts_with_ci;
use crate::sip::write::{address, reason, Unwritable, Writer};
use crate::sip::{digest, sdp, sipfrag, Method};
use crate::stats::Stats;
use crate::tokens::Ids;
use crate::transport::Flow;
use crate::txn::{Again, Answered, ClientTxns, Response, TxnId};
use invite::{Acked, Fired, InviteTxn};
use refer::{Outcome, Transfer};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use subscription::{Subscription, Verdict};
pub use tombstone::Tombstone;

/// What a call's handlers need: the time, the settings, and where effects go.
pub struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a Settings,
    pub out: &'a mut VecDeque<Output>,
    pub ids: &'a mut Ids,
    pub stats: &'a mut Stats,
}

/// Answers one call keeps for retransmitted requests (see `answer_and_remember`).
const MAX_ANSWERED: usize = 32;

/// What baton accepts as a UAS. It sends REFER but does not accept one.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, UPDATE, INFO";

/// Whether `ALLOW` names the method.
pub fn allowed(method: Method) -> bool {
    use Method::*;
    matches!(method, Invite | Ack | Cancel | Bye | Options | Notify | Update | Info)
}

/// Where the INVITE dialog stands, as read from the INVITE transaction and the call's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not answered yet.
    Early,
    /// 200 sent, waiting for the ACK.
    Answering,
    Confirmed,
    Ended,
}

/// What the application is doing.
#[derive(Clone, Debug)]
enum Running {
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
    },
    Request {
        txn: TxnId,
    },
    /// The application is over.
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
enum AfterHook {
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
enum Program {
    /// The steps and the index of the next one.
    Verbs(Arc<[Arc<Step>]>, usize),
    Swml(Box<crate::app::swml::run::Machine>),
}

/// The next thing the program asks for.
enum Next {
    Step(Arc<Step>),
    /// A hook the program needs was sent; the call waits for it.
    Waiting,
    End,
}

/// How a call ended, for the status hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Trying,
    InProgress,
    Completed,
    Failed,
    Canceled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Trying => "trying",
            Status::InProgress => "in-progress",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
}

pub struct Call {
    pub key: u64,
    pub sid: Arc<str>,
    trace_id: String,
    dialog: Dialog,
    /// The INVITE's branch: its retransmissions, its CANCEL and its ACK carry it.
    invite_branch: Box<str>,
    invite: InviteTxn,
    status: Status,
    /// The last status the INVITE was answered with.
    sip_status: u16,
    our_sdp: Option<String>,
    answered_at: Option<Instant>,
    termination_by: Option<&'static str>,
    program: Program,
    current: Option<Arc<Step>>,
    running: Running,
    customer_data: Map<String, Value>,
    notify_events: bool,
    hook_seq: u64,
    sub: Option<Subscription>,
    client: ClientTxns,
    answered: Vec<Answered>,
    /// Set when the call ends: it is forgotten then (or once its transactions are done).
    linger_until: Option<Instant>,
    identity: payload::Identity,
    /// The INVITE gets its final answer by then, whatever the application does.
    setup_until: Instant,
    /// Applications that replaced the rest of this one (redirects, actionHook verbs).
    replaced: u32,
}

impl Call {
    /// Creates the call for a dialog-creating INVITE: `100 Trying` unless its application
    /// answers it at once.
    pub fn accept(
        ctx: &mut Ctx<'_>,
        key: u64,
        data: &[u8],
        msg: &Message<'_>,
        core: &Core<'_>,
        flow: Flow,
    ) -> Result<Call, &'static str> {
        let advertised = ctx.cfg.advertised(flow.local, msg);
        let dialog = Dialog::from_invite(msg, core, &ctx.ids.tag(), flow, &advertised)?;
        let mut call = Call {
            key,
            sid: ctx.ids.call_sid().into(),
            trace_id: ctx.ids.trace_id(),
            identity: payload::Identity::of(msg, core, flow.remote, flow.local),
            dialog,
            invite: InviteTxn::new(data),
            invite_branch: core.via.branch().unwrap_or_default().into(),
            status: Status::Trying,
            sip_status: 100,
            our_sdp: None,
            answered_at: None,
            termination_by: None,
            program: Program::Verbs(Arc::new([]), 0),
            current: None,
            running: Running::Idle,
            customer_data: Map::new(),
            notify_events: false,
            hook_seq: 0,
            sub: None,
            client: ClientTxns::default(),
            answered: Vec::new(),
            linger_until: None,
            setup_until: ctx.now + ctx.cfg.hook_wait,
            replaced: 0,
        };
        call.report_status(ctx, Status::Trying);
        match (&ctx.cfg.app, &ctx.cfg.call_hook) {
            (Some(app), _) => {
                call.install(ctx, app.clone());
                call.advance(ctx);
                // RFC 3261 §17.2.1: no 100 when the application answered at once.
                if call.sip_status == 100 {
                    call.answer_with(ctx, 100, &[]);
                }
            }
            (None, Some(hook)) => {
                call.answer_with(ctx, 100, &[]);
                let body = payload::call_hook(&call, msg, ctx.cfg);
                let hook = hook.clone();
                call.wait_for(ctx, &hook, Payload::Event(body), Expect::Application, AfterHook::Application);
            }
            (None, None) => call.reject(ctx, "no application is configured"),
        }
        Ok(call)
    }

    fn phase(&self) -> Phase {
        if self.linger_until.is_some() {
            return Phase::Ended;
        }
        match self.invite {
            InviteTxn::Proceeding { .. } => Phase::Early,
            InviteTxn::Accepted { .. } => Phase::Answering,
            InviteTxn::Confirmed => Phase::Confirmed,
            InviteTxn::Completed { .. } | InviteTxn::Terminated => Phase::Ended,
        }
    }

    // ---- outputs -------------------------------------------------------------------

    fn transmit(&self, ctx: &mut Ctx<'_>, flow: Flow, bytes: Vec<u8>) {
        ctx.out.push_back(Output::Transmit(Transmit::on(flow, bytes)));
    }

    fn hook(&mut self, ctx: &mut Ctx<'_>, hook: &Hook, body: Payload, expect: Option<Expect>) -> u64 {
        self.hook_seq += 1;
        let reply =
            expect.map(|expect| ReplyTo { shard: ctx.ids.shard(), call: self.key, token: self.hook_seq, expect });
        ctx.out.push_back(Output::Hook(HookJob {
            call_sid: self.sid.clone(),
            hook: hook.clone(),
            body,
            reply,
            at: ctx.now,
        }));
        self.hook_seq
    }

    /// Sends a hook whose answer the application needs, and waits for it: at most
    /// `--hook-wait`, since the hook side's retries are per hook and may outlast any bound.
    fn wait_for(&mut self, ctx: &mut Ctx<'_>, hook: &Hook, body: Payload, expect: Expect, after: AfterHook) {
        let token = self.hook(ctx, hook, body, Some(expect));
        self.running = Running::Hook { token, after, until: ctx.now + ctx.cfg.hook_wait };
    }

    fn report_status(&mut self, ctx: &mut Ctx<'_>, status: Status) {
        self.status = status;
        if let Some(hook) = ctx.cfg.status_hook.clone() {
            let body = payload::status(self, ctx.now);
            self.hook(ctx, &hook, Payload::Event(body), None);
        }
    }

    /// Voice Gateway's `verb:status` events (docs/behaviour.md §4).
    fn verb_status(&mut self, ctx: &mut Ctx<'_>, event: &str) {
        let (Some(step), Some(hook)) = (self.current.as_deref(), &ctx.cfg.status_hook) else { return };
        let Some(id) = step.id.as_deref().filter(|_| self.notify_events) else { return };
        let body = json!({"type": "verb:status", "call_sid": &*self.sid,
                          "data": {"id": id, "name": step.verb.name(), "event": event}});
        let hook = hook.clone();
        self.hook(ctx, &hook, Payload::Event(body), None);
    }

    /// Answers a non-INVITE request and keeps how, for its retransmissions (Timer J).
    fn reply(
        &mut self,
        ctx: &mut Ctx<'_>,
        msg: &Message<'_>,
        core: &Core<'_>,
        src: Flow,
        code: u16,
        extra: &'static [(&'static str, &'static str)],
    ) {
        let again = Again::Reply { code, our_tag: true, extra };
        self.answer_and_remember(ctx, msg, core, src, again);
    }

    /// Sends a final response and keeps it for the request's retransmissions (Timer J).
    /// A call keeps at most `MAX_ANSWERED` of them: a peer sending requests with ever-new
    /// branches cannot grow a call without bound (the oldest answer is forgotten).
    fn answer_and_remember(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, dst: Flow, again: Again) {
        let bytes = again.bytes(msg, dst.remote, self.dialog.local_tag());
        // Timer J is zero on a reliable transport: no retransmission will come.
        if !dst.transport.is_reliable() {
            if self.answered.len() >= MAX_ANSWERED {
                self.answered.remove(0);
            }
            let id = ctx.ids.txn(core.via.branch().unwrap_or_default(), core.cseq.method);
            self.answered.push(Answered { id, again, until: ctx.now + ctx.cfg.timers.give_up() });
        }
        self.transmit_written(ctx, dst, bytes);
    }

    /// Sends what the writer produced; a message it refused is never sent (only baton's
    /// own values reach this path, so a refusal is a bug worth a log line).
    fn transmit_written(&self, ctx: &mut Ctx<'_>, dst: Flow, written: Result<Vec<u8>, Unwritable>) {
        match written {
            Ok(bytes) => self.transmit(ctx, dst, bytes),
            Err(e) => tracing::error!(call_sid = %self.sid, error = %e, "answer not sent"),
        }
    }

    /// Answers the INVITE with a code of baton's own and its standard reason phrase.
    fn answer_with(&mut self, ctx: &mut Ctx<'_>, code: u16, extra: &[(String, String)]) {
        if let Err(e) = self.respond_invite(ctx, code, reason(code), extra, None) {
            tracing::error!(call_sid = %self.sid, code, error = %e, "answer to the INVITE not sent");
        }
    }

    fn respond_invite(
        &mut self,
        ctx: &mut Ctx<'_>,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(), Unwritable> {
        let Some(Ok(invite)) = self.invite.request().map(parse) else { return Ok(()) };
        let bytes = self.invite_response(&invite, code, reason, extra, body)?;
        drop(invite);
        self.send_invite_response(ctx, code, bytes);
        Ok(())
    }

    fn invite_response(
        &self,
        invite: &Message<'_>,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Vec<u8>, Unwritable> {
        let tag = (code > 100).then_some(self.dialog.local_tag());
        let mut w = Writer::response_to(invite, self.dialog.flow.remote, code, reason, tag);
        if (200..300).contains(&code) {
            w.header("Contact", self.dialog.contact()).header("Allow", ALLOW).header("Supported", "norefersub");
        }
        for (name, value) in extra {
            w.header(name, value);
        }
        w.finish(body)
    }

    /// Sends an answer to the INVITE and keeps it for the INVITE's retransmissions.
    fn send_invite_response(&mut self, ctx: &mut Ctx<'_>, code: u16, bytes: Vec<u8>) {
        let transport = self.dialog.flow.transport;
        if self.invite.answered(ctx.now, &ctx.cfg.timers, transport, code, bytes.clone()) {
            self.sip_status = code;
            self.transmit(ctx, self.dialog.flow, bytes);
        }
    }

    fn send_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        method: &str,
        extra: &[(String, String)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(TxnId, u32), Unwritable> {
        let branch = ctx.ids.branch(self.key);
        let (mut w, cseq) = self.dialog.request(method, &branch);
        for (name, value) in extra {
            w.header(name, value);
        }
        let bytes = w.finish(body)?;
        let flow = self.dialog.next_hop;
        let txn = self.client.start(ctx.now, &ctx.cfg.timers, &branch, Method::of(method), cseq, &bytes, flow);
        self.transmit(ctx, flow, bytes);
        Ok((txn, cseq))
    }

    // ---- lifecycle -------------------------------------------------------------------

    fn end(&mut self, ctx: &mut Ctx<'_>, status: Status, by: Option<&'static str>) {
        if self.linger_until.is_some() {
            return;
        }
        self.invite.abandon(); // over before its ACK: the 2xx is no longer offered
        self.running = Running::Stopped;
        self.termination_by = by;
        self.linger_until = Some(ctx.now + ctx.cfg.timers.give_up());
        self.report_status(ctx, status);
    }

    /// The call_hook failed or the application cannot run: 480 with the reason.
    fn reject(&mut self, ctx: &mut Ctx<'_>, why: &str) {
        let why: String = why.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
        tracing::debug!(call_sid = %self.sid, reason = %why, "call rejected");
        if self.phase() == Phase::Early {
            self.answer_with(ctx, 480, &[("X-Reason".to_string(), why)]);
        }
        self.end(ctx, Status::Failed, Some("baton"));
    }

    /// Ends the call from our side: 603 before the answer, BYE after the ACK. Headers the
    /// application gave that cannot be written are left out (the call must still end),
    /// and the log says why.
    fn hang_up(&mut self, ctx: &mut Ctx<'_>, headers: &[(String, String)]) {
        match self.phase() {
            Phase::Early => {
                let declined = self.respond_invite(ctx, 603, "Decline", headers, None);
                if let Err(e) = declined {
                    tracing::warn!(call_sid = %self.sid, error = %e, "hangup: headers left out");
                    let _ = self.respond_invite(ctx, 603, "Decline", &[], None);
                }
                self.end(ctx, Status::Failed, Some("baton"));
            }
            Phase::Answering => {
                // RFC 3261 §15: no BYE before the ACK of our 200; the ACK sends it, and a
                // call never acknowledged ends without one (its Contact is unconfirmed).
                self.running = Running::Stopped;
                self.invite.hang_up_after_ack(headers);
            }
            Phase::Confirmed => {
                if let Err(e) = self.send_request(ctx, "BYE", headers, None) {
                    tracing::warn!(call_sid = %self.sid, error = %e, "hangup: headers left out");
                    let _ = self.send_request(ctx, "BYE", &[], None);
                }
                self.end(ctx, Status::Completed, Some("baton"));
            }
            Phase::Ended => {}
        }
    }

    fn answer(&mut self, ctx: &mut Ctx<'_>) {
        let ip = self.dialog.flow.local.ip();
        let session = ctx.ids.random() >> 33;
        // Parsed once for both the offer and the answer's headers.
        let invite = self.invite.request().and_then(|r| parse(r).ok());
        let sdp = invite
            .as_ref()
            .filter(|m| m.get(Name::ContentType).is_some_and(|c| starts_with_ci(c, "application/sdp")))
            .and_then(|m| sdp::answer(m.body, ip, session, ctx.cfg.sdp_direction))
            .unwrap_or_else(|| sdp::offer(ip, session, ctx.cfg.sdp_direction));
        let bytes = invite.map(|m| self.invite_response(&m, 200, "OK", &[], Some(("application/sdp", sdp.as_bytes()))));
        match bytes {
            Some(Ok(bytes)) => self.send_invite_response(ctx, 200, bytes),
            Some(Err(e)) => tracing::error!(call_sid = %self.sid, error = %e, "200 not sent"),
            None => {}
        }
        self.our_sdp = Some(sdp);
        self.answered_at = Some(ctx.now);
        self.report_status(ctx, Status::InProgress);
    }

    // ---- the application ------------------------------------------------------------

    /// Runs verbs until one has to wait.
    fn advance(&mut self, ctx: &mut Ctx<'_>) {
        while matches!(self.running, Running::Idle) {
            if self.phase() == Phase::Ended {
                self.running = Running::Stopped;
                return;
            }
            let step = match self.next_step(ctx) {
                Next::Step(step) => step,
                Next::Waiting => return,
                Next::End => {
                    tracing::debug!(call_sid = %self.sid, "application ended");
                    self.running = Running::Stopped;
                    self.hang_up(ctx, &[]);
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

    fn start_current(&mut self, ctx: &mut Ctx<'_>) {
        let Some(step) = self.current.clone() else { return };
        match &step.verb {
            Verb::Refer(r) => {
                let host = ctx.cfg.refer_domain.clone().unwrap_or_else(|| self.dialog.remote_host());
                let mut headers = vec![("Refer-To".to_string(), address(&r.refer_to, None, &host))];
                let referred_by = match &r.referred_by {
                    Some(by) => address(by, r.referred_by_display.as_deref(), &host),
                    None => self.identity.referred_by(&host),
                };
                headers.push(("Referred-By".to_string(), referred_by));
                headers.extend(r.headers.iter().cloned());
                let (txn, cseq) = match self.send_request(ctx, "REFER", &headers, None) {
                    Ok(sent) => sent,
                    Err(e) => return self.refer_not_sent(ctx, e),
                };
                let timeout = r.timeout.unwrap_or(ctx.cfg.notify_timeout);
                self.sub = Some(Subscription::new(cseq));
                self.running = Running::Refer { transfer: Transfer::new(cseq, timeout), txn, headers, challenges: 0 };
            }
            Verb::Decline { status, reason: why, headers } => {
                if self.phase() == Phase::Early {
                    let why = why.as_deref().unwrap_or_else(|| reason(*status));
                    match self.respond_invite(ctx, *status, why, headers, None) {
                        Ok(()) => self.end(ctx, Status::Failed, Some("baton")),
                        Err(e) => self.reject(ctx, &format!("sip:decline: {e}")),
                    }
                } else {
                    tracing::warn!(call_sid = %self.sid, "sip:decline on an answered call is skipped");
                    self.finish_verb(ctx, None);
                }
            }
            Verb::Hangup { headers } => self.hang_up(ctx, headers),
            Verb::Pause { length } => self.running = Running::Pause { until: ctx.now + *length },
            Verb::Answer => self.finish_verb(ctx, None),
            Verb::Redirect { action_hook } => {
                let body = Payload::Event(Value::Object(payload::call_fields(self)));
                self.wait_for(ctx, action_hook, body, Expect::Verbs, AfterHook::Replace);
            }
            Verb::Tag { data } => {
                self.customer_data.extend(data.clone());
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
    fn finish_verb(&mut self, ctx: &mut Ctx<'_>, action: Option<(Hook, Value)>) {
        self.verb_status(ctx, "finished");
        self.current = None;
        match action {
            Some((hook, body)) => self.wait_for(ctx, &hook, Payload::Event(body), Expect::Verbs, AfterHook::Replace),
            None => self.running = Running::Idle,
        }
    }

    /// A `sip:request`'s actionHook body: its result, and why it was never sent if it was not.
    fn request_result(&self, code: u16, why: &str, unsent: Option<&Unwritable>) -> Value {
        let mut body = payload::call_fields(self);
        body.insert("result".into(), json!(if code < 300 { "success" } else { "failed" }));
        body.insert("sip_status".into(), json!(code));
        body.insert("sip_reason".into(), json!(why));
        if let Some(e) = unsent {
            body.insert("error".into(), json!(e.to_string()));
        }
        Value::Object(body)
    }

    /// The REFER could not be written (a value would have changed its structure): the verb
    /// fails as a REFER refused with 500 would, its actionHook says why, nothing is sent.
    fn refer_not_sent(&mut self, ctx: &mut Ctx<'_>, e: Unwritable) {
        tracing::info!(call_sid = %self.sid, error = %e, "REFER not sent");
        let outcome = Outcome { refer_status: 500, final_status: None, end: refer::End::NotSent };
        self.swml_refer_failed(&e);
        self.complete_refer_with(ctx, outcome, false, Some(&e));
    }

    /// The caller is gone (or the call is being ended under it): a transfer in progress
    /// reports its end, and verbs its actionHook returns will not run.
    fn caller_gone(&mut self, ctx: &mut Ctx<'_>) {
        let outcome = match &mut self.running {
            Running::Refer { transfer, .. } => transfer.on_far_end_bye(),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.complete_refer(ctx, outcome, true);
        }
    }

    /// `caller_gone`: the far end hung up during the transfer.
    fn complete_refer(&mut self, ctx: &mut Ctx<'_>, outcome: Outcome, caller_gone: bool) {
        self.complete_refer_with(ctx, outcome, caller_gone, None);
    }

    fn complete_refer_with(
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
        tracing::debug!(call_sid = %self.sid, refer_status = outcome.refer_status,
                       final_status = ?outcome.final_status, end = ?outcome.end, "transfer completed");
        let action = action_hook.map(|hook| {
            let mut body = payload::refer_action(self, &outcome, verb_id.as_deref());
            if let Some(e) = unsent {
                body["error"] = json!(e.to_string());
            }
            (hook, body)
        });
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
                tracing::debug!(call_sid = %self.sid, reason = %why, "application ends");
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
                tracing::debug!(call_sid = %self.sid, error = %why, "hook failed; the application goes on");
                self.finish_redirect(ctx);
            }
            (AfterHook::SwmlRequest { url, save }, outcome) => self.swml_request_done(&url, save, outcome),
            (AfterHook::SwmlFetch { params, execute }, outcome) => self.swml_fetched(params, execute, outcome),
        }
        self.running = Running::Idle;
        self.advance(ctx);
    }

    /// A redirect's verb finishes once its new application arrived.
    fn finish_redirect(&mut self, ctx: &mut Ctx<'_>) {
        if self.current.is_some() {
            self.verb_status(ctx, "finished");
            self.current = None;
        }
    }

    /// Makes `app` the rest of the call's application.
    fn install(&mut self, ctx: &mut Ctx<'_>, app: Application) {
        self.program = match app.0 {
            Doc::Verbs(steps) => Program::Verbs(steps, 0),
            Doc::Swml(doc) => Program::Swml(Box::new(self.swml_machine(ctx, doc))),
        };
    }

    fn next_step(&mut self, ctx: &mut Ctx<'_>) -> Next {
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

    // ---- SIP in ----------------------------------------------------------------------

    pub fn on_request(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, src: Flow) {
        let method = core.cseq.method;
        let branch = core.via.branch().unwrap_or_default();
        let is_ack = core.method == Method::Ack;
        if !is_ack {
            let id = ctx.ids.txn(branch, method);
            if let Some(done) = self.answered.iter().find(|a| a.id == id) {
                let bytes = done.again.bytes(msg, src.remote, self.dialog.local_tag());
                self.transmit_written(ctx, src, bytes);
                return;
            }
        }
        match core.method {
            Method::Invite if core.to.tag().is_none() => {
                if branch == &*self.invite_branch {
                    if let Some(bytes) = self.invite.last_response() {
                        self.transmit(ctx, src, bytes.to_vec());
                    }
                } else {
                    self.reply(ctx, msg, core, src, 482, &[]);
                }
            }
            Method::Ack => self.on_ack(ctx, core),
            Method::Cancel => self.on_cancel(ctx, msg, core, src),
            _ if !self.dialog.matches_request(core) => {
                ctx.stats.unknown_dialog += 1;
                self.reply(ctx, msg, core, src, 481, &[]);
            }
            Method::Notify => self.on_notify(ctx, msg, core, src),
            _ if self.phase() == Phase::Ended => self.reply(ctx, msg, core, src, 481, &[]),
            Method::Bye => {
                self.reply(ctx, msg, core, src, 200, &[]);
                self.caller_gone(ctx);
                self.end(ctx, Status::Completed, Some("caller"));
            }
            Method::Invite | Method::Update => {
                // Session refresh or re-offer: answer with the SDP we already gave.
                let sdp = self.our_sdp.clone().unwrap_or_default();
                let mut w = Writer::response_to(msg, src.remote, 200, "OK", Some(self.dialog.local_tag()));
                w.header("Contact", self.dialog.contact()).header("Allow", ALLOW);
                let body = (!sdp.is_empty() && (core.method == Method::Invite || !msg.body.is_empty()))
                    .then_some(("application/sdp", sdp.as_bytes()));
                match w.finish(body) {
                    Ok(bytes) => self.answer_and_remember(ctx, msg, core, src, Again::Bytes(bytes.into())),
                    Err(e) => tracing::error!(call_sid = %self.sid, error = %e, "session refresh not answered"),
                }
            }
            Method::Options | Method::Info => self.reply(ctx, msg, core, src, 200, &[("Allow", ALLOW)]),
            _ => self.reply(ctx, msg, core, src, 405, &[("Allow", ALLOW)]),
        }
    }

    fn on_ack(&mut self, ctx: &mut Ctx<'_>, core: &Core<'_>) {
        let of_2xx = self.dialog.matches_request(core) && self.phase() == Phase::Answering;
        let of_failure = core.via.branch() == Some(&*self.invite_branch);
        match self.invite.on_ack(of_2xx, of_failure) {
            Acked::Confirmed(Some(headers)) => self.hang_up(ctx, &headers),
            Acked::Confirmed(None) if matches!(self.running, Running::AwaitAck) => {
                self.start_current(ctx);
                self.advance(ctx);
            }
            Acked::Confirmed(None) | Acked::Failure | Acked::Nothing => {}
        }
    }

    fn on_cancel(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, src: Flow) {
        if core.via.branch() != Some(&*self.invite_branch) {
            return self.reply(ctx, msg, core, src, 481, &[]);
        }
        // CANCEL's response carries the To as received (RFC 3261 §9.2).
        self.answer_and_remember(ctx, msg, core, src, Again::Reply { code: 200, our_tag: false, extra: &[] });
        if self.phase() == Phase::Early {
            self.answer_with(ctx, 487, &[]);
            self.end(ctx, Status::Canceled, Some("caller"));
        }
    }

    fn on_notify(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, src: Flow) {
        let verdict = Subscription::notify(&mut self.sub, msg.get(Name::Event), msg.get(Name::SubscriptionState));
        let (id, terminated) = match verdict {
            Verdict::Refuse { code, extra } => return self.reply(ctx, msg, core, src, code, extra),
            Verdict::Accept { id, terminated } => (id, terminated),
        };
        self.reply(ctx, msg, core, src, 200, &[]);
        let status = sipfrag::status_line(msg.body).map(|(code, _)| code);
        let Running::Refer { transfer, .. } = &mut self.running else { return };
        if transfer.cseq != id {
            return;
        }
        let effect = transfer.on_notify(ctx.now, core.cseq.seq, status, terminated);
        let refer_code = transfer.refer_status();
        if let Some(code) = effect.progress {
            self.fire_event_hook(ctx, code);
            self.swml_status(ctx, refer_code, Some(code));
        }
        if let Some(outcome) = effect.outcome {
            self.complete_refer(ctx, outcome, false);
        }
    }

    fn fire_event_hook(&mut self, ctx: &mut Ctx<'_>, code: u16) {
        let Some(Step { id, verb: Verb::Refer(r) }) = self.current.as_deref() else { return };
        let Some(hook) = r.event_hook.clone() else { return };
        let mut body = json!({"event": "transfer-status", "call_status": code, "call_sid": &*self.sid});
        if let Some(id) = id {
            body["verb_id"] = json!(id);
        }
        self.hook(ctx, &hook, Payload::Event(body), None);
    }

    /// Returns false when the response matches no transaction of this call (a stray).
    pub fn on_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>) -> bool {
        let (Some(code), Some(branch)) = (msg.status(), core.via.branch()) else { return false };
        // The Call-ID and our From-tag must agree too, so that a response cannot be forged
        // by anyone who merely learned a branch.
        if !self.dialog.matches_response(core) {
            return false;
        }
        let txn = match self.client.on_response(ctx.now, &ctx.cfg.timers, branch, (core.cseq.seq, core.method), code) {
            Response::Stray => return false,
            Response::Absorbed => return true,
            Response::Final(txn) => txn,
        };
        if matches!(code, 401 | 407) && self.answer_challenge(ctx, msg, code, txn) {
            return true;
        }
        let refer_sub_false = msg.get(Name::ReferSub).is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        self.on_final(ctx, txn, code, msg.reason(), refer_sub_false);
        true
    }

    /// Sends the REFER again with Digest credentials (docs/behaviour.md §2.2): once per
    /// challenge; a second challenge is final unless it says the nonce was only stale.
    fn answer_challenge(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, code: u16, txn: TxnId) -> bool {
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
        if let Running::Refer { transfer, txn, headers: kept, challenges } = &mut self.running {
            transfer.cseq = cseq;
            *txn = again;
            *kept = headers;
            *challenges += 1;
        }
        true
    }

    /// A client transaction ended: with a final response, or timed out (408).
    fn on_final(&mut self, ctx: &mut Ctx<'_>, txn: TxnId, code: u16, why: &str, refer_sub_false: bool) {
        match &mut self.running {
            Running::Refer { transfer, txn: refer, .. } if *refer == txn => {
                if code >= 300 {
                    self.sub = None;
                }
                let outcome = transfer.on_response(ctx.now, code, refer_sub_false);
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

    // ---- time ------------------------------------------------------------------------

    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        self.answered.retain(|a| a.until > now);
        for (txn, method) in self.client.poll(now, ctx.out) {
            tracing::debug!(call_sid = %self.sid, ?method, "request timed out (Timer F)");
            self.on_final(ctx, txn, 408, "Request Timeout", false);
        }
        let ended = self.phase() == Phase::Ended;
        match self.invite.poll(now) {
            Some(Fired::Resend(bytes)) => self.transmit(ctx, self.dialog.flow, bytes),
            Some(Fired::NoAck) if !ended => {
                // Without the ACK the caller's Contact was never confirmed: a BYE there
                // could go to anyone the INVITE named (RFC 3261 §13.3.1.4).
                tracing::debug!(call_sid = %self.sid, "no ACK for our 200; ending the call without BYE");
                ctx.stats.never_acked += 1;
                self.end(ctx, Status::Failed, Some("baton"));
            }
            Some(Fired::NoAck | Fired::Abandoned) | None => {}
        }
        match &mut self.running {
            Running::Pause { until } if *until <= now => {
                self.finish_verb(ctx, None);
                self.advance(ctx);
            }
            Running::Refer { transfer, .. } => {
                if let Some(outcome) = transfer.on_timeout(now) {
                    self.complete_refer(ctx, outcome, false);
                }
            }
            Running::Hook { token, until, .. } if *until <= now => {
                let token = *token;
                let why = format!("no answer within {} s (--hook-wait)", ctx.cfg.hook_wait.as_secs_f64());
                self.on_hook_reply(ctx, token, Err(why));
            }
            _ => {}
        }
        // Whatever the application does (redirect after redirect, a hook that answers just
        // in time, again and again), the INVITE gets its final answer by `--hook-wait`.
        if self.phase() == Phase::Early && now >= self.setup_until {
            let why = format!("no final answer within {} s (--hook-wait)", ctx.cfg.hook_wait.as_secs_f64());
            self.reject(ctx, &why);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        let running = match &self.running {
            Running::Pause { until } | Running::Hook { until, .. } => Some(*until),
            Running::Refer { transfer, .. } => transfer.deadline(),
            _ => None,
        };
        let transactions = self.client.deadlines();
        // The call is forgotten only once its transactions are done too.
        let linger = self.linger_until.map(|l| transactions.clone().fold(l, Instant::max));
        transactions
            .chain(self.invite.deadline())
            .chain(self.answered.iter().map(|a| a.until))
            .chain(running)
            .chain(linger)
            .chain((self.phase() == Phase::Early).then_some(self.setup_until))
            .min()
    }

    /// Over and past every retransmission window: the call can be forgotten.
    pub fn finished(&self, now: Instant) -> bool {
        self.linger_until.is_some_and(|t| now >= t) && self.client.is_empty()
    }
}

impl Call {
    /// Client transactions and remembered answers this call holds.
    pub fn transactions(&self) -> usize {
        self.client.len() + self.answered.len()
    }

    pub fn is_active(&self) -> bool {
        self.phase() != Phase::Ended
    }

    /// The caller acknowledged our 200: its address is confirmed.
    pub fn is_confirmed(&self) -> bool {
        self.phase() == Phase::Confirmed
    }

    /// Shutdown: a transfer in progress reports its end, then the call is ended.
    pub fn shut_down(&mut self, ctx: &mut Ctx<'_>) {
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

    /// Whether any hook of this call was queued (and so the hook side keeps a queue for it).
    pub fn sent_hooks(&self) -> bool {
        self.hook_seq > 0
    }

    pub fn dialog_call_id(&self) -> &str {
        self.dialog.call_id()
    }
}
