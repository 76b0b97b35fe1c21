//! The verb interpreter and the call around it, driven directly on a virtual clock: each
//! test holds one `Call` and feeds it messages, hook answers and time.

use super::verbs::Running;
use super::{Call, Ctx, Phase};
use crate::app::parse_document;
use crate::hook::{Answer, HookJob};
use crate::output::Output;
use crate::settings::Settings;
use crate::sip::parse::parse;
use crate::stats::Stats;
use crate::tokens::{Ids, Seed};
use crate::transport::Flow;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const INVITE: &str = "INVITE sip:bot@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-i1\r\n\
From: <sip:alice@10.0.0.2>;tag=a1\r\nTo: <sip:bot@10.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.2>\r\nContent-Length: 0\r\n\r\n";

/// One call, what it sent, and a clock that moves only when told.
struct Bench {
    cfg: Settings,
    out: VecDeque<Output>,
    ids: Ids,
    stats: Stats,
    now: Instant,
    flow: Flow,
}

impl Bench {
    fn new(app: Value, tweak: impl FnOnce(&mut Settings)) -> (Bench, Call) {
        let mut cfg = Settings { app: Some(parse_document(&app.to_string()).unwrap()), ..Settings::default() };
        tweak(&mut cfg);
        let flow = Flow::udp("10.0.0.1:5060".parse().unwrap(), "10.0.0.2:5060".parse().unwrap());
        let mut bench = Bench {
            cfg,
            out: VecDeque::new(),
            ids: Ids::new(0, Seed::fixed(1)),
            stats: Stats::default(),
            now: Instant::now(),
            flow,
        };
        let msg = parse(INVITE.as_bytes()).unwrap();
        let core = msg.core().unwrap();
        let call = Call::accept(&mut bench.ctx(), 1, INVITE.as_bytes(), &msg, &core, flow).unwrap();
        (bench, call)
    }

    fn ctx(&mut self) -> Ctx<'_> {
        Ctx { now: self.now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats }
    }

    /// The first line of every message sent since the last look, and the hooks.
    fn take(&mut self) -> (Vec<String>, Vec<HookJob>) {
        let (mut sent, mut hooks) = (Vec::new(), Vec::new());
        for out in self.out.drain(..) {
            match out {
                Output::Transmit(t) => sent.push(String::from_utf8_lossy(&t.bytes).lines().next().unwrap().to_string()),
                Output::Hook(job) => hooks.push(job),
                Output::CallGone(_) => {}
            }
        }
        (sent, hooks)
    }

    fn request(&mut self, call: &mut Call, text: &str) {
        let msg = parse(text.as_bytes()).unwrap();
        let core = msg.core().unwrap();
        let flow = self.flow;
        call.on_request(&mut self.ctx(), &msg, &core, flow);
    }

    /// Acknowledges the 200 the call sent.
    fn ack(&mut self, call: &mut Call) {
        let to = format!("<sip:bot@10.0.0.1>;tag={}", call.dialog.local_tag());
        self.request(
            call,
            &format!(
                "ACK sip:baton@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-a1\r\nFrom: <sip:alice@10.0.0.2>;tag=a1\r\n\
                 To: {to}\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            ),
        );
    }

    /// Moves the clock to the call's next deadline and runs it.
    fn next_deadline(&mut self, call: &mut Call) -> Duration {
        let start = self.now;
        self.now = call.deadline().expect("a deadline");
        call.on_timeout(&mut self.ctx());
        self.now - start
    }
}

#[test]
fn verbs_run_in_order_and_a_verb_that_needs_the_dialog_waits_for_the_ack() {
    let app = json!([{"verb": "tag", "data": {"q": "support"}}, {"verb": "config", "notifyEvents": true},
                     {"verb": "pause", "length": 2}]);
    let (mut b, mut call) = Bench::new(app, |_| {});
    assert_eq!(b.take().0, ["SIP/2.0 200 OK"], "a pause answers the call first");
    assert!(matches!(call.running, Running::AwaitAck));
    assert_eq!(call.customer_data.as_deref().map(|d| d["q"].clone()), Some(json!("support")), "tag ran");
    assert!(call.notify_events, "config ran");
    b.ack(&mut call);
    assert!(matches!(call.running, Running::Pause { .. }));
    assert_eq!(b.next_deadline(&mut call), Duration::from_secs(2), "the pause's length");
    assert_eq!(b.take().0, ["BYE sip:alice@10.0.0.2 SIP/2.0"], "the application is over: hang up");
    assert_eq!(call.phase(), Phase::Ended);
}

