//! SIP over TCP and TLS (RFC 3261 §18): listeners and connections on stream threads of
//! their own, one per shard, each accepting from its own `SO_REUSEPORT` listener (the
//! kernel spreads the connections) and sharing one table of connections. A connection's bytes are cut into messages
//! (`baton_proto::sip::frame`) and each goes to the shard that owns it by the same rule as
//! a datagram (`shard/route.rs`); what a shard sends on a stream comes back here and leaves
//! on its connection, or on a new one to its destination once that one is gone
//! (docs/operating.md, "TCP and TLS").

mod conn;
pub mod tls;

use crate::shard::Peer;
use baton_proto::{ConnId, Flow, Transport};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::{Certificate, TlsFiles};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Messages waiting to be written on one connection (a trunk's connection carries every
/// call): past that, messages for a peer that reads too slowly are lost (counted) rather
/// than grow baton's memory.
const OUT_QUEUE: usize = 4096;
/// Messages from the shards waiting for this thread.
const DISPATCH_QUEUE: usize = 65_536;
/// How long a TCP connect or a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// The streams' limits.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// `tcp:`/`tls:` listen addresses; none means no stream thread.
    pub listen: Vec<(Transport, SocketAddr)>,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message, and so the most a partial message may buffer.
    pub max_message: usize,
    /// A connection that sends nothing (and whose message does not complete) this long is closed.
    pub idle: Duration,
    /// Connections one source address may hold open.
    pub per_source: usize,
    /// Connections in all.
    pub max_connections: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            listen: Vec::new(),
            tls: None,
            limits: Limits {
                max_message: 65_535,
                idle: Duration::from_secs(300),
                per_source: 100,
                max_connections: 10_000,
            },
        }
    }
}

/// A message a shard sends on a stream.
#[derive(Debug)]
pub struct Outgoing {
    pub flow: Flow,
    pub bytes: Vec<u8>,
}

/// What the streams counted, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub open: AtomicU64,
    pub received: AtomicU64,
    /// Messages lost: a shard's queue or a connection's was full, or no connection could be made.
    pub dropped: AtomicU64,
    /// Connections closed for a message that could not be framed.
    pub unframed: AtomicU64,
}

/// How a shard reaches the streams.
#[derive(Clone, Debug)]
pub struct StreamSender {
    /// One per stream thread.
    txs: Arc<[mpsc::Sender<Outgoing>]>,
    counters: Arc<Counters>,
}

