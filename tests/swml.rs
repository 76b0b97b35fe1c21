//! SWML `sip_refer` end to end: status callbacks, result variables, control flow, YAML.

mod common;

use common::*;
use serde_json::json;

#[test]
fn status_callbacks_follow_the_transfer() {
    let rig = Rig::new(json!({"version": "1.0.0", "sections": {"main": [
        "answer",
        {"sip_refer": {"to_uri": "sip:alice@example.com", "status_url": "/refer-status"}},
        {"hangup": {}}
    ]}}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("swml-1");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.raw("Refer-To").as_deref(), Some("<sip:alice@example.com>"));
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "100 Trying", "active"), 200);
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let events = hooks.wait("/refer-status", 3);
    let params: Vec<_> = events.iter().map(|e| e.body["params"].clone()).collect();
    assert_eq!(params[0]["state"], "inProgress");
    assert_eq!(params[0]["sip_refer_response_code"], "202");
    assert!(params[0].get("sip_notify_response_code").is_none(), "a code not yet received is absent");
    assert_eq!(
        (params[1]["state"].clone(), params[1]["sip_notify_response_code"].clone()),
        (json!("inProgress"), json!("100"))
    );
    assert_eq!(
        (params[2]["state"].clone(), params[2]["sip_notify_response_code"].clone()),
        (json!("success"), json!("200"))
    );
    let first = &events[0].body;
    assert_eq!(first["event_type"], "calling.call.refer");
    assert_eq!(first["event_channel"], format!("swml:{}", params[0]["call_id"].as_str().unwrap()));
    assert!(first["timestamp"].as_f64().unwrap() > 1.7e9);
    assert_eq!(params[0]["sip_refer_to"], "sip:alice@example.com");
}

#[test]
fn result_variables_drive_the_rest_of_the_document() {
    let rig = Rig::new(json!({"version": "1.0.0", "sections": {"main": [
        {"sip_refer": {"to_uri": "sip:agent@example.com"}},
        {"switch": {"variable": "sip_refer_result", "case": {
            "busy": [{"request": {"url": "/report", "method": "POST", "body": {
                "result": "${sip_refer_result}", "ret": "${return_value}", "refer": "${sip_refer_response_code}",
                "target": "${sip_refer_to_response_code}", "to": "${sip_refer_to}"}}},
                     {"hangup": {}}]},
            "default": [{"hangup": {}}]}}
    ]}}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let mut leg = carrier.call("swml-busy");
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "486 Busy Here", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let report = &hooks.wait("/report", 1)[0].body;
    assert_eq!(
        report,
        &json!({"result": "busy", "ret": "busy", "refer": "202", "target": "486", "to": "sip:agent@example.com"})
    );
}

#[test]
fn refused_refer_is_an_error_and_goto_retries() {
    let rig = Rig::new(json!({"sections": {"main": [
        {"set": {"tries": 0}},
        {"label": "again"},
        {"set": {"tries": "${tries + 1}"}},
        {"sip_refer": {"to_uri": "sip:agent@example.com"}},
        {"goto": {"label": "again", "when": "sip_refer_result == 'error' && tries < 2"}},
        {"request": {"url": "/report", "method": "POST", "body": {"tries": "${tries}", "result": "${sip_refer_result}"}}},
        "hangup"
    ]}}));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("swml-retry");
    for _ in 0..2 {
        let refer = carrier.expect_request("REFER");
        leg.respond(&refer, 603, "");
    }
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    assert_eq!(hooks.wait("/report", 1)[0].body, json!({"tries": 2, "result": "error"}));
}

#[test]
fn yaml_document_with_execute_to_a_url() {
    let yaml = "version: 1.0.0\nsections:\n  main:\n    - answer\n    - execute:\n        dest: /sub\n        params:\n          who: agent\n    - hangup\n";
    let rig = Rig::new(json!([]));
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/call", 200, yaml);
    hooks.reply(
        "/sub",
        200,
        &json!({"sections": {"main": [{"sip_refer": {"to_uri": "sip:${params.who}@example.com"}}]}}).to_string(),
    );
    let leg = carrier.call("swml-yaml");
    let refer = carrier.expect_request("REFER");
    assert_eq!(refer.raw("Refer-To").as_deref(), Some("<sip:agent@example.com>"));
    leg.respond(&refer, 603, "");
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let sub = &hooks.wait("/sub", 1)[0].body;
    assert_eq!(sub["params"], json!({"who": "agent"}));
    assert_eq!(sub["call"]["call_id"], "swml-yaml");
}

#[test]
fn media_methods_are_refused_at_load() {
    let rig = Rig::new(json!({"sections": {"main": [{"play": {"url": "say:hello"}}]}}));
    rig.carrier.send(&rig.carrier.invite_text("swml-media", ""));
    let reject = rig.carrier.expect_response("INVITE", true);
    assert_eq!(reject.status(), Some(480));
    assert!(reject.raw("X-Reason").unwrap().contains("section main, verb 0 (play): play: needs media"));
}
