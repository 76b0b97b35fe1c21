//! A running baton: sockets bound, hook workers started, the shard thread spinning.

use crate::engine::{Engine, Settings, Stats};
use crate::hooks::worker::{HookSettings, Hooks};
use crate::io::bind_udp;
use crate::shard::{reply_sink, Control, Shard, WAKER};
use mio::{Poll, Waker};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub settings: Settings,
    pub hooks: HookSettings,
    /// On shutdown, how long calls in progress may take to finish.
    pub grace: Duration,
    /// Where `/metrics` and `/healthz` are served, if anywhere.
    pub metrics: Option<SocketAddr>,
}

pub struct Server {
    addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    control: Arc<Control>,
    waker: Arc<Waker>,
    shard: JoinHandle<Stats>,
}

impl Server {
    pub fn start(config: ServerConfig) -> std::io::Result<Server> {
        let poll = Poll::new()?;
        let mut sockets = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            let socket = bind_udp(*addr)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on udp:{addr}: {e}")))?;
            let local = socket.local_addr()?;
            sockets.push((socket, local));
        }
        Shard::register(&poll, &mut sockets)?;
        let addrs = sockets.iter().map(|(_, a)| *a).collect();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, inbox) = crossbeam_channel::unbounded();
        let metrics = crate::api::Metrics { shard: Arc::default(), hooks: config.hooks.counters.clone() };
        let metrics_addr = match config.metrics {
            Some(addr) => Some(crate::api::serve(addr, metrics.clone())?),
            None => None,
        };
        let hooks = Hooks::start(config.hooks, reply_sink(tx, waker.clone()))?;
        let control = Arc::new(Control::default());
        let shard = Shard {
            engine: Engine::new(Arc::new(config.settings), 0, fastrand::u64(..)),
            poll,
            sockets,
            inbox,
            hooks,
            control: control.clone(),
            grace: config.grace,
            held: Default::default(),
            held_warned: None,
            gauges: metrics.shard.clone(),
        };
        let shard = std::thread::Builder::new().name("baton-shard-0".into()).spawn(move || shard.run())?;
        Ok(Server { addrs, metrics_addr, control, waker, shard })
    }

    /// The bound addresses (a port of 0 in the config is resolved here).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Where `/metrics` is served (resolved when the config said port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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

    /// A handle that can ask for a stop from another thread (a second signal).
    pub fn control(&self) -> (Arc<Control>, Arc<Waker>) {
        (self.control.clone(), self.waker.clone())
    }

    fn finish(self) -> Stats {
        let _ = self.waker.wake();
        self.shard.join().unwrap_or_default()
    }
}
