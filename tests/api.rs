//! The operator's HTTP endpoint on a real baton: health, readiness, metrics, the calls
//! under /v1 and its token, and the endpoint under attack.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One request on a fresh connection: (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn rig(token: Option<&str>) -> (Rig, SocketAddr) {
    let token = token.map(str::to_string);
    let rig = Rig::with_server(json!([{"verb": "pause", "length": 30}]), move |c| {
        c.metrics = Some("127.0.0.1:0".parse().unwrap());
        c.api_token = token;
    });
    let addr = rig.http();
    (rig, addr)
}

#[test]
fn health_readiness_metrics_and_the_wrong_method() {
    let (_rig, http) = rig(None);
    assert_eq!(request(http, "GET", "/healthz", "", ""), (200, "ok\n".into()));
    assert_eq!(request(http, "GET", "/readyz", "", ""), (200, "ready\n".into()));
    let (status, page) = request(http, "GET", "/metrics", "", "");
    assert_eq!(status, 200);
    assert!(page.contains("baton_calls_active 0"), "{page}");
    assert_eq!(request(http, "POST", "/metrics", "", "x").0, 405);
    assert_eq!(request(http, "DELETE", "/healthz", "", "").0, 405);
    assert_eq!(request(http, "GET", "/nowhere", "", "").0, 404);
}

