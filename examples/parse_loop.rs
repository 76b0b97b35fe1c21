//! Parses one of the benchmark messages many times with baton's parser or rsip's, for
//! `perf/parse-instructions.sh` to count instructions under callgrind (repeatable where
//! wall-clock timings on a shared machine are not).
//!
//!     cargo run --release --example parse_loop -- refer|notify|invite|ok baton|rsip [N]

#[path = "../benches/messages.rs"]
mod messages;

use std::hint::black_box;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes = match args.first().map(String::as_str) {
        Some("refer") => messages::REFER,
        Some("notify") => messages::NOTIFY,
        Some("invite") => messages::INVITE,
        Some("ok") => messages::OK,
        _ => return usage(),
    };
    let n: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    match args.get(1).map(String::as_str) {
        Some("baton") => (0..n).for_each(|_| {
            black_box(baton_proto::sip::parse(black_box(bytes)).is_ok());
        }),
        Some("rsip") => (0..n).for_each(|_| {
            black_box(rsip::SipMessage::try_from(black_box(bytes)).is_ok());
        }),
        Some("none") => {}
        _ => return usage(),
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: parse_loop refer|notify|invite|ok baton|rsip|none [N]");
    ExitCode::from(2)
}
