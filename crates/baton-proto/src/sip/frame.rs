//! Cutting messages out of a stream transport's bytes (RFC 3261 §18.3): a message ends
//! where its Content-Length says, which a stream therefore requires. Keep-alives between
//! messages (RFC 5626 §4.4.1) are told apart. Stateless: the caller keeps the buffer and
//! calls again with more bytes, or with what is left after the message it took.

use memchr::memchr;

/// What the start of a stream's buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: read more and call again.
    NeedMore,
    /// A whole message: the buffer's first `len` bytes.
    Message(usize),
    /// A keep-alive ping (`CRLF CRLF`) of this many bytes: drop them and answer with
    /// a single `CRLF` (the pong).
    Ping(usize),
    /// A lone `CRLF` before a message (a pong, or padding RFC 3261 §7.5 says to ignore):
    /// drop this many bytes.
    Skip(usize),
}

/// Why a stream cannot be read further: the connection must close (after a 400 when
/// the header section could be read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No Content-Length: on a stream nothing says where the message ends.
    NoContentLength,
    /// A Content-Length that is not a number, or two that disagree.
    BadContentLength,
    /// The message (or its header section, still unfinished) is longer than the limit.
    TooLarge {
        /// The limit it went over, in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NoContentLength => f.write_str("no Content-Length on a stream transport"),
            FrameError::BadContentLength => f.write_str("bad Content-Length"),
            FrameError::TooLarge { limit } => write!(f, "message longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads the start of `buf`, refusing a message longer than `max` bytes.
pub fn frame(buf: &[u8], max: usize) -> Result<Frame, FrameError> {
    match buf {
        [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Frame::Ping(4)),
        [b'\r', b'\n', b'\r'] | [b'\r', b'\n'] | [b'\r'] => return Ok(Frame::NeedMore),
        [b'\r', b'\n', ..] => return Ok(Frame::Skip(2)),
        [b'\n', ..] => return Ok(Frame::Skip(1)),
        _ => {}
    }
    let mut length: Option<usize> = None;
    let mut in_length = false;
    let mut pos = 0;
    let header_end = loop {
        let Some(feed) = memchr(b'\n', &buf[pos..]).map(|i| pos + i) else {
            return if buf.len() > max { Err(FrameError::TooLarge { limit: max }) } else { Ok(Frame::NeedMore) };
        };
        let line = buf[pos..feed].strip_suffix(b"\r").unwrap_or(&buf[pos..feed]);
        pos = feed + 1;
        if line.is_empty() {
            break pos;
        }
        if matches!(line[0], b' ' | b'\t') {
            // A folded line continues the header above it (RFC 3261 §7.3.1).
            if in_length {
                length = merge(length, line)?;
            }
            continue;
        }
        in_length = false;
        let Some(colon) = memchr(b':', line) else { continue };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            in_length = true;
            length = merge(length, &line[colon + 1..])?;
        }
    };
    let total = header_end + length.ok_or(FrameError::NoContentLength)?;
    if total > max {
        return Err(FrameError::TooLarge { limit: max });
    }
    Ok(if buf.len() < total { Frame::NeedMore } else { Frame::Message(total) })
}

/// A Content-Length value (or a folded part of one) joined to what was read before: two
/// numbers for one message are refused, as a smuggled second length would be.
fn merge(known: Option<usize>, part: &[u8]) -> Result<Option<usize>, FrameError> {
    let digits = part.trim_ascii();
    if digits.is_empty() {
        return Ok(known);
    }
    if known.is_some() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadContentLength);
    }
    Ok(Some(digits.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYE: &[u8] = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\nCall-ID: x\r\n\r\nbody";

    #[test]
    fn a_message_split_anywhere_is_whole_only_at_its_end() {
        for cut in 0..BYE.len() {
            assert_eq!(frame(&BYE[..cut], 65_535), Ok(Frame::NeedMore), "cut at {cut}");
        }
        assert_eq!(frame(BYE, 65_535), Ok(Frame::Message(BYE.len())));
    }

    #[test]
    fn pipelined_messages_come_out_one_at_a_time() {
        let two = [BYE, BYE].concat();
        assert_eq!(frame(&two, 65_535), Ok(Frame::Message(BYE.len())));
        assert_eq!(frame(&two[BYE.len()..], 65_535), Ok(Frame::Message(BYE.len())));
    }

    #[test]
    fn keep_alives_are_told_from_messages() {
        assert_eq!(frame(b"\r\n\r\nBYE", 100), Ok(Frame::Ping(4)));
        assert_eq!(frame(b"\r\n", 100), Ok(Frame::NeedMore), "a ping or a pong: wait");
        assert_eq!(frame(b"\r\nBYE", 100), Ok(Frame::Skip(2)));
    }

    #[test]
    fn a_stream_without_a_sound_length_is_refused() {
        let no_length = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(frame(no_length, 100), Err(FrameError::NoContentLength));
        for bad in ["Content-Length: -1", "Content-Length: 1e3", "Content-Length: 99999999999"] {
            let msg = format!("OPTIONS sip:a@b SIP/2.0\r\n{bad}\r\n\r\n");
            assert_eq!(frame(msg.as_bytes(), 100), Err(FrameError::BadContentLength), "{bad}");
        }
        let twice = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 40\r\n\r\n";
        assert_eq!(frame(twice, 100), Err(FrameError::BadContentLength), "a smuggled second length");
        let folded = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nhi";
        assert_eq!(frame(folded, 100), Ok(Frame::Message(folded.len())));
    }

    #[test]
    fn nothing_longer_than_the_limit_is_buffered() {
        assert_eq!(frame(&[b'A'; 101], 100), Err(FrameError::TooLarge { limit: 100 }), "an endless header");
        assert_eq!(frame(&BYE[..20], 20), Ok(Frame::NeedMore));
        assert_eq!(frame(BYE, BYE.len() - 1), Err(FrameError::TooLarge { limit: BYE.len() - 1 }));
    }
}
