//! The kernel-bypass backend (`--io xdp:IFACE`, docs/operating.md "Kernel bypass"): an XDP
//! program on the interface steers UDP for the listen address and port into one AF_XDP
//! socket per shard, bound to the receive queue of the same number; the shard reads frames
//! from its ring and writes whole frames back. The shard keeps its kernel socket for what
//! the program passes on (IP fragments, IPv4 with options, queues past the shards) and for
//! what cannot go out as one frame (larger than the MTU, or to a next hop whose Ethernet
//! address the kernel has not resolved yet): the engine above sees the same datagrams
//! either way.

mod bpf;
mod frame;
mod neigh;
mod xsk;

use super::gather::Gather;
use super::mmsg::{RecvBatch, SendQueue};
use super::{Backend, Datagram, Waker, MAX_DATAGRAM, READ_BUDGET};
use socket2::Socket;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The interface, with the program attached: made once for the server, shared by the
/// shards; dropping the last reference detaches the program.
pub struct Interface {
    pub name: String,
    ifindex: u32,
    mac: [u8; 6],
    /// Largest IP packet the interface sends.
    mtu: usize,
    /// Receive queues: shard N takes queue N when there is one.
    queues: u32,
    steering: bpf::Steering,
}

fn sys(name: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{what}")).ok().map(|s| s.trim().to_string())
}

impl Interface {
    /// Attaches the program for `listen` to `name`. A clean error names what is missing:
    /// the interface, an address to send from, or the privileges.
    pub fn open(name: &str, listen: SocketAddr) -> Result<Arc<Interface>, String> {
        let prefix = format!("--io xdp:{name}");
        let c_name = std::ffi::CString::new(name).map_err(|_| format!("{prefix}: not an interface name"))?;
        // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if ifindex == 0 {
            return Err(format!("{prefix}: no such network interface ({})", io::Error::last_os_error()));
        }
        if listen.ip().is_unspecified() {
            return Err(format!(
                "{prefix}: listen on an address of {name} (not {}): frames are written with it as their source",
                listen.ip()
            ));
        }
        let mac = sys(name, "address")
            .and_then(|m| {
                let bytes: Vec<u8> = m.split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
                <[u8; 6]>::try_from(bytes).ok()
            })
            .ok_or_else(|| format!("{prefix}: {name} has no Ethernet address (XDP here needs Ethernet)"))?;
        let mtu = sys(name, "mtu").and_then(|m| m.parse().ok()).unwrap_or(1500);
        let queues = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
            .unwrap_or(1)
            .max(1) as u32;
        let steering = bpf::Steering::attach(ifindex, listen, queues).map_err(|e| format!("{prefix}: {e}"))?;
        Ok(Arc::new(Interface { name: name.to_string(), ifindex, mac, mtu, queues, steering }))
    }
}

/// What one shard takes of the interface: its queue.
#[derive(Clone)]
pub struct Lane {
    pub iface: Arc<Interface>,
    pub queue: u32,
    /// Spin instead of sleeping (`--xdp-busy-poll`).
    pub busy_poll: bool,
}

struct Sock {
    socket: Socket,
    local: SocketAddr,
    out: SendQueue,
    /// Readable, and not read empty since.
    ready: bool,
}

pub struct Xdp {
    /// None for a shard past the interface's queues: the kernel path serves it.
    xsk: Option<xsk::Xsk>,
    iface: Arc<Interface>,
    neighbours: neigh::Neighbours,
    sockets: Vec<Sock>,
    waker: Arc<Waker>,
    batch: RecvBatch,
    gather: Gather,
    busy_poll: bool,
    frame: Vec<u8>,
    counts: Counts,
    /// What `wait` polls, kept between turns.
    fds: Vec<libc::pollfd>,
}

/// Datagrams that took the ring, and those that took the kernel's socket, each way: logged
/// when the shard ends, so an operator (and the tests) can see which path carried them.
#[derive(Default, Debug)]
struct Counts {
    ring_in: u64,
    socket_in: u64,
    ring_out: u64,
    socket_out: u64,
}

impl Drop for Xdp {
    fn drop(&mut self) {
        let c = &self.counts;
        tracing::info!(
            ring_in = c.ring_in,
            socket_in = c.socket_in,
            ring_out = c.ring_out,
            socket_out = c.socket_out,
            "xdp: datagrams by path"
        );
    }
}

