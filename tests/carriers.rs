//! Transfers against carriers as they behave, over loopback UDP with a real hook server.
//! Each carrier here is a Rust UA that imitates one trunk's known behaviour, and the test
//! shows the failure baton's defaults meet and the setting that avoids it
//! (docs/behaviour.md §2.5-2.7 and §8; the recipes are in the README).

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Twilio's Elastic SIP Trunking takes a transfer to a number as `tel:+E164` and answers
/// 403 once it is rewritten into `sip:N@host` (the trackers' most common complaint).
fn twilio_answer(refer: &Sip) -> u16 {
    match refer.raw("Refer-To") {
        Some(to) if to.starts_with("<tel:+") => 202,
        _ => 403,
    }
}

/// One call in, the REFER answered the way `answer` decides; a 202 is followed by NOTIFY
/// 100 and 200 and the carrier answers baton's BYE. Returns the REFER's answer.
fn call_through(carrier: &Carrier, call_id: &str, answer: impl Fn(&Sip) -> u16) -> u16 {
    let mut leg = carrier.call(call_id);
    let refer = carrier.expect_request("REFER");
    let code = answer(&refer);
    leg.respond(&refer, code, "");
    if code == 202 {
        assert_eq!(leg.notify(&refer, "100 Trying", "active"), 200);
        assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    }
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    code
}

#[test]
fn a_twilio_trunk_takes_the_number_once_its_profile_writes_it_as_tel() {
    let hooks = HookServer::start();
    app(&hooks, json!([{"verb": "sip:refer", "referTo": "15551234567", "actionHook": "/action"}, {"verb": "hangup"}]));
    let config = temp("twilio.toml");
    let call_hook = format!("call_hook = {:?}\n", hooks.url("/call"));

    // Without a profile the number goes out as sip:N@host, and the trunk refuses it.
    std::fs::write(&config, &call_hook).unwrap();
    let baton = Baton::start(&["--config", config.to_str().unwrap()]);
    assert_eq!(call_through(&Carrier::new(baton.addr), "twilio-1", twilio_answer), 403);
    assert_eq!(hooks.wait("/action", 1)[0].body["refer_status"], 403);
    drop(baton);

    // The recipe from the README: the trunk's networks, numbers as tel:, E.164.
    let profile = "[[profile]]\nname = \"twilio\"\nsources = [\"127.0.0.0/8\"]\nscheme = \"tel\"\nplus = \"add\"\n";
    std::fs::write(&config, format!("{call_hook}{profile}")).unwrap();
    let baton = Baton::start(&["--config", config.to_str().unwrap()]);
    assert_eq!(call_through(&Carrier::new(baton.addr), "twilio-2", twilio_answer), 202);
    let action = hooks.wait("/action", 2);
    assert_eq!(
        (action[1].body["refer_status"].clone(), action[1].body["final_referred_call_status"].clone()),
        (json!(202), json!(200))
    );
}

/// Teams Direct Routing (and Cisco CUBE) hang up on their own a few milliseconds after
/// the final NOTIFY. Returns baton's answer to the carrier's BYE, and whether baton sent
/// a BYE of its own within `quiet`.
fn teams_transfer(carrier: &Carrier, call_id: &str, quiet: Duration) -> (u16, bool) {
    let mut leg = carrier.call(call_id);
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    std::thread::sleep(Duration::from_millis(20));
    let ours = leg.request("BYE", "", "");
    carrier.send(&ours);
    let mut answer = None;
    let mut baton_bye = false;
    let deadline = std::time::Instant::now() + quiet;
    while std::time::Instant::now() < deadline {
        let Some(m) = carrier.recv_within(Duration::from_millis(20)) else { continue };
        if m.method().as_deref() == Some("BYE") {
            baton_bye = true;
            leg.respond(&m, 200, "");
        } else if m.cseq().1 == "BYE" && m.status().is_some_and(|s| s >= 200) {
            answer = m.status();
        }
    }
    (answer.expect("an answer to the carrier's BYE"), baton_bye)
}

#[test]
fn a_carrier_that_hangs_up_first_meets_no_crossing_bye_with_bye_after_success_wait() {
    // The default: baton's BYE crosses the carrier's, which then gets 481.
    let rig = Rig::new(json!([{"verb": "sip:refer", "referTo": "agent"}]));
    assert_eq!(teams_transfer(&rig.carrier, "teams-1", Duration::from_millis(800)), (481, true));
    drop(rig);

    let verb = json!([{"verb": "sip:refer", "referTo": "agent", "byeAfterSuccess": "wait:1000"}]);
    let rig = Rig::new(verb);
    assert_eq!(teams_transfer(&rig.carrier, "teams-2", Duration::from_millis(1500)), (200, false));
}

