//! Transfers as carriers need them, on the simulator: failover across a `referTo` array,
//! how the call ends after success (`byeAfterSuccess`), User-to-User and headers escaped
//! into Refer-To, and trunk profiles rewriting the REFER (docs/behaviour.md §2.5-2.7, §8).

mod sim;

use baton_proto::{ByeAfter, Plus, ReferScheme, ReferredBy, TrunkProfile};
use serde_json::{json, Value};
use sim::*;
use std::time::Duration;

const SEEDS: std::ops::Range<u64> = 0..16;

fn with_hangup(refer: Value) -> Value {
    json!([refer, {"verb": "hangup"}])
}

#[test]
fn failover_tries_each_target_in_order_and_reports_every_attempt() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "actionHook": "/action", "eventHook": "/event",
                           "referTo": ["sip:first@pbx.example", {"uri": "sip:second@pbx.example", "timeout": 3},
                                       "sip:third@pbx.example"]});
        let mut sim = Sim::new(seed, with_hangup(refer), Faults::bad());
        let mut leg = sim.call("failover-1");
        let first = sim.expect_request("REFER");
        assert_eq!(first.raw("Refer-To").as_deref(), Some("<sip:first@pbx.example>"));
        sim.respond(&first, 603, "");
        let second = sim.expect_request("REFER");
        let sent = sim.elapsed();
        assert_eq!(second.raw("Refer-To").as_deref(), Some("<sip:second@pbx.example>"));
        assert!(second.cseq().0 > first.cseq().0);
        sim.respond(&second, 202, "");
        assert_eq!(leg.notify(&mut sim, &second, "180 Ringing", "active"), 200);
        // No final NOTIFY within the second target's own 3 s: the third is tried.
        let third = sim.expect_request("REFER");
        let waited = sim.elapsed() - sent;
        assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(third.raw("Refer-To").as_deref(), Some("<sip:third@pbx.example>"));
        sim.respond(&third, 202, "");
        // The second's subscription is over: its late NOTIFY is refused.
        assert_eq!(leg.notify(&mut sim, &second, "200 OK", "terminated"), 481);
        assert_eq!(leg.notify(&mut sim, &third, "200 OK", "terminated"), 200);
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();

        let attempts: Vec<Value> =
            sim.hooks_to("/event").into_iter().filter(|e| e["event"] == "transfer-attempt").collect();
        let summary: Vec<_> = attempts
            .iter()
            .map(|a| (a["target_index"].clone(), a["target"].clone(), a["result"].clone(), a["refer_status"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (json!(0), json!("<sip:first@pbx.example>"), json!("refused"), json!(603)),
                (json!(1), json!("<sip:second@pbx.example>"), json!("timed_out"), json!(202)),
                (json!(2), json!("<sip:third@pbx.example>"), json!("succeeded"), json!(202)),
            ]
        );
        let action = sim.hooks_to("/action");
        assert_eq!(action.len(), 1, "one actionHook for the whole verb");
        assert_eq!(
            (action[0]["refer_status"].clone(), action[0]["final_referred_call_status"].clone()),
            (json!(202), json!(200))
        );
        let results: Vec<_> = action[0]["attempts"].as_array().unwrap().iter().map(|a| a["result"].clone()).collect();
        assert_eq!(results, [json!("refused"), json!("timed_out"), json!("succeeded")]);
    });
}

#[test]
fn failover_ends_with_the_last_target_and_the_application_goes_on() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "actionHook": "/action", "referTo": ["sip:a@pbx.example", "sip:b@pbx.example"]});
        let app = json!([refer, {"verb": "hangup", "headers": {"X-Next": "ran"}}]);
        let mut sim = Sim::new(seed, app, Faults::bad());
        let mut leg = sim.call("failover-2");
        let a = sim.expect_request("REFER");
        sim.respond(&a, 202, "");
        assert_eq!(leg.notify(&mut sim, &a, "486 Busy Here", "terminated"), 200);
        let b = sim.expect_request("REFER");
        sim.respond(&b, 202, "");
        assert_eq!(leg.notify(&mut sim, &b, "480 Temporarily Unavailable", "terminated"), 200);
        let bye = sim.expect_request("BYE");
        assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"), "the next verb ran");
        sim.respond(&bye, 200, "");
        sim.settle();
        let action = sim.hooks_to("/action");
        assert_eq!(action[0]["final_referred_call_status"], json!(480));
        assert_eq!(action[0]["attempts"].as_array().map(Vec::len), Some(2));
    });
}

