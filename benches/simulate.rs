//! Whole transfers between the sans-IO engine and the load generator's sans-IO carrier,
//! in memory at one instant: no sockets, no clock. Shared by the criterion bench and
//! `examples/transfer_loop.rs` (instruction counts under callgrind).

use baton::load::carrier::{LoadCall, Stage};
use baton_proto::sip::parse;
use baton_proto::{Answer, Engine, HookReply, Output, Transport};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const BATON: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
const CARRIER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060);

/// Runs transfer `n` from INVITE to the 200 for baton's BYE, answering hooks at once;
/// returns the datagrams baton sent.
pub fn transfer(engine: &mut Engine, now: Instant, n: u64) -> usize {
    let (mut call, invite) = LoadCall::start(format!("sim-{n}"), (CARRIER, BATON, Transport::Udp), now, now);
    let mut to_baton = VecDeque::from([invite]);
    let mut sent = 0;
    while let Some(bytes) = to_baton.pop_front() {
        engine.handle_receive(now, baton_proto::Flow::udp(BATON, CARRIER), &bytes);
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Transmit(t) => {
                    sent += 1;
                    let msg = parse(&t.bytes).expect("baton sends what it parses");
                    to_baton.extend(call.on_message(&msg, now).send);
                }
                Output::Hook(job) => {
                    if let Some(r) = job.reply {
                        let outcome = Ok(Answer::Nothing);
                        engine.handle_hook_reply(
                            now,
                            HookReply { shard: r.shard, call: r.call, token: r.token, outcome },
                        );
                    }
                }
                Output::CallGone(_) => {}
            }
        }
    }
    assert_eq!(call.stage, Stage::Done, "transfer {n} did not complete");
    sent
}
