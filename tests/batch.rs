//! The batch endpoint: hooks nobody waits on travel as JSON arrays, each call's hooks
//! still in order, while hooks a call waits on (the call hook) go to their own URLs.

mod common;

use baton::hooks::batch::BatchSettings;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn batched_rig(max: usize, linger: Duration) -> Rig {
    Rig::with_hooks(
        json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}]),
        |_| {},
        |h, hooks| h.batch = Some(BatchSettings { url: url::Url::parse(&hooks.url("/batch")).unwrap(), max, linger }),
    )
}

/// Every element of every batch, with the arrival of its batch.
fn elements(rig: &Rig) -> Vec<(Value, std::time::Instant)> {
    rig.hooks
        .at("/batch")
        .into_iter()
        .flat_map(|b| b.body.as_array().cloned().unwrap_or_default().into_iter().map(move |e| (e, b.at)))
        .collect()
}

#[test]
fn events_travel_in_batches_and_each_call_stays_in_order() {
    let rig = batched_rig(100, Duration::from_millis(30));
    transfer(&rig.carrier, "batch-1");
    let hook = |e: &Value, path: &str| e["hook"] == rig.hooks.url(path);
    let completed = |e: &Value| hook(e, "/status") && e["call_status"] == "completed";
    rig.hooks.wait_matching("/batch", 1, |b| b.body.as_array().is_some_and(|a| a.iter().any(completed)));
    assert_eq!(rig.hooks.at("/call").len(), 1, "the call hook is awaited: it goes to its own URL");
    for path in ["/event", "/action", "/status"] {
        assert!(rig.hooks.at(path).is_empty(), "{path} goes to the batch endpoint instead");
    }
    let all = elements(&rig);
    let events: Vec<_> = all.iter().filter(|(e, _)| hook(e, "/event")).collect();
    let codes: Vec<_> = events.iter().map(|(e, _)| e["call_status"].clone()).collect();
    assert_eq!(codes, vec![json!(100), json!(180), json!(200)], "the same objects an eventHook gets, in order");
    assert_eq!(events[0].0["event"], "transfer-status");
    let action = all.iter().position(|(e, _)| hook(e, "/action")).unwrap();
    assert_eq!(all[action].0["final_referred_call_status"], json!(200));
    assert_eq!(all[action].0["call_sid"], events[0].0["call_sid"]);
    let last_event = all.iter().position(|(e, _)| hook(e, "/event") && e["call_status"] == json!(200)).unwrap();
    assert!(action > last_event, "the actionHook overtook an event of its call");
    let statuses: Vec<_> =
        all.iter().filter(|(e, _)| hook(e, "/status")).map(|(e, _)| e["call_status"].clone()).collect();
    assert_eq!(statuses.first(), Some(&json!("trying")));
    assert_eq!(statuses.last(), Some(&json!("completed")));
    let batch = &rig.hooks.at("/batch")[0];
    assert!(batch.headers.contains_key("baton-signature"), "batches are signed like any hook");
}

#[test]
fn a_batch_holds_at_most_max_events_from_many_calls() {
    let rig = batched_rig(4, Duration::from_millis(200));
    let carriers: Vec<Carrier> = (0..6).map(|_| Carrier::new(rig.carrier.baton)).collect();
    std::thread::scope(|s| {
        for (i, c) in carriers.iter().enumerate() {
            s.spawn(move || transfer(c, &format!("many-{i}")));
        }
    });
    let want = 6 * 3;
    let deadline = std::time::Instant::now() + WAIT;
    while elements(&rig).iter().filter(|(e, _)| e["event"] == "transfer-status").count() < want {
        assert!(std::time::Instant::now() < deadline, "not every event arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let batches = rig.hooks.at("/batch");
    assert!(batches.iter().all(|b| b.body.as_array().is_some_and(|a| !a.is_empty() && a.len() <= 4)));
    let mixed = batches.iter().any(|b| {
        let sids: std::collections::HashSet<_> =
            b.body.as_array().unwrap().iter().map(|e| e["call_sid"].to_string()).collect();
        sids.len() > 1
    });
    assert!(mixed, "one batch carries events of several calls");
}