#[test]
fn a_transfer_whose_end_was_never_told_is_not_tried_elsewhere() {
    let refer =
        json!({"verb": "sip:refer", "actionHook": "/action", "referTo": ["sip:a@pbx.example", "sip:b@pbx.example"]});
    let mut sim = Sim::new(0, with_hangup(refer), Faults::bad());
    sim.call("failover-3");
    let a = sim.expect_request("REFER");
    sim.respond(&a, 202, "Refer-Sub: false\r\n");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.settle();
    assert_eq!(sim.received("REFER").iter().filter(|(_, r)| r.raw("Refer-To").unwrap().contains("sip:b@")).count(), 0);
    assert_eq!(sim.hooks_to("/action")[0]["attempts"].as_array().map(Vec::len), Some(1));
}

#[test]
fn bye_after_success_wait_lets_the_far_end_bye_first() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "byeAfterSuccess": "wait:2000"});
        let mut sim = Sim::new(seed, with_hangup(refer), Faults::bad());
        let (mut leg, _) = transferred(&mut sim, "bye-wait-1");
        // Teams or CUBE hang up a moment after their final NOTIFY: no BYE crosses theirs.
        sim.run_for(Duration::from_millis(300));
        let bye = leg.next("BYE", "", "");
        assert_eq!(sim.request(&bye), 200);
        sim.settle();
        assert!(sim.received("BYE").is_empty(), "baton sent a BYE that would cross the far end's");
    });
}

#[test]
fn bye_after_success_wait_sends_ours_when_the_far_end_does_not() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "byeAfterSuccess": "wait:1500"});
        let mut sim = Sim::new(seed, with_hangup(refer), Faults::bad());
        let (_, notified) = transferred(&mut sim, "bye-wait-2");
        let bye = sim.expect_request("BYE");
        let after = sim.elapsed() - notified;
        assert!(after >= Duration::from_millis(1500) && after < Duration::from_millis(3500), "{after:?}");
        sim.respond(&bye, 200, "");
        sim.settle();
    });
}

#[test]
fn bye_after_success_never_leaves_it_to_the_far_end() {
    let refer = json!({"verb": "sip:refer", "referTo": "agent", "byeAfterSuccess": "never"});
    let mut sim = Sim::new(1, with_hangup(refer), Faults::bad());
    let (mut leg, _) = transferred(&mut sim, "bye-never");
    sim.run_for(Duration::from_secs(90));
    assert!(sim.received("BYE").is_empty());
    assert_eq!(sim.engine.calls(), 1, "the call stays up until the far end ends it");
    let bye = leg.next("BYE", "", "");
    assert_eq!(sim.request(&bye), 200);
    sim.settle();
}

#[test]
fn uui_and_refer_to_headers_are_escaped_into_the_uri() {
    every_seed(0..4, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "sip:agent@pbx.example",
                           "uui": {"data": "56a390f3d2b7310023a2", "purpose": "isdn-uui"},
                           "referToHeaders": {"X-Case": "A 12&b=c", "X-Lang": "de"}});
        let mut sim = Sim::new(seed, with_hangup(refer), Faults::bad());
        sim.call("uui-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(
            refer.raw("Refer-To").as_deref(),
            Some("<sip:agent@pbx.example?User-to-User=56a390f3d2b7310023a2%3Bencoding%3Dhex%3Bpurpose%3Disdn-uui&X-Case=A%2012%26b%3Dc&X-Lang=de>")
        );
        sim.respond(&refer, 603, "");
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
    });
}

