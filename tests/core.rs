//! The sans-IO engine on a virtual clock (quinn-proto's test style): RFC 3261 timers at
//! their real defaults run in microseconds and cannot flake.

mod common;

use baton_proto::sip::Name;
use baton_proto::{parse_document, Hook};
use baton_proto::{Answer, HookJob, HookOutcome, HookReply};
use baton_proto::{Engine, Output, Settings, Transmit};
use common::{ack_text, invite_text, response_text, Dialog, Sip};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATON: &str = "10.0.0.1:5060";
const CARRIER: &str = "10.0.0.2:5060";

type Answerer = dyn FnMut(&HookJob) -> Option<HookOutcome>;

/// One engine, a carrier address, and a clock that moves only when told.
struct Harness {
    engine: Engine,
    now: Instant,
    start: Instant,
    /// (time since start, datagram) of everything baton sent.
    sent: Vec<(Duration, Sip)>,
    hooks: Vec<HookJob>,
    /// Calls whose hook queues the engine said could close.
    gone: usize,
    /// Answers hooks the call waits for (`None`: the hook side never answers).
    answer: Box<Answerer>,
    /// Times the engine's next deadline woke the shard (each one a wake-up in a real one).
    wakeups: usize,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Harness {
    fn new(app: serde_json::Value) -> Harness {
        Harness::with(app, |_| {})
    }

    fn with(app: serde_json::Value, tweak: impl FnOnce(&mut Settings)) -> Harness {
        let mut settings = Settings {
            app: Some(parse_document(&app.to_string()).unwrap()),
            status_hook: Some(Hook::post("http://hooks/status")),
            ..Settings::default()
        };
        tweak(&mut settings);
        let now = Instant::now();
        Harness {
            engine: Engine::new(Arc::new(settings), 0, baton_proto::Seed::fixed(7)),
            now,
            start: now,
            sent: Vec::new(),
            hooks: Vec::new(),
            gone: 0,
            answer: Box::new(|_| Some(Ok(Answer::Nothing))),
            wakeups: 0,
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit(Transmit { dst, bytes, .. }) => {
                    assert_eq!(dst, addr(CARRIER));
                    self.sent.push((self.now - self.start, Sip(bytes)));
                }
                Output::Hook(job) => {
                    if let Some((reply, outcome)) = job.reply.zip((self.answer)(&job)) {
                        self.engine.handle_hook_reply(
                            self.now,
                            HookReply { shard: reply.shard, call: reply.call, token: reply.token, outcome },
                        );
                    }
                    self.hooks.push(job);
                }
                Output::CallGone(_) => self.gone += 1,
            }
        }
    }

    fn deliver(&mut self, text: &str) {
        self.engine.handle_receive(self.now, baton_proto::Flow::udp(addr(BATON), addr(CARRIER)), text.as_bytes());
        self.drain();
    }

