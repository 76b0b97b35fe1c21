//! baton's zero-copy parser against rsip 0.4 on the same bytes (the ratio is the number
//! that matters; the machine is noisy), and the writer.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "messages.rs"]
mod messages;

fn parse(c: &mut Criterion) {
    for (name, bytes) in [
        ("REFER", messages::REFER),
        ("NOTIFY+sipfrag", messages::NOTIFY),
        ("INVITE+SDP", messages::INVITE),
        ("200 OK", messages::OK),
    ] {
        let mut g = c.benchmark_group(format!("parse {name}"));
        // Like for like with rsip, which splits headers without typing them...
        g.bench_function("baton", |b| b.iter(|| black_box(baton_proto::sip::parse(black_box(bytes)).unwrap())));
        // ...and with the typed views of Via, CSeq, From and To that routing needs.
        g.bench_function("baton+core", |b| {
            b.iter(|| {
                let m = baton_proto::sip::parse(black_box(bytes)).unwrap();
                black_box(m.core().unwrap());
            })
        });
        g.bench_function("rsip", |b| b.iter(|| black_box(rsip::SipMessage::try_from(black_box(bytes)).unwrap())));
        g.finish();
    }
}

fn write(c: &mut Criterion) {
    let invite = baton_proto::sip::parse(messages::INVITE).unwrap();
    let src: std::net::SocketAddr = "127.0.0.1:5060".parse().unwrap();
    c.bench_function("write 200 to INVITE", |b| {
        b.iter(|| {
            let mut w =
                baton_proto::sip::Writer::response_to(black_box(&invite), src, 200, "OK", Some("bt0-6a2b6f34a131"));
            w.header("Contact", "<sip:baton@192.0.2.1:5060>");
            black_box(w.finish(None))
        })
    });
    c.bench_function("write REFER", |b| {
        b.iter(|| {
            let mut w = baton_proto::sip::Writer::request("REFER", "sip:carrier@192.0.2.10:5060");
            w.header("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-bt0-1f-2;rport")
                .header("Max-Forwards", 70)
                .header("From", "<sip:bot@192.0.2.1:5060>;tag=bt0-6a2b6f34a131")
                .header("To", "\"Caller\" <sip:+15550001@192.0.2.10:5060>;tag=27542SIPpTag1")
                .header("Call-ID", "1-27542@192.0.2.10")
                .header("CSeq", "1 REFER")
                .header("Contact", "<sip:baton@192.0.2.1:5060>")
                .header("Refer-To", "<sip:+15083084809@192.0.2.10:5060>");
            black_box(w.finish(None))
        })
    });
}

criterion_group!(benches, parse, write);
criterion_main!(benches);
