//! RFC 3261 behaviour on the simulator: INVITE retransmissions, the 2xx until its ACK,
//! CANCEL, OPTIONS, 481/405/400/420/505, session refreshes, the call limit.

mod sim;

use baton_proto::sip::Name;
use baton_proto::{ConnId, Flow, Transport};
use serde_json::json;
use sim::*;
use std::time::Duration;

const SEEDS: std::ops::Range<u64> = 0..16;

fn pause() -> serde_json::Value {
    json!([{"verb": "pause", "length": 30}])
}

fn cancel_of(invite: &str) -> String {
    let head = invite.split("Content-Type").next().unwrap();
    head.replacen("INVITE sip:", "CANCEL sip:", 1).replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        + "Content-Length: 0\r\n\r\n"
}

#[test]
fn an_invalid_application_from_the_call_hook_is_refused_with_its_problem() {
    every_seed(SEEDS, |seed| {
        let app = json!([{"verb": "answer"}, {"verb": "sip:refer", "referTo": "x", "headers": {"Via": "evil"}}]);
        let mut sim = Sim::new(seed, app, Faults::bad());
        let invite = invite_text(addr(CARRIER), addr(BATON), "invalid-app-1", "");
        sim.send(&invite);
        let reject = sim.final_answer(&invite);
        assert_eq!(reject.status(), Some(480));
        let why = reject.raw("X-Reason").unwrap();
        assert!(why.contains("verb 1 (sip:refer)") && why.contains("headers.Via"), "{why}");
        sim.settle();
        assert_eq!(sim.hooks_to("/status")[1]["call_status"], "failed");
    });
}

#[test]
fn cancel_before_the_answer_ends_the_call_and_a_late_application_cannot_revive_it() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::new(seed, json!([]), Faults::bad());
        // Answered long after the CANCEL: retransmitted, it still arrives well before.
        sim.answer_hook_after("/call", Duration::from_secs(5), 200, &json!([{"verb": "answer"}]).to_string());
        let invite = invite_text(addr(CARRIER), addr(BATON), "cancel-1", "");
        sim.send(&invite);
        assert_eq!(sim.first_answer(&invite).status(), Some(100));
        assert_eq!(sim.request(&cancel_of(&invite)), 200);
        assert_eq!(sim.final_answer(&invite).status(), Some(487));
        sim.settle();
        assert_eq!(sim.hooks_to("/status")[1]["call_status"], "canceled");
        let answers = sim.answers(&invite);
        assert!(answers.iter().all(|m| m.status() != Some(200)), "200 after CANCEL");
    });
}

#[test]
fn a_487_is_sent_again_until_its_ack() {
    let mut sim = Sim::new(0, json!([]), Faults::NONE);
    sim.auto_ack = false;
    sim.answer_hook_after("/call", Duration::from_secs(5), 200, &json!([{"verb": "answer"}]).to_string());
    let invite = invite_text(addr(CARRIER), addr(BATON), "cancel-2", "");
    sim.send(&invite);
    sim.first_answer(&invite);
    assert_eq!(sim.request(&cancel_of(&invite)), 200);
    sim.run_for(Duration::from_secs(40));
    let finals: Vec<u128> =
        sim.received.iter().filter(|(_, m)| m.status() == Some(487)).map(|(t, _)| t.as_millis()).collect();
    assert_eq!(finals[..5], [0, 500, 1500, 3500, 7500], "Timer G");
    assert_eq!(finals.len(), 11, "until Timer H at 64·T1");
}

#[test]
fn stray_requests_get_options_481_405_400_420_505_and_noise_is_dropped() {
    let mut sim = Sim::new(0, json!([]), Faults::NONE);
    let req = |method: &str, extra: &str| {
        format!(
            "{method} sip:baton@{BATON} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-{method}\r\nFrom: <sip:a@{CARRIER}>;tag=1\r\n\
             To: <sip:b@x>{extra}\r\nCall-ID: stray-{method}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sim.send(&req("OPTIONS", ""));
    let ok = sim.final_answer(&req("OPTIONS", ""));
    assert_eq!(ok.status(), Some(200));
    assert!(ok.raw("Allow").unwrap().contains("NOTIFY"));
    let cases = [
        (req("OPTIONS", "").replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia").replace("z9hG4bK-OPTIONS", "z9hG4bK-v7"), 505),
        (
            req("OPTIONS", "")
                .replace("Content-Length", "Require: 100rel\r\nContent-Length")
                .replace("z9hG4bK-OPTIONS", "z9hG4bK-ext"),
            420,
        ),
        (req("BYE", ";tag=nope"), 481),
        (req("PUBLISH", ""), 405),
        (req("OPTIONS", "").replace("Call-ID: stray-OPTIONS\r\n", "").replace("z9hG4bK-OPTIONS", "z9hG4bK-noid"), 400),
    ];
    for (text, code) in &cases {
        assert_eq!(sim.request(text), *code, "{text}");
    }
    let bad = sim.final_answer(&cases[4].0);
    assert!(bad.text().starts_with("SIP/2.0 400 Missing Call-ID Header\r\n"), "{}", bad.text());
    assert_eq!(sim.final_answer(&cases[1].0).raw("Unsupported").as_deref(), Some("100rel"));
    assert!(sim.final_answer(&cases[3].0).raw("Allow").is_some());
    sim.send_once(&[0xff, 0x00, 0x13, 0x37]);
    sim.send_once(b"INVITE sip:x SIP/2.0\r\nVia: broken");
    sim.run_for(Duration::from_millis(1));
    let stats = sim.engine.stats;
    assert_eq!((stats.dropped, stats.bad_requests, stats.unknown_dialog), (2, 2, 1));
    assert_eq!(sim.engine.calls(), 0, "nothing stateless leaves state");
}

#[test]
fn a_retransmitted_invite_is_one_call_and_its_2xx_repeats_until_the_ack() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::new(seed, pause(), Faults::bad());
        let invite = invite_text(addr(CARRIER), addr(BATON), "retx-inv-1", "");
        sim.send_once(invite.as_bytes());
        sim.call("retx-inv-1");
        assert_eq!(sim.hooks_to("/call").len(), 1);
        assert_eq!(sim.engine.calls(), 1);
    });
    let mut sim = Sim::new(0, pause(), Faults::NONE);
    sim.auto_ack = false;
    let invite = invite_text(addr(CARRIER), addr(BATON), "retx-inv-2", "");
    sim.send(&invite);
    sim.run_for(Duration::from_secs(2));
    let oks: Vec<u128> =
        sim.received.iter().filter(|(_, m)| m.status() == Some(200)).map(|(t, _)| t.as_millis()).collect();
    assert_eq!(oks, [0, 500, 1500]);
    let ok = sim.final_answer(&invite);
    sim.send(&ack_text(addr(CARRIER), addr(BATON), "retx-inv-2", &ok.header(Name::To).unwrap()));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.received.iter().filter(|(_, m)| m.status() == Some(200)).count(), 3, "the ACK stops it");
}