    /// Moves the clock forward by `by`, firing every timer on the way at its own time.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        let mut fired = 0;
        while let Some(at) = self.engine.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.drain();
            self.wakeups += 1;
            fired += 1;
            assert!(fired < 1_000_000, "timers keep firing without the clock moving");
        }
        self.now = end;
    }

    fn take(&mut self) -> Vec<(Duration, Sip)> {
        std::mem::take(&mut self.sent)
    }

    fn requests(&self, method: &str) -> Vec<(Duration, &Sip)> {
        self.sent.iter().filter(|(_, m)| m.method().as_deref() == Some(method)).map(|(t, m)| (*t, m)).collect()
    }

    /// INVITE, 200, ACK: returns baton's To header.
    fn answered_call(&mut self, call_id: &str) -> String {
        self.deliver(&invite_text(addr(CARRIER), addr(BATON), call_id, ""));
        let to = self.sent.iter().find(|(_, m)| m.status() == Some(200)).expect("200 OK").1.header(Name::To).unwrap();
        self.deliver(&ack_text(addr(CARRIER), addr(BATON), call_id, &to));
        to
    }

    /// INVITE, 200, ACK, and the REFER the application sent then: baton's To header and the REFER.
    fn refer_sent(&mut self, call_id: &str) -> (String, Sip) {
        let to = self.answered_call(call_id);
        let refer = self.take().into_iter().find(|(_, m)| m.method().as_deref() == Some("REFER")).expect("REFER").1;
        (to, refer)
    }

    /// NOTIFYs 100, 180 and 200 (the last ending the subscription) for the REFER with CSeq `id`.
    fn notify_to_the_end(&mut self, dialog: &Dialog<'_>, id: u32) {
        for (cseq, status, state) in
            [(2, "100 Trying", "active"), (3, "180 Ringing", "active"), (4, "200 OK", "terminated")]
        {
            self.deliver(&dialog.notify(cseq, id, status, state));
        }
    }

    /// The JSON bodies of the hooks sent to `path`.
    fn hooks_to(&self, path: &str) -> Vec<serde_json::Value> {
        self.hooks.iter().filter(|h| h.hook.url.ends_with(path)).filter_map(|h| h.body.json().cloned()).collect()
    }
}

fn since(ms: &[u64]) -> Vec<Duration> {
    ms.iter().map(|m| Duration::from_millis(*m)).collect()
}

#[test]
fn unanswered_refer_is_retransmitted_then_times_out_at_64_t1() {
    let mut h = Harness::new(
        json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}, {"verb": "pause", "length": 60}]),
    );
    h.answered_call("timer-f");
    h.advance(Duration::from_secs(40));
    let times: Vec<_> = h.requests("REFER").iter().map(|(t, _)| *t).collect();
    // Timer E: T1 doubling to T2 (4 s); Timer F: 64·T1 = 32 s.
    assert_eq!(times, since(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]));
    let action = h.hooks_to("/action");
    assert_eq!(action.len(), 1);
    assert_eq!(action[0]["refer_status"], json!(408));
}

#[test]
fn default_notify_timeout_is_15_seconds_from_the_2xx() {
    let mut h = Harness::new(
        json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}, {"verb": "pause", "length": 60}]),
    );
    let (_, refer) = h.refer_sent("notify-timeout");
    h.advance(Duration::from_secs(2));
    h.deliver(&response_text(&refer, 202, ""));
    h.advance(Duration::from_millis(14_999));
    assert!(h.hooks_to("/action").is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.hooks_to("/action")[0]["refer_status"], json!(202));
}

/// RFC 3261 §13.3.1.4 and §15: the 200 is repeated until the ACK; a call never
/// acknowledged ends at 64·T1 without a BYE (its Contact was never confirmed, and a BYE
/// there would reflect traffic at whoever the INVITE named).
#[test]
fn our_200_is_repeated_until_the_ack_and_an_unacknowledged_call_ends_without_bye() {
    let mut h = Harness::new(json!([{"verb": "pause", "length": 60}]));
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "no-ack", ""));
    h.advance(Duration::from_secs(33));
    let oks: Vec<_> = h.sent.iter().filter(|(_, m)| m.status() == Some(200)).map(|(t, _)| *t).collect();
    assert_eq!(oks[..6], since(&[0, 500, 1500, 3500, 7500, 11500]));
    assert!(h.requests("BYE").is_empty(), "no request before the ACK confirms the dialog");
    assert_eq!((h.engine.stats.never_acked, h.engine.active_calls()), (1, 0));
    let statuses: Vec<_> = h.hooks_to("/status").iter().map(|b| b["call_status"].clone()).collect();
    assert_eq!(statuses.last(), Some(&json!("failed")));
}

