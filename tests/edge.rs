//! baton at the edge: garbage and floods while real transfers run (the real binary, the
//! load generator as carrier, hooks on a real HTTP server).

mod common;

use baton::load::{run, LoadConfig};
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

fn load(target: SocketAddr, calls: u64, rate: f64) -> LoadConfig {
    LoadConfig {
        target,
        rate,
        duration: Duration::ZERO,
        calls: Some(calls),
        bind: "127.0.0.1:0".parse().unwrap(),
        drain: Duration::from_secs(20),
        progress: false,
        shards: 2,
        hook_sink: None,
        transport: baton_proto::Transport::Udp,
        tls_ca: None,
    }
}

fn start_transfer_baton(hooks: &HookServer, extra: &[&str]) -> Baton {
    let app = write_app(json!([{"verb": "pause", "length": 0.3},
                               {"verb": "sip:refer", "referTo": "agent", "actionHook": "action", "eventHook": "event"}]));
    let base = hooks.url("/");
    let mut args = vec!["--app", app.to_str().unwrap(), "--hook-base", &base];
    args.extend_from_slice(extra);
    Baton::start(&args)
}

/// A request from `me`; `skip` leaves out the header starting with it.
struct Req {
    me: SocketAddr,
    baton: SocketAddr,
}

impl Req {
    fn text(&self, method: &str, cseq_method: &str, call_id: &str, to_tag: &str, extra: &str, skip: &str) -> Vec<u8> {
        let (me, baton) = (self.me, self.baton);
        let lines = [
            format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-h-{call_id}"),
            format!("From: <sip:x@{me}>;tag=h1"),
            format!("To: <sip:bot@{baton}>{to_tag}"),
            format!("Call-ID: {call_id}"),
            format!("CSeq: 1 {cseq_method}"),
        ];
        let kept: String =
            lines.iter().filter(|l| skip.is_empty() || !l.starts_with(skip)).map(|l| format!("{l}\r\n")).collect();
        format!("{method} sip:bot@{baton} SIP/2.0\r\n{kept}{extra}Content-Length: 0\r\n\r\n").into_bytes()
    }

    fn plain(&self, method: &str, call_id: &str, extra: &str) -> Vec<u8> {
        self.text(method, method, call_id, "", extra, "")
    }
}

/// What to send, and the answer it must get (None: dropped, and counted).
fn hostile(r: &Req) -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let invite = r.plain("INVITE", "h-trunc", "");
    let noise: Vec<u8> = (0..1500).map(|i| (i * 7919 % 251) as u8).collect();
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let stray = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-bt0-ffff-1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
         Call-ID: h-stray\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        r.baton
    );
    vec![
        ("truncated INVITE", invite[..invite.len() / 2].to_vec(), None),
        ("binary noise", noise, None),
        ("64 KiB datagram", vec![b'A'; 65_000], None),
        (
            "10,000-byte header line",
            r.plain("OPTIONS", "h-long", &format!("X-Long: {}\r\n", "y".repeat(10_000))),
            Some(200),
        ),
        ("500 headers", r.plain("OPTIONS", "h-many", &many), None),
        ("negative Content-Length", r.plain("OPTIONS", "h-neg", "Content-Length: -5\r\n"), None),
        ("huge Content-Length", r.plain("OPTIONS", "h-huge", "Content-Length: 99999999\r\n"), None),
        ("missing Call-ID", r.text("OPTIONS", "OPTIONS", "h-a", "", "", "Call-ID"), Some(400)),
        ("missing CSeq", r.text("OPTIONS", "OPTIONS", "h-b", "", "", "CSeq"), Some(400)),
        ("missing Via", r.text("OPTIONS", "OPTIONS", "h-c", "", "", "Via"), None),
        ("missing From", r.text("OPTIONS", "OPTIONS", "h-d", "", "", "From"), Some(400)),
        ("missing To", r.text("OPTIONS", "OPTIONS", "h-e", "", "", "To"), Some(400)),
        ("bad CSeq method", r.text("OPTIONS", "INVITE", "h-f", "", "", ""), Some(400)),
        (
            "REFER with two Refer-To",
            r.plain("REFER", "h-g", "Refer-To: <sip:a@x>\r\nRefer-To: <sip:b@x>\r\n"),
            Some(405),
        ),
        ("NOTIFY for no dialog", r.text("NOTIFY", "NOTIFY", "h-h", ";tag=nope", "Event: refer\r\n", ""), Some(481)),
        ("response to no transaction", stray.into_bytes(), None),
    ]
}

