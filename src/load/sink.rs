//! A hook sink for load runs (`baton load --hook-sink IP:PORT`): an HTTP/1.1 server that
//! answers every request 200 at once over keep-alive connections and counts the events it
//! received (a batch counts as its elements), so hooks can be on while baton is measured.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head or body the sink reads; a hook is far smaller.
const MAX_REQUEST: usize = 16 << 20;

#[derive(Debug)]
pub struct SinkCounters {
    pub requests: AtomicU64,
    pub events: AtomicU64,
    started: Instant,
    /// Microseconds after `started` of the first and the latest request.
    first: AtomicU64,
    last: AtomicU64,
}

impl SinkCounters {
    fn new() -> SinkCounters {
        let (requests, events) = (AtomicU64::new(0), AtomicU64::new(0));
        SinkCounters {
            requests,
            events,
            started: Instant::now(),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    fn record(&self, events: u64) {
        let at = self.started.elapsed().as_micros() as u64;
        self.first.fetch_min(at, Ordering::Relaxed);
        self.last.fetch_max(at, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
    }

    /// Events per second between the first request and the latest.
    pub fn rate(&self) -> f64 {
        let (first, last) = (self.first.load(Ordering::Relaxed), self.last.load(Ordering::Relaxed));
        let span = last.saturating_sub(first).max(1) as f64 / 1e6;
        self.events.load(Ordering::Relaxed) as f64 / span
    }

    /// Waits until no request has come for `quiet`, at most `limit`: hooks trail the SIP.
    pub fn settle(&self, quiet: Duration, limit: Duration) {
        let end = Instant::now() + limit;
        let mut seen = self.requests.load(Ordering::Relaxed);
        while Instant::now() < end {
            std::thread::sleep(quiet);
            let now = self.requests.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    }
}

/// Starts the sink on its own thread; it runs until the process ends.
pub fn start(addr: SocketAddr) -> io::Result<(SocketAddr, Arc<SinkCounters>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let listener = runtime.block_on(TcpListener::bind(addr))?;
    let local = listener.local_addr()?;
    let counters = Arc::new(SinkCounters::new());
    let shared = counters.clone();
    std::thread::Builder::new().name("baton-hook-sink".into()).spawn(move || {
        runtime.block_on(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &counters).await {
                        tracing::debug!(error = %e, "hook sink connection");
                    }
                });
            }
        })
    })?;
    Ok((local, counters))
}

async fn serve(mut stream: TcpStream, counters: &SinkCounters) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    loop {
        let head = loop {
            if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_REQUEST || read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let length = content_length(&buf[..head]).unwrap_or(0).min(MAX_REQUEST);
        while buf.len() < head + length {
            if read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body = &buf[head..head + length];
        let events = match body.first() {
            Some(b'[') => serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body).map_or(0, |v| v.len() as u64),
            _ => 1,
        };
        counters.record(events);
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
        buf.drain(..head + length);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn content_length(head: &[u8]) -> Option<usize> {
    let head = std::str::from_utf8(head).ok()?;
    head.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_single_hooks_and_batches_over_one_connection() {
        use std::io::{Read, Write};
        let (addr, counters) = start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let one = "{\"call_sid\":\"a\"}";
        let batch = "[{\"a\":1},{\"b\":[2,3]},{\"c\":\"]\"}]";
        for body in [one, batch] {
            write!(conn, "POST /x HTTP/1.1\r\nHost: s\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
            let mut reply = [0u8; 38];
            conn.read_exact(&mut reply).unwrap();
            assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        }
        assert_eq!(counters.requests.load(Ordering::Relaxed), 2);
        assert_eq!(counters.events.load(Ordering::Relaxed), 4);
    }
}
