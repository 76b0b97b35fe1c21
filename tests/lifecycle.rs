//! The real binary across signals: graceful shutdown, and no hook lost when the hook
//! endpoint is down (dead letters, then `baton replay`).

mod common;

use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[test]
fn sigterm_lets_the_transfer_finish_and_refuses_new_calls() {
    let hooks = HookServer::start();
    let app =
        write_app(json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "action", "eventHook": "event"}]));
    let base = hooks.url("/");
    let mut baton = Baton::start(&["--app", app.to_str().unwrap(), "--hook-base", &base]);
    let carrier = Carrier::new(baton.addr);
    let mut leg = carrier.call("term-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");

    baton.signal("-TERM");
    std::thread::sleep(Duration::from_millis(200));
    let late = Carrier::new(baton.addr);
    late.send(&late.invite_text("term-2", ""));
    let refused = late.expect("503", |m| m.status() == Some(503));
    assert!(refused.raw("Retry-After").is_some());

    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    assert_eq!(baton.wait_exit(Duration::from_secs(10)), 0);
    assert_eq!(hooks.at("/action").len(), 1, "the hook was delivered before exit");
    assert_eq!(hooks.at("/action")[0].body["final_referred_call_status"], json!(200));
}

#[test]
fn hooks_of_a_dead_endpoint_are_dead_lettered_and_replayed() {
    // A port with nothing behind it, to bring to life later.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = temp("dead.jsonl");
    let app =
        write_app(json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "action", "eventHook": "event"}]));
    let base = format!("http://127.0.0.1:{port}/");
    let mut baton = Baton::start(&[
        "--app",
        app.to_str().unwrap(),
        "--hook-base",
        &base,
        "--call-status-hook",
        &format!("{base}status"),
        "--dead-letter",
        dead.to_str().unwrap(),
        "--hook-retries",
        "1",
        "--hook-backoff-ms",
        "10",
        "--webhook-secret",
        "s3cret",
    ]);
    let carrier = Carrier::new(baton.addr);
    let mut leg = carrier.call("dead-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "180 Ringing", "active"), 200);
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    baton.signal("-TERM");
    assert_eq!(baton.wait_exit(Duration::from_secs(15)), 0);

    // trying, in-progress, completed; two events; one actionHook.
    let letters = baton::hooks::dead_letter::read(&dead).unwrap();
    assert_eq!(letters.len(), 6, "{letters:#?}");
    assert!(letters.iter().all(|l| l.attempts == 2 && l.call_sid == letters[0].call_sid));

    let hooks = HookServer::start_on(port);
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["replay", dead.to_str().unwrap(), "--webhook-secret", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 replayed: 6 delivered, 0 failed"));
    assert!(!dead.exists(), "a fully replayed file is removed");
    let events: Vec<_> = hooks.at("/event").iter().map(|e| e.body["call_status"].clone()).collect();
    assert_eq!(events, vec![json!(180), json!(200)], "replayed in order");
    let action = &hooks.at("/action")[0];
    assert_eq!(action.body["final_referred_call_status"], json!(200));
    assert!(action.headers["baton-signature"].contains(",v1="));
    assert_eq!(hooks.at("/status").len(), 3);
}
