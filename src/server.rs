//! A running baton: sockets bound, hook workers started, the shard thread spinning.

use crate::engine::{Engine, Settings, Stats};
use crate::hooks::worker::{HookSettings, Hooks};
use crate::io::bind_udp;
use crate::shard::{reply_sink, Shard, WAKER};
use mio::{Poll, Waker};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub settings: Settings,
    pub hooks: HookSettings,
}

pub struct Server {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
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
        let hooks = Hooks::start(config.hooks, reply_sink(tx, waker.clone()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shard = Shard {
            engine: Engine::new(Arc::new(config.settings), 0, fastrand::u64(..)),
            poll,
            sockets,
            inbox,
            hooks,
            stop: stop.clone(),
        };
        let shard = std::thread::Builder::new().name("baton-shard-0".into()).spawn(move || shard.run())?;
        Ok(Server { addrs, stop, waker, shard })
    }

    /// The bound addresses (a port of 0 in the config is resolved here).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops the shard, delivers the hooks already queued, and returns the counters.
    pub fn stop(self) -> Stats {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        self.shard.join().unwrap_or_default()
    }
}