#[test]
fn an_action_hook_answer_replaces_the_rest_and_redirects_are_bounded() {
    let app = json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "hangup"}]);
    let again = parse_document(&json!([{"verb": "redirect", "actionHook": "/next"}]).to_string()).unwrap();
    let (mut b, mut call) = Bench::new(app, |s| s.max_redirects = 1);
    let (sent, hooks) = b.take();
    assert_eq!(sent, ["SIP/2.0 100 Trying"], "a 100 while the hook is awaited");
    let token = hooks[0].reply.unwrap().token;
    call.on_hook_reply(&mut b.ctx(), token, Ok(Answer::Application(again.clone())));
    let (_, hooks) = b.take();
    assert_eq!((call.replaced, hooks.len()), (1, 1), "the new application runs: a second redirect");
    // A stale answer (the first hook's token) changes nothing.
    call.on_hook_reply(&mut b.ctx(), token, Ok(Answer::Nothing));
    assert!(matches!(call.running, Running::Hook { .. }) && b.take().0.is_empty());
    let token = hooks[0].reply.unwrap().token;
    call.on_hook_reply(&mut b.ctx(), token, Ok(Answer::Application(again)));
    let (sent, _) = b.take();
    assert_eq!(sent, ["SIP/2.0 480 Temporarily Unavailable"], "over --max-redirects: refused, not followed");
    assert_eq!(call.phase(), Phase::Ended);
}

#[test]
fn an_action_hook_that_answers_nothing_lets_the_application_go_on() {
    let app = json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "sip:decline", "status": 486}]);
    let (mut b, mut call) = Bench::new(app, |_| {});
    let token = b.take().1[0].reply.unwrap().token;
    call.on_hook_reply(&mut b.ctx(), token, Err("the application's hook answered HTTP 500".into()));
    assert_eq!(b.take().0, ["SIP/2.0 486 Busy Here"], "a failed hook is no answer: the next verb runs");
}

#[test]
fn a_hook_never_answered_is_given_up_at_hook_wait() {
    let app = json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "sip:decline", "status": 603}]);
    let (mut b, mut call) = Bench::new(app, |s| s.hook_wait = Duration::from_secs(7));
    b.take();
    assert_eq!(b.next_deadline(&mut call), Duration::from_secs(7));
    assert_eq!(b.take().0, ["SIP/2.0 603 Decline"]);
}

#[test]
fn an_update_cuts_a_wait_short_but_not_a_transfer() {
    use crate::summary::{CallUpdate, UpdateError};
    let (mut b, mut call) = Bench::new(json!([{"verb": "pause", "length": 60}]), |_| {});
    b.ack(&mut call);
    b.take();
    let refer = parse_document(&json!([{"verb": "sip:refer", "referTo": "agent"}]).to_string()).unwrap();
    assert_eq!(call.update(&mut b.ctx(), CallUpdate::Application(refer.clone())), Ok(()));
    assert_eq!(b.take().0, ["REFER sip:alice@10.0.0.2 SIP/2.0"], "the pause is cut short");
    assert_eq!(call.update(&mut b.ctx(), CallUpdate::Application(refer)), Err(UpdateError::Busy));
    let summary = call.summary(&b.cfg);
    assert_eq!((summary.transfer, summary.profile), (Some((None, None)), None));
    assert_eq!(call.update(&mut b.ctx(), CallUpdate::Hangup), Ok(()));
    assert_eq!(b.take().0, ["BYE sip:alice@10.0.0.2 SIP/2.0"]);
    assert_eq!(call.update(&mut b.ctx(), CallUpdate::Hangup), Err(UpdateError::NotFound), "over");
}
