#![no_main]
//! The whole sans-IO engine fed arbitrary datagram sequences on a virtual clock: no panic,
//! and no state outlives its deadline.
use baton_proto::{parse_document, Answer, Engine, HookReply, Output, Settings};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, Instant};

const APP: &str =
    r#"[{"verb":"sip:refer","referTo":"agent","actionHook":"/a","eventHook":"/e"},{"verb":"pause","length":1}]"#;

/// Takes what the engine puts out, answering at once every hook it waits for.
fn drain(engine: &mut Engine, now: Instant) {
    while let Some(out) = engine.poll_output() {
        if let Output::Hook(job) = out {
            if let Some(r) = job.reply {
                let outcome = Ok(Answer::Nothing);
                engine.handle_hook_reply(now, HookReply { shard: r.shard, call: r.call, token: r.token, outcome });
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let settings = Settings { app: parse_document(APP).ok(), ..Settings::default() };
    let mut engine = Engine::new(Arc::new(settings), 0, baton_proto::Seed::fixed(1));
    let local = "10.0.0.1:5060".parse().unwrap();
    let peer = "10.0.0.2:5060".parse().unwrap();
    let mut now = Instant::now();
    // Datagrams separated by a NUL byte; the byte after each says how long to wait (ms × 16).
    for chunk in data.split(|b| *b == 0) {
        let (wait, datagram) = chunk.split_first().map_or((0, chunk), |(w, rest)| (*w, rest));
        engine.handle_receive(now, baton_proto::Flow::udp(local, peer), datagram);
        now += Duration::from_millis(u64::from(wait) * 16);
        engine.handle_timeout(now);
        drain(&mut engine, now);
    }
    // Long after everything: nothing may be left. Hooks are still answered, as the hook
    // worker always answers (a reply, or the error once it gives up): a transfer that
    // times out here fires its actionHook and waits for it.
    for _ in 0..200 {
        now += Duration::from_secs(1);
        engine.handle_timeout(now);
        drain(&mut engine, now);
    }
    assert_eq!(engine.calls(), 0, "a call outlived its deadlines");
});