#[test]
fn calls_in_progress_are_listed_paged_and_found_by_call_sid() {
    let (rig, http) = rig(None);
    for i in 0..5 {
        rig.carrier.call(&format!("listed-{i}"));
    }
    // The last ACK may still be on its way to its shard when the carrier returns: ask again
    // until every call is confirmed (or the wait is over, and the assertion says why).
    let deadline = Instant::now() + WAIT;
    let all: Value = loop {
        let all: Value = serde_json::from_str(&request(http, "GET", "/v1/calls?limit=1000", "", "").1).unwrap();
        let confirmed = all["calls"].as_array().is_some_and(|c| c.iter().all(|c| c["state"] == "confirmed"));
        if confirmed || Instant::now() > deadline {
            break all;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let calls = all["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5, "{all}");
    assert!(
        calls.iter().all(|c| c["state"] == "confirmed" && c["verb"] == "pause" && c["call_status"] == "in-progress"),
        "{all}"
    );
    let ids: Vec<&str> = calls.iter().map(|c| c["call_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"listed-3"), "{ids:?}");
    // Pages of two: 2, 2, 1, each after the last call_sid of the one before.
    let (mut seen, mut after) = (Vec::new(), String::new());
    loop {
        let page: Value =
            serde_json::from_str(&request(http, "GET", &format!("/v1/calls?limit=2&after={after}"), "", "").1).unwrap();
        seen.extend(page["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    let sids: Vec<String> = calls.iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect();
    assert_eq!(seen, sids, "every call once, in order");
    let one: Value = serde_json::from_str(&request(http, "GET", &format!("/v1/calls/{}", sids[2]), "", "").1).unwrap();
    assert_eq!(one["call_sid"], sids[2].as_str());
    assert_eq!(request(http, "GET", "/v1/calls/no-such-call", "", "").0, 404);
}

#[test]
fn v1_takes_the_bearer_token() {
    let (_rig, http) = rig(Some("t0ken"));
    assert_eq!(request(http, "GET", "/v1/calls", "", "").0, 401);
    assert_eq!(request(http, "GET", "/v1/calls", "Authorization: Bearer wrong\r\n", "").0, 401);
    assert_eq!(request(http, "GET", "/v1/calls", "Authorization: Bearer t0ken\r\n", "").0, 200);
    assert_eq!(request(http, "GET", "/healthz", "", "").0, 200, "health needs no token");
}

/// 1,000 idle connections, a slow-loris sending a header a byte at a time, and a client
/// announcing a 1 GiB body: the liveness probe still answers within 100 ms.
#[test]
fn under_attack_healthz_answers_within_100_ms() {
    let (_rig, http) = rig(None);
    let before = resident_kib();
    let idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(http).unwrap()).collect();
    let mut loris = TcpStream::connect(http).unwrap();
    loris.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
    let mut huge = TcpStream::connect(http).unwrap();
    huge.write_all(b"POST /v1/calls HTTP/1.1\r\nHost: baton\r\nContent-Length: 1073741824\r\n\r\n").unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        if huge.write_all(&chunk).is_err() {
            break; // answered and closed: nothing more is read
        }
    }
    for _ in 0..5 {
        loris.write_all(b"a").unwrap();
        let started = Instant::now();
        assert_eq!(request(http, "GET", "/healthz", "", "").0, 200);
        assert!(started.elapsed() < Duration::from_millis(100), "healthz took {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Bounded: each idle connection costs a task and at most its head buffer, the body
    // is never held (this process holds both ends of every connection).
    let grown = resident_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "resident memory grew by {grown} KiB");
    drop(idle);
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Calls park in a pause; a client lists them and transfers each with a POST of a
/// `sip:refer`, whichever shard has it; the transfer counters move by exactly that much.
#[test]
fn parked_calls_are_transferred_one_by_one_with_a_post() {
    let (rig, http) = rig(Some("t0ken"));
    let auth = "Authorization: Bearer t0ken\r\nContent-Type: application/json\r\n";
    let mut legs: Vec<Leg<'_>> = (0..6).map(|i| rig.carrier.call(&format!("parked-{i}"))).collect();
    let list: Value = serde_json::from_str(&request(http, "GET", "/v1/calls", auth, "").1).unwrap();
    let sids: Vec<String> =
        list["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().into()).collect();
    assert_eq!(sids.len(), 6);
    let refer = json!({"verbs": [{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}]}).to_string();
    assert_eq!(request(http, "POST", &format!("/v1/calls/{}", sids[0]), "", &refer).0, 401, "no token");
    let bad = json!({"verbs": [{"verb": "sip:refer", "headers": {"Via": "x"}}]}).to_string();
    let (status, why) = request(http, "POST", &format!("/v1/calls/{}", sids[0]), auth, &bad);
    assert_eq!(status, 400);
    assert!(why.contains("verb 0 (sip:refer)") && why.contains("referTo"), "{why}");
    for sid in &sids {
        let with_id =
            json!({"verbs": [{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}], "command_id": "x1"});
        assert_eq!(request(http, "POST", &format!("/v1/calls/{sid}"), auth, &with_id.to_string()).0, 200);
        assert_eq!(request(http, "POST", &format!("/v1/calls/{sid}"), auth, &with_id.to_string()).0, 200, "a repeat");
        let refer = rig.carrier.expect_request("REFER");
        let leg = legs
            .iter_mut()
            .find(|l| refer.header(baton_proto::sip::Name::CallId).as_deref() == Some(&l.call_id))
            .unwrap();
        leg.respond(&refer, 202, "");
        assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
        let bye = rig.carrier.expect_request("BYE");
        leg.respond(&bye, 200, "");
    }
    rig.carrier.expect_none(Duration::from_millis(300), "a second REFER for a repeated command", |m| {
        m.method().as_deref() == Some("REFER")
    });
    assert_eq!(rig.hooks.wait("/action", 6).len(), 6);
    let page = request(http, "GET", "/metrics", "", "").1;
    assert_eq!(sample(&page, "baton_transfers_total{outcome=\"succeeded\"}"), Some(6), "{page}");
    assert_eq!(sample(&page, "baton_refer_accepted_seconds_count"), Some(6), "{page}");
    assert_eq!(sample(&page, "baton_refer_final_seconds_bucket{le=\"+Inf\"}"), Some(6), "{page}");
    assert_eq!(sample(&page, "baton_calls_active"), Some(0));
    let shards: Vec<u64> =
        (0..2).filter_map(|i| sample(&page, &format!("baton_shard_calls_total{{shard=\"{i}\"}}"))).collect();
    assert!(shards.iter().all(|n| *n > 0), "calls on both shards: {shards:?}");
    assert_eq!(request(http, "POST", &format!("/v1/calls/{}", sids[0]), auth, &refer).0, 404, "over");
}

#[test]
fn a_post_hangs_up_or_fetches_the_application() {
    let (rig, http) = rig(None);
    let json = "Content-Type: application/json\r\n";
    rig.carrier.call("hangup-1");
    rig.carrier.call("fetch-1");
    let list: Value = serde_json::from_str(&request(http, "GET", "/v1/calls", "", "").1).unwrap();
    let sid_of = |call_id: &str| {
        list["calls"].as_array().unwrap().iter().find(|c| c["call_id"] == call_id).unwrap()["call_sid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let hangup = json!({"call_status": "completed"}).to_string();
    assert_eq!(request(http, "POST", &format!("/v1/calls/{}", sid_of("hangup-1")), json, &hangup).0, 200);
    let bye = rig.carrier.expect_request("BYE");
    assert_eq!(bye.header(baton_proto::sip::Name::CallId).as_deref(), Some("hangup-1"));
    rig.hooks.reply("/fresh", 200, &json!([{"verb": "hangup", "headers": {"X-Fetched": "yes"}}]).to_string());
    let fetch = json!({"call_hook": rig.hooks.url("/fresh")}).to_string();
    assert_eq!(request(http, "POST", &format!("/v1/calls/{}", sid_of("fetch-1")), json, &fetch).0, 200);
    let bye = rig.carrier.expect_request("BYE");
    assert_eq!(bye.raw("X-Fetched").as_deref(), Some("yes"));
    assert_eq!(rig.hooks.wait("/fresh", 1)[0].body["call_id"], "fetch-1");
}

/// Checks `value` against the part of JSON Schema the document uses: type (one or
/// several, null included), enum, required, properties, items, $ref.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.contains(&kind) {
        return Err(format!("{at}: a {kind}, not {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    for field in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if value.get(field).is_none() {
            return Err(format!("{at}: {field} is missing"));
        }
    }
    for (field, sub) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(v) = value.get(field) {
            conforms(doc, sub, v, &format!("{at}.{field}"))?;
        }
    }
    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
        conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
    }
    Ok(())
}

/// Every route, and its refusals, answers with a status the OpenAPI document lists and a
/// body its schema allows; the document served is the one in the repository.
#[test]
fn every_route_answers_as_the_openapi_document_says() {
    let (rig, http) = rig(Some("t0ken"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string("docs/openapi.json").unwrap()).unwrap();
    let served: Value = serde_json::from_str(&request(http, "GET", "/openapi.json", "", "").1).unwrap();
    assert_eq!(served, doc);
    let leg = rig.carrier.call("documented-1");
    let auth = "Authorization: Bearer t0ken\r\nContent-Type: application/json\r\n";
    let list: Value = serde_json::from_str(&request(http, "GET", "/v1/calls", auth, "").1).unwrap();
    let sid = list["calls"][0]["call_sid"].as_str().unwrap().to_string();
    let hangup = json!({"call_status": "completed"}).to_string();
    let refer = json!({"verbs": [{"verb": "sip:refer", "referTo": "agent"}]}).to_string();
    let cases: Vec<(&str, String, &str, String, u16)> = vec![
        ("get", "/healthz".into(), "", String::new(), 200),
        ("get", "/readyz".into(), "", String::new(), 200),
        ("get", "/metrics".into(), "", String::new(), 200),
        ("get", "/openapi.json".into(), "", String::new(), 200),
        ("get", "/v1/calls?limit=10".into(), auth, String::new(), 200),
        ("get", "/v1/calls".into(), "", String::new(), 401),
        ("get", format!("/v1/calls/{sid}"), auth, String::new(), 200),
        ("get", "/v1/calls/nobody".into(), auth, String::new(), 404),
        ("post", format!("/v1/calls/{sid}"), auth, "{\"verbs\": [{\"verb\": \"play\"}]}".into(), 400),
        ("post", "/v1/calls/nobody".into(), auth, hangup.clone(), 404),
        ("post", format!("/v1/calls/{sid}"), auth, refer.clone(), 200),
        ("post", format!("/v1/calls/{sid}"), auth, refer, 409),
    ];
    for (method, path, headers, body, want) in cases {
        let (status, answer) = request(http, &method.to_uppercase(), &path, headers, &body);
        assert_eq!(status, want, "{method} {path}: {answer}");
        let template =
            if path.starts_with("/v1/calls/") { "/v1/calls/{call_sid}" } else { path.split('?').next().unwrap() };
        let op = &doc["paths"][template][method];
        let documented = &op["responses"][status.to_string()];
        assert!(documented.is_object(), "{method} {path}: {status} is not documented");
        if let Some(schema) = documented["content"]["application/json"].get("schema") {
            let value: Value =
                serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}"));
            conforms(&doc, schema, &value, &format!("{method} {path}")).unwrap();
        }
        if let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema") {
            conforms(&doc, schema, &serde_json::from_str(&body).unwrap(), &format!("{method} {path} request")).unwrap();
        }
    }
    // The transfer the POST started is under way (hence the 409): let it finish.
    let refer = rig.carrier.expect_request("REFER");
    leg.respond(&refer, 603, "");
    let bye = rig.carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
}

/// While the hook queue is nearly full (a slow status endpoint here), new calls are refused
/// and `/readyz` says why; once the hooks drain it is ready again.
#[test]
fn readyz_is_503_while_the_hook_queue_is_nearly_full() {
    let hooks = HookServer::start();
    app(&hooks, json!([{"verb": "pause", "length": 5}]));
    hooks.reply_after("/status", 200, "", Duration::from_millis(1500));
    let server =
        start_server(settings(&hooks), &hooks, |h| h.queue = 8, |c| c.metrics = Some("127.0.0.1:0".parse().unwrap()));
    let http = server.metrics_addr().unwrap();
    let carrier = Carrier::new(server.local_addrs()[0]);
    for i in 0..6 {
        carrier.send(&carrier.invite_text(&format!("queue-{i}"), ""));
    }
    let until = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = request(http, "GET", "/readyz", "", "");
            if status == want {
                return body;
            }
            assert!(Instant::now() < deadline, "/readyz never answered {want}: {status} {body}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let why = until(503);
    assert!(why.contains("hook queue is nearly full"), "{why}");
    assert_eq!(until(200), "ready\n");
    server.stop();
}
