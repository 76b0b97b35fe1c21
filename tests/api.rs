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
    let all: Value = serde_json::from_str(&request(http, "GET", "/v1/calls?limit=1000", "", "").1).unwrap();
    let calls = all["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5, "{all}");
    assert!(calls
        .iter()
        .all(|c| c["state"] == "confirmed" && c["verb"] == "pause" && c["call_status"] == "in-progress"));
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
    drop(idle);
}
