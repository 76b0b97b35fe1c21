//! sip:refer on the simulator: every case runs under many seeds on a network that loses,
//! doubles and reorders datagrams, and must end the same way each time.

mod sim;

use baton_proto::sip::Name;
use baton_proto::{ConnId, Flow, TransferOutcome, Transport};
use serde_json::{json, Value};
use sim::*;
use std::time::Duration;

const SEEDS: std::ops::Range<u64> = 0..16;

/// `refer` followed by a hangup that marks the BYE when the application goes on.
fn refer_app(refer: Value) -> Value {
    json!([refer, {"verb": "hangup", "headers": {"X-Next": "ran"}}])
}

/// Answers the BYE that ends the call, and runs until baton has forgotten it.
fn bye_and_settle(sim: &mut Sim) -> Sip {
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.settle();
    bye
}

/// The transfers the engine counted, by outcome (as `/metrics` shows them).
fn counted(sim: &Sim) -> Vec<(&'static str, u64)> {
    let stats = sim.engine.stats;
    TransferOutcome::ALL.iter().zip(stats.transfers).filter(|(_, n)| *n > 0).map(|(o, n)| (o.as_str(), n)).collect()
}

fn codes(hooks: &[Value], key: &str) -> Vec<Value> {
    hooks.iter().map(|h| h[key].clone()).collect()
}

#[test]
fn happy_path_reports_every_notify_and_hangs_up() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "id": "xfer-1", "referTo": "+15083084809",
                           "actionHook": "/action", "eventHook": "/event"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let mut leg = sim.call("happy-1");
        let sdp = String::from_utf8_lossy(leg.ok.msg().body).into_owned();
        assert!(sdp.contains("m=audio 9 RTP/AVP 0\r\n") && sdp.contains("a=inactive"), "{sdp}");

        let refer = sim.expect_request("REFER");
        assert_eq!(refer.header(Name::ReferTo).unwrap(), format!("<sip:+15083084809@{CARRIER}>"));
        assert_eq!(refer.header(Name::ReferredBy).unwrap(), format!("\"Alice Caller\" <sip:+15551230000@{CARRIER}>"));
        assert_eq!(
            refer.header(Name::To).unwrap(),
            format!("\"Alice Caller\" <sip:+15551230000@{CARRIER}>;tag=car-happy-1")
        );
        sim.respond(&refer, 202, "");
        assert_eq!(leg.notify(&mut sim, &refer, "100 Trying", "active;expires=60"), 200);
        assert_eq!(leg.notify(&mut sim, &refer, "180 Ringing", "active;expires=60"), 200);
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated;reason=noresource"), 200);
        let bye = bye_and_settle(&mut sim);
        assert!(bye.raw("X-Next").is_none(), "the application must end after a transfer");

        let events = sim.hooks_to("/event");
        assert_eq!(
            codes(&events, "call_status"),
            [json!(100), json!(180), json!(200)],
            "once each, however often sent"
        );
        assert_eq!(
            (events[0]["event"].clone(), events[0]["verb_id"].clone()),
            (json!("transfer-status"), json!("xfer-1"))
        );
        let action = sim.hooks_to("/action");
        assert_eq!(action.len(), 1, "actionHook fires exactly once");
        assert_eq!(
            (action[0]["refer_status"].clone(), action[0]["final_referred_call_status"].clone()),
            (json!(202), json!(200))
        );
        assert_eq!(action[0]["call_sid"], events[0]["call_sid"]);
        let call = &sim.hooks_to("/call")[0];
        assert_eq!((call["direction"].clone(), call["from"].clone()), (json!("inbound"), json!("+15551230000")));
        assert_eq!((call["call_id"].clone(), call["sip"]["method"].clone()), (json!("happy-1"), json!("INVITE")));
        let statuses = sim.hooks_to("/status");
        assert_eq!(codes(&statuses, "call_status"), [json!("trying"), json!("in-progress"), json!("completed")]);
        assert_eq!(statuses[2]["call_termination_by"], "baton");
        assert_eq!(sim.gone, 1);
        assert_eq!(counted(&sim), [("succeeded", 1)]);
        let (accepted, finished) = (sim.engine.stats.refer_accepted, sim.engine.stats.refer_final);
        assert_eq!((accepted.buckets.iter().sum::<u64>(), finished.buckets.iter().sum::<u64>()), (1, 1));
        assert!(finished.sum_us >= accepted.sum_us, "the final NOTIFY comes after the 202");
    });
}

