//! Binding UDP sockets the way every shard needs them.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// What the kernel here allows (`net.core.rmem_max`); asking for more is silently capped.
const RECV_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr`, with a large receive buffer so bursts are
/// queued rather than dropped, and SO_REUSEPORT so every shard can bind the same address.
pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::warn!(error = %e, "could not raise SO_RCVBUF; bursts may be dropped");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}
