//! baton at the edge, attacked as the edge-security review attacked it: forged responses
//! and NOTIFYs, header injection through hook answers, oversized and endless hook answers,
//! floods from one source. Real datagrams over loopback, a real HTTP hook server.

mod common;

use baton_proto::sip::Name;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn transfer_app() -> serde_json::Value {
    json!([{"verb": "sip:refer", "referTo": "sip:agent@10.0.0.9", "actionHook": "/action"}])
}

/// An off-path sender that placed a call of its own learns what our branches look like and
/// sprays 603s at the branches it predicts for the next call: none may be taken.
#[test]
fn predicted_branches_cannot_forge_a_refusal() {
    let rig = Rig::new(transfer_app());
    let (hooks, victim) = (&rig.hooks, &rig.carrier);
    let attacker = Carrier::new(victim.baton);
    let own = attacker.call("attacker-1");
    let own_refer = attacker.expect_request("REFER");
    own.respond(&own_refer, 202, "");
    let (shard_seen, key) = baton_proto::parse_branch(&own_refer.branch()).unwrap();
    let counter = own_refer.branch().rsplit('-').next().map(|c| u64::from_str_radix(c, 16).unwrap_or(0)).unwrap();

    let _leg = victim.call("victim-1");
    let refer = victim.expect_request("REFER");
    // Every branch the old scheme would have given the victim's REFER, and more.
    for shard in 0..2u16.max(shard_seen + 1) {
        for k in key.saturating_sub(4)..key + 8 {
            for n in counter.saturating_sub(2)..counter + 8 {
                let forged = format!(
                    "SIP/2.0 603 Decline\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-bt{shard:x}-{k:x}-{n:x}\r\n\
                     From: <sip:bot@x>;tag=x\r\nTo: <sip:a@x>;tag=y\r\nCall-ID: victim-1\r\nCSeq: 1 REFER\r\n\
                     Content-Length: 0\r\n\r\n",
                    victim.baton
                );
                attacker.send(&forged);
            }
        }
    }
    // The response copied from the real REFER but with another From-tag, CSeq or Call-ID.
    let real = response_text(&refer, 603, "");
    let from = refer.header(Name::From).unwrap();
    for forged in [
        real.replace(&from, "<sip:bot@x>;tag=guess"),
        real.replace(&format!("CSeq: {} REFER", refer.cseq().0), &format!("CSeq: {} REFER", refer.cseq().0 + 1)),
        real.replace("Call-ID: victim-1", "Call-ID: other"),
    ] {
        attacker.send(&forged);
    }
    std::thread::sleep(Duration::from_millis(200));
    victim.send(&response_text(&refer, 202, ""));
    let dialog = Dialog { me: victim.addr(), baton: victim.baton, call_id: "victim-1", to: &refer_to_header(&refer) };
    victim.send(&dialog.notify(2, refer.cseq().0, "200 OK", "terminated"));
    let action = hooks.wait_matching("/action", 1, |r| r.body["call_id"] == "victim-1");
    assert_eq!(action[0].body["refer_status"], 202, "{:#?}", action[0].body);
    assert_eq!(action[0].body["final_referred_call_status"], 200);
}

/// The To a carrier writes in its requests to baton: the REFER's From (baton's side).
fn refer_to_header(refer: &Sip) -> String {
    refer.header(Name::From).unwrap()
}

/// RFC 3261 §12.2.2: an in-dialog request matches on Call-ID and both tags. A NOTIFY that
/// knows baton's tag but not the caller's is answered 481 and changes nothing.
#[test]
fn a_notify_with_the_wrong_from_tag_is_not_the_transfer() {
    let rig = Rig::new(transfer_app());
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("tags-1");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    let forged = Dialog { me: carrier.addr(), baton: carrier.baton, call_id: "tags-1", to: &leg.to }
        .notify(7, refer.cseq().0, "486 Busy Here", "terminated")
        .replace(";tag=car-tags-1", ";tag=forged");
    carrier.send(&forged);
    assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(481));
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let action = hooks.wait("/action", 1);
    assert_eq!(action[0].body["final_referred_call_status"], 200);
}

