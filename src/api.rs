//! The operator's HTTP endpoint: `/metrics` (Prometheus text) and `/healthz`. Served by
//! one small thread; it reads counters the shard and the hook worker publish.

use crate::engine::Stats;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of the hook worker.
#[derive(Debug, Default)]
pub struct HookCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// What the shard publishes after each turn of its loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardGauges {
    pub stats: Stats,
    pub active_calls: usize,
    pub held_hooks: usize,
}

/// Everything `/metrics` shows.
#[derive(Clone, Default)]
pub struct Metrics {
    pub shard: Arc<Mutex<ShardGauges>>,
    pub hooks: Arc<HookCounters>,
}

impl Metrics {
    pub fn render(&self) -> String {
        let g = self.shard.lock().map(|g| *g).unwrap_or_default();
        let s = g.stats;
        let h = &self.hooks;
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP baton_{name} {help}\n# TYPE baton_{name} {kind}\nbaton_{name} {value}\n");
        };
        metric("datagrams_total", "counter", "SIP datagrams received.", s.datagrams);
        metric(
            "dropped_total",
            "counter",
            "Datagrams dropped: not parsable far enough to answer, or over a limit.",
            s.dropped,
        );
        metric("bad_requests_total", "counter", "Requests answered 400.", s.bad_requests);
        metric("unknown_dialog_total", "counter", "Requests answered 481.", s.unknown_dialog);
        metric("stray_responses_total", "counter", "Responses matching no transaction.", s.stray_responses);
        metric("calls_total", "counter", "Calls admitted.", s.calls);
        metric(
            "calls_refused_total",
            "counter",
            "New calls refused with 503 (limits, congestion, shutdown).",
            s.refused,
        );
        metric("calls_active", "gauge", "Calls in progress.", g.active_calls as u64);
        metric("hooks_held", "gauge", "Hooks held by the shard while the hook queue is full.", g.held_hooks as u64);
        metric("hooks_delivered_total", "counter", "Hook requests answered 2xx.", h.delivered.load(Ordering::Relaxed));
        metric("hooks_retried_total", "counter", "Hook attempts retried.", h.retried.load(Ordering::Relaxed));
        metric(
            "hooks_dead_lettered_total",
            "counter",
            "Hooks written to the dead-letter file.",
            h.dead_lettered.load(Ordering::Relaxed),
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until the process ends.
pub fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("baton-api".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = answer(stream, &metrics) {
                tracing::debug!(error = %e, "metrics request");
            }
        }
    })?;
    Ok(local)
}

fn answer(stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        _ => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
