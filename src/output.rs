//! What the sans-IO core hands to whoever drives it (a shard, a test, an embedding).

use crate::hooks::job::HookJob;
use std::net::SocketAddr;
use std::sync::Arc;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The listening address to send from.
    pub local: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Hook(HookJob),
    /// The call, which sent hooks, is forgotten: its hook queue can close after what was
    /// already queued. (A call that never sent one has no queue to close.)
    CallGone(Arc<str>),
}
