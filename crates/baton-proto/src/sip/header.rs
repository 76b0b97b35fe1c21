//! Header names (with RFC 3261 §7.3.3 compact forms) and typed views over header values.
//! Every view borrows from the datagram; nothing here allocates.

/// The headers baton reads or must refuse to let an application set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Name {
    /// The path a request took; responses retrace it.
    Via,
    /// The request's originator, with its tag.
    From,
    /// The request's recipient, with the answerer's tag.
    To,
    /// `Call-ID`: one dialog's identifier.
    CallId,
    /// The request's sequence number and method.
    CSeq,
    /// Where the sender takes requests of the dialog.
    Contact,
    /// The body's length (compact `l`).
    ContentLength,
    /// The body's media type (compact `c`).
    ContentType,
    /// Hops a request may still take.
    MaxForwards,
    /// The event package of a NOTIFY (`refer`), RFC 6665.
    Event,
    /// Whether a subscription is active or terminated, RFC 6665.
    SubscriptionState,
    /// The REFER's target, RFC 3515.
    ReferTo,
    /// Who asked for the transfer, RFC 3892.
    ReferredBy,
    /// `Refer-Sub: false`: no NOTIFYs wanted or sent, RFC 4488.
    ReferSub,
    /// Proxies that stay on the dialog's path.
    RecordRoute,
    /// The route set a request follows.
    Route,
    /// The caller's identity as a trusted network asserts it, RFC 3325.
    PAssertedIdentity,
    /// Any other header: read by its raw name.
    Other,
}

impl Name {
    /// Case-insensitive lookup that also knows the compact forms.
    pub fn lookup(raw: &str) -> Name {
        match raw.len() {
            1..=16 => {
                let mut bytes = [0u8; 16];
                bytes[..raw.len()].copy_from_slice(raw.as_bytes());
                Name::packed(u128::from_le_bytes(bytes), raw.len())
            }
            18 if raw.eq_ignore_ascii_case("subscription-state") => Name::SubscriptionState,
            19 if raw.eq_ignore_ascii_case("p-asserted-identity") => Name::PAssertedIdentity,
            _ => Name::Other,
        }
    }

    /// [`Name::lookup`] of the `len` bytes at `start` of a header section, reading them as
    /// one 16-byte load when the buffer reaches that far (it nearly always does: the value
    /// follows the name).
    #[inline]
    pub fn lookup_at(head: &[u8], start: usize, len: usize) -> Name {
        let window = head.get(start..start + 16).and_then(|w| <[u8; 16]>::try_from(w).ok());
        match window {
            Some(w) if (1..=16).contains(&len) => Name::packed(u128::from_le_bytes(w) & LOW_BYTES[len], len),
            _ => {
                head.get(start..start + len).and_then(|n| std::str::from_utf8(n).ok()).map_or(Name::Other, Name::lookup)
            }
        }
    }

    /// A name of 1 to 16 bytes, as a little-endian word with zeros past its end: one hash,
    /// then one 128-bit compare of the name's bytes with the ASCII case bit set against the
    /// lower-case name, plus an exact check of its dashes (CR also folds to `-`).
    #[inline]
    fn packed(word: u128, len: usize) -> Name {
        let folded = word | (CASE_BIT & LOW_BYTES[len]);
        let candidate = &SLOTS[slot(folded, len)];
        if candidate.len == len
            && folded == candidate.lower
            && word & candidate.dashes == candidate.lower & candidate.dashes
        {
            candidate.name
        } else {
            Name::Other
        }
    }
}

