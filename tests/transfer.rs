//! sip:refer end to end: real UDP datagrams over loopback, real HTTP hooks.

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
fn refused_refer_runs_the_next_verb() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "sip:agent@10.9.9.9", "actionHook": "/action"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("refused-1");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sip:agent@10.9.9.9>");
    leg.respond(&refer, 603, "");
    let bye = carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"));
    leg.respond(&bye, 200, "");
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(action.body["refer_status"], json!(603));
    assert!(action.body.get("final_referred_call_status").is_none());
}

#[test]
fn busy_target_keeps_the_call_and_the_action_hook_can_replace_the_app() {
    let rig = refer_rig(
        json!({"verb": "sip:refer", "referTo": "tel:+4915683084809", "actionHook": "/action", "eventHook": "/event"}),
    );
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/action", 200, &json!([{"verb": "hangup", "headers": {"X-Fallback": "busy"}}]).to_string());
    let mut leg = carrier.call("busy-1");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferTo).unwrap(), "<tel:+4915683084809>");
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "100 Trying", "active"), 200);
    assert_eq!(leg.notify(&refer, "486 Busy Here", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Fallback").as_deref(), Some("busy"), "verbs from the actionHook replace the rest");
    leg.respond(&bye, 200, "");
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(
        (action.body["refer_status"].clone(), action.body["final_referred_call_status"].clone()),
        (json!(202), json!(486))
    );
    assert_eq!(hooks.wait("/event", 2).len(), 2);
}

#[test]
fn notify_before_the_202_and_out_of_order_notify() {
    let rig = refer_rig(
        json!({"verb": "sip:refer", "referTo": "sips:agent@secure.example", "actionHook": "/action", "eventHook": "/event"}),
    );
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("early-notify-1");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sips:agent@secure.example>");
    let id = refer.cseq().0;
    // NOTIFY CSeq 5 arrives, then an older CSeq 4: answered, ignored.
    let late = leg.request_with_cseq(
        "NOTIFY",
        5,
        &format!("Event: refer;id={id}\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n"),
        "SIP/2.0 180 Ringing\r\n",
    );
    carrier.send(&late);
    assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(200));
    let old = leg.request_with_cseq(
        "NOTIFY",
        4,
        &format!("Event: refer;id={id}\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n"),
        "SIP/2.0 100 Trying\r\n",
    );
    carrier.send(&old);
    assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(200));
    leg.respond(&refer, 202, "");
    leg.cseq = 5;
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let events = hooks.wait("/event", 2);
    assert_eq!(events.iter().map(|e| e.body["call_status"].clone()).collect::<Vec<_>>(), vec![json!(180), json!(200)]);
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(action.body["refer_status"], json!(202));
}

#[test]
fn retransmitted_notify_is_answered_again_without_a_second_hook() {
    let rig =
        refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("retx-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let id = refer.cseq().0;
    let notify = leg.request(
        "NOTIFY",
        &format!("Event: refer;id={id}\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n"),
        "SIP/2.0 180 Ringing\r\n",
    );
    for _ in 0..3 {
        carrier.send(&notify);
        assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(200));
    }
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    hooks.wait("/action", 1);
    assert_eq!(hooks.at("/event").len(), 2, "{:#?}", hooks.at("/event"));
}

#[test]
fn accepted_refer_without_notify_times_out() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "timeout": 0.5}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("timeout-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let bye = carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"), "the call stays up and the next verb runs");
    leg.respond(&bye, 200, "");
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(action.body["refer_status"], json!(202));
    assert!(action.body.get("final_referred_call_status").is_none());
}

#[test]
fn unanswered_refer_times_out_with_408() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("no-answer-1");
    let first = carrier.expect_request("REFER");
    let again = carrier.expect_request("REFER");
    assert_eq!(first.0, again.0, "Timer E retransmits the same REFER");
    // 64·T1 = 3.2 s with the test timers.
    let bye = carrier.expect("BYE after Timer F", |m| m.method().as_deref() == Some("BYE"));
    leg.respond(&bye, 200, "");
    assert_eq!(hooks.wait("/action", 1)[0].body["refer_status"], json!(408));
}

#[test]
fn far_end_bye_during_transfer_fires_the_action_hook_once() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/action", 200, &json!([{"verb": "hangup", "headers": {"X-Never": "1"}}]).to_string());
    let mut leg = carrier.call("bye-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let bye = leg.request("BYE", "", "");
    carrier.send(&bye);
    assert_eq!(carrier.expect_response("BYE", true).status(), Some(200));
    // A NOTIFY after the BYE is still answered while the subscription lives.
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let action = hooks.wait("/action", 1);
    assert_eq!(action[0].body["refer_status"], json!(202));
    carrier.expect_none(Duration::from_millis(300), "request after the caller hung up", |m| m.method().is_some());
    assert_eq!(hooks.at("/action").len(), 1);
    let status = hooks.wait("/status", 3);
    assert_eq!(status[2].body["call_termination_by"], "caller");
}

#[test]
fn compact_headers_and_mixed_case_event() {
    let rig =
        refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("compact-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let me = carrier.addr();
    let notify = format!(
        "NOTIFY sip:baton@{} SIP/2.0\r\nv: SIP/2.0/UDP {me};branch=z9hG4bK-compact-n\r\nf: <sip:+15551230000@{me}>;tag=car-compact-1\r\n\
         t: {}\r\ni: compact-1\r\nCSeq: 9 NOTIFY\r\no: Refer;id={}\r\nSubscription-State: terminated\r\nc: message/sipfrag;version=2.0\r\nl: 16\r\n\r\nSIP/2.0 200 OK\r\n",
        carrier.baton, leg.to, refer.cseq().0
    );
    carrier.send(&notify);
    assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(200));
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    assert_eq!(hooks.wait("/action", 1)[0].body["final_referred_call_status"], json!(200));
}

