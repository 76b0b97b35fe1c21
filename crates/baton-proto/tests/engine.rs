//! The engine's timers and state on the simulator's virtual clock, on a perfect network so
//! every instant is exact: RFC 3261's timers at their real defaults, and every piece of
//! state with a deadline.

mod sim;

use baton_proto::sip::Name;
use serde_json::json;
use sim::*;
use std::time::Duration;

fn since(ms: &[u64]) -> Vec<Duration> {
    ms.iter().map(|m| Duration::from_millis(*m)).collect()
}

/// Sends the INVITE once and lets its answers arrive: baton's To.
fn invited(sim: &mut Sim, call_id: &str) -> String {
    sim.auto_ack = false;
    sim.deliver(&invite_text(addr(CARRIER), addr(BATON), call_id, ""));
    let ok = sim.received.iter().find(|(_, m)| m.status() == Some(200)).expect("200 OK").1.clone();
    ok.header(Name::To).unwrap()
}

#[test]
fn the_default_notify_timeout_is_15_seconds_from_the_2xx() {
    let app =
        json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}, {"verb": "pause", "length": 60}]);
    let mut sim = Sim::with_app(0, app, Faults::NONE);
    sim.call("notify-timeout");
    let refer = sim.expect_request("REFER");
    sim.run_for(Duration::from_millis(300));
    sim.respond(&refer, 202, "");
    sim.run_for(Duration::from_millis(14_999));
    assert!(sim.hooks_to("/action").is_empty());
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(202));
}

/// RFC 3261 §13.3.1.4 and §15: the 200 is repeated until the ACK; a call never
/// acknowledged ends at 64·T1 without a BYE.
#[test]
fn our_200_is_repeated_until_the_ack_and_an_unacknowledged_call_ends_without_bye() {
    let mut sim = Sim::with_app(0, json!([{"verb": "pause", "length": 60}]), Faults::NONE);
    invited(&mut sim, "no-ack");
    sim.run_for(Duration::from_secs(33));
    let oks: Vec<_> = sim.received.iter().filter(|(_, m)| m.status() == Some(200)).map(|(t, _)| *t).collect();
    assert_eq!(oks[..6], since(&[0, 500, 1500, 3500, 7500, 11500]));
    assert!(sim.received("BYE").is_empty(), "no request before the ACK confirms the dialog");
    assert_eq!((sim.engine.stats.never_acked, sim.engine.active_calls()), (1, 0));
    assert_eq!(sim.hooks_to("/status").last().unwrap()["call_status"], json!("failed"));
}

/// Ending a call between our 200 and its ACK (shutdown's grace is over): the BYE waits for
/// the ACK.
#[test]
fn a_hangup_before_the_ack_waits_for_it() {
    let mut sim = Sim::with_app(0, json!([{"verb": "pause", "length": 60}]), Faults::NONE);
    let to = invited(&mut sim, "end-at-ack");
    sim.engine.end_all(sim.now);
    sim.run_for(Duration::from_secs(2));
    assert!(sim.received("BYE").is_empty());
    sim.deliver(&ack_text(addr(CARRIER), addr(BATON), "end-at-ack", &to));
    assert_eq!(sim.received("BYE").len(), 1);
}

#[test]
fn the_ack_stops_the_200_and_the_call_is_forgotten_after_it_ends() {
    let mut sim = Sim::with_app(0, json!([{"verb": "pause", "length": 1}]), Faults::NONE);
    sim.call("forget");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.run_for(Duration::ZERO);
    assert_eq!(sim.received.iter().filter(|(_, m)| m.status() == Some(200)).count(), 1, "no 200 after the ACK");
    assert_eq!(sim.engine.calls(), 1, "kept to absorb retransmissions");
    sim.run_for(Duration::from_secs(33));
    assert_eq!(sim.engine.calls(), 0, "every piece of state has a deadline");
    assert_eq!(sim.engine.poll_timeout(), None);
}

#[test]
fn a_call_whose_transactions_outlive_its_linger_still_expires() {
    // 64·T1 (3.2 s) is shorter than T4 (5 s): the BYE's Timer K outlives the linger.
    let doc = baton_proto::parse_document(&json!([{"verb": "pause", "length": 0.1}]).to_string()).unwrap();
    let mut sim = Sim::with(0, json!(null), Faults::NONE, |s| {
        s.timers.t1 = Duration::from_millis(50);
        s.call_hook = None;
        s.app = Some(doc);
    });
    sim.call("short-t1");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.engine.calls(), 0);
}

