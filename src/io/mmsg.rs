//! recvmmsg/sendmmsg: many datagrams per system call on the portable path.

use socket2::SockAddr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Datagrams moved per system call.
pub const BATCH: usize = 32;

/// Buffers for one recvmmsg call, reused for every call.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    pub fn new(size: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![0; size * BATCH],
            size,
            // SAFETY: these are plain C structs for which all-zero is a valid value.
            addrs: vec![unsafe { zeroed() }; BATCH],
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH],
            hdrs: vec![unsafe { zeroed() }; BATCH],
        }
    }

    /// Reads what is waiting on `fd`, up to a batch, and hands each datagram with its
    /// source to `each`. Returns how many were read (0 when none was waiting).
    pub fn recv(&mut self, fd: RawFd, each: &mut dyn FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        for i in 0..BATCH {
            // SAFETY: the pointers name buffers owned by `self` that outlive the call.
            self.iovecs[i] =
                libc::iovec { iov_base: self.bufs[i * self.size..].as_mut_ptr().cast(), iov_len: self.size };
            let hdr = &mut self.hdrs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers pointing into live buffers.
        let n = unsafe {
            libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) };
        }
        let n = n as usize;
        for i in 0..n {
            let hdr = &self.hdrs[i];
            if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue; // larger than any SIP message we accept
            }
            let Some(src) = socket_addr(&self.addrs[i], hdr.msg_hdr.msg_namelen) else { continue };
            let len = (hdr.msg_len as usize).min(self.size);
            each(src, &self.bufs[i * self.size..i * self.size + len]);
        }
        Ok(n)
    }
}

/// A source address as the kernel wrote it.
pub fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the kernel initialised `len` bytes of `storage`, which is a valid storage.
    unsafe { SockAddr::new(*storage, len) }.as_socket()
}

/// Datagrams queued for one socket, sent with as few sendmmsg calls as possible.
#[derive(Default)]
pub struct SendQueue {
    queued: Vec<(SockAddr, Vec<u8>)>,
}

impl SendQueue {
    pub fn push(&mut self, dst: SocketAddr, bytes: Vec<u8>) {
        self.queued.push((dst.into(), bytes));
    }

    /// Sends everything queued. A datagram the kernel refuses is dropped, as the network
    /// would drop it; retransmission timers cover the loss.
    pub fn flush(&mut self, fd: RawFd) {
        let mut start = 0;
        while start < self.queued.len() {
            let chunk = &self.queued[start..(start + BATCH).min(self.queued.len())];
            let mut iovecs: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
            // SAFETY: all-zero is a valid mmsghdr.
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, (dst, bytes)) in chunk.iter().enumerate() {
                iovecs[i] = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
                hdrs[i].msg_hdr.msg_name = dst.as_ptr() as *mut _;
                hdrs[i].msg_hdr.msg_namelen = dst.len();
                hdrs[i].msg_hdr.msg_iov = &mut iovecs[i];
                hdrs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the headers point at addresses and bytes that live in `self.queued`
            // and at `iovecs`, all alive for the call; the kernel only reads them.
            let sent = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as u32, libc::MSG_DONTWAIT) };
            if sent < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::debug!(dst = ?chunk[0].0.as_socket(), error = %e, "sendmmsg");
                if e.kind() == io::ErrorKind::WouldBlock {
                    break; // the socket's buffer is full: the rest is lost like any datagram
                }
                start += 1; // this one is refused (no route, too big): skip it
            } else {
                start += sent.max(1) as usize;
            }
        }
        self.queued.clear();
    }
}
