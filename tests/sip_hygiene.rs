//! What the call hook's failures do to a call, with a real HTTP side. The RFC 3261 cases
//! (retransmissions, CANCEL, OPTIONS, 481/405/400...) run on the simulator, under loss
//! and reordering: crates/baton-proto/tests/hygiene.rs.

mod common;

use common::*;
use serde_json::json;

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