/// A call whose 200 is never acknowledged ends at 64·T1 without a BYE: nothing goes to a
/// Contact the ACK never confirmed (a spoofed INVITE would otherwise reflect a BYE at
/// whoever it named).
#[test]
fn a_missing_ack_ends_the_call_without_bye() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::new(seed, pause(), Faults::bad());
        sim.auto_ack = false;
        sim.send(&invite_text(addr(CARRIER), addr(BATON), "no-ack-1", ""));
        sim.settle();
        assert_eq!(sim.unanswered(), Vec::<String>::new(), "no request before the ACK");
        let ended = sim.hooks_to("/status");
        assert_eq!(
            (ended[2]["call_status"].clone(), ended[2]["call_termination_by"].clone()),
            (json!("failed"), json!("baton"))
        );
        assert_eq!(sim.engine.stats.never_acked, 1);
        assert!(sim.elapsed() >= Duration::from_secs(32));
    });
}

#[test]
fn session_refreshes_get_the_same_answer_and_an_offerless_invite_gets_an_offer() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::new(seed, pause(), Faults::bad());
        let mut leg = sim.call("reinvite-1");
        let answer = String::from_utf8_lossy(leg.ok.msg().body).into_owned();
        let reinvite =
            leg.next("INVITE", "Contact: <sip:carrier@10.0.0.2>\r\nContent-Type: application/sdp\r\n", OFFER);
        sim.send(&reinvite);
        let ok = sim.final_answer(&reinvite);
        assert_eq!(ok.status(), Some(200));
        assert_eq!(String::from_utf8_lossy(ok.msg().body), answer);
        assert_eq!(sim.request(&leg.next("UPDATE", "", "")), 200);
        assert_eq!(sim.request(&leg.next("MESSAGE", "", "")), 405);

        let no_sdp = invite_text(addr(CARRIER), addr(BATON), "offerless-1", "")
            .split("Content-Type")
            .next()
            .unwrap()
            .to_string()
            + "Content-Length: 0\r\n\r\n";
        sim.send(&no_sdp);
        let offer = sim.final_answer(&no_sdp);
        let body = String::from_utf8_lossy(offer.msg().body).into_owned();
        assert!(body.contains("m=audio 9 RTP/AVP 0 8"), "{body}");
        assert_eq!(offer.header(Name::ContentType).as_deref(), Some("application/sdp"));
    });
}

#[test]
fn over_the_call_limit_new_invites_get_503() {
    every_seed(SEEDS, |seed| {
        let mut sim = Sim::with(seed, pause(), Faults::bad(), |s| s.max_calls = 1);
        sim.call("limit-1");
        let invite = invite_text(addr(CARRIER), addr(BATON), "limit-2", "");
        sim.send(&invite);
        let busy = sim.final_answer(&invite);
        assert_eq!((busy.status(), busy.raw("Retry-After").as_deref()), (Some(503), Some("5")));
    });
}

/// RFC 3261 §18.3: on a stream a message without Content-Length cannot be delimited.
#[test]
fn on_a_stream_a_request_without_content_length_gets_400() {
    let mut sim = Sim::new(0, pause(), Faults::NONE);
    sim.flow = Flow { transport: Transport::Tcp, conn: Some(ConnId(3)), ..sim.flow };
    let options = format!(
        "OPTIONS sip:baton@{BATON} SIP/2.0\r\nVia: SIP/2.0/TCP {CARRIER};branch=z9hG4bK-nolen\r\nFrom: <sip:a@{CARRIER}>;tag=1\r\n\
         To: <sip:b@x>\r\nCall-ID: nolen\r\nCSeq: 1 OPTIONS\r\n\r\n"
    );
    sim.send(&options);
    let answer = sim.final_answer(&options);
    assert!(answer.text().starts_with("SIP/2.0 400 Missing Content-Length Header\r\n"), "{}", answer.text());
    let framed = options.replace("CSeq: 1 OPTIONS\r\n\r\n", "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(sim.request(&framed.replace("z9hG4bK-nolen", "z9hG4bK-len")), 200);
    assert_eq!(sim.misrouted, 0);
}
