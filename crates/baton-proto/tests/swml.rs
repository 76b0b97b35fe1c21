//! SWML `sip_refer` on the simulator: status callbacks, result variables and control flow,
//! under loss and reordering.

mod sim;

use baton_proto::Media;
use serde_json::json;
use sim::*;

const SEEDS: std::ops::Range<u64> = 0..16;

#[test]
fn status_callbacks_follow_the_transfer() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"version": "1.0.0", "sections": {"main": [
            "answer",
            {"sip_refer": {"to_uri": "sip:alice@example.com", "status_url": "/refer-status"}},
            {"hangup": {}}
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        let mut leg = sim.call("swml-1");
        let refer = sim.expect_request("REFER");
        assert_eq!(refer.raw("Refer-To").as_deref(), Some("<sip:alice@example.com>"));
        sim.respond(&refer, 202, "");
        sim.until_delivered(&refer); // a NOTIFY may overtake the 202: not this time
        assert_eq!(leg.notify(&mut sim, &refer, "100 Trying", "active"), 200);
        assert_eq!(leg.notify(&mut sim, &refer, "200 OK", "terminated"), 200);
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
        let events = sim.hooks_to("/refer-status");
        let params: Vec<_> = events.iter().map(|e| e["params"].clone()).collect();
        assert_eq!(params.len(), 3);
        assert_eq!(
            (params[0]["state"].clone(), params[0]["sip_refer_response_code"].clone()),
            (json!("inProgress"), json!("202"))
        );
        assert!(params[0].get("sip_notify_response_code").is_none(), "a code not yet received is absent");
        assert_eq!(
            (params[1]["state"].clone(), params[1]["sip_notify_response_code"].clone()),
            (json!("inProgress"), json!("100"))
        );
        assert_eq!(
            (params[2]["state"].clone(), params[2]["sip_notify_response_code"].clone()),
            (json!("success"), json!("200"))
        );
        assert_eq!(events[0]["event_type"], "calling.call.refer");
        assert_eq!(params[0]["sip_refer_to"], "sip:alice@example.com");
    });
}

#[test]
fn result_variables_drive_the_rest_of_the_document() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"version": "1.0.0", "sections": {"main": [
            {"sip_refer": {"to_uri": "sip:agent@example.com"}},
            {"switch": {"variable": "sip_refer_result", "case": {
                "busy": [{"request": {"url": "/report", "method": "POST", "body": {
                    "result": "${sip_refer_result}", "ret": "${return_value}", "refer": "${sip_refer_response_code}",
                    "target": "${sip_refer_to_response_code}", "to": "${sip_refer_to}"}}},
                         {"hangup": {}}]},
                "default": [{"hangup": {}}]}}
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        let mut leg = sim.call("swml-busy");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        assert_eq!(leg.notify(&mut sim, &refer, "486 Busy Here", "terminated"), 200);
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
        assert_eq!(
            sim.hooks_to("/report"),
            [json!({"result": "busy", "ret": "busy", "refer": "202", "target": "486", "to": "sip:agent@example.com"})]
        );
    });
}

#[test]
fn a_refused_refer_is_an_error_and_goto_tries_again() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"sections": {"main": [
            {"set": {"tries": 0}},
            {"label": "again"},
            {"set": {"tries": "${tries + 1}"}},
            {"sip_refer": {"to_uri": "sip:agent@example.com"}},
            {"goto": {"label": "again", "when": "sip_refer_result == 'error' && tries < 2"}},
            {"request": {"url": "/report", "method": "POST", "body": {"tries": "${tries}", "result": "${sip_refer_result}"}}},
            "hangup"
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        sim.call("swml-retry");
        for _ in 0..2 {
            let refer = sim.expect_request("REFER");
            sim.respond(&refer, 603, "");
        }
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
        assert_eq!(sim.hooks_to("/report"), [json!({"tries": 2, "result": "error"})]);
    });
}

#[test]
fn media_methods_are_refused_at_load() {
    let mut sim = Sim::new(0, json!({"sections": {"main": [{"play": {"url": "say:hello"}}]}}), Faults::bad());
    let invite = invite_text(addr(CARRIER), addr(BATON), "swml-media", "");
    sim.send(&invite);
    let reject = sim.final_answer(&invite);
    assert_eq!(reject.status(), Some(480));
    assert!(reject.raw("X-Reason").unwrap().contains("section main, verb 0 (play): play: needs media"));
    sim.settle();
}

