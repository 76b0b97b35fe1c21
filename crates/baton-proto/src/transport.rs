//! The transports a message travels on (RFC 3261 §18) and the flow that names where it
//! came from. The core writes Via and Contact for the flow's transport and runs the
//! timers that transport needs (RFC 3261 §17: no retransmission on a reliable one).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A SIP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams: one message each, retransmitted by the transaction layer.
    #[default]
    Udp,
    /// A byte stream, framed by Content-Length (RFC 3261 §18.3).
    Tcp,
    /// TCP under TLS.
    Tls,
}

impl Transport {
    /// Whether the transport delivers reliably: then requests and non-2xx answers are
    /// never retransmitted (RFC 3261 §17.1.2.2, §17.2.1), only bounded by Timer F / H.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// As written in a Via's sent-protocol: `UDP`, `TCP`, `TLS`.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter our Contact carries; none for UDP, the default.
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        })
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Transport, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            "tls" => Ok(Transport::Tls),
            _ => Err(format!("unknown transport {s:?} (udp, tcp or tls)")),
        }
    }
}

/// A connection of a stream transport, named by the I/O layer that owns it. The core
/// hands it back on every message for the same flow; it never interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Where a message came from, or where one goes: transport, our address, the peer's,
/// and on a stream transport the connection it came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// How the message travels.
    pub transport: Transport,
    /// Our address: the listening socket (UDP) or the connection's local end.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The connection, on a stream transport; `None` asks the I/O layer for one to
    /// `remote` (or for a datagram).
    pub conn: Option<ConnId>,
}

impl Flow {
    /// A UDP flow between two addresses.
    pub fn udp(local: SocketAddr, remote: SocketAddr) -> Flow {
        Flow { transport: Transport::Udp, local, remote, conn: None }
    }

    /// The same transport, local address and connection towards `remote`: a dialog's
    /// requests go on the connection its INVITE came on while it lasts (the I/O layer
    /// opens one to `remote` when it is gone), as carriers and SBCs expect.
    pub fn towards(&self, remote: SocketAddr) -> Flow {
        Flow { remote, ..*self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_keeps_its_connection_towards_any_next_hop() {
        let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:40123".parse().unwrap();
        let contact: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        let flow = Flow { transport: Transport::Tcp, local: a, remote: b, conn: Some(ConnId(9)) };
        assert_eq!(flow.towards(contact), Flow { remote: contact, ..flow });
    }

    #[test]
    fn names_round_trip_and_only_udp_is_unreliable() {
        for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            assert_eq!(t.to_string().parse::<Transport>(), Ok(t));
            assert_eq!(t.is_reliable(), t != Transport::Udp);
        }
        assert!("sctp".parse::<Transport>().unwrap_err().contains("sctp"));
    }
}