/// Values from hooks are checked where messages are written, not only when a document
/// loads: a SWML variable set at run time cannot smuggle a header or a second Refer-To.
#[test]
fn values_from_hooks_never_reach_the_wire_as_headers() {
    for (name, target) in [("crlf", "sip:a@b\r\nX-Injected: 1"), ("bracket", "sip:a@b>, <sip:evil@x")] {
        let doc = json!({"version": "1.0.0", "sections": {"main": [
            {"set": {"target": target}},
            {"sip_refer": {"to_uri": "${target}"}},
            {"request": {"url": "/result", "method": "POST",
                         "body": {"result": "${sip_refer_result}", "error": "${sip_refer_error}"}}},
            {"hangup": {}}
        ]}});
        let rig = Rig::new(doc);
        let (hooks, carrier) = (&rig.hooks, &rig.carrier);
        let call_id = format!("inject-{name}");
        let _leg = carrier.call(&call_id);
        let result = hooks.wait("/result", 1);
        assert_eq!(result[0].body["result"], "error");
        assert!(result[0].body["error"].as_str().unwrap().starts_with("Refer-To"), "{:#?}", result[0].body);
        carrier.expect_request("BYE");
        carrier.expect_none(Duration::from_millis(100), "REFER", |m| m.method().as_deref() == Some("REFER"));
    }
    // jambonz verbs: checked when the document loads, with the verb index and property.
    let rig =
        Rig::new(json!([{"verb": "sip:refer", "referTo": "sip:a@b", "referredByDisplayName": "Bot\r\nX-Injected: 1"}]));
    rig.carrier.send(&rig.carrier.invite_text("inject-display", ""));
    let refused = rig.carrier.expect_response("INVITE", true);
    assert_eq!(refused.status(), Some(480));
    assert!(refused.raw("X-Reason").unwrap().contains("referredByDisplayName"), "{}", refused.text());
    assert!(!refused.text().contains("X-Injected"));
}

/// A call hook answering with more than --hook-max-answer fails at once (read as a stream
/// and cut off), and the INVITE is answered 480.
#[test]
fn an_oversized_hook_answer_is_cut_off() {
    let rig = Rig::with_hooks(json!([]), |_| {}, |h, _| h.max_answer = 64 * 1024);
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let huge =
        format!("[{}]", vec![r#"{"verb":"tag","data":{"x":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}}"#; 4000].join(","));
    hooks.reply("/call", 200, &huge);
    carrier.send(&carrier.invite_text("huge-1", ""));
    let refused = carrier.expect_response("INVITE", true);
    assert_eq!(refused.status(), Some(480));
    assert!(refused.raw("X-Reason").unwrap().contains("--hook-max-answer"), "{}", refused.text());
}

/// A string doubled in a goto loop, and a redirect that answers with another redirect:
/// both end, and the INVITE of the second gets its final answer.
#[test]
fn growing_documents_and_endless_redirects_end() {
    let doubling = json!({"version": "1.0.0", "sections": {"main": [
        {"set": {"s": "0123456789abcdef"}},
        {"label": "again"},
        {"set": {"s": "${s}${s}"}},
        {"goto": {"label": "again", "max": 100}},
        {"answer": {}},
        {"sleep": 60000}
    ]}});
    let rig = Rig::new(doubling);
    rig.carrier.send(&rig.carrier.invite_text("double-1", ""));
    let answer = rig.carrier.expect_response("INVITE", true);
    assert_eq!(answer.status(), Some(603), "the document ended before answering: {}", answer.text());

    let rig = Rig::with(json!([{"verb": "redirect", "actionHook": "/again"}]), |s| s.max_redirects = 5);
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/again", 200, &json!([{"verb": "redirect", "actionHook": "/again"}]).to_string());
    carrier.send(&carrier.invite_text("redirects-1", ""));
    let refused = carrier.expect_response("INVITE", true);
    assert_eq!(refused.status(), Some(480));
    assert!(refused.raw("X-Reason").unwrap().contains("--max-redirects"), "{}", refused.text());
    assert_eq!(hooks.at("/again").len(), 6, "the first redirect and five more");
}

/// An INVITE flood from one source with a slow call hook: the source is held to its share,
/// hook requests in flight stay under the cap, another source's calls still complete, and
/// refusals are counted by reason.
#[test]
fn a_flood_from_one_source_does_not_starve_another() {
    let mut rig = Rig::with_hooks(
        json!([{"verb": "sip:decline", "status": 486}]),
        |s| {
            s.edge.invite_rate = 200.0;
            s.edge.invite_burst = 100.0;
            s.edge.unconfirmed = 100;
        },
        |h, _| h.connections = 20,
    );
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply_after(
        "/call",
        200,
        &json!([{"verb": "sip:decline", "status": 486}]).to_string(),
        Duration::from_millis(300),
    );
    let flood = Carrier::new(carrier.baton);
    let start = Instant::now();
    for i in 0..2000 {
        flood.send(&flood.invite_text(&format!("flood-{i}"), ""));
    }
    let flooded = start.elapsed();
    // A legitimate caller from another address, during the flood.
    let legit = Carrier::from_ip(carrier.baton, "127.0.0.2");
    let mut answered = 0;
    for i in 0..5 {
        legit.send(&legit.invite_text(&format!("legit-{i}"), ""));
        if legit.expect_response("INVITE", true).status() == Some(486) {
            answered += 1;
        }
    }
    assert_eq!(answered, 5, "every legitimate call got its application's answer");
    let peak = peak_in_flight(&hooks.at("/call"), Duration::from_millis(300));
    assert!(peak <= 20 + 2, "hook requests in flight: {peak}");
    // Once the flood's admitted calls have had their answers, its own address calls again.
    let after = Carrier::new(carrier.baton);
    let deadline = Instant::now() + WAIT;
    let status = (0..).find_map(|attempt| {
        after.send(&after.invite_text(&format!("after-{attempt}"), ""));
        let status = after.expect_response("INVITE", true).status();
        if status != Some(503) || Instant::now() > deadline {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
        None
    });
    assert_eq!(status, Some(Some(486)), "after the flood, calls from its address are admitted again");
    let flood_calls =
        hooks.at("/call").iter().filter(|r| r.body["call_id"].as_str().is_some_and(|c| c.starts_with("flood"))).count();
    let stats = rig.stop();
    let [not_allowed, rate, unconfirmed] = stats.edge_refused;
    assert_eq!(not_allowed, 0);
    assert!(rate + unconfirmed + flood_calls as u64 >= 2000 - 5, "{stats:?}, {flood_calls} admitted");
    // The bucket: at most its burst and its rate over the flood (and what came later).
    let admitted_at_most = 100.0 + 200.0 * (flooded.as_secs_f64() + 2.0);
    assert!((flood_calls as f64) < admitted_at_most, "{flood_calls} flood calls admitted");
}

/// The most hook requests that were in flight at once, from their arrival times and the
/// hook server's fixed delay.
fn peak_in_flight(calls: &[Recorded], delay: Duration) -> usize {
    calls.iter().map(|a| calls.iter().filter(|b| b.at <= a.at && a.at < b.at + delay).count()).max().unwrap_or(0)
}

/// A hook redirected to another host is not followed (its signature and Basic credentials
/// would go with it); one redirected on the same host is, signed for where it lands.
#[test]
fn hook_redirects_stay_on_their_host() {
    let rig = Rig::new(json!([{"verb": "redirect", "actionHook": {"url": "/moved", "username": "u", "password": "p"}},
                              {"verb": "sip:decline", "status": 486}]));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let elsewhere = HookServer::start();
    elsewhere.reply("/stolen", 200, &json!([{"verb": "sip:decline", "status": 403}]).to_string());
    hooks.redirect("/moved", &elsewhere.url("/stolen"));
    carrier.send(&carrier.invite_text("redirect-away", ""));
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(486), "the redirect was not followed");
    assert!(elsewhere.all().is_empty(), "nothing reached the other host: {:#?}", elsewhere.all());

    hooks.redirect("/moved", &hooks.url("/here"));
    hooks.reply("/here", 200, &json!([{"verb": "sip:decline", "status": 480}]).to_string());
    carrier.send(&carrier.invite_text("redirect-same", ""));
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(480), "followed on the same host");
    let landed = &hooks.wait("/here", 1)[0];
    assert_eq!(landed.headers["authorization"], "Basic dTpw");
    assert_signed(landed, &hooks.url("/here"), &landed.raw);
}

/// `--allow`: INVITEs from other networks get 403 and are counted.
#[test]
fn only_allowed_trunks_start_calls() {
    let rig = Rig::with(json!([{"verb": "sip:decline", "status": 486}]), |s| {
        s.edge.allow = vec!["192.0.2.0/24".parse().unwrap()];
    });
    let carrier = &rig.carrier;
    carrier.send(&carrier.invite_text("not-allowed-1", ""));
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(403));
    let options = carrier.invite_text("opt", "").replace("INVITE", "OPTIONS");
    carrier.send(&options);
    assert_eq!(carrier.expect_response("OPTIONS", true).status(), Some(200), "OPTIONS still answered");
}

