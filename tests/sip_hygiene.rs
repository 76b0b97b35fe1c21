//! RFC 3261 behaviour over UDP: timers, retransmissions, CANCEL, OPTIONS, 481/405/400.

mod common;

use baton_proto::sip::Name;
use common::*;
use serde_json::json;
use std::time::Duration;

fn pause_rig() -> Rig {
    Rig::new(json!([{"verb": "pause", "length": 30}]))
}

#[test]
fn call_hook_down_answers_480_with_a_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let rig = Rig::with(json!([]), |s| s.call_hook = Some(baton_proto::Hook::post(format!("http://{closed}/call"))));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    carrier.send(&carrier.invite_text("down-1", ""));
    assert_eq!(carrier.expect_response("INVITE", false).status(), Some(100), "100 Trying comes before any hook");
    let reject = carrier.expect_response("INVITE", true);
    assert_eq!(reject.status(), Some(480));
    // The reason says what failed; the application's URL stays in baton's log.
    let why = reject.raw("X-Reason").unwrap();
    assert!(why.contains("hook failed") && !why.contains(&closed.to_string()), "{}", reject.text());
    let failed = hooks.wait("/status", 2);
    assert_eq!(failed[1].body["call_status"], "failed");
}

#[test]
fn invalid_application_from_the_call_hook_is_rejected_with_its_problem() {
    let rig = Rig::new(json!([{"verb": "answer"}, {"verb": "sip:refer", "referTo": "x", "headers": {"Via": "evil"}}]));
    let carrier = &rig.carrier;
    carrier.send(&carrier.invite_text("invalid-app-1", ""));
    let reject = carrier.expect_response("INVITE", true);
    assert_eq!(reject.status(), Some(480));
    let why = reject.raw("X-Reason").unwrap();
    assert!(why.contains("verb 1 (sip:refer)") && why.contains("headers.Via"), "{why}");
}

#[test]
fn call_hook_errors_are_retried_then_rejected() {
    let rig = Rig::new(json!([]));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/call", 503, "busy");
    carrier.send(&carrier.invite_text("retry-1", ""));
    let reject = carrier.expect_response("INVITE", true);
    assert_eq!(reject.status(), Some(480));
    assert!(reject.raw("X-Reason").unwrap().contains("HTTP 503"));
    assert_eq!(hooks.at("/call").len(), 3, "one try and two retries by default");
}

#[test]
fn cancel_before_answer() {
    let rig = Rig::new(json!([]));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply_after("/call", 200, &json!([{"verb": "answer"}]).to_string(), Duration::from_millis(500));
    let invite = carrier.invite_text("cancel-1", "");
    carrier.send(&invite);
    carrier.expect_response("INVITE", false);
    let cancel = invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .split("Content-Type")
        .next()
        .unwrap()
        .to_string()
        + "Content-Length: 0\r\n\r\n";
    carrier.send(&cancel);
    assert_eq!(carrier.expect_response("CANCEL", true).status(), Some(200));
    let terminated = carrier.expect_response("INVITE", true);
    assert_eq!(terminated.status(), Some(487));
    // Without an ACK the 487 is retransmitted (Timer G).
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(487));
    let statuses = hooks.wait("/status", 2);
    assert_eq!(statuses[1].body["call_status"], "canceled");
    // The hook's late answer must not revive the call.
    carrier.expect_none(Duration::from_millis(700), "200 after CANCEL", |m| {
        m.status() == Some(200) && m.cseq().1 == "INVITE"
    });
}

