//! `sip:`, `sips:` and `tel:` URIs, just far enough to route and to build Refer-To.

use crate::transport::Transport;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    pub user: Option<&'a str>,
    /// Host without brackets for IPv6; empty for `tel:`.
    pub host: &'a str,
    pub port: Option<u16>,
    /// `;uri-params?headers` as written, empty when none.
    pub rest: &'a str,
}

/// True when `s` starts with `prefix`, ignoring ASCII case.
pub fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Option<Uri<'a>> {
        let (scheme, rest) = if starts_with_ci(s, "sips:") {
            (Scheme::Sips, &s[5..])
        } else if starts_with_ci(s, "sip:") {
            (Scheme::Sip, &s[4..])
        } else if starts_with_ci(s, "tel:") {
            let number = &s[4..];
            let end = number.find(';').unwrap_or(number.len());
            return (end > 0).then_some(Uri {
                scheme: Scheme::Tel,
                user: Some(&number[..end]),
                host: "",
                port: None,
                rest: &number[end..],
            });
        } else {
            return None;
        };
        let (user, hostport) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let end = hostport.find([';', '?']).unwrap_or(hostport.len());
        let (hp, tail) = hostport.split_at(end);
        let (host, port) = split_host_port(hp)?;
        if host.is_empty() || user.is_some_and(str::is_empty) {
            return None;
        }
        Some(Uri { scheme, user, host, port, rest: tail })
    }

    /// The address to send to when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        let default = if self.scheme == Scheme::Sips { 5061 } else { 5060 };
        Some(SocketAddr::new(ip, self.port.unwrap_or(default)))
    }

    /// The transport the URI asks for: `sips:` means TLS, else its `transport` parameter
    /// (RFC 3261 §19.1.1); `None` when it says nothing.
    pub fn transport(&self) -> Option<Transport> {
        if self.scheme == Scheme::Sips {
            return Some(Transport::Tls);
        }
        let params = self.rest.split('?').next().unwrap_or_default();
        let value = crate::sip::header::param(params, "transport")?;
        value.parse().ok()
    }

    /// `host[:port]` as it would be written in a URI.
    pub fn host_port(&self) -> String {
        let v6 = self.host.contains(':');
        let mut out = String::with_capacity(self.host.len() + 8);
        if v6 {
            out.push('[');
        }
        out.push_str(self.host);
        if v6 {
            out.push(']');
        }
        if let Some(p) = self.port {
            out.push(':');
            out.push_str(itoa::Buffer::new().format(p));
        }
        out
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
pub fn split_host_port(hp: &str) -> Option<(&str, Option<u16>)> {
    if let Some(v6) = hp.strip_prefix('[') {
        let close = v6.find(']')?;
        let port = match &v6[close + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((&v6[..close], port));
    }
    match hp.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((hp, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        let u = Uri::parse("sip:bob@10.0.0.2:5070;transport=udp").unwrap();
        assert_eq!(
            (u.scheme, u.user, u.host, u.port, u.rest),
            (Scheme::Sip, Some("bob"), "10.0.0.2", Some(5070), ";transport=udp")
        );
        assert_eq!(u.socket_addr(), Some("10.0.0.2:5070".parse().unwrap()));
        let u = Uri::parse("SIPS:alice@example.com").unwrap();
        assert_eq!((u.scheme, u.host, u.socket_addr()), (Scheme::Sips, "example.com", None));
        assert_eq!(u.host_port(), "example.com");
        assert_eq!(Uri::parse("sip:bob@10.0.0.2:5070").unwrap().host_port(), "10.0.0.2:5070");
        let u = Uri::parse("tel:+15083084809;phone-context=x").unwrap();
        assert_eq!((u.scheme, u.user), (Scheme::Tel, Some("+15083084809")));
        let u = Uri::parse("sip:[2001:db8::1]:5080").unwrap();
        assert_eq!((u.host, u.port, u.host_port()), ("2001:db8::1", Some(5080), "[2001:db8::1]:5080".to_string()));
        assert!(Uri::parse("http://x").is_none());
        assert!(Uri::parse("sip:@x").is_none());
    }
}