/// The network really is bad: the cases above pass through losses and doubles.
#[test]
fn the_seeds_lose_and_double_datagrams() {
    let (mut lost, mut doubled) = (0, 0);
    for seed in SEEDS {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let mut leg = sim.call("faults-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated"), 200);
        bye_and_settle(&mut sim);
        assert_eq!(sim.hooks_to("/action")[0]["final_referred_call_status"], json!(200));
        (lost, doubled) = (lost + sim.lost, doubled + sim.doubled);
    }
    assert!(lost >= 10 && doubled >= 10, "lost {lost}, doubled {doubled}");
}

/// Over one TCP connection: everything goes back on it, Via and Contact say TCP, and a
/// request is never sent again (RFC 3261 §17.1.2.2), only bounded by Timer F; our 200 is
/// still repeated until its ACK (§13.3.1.4).
#[test]
fn over_tcp_nothing_is_retransmitted_but_timer_f_still_bounds_the_refer() {
    let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
    let mut sim = Sim::new(0, refer_app(refer), Faults::NONE);
    sim.flow = Flow { transport: Transport::Tcp, conn: Some(ConnId(7)), ..sim.flow };
    let leg = sim.call("tcp-1");
    assert!(leg.ok.header(Name::Contact).unwrap().ends_with(";transport=tcp>"), "{}", leg.ok.text());
    let refer = sim.expect_request("REFER");
    assert!(refer.header(Name::Via).unwrap().starts_with("SIP/2.0/TCP "), "{}", refer.text());
    let sent_at = sim.elapsed();
    let bye = sim.expect_request("BYE");
    assert_eq!(sim.received("REFER").len(), 1, "no Timer E on a reliable transport");
    assert_eq!((sim.elapsed() - sent_at).as_millis(), 32_000, "Timer F still fires");
    assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(408));
    sim.respond(&bye, 200, "");
    sim.settle();
    assert_eq!(sim.misrouted, 0, "every message went back on the carrier's connection");

    let mut sim = Sim::new(0, json!([{"verb": "pause", "length": 60}]), Faults::NONE);
    sim.flow = Flow { transport: Transport::Tcp, conn: Some(ConnId(7)), ..sim.flow };
    sim.auto_ack = false;
    sim.send(&invite_text(addr(CARRIER), addr(BATON), "tcp-2", ""));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.received.iter().filter(|(_, m)| m.status() == Some(200)).count(), 3, "the 2xx at 0, 500, 1500 ms");
}

#[test]
fn refused_refer_runs_the_next_verb() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "sip:agent@10.9.9.9", "actionHook": "/action"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.call("refused-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sip:agent@10.9.9.9>");
        sim.respond(&refer, 603, "");
        assert_eq!(bye_and_settle(&mut sim).raw("X-Next").as_deref(), Some("ran"));
        let action = &sim.hooks_to("/action")[0];
        assert_eq!(action["refer_status"], json!(603));
        assert!(action.get("final_referred_call_status").is_none());
        assert_eq!(counted(&sim), [("refused", 1)]);
    });
}

