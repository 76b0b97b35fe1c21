//! Message writer: start line, headers, Content-Length and body into one buffer.
//!
//! Every value that reaches the wire goes through here, and here is the one check that
//! keeps a value from changing the message's structure (docs/security.md, "What is
//! written"): no control character (CR, LF, NUL...) in a start line or header value, header
//! names and methods are tokens, and a Refer-To or Referred-By is exactly one name-addr
//! whose URI and display name cannot close their brackets or quotes early or add a list
//! element. A message with a value that fails is never produced: [`Writer::finish`] says
//! which value and why, and the verb that asked for it fails with that reason.

use super::header::{is_token, is_token_byte, param, split_list, Name, Via};
use super::parse::Message;
use super::uri::starts_with_ci;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// Builds one message by appending bytes: no formatting machinery on the datagram path.
pub struct Writer {
    buf: Vec<u8>,
    /// The first value that could not be written safely.
    fault: Option<Unwritable>,
}

/// A value that would have changed the structure of the message it was written into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwritable {
    /// Where: a header name, "method", "Request-URI" or "reason phrase".
    pub place: String,
    /// What is wrong with the value.
    pub why: &'static str,
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.why)
    }
}

impl std::error::Error for Unwritable {}

const CONTROL: &str = "contains a control character (CR, LF, NUL...)";

/// Text of a start line or header value: no control character but HTAB (RFC 3261 §25.1,
/// TEXT-UTF8char and LWS; folding is never written, so CR and LF never are).
fn is_text(bytes: &[u8]) -> bool {
    !super::scan::has_control(bytes)
}

/// Space and tab: the white space inside a header value.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without the white space it starts with.
fn skip_blanks(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|&&b| is_blank(b)).count()..]
}

/// The length of the quoted string `s` starts with, both quotes included (`\` escapes the
/// next character), or `None` when its quote is never closed.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match s.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Headers the writer treats apart, found without the perfect hash (most names are none).
enum Kind {
    /// Refer-To, Referred-By (compact `r`, `b`): exactly one address.
    OneAddress,
    /// Content-Length (compact `l`): the writer's own, from the body it is given; a second
    /// one would let a value decide where the message ends.
    Length,
    Other,
}

fn kind_of(name: &str) -> Kind {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    match name.len() {
        1 if is("r") || is("b") => Kind::OneAddress,
        1 if is("l") => Kind::Length,
        8 if is("Refer-To") => Kind::OneAddress,
        11 if is("Referred-By") => Kind::OneAddress,
        14 if is("Content-Length") => Kind::Length,
        _ => Kind::Other,
    }
}

/// Why `value` is not exactly one `[display] <URI> *(;param)` (a header that holds a
/// single address: Refer-To, Referred-By).
pub fn name_addr_problem(value: &str) -> Option<&'static str> {
    address_problem(value.as_bytes())
}

fn address_problem(v: &[u8]) -> Option<&'static str> {
    let v = skip_blanks(v);
    let v = &v[..v.len() - v.iter().rev().take_while(|&&b| is_blank(b)).count()];
    let lt = match v.first() {
        Some(b'"') => {
            let Some(display) = quoted_len(v) else { return Some("display name: its quote is never closed") };
            match v[display..].iter().position(|&b| !is_blank(b)).map(|p| display + p) {
                Some(p) if v[p] == b'<' => p,
                _ => return Some("a quoted display name must be followed by <URI>"),
            }
        }
        _ => match v.iter().position(|&b| b == b'<') {
            Some(p) if v[..p].iter().all(|&b| is_token_byte(b) || is_blank(b)) => p,
            Some(_) => return Some("display name: only words, or a quoted string"),
            None => return Some("the URI must be in angle brackets"),
        },
    };
    let Some(len) = v[lt + 1..].iter().position(|&b| b == b'>') else { return Some("URI: its < is never closed") };
    let uri = &v[lt + 1..lt + 1 + len];
    if uri.is_empty() {
        return Some("URI: empty");
    }
    if uri.iter().any(|&b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'"')) {
        return Some("URI: holds white space, a quote or a <");
    }
    params_problem(&v[lt + 2 + len..])
}