/// Ending a call between our 200 and its ACK (here: shutdown's grace is over): the BYE
/// waits for the ACK.
#[test]
fn a_hangup_before_the_ack_waits_for_it() {
    let mut h = Harness::new(json!([{"verb": "pause", "length": 60}]));
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "end-at-ack", ""));
    h.engine.end_all(h.now);
    h.drain();
    h.advance(Duration::from_secs(2));
    assert!(h.requests("BYE").is_empty());
    let to = h.sent.iter().find(|(_, m)| m.status() == Some(200)).unwrap().1.header(Name::To).unwrap();
    h.deliver(&ack_text(addr(CARRIER), addr(BATON), "end-at-ack", &to));
    assert_eq!(h.requests("BYE").len(), 1);
}

#[test]
fn ack_stops_the_200_and_the_call_is_forgotten_after_it_ends() {
    let mut h = Harness::new(json!([{"verb": "pause", "length": 1}]));
    h.answered_call("forget");
    h.advance(Duration::from_secs(1));
    let bye = h.requests("BYE")[0].1 .0.clone();
    h.deliver(&response_text(&Sip(bye), 200, ""));
    assert_eq!(h.sent.iter().filter(|(_, m)| m.status() == Some(200)).count(), 1, "no 200 after the ACK");
    assert_eq!(h.engine.calls(), 1, "kept to absorb retransmissions");
    h.advance(Duration::from_secs(33));
    assert_eq!(h.engine.calls(), 0, "every piece of state has a deadline");
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn a_call_whose_transactions_outlive_its_linger_still_expires() {
    // 64·T1 (3.2 s) is shorter than T4 (5 s): the BYE's Timer K outlives the linger.
    let mut h = Harness::with(json!([{"verb": "pause", "length": 0.1}]), |s| s.timers.t1 = Duration::from_millis(50));
    h.answered_call("short-t1");
    h.advance(Duration::from_millis(100));
    let bye = h.requests("BYE")[0].1 .0.clone();
    h.deliver(&response_text(&Sip(bye), 200, ""));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn a_flood_of_new_in_dialog_requests_cannot_grow_a_call() {
    let mut h = Harness::new(json!([{"verb": "pause", "length": 60}]));
    let to = h.answered_call("flood");
    let dialog = Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: "flood", to: &to };
    for cseq in 2..10_002 {
        h.deliver(&dialog.request("INFO", cseq, "", ""));
    }
    let answered = h.sent.iter().filter(|(_, m)| m.status() == Some(200) && m.cseq().1 == "INFO").count();
    assert_eq!(answered, 10_000, "every request is answered");
    assert!(h.engine.transactions() <= 40, "{} transactions held", h.engine.transactions());
    // The newest answer is still there for a retransmission.
    let before = h.sent.len();
    h.deliver(&dialog.request("INFO", 10_001, "", ""));
    assert_eq!(h.sent.len(), before + 1);
}

#[test]
fn retransmitted_final_responses_are_absorbed_for_t4() {
    let mut h = Harness::new(json!([{"verb": "sip:refer", "referTo": "agent"}, {"verb": "pause", "length": 60}]));
    let (_, refer) = h.refer_sent("timer-k");
    h.deliver(&response_text(&refer, 202, ""));
    h.deliver(&response_text(&refer, 202, ""));
    assert_eq!(h.engine.stats.stray_responses, 0);
    h.advance(Duration::from_secs(6));
    h.deliver(&response_text(&refer, 202, ""));
    assert_eq!(h.engine.stats.stray_responses, 1);
}

#[test]
fn a_whole_transfer_without_sockets() {
    let mut h = Harness::new(
        json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}]),
    );
    let (to, refer) = h.refer_sent("whole");
    let id = refer.cseq().0;
    h.deliver(&response_text(&refer, 202, ""));
    let dialog = Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: "whole", to: &to };
    h.notify_to_the_end(&dialog, id);
    let answers: Vec<_> = h.sent.iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(answers, vec![200, 200, 200]);
    assert_eq!(h.requests("BYE").len(), 1);
    let codes: Vec<_> = h.hooks_to("/event").iter().map(|j| j["call_status"].clone()).collect();
    assert_eq!(codes, vec![json!(100), json!(180), json!(200)]);
    assert_eq!(h.hooks_to("/action").len(), 1);
}

