//! The io_uring backend: one ring per shard. Each socket has one multishot recvmsg fed
//! from a ring of provided buffers; sends are queued as submissions and go to the kernel
//! with the same `io_uring_enter` that waits for the next datagram, so one wake-up
//! carries both what arrived and what it caused.
//!
//! Sends are `MSG_DONTWAIT` and post no completion when they succeed: the kernel issues
//! them inline while it takes the submissions (a UDP send that would block fails at once
//! rather than waiting in the kernel, as a datagram dropped by the network would), so a
//! send's buffer is free as soon as the `io_uring_enter` that submitted it returns, and a
//! wait is never cut short by the completions of our own sends.
//!
//! While datagrams arrive steadily, the same enter also gathers them: the kernel's minimum
//! wait (6.12 and later) holds the wake-up until the coalescing time has passed, then
//! returns at the first completion, having run the task work of up to a budget of
//! datagrams. Older kernels do without (logged): a sleep before a wait for one completion
//! was tried and collapsed at 10,000 transfers/s (median latency 50 ms): an enter that
//! waits for one completion runs a bounded number of datagrams' task work, so each sleep
//! was followed by a short batch.

use super::gather::Gather;
use super::mmsg::socket_addr;
use super::{Backend, Datagram, Waker, MAX_DATAGRAM, READ_BUDGET};
use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use socket2::{SockAddr, Socket};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RING_ENTRIES: u32 = 1024;
/// Provided receive buffers (a power of two, as the kernel requires).
const BUFFERS: u16 = 256;
const GROUP: u16 = 0;
const NAME_LEN: usize = size_of::<libc::sockaddr_storage>();
/// `io_uring_recvmsg_out`, then the source address, then the datagram.
const BUFFER_SIZE: usize = 16 + NAME_LEN + MAX_DATAGRAM;

/// An enter that waits for one completion runs the task work of at most this many
/// received datagrams (the kernel's `IO_LOCAL_TW_DEFAULT_MAX`) and leaves the rest queued
/// in the kernel, where the shard cannot see it. A turn that brought this many is taken as
/// a backlog: the shard comes back at once, without waiting or gathering. (Gathering after
/// such a turn capped a shard near 20 datagrams per coalescing time, and it collapsed at
/// 15,000 transfers/s.)
const KERNEL_BATCH: usize = 20;

const WAKE: u64 = u64::MAX;
/// Only a failed send posts a completion.
const SEND: u64 = u64::MAX - 1;
/// Receives are tagged with this bit and the socket's index.
const RECV: u64 = 1 << 62;

/// A datagram in flight: everything the kernel reads, kept at a fixed address until its
/// completion arrives.
struct Outgoing {
    hdr: libc::msghdr,
    iov: libc::iovec,
    dst: SockAddr,
    bytes: Vec<u8>,
}

struct Sock {
    socket: Socket,
    local: SocketAddr,
    /// Read by the kernel when a multishot receive is armed.
    hdr: Box<libc::msghdr>,
}

/// Receive buffers the kernel picks from, returned to it once a datagram is handled.
struct Buffers {
    ring: *mut BufRingEntry,
    ring_len: usize,
    memory: Vec<u8>,
    tail: u16,
}

impl Buffers {
    fn new(uring: &IoUring) -> io::Result<Buffers> {
        let ring_len = usize::from(BUFFERS) * size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping (page aligned, as the kernel requires).
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers =
            Buffers { ring: ring.cast(), ring_len, memory: vec![0; usize::from(BUFFERS) * BUFFER_SIZE], tail: 0 };
        // SAFETY: the mapping lives as long as `buffers`, which the backend drops after the ring.
        unsafe { uring.submitter().register_buf_ring_with_flags(ring as u64, BUFFERS, GROUP, 0)? };
        for bid in 0..BUFFERS {
            buffers.give_back(bid);
        }
        Ok(buffers)
    }