/// A header section that is not UTF-8 (a Latin-1 display name) is answered, not dropped.
#[test]
fn a_latin1_display_name_still_makes_a_call() {
    let rig = Rig::new(json!([{"verb": "sip:decline", "status": 486}]));
    let carrier = &rig.carrier;
    let text = carrier.invite_text("latin1-1", "").replace("\"Alice Caller\"", "\"Jos\u{0}\"");
    let bytes = text.replace('\u{0}', "\u{1}").into_bytes();
    let bytes: Vec<u8> = bytes.into_iter().map(|b| if b == 1 { 0xe9 } else { b }).collect();
    carrier.send_bytes(&bytes);
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(486));
}

/// RFC 3581 §4: a request with a bare `rport` gets it filled in, with `received`.
#[test]
fn responses_fill_in_rport_and_received() {
    let rig = Rig::new(json!([{"verb": "sip:decline", "status": 486}]));
    let carrier = &rig.carrier;
    let me: SocketAddr = carrier.addr();
    let text =
        carrier.invite_text("rport-1", "").replace(";branch=z9hG4bK-inv-rport-1", ";rport;branch=z9hG4bK-inv-rport-1");
    carrier.send(&text);
    let answer = carrier.expect_response("INVITE", true);
    let via = answer.header(Name::Via).unwrap();
    assert!(via.contains(&format!(";rport={};received={}", me.port(), me.ip())), "{via}");
}
