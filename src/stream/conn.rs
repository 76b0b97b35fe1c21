//! One connection: its bytes cut into messages for the shards, its queue of messages to
//! write. Each connection runs on its own task, so a slow or silent peer only ever holds
//! up itself, and holds at most one message's worth of bytes plus its bounded queue.

use super::{Shared, OUT_QUEUE};
use crate::shard::{route, Handoff};
use baton_proto::sip::{frame, parse, Frame, FrameError, Writer};
use baton_proto::{ConnId, Flow};
use crossbeam_channel::TrySendError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long a closing connection may take to write what was queued for it.
const LAST_WRITE: Duration = Duration::from_secs(1);
/// How long a message may wait for its shard's queue before it is lost.
const STALLED: Duration = Duration::from_secs(2);

/// Runs a connection until either side ends it, then forgets it. When reading ends first,
/// what is already queued (a 400 for an unframable request) still goes out, briefly.
pub async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    flow: Flow,
    rx: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut writing = std::pin::pin!(write(writer, rx));
    let why = tokio::select! {
        why = read(&shared, reader, flow, &tx) => {
            if let Some(id) = flow.conn {
                shared.unlist(id, flow);
            }
            drop(tx);
            let _ = tokio::time::timeout(LAST_WRITE, &mut writing).await;
            why
        }
        why = &mut writing => why,
    };
    tracing::debug!(peer = %flow.remote, transport = %flow.transport, why, "connection closed");
    if let Some(id) = flow.conn {
        shared.unlist(id, flow);
    }
    shared.counters.open.fetch_sub(1, Ordering::Relaxed);
}

/// Writes what is queued, everything waiting at once in one write (a trunk's connection
/// carries every call's messages: one write each would cost a system call each).
async fn write<W: AsyncWrite>(writer: W, mut rx: mpsc::Receiver<Vec<u8>>) -> &'static str {
    tokio::pin!(writer);
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() {
            return "write failed";
        }
        batch.clear();
    }
    let _ = writer.shutdown().await;
    "closed by baton"
}

async fn read<R: AsyncRead>(shared: &Shared, reader: R, flow: Flow, tx: &mpsc::Sender<Vec<u8>>) -> &'static str {
    tokio::pin!(reader);
    let limits = &shared.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match frame(&buf, limits.max_message) {
                Ok(Frame::NeedMore) => break,
                Ok(Frame::Message(n)) => {
                    shared.deliver(flow, &buf[..n]).await;
                    buf.drain(..n);
                }
                Ok(Frame::Ping(n)) => {
                    // RFC 5626 §4.4.1: a CRLF CRLF ping gets a CRLF pong.
                    buf.drain(..n);
                    if tx.try_send(b"\r\n".to_vec()).is_err() {
                        return "write queue full";
                    }
                }
                Ok(Frame::Skip(n)) => {
                    buf.drain(..n);
                }
                Err(e) => {
                    shared.counters.unframed.fetch_add(1, Ordering::Relaxed);
                    refuse(&buf, flow, e, tx);
                    return "unframable message";
                }
            }
        }
        // A message must complete, and a quiet connection ends, within the idle time.
        let read = tokio::time::timeout(limits.idle, reader.read(&mut chunk)).await;
        match read {
            Err(_) => return "idle",
            Ok(Ok(0)) => return "closed by the peer",
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return "read failed",
        }
    }
}

/// A request that cannot be framed is answered 400 when its header section can be read
/// (RFC 3261 §18.3); the connection then closes, since where the next message starts is
/// unknown.
fn refuse(buf: &[u8], flow: Flow, e: FrameError, tx: &mpsc::Sender<Vec<u8>>) {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else { return };
    let Ok(msg) = parse(&buf[..end + 4]) else { return };
    if msg.method().is_none_or(|m| m == "ACK") {
        return;
    }
    let why = match e {
        FrameError::NoContentLength => "Missing Content-Length Header",
        FrameError::BadContentLength => "Bad Content-Length",
        FrameError::TooLarge { .. } => "Message Too Large",
    };
    if let Ok(bytes) = Writer::response_to(&msg, flow.remote, 400, why, None).finish(None) {
        let _ = tx.try_send(bytes);
    }
}

impl Shared {
    /// Hands a message to the shard that owns it, by the same rule as a datagram. A shard
    /// whose queue is full makes this connection wait (and TCP's window push back on the
    /// peer): on a stream no retransmission would bring a dropped message back. A shard
    /// that stays full for `STALLED` loses the message, counted.
    async fn deliver(&self, flow: Flow, msg: &[u8]) {
        let owner = usize::from(route::owner(msg, self.peers.len() as u16).unwrap_or(0));
        let Some(peer) = self.peers.get(owner) else { return };
        let mut handoff = Handoff { flow, bytes: msg.to_vec() };
        let until = tokio::time::Instant::now() + STALLED;
        loop {
            match peer.handoffs.try_send(handoff) {
                Ok(()) => {
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    return peer.waker.wake();
                }
                Err(TrySendError::Full(back)) if tokio::time::Instant::now() < until => {
                    handoff = back;
                    peer.waker.wake();
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Err(_) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// A new connection's queue and id, registered for `flow` (its `conn` set).
    pub fn register(&self, mut flow: Flow) -> (Flow, mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        flow.conn = Some(id);
        if let Ok(mut table) = self.table.lock() {
            table.conns.insert(id, tx.clone());
            table.by_peer.insert((flow.transport, flow.remote), id);
        }
        (flow, tx, rx)
    }
}