#[test]
fn busy_target_keeps_the_call_and_the_action_hook_can_replace_the_app() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "tel:+4915683084809", "actionHook": "/action", "eventHook": "/event"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.answer_hook("/action", 200, &json!([{"verb": "hangup", "headers": {"X-Fallback": "busy"}}]).to_string());
        let mut leg = sim.call("busy-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(refer.header(Name::ReferTo).unwrap(), "<tel:+4915683084809>");
        sim.respond(&refer, 202, "");
        assert_eq!(leg.notify(&mut sim, &refer, "100 Trying", "active"), 200);
        assert_eq!(leg.notify(&mut sim, &refer, "486 Busy Here", "terminated"), 200);
        let bye = bye_and_settle(&mut sim);
        assert_eq!(bye.raw("X-Fallback").as_deref(), Some("busy"), "verbs from the actionHook replace the rest");
        let action = &sim.hooks_to("/action")[0];
        assert_eq!(
            (action["refer_status"].clone(), action["final_referred_call_status"].clone()),
            (json!(202), json!(486))
        );
        assert_eq!(sim.hooks_to("/event").len(), 2);
        assert_eq!(counted(&sim), [("failed", 1)]);
    });
}

#[test]
fn notify_before_the_202_and_an_older_notify_after_a_newer_one() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "sips:agent@secure.example", "actionHook": "/action", "eventHook": "/event"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let mut leg = sim.call("early-notify-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sips:agent@secure.example>");
        let id = refer.cseq().0;
        let notify = |cseq, status| {
            let headers =
                format!("Event: refer;id={id}\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n");
            leg.dialog().request("NOTIFY", cseq, &headers, &format!("SIP/2.0 {status}\r\n"))
        };
        // CSeq 5 first, then an older CSeq 4: both answered, the older one ignored.
        let (newer, older) = (notify(5, "180 Ringing"), notify(4, "100 Trying"));
        assert_eq!(sim.request(&newer), 200);
        assert_eq!(sim.request(&older), 200);
        sim.respond(&refer, 202, "");
        leg.cseq = 5;
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated"), 200);
        bye_and_settle(&mut sim);
        assert_eq!(codes(&sim.hooks_to("/event"), "call_status"), [json!(180), json!(200)]);
        assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(202));
    });
}

#[test]
fn a_notify_sent_again_is_answered_again_without_a_second_hook() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let mut leg = sim.call("retx-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        let headers = format!(
            "Event: refer;id={}\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n",
            refer.cseq().0
        );
        let notify = leg.next("NOTIFY", &headers, "SIP/2.0 180 Ringing\r\n");
        for _ in 0..3 {
            assert_eq!(sim.request(&notify), 200);
        }
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated"), 200);
        bye_and_settle(&mut sim);
        assert_eq!(codes(&sim.hooks_to("/event"), "call_status"), [json!(180), json!(200)]);
    });
}

#[test]
fn an_accepted_refer_without_notify_times_out_and_the_call_goes_on() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "timeout": 2});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.call("timeout-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        let bye = bye_and_settle(&mut sim);
        assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"), "the call stays up and the next verb runs");
        let action = &sim.hooks_to("/action")[0];
        assert_eq!(action["refer_status"], json!(202));
        assert!(action.get("final_referred_call_status").is_none());
    });
}

#[test]
fn an_unanswered_refer_is_sent_again_then_fails_with_408_at_64_t1() {
    let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
    let mut sim = Sim::new(0, refer_app(refer), Faults::NONE);
    sim.call("no-answer-1");
    let first = sim.expect_request("REFER");
    let sent_at = sim.elapsed();
    let bye = sim.expect_request("BYE");
    let refers: Vec<_> = sim.received("REFER").iter().map(|(t, _)| (*t - sent_at).as_millis()).collect();
    assert_eq!(refers[..6], [0, 500, 1500, 3500, 7500, 11500], "Timer E, doubling to T2");
    assert!(sim.received("REFER").iter().all(|(_, m)| m.0 == first.0), "the same REFER each time");
    assert_eq!((sim.elapsed() - sent_at).as_millis(), 32_000, "Timer F");
    assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"));
    assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(408));
    assert_eq!(counted(&sim), [("timed_out", 1)]);
    sim.respond(&bye, 200, "");
    sim.settle();
}

