//! The UAS dialog baton holds with the caller (RFC 3261 §12): identifiers, remote target,
//! route set, CSeq, and how to build requests inside it.

use crate::sip::header::{Name, NameAddr};
use crate::sip::parse::{Core, Message};
use crate::sip::uri::Uri;
use crate::sip::write::{Value, Writer};
use crate::transport::{Flow, Transport};
use std::net::SocketAddr;

#[derive(Clone, Debug)]
pub struct Dialog {
    /// The dialog's strings, held for the call's whole life in one allocation (the
    /// per-call arena) and read through the accessors below.
    text: Box<str>,
    spans: [Span; FIELDS],
    /// Record-Route values, in order (no allocation when there is none, the usual case).
    routes: Vec<Span>,
    pub local_cseq: u32,
    /// The flow the INVITE came on: its answers go back on it, and its transport is the
    /// dialog's (Via, Contact, timers).
    pub flow: Flow,
    /// Where in-dialog requests go: the first route, else the remote target, when either
    /// is an IP literal; otherwise where the INVITE came from. Fixed for the dialog's life.
    pub next_hop: SocketAddr,
    /// How they go: what that URI asks for (`sips:`, `;transport=`), else the INVITE's
    /// transport.
    pub next_transport: Transport,
}

/// Where one string sits in `Dialog::text`.
type Span = (u32, u32);

const CALL_ID: usize = 0;
const LOCAL_TAG: usize = 1;
const LOCAL_PARTY: usize = 2;
const REMOTE_PARTY: usize = 3;
const REMOTE_TARGET: usize = 4;
const ADVERTISED: usize = 5;
const CONTACT: usize = 6;
const REMOTE_TAG: usize = 7;
const FIELDS: usize = 8;

/// Why an INVITE cannot start a dialog (answered 400 with this reason).
pub const NO_CONTACT: &str = "Missing or Malformed Contact Header";
pub const NO_FROM_TAG: &str = "Missing From Tag";

/// Appends strings to one buffer and remembers where each went.
struct Arena(String);

impl Arena {
    fn push(&mut self, parts: &[&str]) -> Span {
        let start = self.0.len() as u32;
        parts.iter().for_each(|p| self.0.push_str(p));
        (start, self.0.len() as u32)
    }
}

