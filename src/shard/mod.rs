//! The reactor: one thread that owns an [`Engine`], its sockets and its hook inbox.
//! It reads the clock, moves datagrams in and out, and nothing else.

use crate::engine::{Engine, Output, Stats};
use crate::hooks::job::HookReply;
use crate::hooks::worker::{Hooks, Msg};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WAKER: Token = Token(usize::MAX);

/// Datagrams read from one socket before timers and the inbox get a turn.
const READ_BUDGET: usize = 512;
const MAX_DATAGRAM: usize = 65_536;

pub struct Shard {
    pub engine: Engine,
    pub poll: Poll,
    pub sockets: Vec<(UdpSocket, SocketAddr)>,
    pub inbox: crossbeam_channel::Receiver<HookReply>,
    pub hooks: Hooks,
    pub control: Arc<Control>,
    /// How long calls in progress may take to finish once draining starts.
    pub grace: Duration,
    /// Hooks held in order while the queue is full (new calls are refused meanwhile).
    pub held: VecDeque<Msg>,
    /// When the shard last warned that it holds hooks.
    pub held_warned: Option<Instant>,
    /// Where the shard publishes its counters for `/metrics`.
    pub gauges: Arc<std::sync::Mutex<crate::api::ShardGauges>>,
}

/// How the outside asks a shard to end.
#[derive(Default)]
pub struct Control {
    /// Stop at once.
    pub stop: AtomicBool,
    /// Stop admitting calls; end when the calls in progress are done or the grace is over.
    pub drain: AtomicBool,
}

impl Shard {
    pub fn register(poll: &Poll, sockets: &mut [(UdpSocket, SocketAddr)]) -> std::io::Result<()> {
        for (i, (socket, _)) in sockets.iter_mut().enumerate() {
            poll.registry().register(socket, Token(i), Interest::READABLE)?;
        }
        Ok(())
    }

    pub fn run(mut self) -> Stats {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut backlog = false;
        let mut drain_until: Option<Instant> = None;
        while !self.control.stop.load(Ordering::Acquire) {
            // Held hooks are offered to the queue again soon.
            let retry = (!self.held.is_empty()).then(|| Instant::now() + Duration::from_millis(5));
            let wake = self.engine.poll_timeout().into_iter().chain(drain_until).chain(retry).min();
            let timeout =
                if backlog { Some(Duration::ZERO) } else { wake.map(|t| t.saturating_duration_since(Instant::now())) };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed; shard stops");
                    break;
                }
            }
            let now = Instant::now();
            backlog = false;
            for i in 0..self.sockets.len() {
                backlog |= self.read(i, now, &mut buf);
            }
            for reply in self.inbox.try_iter() {
                self.engine.handle_hook_reply(now, reply);
            }
            self.engine.handle_timeout(Instant::now());
            self.release_held();
            self.engine.set_congested(self.hooks.congested() || !self.held.is_empty());
            self.flush();
            self.publish();
            if drain_until.is_none() && self.control.drain.load(Ordering::Acquire) {
                tracing::info!(calls = self.engine.active_calls(), grace = ?self.grace, "draining: no new calls");
                self.engine.drain();
                drain_until = Some(Instant::now() + self.grace);
            }
            if let Some(until) = drain_until {
                let active = self.engine.active_calls();
                if active == 0 {
                    break;
                }
                if Instant::now() >= until {
                    tracing::warn!(calls = active, "grace over: ending the calls still in progress");
                    self.engine.end_all(Instant::now());
                    self.flush();
                    break;
                }
            }
        }
        let stats = self.engine.stats;
        self.hooks.shutdown(self.held);
        stats
    }

    /// Drains one socket up to the budget; true when datagrams may remain.
    fn read(&mut self, i: usize, now: Instant, buf: &mut [u8]) -> bool {
        for _ in 0..READ_BUDGET {
            let (socket, local) = &self.sockets[i];
            match socket.recv_from(buf) {
                Ok((n, src)) => {
                    let local = *local;
                    self.engine.handle_datagram(now, local, src, &buf[..n]);
                    self.flush();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends surface here (ECONNREFUSED); nothing to do.
                Err(e) => tracing::debug!(error = %e, "recv_from"),
            }
        }
        true
    }

    fn flush(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Transmit(t) => {
                    let socket = self.sockets.iter().find(|(_, l)| *l == t.local).or(self.sockets.first());
                    if let Some((socket, _)) = socket {
                        if let Err(e) = socket.send_to(&t.bytes, t.dst) {
                            // Lost like any UDP datagram: retransmission timers cover it.
                            tracing::debug!(dst = %t.dst, error = %e, "send_to");
                        }
                    }
                }
                Output::Hook(job) => self.submit(Msg::Job(Box::new(job))),
                Output::CallGone(sid) => self.submit(Msg::Gone(sid)),
            }
        }
    }
}

impl Shard {
    /// Queues a hook message, or holds it (in order) while the queue is full.
    fn submit(&mut self, msg: Msg) {
        if !self.held.is_empty() {
            return self.held.push_back(msg);
        }
        if let Err(msg) = self.hooks.submit(msg) {
            self.held.push_back(msg);
            if self.held_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!("hook queue full: holding hooks and refusing new calls (slow hook endpoint?)");
                self.held_warned = Some(Instant::now());
            }
        }
    }

    fn publish(&self) {
        if let Ok(mut g) = self.gauges.lock() {
            *g = crate::api::ShardGauges {
                stats: self.engine.stats,
                active_calls: self.engine.active_calls(),
                held_hooks: self.held.len(),
            };
        }
    }

    fn release_held(&mut self) {
        while let Some(msg) = self.held.pop_front() {
            if let Err(msg) = self.hooks.submit(msg) {
                self.held.push_front(msg);
                return;
            }
        }
    }
}

/// Wakes the shard when a hook answer arrives or when it must stop.
pub fn reply_sink(tx: crossbeam_channel::Sender<HookReply>, waker: Arc<Waker>) -> crate::hooks::worker::ReplySink {
    Arc::new(move |reply| {
        if tx.send(reply).is_ok() {
            let _ = waker.wake();
        }
    })
}