/// SignalWire's own "Send SIP REFER and post result" (seed page 004), as written: the
/// document goes on after a successful transfer, `play` is skipped under `--media skip`,
/// and `execute` posts the result.
#[test]
fn the_seed_example_posts_its_result_after_the_transfer() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"version": "1.0.0", "sections": {"main": [
            {"sip_refer": {"to_uri": "sip:alice@example.com"}},
            {"play": {"url": "say: Connected. The SIP refer result is ${sip_refer_result}"}},
            {"execute": {"dest": "/handle_sip_refer_result"}}
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        sim.rules.media = Media::Skip;
        transferred(&mut sim, "swml-seed");
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
        let posted = sim.hooks_to("/handle_sip_refer_result");
        assert_eq!(posted.len(), 1, "the result is posted once the call has left");
        assert_eq!(posted[0]["vars"]["sip_refer_result"], "success");
        assert_eq!(posted[0]["vars"]["sip_refer_to_response_code"], "200");
        let byes: std::collections::HashSet<String> = sim.received("BYE").iter().map(|(_, m)| m.branch()).collect();
        assert_eq!(byes.len(), 1, "one BYE (retransmissions aside), from the transfer");
    });
}

#[test]
fn after_the_call_only_methods_that_need_no_call_run() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"sections": {"main": [
            {"set": {"tag": "vip"}},
            {"sip_refer": {"to_uri": "sip:agent@example.com", "status_url": "/refer-status"}},
            {"cond": [{"when": "sip_refer_result == 'success'", "then": [
                {"request": {"url": "/after", "method": "POST", "body": {"result": "${sip_refer_result}"}}}]}]},
            {"sleep": 1000},
            {"request": {"url": "/never", "method": "POST"}}
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        sim.answer_hook("/after", 200, "{}");
        transferred(&mut sim, "swml-after");
        let bye = sim.expect_request("BYE");
        sim.respond(&bye, 200, "");
        sim.settle();
        assert_eq!(sim.hooks_to("/after"), [json!({"result": "success"})]);
        assert!(sim.hooks_to("/never").is_empty(), "sleep needs the call: the document ended there");
        let last = sim.hooks_to("/refer-status").pop().unwrap();
        assert_eq!(last["params"]["segment_id"], "swml-after");
        assert_eq!(last["params"]["tag"], "vip");
    });
}

#[test]
fn media_methods_are_skipped_when_the_operator_says_so() {
    let doc = json!({"sections": {"main": [{"play": {"url": "say:hello"}}, {"hangup": {"reason": "busy"}}]}});
    let mut sim = Sim::new(0, doc, Faults::bad());
    sim.rules.media = Media::Skip;
    let invite = invite_text(addr(CARRIER), addr(BATON), "swml-skip", "");
    sim.send(&invite);
    assert_eq!(sim.final_answer(&invite).status(), Some(486), "play skipped, hangup busy ran");
    sim.settle();
}

#[test]
fn when_the_caller_hangs_up_during_the_transfer_the_document_goes_on() {
    every_seed(SEEDS, |seed| {
        let doc = json!({"sections": {"main": [
            {"sip_refer": {"to_uri": "sip:agent@example.com"}},
            {"request": {"url": "/after", "method": "POST", "body": {"result": "${sip_refer_result}"}}},
            "hangup"
        ]}});
        let mut sim = Sim::new(seed, doc, Faults::bad());
        let mut leg = sim.call("swml-gone");
        let refer = sim.expect_request("REFER");
        sim.respond(&refer, 202, "");
        let bye = leg.next("BYE", "", "");
        assert_eq!(sim.request(&bye), 200);
        sim.settle();
        assert_eq!(sim.hooks_to("/after"), [json!({"result": "error"})]);
        assert!(sim.received("BYE").is_empty(), "hangup needs the call: it ended the document quietly");
    });
}

#[test]
fn sip_refer_carries_uui_and_refer_to_headers() {
    let doc = json!({"sections": {"main": [
        {"set": {"case": "CS 7"}},
        {"sip_refer": {"to_uri": "sip:agent@example.com", "uui": "c0ffee",
                       "refer_to_headers": {"X-Case": "${case}"}}},
        "hangup"
    ]}});
    let mut sim = Sim::new(3, doc, Faults::bad());
    sim.call("swml-uui");
    let refer = sim.expect_request("REFER");
    assert_eq!(
        refer.raw("Refer-To").as_deref(),
        Some("<sip:agent@example.com?User-to-User=c0ffee%3Bencoding%3Dhex&X-Case=CS%207>")
    );
    sim.respond(&refer, 603, "");
    let bye = sim.expect_request("BYE");
    sim.respond(&bye, 200, "");
    sim.settle();
}
