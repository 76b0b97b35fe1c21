//! SWML `sip_refer` end to end with a real HTTP side: status callbacks stamped by the hook
//! worker, a YAML document and `execute` to a URL. Result variables and control flow run on
//! the simulator: crates/baton-proto/tests/swml.rs.

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
