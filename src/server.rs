//! A running baton: sockets bound, hook delivery started, one thread per shard.

use crate::api::{Api, Metrics, ShardMetrics};
use crate::hooks::worker::{Delivery, HookSettings, Hooks};
use crate::io::{IoMode, Waker};
use crate::shard::{reply_sink, Control, Gauges, Mailbox, Peer, Shard, HANDOFF_QUEUE};
use crate::stream::{StreamSettings, Streams};
use baton_proto::{Admission, Engine, Settings, Stats, Transport};
use socket2::Socket;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// TCP and TLS listeners, their certificate and limits.
    pub streams: StreamSettings,
    pub settings: Settings,
    pub hooks: HookSettings,
    /// On shutdown, how long calls in progress may take to finish.
    pub grace: Duration,
    /// Where the operator's HTTP endpoint is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Its bearer token for `/v1`.
    pub api_token: Option<String>,
    /// Reactor threads, each with its own sockets on every listen address.
    pub shards: usize,
    pub io: IoMode,
    /// With `--io xdp`: spin on the rings instead of sleeping (lowest latency, one busy core
    /// per shard).
    pub xdp_busy_poll: bool,
    /// While datagrams arrive steadily (2 to 16 per wait, see `io::gather`), a shard wakes
    /// at most once per this long.
    pub coalesce: Duration,
    /// Pin shard N to core N (mod the cores there are).
    pub pin: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            streams: StreamSettings::default(),
            settings: Settings::default(),
            hooks: HookSettings::default(),
            grace: Duration::from_secs(30),
            metrics: None,
            api_token: None,
            shards: 1,
            io: IoMode::Auto,
            xdp_busy_poll: false,
            coalesce: crate::io::COALESCE,
            pin: false,
        }
    }
}

pub struct Server {
    addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    control: Arc<Control>,
    peers: Arc<[Peer]>,
    shards: Vec<JoinHandle<Stats>>,
    delivery: Delivery,
    io: &'static str,
    streams: Option<Streams>,
}

