//! Which shard owns a datagram: a pure function of its bytes (docs/architecture.md, "Routing").
//! 1. a response: the shard named in its top Via branch;
//! 2. a request whose To-tag is ours: the shard named in that tag;
//! 3. anything else: a hash of the Call-ID.
//!
//! The receiving shard runs this before parsing, so it is a scan of header lines that reads
//! three headers at most; the owner parses the datagram once.

use baton_proto::sip::{split_list, NameAddr, Via};
use baton_proto::{parse_branch, tag_shard};

/// The shard that owns `data` among `shards`, or `None` when nothing in it names one
/// (no Call-ID): whichever shard received it answers or drops it.
pub fn owner(data: &[u8], shards: u16) -> Option<u16> {
    if shards <= 1 {
        return Some(0);
    }
    let mut lines = Lines { rest: data };
    let first = lines.next()?;
    let response = first.starts_with(b"SIP/");
    let mut call_id = None;
    let mut named = None;
    let mut first_via = true;
    for (name, value) in lines.map_while(header) {
        match name {
            b"via" | b"v" if response && first_via => {
                first_via = false;
                let branch = utf8(value).and_then(|v| split_list(v).next()).and_then(Via::parse);
                named = branch.and_then(|via| via.branch()).and_then(parse_branch).map(|(shard, _)| shard);
            }
            b"to" | b"t" if !response => {
                named = utf8(value).and_then(NameAddr::parse).and_then(|to| to.tag()).and_then(tag_shard);
            }
            b"call-id" | b"i" => call_id = Some(value.trim_ascii()),
            _ => continue,
        }
        if let Some(shard) = named.filter(|s| *s < shards) {
            return Some(shard);
        }
    }
    call_id.filter(|id| !id.is_empty()).map(|id| (fnv1a(id) % u64::from(shards)) as u16)
}

fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// A header line as (lower-cased name if it is one routing reads, value); `None` at the
/// end of the headers. Names routing ignores come back as `b""`.
fn header(line: &[u8]) -> Option<(&'static [u8], &[u8])> {
    if line.is_empty() {
        return None;
    }
    let Some(colon) = memchr::memchr(b':', line) else { return Some((b"", line)) };
    let name = line[..colon].trim_ascii();
    let known: &'static [u8] = match name.len() {
        1 => match name[0].to_ascii_lowercase() {
            b'v' => b"v",
            b't' => b"t",
            b'i' => b"i",
            _ => b"",
        },
        2 if name.eq_ignore_ascii_case(b"to") => b"to",
        3 if name.eq_ignore_ascii_case(b"via") => b"via",
        7 if name.eq_ignore_ascii_case(b"call-id") => b"call-id",
        _ => b"",
    };
    Some((known, &line[colon + 1..]))
}

/// Logical header lines: a line that starts with whitespace continues the one before
/// (RFC 3261 §7.3.1), and CRLF or a bare LF ends a line.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let mut end = 0;
        loop {
            match memchr::memchr(b'\n', &self.rest[end..]) {
                Some(i) => {
                    end += i + 1;
                    let continues = matches!(self.rest.get(end), Some(b' ' | b'\t'));
                    let blank = self.rest[..end].trim_ascii().is_empty();
                    if !continues || blank {
                        break;
                    }
                }
                None => {
                    end = self.rest.len();
                    break;
                }
            }
        }
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line.trim_ascii_end())
    }
}

/// FNV-1a: a stable hash, so a Call-ID always lands on the same shard.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARDS: u16 = 4;

    fn by_call_id(id: &str) -> u16 {
        (fnv1a(id.as_bytes()) % u64::from(SHARDS)) as u16
    }

    #[test]
    fn a_response_goes_to_the_shard_in_its_top_branch() {
        let r = b"SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-bt3-2a-1, SIP/2.0/UDP x;branch=z9hG4bK-bt1-1-1\r\nCall-ID: abc\r\n\r\n";
        assert_eq!(owner(r, SHARDS), Some(3));
        // A second Via header does not count; compact form works.
        let r = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bK-bt2-1-1\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-bt1-1-1\r\ni: x\r\n\r\n";
        assert_eq!(owner(r, SHARDS), Some(2));
    }

    #[test]
    fn a_request_with_our_to_tag_goes_to_the_shard_in_the_tag() {
        let notify = b"NOTIFY sip:baton@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP c;branch=z9hG4bKc1\r\nCall-ID: abc\r\nTo: <sip:baton@10.0.0.1>;tag=bt1-00000000beef\r\n\r\n";
        assert_eq!(owner(notify, SHARDS), Some(1));
        // Folded, compact, mixed case.
        let bye = b"BYE sip:b SIP/2.0\r\nT: <sip:baton@10.0.0.1>\r\n ;tag=bt2-1234\r\nCALL-ID: abc\r\n\r\n";
        assert_eq!(owner(bye, SHARDS), Some(2));
    }

    #[test]
    fn anything_else_goes_by_call_id() {
        let invite =
            b"INVITE sip:b SIP/2.0\nVia: SIP/2.0/UDP c;branch=z9hG4bK-bt2-1-1\nTo: <sip:b>\nCall-ID:  f00@carrier \n\n";
        assert_eq!(owner(invite, SHARDS), Some(by_call_id("f00@carrier")), "a request's Via is the sender's");
        let foreign_tag = b"BYE sip:b SIP/2.0\r\nTo: <sip:b>;tag=as1234\r\nCall-ID: x1\r\n\r\n";
        assert_eq!(owner(foreign_tag, SHARDS), Some(by_call_id("x1")));
        let stray = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKother\r\nCall-ID: x2\r\n\r\n";
        assert_eq!(owner(stray, SHARDS), Some(by_call_id("x2")));
        let too_far = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-bt9-1-1\r\nCall-ID: x3\r\n\r\n";
        assert_eq!(owner(too_far, SHARDS), Some(by_call_id("x3")), "a shard we do not run");
    }

    #[test]
    fn call_ids_spread_over_shards() {
        let mut seen = [0usize; SHARDS as usize];
        for n in 0..400 {
            seen[by_call_id(&format!("{n}-carrier@10.1.1.1")) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
    }

    #[test]
    fn garbage_has_no_owner_and_never_panics() {
        assert_eq!(owner(b"", SHARDS), None);
        assert_eq!(owner(b"\r\n\r\n", SHARDS), None);
        assert_eq!(owner(b"INVITE\r\nVia\r\nTo: \xff\xfe;tag=bt1-1\r\n", SHARDS), None);
        assert_eq!(owner(b"anything", 1), Some(0));
        assert_eq!(owner(b"OPTIONS sip:x SIP/2.0\r\ni:\r\n\r\n", SHARDS), None);
    }
}