#[test]
fn hostile_input_during_a_thousand_transfers() {
    let hooks = HookServer::start();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut baton = start_transfer_baton(&hooks, &["--metrics", &metrics]);
    let target = baton.addr;
    let load = std::thread::spawn(move || run(&load(target, 1000, 200.0)).unwrap());

    // A live call of our own, for the in-dialog cases.
    let carrier = Carrier::new(baton.addr);
    let mut leg = carrier.call("edge-live");
    let r = Req { me: carrier.addr(), baton: baton.addr };
    for _ in 0..3 {
        for (what, bytes, want) in hostile(&r) {
            carrier.send_bytes(&bytes);
            if let Some(code) = want {
                let got = carrier.expect(what, |m| m.status().is_some());
                assert_eq!(got.status(), Some(code), "{what}: {}", got.text());
            }
        }
        let other = leg.request("NOTIFY", "Event: presence\r\nSubscription-State: active\r\n", "");
        carrier.send(&other);
        assert_eq!(carrier.expect_response("NOTIFY", true).status(), Some(489));
        let wrong_tag = leg.request("BYE", "", "").replace(&leg.to, "<sip:bot@x>;tag=wrong");
        carrier.send(&wrong_tag);
        assert_eq!(carrier.expect_response("BYE", true).status(), Some(481));
        std::thread::sleep(Duration::from_millis(300));
    }

    let report = load.join().unwrap();
    assert_eq!((report.completed, report.failed), (1000, 0), "{report}\n{:#?}", baton.log.lock().unwrap());
    let from_load = |a: &Recorded| a.body["call_id"].as_str().is_some_and(|c| c.starts_with("load-"));
    let load_actions = hooks.wait_matching("/action", 1000, from_load);
    assert_eq!(load_actions.len(), 1000);
    assert!(load_actions.iter().all(|a| a.body["final_referred_call_status"] == json!(200)));
    // Every bad message was answered or dropped and counted.
    let text = http_get(&metrics, "/metrics");
    for want in [
        "baton_dropped_total 21\n",
        "baton_stray_responses_total 3\n",
        "baton_bad_requests_total 15\n",
        "baton_calls_total 1001\n",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    assert!(http_get(&metrics, "/healthz").ends_with("ok\n"));
    baton.signal("-TERM");
    assert_eq!(baton.wait_exit(Duration::from_secs(30)), 0);
    let log = baton.log.lock().unwrap().clone();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    assert!(log.len() < 10, "no log line per bad packet at the default level: {log:#?}");
}

#[test]
fn an_invite_flood_over_the_limit_leaves_admitted_calls_alone() {
    let hooks = HookServer::start();
    let mut baton = start_transfer_baton(&hooks, &["--max-calls", "50"]);
    let target = baton.addr;
    let admitted = std::thread::spawn(move || run(&load(target, 50, 500.0)).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    let flood = run(&load(target, 2000, 10_000.0)).unwrap();
    let admitted = admitted.join().unwrap();
    assert_eq!((admitted.completed, admitted.failed, admitted.refused), (50, 0, 0), "{admitted}");
    assert_eq!(flood.failed, 0, "{flood}");
    assert!(flood.refused > 1500, "{flood}");
    assert_eq!(flood.completed + flood.refused, 2000);
    assert_eq!(hooks.wait("/action", (50 + flood.completed) as usize).len() as u64, 50 + flood.completed);
    baton.signal("-TERM");
    assert_eq!(baton.wait_exit(Duration::from_secs(30)), 0);
}
