//! One call's session: answers the INVITE, runs the application's verbs one at a time,
//! executes transfers and reports to the application's hooks. Sans-IO: every entry point
//! takes `now`, and every effect is pushed to the [`Ctx`] outputs.

mod control;
mod invite;
mod payload;
pub mod refer;
mod subscription;
mod swml;
mod tombstone;
mod transfer;
mod verbs;

#[cfg(test)]
mod tests;

use crate::app::{Hook, Step};
use crate::dialog::Dialog;
use crate::event::{Event, Identity};
use crate::hook::{Expect, HookJob, Payload, ReplyTo};
use crate::output::{Output, Transmit};
use crate::settings::Settings;
use crate::sip::header::Name;
use crate::sip::parse::{parse, Core, Message, StartLine};
use crate::sip::uri::{starts_with_ci, Uri};
use crate::sip::write::{reason, Unwritable, Writer};
use crate::sip::{sdp, Method};
use crate::stats::Stats;
use crate::tokens::Ids;
use crate::transport::Flow;
use crate::txn::{Again, Answered, ClientTxns, Response, TxnId};
use invite::{Acked, Fired, InviteTxn};
use refer::Outcome;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use subscription::Subscription;
pub use tombstone::Tombstone;
use verbs::{AfterHook, Program, Running};

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