/// Every answer and response of a transfer moves the call's deadline; each old one must
/// be disarmed, or it wakes the shard later for nothing (at low rates nearly every such
/// wake-up is one of its own).
#[test]
fn a_finished_transfer_wakes_the_shard_only_when_something_is_due() {
    let mut h = Harness::new(json!([{"verb": "sip:refer", "referTo": "agent"}]));
    let (to, refer) = h.refer_sent("quiet");
    h.deliver(&response_text(&refer, 202, ""));
    let dialog = Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: "quiet", to: &to };
    h.notify_to_the_end(&dialog, refer.cseq().0);
    let bye = h.take().into_iter().find(|(_, m)| m.method().as_deref() == Some("BYE")).unwrap().1;
    h.deliver(&response_text(&bye, 200, ""));
    assert_eq!(h.engine.tombstones(), 1);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.engine.calls(), 0);
    assert!(h.take().is_empty());
    // The tombstone's 32 s is a far deadline: one wake-up as its period begins (to move it
    // down the wheel), one at its end. Nothing for the deadlines the transfer moved past.
    assert_eq!(h.wakeups, 2);
}

#[test]
fn an_ended_transfer_is_buried_and_still_answers_its_retransmissions() {
    let mut h = Harness::new(json!([{"verb": "sip:refer", "referTo": "agent"}]));
    let (to, refer) = h.refer_sent("buried");
    h.deliver(&response_text(&refer, 202, ""));
    let dialog = Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: "buried", to: &to };
    let last = dialog.notify(2, refer.cseq().0, "200 OK", "terminated");
    h.deliver(&last);
    let sent = h.take();
    let answer = sent.iter().find(|(_, m)| m.cseq().1 == "NOTIFY").unwrap().1 .0.clone();
    let bye = sent.into_iter().find(|(_, m)| m.method().as_deref() == Some("BYE")).unwrap().1;
    h.deliver(&response_text(&bye, 200, ""));
    assert_eq!((h.engine.calls(), h.engine.tombstones(), h.engine.active_calls()), (1, 1, 0));
    assert_eq!(h.gone, 1, "its hook queue can close once it is buried");

    h.advance(Duration::from_secs(10));
    h.deliver(&last);
    assert_eq!(h.take().into_iter().map(|(_, m)| m.0).collect::<Vec<_>>(), vec![answer], "the same answer again");
    h.deliver(&response_text(&bye, 200, ""));
    h.deliver(&response_text(&refer, 202, ""));
    h.deliver(&ack_text(addr(CARRIER), addr(BATON), "buried", &to));
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "buried", ""));
    assert!(h.take().is_empty(), "retransmissions of what was answered and acknowledged are absorbed");
    assert_eq!(h.engine.stats.stray_responses, 0);
    h.deliver(&dialog.request("INFO", 9, "", ""));
    let info = h.take();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].1.status(), Some(481));
    assert_eq!(info[0].1.header(Name::To).as_deref(), Some(to.as_str()), "answered with the dialog's tag");

    h.advance(Duration::from_secs(23));
    assert_eq!((h.engine.calls(), h.engine.tombstones()), (0, 0), "a tombstone has a deadline too");
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn no_100_trying_when_the_application_answers_at_once() {
    // RFC 3261 §17.2.1: a 100 is owed only when the answer may take longer than 200 ms.
    let mut h = Harness::new(json!([{"verb": "sip:refer", "referTo": "agent"}]));
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "at-once", ""));
    let codes: Vec<_> = h.take().iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(codes, vec![200]);

    // A redirect waits for its actionHook before anything answers the INVITE; this one
    // returns no verbs, so the refer after it answers.
    let mut h =
        Harness::new(json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "sip:refer", "referTo": "a"}]));
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "later", ""));
    let codes: Vec<_> = h.take().iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(codes, vec![100, 200], "a 100 while the hook is awaited");
}