/// Header parameters after an address: `*( ;name[=value] )`, each a token (a value may be
/// a host, an IPv6 reference or a quoted string), so no comma can start another element.
fn params_problem(mut rest: &[u8]) -> Option<&'static str> {
    loop {
        let (&first, after) = skip_blanks(rest).split_first()?;
        if first != b';' {
            return Some("after the URI only ;parameters may follow (a comma would add an address)");
        }
        rest = skip_blanks(after);
        let name = rest.iter().take_while(|&&b| is_token_byte(b)).count();
        if name == 0 {
            return Some("a parameter without a name");
        }
        rest = &rest[name..];
        let Some((b'=', value)) = skip_blanks(rest).split_first() else { continue };
        rest = skip_blanks(value);
        let value = if rest.first() == Some(&b'"') {
            let Some(quoted) = quoted_len(rest) else { return Some("a parameter's quote is never closed") };
            quoted
        } else {
            rest.iter().take_while(|&&b| is_token_byte(b) || matches!(b, b'[' | b']' | b':')).count()
        };
        if value == 0 {
            return Some("a parameter with an empty value");
        }
        rest = &rest[value..];
    }
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
    /// Starts a request: its method and Request-URI are checked like every value.
    pub fn request(method: &str, uri: &str) -> Writer {
        let mut w = Writer { buf: Vec::with_capacity(768), fault: None };
        if !is_token(method) {
            w.fail("method", "must be a token (letters, digits, -.!%*_+`'~)");
        }
        let uri_ok = !uri.is_empty() && !uri.bytes().any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"'));
        if !uri_ok {
            w.fail("Request-URI", "must be one URI: no white space, quotes or angle brackets");
        }
        for part in [method, " ", uri, " SIP/2.0\r\n"] {
            w.buf.extend_from_slice(part.as_bytes());
        }
        w
    }

    /// Starts a response with its status line.
    pub fn response(code: u16, reason: &str) -> Writer {
        // Room for a 200 with its SDP: growing past 512 copied every call's answer once.
        let mut w = Writer { buf: Vec::with_capacity(1024), fault: None };
        if !is_text(reason.as_bytes()) {
            w.fail("reason phrase", CONTROL);
        }
        w.buf.extend_from_slice(b"SIP/2.0 ");
        w.buf.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
        w.buf.push(b' ');
        w.buf.extend_from_slice(reason.as_bytes());
        w.buf.extend_from_slice(b"\r\n");
        w
    }

    fn fail(&mut self, place: &str, why: &'static str) {
        self.fault.get_or_insert_with(|| Unwritable { place: place.to_string(), why });
    }

    /// A response to `req`, which came from `src` (RFC 3261 §8.2.6.2): Via lines, From,
    /// Call-ID and CSeq copied, the top Via stamped with where the request came from, To
    /// copied and given `to_tag` when it has none.
    pub fn response_to(req: &Message<'_>, src: SocketAddr, code: u16, reason: &str, to_tag: Option<&str>) -> Writer {
        let mut w = Writer::response(code, reason);
        let mut top = true;
        for h in req.headers.iter() {
            match h.name {
                Name::Via if std::mem::take(&mut top) => match stamped_via(h.value, src) {
                    Some(stamped) => w.line(h.raw_name, stamped),
                    None => w.line(h.raw_name, h.value),
                },
                // Lines of a message the parser delimited: they cannot add a header.
                Name::Via | Name::From | Name::CallId | Name::CSeq => w.line(h.raw_name, h.value),
                Name::To => {
                    let has_tag = super::header::NameAddr::parse(h.value).and_then(|n| n.tag()).is_some();
                    match to_tag {
                        Some(tag) if !has_tag => w.line("To", [&h.value as &dyn Value, &";tag=", &tag]),
                        _ => w.line("To", h.value),
                    }
                }
                _ => &mut w,
            };
        }
        w
    }

    /// Writes one header, checked: a value that would change the message's structure
    /// makes [`Writer::finish`] fail instead.
    pub fn header(&mut self, name: &str, value: impl Value) -> &mut Writer {
        let start = self.buf.len() + name.len() + 2;
        self.line(name, value);
        let value = &self.buf[start..self.buf.len() - 2];
        let problem = if !is_token(name) {
            Some("the header name must be a token")
        } else if !is_text(value) {
            Some(CONTROL)
        } else {
            match kind_of(name) {
                Kind::OneAddress => address_problem(value),
                Kind::Length => Some("written from the body, never given"),
                Kind::Other => None,
            }
        };
        if let Some(why) = problem {
            self.fail(name, why);
        }
        self
    }

    fn line(&mut self, name: &str, value: impl Value) -> &mut Writer {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        value.write_to(&mut self.buf);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the header section with Content-Length (and Content-Type when there is a body),
    /// unless a value could not be written safely.
    pub fn finish(mut self, body: Option<(&str, &[u8])>) -> Result<Vec<u8>, Unwritable> {
        if let Some(fault) = self.fault.take() {
            return Err(fault);
        }
        match body {
            Some((content_type, body)) => {
                self.header("Content-Type", content_type);
                self.line("Content-Length", u32::try_from(body.len()).unwrap_or(u32::MAX));
                self.buf.extend_from_slice(b"\r\n");
                self.buf.extend_from_slice(body);
            }
            None => self.buf.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        }
        match self.fault {
            Some(fault) => Err(fault),
            None => Ok(self.buf),
        }
    }
}