impl Dialog {
    pub fn from_invite(
        msg: &Message<'_>,
        core: &Core<'_>,
        local_tag: &str,
        flow: Flow,
        advertised: &str,
    ) -> Result<Dialog, &'static str> {
        let remote_tag = core.from.tag().ok_or(NO_FROM_TAG)?;
        let contact = msg.all(Name::Contact).next().and_then(NameAddr::parse).ok_or(NO_CONTACT)?;
        let to = unfold(msg.get(Name::To).unwrap_or_default());
        let from = unfold(msg.get(Name::From).unwrap_or_default());
        let (to, from) = (to.as_ref(), from.as_ref());
        let mut arena = Arena(String::with_capacity(
            core.call_id.len()
                + 2 * local_tag.len()
                + to.len()
                + from.len()
                + contact.uri.len()
                + 2 * advertised.len()
                + remote_tag.len()
                + 32,
        ));
        let mut spans = [(0, 0); FIELDS];
        spans[CALL_ID] = arena.push(&[core.call_id]);
        spans[LOCAL_TAG] = arena.push(&[local_tag]);
        spans[LOCAL_PARTY] = arena.push(&[to, ";tag=", local_tag]);
        spans[REMOTE_PARTY] = arena.push(&[from]);
        spans[REMOTE_TARGET] = arena.push(&[contact.uri]);
        spans[ADVERTISED] = arena.push(&[advertised]);
        spans[CONTACT] = match flow.transport.uri_param() {
            Some(t) => arena.push(&["<sip:baton@", advertised, ";transport=", t, ">"]),
            None => arena.push(&["<sip:baton@", advertised, ">"]),
        };
        spans[REMOTE_TAG] = arena.push(&[remote_tag]);
        let routes = msg.all(Name::RecordRoute).map(|r| arena.push(&[&unfold(r)])).collect();
        let mut dialog = Dialog {
            text: arena.0.into(),
            spans,
            routes,
            local_cseq: 0,
            flow,
            next_hop: flow.remote,
            next_transport: flow.transport,
        };
        let (hop, transport) = next_hop(dialog.route_set().next(), dialog.remote_target(), flow);
        (dialog.next_hop, dialog.next_transport) = (hop, transport);
        Ok(dialog)
    }

    fn span(&self, (start, end): Span) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// The flow in-dialog requests take: towards the next hop, on the INVITE's connection
    /// while it lasts when the transport is the INVITE's.
    pub fn next_hop_flow(&self) -> Flow {
        match self.next_transport == self.flow.transport {
            true => self.flow.towards(self.next_hop),
            false => Flow { transport: self.next_transport, local: self.flow.local, remote: self.next_hop, conn: None },
        }
    }

    pub fn call_id(&self) -> &str {
        self.span(self.spans[CALL_ID])
    }

    pub fn local_tag(&self) -> &str {
        self.span(self.spans[LOCAL_TAG])
    }

    /// The caller's From-tag.
    pub fn remote_tag(&self) -> &str {
        self.span(self.spans[REMOTE_TAG])
    }

    /// Whether a request belongs to this dialog (RFC 3261 §12.2.2): its Call-ID, its
    /// To-tag ours and its From-tag the caller's. Knowing the Call-ID and our tag is not
    /// enough; a forged NOTIFY must also guess the caller's tag.
    pub fn matches_request(&self, core: &Core<'_>) -> bool {
        core.call_id == self.call_id()
            && core.to.tag() == Some(self.local_tag())
            && core.from.tag() == Some(self.remote_tag())
    }

    /// Whether a response belongs to a request we sent in this dialog: its Call-ID, and
    /// its From-tag ours (the To-tag of an early response may still be absent).
    pub fn matches_response(&self, core: &Core<'_>) -> bool {
        core.call_id == self.call_id() && core.from.tag() == Some(self.local_tag())
    }

    /// Our From in requests: the INVITE's To plus our tag.
    pub fn local_party(&self) -> &str {
        self.span(self.spans[LOCAL_PARTY])
    }

    /// Our To in requests: the INVITE's From as written (with its tag).
    pub fn remote_party(&self) -> &str {
        self.span(self.spans[REMOTE_PARTY])
    }

    pub fn remote_target(&self) -> &str {
        self.span(self.spans[REMOTE_TARGET])
    }

    /// `host:port` written in our Via.
    pub fn advertised(&self) -> &str {
        self.span(self.spans[ADVERTISED])
    }

    /// Our Contact: `<sip:baton@advertised>`, with `;transport=` on a transport other than UDP.
    pub fn contact(&self) -> &str {
        self.span(self.spans[CONTACT])
    }

    pub fn route_set(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|&r| self.span(r))
    }

    /// Starts an in-dialog request: next CSeq, Route set, our Via, From, To, Contact.
    /// Returns the writer (for extra headers) and the CSeq used.
    pub fn request(&mut self, method: &str, branch: &str) -> (Writer, u32) {
        self.local_cseq += 1;
        let mut w = Writer::request(method, self.remote_target());
        let transport = self.next_transport.via_name();
        w.header(
            "Via",
            [&"SIP/2.0/" as &dyn Value, &transport, &" ", &self.advertised(), &";branch=", &branch, &";rport"],
        );
        for route in self.route_set() {
            w.header("Route", route);
        }
        w.header("Max-Forwards", "70")
            .header("From", self.local_party())
            .header("To", self.remote_party())
            .header("Call-ID", self.call_id())
            .header("CSeq", [&self.local_cseq as &dyn Value, &" ", &method])
            .header("Contact", self.contact());
        (w, self.local_cseq)
    }

    /// The host (and port) to put after `@` for a bare user in Refer-To/Referred-By.
    pub fn remote_host(&self) -> String {
        Uri::parse(self.remote_target()).map(|u| u.host_port()).unwrap_or_else(|| self.flow.remote.to_string())
    }
}

/// A value as one line: the CRLF of each folded line (RFC 3261 §7.3.1) becomes a space,
/// since baton writes the value again into headers of its own.
fn unfold(value: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_none() {
        return value.into();
    }
    value.split(['\r', '\n']).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ").into()
}

