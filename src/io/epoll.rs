//! The portable backend: epoll (mio) for readiness, recvmmsg and sendmmsg for the data.

use super::gather::Gather;
use super::mmsg::{RecvBatch, SendQueue};
use super::{Backend, Datagram, Waker, MAX_DATAGRAM, READ_BUDGET};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::Socket;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKE: Token = Token(usize::MAX);

struct Sock {
    socket: Socket,
    local: SocketAddr,
    /// Readable and not yet read empty (mio is edge-triggered).
    ready: bool,
    out: SendQueue,
}

pub struct Epoll {
    poll: Poll,
    events: Events,
    sockets: Vec<Sock>,
    waker: Arc<Waker>,
    batch: RecvBatch,
    gather: Gather,
}

impl Epoll {
    pub fn new(sockets: Vec<(Socket, SocketAddr)>, waker: Arc<Waker>, gather: Gather) -> io::Result<Epoll> {
        let poll = Poll::new()?;
        for (i, (socket, _)) in sockets.iter().enumerate() {
            poll.registry().register(&mut SourceFd(&socket.as_raw_fd()), Token(i), Interest::READABLE)?;
        }
        poll.registry().register(&mut SourceFd(&waker.as_raw_fd()), WAKE, Interest::READABLE)?;
        let sockets = sockets
            .into_iter()
            .map(|(socket, local)| Sock { socket, local, ready: true, out: SendQueue::default() })
            .collect();
        Ok(Epoll {
            poll,
            events: Events::with_capacity(64),
            sockets,
            waker,
            batch: RecvBatch::new(MAX_DATAGRAM),
            gather,
        })
    }
}

impl Backend for Epoll {
    fn turn(&mut self, timeout: Option<Duration>, deliver: &mut dyn FnMut(Datagram<'_>)) -> io::Result<bool> {
        self.flush();
        let pending = self.sockets.iter().any(|s| s.ready);
        let mut timeout = if pending { Some(Duration::ZERO) } else { timeout };
        if let Some(wait) = self.gather.wait(timeout, Instant::now()) {
            // What arrives meanwhile waits in the sockets and is read below in one batch.
            std::thread::sleep(wait);
            timeout = timeout.map(|t| t.saturating_sub(wait));
        }
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        let woke = Instant::now();
        for event in &self.events {
            match event.token() {
                WAKE => self.waker.reset(),
                Token(i) => {
                    if let Some(s) = self.sockets.get_mut(i) {
                        s.ready = true;
                    }
                }
            }
        }
        let mut budget = READ_BUDGET;
        let mut delivered = 0;
        for s in &mut self.sockets {
            let local = s.local;
            while s.ready && budget > 0 {
                let mut each = |src, data: &[u8]| {
                    delivered += 1;
                    deliver(Datagram { local, src, data })
                };
                match self.batch.recv(s.socket.as_raw_fd(), &mut each) {
                    // Fewer than asked: the socket is empty now; the next datagram is a new edge.
                    Ok(n) if n < super::mmsg::BATCH => {
                        s.ready = false;
                        budget = budget.saturating_sub(n);
                    }
                    Ok(n) => budget = budget.saturating_sub(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // ICMP errors from earlier sends surface here (ECONNREFUSED); nothing to do.
                    Err(e) => {
                        tracing::debug!(error = %e, "recvmmsg");
                        budget -= 1;
                    }
                }
            }
        }
        self.gather.turned(delivered, woke);
        Ok(self.sockets.iter().any(|s| s.ready))
    }

    fn send(&mut self, local: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        let i = self.sockets.iter().position(|s| s.local == local).unwrap_or(0);
        if let Some(s) = self.sockets.get_mut(i) {
            s.out.push(dst, bytes);
        }
    }

    fn flush(&mut self) {
        for s in &mut self.sockets {
            s.out.flush(s.socket.as_raw_fd());
        }
    }
}
