//! The status line of a `message/sipfrag` NOTIFY body (RFC 3420, RFC 3515 §2.4.5).

/// Returns the status code and reason of a sipfrag body. Leading blank lines are skipped;
/// whatever follows the status line is ignored.
pub fn status_line(body: &[u8]) -> Option<(u16, &str)> {
    let start = body.iter().position(|&b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))?;
    let rest = &body[start..];
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = std::str::from_utf8(&rest[..end]).ok()?.trim_end_matches('\r');
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    (100..=699).contains(&code).then_some((code, reason))
}

#[cfg(test)]
mod tests {
    use super::status_line;

    #[test]
    fn reads_the_status_line() {
        assert_eq!(status_line(b"SIP/2.0 200 OK\r\n"), Some((200, "OK")));
        assert_eq!(status_line(b"\r\n\r\nSIP/2.0 180 Ringing\r\nContact: x\r\n"), Some((180, "Ringing")));
        assert_eq!(status_line(b"SIP/2.0 100"), Some((100, "")));
        assert_eq!(status_line(b"SIP/2.0 1000 Huh"), None);
        assert_eq!(status_line(b"HTTP/1.1 200 OK"), None);
        assert_eq!(status_line(b""), None);
    }
}
