//! SIP text as a carrier writes it, and a view of what baton sent: shared by the simulator
//! (tests/sim) and the loopback carrier of the `baton` crate's tests, so both speak alike.
#![allow(dead_code)]

use baton_proto::sip::{parse, split_list, CSeq, Message, Name, Via};
use std::net::SocketAddr;

/// The SDP offer every test INVITE carries.
pub const OFFER: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A message baton sent, kept whole.
#[derive(Clone, Debug)]
pub struct Sip(pub Vec<u8>);

impl Sip {
    pub fn msg(&self) -> Message<'_> {
        parse(&self.0).unwrap_or_else(|e| panic!("baton sent an unparsable message ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
    pub fn method(&self) -> Option<String> {
        self.msg().method().map(str::to_string)
    }
    pub fn status(&self) -> Option<u16> {
        self.msg().status()
    }
    pub fn header(&self, name: Name) -> Option<String> {
        self.msg().get(name).map(str::to_string)
    }
    pub fn raw(&self, name: &str) -> Option<String> {
        self.msg().get_raw(name).map(str::to_string)
    }
    pub fn cseq(&self) -> (u32, String) {
        let m = self.msg();
        let c = CSeq::parse(m.get(Name::CSeq).unwrap()).unwrap();
        (c.seq, c.method.to_string())
    }
    /// The top Via's branch (read even when the message lacks other mandatory headers).
    pub fn branch(&self) -> String {
        self.try_branch().unwrap_or_else(|| panic!("no branch: {}", self.text()))
    }
    pub fn try_branch(&self) -> Option<String> {
        let msg = parse(&self.0).ok()?;
        let top = msg.get(Name::Via).and_then(|v| split_list(v).next()).and_then(Via::parse);
        top.and_then(|v| v.branch()).map(str::to_string)
    }
}

pub fn invite_text(me: SocketAddr, baton: SocketAddr, call_id: &str, extra: &str) -> String {
    format!(
        "INVITE sip:bot@{baton} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice Caller\" <sip:+15551230000@{me}>;tag=car-{call_id}\r\n\
         To: <sip:bot@{baton}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@{me}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len(),
    )
}

pub fn ack_text(me: SocketAddr, baton: SocketAddr, call_id: &str, to: &str) -> String {
    format!(
        "ACK sip:baton@{baton} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ack-{call_id}\r\nMax-Forwards: 70\r\n\
         From: \"Alice Caller\" <sip:+15551230000@{me}>;tag=car-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A response to a request from baton, copying its Via/From/To/Call-ID/CSeq.
pub fn response_text(req: &Sip, code: u16, extra: &str) -> String {
    let m = req.msg();
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for h in m.headers.iter() {
        if matches!(h.name, Name::Via | Name::From | Name::To | Name::CallId | Name::CSeq) {
            out.push_str(&format!("{}: {}\r\n", h.raw_name, h.value));
        }
    }
    out.push_str(extra);
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The carrier's view of a dialog, enough to write requests in it.
pub struct Dialog<'a> {
    pub me: SocketAddr,
    pub baton: SocketAddr,
    pub call_id: &'a str,
    /// The To header baton answered with (carries baton's tag).
    pub to: &'a str,
}

impl Dialog<'_> {
    pub fn request(&self, method: &str, cseq: u32, headers: &str, body: &str) -> String {
        let (me, baton, call_id, to) = (self.me, self.baton, self.call_id, self.to);
        format!(
            "{method} sip:baton@{baton} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-{cseq}-{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15551230000@{me}>;tag=car-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len(),
        )
    }

    pub fn notify(&self, cseq: u32, refer_cseq: u32, status: &str, state: &str) -> String {
        self.request(
            "NOTIFY",
            cseq,
            &format!("Event: refer;id={refer_cseq}\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\n"),
            &format!("SIP/2.0 {status}\r\n"),
        )
    }
}