    /// Hands buffer `bid` to the kernel again.
    fn give_back(&mut self, bid: u16) {
        let addr = self.memory.as_mut_ptr() as u64 + u64::from(bid) * BUFFER_SIZE as u64;
        // SAFETY: the slot index is masked into the mapping; the tail is published with
        // release ordering after the entry is written, as the kernel's protocol says.
        unsafe {
            let entry = &mut *self.ring.add(usize::from(self.tail & (BUFFERS - 1)));
            entry.set_addr(addr);
            entry.set_len(BUFFER_SIZE as u32);
            entry.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = BufRingEntry::tail(self.ring) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * BUFFER_SIZE;
        &self.memory[start..start + len.min(BUFFER_SIZE)]
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ring.cast(), self.ring_len) };
    }
}

/// Why io_uring could not be set up, and what it was given back.
pub type Refused = (io::Error, Vec<(Socket, SocketAddr)>, Gather);

pub struct Uring {
    // Dropped first: the kernel lets go of the buffers and sends below.
    uring: IoUring,
    buffers: Buffers,
    sockets: Vec<Sock>,
    waker: Arc<Waker>,
    /// Sends queued since the last `io_uring_enter`; the kernel is done with them once it returns.
    /// Boxed: a queued entry points into its `Outgoing`, which must not move when this grows.
    #[allow(clippy::vec_box)]
    sends: Vec<Box<Outgoing>>,
    completions: Vec<(u64, i32, u32)>,
    gather: Gather,
}

impl Uring {
    /// Sets up the ring; on failure the sockets (and the coalescing) come back so another
    /// backend can use them.
    pub fn new(sockets: Vec<(Socket, SocketAddr)>, waker: Arc<Waker>, mut gather: Gather) -> Result<Uring, Refused> {
        let uring = match IoUring::builder()
            .setup_cqsize(RING_ENTRIES * 4)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(RING_ENTRIES)
        {
            Ok(u) => u,
            Err(e) => return Err((e, sockets, gather)),
        };
        let buffers = match Buffers::new(&uring) {
            Ok(b) => b,
            Err(e) => return Err((e, sockets, gather)),
        };
        let sockets = sockets
            .into_iter()
            .map(|(socket, local)| {
                // SAFETY: all-zero is a valid msghdr; only the name length matters here.
                let mut hdr: Box<libc::msghdr> = Box::new(unsafe { zeroed() });
                hdr.msg_namelen = NAME_LEN as libc::socklen_t;
                Sock { socket, local, hdr }
            })
            .collect();
        if gather.coalescing() && !uring.params().is_feature_min_timeout() {
            tracing::info!("io_uring has no minimum wait before Linux 6.12: this shard does not coalesce");
            gather = Gather::new(Duration::ZERO, Instant::now());
        }
        let mut backend = Uring { uring, buffers, sockets, waker, sends: Vec::new(), completions: Vec::new(), gather };
        let armed = (0..backend.sockets.len()).try_for_each(|i| backend.arm_receive(i)).and_then(|()| {
            backend.arm_wake()?;
            backend.uring.submit().map(drop)
        });
        match armed {
            Ok(()) => Ok(backend),
            Err(e) => {
                let Uring { sockets, gather, .. } = backend;
                Err((e, sockets.into_iter().map(|s| (s.socket, s.local)).collect(), gather))
            }
        }
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry names memory that lives as long as the kernel uses it:
            // socket headers and buffers for the backend's life, sends until the next enter.
            if unsafe { self.uring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.uring.submit()?;
        }
    }

    fn arm_receive(&mut self, i: usize) -> io::Result<()> {
        let s = &self.sockets[i];
        let entry =
            opcode::RecvMsgMulti::new(Fd(s.socket.as_raw_fd()), &*s.hdr, GROUP).build().user_data(RECV | i as u64);
        self.push(entry)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry =
            opcode::PollAdd::new(Fd(self.waker.as_raw_fd()), libc::POLLIN as u32).multi(true).build().user_data(WAKE);
        self.push(entry)
    }