impl Xdp {
    /// The backend of one shard, and how it runs (for the log: the attach mode and the copy
    /// mode, e.g. `xdp native copy`).
    pub fn new(
        lane: Lane,
        sockets: Vec<(Socket, SocketAddr)>,
        waker: Arc<Waker>,
        gather: Gather,
    ) -> io::Result<(Xdp, &'static str)> {
        let iface = lane.iface;
        let xsk = if lane.queue < iface.queues {
            let xsk = xsk::Xsk::open(iface.ifindex, lane.queue).map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => " (baton needs CAP_NET_RAW, or root)",
                    Some(libc::EAFNOSUPPORT) => " (this kernel has no AF_XDP: CONFIG_XDP_SOCKETS)",
                    _ => "",
                };
                let queue = lane.queue;
                io::Error::new(
                    e.kind(),
                    format!("--io xdp:{}: an AF_XDP socket on queue {queue}: {e}{hint}", iface.name),
                )
            })?;
            iface.steering.insert(lane.queue, xsk.fd())?;
            Some(xsk)
        } else {
            None
        };
        let mode = match (iface.steering.attach, xsk.as_ref().map(|x| x.copying)) {
            (bpf::Attach::Native, Some(xsk::Copying::ZeroCopy)) => "xdp native zero-copy",
            (bpf::Attach::Native, Some(xsk::Copying::Copy)) => "xdp native copy",
            (bpf::Attach::Generic, Some(xsk::Copying::ZeroCopy)) => "xdp generic zero-copy",
            (bpf::Attach::Generic, Some(xsk::Copying::Copy)) => "xdp generic copy",
            (_, None) => "xdp (kernel path: no queue for this shard)",
        };
        let neighbours = neigh::Neighbours::new(iface.ifindex)?;
        let sockets = sockets
            .into_iter()
            .map(|(socket, local)| Sock { socket, local, out: SendQueue::default(), ready: true })
            .collect();
        let backend = Xdp {
            xsk,
            iface,
            neighbours,
            sockets,
            waker,
            batch: RecvBatch::new(MAX_DATAGRAM),
            gather,
            busy_poll: lane.busy_poll,
            frame: Vec::with_capacity(xsk::FRAME),
            counts: Counts::default(),
            fds: Vec::new(),
        };
        Ok((backend, mode))
    }

    /// Sleeps on the AF_XDP socket, the kernel sockets and the waker until one is readable
    /// or `timeout` passes; clears the waker and marks the readable sockets.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.fds.clear();
        let mut watch = |fd| self.fds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        watch(self.waker.as_raw_fd());
        for s in &self.sockets {
            watch(s.socket.as_raw_fd());
        }
        watch(self.neighbours.changes_fd());
        if let Some(x) = &self.xsk {
            watch(x.fd());
        }
        let ms = match timeout {
            _ if self.busy_poll => 0,
            // Rounded up: a timer due in 0.3 ms must not turn into a busy loop.
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
            None => -1,
        };
        // SAFETY: `fds` is a live array of pollfd of the length given.
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        if self.fds[0].revents != 0 {
            self.waker.reset();
        }
        for (s, fd) in self.sockets.iter_mut().zip(&self.fds[1..]) {
            s.ready |= fd.revents != 0;
        }
        if self.fds[1 + self.sockets.len()].revents != 0 {
            self.neighbours.changed();
        }
        Ok(())
    }
}

impl Backend for Xdp {
    fn turn(&mut self, timeout: Option<Duration>, deliver: &mut dyn FnMut(Datagram<'_>)) -> io::Result<bool> {
        self.flush();
        // Frames waiting in the ring are seen without a system call: then there is no wait.
        let pending = self.xsk.as_ref().is_some_and(xsk::Xsk::has_rx) || self.sockets.iter().any(|s| s.ready);
        if !pending {
            let mut timeout = timeout;
            if let Some(wait) = self.gather.wait(timeout, Instant::now()) {
                std::thread::sleep(wait);
                timeout = timeout.map(|t| t.saturating_sub(wait));
            }
            self.wait(timeout)?;
        }
        let woke = Instant::now();
        let (mut ring, mut socket) = (0, 0);
        let mut more = false;
        let local = self.sockets.first().map(|s| s.local);
        if let (Some(x), Some(local)) = (&mut self.xsk, local) {
            let read = x.receive(READ_BUDGET, &mut |bytes| {
                if let Some(udp) = frame::parse(bytes).filter(|u| u.dst.port() == local.port()) {
                    ring += 1;
                    deliver(Datagram { local, src: udp.src, data: udp.payload });
                }
            });
            more = read == READ_BUDGET;
        }
        for s in self.sockets.iter_mut().filter(|s| s.ready) {
            let local = s.local;
            let mut each = |src, data: &[u8]| {
                socket += 1;
                deliver(Datagram { local, src, data })
            };
            match self.batch.recv(s.socket.as_raw_fd(), &mut each) {
                // Fewer than a batch: read empty.
                Ok(n) => s.ready = n == super::mmsg::BATCH,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg");
                    s.ready = false;
                }
            }
            more |= s.ready;
        }
        self.counts.ring_in += ring as u64;
        self.counts.socket_in += socket as u64;
        self.gather.turned(ring + socket, woke);
        Ok(more || self.busy_poll)
    }

    fn send(&mut self, local: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        let i = self.sockets.iter().position(|s| s.local == local).unwrap_or(0);
        let Some(from) = self.sockets.get(i).map(|s| s.local) else { return };
        let fits = frame::overhead(&from) + bytes.len() <= self.iface.mtu + 14;
        if let (Some(x), true) = (&mut self.xsk, fits) {
            if let Some(dst_mac) = self.neighbours.mac(dst.ip(), Instant::now()) {
                let macs = frame::Macs { src: self.iface.mac, dst: dst_mac };
                if frame::write(&mut self.frame, macs, from, dst, &bytes).is_some() {
                    let whole = &self.frame;
                    let sent = x.send(|buf| {
                        let to = buf.get_mut(..whole.len())?;
                        to.copy_from_slice(whole);
                        Some(whole.len())
                    });
                    if sent {
                        self.counts.ring_out += 1;
                        return;
                    }
                }
            }
        }
        if let Some(s) = self.sockets.get_mut(i) {
            self.counts.socket_out += 1;
            s.out.push(dst, bytes);
        }
    }

    fn flush(&mut self) {
        if let Some(x) = &mut self.xsk {
            x.kick();
        }
        for s in &mut self.sockets {
            s.out.flush(s.socket.as_raw_fd());
        }
    }
}
