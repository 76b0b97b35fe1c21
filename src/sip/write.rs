//! Message writer: start line, headers, Content-Length and body into one buffer.

use super::header::Name;
use super::parse::Message;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// Builds one message by appending bytes: no formatting machinery on the datagram path.
pub struct Writer {
    buf: Vec<u8>,
}

/// A header value: written as its parts, one after another.
pub trait Value {
    fn write_to(&self, buf: &mut Vec<u8>);
}

impl Value for str {
    fn write_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
}

impl Value for String {
    fn write_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
}

impl Value for u32 {
    fn write_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl<T: Value + ?Sized> Value for &T {
    fn write_to(&self, buf: &mut Vec<u8>) {
        (**self).write_to(buf);
    }
}

impl<const N: usize> Value for [&dyn Value; N] {
    fn write_to(&self, buf: &mut Vec<u8>) {
        self.iter().for_each(|part| part.write_to(buf));
    }
}

/// Appends `ip` as its `Display` writes it, IPv4 without the formatting machinery (each
/// call's SDP and Contact carry one; `fmt` spent about 1,000 instructions on each).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `addr` as its `Display` writes it: `ip:port`, or `[ip]:port` for IPv6.
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v4.port()));
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

impl Writer {
    pub fn request(method: &str, uri: &str) -> Writer {
        let mut buf = Vec::with_capacity(768);
        for part in [method, " ", uri, " SIP/2.0\r\n"] {
            buf.extend_from_slice(part.as_bytes());
        }
        Writer { buf }
    }

    pub fn response(code: u16, reason: &str) -> Writer {
        // Room for a 200 with its SDP: growing past 512 copied every call's answer once.
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(b"SIP/2.0 ");
        buf.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(reason.as_bytes());
        buf.extend_from_slice(b"\r\n");
        Writer { buf }
    }

    /// A response to `req` (RFC 3261 §8.2.6.2): Via lines, From, Call-ID and CSeq copied,
    /// To copied and given `to_tag` when it has none.
    pub fn response_to(req: &Message<'_>, code: u16, reason: &str, to_tag: Option<&str>) -> Writer {
        let mut w = Writer::response(code, reason);
        for h in req.headers.iter() {
            match h.name {
                Name::Via | Name::From | Name::CallId | Name::CSeq => w.header(h.raw_name, h.value),
                Name::To => {
                    let has_tag = super::header::NameAddr::parse(h.value).and_then(|n| n.tag()).is_some();
                    match to_tag {
                        Some(tag) if !has_tag => w.header("To", [&h.value as &dyn Value, &";tag=", &tag]),
                        _ => w.header("To", h.value),
                    }
                }
                _ => &mut w,
            };
        }
        w
    }

    pub fn header(&mut self, name: &str, value: impl Value) -> &mut Writer {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        value.write_to(&mut self.buf);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the header section with Content-Length (and Content-Type when there is a body).
    pub fn finish(mut self, body: Option<(&str, &[u8])>) -> Vec<u8> {
        match body {
            Some((content_type, body)) => {
                self.header("Content-Type", content_type);
                self.header("Content-Length", u32::try_from(body.len()).unwrap_or(u32::MAX));
                self.buf.extend_from_slice(b"\r\n");
                self.buf.extend_from_slice(body);
            }
            None => self.buf.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        }
        self.buf
    }
}

/// The standard reason phrase of a status code (RFC 3261 §21 and extensions).
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirected",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::parse;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for text in ["0.0.0.0:0", "10.0.0.2:5060", "255.255.255.255:65535", "[2001:db8::1]:5080", "[fe80::1%2]:5060"] {
            let addr: SocketAddr = text.parse().unwrap();
            let (mut ip, mut full) = (String::new(), String::new());
            push_ip(&mut ip, addr.ip());
            push_socket_addr(&mut full, addr);
            assert_eq!((ip, full), (addr.ip().to_string(), addr.to_string()));
        }
    }

    #[test]
    fn response_copies_the_dialog_headers_and_tags_to() {
        let req = parse(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nv: SIP/2.0/UDP h2;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 4 BYE\r\nX-Other: y\r\n\r\n").unwrap();
        let out = Writer::response_to(&req, 200, "OK", Some("t9")).finish(None);
        let resp = parse(&out).unwrap();
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.lines(Name::Via).count(), 2);
        assert_eq!(resp.core().unwrap().to.tag(), Some("t9"));
        assert_eq!(resp.get_raw("X-Other"), None);
        assert_eq!(resp.get(Name::ContentLength), Some("0"));
    }
}
