//! The UAS dialog baton holds with the caller (RFC 3261 §12): identifiers, remote target,
//! route set, CSeq, and how to build requests inside it.

use crate::sip::header::{Name, NameAddr};
use crate::sip::parse::{Core, Message};
use crate::sip::uri::Uri;
use crate::sip::write::{Value, Writer};
use std::net::SocketAddr;

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From in requests: the INVITE's To plus our tag.
    pub local_party: String,
    /// Our To in requests: the INVITE's From as written (with its tag).
    pub remote_party: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// The address the INVITE came from: where replies go when the target is not an IP.
    pub peer: SocketAddr,
    /// The listening address the call arrived on.
    pub local: SocketAddr,
    /// `host:port` written in our Via.
    pub advertised: String,
    /// Our Contact: `<sip:baton@advertised>`.
    pub contact: String,
    /// Where in-dialog requests go (see `next_hop`); the route set and target are fixed
    /// for the dialog's life, so this is worked out once.
    pub next_hop: SocketAddr,
}

/// Why an INVITE cannot start a dialog (answered 400 with this reason).
pub const NO_CONTACT: &str = "Missing or Malformed Contact Header";
pub const NO_FROM_TAG: &str = "Missing From Tag";

impl Dialog {
    pub fn from_invite(
        msg: &Message<'_>,
        core: &Core<'_>,
        local_tag: String,
        peer: SocketAddr,
        local: SocketAddr,
        advertised: String,
    ) -> Result<Dialog, &'static str> {
        let remote_tag = core.from.tag().ok_or(NO_FROM_TAG)?;
        let contact = msg.all(Name::Contact).next().and_then(NameAddr::parse).ok_or(NO_CONTACT)?;
        let route_set: Vec<String> = msg.all(Name::RecordRoute).map(str::to_string).collect();
        let remote_target = contact.uri.to_string();
        let next_hop = next_hop(&route_set, &remote_target, peer);
        Ok(Dialog {
            contact: format!("<sip:baton@{advertised}>"),
            next_hop,
            call_id: core.call_id.to_string(),
            remote_tag: remote_tag.to_string(),
            local_party: format!("{};tag={local_tag}", msg.get(Name::To).unwrap_or_default()),
            local_tag,
            remote_party: msg.get(Name::From).unwrap_or_default().to_string(),
            remote_target,
            route_set,
            local_cseq: 0,
            peer,
            local,
            advertised,
        })
    }

    /// Starts an in-dialog request: next CSeq, Route set, our Via, From, To, Contact.
    /// Returns the writer (for extra headers) and the CSeq used.
    pub fn request(&mut self, method: &str, branch: &str) -> (Writer, u32) {
        self.local_cseq += 1;
        let mut w = Writer::request(method, &self.remote_target);
        w.header("Via", [&"SIP/2.0/UDP " as &dyn Value, &self.advertised, &";branch=", &branch, &";rport"]);
        for route in &self.route_set {
            w.header("Route", route);
        }
        w.header("Max-Forwards", "70")
            .header("From", &self.local_party)
            .header("To", &self.remote_party)
            .header("Call-ID", &self.call_id)
            .header("CSeq", [&self.local_cseq as &dyn Value, &" ", &method])
            .header("Contact", &self.contact);
        (w, self.local_cseq)
    }

    /// The host (and port) to put after `@` for a bare user in Refer-To/Referred-By.
    pub fn remote_host(&self) -> String {
        Uri::parse(&self.remote_target).map(|u| u.host_port()).unwrap_or_else(|| self.peer.to_string())
    }
}

/// Where in-dialog requests go: the first route, else the remote target, when either is an
/// IP literal; otherwise the address the INVITE came from.
fn next_hop(route_set: &[String], remote_target: &str, peer: SocketAddr) -> SocketAddr {
    let first = match route_set.first() {
        Some(route) => NameAddr::parse(route).map(|n| n.uri),
        None => Some(remote_target),
    };
    first.and_then(Uri::parse).and_then(|u| u.socket_addr()).unwrap_or(peer)
}