#[test]
fn a_flood_of_new_in_dialog_requests_cannot_grow_a_call() {
    let mut sim = Sim::with_app(0, json!([{"verb": "pause", "length": 60}]), Faults::NONE);
    let leg = sim.call("flood");
    sim.take();
    for cseq in 2..10_002 {
        sim.deliver(&leg.dialog().request("INFO", cseq, "", ""));
    }
    let answered = sim.received.iter().filter(|(_, m)| m.status() == Some(200) && m.cseq().1 == "INFO").count();
    assert_eq!(answered, 10_000, "every request is answered");
    assert!(sim.engine.transactions() <= 40, "{} transactions held", sim.engine.transactions());
    // The newest answer is still there for a retransmission.
    sim.take();
    sim.deliver(&leg.dialog().request("INFO", 10_001, "", ""));
    assert_eq!(sim.take().len(), 1);
}

#[test]
fn retransmitted_final_responses_are_absorbed_for_t4() {
    let app = json!([{"verb": "sip:refer", "referTo": "agent"}, {"verb": "pause", "length": 60}]);
    let mut sim = Sim::with_app(0, app, Faults::NONE);
    sim.call("timer-k");
    let refer = sim.expect_request("REFER");
    for _ in 0..2 {
        sim.deliver(&response_text(&refer, 202, ""));
    }
    assert_eq!(sim.engine.stats.stray_responses, 0);
    sim.run_for(Duration::from_secs(6));
    sim.deliver(&response_text(&refer, 202, ""));
    assert_eq!(sim.engine.stats.stray_responses, 1);
}

/// Every answer and response of a transfer moves the call's deadline; each old one must
/// be disarmed, or it wakes the shard later for nothing (at low rates nearly every such
/// wake-up is one of its own).
#[test]
fn a_finished_transfer_wakes_the_shard_only_when_something_is_due() {
    let mut sim = Sim::with_app(0, json!([{"verb": "sip:refer", "referTo": "agent"}]), Faults::NONE);
    let mut leg = sim.call("quiet");
    let refer = sim.expect_request("REFER");
    sim.respond(&refer, 202, "");
    for (status, state) in [("100 Trying", "active"), ("180 Ringing", "active"), ("200 OK", "terminated")] {
        sim.deliver(&leg.next_notify(&refer, status, state));
    }
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.run_for(Duration::ZERO);
    assert_eq!(sim.engine.tombstones(), 1);
    let before = sim.wakeups;
    sim.take();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.engine.calls(), 0);
    assert!(sim.take().is_empty());
    // The tombstone's 32 s is a far deadline: one wake-up as its period begins (to move it
    // down the wheel), one at its end. Nothing for the deadlines the transfer moved past.
    assert_eq!(sim.wakeups - before, 2);
}

#[test]
fn an_ended_transfer_is_buried_and_still_answers_its_retransmissions() {
    let mut sim = Sim::with_app(0, json!([{"verb": "sip:refer", "referTo": "agent"}]), Faults::NONE);
    let mut leg = sim.call("buried");
    let refer = sim.expect_request("REFER");
    sim.respond(&refer, 202, "");
    sim.take();
    let last = leg.next_notify(&refer, "200 OK", "terminated");
    sim.deliver(&last);
    let answer = sim.received.iter().find(|(_, m)| m.cseq().1 == "NOTIFY").unwrap().1 .0.clone();
    let bye = sim.expect_request("BYE");
    sim.deliver(&response_text(&bye, 200, ""));
    assert_eq!((sim.engine.calls(), sim.engine.tombstones(), sim.engine.active_calls()), (1, 1, 0));
    assert_eq!(sim.gone, 1, "its hook queue can close once it is buried");

    sim.run_for(Duration::from_secs(10));
    sim.take();
    sim.deliver(&last);
    assert_eq!(sim.take().into_iter().map(|(_, m)| m.0).collect::<Vec<_>>(), vec![answer], "the same answer again");
    sim.deliver(&response_text(&bye, 200, ""));
    sim.deliver(&response_text(&refer, 202, ""));
    sim.deliver(&ack_text(addr(CARRIER), addr(BATON), "buried", &leg.to));
    sim.deliver(&invite_text(addr(CARRIER), addr(BATON), "buried", ""));
    assert!(sim.take().is_empty(), "retransmissions of what was answered and acknowledged are absorbed");
    assert_eq!(sim.engine.stats.stray_responses, 0);
    sim.deliver(&leg.dialog().request("INFO", 9, "", ""));
    let info = sim.take();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].1.status(), Some(481));
    assert_eq!(info[0].1.header(Name::To).as_deref(), Some(leg.to.as_str()), "answered with the dialog's tag");

    sim.run_for(Duration::from_secs(23));
    assert_eq!((sim.engine.calls(), sim.engine.tombstones()), (0, 0), "a tombstone has a deadline too");
    assert_eq!(sim.engine.poll_timeout(), None);
}

