//! Zero-copy SIP parser: a [`Message`] borrows every slice from the datagram.
//! Folded header lines (RFC 3261 §7.3.1) stay in place; typed views trim the CRLF.

use super::header::{cut, find_byte, is_token, is_token_byte, split_list, trim_span, CSeq, Name, NameAddr, Via};
use super::method::Method;
use super::scan::Lines;
use smallvec::SmallVec;
use std::fmt;

/// Headers kept inline before the parser spills to the heap.
const INLINE_HEADERS: usize = 24;

/// One header line, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header, when baton knows it ([`Name::Other`] otherwise).
    pub name: Name,
    /// The name as written (long or compact form, any case).
    pub raw_name: &'a str,
    /// Raw value; may contain the CRLF of folded lines.
    pub value: &'a str,
}

/// A request line or a status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD uri SIP/2.0`.
    Request {
        /// The method as written ([`crate::sip::Core::method`] has it read).
        method: &'a str,
        /// The Request-URI.
        uri: &'a str,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: &'a str,
    },
}

/// A SIP message, every part of it borrowed from the buffer it was parsed from.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// The first line.
    pub start: StartLine<'a>,
    /// `SIP/2.0` for anything baton can process; a request with another version is kept so
    /// it can be answered 505 (RFC 3261 §8.2.2).
    pub version: &'a str,
    /// The headers, in order.
    pub headers: SmallVec<[Header<'a>; INLINE_HEADERS]>,
    /// The body: as long as Content-Length says, or the rest of the datagram without one.
    pub body: &'a [u8],
}

pub use super::error::ParseError;

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most header lines in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_headers: 128 }
    }
}

/// Parses one whole message (a datagram, or what [`crate::sip::frame`] cut from a stream).
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    parse_with(buf, Limits::default())
}

/// [`parse`] under `limits`.
#[inline]
pub fn parse_with(buf: &[u8], limits: Limits) -> Result<Message<'_>, ParseError> {
    // Leading CRLFs are keep-alives or stray line ends (RFC 3261 §7.5).
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').ok_or(ParseError::Empty)?;
    let buf = &buf[start..];

    // One pass over the header section, line by line.
    let mut lines = Lines::new(buf);
    let (first_start, first_end) = lines.next_line()?.ok_or(ParseError::NoHeaderEnd)?;
    let (start, version) = parse_start_line(lines.text(first_start, first_end).ok_or(ParseError::NotUtf8)?)?;
    // Headers go straight into the message: no second array of most of a kilobyte to move.
    let mut msg = Message { start, version, headers: SmallVec::new(), body: &[] };
    // Where the last header's value starts: a folded line extends it.
    let mut value_start = None;
    while let Some((line_start, line_end)) = lines.next_line()? {
        let line = &buf[line_start..line_end];
        let text = |start, end| lines.text(start, end).ok_or(ParseError::NotUtf8);
        if matches!(line[0], b' ' | b'\t') {
            // Folded continuation: the last header's value runs on over this line.
            let (start, last) = value_start.zip(msg.headers.last_mut()).ok_or(ParseError::BadHeaderLine)?;
            let (start, end) = trim_span(buf, start, line_end);
            last.value = text(start, end)?;
            continue;
        }
        if msg.headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        // The name is what precedes the colon, less white space before it. A name baton
        // knows is made of token characters; any other is checked byte by byte.
        let colon = line.iter().position(|&b| b == b':').ok_or(ParseError::BadHeaderLine)?;
        let name_len = line[..colon].iter().rposition(|&b| !matches!(b, b' ' | b'\t')).map_or(0, |i| i + 1);
        let name = Name::lookup_at(buf, line_start, name_len);
        if name_len == 0 || name == Name::Other && !line[..name_len].iter().all(|&b| is_token_byte(b)) {
            return Err(ParseError::BadHeaderLine);
        }
        let start = line_start + colon + 1;
        let (value_start_trimmed, value_end) = trim_span(buf, start, line_end);
        let (raw_name, value) = (text(line_start, line_start + name_len)?, text(value_start_trimmed, value_end)?);
        msg.headers.push(Header { name, raw_name, value });
        value_start = Some(start);
    }
    let body_all = lines.rest();

    let mut body = body_all;
    let mut lengths = msg.headers.iter().filter(|h| h.name == Name::ContentLength).map(|h| h.value);
    if let Some(cl) = lengths.next() {
        let n = content_length(cl).ok_or(ParseError::BadContentLength)?;
        if lengths.any(|other| other != cl) {
            return Err(ParseError::BadContentLength);
        }
        body = body_all.get(..n).ok_or(ParseError::TruncatedBody)?;
    }
    msg.body = body;
    Ok(msg)
}

