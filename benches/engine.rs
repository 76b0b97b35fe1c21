//! The sans-IO engine through a whole transfer against the load generator's carrier
//! (INVITE to the BYE's 200, hooks answered at once, no sockets), and routing a response
//! to its shard and call by its branch.

mod simulate;

use baton_proto::{parse_branch, parse_document, Engine, Settings};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use simulate::transfer;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn whole_transfer(c: &mut Criterion) {
    let app = r#"[{"verb":"sip:refer","referTo":"agent","actionHook":"/a","eventHook":"/e"}]"#;
    let settings =
        Settings { app: parse_document(app).ok(), edge: baton_proto::EdgeLimits::lab(), ..Settings::default() };
    let mut engine = Engine::new(Arc::new(settings), 0, baton_proto::Seed::fixed(1));
    let mut now = Instant::now();
    let mut n = 0;
    c.bench_function("engine: whole transfer, no I/O", |b| {
        b.iter(|| {
            n += 1;
            // Old calls expire as the virtual clock moves on, so state stays bounded.
            now += Duration::from_millis(1);
            engine.handle_timeout(now);
            while engine.poll_output().is_some() {}
            black_box(transfer(&mut engine, now, n))
        })
    });
}

fn routing(c: &mut Criterion) {
    c.bench_function("route a response by its branch", |b| {
        b.iter(|| black_box(parse_branch(black_box("z9hG4bK-bt3-1f2e3d-9a"))))
    });
}

criterion_group!(benches, whole_transfer, routing);
criterion_main!(benches);