#[test]
fn the_caller_hanging_up_during_the_transfer_fires_the_action_hook_once() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.answer_hook("/action", 200, &json!([{"verb": "hangup", "headers": {"X-Never": "1"}}]).to_string());
        let mut leg = sim.call("bye-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        sim.until_delivered(&refer);
        assert_eq!(sim.request(&leg.next("BYE", "", "")), 200);
        // A NOTIFY after the BYE is still answered while the subscription lives.
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated"), 200);
        sim.settle();
        assert_eq!(sim.unanswered(), Vec::<String>::new(), "no request after the caller hung up");
        assert_eq!(sim.hooks_to("/action").len(), 1);
        assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(202));
        assert_eq!(sim.hooks_to("/status")[2]["call_termination_by"], "caller");
        assert_eq!(counted(&sim), [("caller_gone", 1)]);
    });
}

#[test]
fn compact_headers_and_mixed_case_event() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let leg = sim.call("compact-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        let notify = format!(
            "NOTIFY sip:baton@{BATON} SIP/2.0\r\nv: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-compact-n\r\nf: <sip:+15551230000@{CARRIER}>;tag=car-compact-1\r\n\
             t: {}\r\ni: compact-1\r\nCSeq: 9 NOTIFY\r\no: Refer;id={}\r\nSubscription-State: terminated\r\nc: message/sipfrag;version=2.0\r\nl: 16\r\n\r\nSIP/2.0 200 OK\r\n",
            leg.to, refer.cseq().0
        );
        assert_eq!(sim.request(&notify), 200);
        bye_and_settle(&mut sim);
        assert_eq!(sim.hooks_to("/action")[0]["final_referred_call_status"], json!(200));
    });
}

#[test]
fn custom_headers_referred_by_and_refer_domain() {
    let app = json!([{"verb": "sip:refer", "referTo": "5551234", "referredBy": "bot", "referredByDisplayName": "Help Desk",
                      "headers": {"X-Ticket": "T-42", "User-to-User": "abc;encoding=hex"}}]);
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::with(seed, app.clone(), Faults::bad(), |s| s.refer_domain = Some("pbx.example.com".into()));
        sim.call_with("hdrs-1", "P-Asserted-Identity: \"Real Name\" <sip:+15550000001@carrier>\r\n");
        let refer = sim.expect_request("REFER");
        assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sip:5551234@pbx.example.com>");
        assert_eq!(refer.header(Name::ReferredBy).unwrap(), "\"Help Desk\" <sip:bot@pbx.example.com>");
        assert_eq!(refer.raw("X-Ticket").as_deref(), Some("T-42"));
        assert_eq!(refer.raw("User-to-User").as_deref(), Some("abc;encoding=hex"));
        sim.respond(&refer, 603, "");
        bye_and_settle(&mut sim);
    });
}

#[test]
fn the_default_referred_by_is_the_p_asserted_identity() {
    let mut sim = Sim::new(0, refer_app(json!({"verb": "sip:refer", "referTo": "agent"})), Faults::bad());
    sim.call_with("pai-1", "P-Asserted-Identity: \"Real Name\" <sip:+15550000001@carrier>\r\n");
    let refer = sim.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferredBy).unwrap(), format!("\"Real Name\" <sip:+15550000001@{CARRIER}>"));
    sim.respond(&refer, 603, "");
    bye_and_settle(&mut sim);
}

#[test]
fn refer_sub_false_completes_at_once() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.call("norefersub-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 200, "Refer-Sub: false\r\n");
        assert_eq!(bye_and_settle(&mut sim).raw("X-Next").as_deref(), Some("ran"));
        assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(200));
        assert_eq!(counted(&sim), [("unknown", 1)]);
    });
}

