//! Datagram backends behind one trait, chosen at start (`--io auto|uring|epoll|xdp:IFACE`):
//! io_uring, the portable path of epoll with recvmmsg/sendmmsg, and AF_XDP kernel bypass. A backend owns a shard's sockets
//! and its wake-up; the shard loop above it is the same for both.

mod epoll;
mod gather;
mod mmsg;
mod socket;
mod uring;
mod wake;
pub mod xdp;

pub use socket::bind;
pub use wake::Waker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which backend runs the shards.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum IoMode {
    /// io_uring where the kernel allows it, else epoll (never XDP).
    #[default]
    Auto,
    Uring,
    Epoll,
    /// AF_XDP on this interface (`xdp:IFACE`).
    Xdp(String),
}

impl std::str::FromStr for IoMode {
    type Err = String;

    fn from_str(s: &str) -> Result<IoMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IoMode::Auto),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            "epoll" => Ok(IoMode::Epoll),
            _ => match s.trim().strip_prefix("xdp:") {
                Some(iface) if !iface.is_empty() => Ok(IoMode::Xdp(iface.to_string())),
                _ => Err(format!("{s:?}: must be auto, uring, epoll or xdp:INTERFACE")),
            },
        }
    }
}

impl TryFrom<String> for IoMode {
    type Error = String;

    fn try_from(s: String) -> Result<IoMode, String> {
        s.parse()
    }
}

impl std::fmt::Display for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoMode::Auto => f.write_str("auto"),
            IoMode::Uring => f.write_str("uring"),
            IoMode::Epoll => f.write_str("epoll"),
            IoMode::Xdp(iface) => write!(f, "xdp:{iface}"),
        }
    }
}

/// One datagram as received: borrowed from the backend's buffer until the callback returns.
pub struct Datagram<'a> {
    pub local: SocketAddr,
    pub src: SocketAddr,
    pub data: &'a [u8],
}

pub trait Backend {
    /// Sends what is queued, sleeps until a datagram or a wake-up arrives or `timeout`
    /// passes (while datagrams arrive steadily, not before the coalescing time since the
    /// last wake-up), then hands the datagrams received (up to a budget) to `deliver`. True when
    /// more may be waiting: the caller should come back without sleeping.
    fn turn(&mut self, timeout: Option<Duration>, deliver: &mut dyn FnMut(Datagram<'_>)) -> std::io::Result<bool>;
    /// Queues a datagram to send from the socket bound to `local` (or the first).
    fn send(&mut self, local: SocketAddr, dst: SocketAddr, bytes: Vec<u8>);
    /// Hands queued datagrams to the kernel now rather than at the next turn.
    fn flush(&mut self);
}

/// A shard's shortest time between wake-ups under steady traffic by default
/// (`--coalesce-us`): at 10,000 transfers/s it cut the CPU per transfer by 10–30 % here,
/// for 0.2–0.4 ms more median latency (perf/run.sh, docs/measurements.md).
pub const COALESCE: Duration = Duration::from_micros(200);
/// The longest allowed: well under T1, so coalescing can never look like loss.
pub const COALESCE_MAX: Duration = Duration::from_millis(50);

/// Datagrams read in one turn before timers and the inboxes get theirs.
const READ_BUDGET: usize = 512;
/// The largest UDP payload, so nothing is truncated.
const MAX_DATAGRAM: usize = 65_536;

/// Opens a shard's backend over its bound sockets, woken by `waker`, gathering datagrams
/// for up to `coalesce` while they arrive steadily (see `gather`). `Auto` tries io_uring
/// and falls back to epoll; the name of the one chosen comes back for the log. Call it on
/// the thread that will turn the backend.
pub fn open(
    mode: &IoMode,
    sockets: Vec<(socket2::Socket, SocketAddr)>,
    waker: Arc<Waker>,
    coalesce: Duration,
    lane: Option<xdp::Lane>,
) -> std::io::Result<(Box<dyn Backend>, &'static str)> {
    if !coalesce.is_zero() {
        gather::tighten_timer_slack();
    }
    let gather = gather::Gather::new(coalesce, std::time::Instant::now());
    match mode {
        IoMode::Xdp(iface) => match lane {
            Some(lane) => {
                let (backend, name) = xdp::Xdp::new(lane, sockets, waker, gather)?;
                Ok((Box::new(backend), name))
            }
            None => Err(std::io::Error::other(format!("--io xdp:{iface}: the interface was not opened"))),
        },
        IoMode::Epoll => Ok((Box::new(epoll::Epoll::new(sockets, waker, gather)?), "epoll")),
        IoMode::Uring => match uring::Uring::new(sockets, waker, gather) {
            Ok(b) => Ok((Box::new(b), "io_uring")),
            Err((e, ..)) => Err(std::io::Error::new(e.kind(), format!("--io uring: {e}"))),
        },
        IoMode::Auto => match uring::Uring::new(sockets, waker.clone(), gather) {
            Ok(b) => Ok((Box::new(b), "io_uring")),
            Err((e, sockets, gather)) => {
                tracing::info!(error = %e, "io_uring is not available here; using epoll");
                Ok((Box::new(epoll::Epoll::new(sockets, waker, gather)?), "epoll"))
            }
        },
    }
}