/// `Content-Length = 1*DIGIT` (RFC 3261 §20.14): no sign, no white space inside.
fn content_length(value: &str) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.bytes().try_fold(0usize, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(usize::from(b - b'0')),
        _ => None,
    })
}

fn parse_start_line(line: &str) -> Result<(StartLine<'_>, &str), ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = split_space(rest).ok_or(ParseError::BadStartLine)?;
        if version != "2.0" {
            return Err(ParseError::BadVersion);
        }
        let (code, reason) = split_space(rest).unwrap_or((rest, ""));
        // Exactly three digits (no sign, padding or more digits), 100 to 699.
        let code = match code.as_bytes() {
            &[a @ b'1'..=b'6', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::BadStartLine),
        };
        return Ok((StartLine::Response { code, reason }, "SIP/2.0"));
    }
    let Some((method, (uri, version))) = split_space(line).and_then(|(m, rest)| Some((m, split_space(rest)?))) else {
        return Err(ParseError::BadStartLine);
    };
    if version.bytes().any(|b| b == b' ') {
        return Err(ParseError::BadStartLine);
    }
    if !is_token(method) || !is_request_uri(uri) {
        return Err(ParseError::BadStartLine);
    }
    let numbers = version.strip_prefix("SIP/").and_then(|v| cut(v, b'.'));
    let well_formed = numbers.is_some_and(|(major, minor)| {
        [major, minor].iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if !well_formed {
        return Err(ParseError::BadVersion);
    }
    Ok((StartLine::Request { method, uri }, version))
}

/// `s` split around its first space: start-line fields are short, and a plain scan costs
/// less than a vector search's set-up.
fn split_space(s: &str) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == b' ')?;
    // A space is one byte: both sides are char boundaries.
    Some((&s[..i], &s[i + 1..]))
}

/// An absolute URI (`scheme:...`); a SIP or SIPS one without a headers part, which RFC 3261
/// §19.1.1 does not allow in a Request-URI.
fn is_request_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = cut(uri, b':') else { return false };
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    // `?` may appear in the user part; after the host it starts the (forbidden) headers.
    let after_user = rest.bytes().rposition(|b| b == b'@').map_or(rest, |at| &rest[at + 1..]);
    scheme_ok && !rest.is_empty() && !(sip && find_byte(after_user, b'?').is_some())
}

/// Why a parsed message still cannot be processed (answered 400 when it is a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A header every message needs is not there.
    Missing(&'static str),
    /// A header is there but cannot be read.
    Malformed(&'static str),
    /// The CSeq names another method than the request line.
    CSeqMethodMismatch,
    /// A header that must be single appears twice.
    Duplicate(&'static str),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Missing(h) => write!(f, "Missing {h} Header"),
            Invalid::Malformed(h) => write!(f, "Malformed {h} Header"),
            Invalid::CSeqMethodMismatch => f.write_str("CSeq Method Does Not Match Request"),
            Invalid::Duplicate(h) => write!(f, "More Than One {h} Header"),
        }
    }
}

/// The fields every request or response must carry, checked once.
#[derive(Clone, Copy, Debug)]
pub struct Core<'a> {
    /// `Call-ID`.
    pub call_id: &'a str,
    /// `CSeq`.
    pub cseq: CSeq<'a>,
    /// The top Via.
    pub via: Via<'a>,
    /// `From`.
    pub from: NameAddr<'a>,
    /// `To`.
    pub to: NameAddr<'a>,
    /// A request's method, read once; for a response, the method it answers (its CSeq's).
    pub method: Method,
}

impl<'a> Message<'a> {
    /// A request's method; `None` for a response.
    pub fn method(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// A response's status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (empty for a request).
    pub fn reason(&self) -> &'a str {
        match self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    /// The first value of a known header.
    pub fn get(&self, name: Name) -> Option<&'a str> {
        self.headers.iter().find(|h| h.name == name).map(|h| h.value)
    }