fn quote(display: &str) -> String {
    format!("\"{}\"", display.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A URI or name-addr is used as written (bare URIs get angle brackets); a user or number
/// becomes `<sip:VALUE@HOST>` (docs/behaviour.md §2.1).
pub fn address(value: &str, display: Option<&str>, host: &str) -> String {
    let value = value.trim();
    if value.starts_with(['<', '"']) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + host.len() + display.map_or(0, |d| d.len() + 3) + 8);
    if let Some(d) = display {
        out.push_str(&quote(d));
        out.push(' ');
    }
    out.push('<');
    if ["sip:", "sips:", "tel:"].iter().any(|s| starts_with_ci(value, s)) {
        out.push_str(value);
    } else if value.contains('@') {
        out.push_str("sip:");
        out.push_str(value);
    } else {
        for part in ["sip:", value, "@", host] {
            out.push_str(part);
        }
    }
    out.push('>');
    out
}

/// The top Via of a response names where the request really came from (RFC 3261 §18.2.1,
/// RFC 3581 §4): `received=IP` when the sent-by host is not the source address, and a bare
/// `rport` filled in with the source port (`received` then always added). `None`: the
/// line is copied as it is, which is the usual case.
fn stamped_via(line: &str, src: SocketAddr) -> Option<String> {
    // The usual Via (no rport, sent-by the source's own address) is recognised without
    // parsing the element: every response checks it.
    let asks_rport = has_rport(line);
    if !asks_rport && sent_by_host(line).is_some_and(|host| is_ip(host, src.ip())) {
        return None;
    }
    let first = split_list(line).next()?;
    let via = Via::parse(first)?;
    let rport = asks_rport && param(via.params, "rport") == Some("");
    let elsewhere = sent_by_host(first).is_none_or(|host| !is_ip(host, src.ip()));
    if !rport && !elsewhere {
        return None;
    }
    let mut out = String::with_capacity(line.len() + 40);
    let head = first.len() - via.params.len();
    out.push_str(&first[..head]);
    for p in via.params.split(';').filter(|p| !p.trim().is_empty()) {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") || (rport && name.eq_ignore_ascii_case("rport")) {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    if rport {
        out.push_str(";rport=");
        out.push_str(itoa::Buffer::new().format(src.port()));
    }
    out.push_str(";received=");
    push_ip(&mut out, src.ip());
    // The other Via elements of the same line, as they were.
    let offset = first.as_ptr() as usize - line.as_ptr() as usize;
    out.push_str(line.get(offset + first.len()..).unwrap_or_default());
    Some(out)
}

/// Whether a Via line has a parameter named `rport` (a `;` then, past white space, the name).
fn has_rport(line: &str) -> bool {
    let mut rest = line.as_bytes();
    while let Some(i) = memchr::memchr(b';', rest) {
        rest = &rest[i + 1..];
        let name = skip_blanks(rest);
        if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"rport") && name.get(5).is_none_or(|b| !is_token_byte(*b))
        {
            return true;
        }
    }
    false
}

