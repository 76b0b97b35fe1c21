#![no_main]
//! The zero-copy parser, checked against rsip on what both accept, and the shard router
//! checked against the parsed message. rsip 0.4 rejects some
//! valid messages (folded lines, compact forms it does not know): only agreement on
//! messages both parse is required.
use baton::shard::route;
use baton_proto::sip::{parse, Name, StartLine};
use baton_proto::{parse_branch, tag_shard};
use libfuzzer_sys::fuzz_target;
use rsip::prelude::*;

fuzz_target!(|data: &[u8]| {
    // Routing reads every datagram before any parse: it never panics...
    let owner = route::owner(data, 4);
    let Ok(ours) = parse(data) else { return };
    // ...and where the parsed message names one of our shards, it picked that shard.
    if let Ok(core) = ours.core() {
        let named = match ours.start {
            StartLine::Response { .. } => core.via.branch().and_then(parse_branch).map(|(s, _)| s),
            StartLine::Request { .. } => core.to.tag().and_then(tag_shard),
        };
        if let Some(shard) = named.filter(|s| *s < 4) {
            assert_eq!(owner, Some(shard), "routing disagrees with the parsed message");
        }
    }
    // Typed views never panic either.
    let _ = ours.core();
    for name in [Name::Via, Name::Contact, Name::RecordRoute] {
        let _ = ours.all(name).count();
    }
    // No oracle where RFC 3261 allows neither reading: a bare LF (baton takes it as a line
    // end, rsip as data) or a bare CR (the reverse).
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(data.len());
    let head = &data[..head_end];
    let bare_lf = |i: usize| head[i] == b'\n' && (i == 0 || head[i - 1] != b'\r');
    let bare_cr = |i: usize| head[i] == b'\r' && head.get(i + 1) != Some(&b'\n');
    if (0..head.len()).any(|i| bare_lf(i) || bare_cr(i)) {
        return;
    }
    let Ok(theirs) = rsip::SipMessage::try_from(data) else { return };
    // rsip sometimes reads on past the first empty line, which ends the header section
    // (RFC 3261 §7; sip::parse::tests::the_first_empty_line_ends_the_headers).
    if data.len() - theirs.body().len() > head_end + 4 {
        return;
    }
    match (&ours.start, &theirs) {
        (StartLine::Request { method, .. }, rsip::SipMessage::Request(r)) => {
            // rsip folds case; RFC 3261 §7.1 makes methods case-sensitive
            // (sip::parse::tests::methods_are_case_sensitive).
            assert!(method.eq_ignore_ascii_case(&r.method.to_string()), "{method} vs {}", r.method);
        }
        (StartLine::Response { code, .. }, rsip::SipMessage::Response(r)) => {
            assert_eq!(*code, r.status_code.code());
        }
        _ => panic!("request/response disagreement"),
    }
    // Call-ID: rsip does not know the compact `i:`, so compare only the long form; with two
    // Call-IDs there is no single value (baton refuses such a message in `core()`).
    let call_ids = ours.headers.iter().filter(|h| h.raw_name.eq_ignore_ascii_case("Call-ID")).count();
    if let (1, Some(a), Ok(b)) = (call_ids, ours.get_raw("Call-ID"), theirs.call_id_header()) {
        assert_eq!(a.trim(), b.value().trim(), "SIP trims only SP and HTAB (LWS); rsip any whitespace");
    }
    // rsip keeps all that follows the headers (baton stops at Content-Length) and drops
    // leading and trailing line breaks, which RFC 3261 §18.3 counts as body over UDP
    // (sip::parse::tests::udp_body_without_content_length_keeps_its_line_breaks).
    let trim = |b: &'_ [u8]| -> Vec<u8> {
        let start = b.iter().position(|c| !matches!(c, b'\r' | b'\n')).unwrap_or(b.len());
        let end = b.iter().rposition(|c| !matches!(c, b'\r' | b'\n')).map_or(start, |i| i + 1);
        b[start..end.max(start)].to_vec()
    };
    let (a, b) = (trim(ours.body), trim(theirs.body()));
    assert!(b.starts_with(&a), "body differs: ours {:?}, rsip {:?}", ours.body, theirs.body());
});