/// The names of 1 to 16 bytes, compact forms included, lower case.
const PACKED: [(&str, Name); 25] = [
    ("v", Name::Via),
    ("f", Name::From),
    ("t", Name::To),
    ("i", Name::CallId),
    ("m", Name::Contact),
    ("l", Name::ContentLength),
    ("c", Name::ContentType),
    ("o", Name::Event),
    ("r", Name::ReferTo),
    ("b", Name::ReferredBy),
    ("to", Name::To),
    ("via", Name::Via),
    ("from", Name::From),
    ("cseq", Name::CSeq),
    ("event", Name::Event),
    ("route", Name::Route),
    ("call-id", Name::CallId),
    ("contact", Name::Contact),
    ("refer-to", Name::ReferTo),
    ("refer-sub", Name::ReferSub),
    ("referred-by", Name::ReferredBy),
    ("content-type", Name::ContentType),
    ("max-forwards", Name::MaxForwards),
    ("record-route", Name::RecordRoute),
    ("content-length", Name::ContentLength),
];

/// Where a (folded) name of `len` bytes sits in [`SLOTS`]: a multiplicative hash of its
/// first eight bytes and its length. The multiplier was searched for one that gives every
/// name of [`PACKED`] a slot of its own; building [`SLOTS`] fails to compile otherwise.
const fn slot(folded: u128, len: usize) -> usize {
    ((folded as u64 ^ len as u64).wrapping_mul(0x1354_64b9_a582_aa53) >> 59) as usize
}

const SLOTS: [Packed; 32] = {
    let mut slots = [Packed { lower: 0, dashes: 0, len: 0, name: Name::Other }; 32];
    let mut i = 0;
    while i < PACKED.len() {
        let (lower, name) = PACKED[i];
        let packed = Packed::new(lower, name);
        let at = slot(packed.lower, packed.len);
        assert!(slots[at].len == 0, "two header names share a slot: search for another multiplier");
        slots[at] = packed;
        i += 1;
    }
    slots
};

/// The low `n` bytes of a word set, by `n` (0 to 16).
const LOW_BYTES: [u128; 17] = {
    let mut masks = [0u128; 17];
    let mut n = 1;
    while n < 16 {
        masks[n] = (1u128 << (8 * n)) - 1;
        n += 1;
    }
    masks[16] = u128::MAX;
    masks
};

/// The ASCII case bit of every byte: set, it lower-cases a letter and leaves `-` and digits.
const CASE_BIT: u128 = u128::from_le_bytes([0x20; 16]);

/// A lower-case header name of at most 16 bytes as one little-endian word.
#[derive(Clone, Copy)]
struct Packed {
    lower: u128,
    /// 0xff at each `-`.
    dashes: u128,
    /// 0 in an empty slot, which no name of 1 to 16 bytes matches.
    len: usize,
    name: Name,
}

impl Packed {
    const fn new(lower: &str, name: Name) -> Packed {
        let b = lower.as_bytes();
        let (mut word, mut dashes, mut i) = (0u128, 0u128, 0);
        while i < b.len() {
            word |= (b[i] as u128) << (8 * i);
            if b[i] == b'-' {
                dashes |= 0xff << (8 * i);
            }
            i += 1;
        }
        Packed { lower: word, dashes, len: b.len(), name }
    }
}

/// RFC 3261 `token` characters, as a table: names are checked on every header line.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        i += 1;
    }
    t
};

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