impl StreamSender {
    /// Queues a message; never waits (a full queue loses it, counted). Any stream thread
    /// can write on any connection; messages to one destination all go through one
    /// thread, so that a connection to open is opened once.
    pub fn send(&self, out: Outgoing) {
        let key = out.flow.conn.map_or_else(|| fnv(&out.flow.remote), |c| c.0);
        let tx = &self.txs[(key % self.txs.len() as u64) as usize];
        if tx.try_send(out).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A cheap, stable hash of an address (FNV-1a over its text form's bytes would allocate).
fn fnv(addr: &SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    };
    let bytes = ip.to_le_bytes().into_iter().chain(addr.port().to_le_bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[derive(Default)]
struct Table {
    conns: HashMap<ConnId, mpsc::Sender<Vec<u8>>>,
    /// The connection to reuse towards an address (RFC 3261 §18.1.1 lets any open one serve).
    by_peer: HashMap<(Transport, SocketAddr), ConnId>,
    per_source: HashMap<IpAddr, usize>,
}

/// What every task of the stream thread shares.
struct Shared {
    peers: Arc<[Peer]>,
    limits: Limits,
    table: Mutex<Table>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
    client: Option<TlsConnector>,
}

impl Shared {
    /// Takes a connection out of the table: nothing new is sent on it.
    fn unlist(&self, id: ConnId, flow: Flow) {
        if let Ok(mut table) = self.table.lock() {
            table.conns.remove(&id);
            if table.by_peer.get(&(flow.transport, flow.remote)) == Some(&id) {
                table.by_peer.remove(&(flow.transport, flow.remote));
            }
        }
    }

    /// Admits a connection from `ip` under the per-source and total caps.
    fn admit(&self, ip: IpAddr) -> bool {
        let Ok(mut table) = self.table.lock() else { return false };
        let total = self.counters.open.load(Ordering::Relaxed) as usize;
        let from = table.per_source.entry(ip).or_default();
        if *from >= self.limits.per_source || total >= self.limits.max_connections {
            return false;
        }
        *from += 1;
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn release(&self, ip: IpAddr) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(n) = table.per_source.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    table.per_source.remove(&ip);
                }
            }
        }
    }
}

/// The running stream thread.
pub struct Streams {
    sender: StreamSender,
    addrs: Vec<(Transport, SocketAddr)>,
    certificate: Option<Arc<Certificate>>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl Streams {
    /// Binds every listener (an error names the one that failed) and starts the thread.
    /// With `cores`, stream thread N runs on shard N's core: a shard and the connections
    /// its thread accepted share a cache.
    pub fn start(settings: StreamSettings, peers: Arc<[Peer]>, cores: &[core_affinity::CoreId]) -> io::Result<Streams> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let wants_tls = settings.listen.iter().any(|(t, _)| *t == Transport::Tls);
        let certificate = match (&settings.tls, wants_tls) {
            (Some(files), _) => Some(Certificate::load(files.clone()).map_err(invalid)?),
            (None, true) => return Err(invalid("a tls: listener needs --tls-cert and --tls-key".into())),
            (None, false) => None,
        };
        let acceptor = match &certificate {
            Some(c) => Some(TlsAcceptor::from(c.server_config().map_err(invalid)?)),
            None => None,
        };
        let client = match &certificate {
            Some(c) => Some(TlsConnector::from(c.client_config().map_err(invalid)?)),
            None => None,
        };
        let threads = peers.len().max(1);
        // Each thread its own listener on every address; the first resolves a port 0.
        let mut addrs: Vec<(Transport, SocketAddr)> = settings.listen.clone();
        let mut listeners: Vec<Vec<(Transport, std::net::TcpListener)>> = Vec::with_capacity(threads);
        for _ in 0..threads {
            let mut mine = Vec::with_capacity(addrs.len());
            for (transport, addr) in addrs.iter_mut() {
                let listener = listen(*addr)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {transport}:{addr}: {e}")))?;
                *addr = listener.local_addr()?;
                mine.push((*transport, listener));
            }
            listeners.push(mine);
        }
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            peers,
            limits: settings.limits,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
            counters: counters.clone(),
            client,
        });
        let (stop, stopped) = watch::channel(false);
        let mut txs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for (i, mine) in listeners.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(DISPATCH_QUEUE);
            txs.push(tx);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (shared, acceptor, mut stopped) = (shared.clone(), acceptor.clone(), stopped.clone());
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let thread = std::thread::Builder::new().name(format!("baton-streams-{i}")).spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                runtime.block_on(async move {
                    for (transport, std) in mine {
                        let listener = match TcpListener::from_std(std) {
                            Ok(l) => l,
                            Err(e) => return tracing::error!(error = %e, "stream listener lost"),
                        };
                        let tls = (transport == Transport::Tls).then(|| acceptor.clone()).flatten();
                        tokio::spawn(accept(shared.clone(), listener, transport, tls));
                    }
                    tokio::spawn(dispatch(shared.clone(), rx));
                    let _ = stopped.wait_for(|s| *s).await;
                });
            })?;
            handles.push(thread);
        }
        Ok(Streams {
            sender: StreamSender { txs: txs.into(), counters: counters.clone() },
            addrs,
            certificate,
            stop,
            threads: handles,
            counters,
        })
    }

    pub fn sender(&self) -> StreamSender {
        self.sender.clone()
    }

    /// The bound listeners (a port 0 resolved).
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// Reads the TLS certificate and key again (SIGHUP); open connections keep theirs.
    pub fn reload_tls(&self) -> Result<(), String> {
        match &self.certificate {
            Some(c) => c.reload(),
            None => Ok(()),
        }
    }

    /// Closes every listener and connection.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// A listening socket that shares its address with the other stream threads'.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, transport: Transport, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((tcp, remote)) = listener.accept().await else { continue };
        if !shared.admit(remote.ip()) {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            continue; // dropped: closes at once
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let Ok(local) = tcp.local_addr() else {
            shared.release(remote.ip());
            shared.counters.open.fetch_sub(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let flow = Flow { transport, local, remote, conn: None };
            match tls {
                None => {
                    let (flow, tx, rx) = shared.register(flow);
                    conn::serve(shared.clone(), tcp, flow, rx, tx).await;
                }
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let (flow, tx, rx) = shared.register(flow);
                        conn::serve(shared.clone(), stream, flow, rx, tx).await;
                    }
                    _ => {
                        tracing::debug!(%remote, "TLS handshake failed or timed out");
                        shared.counters.open.fetch_sub(1, Ordering::Relaxed);
                    }
                },
            }
            shared.release(remote.ip());
        });
    }
}

