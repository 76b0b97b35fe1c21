//! The other jambonz verbs, and hook delivery details (GET, auth, verb:status events).

mod common;

use baton_proto::sip::Name;
use common::*;
use serde_json::json;

#[test]
fn decline_rejects_with_status_reason_and_headers() {
    let rig = Rig::new(
        json!([{"verb": "sip:decline", "status": 486, "reason": "Agents Busy", "headers": {"X-Cause": "queue-full"}}]),
    );
    let carrier = &rig.carrier;
    carrier.send(&carrier.invite_text("decline-1", ""));
    let r = carrier.expect_response("INVITE", true);
    assert!(r.text().starts_with("SIP/2.0 486 Agents Busy\r\n"));
    assert_eq!(r.raw("X-Cause").as_deref(), Some("queue-full"));
    assert!(r.msg().core().unwrap().to.tag().is_some());
}

#[test]
fn static_app_tag_pause_request_and_status_events() {
    let app = json!([
        {"verb": "config", "notifyEvents": true},
        {"verb": "tag", "data": {"ticket": 42}},
        {"verb": "pause", "id": "p1", "length": 0.2},
        {"verb": "sip:request", "id": "r1", "method": "INFO", "body": "hello",
         "headers": {"Content-Type": "application/x-test", "X-Req": "1"}, "actionHook": "/request"},
        {"hangup": {}}
    ]);
    let app = baton_proto::parse_document(&app.to_string()).unwrap();
    let rig = Rig::with(json!([]), |s| {
        s.app = Some(app);
        s.call_hook = None;
    });
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    let leg = carrier.call("static-1");
    let info = carrier.expect_request("INFO");
    assert_eq!(info.header(Name::ContentType).as_deref(), Some("application/x-test"));
    assert_eq!(info.msg().body, b"hello");
    leg.respond(&info, 200, "");
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
    let req = &hooks.wait("/request", 1)[0];
    assert_eq!((req.body["result"].clone(), req.body["sip_status"].clone()), (json!("success"), json!(200)));
    assert_eq!(req.body["customerData"], json!({"ticket": 42}));
    assert!(hooks.at("/call").is_empty(), "a static app needs no call hook");
    let events: Vec<_> = hooks
        .wait("/status", 7)
        .iter()
        .filter(|s| s.body["type"] == "verb:status")
        .map(|s| {
            (s.body["data"]["id"].as_str().unwrap().to_string(), s.body["data"]["event"].as_str().unwrap().to_string())
        })
        .collect();
    let want = [("p1", "starting"), ("p1", "finished"), ("r1", "starting"), ("r1", "finished")];
    assert_eq!(events, want.map(|(a, b)| (a.to_string(), b.to_string())));
}

#[test]
fn redirect_fetches_a_new_application_with_get_and_basic_auth() {
    let rig = Rig::new(
        json!([{"verb": "redirect", "actionHook": {"url": "/next", "method": "GET", "username": "u", "password": "p"}},
                       {"verb": "hangup", "headers": {"X-Old": "1"}}]),
    );
    let (hooks, carrier) = (&rig.hooks, &rig.carrier);
    hooks.reply("/next", 200, &json!([{"verb": "sip:decline", "status": 603}]).to_string());
    carrier.send(&carrier.invite_text("redirect-1", ""));
    assert_eq!(carrier.expect_response("INVITE", true).status(), Some(603));
    let next = &hooks.wait("/next", 1)[0];
    assert_eq!(next.method, "GET");
    assert!(next.query.contains("call_id=redirect-1"), "{}", next.query);
    assert_eq!(next.headers["authorization"], "Basic dTpw");
    // A GET's payload travels in its query: Baton-Signature covers the URL with the query,
    // and Jambonz-Signature signs the payload (jambonz's way), never an empty body.
    let url = format!("{}?{}", hooks.url("/next"), next.query);
    let t: u64 = next.headers["baton-signature"][2..12].parse().unwrap();
    let signed_payload = |payload: &[u8]| baton::hooks::sign::jambonz_signature(b"s3cret", t, payload);
    assert_ne!(next.headers["jambonz-signature"], signed_payload(b""));
    assert_signed(next, &url, &serde_json::to_vec(&query_payload(&next.query)).unwrap());
}

/// The JSON payload a GET hook's query carries, as baton wrote it: its fields in order,
/// numbers as numbers (what jambonz signs).
fn query_payload(query: &str) -> serde_json::Value {
    let fields = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
        let value = serde_json::from_str::<serde_json::Value>(&v)
            .ok()
            .filter(|v| !v.is_string())
            .unwrap_or_else(|| serde_json::Value::String(v.into_owned()));
        (k.into_owned(), value)
    });
    serde_json::Value::Object(fields.collect())
}