pub fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Where ASCII byte `b` first occurs in `s` (memchr: a `char` pattern would set up a
/// searcher each time, and parameter lists are long enough for a vector scan to pay).
pub fn find_byte(s: &str, b: u8) -> Option<usize> {
    memchr::memchr(b, s.as_bytes())
}

/// `s` split around the first ASCII byte `b`.
pub fn cut(s: &str, b: u8) -> Option<(&str, &str)> {
    // `b` is ASCII, so both sides of it are char boundaries.
    find_byte(s, b).map(|i| (&s[..i], &s[i + 1..]))
}

/// Trims SIP linear white space, including the CRLF of a folded line.
pub fn trim_lws(s: &str) -> &str {
    let (start, end) = trim_span(s.as_bytes(), 0, s.len());
    // Both ends sit next to ASCII bytes, so they are char boundaries.
    &s[start..end]
}

/// [`trim_lws`] of `bytes[start..end]`, as the trimmed span's bounds.
#[inline]
pub fn trim_span(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    let lws = |i: usize| matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n'));
    while start < end && lws(start) {
        start += 1;
    }
    while end > start && lws(end - 1) {
        end -= 1;
    }
    (start, end)
}

/// Splits a comma-separated header value into its elements, respecting quoted strings and
/// angle-bracketed URIs (a comma inside `<sip:a,b>` does not split).
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let s = rest?;
        // Most values hold one element and no quotes or brackets: one vector scan says so.
        let plain = memchr::memchr3(b',', b'"', b'<', s.as_bytes()).is_none();
        let item = match if plain { None } else { scan_unquoted(s, |b, in_angle| b == b',' && !in_angle) } {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                &s[..i]
            }
            None => {
                rest = None;
                s
            }
        };
        let item = trim_lws(item);
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Index of the first byte outside quoted strings for which `stop(byte, inside <...>)` holds.
fn scan_unquoted(s: &str, stop: impl Fn(u8, bool) -> bool) -> Option<usize> {
    let (mut quoted, mut angle) = (false, false);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            _ if quoted => {}
            _ if stop(b, angle) => return Some(i),
            b'<' => angle = true,
            b'>' => angle = false,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Looks up `name` in a `;a=b;c` parameter list (case-insensitive names). A parameter
/// without a value yields `Some("")`.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    let bytes = params.as_bytes();
    let mut start = 0;
    loop {
        // A name runs to `=` or `;` and is short: a plain scan. A value (a branch, a tag)
        // can be long, and is skipped with `find_byte`.
        let name_end = bytes[start..].iter().position(|&b| b == b'=' || b == b';').map_or(bytes.len(), |i| start + i);
        let has_value = bytes.get(name_end) == Some(&b'=');
        let end = match has_value {
            true => find_byte(&params[name_end + 1..], b';').map_or(bytes.len(), |i| name_end + 1 + i),
            false => name_end,
        };
        let (key_start, key_end) = trim_span(bytes, start, name_end);
        if bytes[key_start..key_end].eq_ignore_ascii_case(name.as_bytes()) {
            if !has_value {
                return Some("");
            }
            let (mut value_start, mut value_end) = trim_span(bytes, name_end + 1, end);
            while value_start < value_end && bytes[value_start] == b'"' {
                value_start += 1;
            }
            while value_end > value_start && bytes[value_end - 1] == b'"' {
                value_end -= 1;
            }
            // Every bound sits next to an ASCII byte (`;`, `=`, white space, a quote) or
            // at an end: a char boundary.
            return Some(&params[value_start..value_end]);
        }
        if end >= bytes.len() {
            return None;
        }
        start = end + 1;
    }
}

/// `CSeq: 314159 INVITE`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number.
    pub seq: u32,
    /// The method it numbers.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Reads `314159 INVITE`; `None` unless both are there and nothing else is.
    pub fn parse(value: &'a str) -> Option<CSeq<'a>> {
        let mut it = trim_lws(value).split_ascii_whitespace();
        let seq = it.next()?.parse().ok()?;
        let method = it.next()?;
        (it.next().is_none() && is_token(method)).then_some(CSeq { seq, method })
    }
}

