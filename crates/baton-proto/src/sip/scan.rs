//! The header section's lines, found thirty-two bytes at a time and checked for UTF-8 on the way.
//!
//! A SIP header line is some thirty to seventy bytes: calling a vector search once per
//! line pays its set-up every time. [`LineFeeds`] compares a whole block at once (vector
//! compares and byte masks) and hands out the feeds from the mask, noting on the way
//! whether a byte with the high bit set was seen: an all-ASCII header section, the usual
//! one, needs no UTF-8 pass of its own.

use super::error::ParseError;

const BLOCK: usize = 32;

/// The lines of a header section, up to the empty line that ends it, and their text.
pub struct Lines<'a> {
    buf: &'a [u8],
    feeds: LineFeeds<'a>,
    /// Where the next line starts.
    pos: usize,
    /// `buf[..valid]` is known to be UTF-8; it always ends after a line feed.
    valid: usize,
    /// Whether `buf[..valid]` is all ASCII, where every offset is a character boundary.
    ascii: bool,
}

impl<'a> Lines<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Lines { buf, feeds: LineFeeds::new(buf), pos: 0, valid: 0, ascii: true }
    }

    /// The next line's start and end (before its CR LF or bare LF), or `None` at the
    /// empty line that ends the header section.
    #[inline(always)]
    pub fn next_line(&mut self) -> Result<Option<(usize, usize)>, ParseError> {
        let feed = self.feeds.next().ok_or(ParseError::NoHeaderEnd)?;
        if !self.feeds.ascii_through(feed) {
            std::str::from_utf8(&self.buf[self.valid..feed]).map_err(|_| ParseError::NotUtf8)?;
            self.ascii = false;
        }
        self.valid = feed + 1;
        let start = std::mem::replace(&mut self.pos, feed + 1);
        let end = if feed > start && self.buf[feed - 1] == b'\r' { feed - 1 } else { feed };
        Ok((end > start).then_some((start, end)))
    }

    /// What follows the lines handed out so far (the body, after the empty line).
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// `buf[start..end]` as text: `None` unless it lies within the lines handed out so far,
    /// from one character boundary to another.
    #[inline(always)]
    pub fn text(&self, start: usize, end: usize) -> Option<&'a str> {
        let bytes = self.buf.get(start..end)?;
        let boundary = |i: usize| i == self.valid || self.buf.get(i).is_some_and(|&b| (b as i8) >= -0x40);
        let on_boundaries = self.ascii || boundary(start) && boundary(end);
        if end > self.valid || !on_boundaries {
            return None;
        }
        // SAFETY: `buf[..valid]` is UTF-8 (each line was all ASCII or checked), and a slice
        // of UTF-8 between two character boundaries is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }
}

struct LineFeeds<'a> {
    buf: &'a [u8],
    /// Offset of the block in `feeds` and `high`.
    block: usize,
    /// The block's line feeds not yet handed out, one bit per byte.
    feeds: u32,
    /// The block's bytes of 0x80 and above.
    high: u32,
    /// Whether an earlier block had such a byte.
    high_before: bool,
}

impl<'a> LineFeeds<'a> {
    fn new(buf: &'a [u8]) -> Self {
        let mut scan = LineFeeds { buf, block: 0, feeds: 0, high: 0, high_before: false };
        scan.load();
        scan
    }

    #[inline(always)]
    fn load(&mut self) {
        let rest = self.buf.get(self.block..).unwrap_or_default();
        (self.feeds, self.high) = match rest.first_chunk::<BLOCK>() {
            Some(block) => masks(block),
            None => tail_masks(rest),
        };
    }

    /// Whether no byte up to and including `at` (a feed already handed out) is above 0x7f.
    #[inline(always)]
    fn ascii_through(&self, at: usize) -> bool {
        if self.high == 0 {
            return !self.high_before;
        }
        let bits = (2u64 << (at - self.block)) - 1;
        !self.high_before && u64::from(self.high) & bits == 0
    }
}