#[test]
fn no_100_trying_when_the_application_answers_at_once() {
    // RFC 3261 §17.2.1: a 100 is owed only when the answer may take longer than 200 ms.
    let mut sim = Sim::with_app(0, json!([{"verb": "sip:refer", "referTo": "agent"}]), Faults::NONE);
    invited(&mut sim, "at-once");
    assert_eq!(sim.take().iter().filter_map(|(_, m)| m.status()).collect::<Vec<_>>(), [200]);

    // A redirect waits for its actionHook before anything answers the INVITE; this one
    // returns no verbs, so the refer after it answers.
    let app = json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "sip:refer", "referTo": "a"}]);
    let mut sim = Sim::with_app(0, app, Faults::NONE);
    invited(&mut sim, "later");
    assert_eq!(
        sim.take().iter().filter_map(|(_, m)| m.status()).collect::<Vec<_>>(),
        [100, 200],
        "a 100 while the hook is awaited"
    );
}

/// A hook the call needs that is never answered (the hook side's retries are per hook and
/// can outlast anything) lets the call go on as if it had failed once `--hook-wait` passed.
#[test]
fn a_hook_that_never_answers_is_given_up_at_hook_wait() {
    let never = Duration::from_secs(3600);
    // The call hook: the INVITE waits with a 100, then is refused.
    let mut sim = Sim::new(0, json!([{"verb": "hangup"}]), Faults::NONE);
    sim.answer_hook_after("/call", never, 200, "");
    sim.deliver(&invite_text(addr(CARRIER), addr(BATON), "silent-call-hook", ""));
    sim.run_for(Duration::from_millis(29_999));
    assert_eq!(sim.received.iter().filter_map(|(_, m)| m.status()).collect::<Vec<_>>(), [100]);
    sim.run_for(Duration::from_millis(1));
    let (at, refusal) = sim.received.last().unwrap();
    assert_eq!((*at, refusal.status()), (Duration::from_secs(30), Some(480)));
    assert!(refusal.raw("X-Reason").unwrap().contains("--hook-wait"), "{}", refusal.text());

    // An actionHook: the application goes on with its next verb.
    let app = json!([{"verb": "redirect", "actionHook": "/next"}, {"verb": "hangup"}]);
    let mut sim = Sim::with(0, app, Faults::NONE, |s| s.hook_wait = Duration::from_secs(5));
    sim.answer_hook_after("/next", never, 200, "");
    sim.deliver(&invite_text(addr(CARRIER), addr(BATON), "silent-action-hook", ""));
    sim.run_for(Duration::from_millis(4_999));
    assert_eq!(sim.received.iter().filter_map(|(_, m)| m.status()).collect::<Vec<_>>(), [100]);
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.received.last().unwrap().1.status(), Some(603), "the hangup verb ran");
}

#[test]
fn a_call_without_hooks_never_bothers_the_hook_side() {
    let doc = baton_proto::parse_document(&json!([{"verb": "pause", "length": 1}]).to_string()).unwrap();
    let mut sim = Sim::with(0, json!(null), Faults::NONE, |s| {
        s.call_hook = None;
        s.status_hook = None;
        s.app = Some(doc);
    });
    sim.call("quiet");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.settle();
    assert_eq!((sim.hooks.len(), sim.gone), (0, 0));
}

/// Cheap, deterministic robustness check on top of cargo-fuzz: mangled copies of real
/// messages, fed in any order, never panic and never leave a call without a deadline.
#[test]
fn mangled_datagrams_never_panic() {
    let app = json!([{"verb": "sip:refer", "referTo": "agent"}, {"verb": "pause", "length": 5}]);
    let mut sim = Sim::with_app(0, app, Faults::NONE);
    let leg = sim.call("fuzz");
    let refer = sim.expect_request("REFER");
    let seeds = [
        invite_text(addr(CARRIER), addr(BATON), "fuzz-2", ""),
        response_text(&refer, 202, "Refer-Sub: false\r\n"),
        leg.dialog().notify(2, refer.cseq().0, "180 Ringing", "active"),
        leg.dialog().request("BYE", 9, "", ""),
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
        sim.engine.handle_receive(sim.now, baton_proto::Flow::udp(addr(BATON), addr(CARRIER)), &bytes);
        while sim.engine.poll_output().is_some() {}
        sim.run_for(Duration::from_millis(rng.u64(..50)));
    }
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.engine.calls(), 0, "all state expired");
}
