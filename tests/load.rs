//! `baton load` against `baton serve`, both the real binary: the carrier's whole flow, with
//! hooks on, batched, to the load generator's built-in sink.

mod common;

use common::*;
use serde_json::json;
use std::net::TcpListener;
use std::process::Command;

#[test]
fn load_with_hooks_batched_to_the_sink() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let app =
        write_app(json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "action", "eventHook": "event"}]));
    let base = format!("http://{sink}/");
    let batch = format!("http://{sink}/batch");
    let baton = Baton::start(&[
        "--app",
        app.to_str().unwrap(),
        "--hook-base",
        &base,
        "--hook-batch-url",
        &batch,
        "--hook-batch-max",
        "50",
        "--hook-batch-linger",
        "10",
        "--metrics",
        &metrics,
        "--pin",
        "false",
    ]);
    let calls = 201;
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["load", "--target", &baton.addr.to_string(), "--rate", "400", "--shards", "2"])
        .args(["--calls", &calls.to_string(), "--hook-sink", &sink.to_string()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains(&format!("calls {calls} completed {calls} refused (503) 0 failed 0")), "{report}");
    // Three eventHooks (100, 180, 200) and the actionHook per transfer, all batched.
    let line = report.lines().find(|l| l.starts_with("hooks at the sink")).unwrap_or_default();
    let events: u64 = line.split_whitespace().nth(4).and_then(|n| n.parse().ok()).unwrap_or(0);
    let requests: u64 = line.split_whitespace().nth(7).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert_eq!(events, 4 * calls, "{report}");
    assert!(requests < events, "events arrive in batches: {report}");
    let page = http_get(&metrics, "/metrics");
    assert_eq!(sample(&page, "baton_hooks_delivered_total"), Some(4 * calls), "{page}");
    assert_eq!(sample(&page, "baton_hook_ack_seconds_count"), Some(4 * calls), "{page}");
    assert_eq!(sample(&page, "baton_hook_batches_total"), Some(requests), "{page}");
}