/// Sends what the shards hand over: on the flow's connection, else on any open one to the
/// destination, else on a new one.
async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut connecting: HashMap<(Transport, SocketAddr), Vec<Vec<u8>>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<((Transport, SocketAddr), Option<mpsc::Sender<Vec<u8>>>)>();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(Outgoing { flow, bytes }) = out else { return };
                let key = (flow.transport, flow.remote);
                let open = shared.table.lock().ok().and_then(|t| {
                    let id = flow.conn.filter(|id| t.conns.contains_key(id)).or_else(|| t.by_peer.get(&key).copied())?;
                    t.conns.get(&id).cloned()
                });
                match open {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => match connecting.get_mut(&key) {
                        Some(waiting) if waiting.len() < OUT_QUEUE => waiting.push(bytes),
                        Some(_) => { shared.counters.dropped.fetch_add(1, Ordering::Relaxed); }
                        None => {
                            connecting.insert(key, vec![bytes]);
                            tokio::spawn(connect(shared.clone(), key, done_tx.clone()));
                        }
                    },
                }
            }
            Some((key, tx)) = done_rx.recv() => {
                let waiting = connecting.remove(&key).unwrap_or_default();
                match tx {
                    Some(tx) => waiting.into_iter().for_each(|bytes| {
                        if tx.try_send(bytes).is_err() {
                            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                    None => { shared.counters.dropped.fetch_add(waiting.len() as u64, Ordering::Relaxed); }
                }
            }
        }
    }
}

type Connected = mpsc::UnboundedSender<((Transport, SocketAddr), Option<mpsc::Sender<Vec<u8>>>)>;

/// Opens a connection to `dst` (TLS over it when asked), registers it and serves it.
async fn connect(shared: Arc<Shared>, (transport, dst): (Transport, SocketAddr), done: Connected) {
    let tcp = match tokio::time::timeout(HANDSHAKE, TcpStream::connect(dst)).await {
        Ok(Ok(tcp)) => tcp,
        _ => {
            tracing::debug!(%dst, %transport, "cannot connect");
            let _ = done.send(((transport, dst), None));
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return drop(done.send(((transport, dst), None))) };
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let flow = Flow { transport, local, remote: dst, conn: None };
    match (transport, &shared.client) {
        (Transport::Tls, Some(client)) => {
            let name = rustls::pki_types::ServerName::IpAddress(dst.ip().into());
            match tokio::time::timeout(HANDSHAKE, client.connect(name, tcp)).await {
                Ok(Ok(stream)) => {
                    let (flow, tx, rx) = shared.register(flow);
                    let _ = done.send(((transport, dst), Some(tx.clone())));
                    conn::serve(shared.clone(), stream, flow, rx, tx).await;
                }
                _ => {
                    tracing::debug!(%dst, "TLS handshake failed");
                    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
                    let _ = done.send(((transport, dst), None));
                }
            }
        }
        (Transport::Tls, None) | (Transport::Udp, _) => {
            shared.counters.open.fetch_sub(1, Ordering::Relaxed);
            let _ = done.send(((transport, dst), None));
        }
        (Transport::Tcp, _) => {
            let (flow, tx, rx) = shared.register(flow);
            let _ = done.send(((transport, dst), Some(tx.clone())));
            conn::serve(shared.clone(), tcp, flow, rx, tx).await;
        }
    }
}