    /// Submits what is queued and, unless told not to, waits for a completion.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Completions are only posted when the ring is entered to wait for them (deferred
        // task work), so even "don't wait" enters asking for one, with a zero timeout.
        let timeout = if self.uring.completion().is_empty() { timeout } else { Some(Duration::ZERO) };
        // Gathering: up to a budget's worth, or whatever came once the wait is over.
        let (want, min_wait) = match self.gather.wait(timeout, Instant::now()) {
            Some(wait) => (READ_BUDGET, wait.as_micros() as u32),
            None => (1, 0),
        };
        let args = SubmitArgs::new().min_wait_usec(min_wait);
        let result = match timeout {
            None => self.uring.submitter().submit_with_args(want, &args),
            Some(t) => {
                let ts = Timespec::from(t);
                self.uring.submitter().submit_with_args(want, &args.timespec(&ts))
            }
        };
        let result = match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        };
        if self.uring.submission().is_empty() {
            self.sends.clear();
        }
        result
    }

    fn received(&mut self, i: usize, result: i32, flags: u32, deliver: &mut dyn FnMut(Datagram<'_>)) {
        if result >= 0 {
            if let Some(bid) = cqueue::buffer_select(flags) {
                let s = &self.sockets[i];
                let buffer = self.buffers.get(bid, result as usize);
                if let Ok(msg) = io_uring::types::RecvMsgOut::parse(buffer, &s.hdr) {
                    // SAFETY: all-zero is a valid storage; the name is at most its size.
                    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
                    let name = msg.name_data();
                    // SAFETY: copies `name` (no longer than the storage) into the storage.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            name.as_ptr(),
                            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                            name.len().min(NAME_LEN),
                        )
                    };
                    let src = socket_addr(&storage, name.len() as libc::socklen_t);
                    if let (Some(src), false) = (src, msg.is_payload_truncated()) {
                        deliver(Datagram { local: s.local, src, data: msg.payload_data() });
                    }
                }
                self.buffers.give_back(bid);
            }
        } else if result != -libc::ENOBUFS {
            tracing::debug!(error = %io::Error::from_raw_os_error(-result), "multishot recvmsg");
        }
        if !cqueue::more(flags) {
            // Ended (out of buffers, an ICMP error): the buffers are back, so arm it again.
            if let Err(e) = self.arm_receive(i) {
                tracing::error!(error = %e, "cannot re-arm the receive; the shard stops hearing this socket");
            }
        }
    }
}

impl Backend for Uring {
    fn turn(&mut self, timeout: Option<Duration>, deliver: &mut dyn FnMut(Datagram<'_>)) -> io::Result<bool> {
        self.enter(timeout)?;
        let woke = Instant::now();
        let mut completions = std::mem::take(&mut self.completions);
        completions.extend(self.uring.completion().take(READ_BUDGET).map(|c| (c.user_data(), c.result(), c.flags())));
        let mut received = 0;
        for &(data, result, flags) in &completions {
            match data {
                WAKE => {
                    self.waker.reset();
                    if !cqueue::more(flags) {
                        self.arm_wake()?;
                    }
                }
                SEND => tracing::debug!(error = %io::Error::from_raw_os_error(-result), "sendmsg"),
                d => {
                    received += 1;
                    self.received((d & !RECV) as usize, result, flags, deliver);
                }
            }
        }
        self.gather.turned(received, woke);
        completions.clear();
        self.completions = completions;
        Ok(!self.uring.completion().is_empty() || received >= KERNEL_BATCH)
    }

    fn send(&mut self, local: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        let i = self.sockets.iter().position(|s| s.local == local).unwrap_or(0);
        let Some(fd) = self.sockets.get(i).map(|s| s.socket.as_raw_fd()) else { return };
        // SAFETY: all-zero is a valid msghdr and iovec; the pointers are set below.
        let mut out = Box::new(Outgoing { hdr: unsafe { zeroed() }, iov: unsafe { zeroed() }, dst: dst.into(), bytes });
        out.iov = libc::iovec { iov_base: out.bytes.as_mut_ptr().cast(), iov_len: out.bytes.len() };
        out.hdr.msg_name = out.dst.as_ptr() as *mut _;
        out.hdr.msg_namelen = out.dst.len();
        out.hdr.msg_iov = &mut out.iov;
        out.hdr.msg_iovlen = 1;
        let entry = opcode::SendMsg::new(Fd(fd), &out.hdr)
            .flags(libc::MSG_DONTWAIT as u32)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(SEND);
        // Kept before the push: a full queue is submitted (and this send issued) inside it.
        self.sends.push(out);
        if let Err(e) = self.push(entry) {
            tracing::debug!(%dst, error = %e, "cannot queue a send");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.enter(Some(Duration::ZERO)) {
            tracing::debug!(error = %e, "io_uring submit");
        }
    }
}