/// Every piece of state has a deadline: a hook the call needs that is never answered (the
/// hook side's retries are per hook and can outlast anything) lets the call go on as if it
/// had failed once `--hook-wait` has passed.
#[test]
fn a_hook_that_never_answers_is_given_up_at_hook_wait() {
    // The call hook: the INVITE waits with a 100, then is refused.
    let mut h = Harness::with(json!([{"verb": "hangup"}]), |s| {
        s.app = None;
        s.call_hook = Some(Hook::post("http://hooks/call"));
    });
    h.answer = Box::new(|_| None);
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "silent-call-hook", ""));
    h.advance(Duration::from_millis(29_999));
    let codes: Vec<_> = h.sent.iter().filter_map(|(_, m)| m.status()).collect();
    assert_eq!(codes, vec![100]);
    h.advance(Duration::from_millis(1));
    let (at, refusal) = h.sent.last().unwrap();
    assert_eq!((*at, refusal.status()), (Duration::from_secs(30), Some(480)));
    assert!(refusal.raw("X-Reason").unwrap().contains("--hook-wait"), "{}", refusal.text());

    // An actionHook: the application goes on with its next verb.
    let mut h = Harness::with(json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "hangup"}]), |s| {
        s.hook_wait = Duration::from_secs(5)
    });
    h.answer = Box::new(|_| None);
    h.deliver(&invite_text(addr(CARRIER), addr(BATON), "silent-action-hook", ""));
    h.advance(Duration::from_millis(4_999));
    assert_eq!(h.sent.iter().filter_map(|(_, m)| m.status()).collect::<Vec<_>>(), vec![100]);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.sent.last().unwrap().1.status(), Some(603), "the hangup verb ran");
}

#[test]
fn a_call_without_hooks_never_bothers_the_hook_side() {
    let mut h = Harness::with(json!([{"verb": "pause", "length": 1}]), |s| s.status_hook = None);
    h.answered_call("quiet");
    h.advance(Duration::from_secs(1));
    let bye = h.requests("BYE")[0].1 .0.clone();
    h.deliver(&response_text(&Sip(bye), 200, ""));
    h.advance(Duration::from_secs(40));
    assert_eq!((h.engine.calls(), h.hooks.len(), h.gone), (0, 0, 0));
}

/// Cheap, deterministic robustness check on top of cargo-fuzz: mangled copies of real
/// messages, fed in any order, never panic and never leave a call without a deadline.
#[test]
fn mangled_datagrams_never_panic() {
    let mut h = Harness::new(json!([{"verb": "sip:refer", "referTo": "agent"}, {"verb": "pause", "length": 5}]));
    let (to, refer) = h.refer_sent("fuzz");
    let dialog = Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: "fuzz", to: &to };
    let seeds = [
        invite_text(addr(CARRIER), addr(BATON), "fuzz-2", ""),
        response_text(&refer, 202, "Refer-Sub: false\r\n"),
        dialog.notify(2, refer.cseq().0, "180 Ringing", "active"),
        dialog.request("BYE", 9, "", ""),
    ];
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..20_000 {
        let mut bytes = seeds[rng.usize(..seeds.len())].clone().into_bytes();
        match rng.u8(..4) {
            0 => bytes.truncate(rng.usize(..bytes.len())),
            1 => {
                for _ in 0..rng.usize(1..8) {
                    let i = rng.usize(..bytes.len());
                    bytes[i] = rng.u8(..);
                }
            }
            2 => {
                let i = rng.usize(..bytes.len());
                let chunk = bytes[i..].to_vec();
                bytes.extend_from_slice(&chunk);
            }
            _ => {}
        }
        h.engine.handle_receive(h.now, baton_proto::Flow::udp(addr(BATON), addr(CARRIER)), &bytes);
        h.drain();
        h.advance(Duration::from_millis(rng.u64(..50)));
    }
    h.advance(Duration::from_secs(120));
    assert_eq!(h.engine.calls(), 0, "all state expired");
}