/// The caller has left baton after a transfer (or hung up during one): the call itself
/// may not be over yet (docs/behaviour.md §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// Nothing more for baton to send: its BYE went, or the far end's is awaited.
    Gone,
    /// baton sends its BYE then, unless the far end's came first.
    ByeAt(Instant),
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
    /// Set by the `tag` verb; shared by the hooks that carry it.
    customer_data: Option<Arc<Map<String, Value>>>,
    notify_events: bool,
    hook_seq: u64,
    sub: Option<Subscription>,
    client: ClientTxns,
    answered: Vec<Answered>,
    /// Set when the call ends: it is forgotten then (or once its transactions are done).
    linger_until: Option<Instant>,
    identity: Arc<Identity>,
    /// The INVITE gets its final answer by then, whatever the application does.
    setup_until: Instant,
    /// Applications that replaced the rest of this one (redirects, actionHook verbs).
    replaced: u32,
    /// The trunk profile the call matched, by its place in `Settings::profiles`.
    profile: Option<u16>,
    /// Set once the caller has left after a transfer.
    left: Option<Left>,
    /// The targets of the current `referTo` array tried so far.
    tried: Vec<refer::Attempt>,
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
        let sid: Arc<str> = ctx.ids.call_sid().into();
        let profile = match (&ctx.cfg.profiles[..], msg.start) {
            ([], _) => None,
            (profiles, StartLine::Request { uri, .. }) => {
                crate::profile::find(profiles, flow.remote.ip(), Uri::parse(uri).map(|u| u.host))
            }
            (profiles, StartLine::Response { .. }) => crate::profile::find(profiles, flow.remote.ip(), None),
        };
        let mut call = Call {
            key,
            identity: payload::identity(msg, core, &sid, ctx.ids.trace_id(), flow),
            sid,
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
            customer_data: None,
            notify_events: false,
            hook_seq: 0,
            sub: None,
            client: ClientTxns::default(),
            answered: Vec::new(),
            linger_until: None,
            setup_until: ctx.now + ctx.cfg.hook_wait,
            replaced: 0,
            profile,
            left: None,
            tried: Vec::new(),
        };
        if let Some(trunk) = call.trunk(ctx.cfg) {
            tracing::debug!(call_sid = %call.sid, call_id = call.dialog.call_id(), profile = trunk.name, "trunk profile");
        }
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

    /// The trunk profile the call matched (docs/behaviour.md §8).
    fn trunk<'c>(&self, cfg: &'c Settings) -> Option<&'c crate::profile::TrunkProfile> {
        self.profile.and_then(|i| cfg.profiles.get(usize::from(i)))
    }

    /// A SWML document running on after its caller left (docs/behaviour.md §3.3).
    fn detached(&self) -> bool {
        self.left.is_some() && matches!(self.program, Program::Swml(_))
    }

    /// The application is dropped: what it would still do is not done (shutdown, an
    /// operator's hangup).
    fn abandon_program(&mut self) {
        self.program = Program::Verbs(Arc::new([]), 0);
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
            call_id: self.identity.call_id.clone(),
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
        let body = Event::json(json!({"type": "verb:status", "call_sid": &*self.sid,
                                      "data": {"id": id, "name": step.verb.name(), "event": event}}));
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
            Err(e) => {
                tracing::error!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "answer not sent")
            }
        }
    }

    /// Answers the INVITE with a code of baton's own and its standard reason phrase.
    fn answer_with(&mut self, ctx: &mut Ctx<'_>, code: u16, extra: &[(String, String)]) {
        if let Err(e) = self.respond_invite(ctx, code, reason(code), extra, None) {
            tracing::error!(call_sid = %self.sid, call_id = self.dialog.call_id(), code, error = %e, "answer to the INVITE not sent");
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
        let flow = self.dialog.next_hop_flow();
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
        if !self.detached() {
            self.running = Running::Stopped;
        }
        self.termination_by = by;
        self.linger_until = Some(ctx.now + ctx.cfg.timers.give_up());
        self.report_status(ctx, status);
    }

    /// The call_hook failed or the application cannot run: 480 with the reason.
    fn reject(&mut self, ctx: &mut Ctx<'_>, why: &str) {
        let why: String = why.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
        tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), reason = %why, "call rejected");
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
                    tracing::warn!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "hangup: headers left out");
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
                    tracing::warn!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "hangup: headers left out");
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
            Some(Err(e)) => {
                tracing::error!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "200 not sent")
            }
            None => {}
        }
        self.our_sdp = Some(sdp);
        self.answered_at = Some(ctx.now);
        self.report_status(ctx, Status::InProgress);
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
                    Err(e) => {
                        tracing::error!(call_sid = %self.sid, call_id = self.dialog.call_id(), error = %e, "session refresh not answered")
                    }
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

    // ---- time ------------------------------------------------------------------------

    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        self.answered.retain(|a| a.until > now);
        for (txn, method) in self.client.poll(now, ctx.out) {
            tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), ?method, "request timed out (Timer F)");
            self.on_final(ctx, txn, 408, "Request Timeout", false);
        }
        let ended = self.phase() == Phase::Ended;
        match self.invite.poll(now) {
            Some(Fired::Resend(bytes)) => self.transmit(ctx, self.dialog.flow, bytes),
            Some(Fired::NoAck) if !ended => {
                // Without the ACK the caller's Contact was never confirmed: a BYE there
                // could go to anyone the INVITE named (RFC 3261 §13.3.1.4).
                tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), "no ACK for our 200; ending the call without BYE");
                ctx.stats.never_acked += 1;
                self.end(ctx, Status::Failed, Some("baton"));
            }
            Some(Fired::NoAck | Fired::Abandoned) | None => {}
        }
        if let (Some(Left::ByeAt(at)), false) = (self.left, ended) {
            if now >= at {
                self.left = Some(Left::Gone);
                self.hang_up(ctx, &[]);
            }
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
        let bye = match self.left {
            Some(Left::ByeAt(at)) if self.phase() != Phase::Ended => Some(at),
            _ => None,
        };
        let transactions = self.client.deadlines();
        // The call is forgotten only once its transactions are done too.
        let linger = self.linger_until.map(|l| transactions.clone().fold(l, Instant::max));
        transactions
            .chain(self.invite.deadline())
            .chain(self.answered.iter().map(|a| a.until))
            .chain(running)
            .chain(bye)
            .chain(linger)
            .chain((self.phase() == Phase::Early).then_some(self.setup_until))
            .min()
    }

    /// Over and past every retransmission window, with no hook awaited (a SWML document
    /// going on after the call may still wait for one): the call can be forgotten.
    pub fn finished(&self, now: Instant) -> bool {
        self.linger_until.is_some_and(|t| now >= t)
            && self.client.is_empty()
            && !matches!(self.running, Running::Hook { .. })
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

    /// Whether any hook of this call was queued (and so the hook side keeps a queue for it).
    pub fn sent_hooks(&self) -> bool {
        self.hook_seq > 0
    }

    pub fn dialog_call_id(&self) -> &str {
        self.dialog.call_id()
    }
}