/// Where in-dialog requests go, and how: the first route, else the remote target, when
/// either is an IP literal (on the transport it asks for, else the INVITE's); otherwise
/// back where the INVITE came from, the way it came.
fn next_hop(first_route: Option<&str>, remote_target: &str, invite: Flow) -> (SocketAddr, Transport) {
    let first = match first_route {
        Some(route) => NameAddr::parse(route).map(|n| n.uri),
        None => Some(remote_target),
    };
    let uri = first.and_then(Uri::parse);
    match uri.as_ref().and_then(Uri::socket_addr) {
        Some(addr) => (addr, uri.and_then(|u| u.transport()).unwrap_or(invite.transport)),
        None => (invite.remote, invite.transport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::parse;

    #[test]
    fn in_dialog_requests_follow_the_record_route_and_turn_the_parties_around() {
        let invite = parse(
            b"INVITE sip:bot@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n\
              Record-Route: <sip:10.0.0.7:5070;lr>\r\nRecord-Route: <sip:edge.example;lr>\r\n\
              From: \"A\" <sip:a@10.0.0.9>;tag=f1\r\nTo: <sip:bot@10.0.0.1>\r\nCall-ID: c-1\r\n\
              CSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.9:5099>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let core = invite.core().unwrap();
        let (peer, local) = ("10.0.0.9:5060".parse().unwrap(), "10.0.0.1:5060".parse().unwrap());
        let flow = Flow::udp(local, peer);
        let mut d = Dialog::from_invite(&invite, &core, "bt0-1", flow, "10.0.0.1:5060").unwrap();
        assert_eq!(d.next_hop, "10.0.0.7:5070".parse().unwrap(), "the first route, not the Contact");
        let (w, cseq) = d.request("BYE", "z9hG4bK-bt0-1-1");
        let bye = w.finish(None).unwrap();
        let bye = parse(&bye).unwrap();
        assert_eq!(cseq, 1);
        assert_eq!(bye.start, crate::sip::parse::StartLine::Request { method: "BYE", uri: "sip:a@10.0.0.9:5099" });
        let routes: Vec<_> = bye.all(Name::Route).collect();
        assert_eq!(routes, ["<sip:10.0.0.7:5070;lr>", "<sip:edge.example;lr>"], "RFC 3261 §12.1.1: in order");
        assert_eq!(bye.get(Name::From), Some("<sip:bot@10.0.0.1>;tag=bt0-1"));
        assert_eq!(bye.get(Name::To), Some("\"A\" <sip:a@10.0.0.9>;tag=f1"));
        assert_eq!(bye.get(Name::CallId), Some("c-1"));
        assert_eq!(bye.get(Name::Contact), Some("<sip:baton@10.0.0.1:5060>"));
        assert_eq!(bye.core().unwrap().via.branch(), Some("z9hG4bK-bt0-1-1"));
        // No route, a hostname target: requests go back where the INVITE came from.
        let bare = parse(
            b"INVITE sip:bot@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK2\r\n\
              From: <sip:a@x>;tag=f2\r\nTo: <sip:bot@10.0.0.1>\r\nCall-ID: c-2\r\nCSeq: 1 INVITE\r\n\
              Contact: <sip:a@pbx.example>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let d = Dialog::from_invite(&bare, &bare.core().unwrap(), "bt0-2", flow, "10.0.0.1:5060").unwrap();
        assert_eq!((d.next_hop_flow(), d.route_set().count()), (flow, 0));
    }

    #[test]
    fn the_next_hop_takes_the_transport_its_uri_asks_for() {
        let invite = |rr: &str, contact: &str| {
            let text = format!(
                "INVITE sip:bot@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n{rr}From: <sip:a@x>;tag=f\r\n\
                 To: <sip:bot@10.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
            );
            let flow = Flow::udp("10.0.0.1:5060".parse().unwrap(), "10.0.0.9:5060".parse().unwrap());
            let msg = parse(text.as_bytes()).unwrap();
            let d = Dialog::from_invite(&msg, &msg.core().unwrap(), "t", flow, "10.0.0.1:5060").unwrap();
            let via = parse(&d.clone().request("BYE", "z9hG4bK-x").0.finish(None).unwrap())
                .unwrap()
                .core()
                .unwrap()
                .via
                .transport
                .to_string();
            (d.next_hop_flow(), via)
        };
        let (flow, via) = invite("Record-Route: <sip:10.0.0.7:5070;lr;transport=tcp>\r\n", "<sip:a@10.0.0.9>");
        assert_eq!(
            (flow.transport, flow.remote, flow.conn, via.as_str()),
            (Transport::Tcp, "10.0.0.7:5070".parse().unwrap(), None, "TCP")
        );
        let (flow, via) = invite("", "<sips:a@10.0.0.9>");
        assert_eq!(
            (flow.transport, flow.remote, via.as_str()),
            (Transport::Tls, "10.0.0.9:5061".parse().unwrap(), "TLS")
        );
        let (flow, via) = invite("", "<sip:a@10.0.0.9:5080>");
        assert_eq!((flow.transport, via.as_str()), (Transport::Udp, "UDP"), "nothing asked: the INVITE's way");
    }
}
