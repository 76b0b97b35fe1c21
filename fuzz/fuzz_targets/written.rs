#![no_main]
//! Arbitrary strings in every value a verb writes into a SIP message (Refer-To with headers
//! escaped into its URI and a trunk profile's rewriting, Referred-By and its display name, a
//! header name and value, a reason phrase, a method): the writer either refuses the message
//! or writes one that parses back with exactly the headers meant.
use baton_proto::sip::{address, parse, StartLine, Writer};
use baton_proto::{refer_to, Plus, ReferScheme, TrunkProfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1f}');
    let mut next = || parts.next().unwrap_or("x").to_string();
    let (target, by, display, name, value, reason, method) = (next(), next(), next(), next(), next(), next(), next());

    let schemes = [ReferScheme::AsWritten, ReferScheme::Sip, ReferScheme::Tel];
    let pluses = [Plus::Keep, Plus::Add, Plus::Strip];
    let profile = TrunkProfile {
        scheme: schemes[data.len() % 3],
        plus: pluses[data.len() / 3 % 3],
        refer_host: (data.len() % 2 == 0).then(|| "pstn.example".to_string()),
        ..Default::default()
    };
    let uri_headers = [(name.clone(), value.clone())];
    let profile = (data.len() % 5 != 0).then_some(&profile);
    let Ok(target) = refer_to(&target, profile, "h", &uri_headers) else { return };
    let mut w = Writer::request(&method, "sip:carrier@192.0.2.1");
    w.header("Refer-To", target);
    w.header("Referred-By", address(&by, Some(&display), "h"));
    w.header(&name, value.as_str());
    if let Ok(bytes) = w.finish(None) {
        let msg = parse(&bytes).expect("a message the writer accepted parses");
        assert_eq!(msg.start, StartLine::Request { method: &method, uri: "sip:carrier@192.0.2.1" });
        let names: Vec<&str> = msg.headers.iter().map(|h| h.raw_name).collect();
        assert_eq!(
            names,
            ["Refer-To", "Referred-By", name.as_str(), "Content-Length"],
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let refer = msg.headers.iter().find(|h| h.raw_name == "Refer-To").map(|h| h.value);
        assert_eq!(refer.map(|r| baton_proto::sip::split_list(r).count()), Some(1), "one address in Refer-To");
        let referred = msg.headers.iter().find(|h| h.raw_name == "Referred-By").map(|h| h.value);
        assert_eq!(referred.map(|r| baton_proto::sip::split_list(r).count()), Some(1), "one address in Referred-By");
    }

    let w = Writer::response(603, &reason);
    if let Ok(bytes) = w.finish(None) {
        let msg = parse(&bytes).expect("a response the writer accepted parses");
        assert_eq!(msg.status(), Some(603));
        assert_eq!(msg.headers.len(), 1, "only Content-Length: {}", String::from_utf8_lossy(&bytes));
    }
});
