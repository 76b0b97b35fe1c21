//! The sans-IO engine through a whole transfer (INVITE to BYE, hooks answered at once,
//! no sockets), and routing a response to its shard and call by its branch.

use baton::app::parse_document;
use baton::engine::{Engine, Output, Settings};
use baton::hooks::job::{Answer, HookReply};
use baton::tokens::parse_branch;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn header<'a>(msg: &'a [u8], name: &str) -> &'a str {
    let text = std::str::from_utf8(msg).unwrap();
    let start = text.find(&format!("\r\n{name}: ")).unwrap() + name.len() + 4;
    &text[start..start + text[start..].find("\r\n").unwrap()]
}

/// Runs one transfer; returns the datagrams baton sent.
fn transfer(engine: &mut Engine, now: Instant, n: u64) -> usize {
    let (local, peer): (SocketAddr, SocketAddr) =
        ("192.0.2.1:5060".parse().unwrap(), "192.0.2.10:5060".parse().unwrap());
    let call_id = format!("bench-{n}");
    let from = format!("<sip:+15550001@192.0.2.10>;tag=c{n}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    let invite = format!("INVITE sip:bot@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-i{n}\r\nFrom: {from}\r\nTo: <sip:bot@192.0.2.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@192.0.2.10>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len());
    let mut sent = Vec::new();
    let drain = |engine: &mut Engine, sent: &mut Vec<Vec<u8>>| {
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Transmit(t) => sent.push(t.bytes),
                Output::Hook(job) => {
                    if let Some(r) = job.reply {
                        engine.handle_hook_reply(
                            now,
                            HookReply { shard: r.shard, call: r.call, token: r.token, outcome: Ok(Answer::Nothing) },
                        );
                    }
                }
                Output::CallGone(_) => {}
            }
        }
    };
    engine.handle_datagram(now, local, peer, invite.as_bytes());
    drain(engine, &mut sent);
    let to = header(&sent[1], "To").to_string();
    let ack = format!("ACK sip:baton@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-a{n}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    engine.handle_datagram(now, local, peer, ack.as_bytes());
    drain(engine, &mut sent);
    let refer = sent.last().unwrap().clone();
    let ok202 = format!("SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&refer, "Via"), header(&refer, "From"), header(&refer, "To"), header(&refer, "CSeq"));
    engine.handle_datagram(now, local, peer, ok202.as_bytes());
    for (cseq, status, state) in
        [(2, "100 Trying", "active"), (3, "180 Ringing", "active"), (4, "200 OK", "terminated")]
    {
        let body = format!("SIP/2.0 {status}\r\n");
        let notify = format!("NOTIFY sip:baton@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-n{n}-{cseq}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} NOTIFY\r\nEvent: refer;id=1\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        engine.handle_datagram(now, local, peer, notify.as_bytes());
        drain(engine, &mut sent);
    }
    sent.len()
}

fn whole_transfer(c: &mut Criterion) {
    let app = r#"[{"verb":"sip:refer","referTo":"agent","actionHook":"/a","eventHook":"/e"}]"#;
    let settings = Settings { app: parse_document(app).ok(), ..Settings::default() };
    let mut engine = Engine::new(Arc::new(settings), 0, 1);
    let mut now = Instant::now();
    let mut n = 0;
    c.bench_function("engine: whole transfer, no I/O", |b| {
        b.iter(|| {
            n += 1;
            // Old calls expire as the virtual clock moves on, so state stays bounded.
            now += Duration::from_millis(1);
            engine.handle_timeout(now);
            while engine.poll_output().is_some() {}
            black_box(transfer(&mut engine, now, n))
        })
    });
}

fn routing(c: &mut Criterion) {
    c.bench_function("route a response by its branch", |b| {
        b.iter(|| black_box(parse_branch(black_box("z9hG4bK-bt3-1f2e3d-9a"))))
    });
}

criterion_group!(benches, whole_transfer, routing);
criterion_main!(benches);