/// The headers a Refer-To URI carries (`?h=v&...`), unescaped as the referee would put
/// them into its INVITE.
fn uri_headers(refer_to: &str) -> HashMap<String, String> {
    let uri = refer_to.trim_start_matches('<').split('>').next().unwrap_or_default();
    let Some((_, query)) = uri.split_once('?') else { return HashMap::new() };
    let unescape = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1..i + 3)) {
                (b'%', Some(hex)) => {
                    out.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
                    i += 3;
                }
                (b, _) => {
                    assert!(
                        b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b),
                        "{b:?} left unescaped in {uri}"
                    );
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (unescape(k), unescape(v))).collect()
}

#[test]
fn a_contact_centre_reads_user_to_user_and_case_headers_from_refer_to() {
    let uui = "56a390f3d2b7310023a2;encoding=hex;purpose=isdn-uui";
    let verb = json!({"verb": "sip:refer", "referTo": "sip:queue@cc.example", "actionHook": "/action",
                      "uui": {"data": "56a390f3d2b7310023a2", "purpose": "isdn-uui"},
                      "referToHeaders": {"X-Case": "A 12&b=c;d", "X-Lang": "de-DE"}});
    let rig = Rig::new(json!([verb]));
    let want: HashMap<String, String> = [("User-to-User", uui), ("X-Case", "A 12&b=c;d"), ("X-Lang", "de-DE")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The carrier refuses the REFER unless every header arrives intact.
    let checks = |refer: &Sip| if uri_headers(&refer.raw("Refer-To").unwrap_or_default()) == want { 202 } else { 400 };
    assert_eq!(call_through(&rig.carrier, "uui-1", checks), 202);
    assert_eq!(rig.hooks.wait("/action", 1)[0].body["final_referred_call_status"], 200);
}

#[test]
fn failover_reaches_the_second_target_when_the_first_is_busy() {
    let verb = json!({"verb": "sip:refer", "actionHook": "/action", "eventHook": "/event",
                      "referTo": ["sip:desk-a@pbx.example", "sip:desk-b@pbx.example"]});
    let rig = Rig::new(json!([verb]));
    let mut leg = rig.carrier.call("failover-1");
    let a = rig.carrier.expect_request("REFER");
    leg.respond(&a, 202, "");
    assert_eq!(leg.notify(&a, "486 Busy Here", "terminated"), 200);
    let b = rig.carrier.expect_request("REFER");
    assert_eq!(b.raw("Refer-To").as_deref(), Some("<sip:desk-b@pbx.example>"));
    leg.respond(&b, 202, "");
    assert_eq!(leg.notify(&b, "200 OK", "terminated"), 200);
    let bye = rig.carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let attempts = rig.hooks.wait_matching("/event", 2, |r| r.body["event"] == "transfer-attempt");
    let targets: Vec<Value> = attempts.iter().map(|r| r.body["target"].clone()).collect();
    assert_eq!(targets, [json!("<sip:desk-a@pbx.example>"), json!("<sip:desk-b@pbx.example>")]);
    let action = rig.hooks.wait("/action", 1);
    assert_eq!(action[0].body["attempts"][0]["final_referred_call_status"], 486);
    assert_eq!(action[0].body["attempts"][1]["result"], "succeeded");
}

/// SignalWire's "Send SIP REFER and post result" (seed page 004) as written, but for the
/// URL it posts to: the real binary runs it under `--media skip`.
#[test]
fn the_seed_swml_example_runs_with_media_skip_and_posts_its_result() {
    let hooks = HookServer::start();
    let doc = json!({"version": "1.0.0", "sections": {"main": [
        {"sip_refer": {"to_uri": "sip:alice@example.com"}},
        {"play": {"url": "say: Connected. The SIP refer result is ${sip_refer_result}"}},
        {"execute": {"dest": hooks.url("/handle_sip_refer_result")}}
    ]}});
    let path = temp("seed-004.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_baton")).args(["check"]).arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stdout).contains("play: needs media"));
    let baton = Baton::start(&["--app", path.to_str().unwrap(), "--media", "skip"]);
    let carrier = Carrier::new(baton.addr);
    let mut leg = carrier.call("seed-004");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.raw("Refer-To").as_deref(), Some("<sip:alice@example.com>"));
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let posted = hooks.wait("/handle_sip_refer_result", 1);
    assert_eq!(posted[0].body["vars"]["sip_refer_result"], "success");
    assert_eq!(posted[0].body["vars"]["sip_refer_response_code"], "202");
    // The log line is read from baton's stderr by a thread of the test: give it a moment.
    let deadline = std::time::Instant::now() + WAIT;
    let skipped = || baton.log.lock().unwrap().iter().filter(|l| l.contains("media verb skipped")).count();
    while skipped() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(skipped(), 1, "{:#?}", baton.log.lock().unwrap());
}