/// Whether `host` is `ip` written out: IPv4 compared as `Display` writes it, without parsing.
fn is_ip(host: &str, ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else { return host.parse() == Ok(ip) };
    // One pass over the dotted quad, each number compared with its octet as it ends.
    let mut octets = v4.octets().into_iter();
    let (mut n, mut digits) = (0u32, 0);
    for b in host.bytes() {
        match b {
            b'0'..=b'9' if digits < 3 => {
                n = n * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && octets.next().map(u32::from) == Some(n) => (n, digits) = (0, 0),
            _ => return false,
        }
    }
    digits > 0 && octets.next().map(u32::from) == Some(n) && octets.next().is_none()
}

/// The host of a Via's sent-by: what follows `SIP/2.0/TRANSPORT` and white space, up to a
/// port, a parameter or the next element (an IPv6 reference without its brackets).
fn sent_by_host(via: &str) -> Option<&str> {
    let rest = match via.strip_prefix("SIP/2.0/UDP ") {
        Some(rest) => rest,
        None => {
            let bytes = via.as_bytes();
            let protocol = bytes.iter().position(|&b| !is_blank(b))?;
            let gap = protocol + bytes[protocol..].iter().position(|&b| is_blank(b))?;
            &via[gap + bytes[gap..].iter().position(|&b| !is_blank(b))?..]
        }
    };
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next();
    }
    let end = rest.bytes().position(|b| matches!(b, b':' | b';' | b',' | b' ' | b'\t')).unwrap_or(rest.len());
    Some(&rest[..end])
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
    fn addresses() {
        assert_eq!(address("+15083084809", None, "10.0.0.1:5060"), "<sip:+15083084809@10.0.0.1:5060>");
        assert_eq!(address("SIPS:alice@x.example", None, "h"), "<SIPS:alice@x.example>");
        assert_eq!(address("tel:+4915683084809", None, "h"), "<tel:+4915683084809>");
        assert_eq!(address("alice@example.com", None, "h"), "<sip:alice@example.com>");
        assert_eq!(address("<sip:a@b>;foo=1", None, "h"), "<sip:a@b>;foo=1");
        assert_eq!(address("bot", Some("The \"Bot\""), "h"), "\"The \\\"Bot\\\"\" <sip:bot@h>");
    }

    #[test]
    fn one_address_and_nothing_more() {
        for ok in [
            "<sip:a@b>",
            "\"The \\\"Bot\\\"\" <sip:bot@h>",
            "Bot Name <sip:a@b;transport=tcp?X-Case=1,2>",
            "<tel:+4915683084809>;foo=1 ; bar ; q=\"a,b\";maddr=[2001:db8::1]",
        ] {
            assert_eq!(name_addr_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("sip:a@b", "angle brackets"),
            ("<sip:a@b>, <sip:evil@x>", "comma would add an address"),
            ("<sip:a@b>>", "after the URI"),
            ("<sip:a<b>", "holds white space"),
            ("<sip:a b>", "holds white space"),
            ("\"Bot <sip:a@b>", "never closed"),
            ("\"Bot\" x <sip:a@b>", "followed by <URI>"),
            ("Bo,t <sip:a@b>", "only words"),
            ("<sip:a@b>;x=\"open", "never closed"),
            ("<sip:a@b>;=1", "without a name"),
            ("<>", "empty"),
        ] {
            assert!(name_addr_problem(bad).is_some_and(|p| p.contains(why)), "{bad}: {:?}", name_addr_problem(bad));
        }
    }

    #[test]
    fn a_value_that_would_change_the_message_is_never_written() {
        let fault = |w: Writer| w.finish(None).unwrap_err().to_string();
        let mut w = Writer::request("REFER", "sip:a@b");
        w.header("X-Note", "one\r\nX-Injected: 1");
        assert_eq!(fault(w), "X-Note: contains a control character (CR, LF, NUL...)");
        let mut w = Writer::request("REFER", "sip:a@b");
        w.header("Refer-To", address("sip:a@b>, <sip:evil@x", None, "h"));
        assert!(fault(w).starts_with("Refer-To: after the URI"));
        let mut w = Writer::request("INFO", "sip:a@b");
        w.header("l", "0");
        assert_eq!(fault(w), "l: written from the body, never given");
        let mut w = Writer::request("REFER", "sip:a@b");
        w.header("Bad Name", "v");
        assert_eq!(fault(w), "Bad Name: the header name must be a token");
        assert!(fault(Writer::request("RE FER", "sip:a@b")).starts_with("method"));
        assert!(fault(Writer::request("REFER", "sip:a@b SIP/2.0\r\nX: y")).starts_with("Request-URI"));
        assert!(fault(Writer::response(603, "No\r\nX-Injected: 1")).starts_with("reason phrase"));
        let w = Writer::request("INFO", "sip:a@b");
        assert!(w.finish(Some(("text/plain\r\nX: 1", b"hi"))).unwrap_err().to_string().starts_with("Content-Type"));
        let mut w = Writer::request("REFER", "sip:a@b");
        w.header("Referred-By", address("bot", Some("Bot \"quoted\" name"), "h")).header("X-Tab", "a\tb");
        assert!(w.finish(None).is_ok());
    }

    #[test]
    fn the_top_via_names_where_the_request_came_from() {
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let top = |via: &str| stamped_via(via, src);
        assert_eq!(top("SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK1"), None, "nothing to add");
        assert_eq!(
            top("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1;rport"),
            Some("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1;rport=40000;received=192.0.2.7".into()),
            "RFC 3581 §4: rport filled in, received always"
        );
        assert_eq!(
            top("SIP/2.0/UDP pbx.example;branch=z9hG4bK1, SIP/2.0/UDP h2;branch=z9hG4bK2"),
            Some("SIP/2.0/UDP pbx.example;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP h2;branch=z9hG4bK2".into()),
            "RFC 3261 §18.2.1: received when sent-by is not the source; the other Vias as they were"
        );
        for (host, same) in [("192.0.2.7", true), ("192.0.2.70", false), ("192.0.2", false), ("192.0.2.7.1", false)] {
            assert_eq!(is_ip(host, src.ip()), same, "{host}");
        }
        assert_eq!(sent_by_host("SIP/2.0/TCP  pbx.example:5060;branch=z9hG4bK1"), Some("pbx.example"));
        let v6: SocketAddr = "[2001:db8::1]:5070".parse().unwrap();
        assert_eq!(stamped_via("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1", v6), None);
        let req = parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 10.0.0.2;rport;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n").unwrap();
        let out = Writer::response_to(&req, src, 200, "OK", Some("t")).finish(None).unwrap();
        let resp = parse(&out).unwrap();
        let vias: Vec<_> = resp.lines(Name::Via).map(|h| h.value.to_string()).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=40000;received=192.0.2.7",
                "SIP/2.0/UDP 10.0.0.2;rport;branch=z9hG4bK2"
            ]
        );
    }

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
        let src = "10.0.0.7:5060".parse().unwrap();
        let out = Writer::response_to(&req, src, 200, "OK", Some("t9")).finish(None).unwrap();
        let resp = parse(&out).unwrap();
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.lines(Name::Via).count(), 2);
        assert_eq!(resp.core().unwrap().to.tag(), Some("t9"));
        assert_eq!(resp.get_raw("X-Other"), None);
        assert_eq!(resp.get(Name::ContentLength), Some("0"));
    }
}