impl Iterator for LineFeeds<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.feeds == 0 {
            self.block += BLOCK;
            if self.block >= self.buf.len() {
                return None;
            }
            self.high_before |= self.high != 0;
            self.load();
        }
        let bit = self.feeds.trailing_zeros() as usize;
        self.feeds &= self.feeds - 1;
        Some(self.block + bit)
    }
}

/// The masks of the last, short block, padded with zeros (neither a feed nor high).
#[cold]
#[inline(never)]
fn tail_masks(rest: &[u8]) -> (u32, u32) {
    let mut padded = [0u8; BLOCK];
    let n = rest.len().min(BLOCK);
    padded[..n].copy_from_slice(&rest[..n]);
    masks(&padded)
}

/// One bit per byte of `block`: its line feeds, and its bytes of 0x80 and above.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(block: &[u8; BLOCK]) -> (u32, u32) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: `block` is thirty-two readable bytes, read as two unaligned loads of sixteen,
    // which need nothing more; the rest only needs SSE2, which every x86-64 CPU has.
    let [feeds_lo, feeds_hi, high_lo, high_hi] = unsafe {
        let lf = _mm_set1_epi8(b'\n' as i8);
        let lo = _mm_loadu_si128(block.as_ptr().cast());
        let hi = _mm_loadu_si128(block.as_ptr().add(16).cast());
        [_mm_cmpeq_epi8(lo, lf), _mm_cmpeq_epi8(hi, lf), lo, hi].map(|v| _mm_movemask_epi8(v))
    };
    // Each mask holds sixteen bits in the low half of an i32: the casts keep them as they are.
    let join = |lo: i32, hi: i32| (lo as u32 & 0xffff) | ((hi as u32) << 16);
    (join(feeds_lo, feeds_hi), join(high_lo, high_hi))
}

/// The portable form of the above (compilers do not turn it into a byte mask).
#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; BLOCK]) -> (u32, u32) {
    let mask = |hit: fn(u8) -> bool| block.iter().enumerate().fold(0, |m, (i, &b)| m | (u32::from(hit(b)) << i));
    (mask(|b| b == b'\n'), mask(|b| b >= 0x80))
}

/// Whether `bytes` holds a control character other than HTAB (below 0x20, or 0x7f): what
/// no start line or header value may carry. Sixteen bytes at a time; the writer checks
/// every value of every message it writes.
#[cfg(target_arch = "x86_64")]
pub fn has_control(bytes: &[u8]) -> bool {
    use std::arch::x86_64::{_mm_andnot_si128, _mm_setzero_si128, _mm_subs_epu8};
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let mut blocks = bytes.chunks_exact(16);
    for block in blocks.by_ref() {
        // SAFETY: `block` is sixteen readable bytes, read as one unaligned load; the rest
        // only needs SSE2, which every x86-64 CPU has.
        let found = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            // Bytes up to 0x1f: saturating 0x1f off them leaves zero.
            let low = _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x1f)), _mm_setzero_si128());
            let tab = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8));
            let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            _mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(tab, low), del))
        };
        if found != 0 {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| is_control(b))
}