/// `"Display" <uri>;params` or `uri;params` (From, To, Contact, Refer-To, P-Asserted-Identity...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, without its quotes.
    pub display: Option<&'a str>,
    /// The address, without its angle brackets.
    pub uri: &'a str,
    /// Header parameters after the URI, starting with `;` (empty when none).
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Reads one name-addr or addr-spec; `None` when it is neither.
    pub fn parse(value: &'a str) -> Option<NameAddr<'a>> {
        let v = trim_lws(value);
        // Without a quote before it, the first `<` is the one (a vector scan finds both).
        let lt = match memchr::memchr2(b'<', b'"', v.as_bytes()) {
            Some(i) if v.as_bytes()[i] == b'"' => scan_unquoted(v, |b, _| b == b'<'),
            found => found,
        };
        if let Some(lt) = lt {
            let close = lt + find_byte(&v[lt..], b'>')?;
            let display = trim_lws(&v[..lt]);
            let display = display.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(display);
            let display = (!display.is_empty()).then_some(display);
            let uri = trim_lws(&v[lt + 1..close]);
            let params = trim_lws(&v[close + 1..]);
            return (!uri.is_empty()).then_some(NameAddr { display, uri, params });
        }
        if v.starts_with('"') {
            return None;
        }
        // Without angle brackets, parameters belong to the header, not the URI (RFC 3261 §20).
        let (uri, params) = match find_byte(v, b';') {
            Some(i) => (trim_lws(&v[..i]), &v[i..]),
            None => (v, ""),
        };
        (!uri.is_empty() && !uri.bytes().any(|b| b.is_ascii_whitespace())).then_some(NameAddr {
            display: None,
            uri,
            params,
        })
    }

    /// The `tag` parameter, when it has a value.
    pub fn tag(&self) -> Option<&'a str> {
        // Most From and To headers carry the tag alone, written `;tag=`: read it without
        // the general parameter scan (every in-dialog message compares two tags).
        if let Some(rest) = self.params.strip_prefix(";tag=") {
            if !rest.bytes().any(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'"')) {
                return (!rest.is_empty()).then_some(rest);
            }
        }
        param(self.params, "tag").filter(|t| !t.is_empty())
    }
}

/// One Via element: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// `UDP`, `TCP`, `TLS`... as written.
    pub transport: &'a str,
    /// `host[:port]` of the hop that sent it.
    pub sent_by: &'a str,
    /// Its parameters, starting with `;` (empty when none).
    pub params: &'a str,
}

impl<'a> Via<'a> {
    /// Reads one Via element (`SIP/2.0/UDP host;params`).
    pub fn parse(element: &'a str) -> Option<Via<'a>> {
        let v = trim_lws(element);
        let (proto, rest) = cut(v, b'/')?;
        let (version, rest) = cut(rest, b'/')?;
        if !trim_lws(proto).eq_ignore_ascii_case("SIP") || trim_lws(version) != "2.0" {
            return None;
        }
        let rest = trim_lws(rest);
        let split = rest.bytes().position(|b| b.is_ascii_whitespace())?;
        let transport = &rest[..split];
        let rest = trim_lws(&rest[split..]);
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(i) => (trim_lws(&rest[..i]), &rest[i..]),
            None => (rest, ""),
        };
        (is_token(transport) && !sent_by.is_empty()).then_some(Via { transport, sent_by, params })
    }

    /// The `branch` parameter: the transaction the hop started.
    pub fn branch(&self) -> Option<&'a str> {
        param(self.params, "branch").filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_by_name() {
        let p = ";Branch=z9hG4bK1 ; rport;received = 10.0.0.1;;tag=\"q\";lr";
        assert_eq!(param(p, "branch"), Some("z9hG4bK1"));
        assert_eq!(param(p, "RPORT"), Some(""));
        assert_eq!(param(p, "received"), Some("10.0.0.1"));
        assert_eq!(param(p, "tag"), Some("q"));
        assert_eq!(param(p, "lr"), Some(""));
        assert_eq!(param(p, "maddr"), None);
        assert_eq!(param("", "tag"), None);
        assert_eq!(param("tag", "tag"), Some(""), "a lone name");
        assert_eq!(param(";x=\"\u{e9}\";tag=a", "x"), Some("\u{e9}"));
    }