#[test]
fn options_unknown_dialog_unsupported_and_bad_requests() {
    let mut rig = Rig::new(json!([]));
    let carrier = &rig.carrier;
    let me = carrier.addr();
    let req = |method: &str, extra: &str| {
        format!(
            "{method} sip:baton@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}\r\nFrom: <sip:a@{me}>;tag=1\r\n\
             To: <sip:b@x>{extra}\r\nCall-ID: stray-{method}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n",
            carrier.baton
        )
    };
    carrier.send(&req("OPTIONS", ""));
    let ok = carrier.expect_response("OPTIONS", true);
    assert_eq!(ok.status(), Some(200));
    assert!(ok.raw("Allow").unwrap().contains("NOTIFY"));
    carrier.send(&req("OPTIONS", "").replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"));
    assert_eq!(carrier.expect_response("OPTIONS", true).status(), Some(505));
    carrier.send(&req("OPTIONS", "").replace("Content-Length", "Require: 100rel\r\nContent-Length"));
    let ext = carrier.expect_response("OPTIONS", true);
    assert_eq!((ext.status(), ext.raw("Unsupported").as_deref()), (Some(420), Some("100rel")));
    carrier.send(&req("BYE", ";tag=nope"));
    assert_eq!(carrier.expect_response("BYE", true).status(), Some(481));
    carrier.send(&req("PUBLISH", ""));
    let nope = carrier.expect_response("PUBLISH", true);
    assert_eq!(nope.status(), Some(405));
    assert!(nope.raw("Allow").is_some());
    let no_call_id = req("OPTIONS", "").replace("Call-ID: stray-OPTIONS\r\n", "");
    carrier.send(&no_call_id);
    let bad = carrier.expect_response("OPTIONS", true);
    assert_eq!(bad.status(), Some(400));
    assert!(bad.text().starts_with("SIP/2.0 400 Missing Call-ID Header\r\n"), "{}", bad.text());
    // Noise is dropped, and baton keeps answering.
    carrier.send_bytes(&[0xff, 0x00, 0x13, 0x37]);
    carrier.send_bytes(b"INVITE sip:x SIP/2.0\r\nVia: broken");
    carrier.send(&req("OPTIONS", ""));
    assert_eq!(carrier.expect_response("OPTIONS", true).status(), Some(200));
    let stats = rig.stop();
    assert_eq!(stats.dropped, 2);
    assert_eq!((stats.bad_requests, stats.unknown_dialog), (2, 1));
}

#[test]
fn retransmitted_invite_creates_one_call_and_2xx_repeats_until_ack() {
    let rig = pause_rig();
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let invite = carrier.invite_text("retx-inv-1", "");
    carrier.send(&invite);
    carrier.send(&invite);
    let first = carrier.expect("200", |m| m.status() == Some(200));
    let second = carrier.expect("retransmitted 200", |m| m.status() == Some(200));
    assert_eq!(first.0, second.0);
    assert_eq!(hooks.at("/call").len(), 1);
}

/// A call whose 200 is never acknowledged ends at 64·T1 (3.2 s with the test timers)
/// without a BYE: nothing goes to a Contact the ACK never confirmed (a spoofed INVITE would
/// otherwise reflect a BYE at whoever it named).
#[test]
fn missing_ack_ends_the_call_without_bye() {
    let mut rig = pause_rig();
    let carrier = &rig.carrier;
    carrier.send(&carrier.invite_text("no-ack-1", ""));
    carrier.expect_response("INVITE", true);
    carrier.expect_none(Duration::from_millis(3700), "request before the ACK", |m| m.method().is_some());
    let ended = rig.hooks.wait_matching("/status", 1, |r| r.body["call_status"] == "failed");
    assert_eq!(ended[0].body["call_termination_by"], "baton");
    assert_eq!(rig.stop().never_acked, 1);
}

#[test]
fn reinvite_update_and_invite_without_sdp() {
    let rig = pause_rig();
    let carrier = &rig.carrier;
    let mut leg = carrier.call("reinvite-1");
    let answer = String::from_utf8_lossy(leg.ok.msg().body).into_owned();
    let reinvite =
        leg.request("INVITE", "Contact: <sip:carrier@127.0.0.1>\r\nContent-Type: application/sdp\r\n", OFFER);
    carrier.send(&reinvite);
    let ok = carrier.expect_response("INVITE", true);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(String::from_utf8_lossy(ok.msg().body), answer);
    let update = leg.request("UPDATE", "", "");
    carrier.send(&update);
    assert_eq!(carrier.expect_response("UPDATE", true).status(), Some(200));
    let info = leg.request("MESSAGE", "", "");
    carrier.send(&info);
    assert_eq!(carrier.expect_response("MESSAGE", true).status(), Some(405));

    let no_sdp = carrier.invite_text("offerless-1", "").split("Content-Type").next().unwrap().to_string()
        + "Content-Length: 0\r\n\r\n";
    carrier.send(&no_sdp);
    let offer = carrier
        .expect("200 with an offer", |m| m.status() == Some(200) && m.msg().core().unwrap().call_id == "offerless-1");
    let body = String::from_utf8_lossy(offer.msg().body).into_owned();
    assert!(body.contains("m=audio 9 RTP/AVP 0 8"), "{body}");
    assert_eq!(offer.header(Name::ContentType).as_deref(), Some("application/sdp"));
}

#[test]
fn over_the_call_limit_new_invites_get_503() {
    let rig = Rig::with(json!([{"verb": "pause", "length": 30}]), |s| s.max_calls = 1);
    let carrier = &rig.carrier;
    let _leg = carrier.call("limit-1");
    carrier.send(&carrier.invite_text("limit-2", ""));
    let busy = carrier.expect("503", |m| m.status() == Some(503));
    assert_eq!(busy.raw("Retry-After").as_deref(), Some("5"));
}