/// The portable form of the above.
#[cfg(not(target_arch = "x86_64"))]
pub fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| is_control(b))
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_found_in_any_position() {
        for len in [0, 1, 15, 16, 17, 40] {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(!has_control(&text));
            let mut tabbed = text.clone();
            tabbed.iter_mut().step_by(3).for_each(|b| *b = b'\t');
            assert!(!has_control(&tabbed), "HTAB is allowed");
            let mut utf8 = text.clone();
            utf8.extend_from_slice("é…".as_bytes());
            assert!(!has_control(&utf8), "bytes above 0x7f are not controls");
            for at in 0..len {
                for bad in [b'\r', b'\n', 0, 0x1f, 0x7f] {
                    let mut t = text.clone();
                    t[at] = bad;
                    assert!(has_control(&t), "{bad:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn lines_end_at_the_empty_line_and_their_text_stays_inside() {
        let buf = "A\r\nB: \u{e9}\nC\r\n\r\nbody \u{e9}".as_bytes();
        let mut lines = Lines::new(buf);
        assert_eq!(lines.next_line(), Ok(Some((0, 1))));
        assert_eq!(lines.text(0, 1), Some("A"));
        // Not yet handed out.
        assert_eq!(lines.text(3, 4), None);
        assert_eq!(lines.next_line(), Ok(Some((3, 8))));
        assert_eq!(lines.text(3, 8), Some("B: \u{e9}"));
        // Inside the two bytes of \u{e9}.
        assert_eq!(lines.text(3, 7), None);
        assert_eq!(lines.text(7, 8), None);
        assert_eq!(lines.next_line(), Ok(Some((9, 10))));
        assert_eq!(lines.next_line(), Ok(None));
        assert_eq!(lines.rest(), "body \u{e9}".as_bytes());
        assert_eq!(lines.text(0, 12), Some("A\r\nB: \u{e9}\nC\r\n"));
        assert_eq!(lines.text(5, 3), None);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_and_a_missing_end_reported() {
        let mut lines = Lines::new(b"A\r\nB: \xff\r\n\r\n");
        assert_eq!(lines.next_line(), Ok(Some((0, 1))));
        assert_eq!(lines.next_line(), Err(ParseError::NotUtf8));
        let mut lines = Lines::new(b"A\r\nB");
        assert_eq!(lines.next_line(), Ok(Some((0, 1))));
        assert_eq!(lines.next_line(), Err(ParseError::NoHeaderEnd));
    }

    fn feeds(buf: &[u8]) -> Vec<usize> {
        LineFeeds::new(buf).collect()
    }

    #[test]
    fn finds_every_feed_across_blocks_and_in_the_tail() {
        // Feeds at a block's first and last byte, across three blocks and a short tail.
        let mut buf = vec![b'x'; 3 * BLOCK + 5];
        for i in [0, 1, BLOCK - 1, BLOCK, 2 * BLOCK + 7, 3 * BLOCK - 1, 3 * BLOCK + 4] {
            buf[i] = b'\n';
        }
        let expected: Vec<usize> = buf.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
        assert_eq!(feeds(&buf), expected);
        assert_eq!(feeds(b""), Vec::<usize>::new());
        assert_eq!(feeds(&[b'x'; 3 * BLOCK]), Vec::<usize>::new());
        assert_eq!(feeds(&[b'\n'; BLOCK + 1]), (0..=BLOCK).collect::<Vec<_>>());
    }

    #[test]
    fn tells_whether_the_bytes_so_far_are_ascii() {
        // A high byte after the feed asked about does not count; one before it does,
        // in the same block or an earlier one.
        let mut s = LineFeeds::new("ab\n\u{e9}\n".as_bytes());
        let first = s.next().unwrap();
        assert!(s.ascii_through(first));
        let second = s.next().unwrap();
        assert!(!s.ascii_through(second));
        for high in [3, BLOCK - 1, BLOCK + 2] {
            let mut buf = vec![b'x'; BLOCK + 8];
            buf[BLOCK + 5] = b'\n';
            buf[high] = 0xc3;
            let mut s = LineFeeds::new(&buf);
            let at = s.next().unwrap();
            assert!(!s.ascii_through(at), "a high byte at {high}");
        }
        // The last byte of a block, and the first of the next.
        let mut buf = vec![b'x'; BLOCK + 2];
        (buf[BLOCK - 1], buf[BLOCK]) = (b'\n', b'\n');
        buf[BLOCK + 1] = 0xc3;
        let mut s = LineFeeds::new(&buf);
        assert_eq!(s.next(), Some(BLOCK - 1));
        assert!(s.ascii_through(BLOCK - 1));
        assert_eq!(s.next(), Some(BLOCK));
        assert!(s.ascii_through(BLOCK), "the high byte comes after this feed");
    }
}
