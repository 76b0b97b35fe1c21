//! The reactor: one thread per shard that owns an [`Engine`], its I/O backend and its
//! inboxes. It reads the clock, moves datagrams in and out, hands a datagram another shard
//! owns to that shard, and nothing else.

pub mod route;

use crate::hooks::worker::{Hooks, Msg, ReplySink};
use crate::io::{Backend, Datagram, Waker};
use crate::stream::{Outgoing, StreamSender};
use baton_proto::{CallSummary, CallUpdate, Engine, Flow, HookReply, Output, Stats, Transport, UpdateError};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Datagrams that may wait for one shard before more are dropped (a shard that far
/// behind is overloaded; UDP retransmission covers the loss).
pub const HANDOFF_QUEUE: usize = 16_384;

/// A datagram received by one shard and owned by another.
pub struct Handoff {
    pub flow: Flow,
    pub bytes: Vec<u8>,
}

/// How any thread reaches one shard.
pub struct Peer {
    pub handoffs: Sender<Handoff>,
    pub replies: Sender<HookReply>,
    pub queries: Sender<Query>,
    pub waker: Arc<Waker>,
}

/// What a shard receives from other threads.
pub struct Mailbox {
    pub handoffs: Receiver<Handoff>,
    pub replies: Receiver<HookReply>,
    pub queries: Receiver<Query>,
}

/// A question the operator's API asks a shard, answered on its next turn.
pub enum Query {
    /// Every live call of the shard.
    Calls(tokio::sync::oneshot::Sender<Vec<CallSummary>>),
    /// An operator's update, for whichever shard has the call.
    Update(Arc<str>, CallUpdate, tokio::sync::oneshot::Sender<Result<(), UpdateError>>),
}

/// How often an idle shard turns anyway: `/readyz` reads a shard that has not turned for
/// a few of these as stuck.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Counters of the shard loop itself, beside the engine's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loop {
    /// Turns of the loop: its wake-ups, for whatever reason.
    pub turns: u64,
    /// Datagrams read from this shard's sockets.
    pub received: u64,
    /// Of those, handed to the shard that owns them.
    pub handed_off: u64,
    /// Handed over but dropped: the owner's queue was full.
    pub handoff_dropped: u64,
}

/// What the shard publishes after each turn of its loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub stats: Stats,
    pub active_calls: usize,
    pub tombstones: usize,
    pub held_hooks: usize,
    pub io: Loop,
    /// When the shard last turned (it turns at least every `HEARTBEAT`).
    pub turned_at: Option<Instant>,
    /// New calls are refused while the hook queue is nearly full.
    pub congested: bool,
}

pub struct Shard {
    pub id: u16,
    pub engine: Engine,
    pub io: Box<dyn Backend>,
    /// Every shard, this one included, by number.
    pub peers: Arc<[Peer]>,
    pub mailbox: Mailbox,
    pub hooks: Hooks,
    pub control: Arc<Control>,
    /// How long calls in progress may take to finish once draining starts.
    pub grace: Duration,
    /// Where the shard publishes its counters for `/metrics`.
    pub gauges: Arc<Mutex<Gauges>>,
    /// Where messages for TCP and TLS connections go (none without stream listeners).
    pub streams: Option<StreamSender>,
}

/// How the outside asks the shards to end.
#[derive(Default)]
pub struct Control {
    /// Stop at once.
    pub stop: AtomicBool,
    /// Stop admitting calls; end when the calls in progress are done or the grace is over.
    pub drain: AtomicBool,
    /// Shards with calls still in progress while draining. Every shard keeps answering
    /// (503 to new calls, hand-offs to the others) until this reaches zero.
    pub busy: AtomicUsize,
}

impl Control {
    pub fn new(shards: usize) -> Control {
        Control { busy: AtomicUsize::new(shards), ..Control::default() }
    }
}

/// The state of one running shard loop.
struct Running {
    shard: Shard,
    /// Hooks held in order while the queue is full (new calls are refused meanwhile).
    held: VecDeque<Msg>,
    /// When the shard last warned that it holds hooks.
    held_warned: Option<Instant>,
    counters: Loop,
    /// Peers handed a datagram this turn: each is woken once.
    to_wake: Vec<bool>,
}

impl Shard {
    pub fn run(self) -> Stats {
        let peers = self.peers.len();
        let me = Running {
            shard: self,
            held: VecDeque::new(),
            held_warned: None,
            counters: Loop::default(),
            to_wake: vec![false; peers],
        };
        me.run()
    }
}