    #[test]
    fn compact_and_long_names() {
        assert_eq!(Name::lookup("i"), Name::CallId);
        assert_eq!(Name::lookup("CALL-ID"), Name::CallId);
        assert_eq!(Name::lookup("o"), Name::Event);
        assert_eq!(Name::lookup("r"), Name::ReferTo);
        assert_eq!(Name::lookup("X-Foo"), Name::Other);
        assert_eq!(Name::lookup("Subscription-STATE"), Name::SubscriptionState);
        assert_eq!(Name::lookup("p-asserted-identity"), Name::PAssertedIdentity);
        for len in 0..40 {
            assert_eq!(Name::lookup(&"x".repeat(len)), Name::Other, "a name of {len} bytes");
        }
        // In a header section, with and without 16 bytes to read past the name's start.
        for raw in ["Via", "CALL-ID", "t", "Content-Length", "X-Custom-Header-Name", "Max-Forwards", "From"] {
            for tail in [": SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n", ":x"] {
                let head = format!("{raw}{tail}");
                assert_eq!(Name::lookup_at(head.as_bytes(), 0, raw.len()), Name::lookup(raw), "{head:?}");
                let shifted = format!("To: a\r\n{head}");
                assert_eq!(Name::lookup_at(shifted.as_bytes(), 7, raw.len()), Name::lookup(raw), "{shifted:?}");
            }
        }
    }

    #[test]
    fn lookup_agrees_with_a_plain_case_insensitive_compare() {
        let long = [("subscription-state", Name::SubscriptionState), ("p-asserted-identity", Name::PAssertedIdentity)];
        let names: Vec<(&str, Name)> = PACKED.iter().copied().chain(long).collect();
        let mut rng = fastrand::Rng::with_seed(3);
        for &(lower, name) in &names {
            // Every mix of cases matches.
            for _ in 0..20 {
                let mixed: String =
                    lower.chars().map(|c| if rng.bool() { c.to_ascii_uppercase() } else { c }).collect();
                assert_eq!(Name::lookup(&mixed), name, "{mixed}");
            }
            // One byte off never does: another letter, a CR for the dash, a case-bit twin.
            for i in 0..lower.len() {
                for byte in [b'\r', b'_', b'.', b'x', b'0', lower.as_bytes()[i] ^ 0x20 ^ 0x40] {
                    let mut bytes = lower.as_bytes().to_vec();
                    if bytes[i].eq_ignore_ascii_case(&byte) {
                        continue;
                    }
                    bytes[i] = byte;
                    let Ok(other) = std::str::from_utf8(&bytes) else { continue };
                    let want = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(other)).map_or(Name::Other, |p| p.1);
                    assert_eq!(Name::lookup(other), want, "{other:?}");
                }
            }
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""Bob, Jr" <sip:bob@b.example;transport=udp>;tag=abc"#).unwrap();
        assert_eq!(n.display, Some("Bob, Jr"));
        assert_eq!(n.uri, "sip:bob@b.example;transport=udp");
        assert_eq!(n.tag(), Some("abc"));
        let n = NameAddr::parse("sip:bob@b.example;tag=xyz").unwrap();
        assert_eq!((n.uri, n.tag()), ("sip:bob@b.example", Some("xyz")));
        assert!(NameAddr::parse("<>").is_none());
    }

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        let v: Vec<_> = split_list(r#"<sip:a,b@x>, "x,y" <sip:c@d> ,, sip:e@f"#).collect();
        assert_eq!(v, vec!["<sip:a,b@x>", r#""x,y" <sip:c@d>"#, "sip:e@f"]);
    }

    #[test]
    fn via_and_cseq() {
        let v = Via::parse("SIP / 2.0 / UDP 10.0.0.1:5060 ;branch=z9hG4bK1;rport").unwrap();
        assert_eq!((v.transport, v.sent_by, v.branch()), ("UDP", "10.0.0.1:5060", Some("z9hG4bK1")));
        assert_eq!(CSeq::parse(" 7 NOTIFY "), Some(CSeq { seq: 7, method: "NOTIFY" }));
        assert_eq!(CSeq::parse("-1 NOTIFY"), None);
        assert_eq!(CSeq::parse("1 NO TIFY"), None);
    }
}