#[test]
fn custom_headers_referred_by_and_refer_domain() {
    let verbs = json!([{"verb": "sip:refer", "referTo": "5551234", "referredBy": "bot", "referredByDisplayName": "Help Desk",
                        "headers": {"X-Ticket": "T-42", "User-to-User": "abc;encoding=hex"}}]);
    let rig = Rig::with(verbs, |s| s.refer_domain = Some("pbx.example.com".into()));
    let carrier = &rig.carrier;
    let leg = carrier.call_with("hdrs-1", "P-Asserted-Identity: \"Real Name\" <sip:+15550000001@carrier>\r\n");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferTo).unwrap(), "<sip:5551234@pbx.example.com>");
    assert_eq!(refer.header(Name::ReferredBy).unwrap(), "\"Help Desk\" <sip:bot@pbx.example.com>");
    assert_eq!(refer.raw("X-Ticket").as_deref(), Some("T-42"));
    assert_eq!(refer.raw("User-to-User").as_deref(), Some("abc;encoding=hex"));
    leg.respond(&refer, 603, "");
}

#[test]
fn default_referred_by_uses_p_asserted_identity() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent"}));
    let carrier = &rig.carrier;
    let leg = carrier.call_with("pai-1", "P-Asserted-Identity: \"Real Name\" <sip:+15550000001@carrier>\r\n");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.header(Name::ReferredBy).unwrap(), format!("\"Real Name\" <sip:+15550000001@{}>", carrier.addr()));
    leg.respond(&refer, 603, "");
}

#[test]
fn refer_sub_false_completes_at_once() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("norefersub-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 200, "Refer-Sub: false\r\n");
    let bye = carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"));
    assert_eq!(hooks.wait("/action", 1)[0].body["refer_status"], json!(200));
}

#[test]
fn notify_answers_for_missing_event_other_package_and_no_subscription() {
    let rig = Rig::new(json!([{"verb": "pause", "length": 2}]));
    let carrier = &rig.carrier;
    let mut leg = carrier.call("notify-codes-1");
    let cases = [("", 400), ("Event: presence\r\n", 489), ("Event: refer;id=77\r\n", 481)];
    for (event, code) in cases {
        let n = leg.request(
            "NOTIFY",
            &format!("{event}Subscription-State: active\r\nContent-Type: message/sipfrag\r\n"),
            "SIP/2.0 100 Trying\r\n",
        );
        carrier.send(&n);
        assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(code), "{event:?}");
    }
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
fn challenged_refer_is_resent_with_digest_credentials() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action",
                               "auth": {"username": "bot", "password": "s3cret"}}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("digest-1");
    let first = carrier.expect_request("REFER");
    leg.respond(
        &first,
        401,
        "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"abc123\", qop=\"auth\", opaque=\"op\"\r\n",
    );
    let second = carrier.expect("REFER with credentials", |m| {
        m.method().as_deref() == Some("REFER") && m.raw("Authorization").is_some()
    });
    assert_eq!(second.cseq().0, first.cseq().0 + 1);
    assert_eq!(second.header(Name::ReferTo), first.header(Name::ReferTo));
    let auth = second.raw("Authorization").unwrap();
    let uri = digest_param(&auth, "uri");
    let (nc, cnonce) = (digest_param(&auth, "nc"), digest_param(&auth, "cnonce"));
    let ha1 = md5_hex("bot:carrier:s3cret");
    let ha2 = md5_hex(&format!("REFER:{uri}"));
    let expected = md5_hex(&format!("{ha1}:abc123:{nc}:{cnonce}:auth:{ha2}"));
    assert_eq!(digest_param(&auth, "response"), expected, "{auth}");
    assert_eq!(digest_param(&auth, "opaque"), "op");
    leg.respond(&second, 202, "");
    assert_eq!(leg.notify(&second, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(
        (action.body["refer_status"].clone(), action.body["final_referred_call_status"].clone()),
        (json!(202), json!(200))
    );
}

#[test]
fn a_second_challenge_or_no_credentials_is_final() {
    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action",
                               "auth": {"username": "bot", "password": "wrong"}}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("digest-2");
    let challenge = "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=SHA-256\r\n";
    let first = carrier.expect_request("REFER");
    leg.respond(&first, 407, challenge);
    let second = carrier.expect("REFER with credentials", |m| m.raw("Proxy-Authorization").is_some());
    assert!(second.raw("Proxy-Authorization").unwrap().contains("algorithm=SHA-256"));
    leg.respond(&second, 407, challenge);
    let bye = carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Next").as_deref(), Some("ran"));
    leg.respond(&bye, 200, "");
    assert_eq!(hooks.wait("/action", 1)[0].body["refer_status"], json!(407));

    let rig = refer_rig(json!({"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}));
    let leg = rig.carrier.call("digest-3");
    let refer = rig.carrier.expect_request("REFER");
    leg.respond(&refer, 401, "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n\"\r\n");
    rig.carrier.expect_request("BYE");
    assert_eq!(rig.hooks.wait("/action", 1)[0].body["refer_status"], json!(401));
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