#[test]
fn notifies_without_event_of_another_package_or_no_subscription_are_refused() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::new(seed, json!([{"verb": "pause", "length": 5}]), Faults::bad());
        let mut leg = sim.call("notify-codes-1");
        for (event, code) in [("", 400), ("Event: presence\r\n", 489), ("Event: refer;id=77\r\n", 481)] {
            let headers = format!("{event}Subscription-State: active\r\nContent-Type: message/sipfrag\r\n");
            assert_eq!(sim.request(&leg.next("NOTIFY", &headers, "SIP/2.0 100 Trying\r\n")), code, "{event:?}");
        }
        bye_and_settle(&mut sim);
    });
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_param<'a>(header: &'a str, name: &str) -> &'a str {
    let start = header.find(&format!("{name}=")).unwrap_or_else(|| panic!("{name} in {header}")) + name.len() + 1;
    let rest = &header[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"').unwrap()],
        None => &rest[..rest.find([',', ' ']).unwrap_or(rest.len())],
    }
}

#[test]
fn a_challenged_refer_is_sent_again_with_digest_credentials() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action",
                           "auth": {"username": "bot", "password": "s3cret"}});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        let mut leg = sim.call("digest-1");
        let first = sim.expect_request("REFER");
        let challenge = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"abc123\", qop=\"auth\", opaque=\"op\"\r\n";
        sim.respond(&first, 401, challenge);
        let second = sim.expect_request("REFER");
        assert_eq!(second.cseq().0, first.cseq().0 + 1);
        assert_eq!(second.header(Name::ReferTo), first.header(Name::ReferTo));
        let auth = second.raw("Authorization").unwrap();
        let uri = digest_param(&auth, "uri");
        let (nc, cnonce) = (digest_param(&auth, "nc"), digest_param(&auth, "cnonce"));
        let ha1 = md5_hex("bot:carrier:s3cret");
        let ha2 = md5_hex(&format!("REFER:{uri}"));
        assert_eq!(
            digest_param(&auth, "response"),
            md5_hex(&format!("{ha1}:abc123:{nc}:{cnonce}:auth:{ha2}")),
            "{auth}"
        );
        assert_eq!(digest_param(&auth, "opaque"), "op");
        sim.respond(&second, 202, "");
        assert_eq!(leg.notify(&mut sim, &second, "200 OK", "terminated"), 200);
        bye_and_settle(&mut sim);
        let action = &sim.hooks_to("/action")[0];
        assert_eq!(
            (action["refer_status"].clone(), action["final_referred_call_status"].clone()),
            (json!(202), json!(200))
        );
    });
}

#[test]
fn a_second_challenge_or_no_credentials_is_final() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action",
                           "auth": {"username": "bot", "password": "wrong"}});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.call("digest-2");
        let challenge = "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=SHA-256\r\n";
        let first = sim.expect_request("REFER");
        sim.respond(&first, 407, challenge);
        let second = sim.expect_request("REFER");
        assert!(second.raw("Proxy-Authorization").unwrap().contains("algorithm=SHA-256"));
        sim.respond(&second, 407, challenge);
        assert_eq!(bye_and_settle(&mut sim).raw("X-Next").as_deref(), Some("ran"));
        assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(407));

        let mut sim = Sim::new(
            seed,
            refer_app(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"})),
            Faults::bad(),
        );
        sim.call("digest-3");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 401, "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n\"\r\n");
        bye_and_settle(&mut sim);
        assert_eq!(sim.hooks_to("/action")[0]["refer_status"], json!(401));
    });
}

#[test]
fn hooks_answered_late_never_hold_up_sip() {
    every_seed(SEEDS, |seed| {
        let refer = json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"});
        let mut sim = Sim::new(seed, refer_app(refer), Faults::bad());
        sim.answer_hook_after("/action", Duration::from_secs(3), 200, "");
        let mut leg = sim.call("slow-1");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        assert_eq!(leg.notify(&mut sim, &refer, "486 Busy Here", "terminated"), 200);
        let bye = bye_and_settle(&mut sim);
        assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"), "the next verb waits for the actionHook's answer");
        let asked = sim.hooks.iter().find(|(_, h)| h.hook.url == "/action").unwrap().0;
        assert!(sim.received("BYE")[0].0 - asked >= Duration::from_secs(3));
    });
}