impl Running {
    fn run(mut self) -> Stats {
        let mut backlog = false;
        let mut drain_until: Option<Instant> = None;
        // This shard's calls are over; it waits for the others'.
        let mut drained = false;
        self.publish(false); // turning from the start: /readyz need not wait for a first wake-up
        while !self.shard.control.stop.load(Ordering::Acquire) {
            // Held hooks are offered to the queue again soon.
            let retry = (!self.held.is_empty()).then(|| Instant::now() + Duration::from_millis(5));
            let heartbeat = Some(Instant::now() + HEARTBEAT);
            let wake =
                self.shard.engine.poll_timeout().into_iter().chain(drain_until.filter(|_| !drained)).chain(retry);
            let wake = wake.chain(heartbeat).min();
            let timeout =
                if backlog { Some(Duration::ZERO) } else { wake.map(|t| t.saturating_duration_since(Instant::now())) };
            backlog = match self.receive(timeout) {
                Ok(more) => more,
                Err(e) => {
                    tracing::error!(shard = self.shard.id, error = %e, "the I/O backend failed; shard stops");
                    break;
                }
            };
            let now = Instant::now();
            while let Ok(h) = self.shard.mailbox.handoffs.try_recv() {
                self.shard.engine.handle_receive(now, h.flow, &h.bytes);
            }
            while let Ok(reply) = self.shard.mailbox.replies.try_recv() {
                self.shard.engine.handle_hook_reply(now, reply);
            }
            while let Ok(query) = self.shard.mailbox.queries.try_recv() {
                match query {
                    Query::Calls(answer) => drop(answer.send(self.shard.engine.call_summaries())),
                    Query::Update(sid, update, answer) => {
                        let _ = answer.send(self.shard.engine.update_call(now, &sid, update));
                    }
                }
            }
            self.shard.engine.handle_timeout(now);
            self.release_held();
            let congested = self.shard.hooks.congested() || !self.held.is_empty();
            self.shard.engine.set_congested(congested);
            self.drain_outputs();
            self.publish(congested);
            if drain_until.is_none() && self.shard.control.drain.load(Ordering::Acquire) {
                let calls = self.shard.engine.active_calls();
                tracing::info!(shard = self.shard.id, calls, grace = ?self.shard.grace, "draining: no new calls");
                self.shard.engine.drain();
                drain_until = Some(Instant::now() + self.shard.grace);
            }
            if let Some(until) = drain_until {
                let active = self.shard.engine.active_calls();
                if !drained && active > 0 && Instant::now() >= until {
                    tracing::warn!(
                        shard = self.shard.id,
                        calls = active,
                        "grace over: ending the calls still in progress"
                    );
                    self.shard.engine.end_all(Instant::now());
                    self.drain_outputs();
                }
                if !drained && (active == 0 || Instant::now() >= until) {
                    drained = true;
                    if self.shard.control.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
                        self.shard.peers.iter().for_each(|p| p.waker.wake());
                    }
                }
                if drained && self.shard.control.busy.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
        }
        self.shard.io.flush();
        self.publish(false);
        let stats = self.shard.engine.stats;
        self.shard.hooks.hand_over(self.held);
        stats
    }

    /// One turn of the backend: datagrams this shard owns go to its engine, the others to
    /// their owners, each woken once.
    fn receive(&mut self, timeout: Option<Duration>) -> std::io::Result<bool> {
        let Shard { id, engine, io, peers, .. } = &mut self.shard;
        let (id, shards) = (*id, peers.len() as u16);
        let counters = &mut self.counters;
        let to_wake = &mut self.to_wake;
        let mut now = None;
        counters.turns += 1;
        let more = io.turn(timeout, &mut |d: Datagram<'_>| {
            counters.received += 1;
            match route::owner(d.data, shards) {
                Some(owner) if owner != id => {
                    let handoff = Handoff { flow: Flow::udp(d.local, d.src), bytes: d.data.to_vec() };
                    match peers[usize::from(owner)].handoffs.try_send(handoff) {
                        Ok(()) => {
                            counters.handed_off += 1;
                            to_wake[usize::from(owner)] = true;
                        }
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => counters.handoff_dropped += 1,
                    }
                }
                _ => {
                    let now = *now.get_or_insert_with(Instant::now);
                    engine.handle_receive(now, Flow::udp(d.local, d.src), d.data);
                }
            }
        })?;
        for (peer, wake) in peers.iter().zip(to_wake.iter_mut()) {
            if std::mem::take(wake) {
                peer.waker.wake();
            }
        }
        Ok(more)
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.shard.engine.poll_output() {
            match output {
                Output::Transmit(t) if t.transport == Transport::Udp => self.shard.io.send(t.local, t.dst, t.bytes),
                Output::Transmit(t) => match &self.shard.streams {
                    Some(streams) => {
                        let flow = Flow { transport: t.transport, local: t.local, remote: t.dst, conn: t.conn };
                        streams.send(Outgoing { flow, bytes: t.bytes });
                    }
                    None => tracing::debug!(dst = %t.dst, transport = %t.transport, "no stream listener: not sent"),
                },
                Output::Hook(job) => self.submit(Msg::Job(Box::new(job))),
                Output::CallGone(sid) => self.submit(Msg::Gone(sid)),
            }
        }
    }

    /// Queues a hook message, or holds it (in order) while the queue is full.
    fn submit(&mut self, msg: Msg) {
        if !self.held.is_empty() {
            return self.held.push_back(msg);
        }
        if let Err(msg) = self.shard.hooks.submit(msg) {
            self.held.push_back(msg);
            if self.held_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!("hook queue full: holding hooks and refusing new calls (slow hook endpoint?)");
                self.held_warned = Some(Instant::now());
            }
        }
    }

    fn publish(&self, congested: bool) {
        if let Ok(mut g) = self.shard.gauges.lock() {
            *g = Gauges {
                stats: self.shard.engine.stats,
                active_calls: self.shard.engine.active_calls(),
                tombstones: self.shard.engine.tombstones(),
                held_hooks: self.held.len(),
                io: self.counters,
                turned_at: Some(Instant::now()),
                congested,
            };
        }
    }

    fn release_held(&mut self) {
        while let Some(msg) = self.held.pop_front() {
            if let Err(msg) = self.shard.hooks.submit(msg) {
                self.held.push_front(msg);
                return;
            }
        }
    }
}

/// Routes each hook answer to the inbox of the shard that owns its call, and wakes it.
pub fn reply_sink(peers: Arc<[Peer]>) -> ReplySink {
    Arc::new(move |reply: HookReply| {
        if let Some(peer) = peers.get(usize::from(reply.shard)) {
            if peer.replies.send(reply).is_ok() {
                peer.waker.wake();
            }
        }
    })
}