    /// The first value of a header by name, any case (long form only).
    pub fn get_raw(&self, raw: &str) -> Option<&'a str> {
        self.headers.iter().find(|h| h.raw_name.eq_ignore_ascii_case(raw)).map(|h| h.value)
    }

    /// Every value of a header, with comma-separated lists split into elements.
    pub fn all(&self, name: Name) -> impl Iterator<Item = &'a str> + '_ {
        self.headers.iter().filter(move |h| h.name == name).flat_map(|h| split_list(h.value))
    }

    /// Raw header lines of one kind, in order (used to copy Via and Record-Route verbatim).
    pub fn lines(&self, name: Name) -> impl Iterator<Item = &Header<'a>> + '_ {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// Checks the mandatory headers (RFC 3261 §8.1.1) and returns their typed views,
    /// in one pass over the headers.
    pub fn core(&self) -> Result<Core<'a>, Invalid> {
        let (mut via, mut call_id, mut cseq, mut from, mut to) = (None, None, None, None, None);
        for h in self.headers.iter() {
            let (slot, label) = match h.name {
                Name::Via => {
                    via = via.or(Some(h.value));
                    continue;
                }
                Name::CallId => (&mut call_id, "Call-ID"),
                Name::CSeq => (&mut cseq, "CSeq"),
                Name::From => (&mut from, "From"),
                Name::To => (&mut to, "To"),
                _ => continue,
            };
            if slot.replace(h.value).is_some() {
                return Err(Invalid::Duplicate(label));
            }
        }
        let top_via = via.and_then(|v| split_list(v).next()).ok_or(Invalid::Missing("Via"))?;
        let via = Via::parse(top_via).ok_or(Invalid::Malformed("Via"))?;
        let call_id = call_id.ok_or(Invalid::Missing("Call-ID"))?;
        if call_id.is_empty() || call_id.contains(char::is_whitespace) {
            return Err(Invalid::Malformed("Call-ID"));
        }
        let cseq = CSeq::parse(cseq.ok_or(Invalid::Missing("CSeq"))?).ok_or(Invalid::Malformed("CSeq"))?;
        let method = Method::of(self.method().unwrap_or(cseq.method));
        if let Some(named) = self.method() {
            if named != cseq.method && !(method == Method::Ack && cseq.method == "INVITE") {
                return Err(Invalid::CSeqMethodMismatch);
            }
        }
        let from = NameAddr::parse(from.ok_or(Invalid::Missing("From"))?).ok_or(Invalid::Malformed("From"))?;
        let to = NameAddr::parse(to.ok_or(Invalid::Missing("To"))?).ok_or(Invalid::Malformed("To"))?;
        Ok(Core { call_id, cseq, via, from, to, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFY: &[u8] = b"NOTIFY sip:baton@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-n1\r\n\
f: <sip:carrier@127.0.0.1>;tag=c1\r\n\
t: <sip:bot@127.0.0.1>;tag=b1\r\n\
i: abc@127.0.0.1\r\n\
CSeq: 2 NOTIFY\r\n\
o: Refer;id=1\r\n\
Subscription-State: active;expires=60\r\n\
Subject: folded\r\n  second line\r\n\
c: message/sipfrag;version=2.0\r\n\
l: 21\r\n\
\r\n\
SIP/2.0 180 Ringing\r\n";

    #[test]
    fn parses_compact_notify_with_folding() {
        let m = parse(NOTIFY).unwrap();
        assert_eq!(m.method(), Some("NOTIFY"));
        assert_eq!(m.get(Name::Event), Some("Refer;id=1"));
        assert_eq!(m.get_raw("subject"), Some("folded\r\n  second line"));
        assert_eq!(m.body, b"SIP/2.0 180 Ringing\r\n");
        let core = m.core().unwrap();
        assert_eq!(core.call_id, "abc@127.0.0.1");
        assert_eq!(core.cseq.seq, 2);
        assert_eq!(core.to.tag(), Some("b1"));
        assert_eq!(core.via.branch(), Some("z9hG4bK-n1"));
    }

    #[test]
    fn rejects_what_it_must() {
        assert_eq!(parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n").unwrap_err(), ParseError::NoHeaderEnd);
        assert_eq!(parse(b"INVITE sip:a@b SIP/3.0\r\n\r\n").unwrap().version, "SIP/3.0");
        assert_eq!(parse(b"INVITE sip:a@b SIP/x\r\n\r\n").unwrap_err(), ParseError::BadVersion);
        assert_eq!(parse(b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n").unwrap_err(), ParseError::BadHeaderLine);
        assert_eq!(parse(b"INVITE sip:a@b SIP/2.0\r\nl: 99\r\n\r\nshort").unwrap_err(), ParseError::TruncatedBody);
        assert_eq!(parse(b"INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n").unwrap_err(), ParseError::BadContentLength);
        // RFC 3261 §20.14: 1*DIGIT, so no sign, and no overflow into a small number.
        assert_eq!(parse(b"INVITE sip:a@b SIP/2.0\r\nl: +0\r\n\r\n").unwrap_err(), ParseError::BadContentLength);
        let huge = b"INVITE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n";
        assert_eq!(parse(huge).unwrap_err(), ParseError::BadContentLength);
        assert_eq!(parse(b"SIP/2.0 99 Low\r\n\r\n").unwrap_err(), ParseError::BadStartLine);
        let many = format!("OPTIONS sip:a@b SIP/2.0\r\n{}\r\n", "X-A: 1\r\n".repeat(200));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), ParseError::TooManyHeaders);
    }

    /// The header section is UTF-8 (RFC 3261 §7.3.1 allows it in quoted strings and text);
    /// anything else there is refused, while a body may be any bytes.
    #[test]
    fn utf8_headers_are_read_other_bytes_refused() {
        let long = "x".repeat(70);
        let text = format!("MESSAGE sip:a@b SIP/2.0\r\nX-Pad: {long}\r\nFrom: \"Zo\u{eb}\" <sip:z@b>;tag=1\r\nSubject: caf\u{e9}\r\n\r\n");
        let m = parse(text.as_bytes()).unwrap();
        assert_eq!(m.get(Name::From), Some("\"Zo\u{eb}\" <sip:z@b>;tag=1"));
        assert_eq!(m.get_raw("subject"), Some("caf\u{e9}"));
        assert_eq!(m.get_raw("x-pad"), Some(long.as_str()));
        assert_eq!(parse(b"MESSAGE sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\n\r\n").unwrap_err(), ParseError::NotUtf8);
        assert_eq!(parse(b"SIP/2.0 200 OK\r\nl: 2\r\n\r\n\xff\xfe").unwrap().body, b"\xff\xfe");
    }

    #[test]
    fn core_reports_missing_and_mismatched() {
        let m = parse(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\r\n").unwrap();
        assert_eq!(m.core().unwrap_err(), Invalid::CSeqMethodMismatch);
        let m = parse(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 BYE\r\n\r\n").unwrap();
        assert_eq!(m.core().unwrap_err(), Invalid::Missing("Call-ID"));
    }

    /// RFC 3261 §7: an empty line ends the header section; what follows is body, even if
    /// it looks like headers (rsip 0.4 sometimes reads on).
    #[test]
    fn the_first_empty_line_ends_the_headers() {
        let m = parse(b"BYE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>\r\n\r\nTo: <sip:z@w>\r\n\r\n").unwrap();
        assert_eq!(m.headers.len(), 1);
        assert_eq!(m.body, b"To: <sip:z@w>\r\n\r\n");
    }

    /// RFC 3261 §7.1: "The method names are case-sensitive" (rsip 0.4 folds them).
    #[test]
    fn methods_are_case_sensitive() {
        let m = parse(b"iNVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some("iNVITE"));
    }

    /// RFC 3261 §18.3: over UDP, without Content-Length the body is the rest of the
    /// datagram, line breaks included (rsip 0.4 drops leading and trailing ones).
    #[test]
    fn udp_body_without_content_length_keeps_its_line_breaks() {
        let m = parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n\r\n").unwrap();
        assert_eq!(m.body, b"\r\n");
        let m = parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n\r\nv=0\r\n").unwrap();
        assert_eq!(m.body, b"\r\nv=0\r\n");
    }

    #[test]
    fn body_without_content_length_runs_to_the_end() {
        let m = parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\nv=0\r\n").unwrap();
        assert_eq!((m.status(), m.body), (Some(200), &b"v=0\r\n"[..]));
    }
}

#[cfg(test)]
mod seeds {
    /// Every message SIPp and baton exchanged in the scenarios parses (fuzz/seeds/parse).
    #[test]
    fn every_captured_message_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/parse");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let msg = super::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            msg.core().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n > 50, "only {n} seeds");
    }
}