/// Binds every listen address once per shard. The first shard's sockets resolve a port 0,
/// and the others bind what it got (SO_REUSEPORT lets them share it).
fn bind_all(listen: &[SocketAddr], shards: usize) -> std::io::Result<Vec<Vec<(Socket, SocketAddr)>>> {
    let bind = |addr: SocketAddr| {
        let socket = crate::io::bind(addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on udp:{addr}: {e}")))?;
        let local = socket.local_addr()?.as_socket().unwrap_or(addr);
        Ok::<_, std::io::Error>((socket, local))
    };
    let first = listen.iter().map(|a| bind(*a)).collect::<std::io::Result<Vec<_>>>()?;
    let resolved: Vec<SocketAddr> = first.iter().map(|(_, a)| *a).collect();
    let mut all = vec![first];
    for _ in 1..shards {
        all.push(resolved.iter().map(|a| bind(*a)).collect::<std::io::Result<Vec<_>>>()?);
    }
    Ok(all)
}

impl Server {
    pub fn start(config: ServerConfig) -> std::io::Result<Server> {
        let shards = config.shards.clamp(1, usize::from(u16::MAX));
        let sockets = bind_all(&config.listen, shards)?;
        let addrs: Vec<SocketAddr> = sockets[0].iter().map(|(_, a)| *a).collect();
        let xdp = match (&config.io, &addrs[..]) {
            (IoMode::Xdp(iface), [listen]) => {
                Some(crate::io::xdp::Interface::open(iface, *listen).map_err(std::io::Error::other)?)
            }
            (IoMode::Xdp(iface), _) => {
                return Err(std::io::Error::other(format!("--io xdp:{iface} takes exactly one udp: listen address")))
            }
            _ => None,
        };
        let mut peers = Vec::with_capacity(shards);
        let mut mailboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (handoffs, handoffs_rx) = crossbeam_channel::bounded(HANDOFF_QUEUE);
            let (replies, replies_rx) = crossbeam_channel::unbounded();
            let (queries, queries_rx) = crossbeam_channel::bounded(64);
            peers.push(Peer { handoffs, replies, queries, waker: Arc::new(Waker::new()?) });
            mailboxes.push(Mailbox { handoffs: handoffs_rx, replies: replies_rx, queries: queries_rx });
        }
        let peers: Arc<[Peer]> = peers.into();
        // A shard counts as turning from its start: /readyz may be asked before its first turn.
        let started = Gauges { turned_at: Some(std::time::Instant::now()), ..Gauges::default() };
        let gauges: Vec<_> = (0..shards).map(|_| Arc::new(std::sync::Mutex::new(started))).collect();
        let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let streams = match config.streams.listen.is_empty() {
            true => None,
            false => Some(Streams::start(config.streams, peers.clone(), &cores)?),
        };
        let metrics = Metrics {
            shards: ShardMetrics(gauges.clone()),
            hooks: config.hooks.counters.clone(),
            streams: streams.as_ref().map(|s| s.counters.clone()),
        };
        let metrics_addr = match config.metrics {
            Some(addr) => {
                let (peers, token, rules) = (peers.clone(), config.api_token, config.hooks.rules);
                Some(crate::api::serve(addr, Api { metrics, peers, token, rules, commands: Default::default() })?)
            }
            None => None,
        };
        let stream_sender = streams.as_ref().map(Streams::sender);
        let (hooks, delivery) = Hooks::start(config.hooks, reply_sink(peers.clone()))?;
        let control = Arc::new(Control::new(shards));
        let admission = Arc::new(Admission::new(config.settings.max_calls, shards));
        let settings = Arc::new(config.settings);
        let mut threads = Vec::with_capacity(shards);
        let mut opened = Vec::with_capacity(shards);
        for (i, ((sockets, mailbox), gauges)) in sockets.into_iter().zip(mailboxes).zip(gauges).enumerate() {
            let id = i as u16;
            let (peers, hooks, control) = (peers.clone(), hooks.clone(), control.clone());
            let (settings, admission) = (settings.clone(), admission.clone());
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let seed = baton_proto::Seed::from_os()?;
            let (ready, is_ready) = std::sync::mpsc::sync_channel(1);
            let grace = config.grace;
            let (io, coalesce) = (config.io.clone(), config.coalesce);
            let lane = xdp.clone().map(|iface| crate::io::xdp::Lane {
                iface,
                queue: u32::from(id),
                busy_poll: config.xdp_busy_poll,
            });
            let streams = stream_sender.clone();
            let thread = std::thread::Builder::new().name(format!("baton-shard-{i}")).spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                // Opened here: a ring belongs to the thread that submits to it.
                let backend = match crate::io::open(&io, sockets, peers[i].waker.clone(), coalesce, lane) {
                    Ok((backend, name)) => {
                        let _ = ready.send(Ok(name));
                        backend
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return Stats::default();
                    }
                };
                let engine = Engine::new(settings, id, seed).sharing(admission);
                Shard { id, engine, io: backend, peers, mailbox, hooks, control, grace, gauges, streams }.run()
            })?;
            threads.push(thread);
            opened.push(is_ready);
        }
        drop(hooks);
        let mut server = Server { addrs, metrics_addr, control, peers, shards: threads, delivery, io: "none", streams };
        for ready in opened {
            match ready.recv() {
                // Shard 0's backend names the server's (an XDP shard past the queues says less).
                Ok(Ok(name)) if server.io == "none" => server.io = name,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    server.stop();
                    return Err(e);
                }
                Err(_) => {
                    server.stop();
                    return Err(std::io::Error::other("a shard ended while starting"));
                }
            }
        }
        tracing::info!(shards, io = server.io, coalesce_us = config.coalesce.as_micros() as u64, "shards running");
        Ok(server)
    }

    /// The bound addresses (a port of 0 in the config is resolved here).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound TCP and TLS listeners (a port of 0 resolved).
    pub fn stream_addrs(&self) -> &[(Transport, SocketAddr)] {
        self.streams.as_ref().map_or(&[], Streams::local_addrs)
    }

    /// Reads the TLS certificate and key again (SIGHUP); connections already open keep
    /// theirs, and on an error the certificate in use stays.
    pub fn reload_tls(&self) -> Result<(), String> {
        self.streams.as_ref().map_or(Ok(()), Streams::reload_tls)
    }

    /// Where `/metrics` is served (resolved when the config said port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The I/O backend the shards run on: "io_uring" or "epoll".
    pub fn io(&self) -> &'static str {
        self.io
    }

    /// Stops at once; hooks already queued are still delivered (or dead-lettered).
    pub fn stop(self) -> Stats {
        self.control.stop.store(true, Ordering::Release);
        self.finish()
    }

    /// Graceful: refuses new calls (503), lets calls in progress finish within the grace,
    /// ends the rest, then flushes the hook queue. Returns the counters.
    pub fn shutdown(self) -> Stats {
        self.control.drain.store(true, Ordering::Release);
        self.finish()
    }

    /// A handle that can stop the shards at once from another thread (a second signal).
    pub fn stopper(&self) -> Stopper {
        Stopper { control: self.control.clone(), peers: self.peers.clone() }
    }

    fn finish(self) -> Stats {
        self.stopper().wake_all();
        let mut total = Stats::default();
        for shard in self.shards {
            total.add(&shard.join().unwrap_or_default());
        }
        if let Some(streams) = self.streams {
            streams.stop();
        }
        // Every shard has let go of the queue: delivery flushes it and ends.
        drop(self.peers);
        self.delivery.join();
        total
    }
}

pub struct Stopper {
    control: Arc<Control>,
    peers: Arc<[Peer]>,
}

impl Stopper {
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Release);
        self.wake_all();
    }

    fn wake_all(&self) {
        for peer in self.peers.iter() {
            peer.waker.wake();
        }
    }
}
