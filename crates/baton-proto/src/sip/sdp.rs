//! Signalling-only SDP (RFC 3264): baton answers every offered stream with the first
//! offered codec and a configured direction, and carries no media.

use super::write::push_ip;
use std::net::IpAddr;

/// The `a=` direction of the streams baton answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `a=inactive`: no media either way (baton carries none).
    Inactive,
    /// `a=sendrecv`.
    Sendrecv,
    /// `a=sendonly`.
    Sendonly,
    /// `a=recvonly`.
    Recvonly,
}

impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Direction, String> {
        match s {
            "inactive" => Ok(Direction::Inactive),
            "sendrecv" => Ok(Direction::Sendrecv),
            "sendonly" => Ok(Direction::Sendonly),
            "recvonly" => Ok(Direction::Recvonly),
            _ => Err(format!("{s:?} is not a direction (inactive, sendrecv, sendonly, recvonly)")),
        }
    }
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::Inactive => "a=inactive",
            Direction::Sendrecv => "a=sendrecv",
            Direction::Sendonly => "a=sendonly",
            Direction::Recvonly => "a=recvonly",
        }
    }
}

/// Port written in our streams: 9 (discard) since nothing listens for media.
const NO_MEDIA_PORT: &str = "9";

fn session_header(out: &mut String, ip: IpAddr, session: u64) {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut n = itoa::Buffer::new();
    let session = n.format(session);
    for part in ["v=0\r\no=baton ", session, " ", session, " IN ", family, " "] {
        out.push_str(part);
    }
    push_ip(out, ip);
    for part in ["\r\ns=baton\r\nc=IN ", family, " "] {
        out.push_str(part);
    }
    push_ip(out, ip);
    out.push_str("\r\nt=0 0\r\n");
}

/// Appends the parts of one line, then its CRLF (an answer is written once per call, so
/// without the formatting machinery, which cost more than the rest of the answer).
fn push_line(out: &mut String, parts: &[&str]) {
    parts.iter().for_each(|p| out.push_str(p));
    out.push_str("\r\n");
}

/// Builds the answer to `offer`: one `m=` line per offered line, in order. A stream the
/// offer disabled (port 0) stays disabled. Returns `None` when the offer has no `m=` line.
pub fn answer(offer: &[u8], ip: IpAddr, session: u64, dir: Direction) -> Option<String> {
    let offer = std::str::from_utf8(offer).ok()?;
    let mut out = String::with_capacity(256);
    session_header(&mut out, ip, session);
    let mut streams = 0;
    let mut lines = offer.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some(m) = line.strip_prefix("m=") else { continue };
        let mut f = m.split_ascii_whitespace();
        let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else { continue };
        let first = f.next().unwrap_or("0");
        streams += 1;
        // Attributes of this stream run until the next m= line.
        let mut rtpmap = None;
        while let Some(attr) = lines.next_if(|l| !l.starts_with("m=")) {
            if let Some(map) = attr.strip_prefix("a=rtpmap:") {
                if map.split_ascii_whitespace().next() == Some(first) {
                    rtpmap = Some(map);
                }
            }
        }
        if port == "0" {
            push_line(&mut out, &["m=", media, " 0 ", proto, " ", first]);
            continue;
        }
        push_line(&mut out, &["m=", media, " ", NO_MEDIA_PORT, " ", proto, " ", first]);
        if let Some(map) = rtpmap {
            push_line(&mut out, &["a=rtpmap:", map]);
        }
        push_line(&mut out, &[dir.attr()]);
    }
    (streams > 0).then_some(out)
}

/// Our offer when the INVITE carried none: one audio stream, PCMU and PCMA.
pub fn offer(ip: IpAddr, session: u64, dir: Direction) -> String {
    let mut out = String::with_capacity(256);
    session_header(&mut out, ip, session);
    push_line(&mut out, &["m=audio ", NO_MEDIA_PORT, " RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000"]);
    push_line(&mut out, &[dir.attr()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_stream_with_its_first_codec() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
m=video 0 RTP/AVP 96\r\n";
        let ans = answer(offer.as_bytes(), "127.0.0.1".parse().unwrap(), 7, Direction::Inactive).unwrap();
        assert!(ans.contains("m=audio 9 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=inactive\r\n"), "{ans}");
        assert!(ans.contains("m=video 0 RTP/AVP 96\r\n"), "{ans}");
        assert_eq!(ans.matches("m=").count(), 2);
        assert!(answer(b"v=0\r\n", "127.0.0.1".parse().unwrap(), 7, Direction::Inactive).is_none());
    }

    #[test]
    fn writes_the_whole_document_exactly() {
        let theirs = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        let ans = answer(theirs.as_bytes(), "10.0.0.1".parse().unwrap(), 42, Direction::Sendrecv).unwrap();
        let head = "v=0\r\no=baton 42 42 IN IP4 10.0.0.1\r\ns=baton\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        assert_eq!(ans, format!("{head}m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"));
        let ours = offer("2001:db8::1".parse().unwrap(), 3, Direction::Inactive);
        assert_eq!(
            ours,
            "v=0\r\no=baton 3 3 IN IP6 2001:db8::1\r\ns=baton\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
m=audio 9 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=inactive\r\n"
        );
    }
}
