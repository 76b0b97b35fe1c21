//! sip:refer end to end: real UDP datagrams over loopback, real HTTP hooks. The protocol's
//! cases (refusals, timeouts, challenges, NOTIFY handling...) run on the simulator, under
//! loss and reordering: crates/baton-proto/tests/transfer.rs.

mod common;

use baton_proto::sip::Name;
use common::*;
use serde_json::json;
use std::time::Duration;

/// A rig whose application is `refer` followed by a hangup that marks the BYE.
fn refer_rig(refer: serde_json::Value) -> Rig {
    Rig::new(json!([refer, {"verb": "hangup", "headers": {"X-Next": "ran"}}]))
}

#[test]
fn happy_path_reports_every_notify_and_hangs_up() {
    let rig = refer_rig(json!({"verb": "sip:refer", "id": "xfer-1", "referTo": "+15083084809",
                              "actionHook": "/action", "eventHook": "/event"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("happy-1");

    let sdp = String::from_utf8_lossy(leg.ok.msg().body).into_owned();
    assert!(sdp.contains("m=audio 9 RTP/AVP 0\r\n") && sdp.contains("a=inactive"), "{sdp}");

    let refer = carrier.expect_request("REFER");
    let me = carrier.addr();
    assert_eq!(refer.header(Name::ReferTo).unwrap(), format!("<sip:+15083084809@{me}>"));
    assert_eq!(refer.header(Name::ReferredBy).unwrap(), format!("\"Alice Caller\" <sip:+15551230000@{me}>"));
    assert_eq!(
        refer.header(Name::To).unwrap(),
        "\"Alice Caller\" <sip:+15551230000@".to_string() + &me.to_string() + ">;tag=car-happy-1"
    );
    assert!(refer.msg().core().unwrap().from.tag().is_some());
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "100 Trying", "active;expires=60"), 200);
    assert_eq!(leg.notify(&refer, "180 Ringing", "active;expires=60"), 200);
    assert_eq!(leg.notify(&refer, "200 OK", "terminated;reason=noresource"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    assert!(bye.raw("X-Next").is_none(), "the application must end after a transfer");

    let events = hooks.wait("/event", 3);
    let codes: Vec<_> = events.iter().map(|e| e.body["call_status"].clone()).collect();
    assert_eq!(codes, vec![json!(100), json!(180), json!(200)]);
    assert_eq!(events[0].body["event"], "transfer-status");
    assert_eq!(events[0].body["verb_id"], "xfer-1");
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(action.body["refer_status"], json!(202));
    assert_eq!(action.body["final_referred_call_status"], json!(200));
    assert_eq!(action.body["verb_id"], "xfer-1");
    assert_eq!(action.body["call_sid"], events[0].body["call_sid"]);

    let call = &hooks.at("/call")[0];
    assert_eq!(call.body["direction"], "inbound");
    assert_eq!(call.body["from"], "+15551230000");
    assert_eq!(call.body["caller_name"], "Alice Caller");
    assert_eq!(call.body["call_id"], "happy-1");
    assert_eq!(call.body["sip"]["method"], "INVITE");
    assert_eq!(call.body["call_status"], "trying");
    assert_signed(call, &hooks.url("/call"), &call.raw);

    let statuses: Vec<_> = hooks.wait("/status", 3).iter().map(|s| s.body["call_status"].clone()).collect();
    assert_eq!(statuses, vec![json!("trying"), json!("in-progress"), json!("completed")]);
    assert_eq!(hooks.at("/status")[2].body["call_termination_by"], "baton");
    assert_eq!(hooks.wait("/action", 1).len(), 1, "actionHook fires exactly once");
}

#[test]
fn a_slow_hook_endpoint_never_delays_sip_and_hooks_stay_in_order() {
    let rig =
        refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply_after("/event", 200, "", Duration::from_millis(1500));
    let mut leg = carrier.call("slow-hooks-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let started = std::time::Instant::now();
    assert_eq!(leg.notify(&refer, "180 Ringing", "active"), 200);
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    assert!(started.elapsed() < Duration::from_millis(500), "SIP waited on HTTP: {:?}", started.elapsed());
    leg.respond(&bye, 200, "");
    // One call's hooks are delivered one at a time: the actionHook leaves only once both
    // slow events have been answered.
    let action = hooks.wait("/action", 1)[0].at;
    let events = hooks.at("/event");
    assert_eq!(events.len(), 2);
    assert!(events[1].at.duration_since(events[0].at) >= Duration::from_millis(1400));
    assert!(action.duration_since(events[0].at) >= Duration::from_millis(2900));
}
