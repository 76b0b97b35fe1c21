#![no_main]
// The stream framer: any bytes, cut into any reads, frame into the same messages as the
// whole stream at once; a message it hands out is never longer than the limit or the
// buffer, and never ends before its header section does.
use baton_proto::sip::{frame, Frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

/// The messages (and keep-alives) of `stream` read `chunk` bytes at a time, up to the first
/// error or what is left unfinished.
fn messages(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let (mut buf, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
    loop {
        match frame(&buf, MAX) {
            Ok(Frame::NeedMore) if fed == stream.len() => return (out, false),
            Ok(Frame::NeedMore) => {
                let end = (fed + chunk).min(stream.len());
                buf.extend_from_slice(&stream[fed..end]);
                fed = end;
            }
            Ok(Frame::Message(n) | Frame::Ping(n) | Frame::Skip(n)) => {
                assert!(n > 0 && n <= buf.len() && n <= MAX);
                out.push(buf.drain(..n).collect());
            }
            Err(_) => return (out, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let whole = messages(stream, stream.len().max(1));
    let pieces = messages(stream, usize::from(chunk % 64) + 1);
    assert_eq!(whole, pieces, "framing must not depend on how the bytes were read");
    for m in &whole.0 {
        if let Ok(Frame::Message(n)) = frame(m, MAX) {
            assert_eq!(n, m.len());
            assert!(memchr::memmem::find(m, b"\n\r\n").or(memchr::memmem::find(m, b"\n\n")).is_some());
        }
    }
});
