//! What the sans-IO core hands to whoever drives it (a shard, a test, an embedding).

use crate::hook::HookJob;
use crate::transport::{ConnId, Flow, Transport};
use std::net::SocketAddr;
use std::sync::Arc;

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The transport to send it on.
    pub transport: Transport,
    /// On a stream transport, the connection to send it on; `None`: the I/O layer finds
    /// or opens one to `dst` (and for UDP there is none).
    pub conn: Option<ConnId>,
    /// The address to send from: the listening socket, or the connection's local end.
    pub local: SocketAddr,
    /// Where it goes.
    pub dst: SocketAddr,
    /// The whole message.
    pub bytes: Vec<u8>,
}

impl Transmit {
    /// `bytes` to send along `flow`.
    pub fn on(flow: Flow, bytes: Vec<u8>) -> Transmit {
        Transmit { transport: flow.transport, conn: flow.conn, local: flow.local, dst: flow.remote, bytes }
    }
}

/// What the engine asks of whoever drives it.
#[derive(Debug)]
pub enum Output {
    /// A message to send.
    Transmit(Transmit),
    /// A webhook to deliver (and, when it has a [`crate::ReplyTo`], to answer with
    /// [`crate::Engine::handle_hook_reply`]).
    Hook(HookJob),
    /// The call, which sent hooks, is forgotten: its hook queue can close after what was
    /// already queued. (A call that never sent one has no queue to close.)
    CallGone(Arc<str>),
}
