//! Several shards behind one address: a carrier trunk that sends everything from one
//! address and port lands on one socket (the kernel's REUSEPORT hash), yet its calls are
//! spread over every shard, and a 202 or NOTIFY that arrives on any shard reaches its REFER.

mod common;

use common::*;
use serde_json::json;
use std::net::TcpListener;

const SHARDS: usize = 4;

fn start_sharded(hooks: &HookServer) -> (Baton, String) {
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let app = write_app(json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "action"}]));
    let base = hooks.url("/");
    let shards = SHARDS.to_string();
    let args = [
        "--app",
        app.to_str().unwrap(),
        "--hook-base",
        &base,
        "--shards",
        &shards,
        "--pin",
        "false",
        "--metrics",
        &metrics,
    ];
    (Baton::start(&args), metrics)
}

fn per_shard(page: &str, name: &str) -> Vec<u64> {
    (0..SHARDS).map(|i| sample(page, &format!("baton_shard_{name}{{shard=\"{i}\"}}")).unwrap_or(0)).collect()
}

/// A transfer whose 202 and NOTIFY come from `other`, not from the port that called in.
fn transfer_answered_from(carrier: &Carrier, other: &Carrier, call_id: &str) {
    let leg = carrier.call(call_id);
    let refer = carrier.expect_request("REFER");
    other.send(&response_text(&refer, 202, ""));
    let dialog = Dialog { me: carrier.addr(), baton: carrier.baton, call_id, to: &leg.to };
    other.send(&dialog.notify(2, refer.cseq().0, "200 OK", "terminated"));
    assert_eq!(other.expect_response("NOTIFY", true).status(), Some(200));
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
}

#[test]
fn one_carrier_address_is_spread_over_every_shard() {
    let hooks = HookServer::start();
    let (baton, metrics) = start_sharded(&hooks);
    let carrier = Carrier::new(baton.addr);
    let calls = 40;
    for i in 0..calls {
        transfer(&carrier, &format!("trunk-{i}@carrier"));
    }
    let actions = hooks.wait("/action", calls);
    assert!(actions.iter().all(|a| a.body["refer_status"] == json!(202)), "{actions:?}");
    assert!(actions.iter().all(|a| a.body["final_referred_call_status"] == json!(200)), "{actions:?}");

    let page = http_get(&metrics, "/metrics");
    let received = per_shard(&page, "received_total");
    assert_eq!(received.iter().filter(|&&n| n > 0).count(), 1, "one address, one socket: {received:?}\n{page}");
    let owned = per_shard(&page, "calls_total");
    assert!(owned.iter().all(|&n| n > 0), "every shard owns some calls: {owned:?}");
    assert_eq!(owned.iter().sum::<u64>(), calls as u64);
    // Every call off the receiving shard had its INVITE, ACK, 202, NOTIFY and 200 to BYE
    // handed over; none was dropped.
    let handed: u64 = per_shard(&page, "handed_off_total").iter().sum();
    let off_receiver: u64 = owned.iter().zip(&received).filter(|(_, &r)| r == 0).map(|(&c, _)| c).sum();
    assert!(handed >= 5 * off_receiver, "handed {handed} for {off_receiver} calls elsewhere");
    assert_eq!(per_shard(&page, "handoff_dropped_total").iter().sum::<u64>(), 0);
    assert_eq!(sample(&page, "baton_stray_responses_total"), Some(0));
    assert_eq!(sample(&page, "baton_unknown_dialog_total"), Some(0));
    // Each ended call is kept as a tombstone for its retransmissions (the last 200 to a BYE
    // may still be on its way).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut page = page;
    while sample(&page, "baton_calls_ended_held") != Some(calls as u64) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        page = http_get(&metrics, "/metrics");
    }
    assert_eq!(sample(&page, "baton_calls_ended_held"), Some(calls as u64), "{page}");
    assert_eq!(sample(&page, "baton_calls_active"), Some(0));
}

#[test]
fn a_202_and_notify_from_other_ports_reach_their_refer() {
    let hooks = HookServer::start();
    let (baton, metrics) = start_sharded(&hooks);
    let carrier = Carrier::new(baton.addr);
    // Many source ports: their datagrams land on different shards' sockets.
    let others: Vec<Carrier> = (0..16).map(|_| Carrier::new(baton.addr)).collect();
    for (i, other) in others.iter().enumerate() {
        transfer_answered_from(&carrier, other, &format!("split-{i}@carrier"));
    }
    let actions = hooks.wait("/action", others.len());
    assert!(actions.iter().all(|a| a.body["final_referred_call_status"] == json!(200)), "{actions:?}");
    let page = http_get(&metrics, "/metrics");
    let received = per_shard(&page, "received_total");
    assert!(received.iter().filter(|&&n| n > 0).count() > 1, "the ports spread over sockets: {received:?}");
    assert_eq!(sample(&page, "baton_stray_responses_total"), Some(0));
}