fn carrier_profile(tweak: impl FnOnce(&mut TrunkProfile)) -> TrunkProfile {
    let mut p =
        TrunkProfile { name: "carrier".into(), sources: vec!["10.0.0.2/32".parse().unwrap()], ..Default::default() };
    tweak(&mut p);
    p
}

#[test]
fn a_trunk_profile_rewrites_the_refer() {
    every_seed(0..8, |seed| {
        let profile = carrier_profile(|p| {
            p.scheme = ReferScheme::Tel;
            p.plus = Plus::Add;
            p.referred_by = ReferredBy::Omit;
            p.headers = vec![("X-Trunk".into(), "t1".into()), ("X-Ticket".into(), "from-profile".into())];
            p.notify_timeout = Some(Duration::from_secs(2));
        });
        let elsewhere =
            TrunkProfile { name: "other".into(), sources: vec!["192.0.2.0/24".parse().unwrap()], ..Default::default() };
        let refer = json!({"verb": "sip:refer", "referTo": "4915683084809", "referredBy": "bot", "actionHook": "/action",
                           "headers": {"X-Ticket": "T-1"}});
        let mut sim = Sim::with(seed, with_hangup(refer), Faults::bad(), |s| s.profiles = vec![elsewhere, profile]);
        sim.call("profile-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(sim.engine.call_summaries()[0].profile.as_deref(), Some("carrier"));
        assert_eq!(refer.raw("Refer-To").as_deref(), Some("<tel:+4915683084809>"));
        assert_eq!(refer.raw("Referred-By"), None, "the profile omits Referred-By");
        assert_eq!(refer.raw("X-Trunk").as_deref(), Some("t1"));
        assert_eq!(refer.raw("X-Ticket").as_deref(), Some("T-1"), "the application's header wins");
        sim.respond(&refer, 202, "");
        let accepted = sim.elapsed();
        let bye = sim.expect_request("BYE");
        // The profile's NOTIFY timeout (2 s, not the default 15 s) ended it.
        let waited = sim.elapsed() - accepted;
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(4), "{waited:?}");
        sim.respond(&bye, 200, "");
        sim.settle();
        let action = sim.hooks_to("/action");
        assert_eq!(action[0]["refer_status"], json!(202));
        assert!(action[0].get("final_referred_call_status").is_none());
    });
}

#[test]
fn a_profile_host_and_bye_policy_apply_and_other_calls_are_untouched() {
    let profile = carrier_profile(|p| {
        p.request_host = Some("10.0.0.1".into());
        p.refer_host = Some("pstn.example".into());
        p.bye_after_success = Some(ByeAfter::Never);
    });
    let refer = json!({"verb": "sip:refer", "referTo": "sip:+15551234@somewhere.example;user=phone"});
    let mut sim = Sim::with(2, with_hangup(refer.clone()), Faults::bad(), |s| s.profiles = vec![profile.clone()]);
    let mut leg = sim.call("profile-2");
    let sent = sim.expect_request("REFER");
    assert_eq!(sent.raw("Refer-To").as_deref(), Some("<sip:+15551234@pstn.example;user=phone>"));
    sim.respond(&sent, 202, "");
    assert_eq!(leg.notify(&mut sim, &sent, "200 OK", "terminated"), 200);
    sim.run_for(Duration::from_secs(20));
    assert!(sim.received("BYE").is_empty(), "the profile's byeAfterSuccess = never");
    let bye = leg.next("BYE", "", "");
    assert_eq!(sim.request(&bye), 200);
    sim.settle();

    // The same call dialling another host matches no profile: as written, BYE at once.
    let other = carrier_profile(|p| p.request_host = Some("elsewhere.example".into()));
    let mut sim = Sim::with(2, with_hangup(refer), Faults::bad(), |s| s.profiles = vec![other]);
    transferred(&mut sim, "profile-3");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.settle();
    let sent = sim.received("REFER");
    assert_eq!(sent[0].1.raw("Refer-To").as_deref(), Some("<sip:+15551234@somewhere.example;user=phone>"));
}
