//! Runs whole transfers through the sans-IO engine against the load generator's carrier,
//! in memory, for `perf/engine-instructions.sh` to count the engine's instructions per
//! transfer under callgrind (repeatable where wall-clock timings on a shared machine are not).
//!
//!     cargo run --release --example transfer_loop -- [N] [hooks]

#[path = "../benches/simulate.rs"]
mod simulate;

use baton_proto::{parse_document, Engine, Settings};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let app = match args.get(1).map(String::as_str) {
        Some("hooks") => r#"[{"verb":"sip:refer","referTo":"agent","actionHook":"/a","eventHook":"/e"}]"#,
        _ => r#"[{"verb":"sip:refer","referTo":"agent"}]"#,
    };
    let settings =
        Settings { app: parse_document(app).ok(), edge: baton_proto::EdgeLimits::lab(), ..Settings::default() };
    let mut engine = Engine::new(Arc::new(settings), 0, baton_proto::Seed::fixed(1));
    let mut now = Instant::now();
    for i in 0..n {
        // 10,000 transfers a second of virtual time: ended calls expire as they would.
        now += Duration::from_micros(100);
        engine.handle_timeout(now);
        while engine.poll_output().is_some() {}
        black_box(simulate::transfer(&mut engine, now, i));
    }
}
