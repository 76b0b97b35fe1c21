//! `baton load`: a carrier that calls in at a fixed rate (open loop), accepts each REFER,
//! reports NOTIFY 100/180/200 and expects baton's BYE. Latency is measured from when each
//! request was meant to be sent, so a stalled engine cannot hide (coordinated omission).

pub mod carrier;
pub mod sink;
mod stream;

use crate::io::{Backend, Datagram, IoMode, Waker};
use baton_proto::sip::parse;
use baton_proto::Transport;
use baton_proto::Wheel;
use carrier::{LoadCall, Stage};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::StreamWire;

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    /// Calls started per second.
    pub rate: f64,
    /// How long to start calls for (ignored when `calls` is set).
    pub duration: Duration,
    /// Exactly this many calls, at `rate`.
    pub calls: Option<u64>,
    pub bind: SocketAddr,
    /// How long to wait for calls in flight once the last has started.
    pub drain: Duration,
    pub progress: bool,
    /// Generator threads, each with its own socket (source port) and a share of the rate.
    pub shards: usize,
    /// Serve a hook sink here for the run, and report the events it received.
    pub hook_sink: Option<SocketAddr>,
    /// UDP, or one TCP/TLS connection per generator thread.
    pub transport: Transport,
    /// For TLS: the CA baton's certificate must chain to (the web's roots without one).
    pub tls_ca: Option<PathBuf>,
}

/// How one generator thread's messages travel.
enum Wire {
    /// Datagrams on baton's portable backend (epoll with batched receives and sends).
    Datagrams(Box<dyn Backend>),
    Stream(StreamWire),
}

impl Wire {
    fn send(&mut self, me: SocketAddr, target: SocketAddr, bytes: Vec<u8>) {
        match self {
            Wire::Datagrams(io) => io.send(me, target, bytes),
            Wire::Stream(s) => s.send(bytes),
        }
    }

    /// Waits up to `timeout` and hands every message that arrived to `each`.
    fn turn(&mut self, timeout: Duration, each: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        match self {
            Wire::Datagrams(io) => io.turn(Some(timeout), &mut |d: Datagram<'_>| each(d.data)).map(drop),
            Wire::Stream(s) => s.turn(timeout, each),
        }
    }

    fn flush(&mut self) {
        match self {
            Wire::Datagrams(io) => io.flush(),
            Wire::Stream(s) => drop(s.flush()),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub started: u64,
    pub completed: u64,
    pub refused: u64,
    pub failed: u64,
    /// Why calls failed, with counts.
    pub failures: HashMap<&'static str, u64>,
    /// Datagrams from baton that repeated one already answered.
    pub retransmissions: u64,
    /// Request-to-response latency in microseconds.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    /// What the hook sink received, when there was one.
    pub hooks: Option<SinkReport>,
}

#[derive(Clone, Copy, Debug)]
pub struct SinkReport {
    pub events: u64,
    pub requests: u64,
    /// Between the first request and the last.
    pub per_second: f64,
}

impl Report {
    pub fn transfers_per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "calls {} completed {} refused (503) {} failed {} retransmissions seen {}",
            self.started, self.completed, self.refused, self.failed, self.retransmissions
        )?;
        for (why, n) in &self.failures {
            writeln!(f, "  failed: {why}: {n}")?;
        }
        writeln!(f, "transfers/s {:.0} over {:.1}s", self.transfers_per_second(), self.elapsed.as_secs_f64())?;
        write!(
            f,
            "latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
            self.latency.max() as f64 / 1000.0
        )?;
        if let Some(SinkReport { events, requests, per_second }) = self.hooks {
            write!(f, "\nhooks at the sink: {events} events in {requests} requests, {per_second:.0} events/s")?;
        }
        Ok(())
    }
}

/// Runs the load (over `cfg.shards` threads), with the hook sink if asked for.
pub fn run(cfg: &LoadConfig) -> std::io::Result<Report> {
    let sink = cfg.hook_sink.map(sink::start).transpose()?;
    let shards = cfg.shards.max(1);
    let mut report = if shards == 1 {
        run_one(cfg)?
    } else {
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = (0..shards)
                .map(|i| {
                    // An equal share of the rate and of the calls; the first threads take the remainder.
                    let (n, k) = (shards as u64, i as u64);
                    let calls = cfg.calls.map(|total| total / n + u64::from(k < total % n));
                    let rate = cfg.rate / shards as f64;
                    let mine = LoadConfig { rate, calls, progress: cfg.progress && i == 0, ..cfg.clone() };
                    s.spawn(move || run_one(&mine))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a load thread panicked"))))
                .collect::<std::io::Result<Vec<_>>>()
        })?;
        merge(reports)?
    };
    report.hooks = sink.map(|(_, c)| {
        c.settle(Duration::from_millis(500), cfg.drain);
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        SinkReport { events: load(&c.events), requests: load(&c.requests), per_second: c.rate() }
    });
    Ok(report)
}

fn merge(reports: Vec<Report>) -> std::io::Result<Report> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(std::io::Error::other)?;
    let mut total = Report {
        started: 0,
        completed: 0,
        refused: 0,
        failed: 0,
        failures: HashMap::new(),
        retransmissions: 0,
        latency: latency.clone(),
        elapsed: Duration::ZERO,
        hooks: None,
    };
    for r in reports {
        total.started += r.started;
        total.completed += r.completed;
        total.refused += r.refused;
        total.failed += r.failed;
        total.retransmissions += r.retransmissions;
        total.elapsed = total.elapsed.max(r.elapsed);
        for (why, n) in r.failures {
            *total.failures.entry(why).or_insert(0) += n;
        }
        latency.add(&r.latency).map_err(std::io::Error::other)?;
    }
    total.latency = latency;
    Ok(total)
}

/// Calls counted as they end.
#[derive(Default)]
struct Tally {
    completed: u64,
    refused: u64,
    failures: HashMap<&'static str, u64>,
}

/// After a call moved: counts and forgets it if it ended, else arms its next retransmission.
fn settle(now: Instant, n: u64, calls: &mut HashMap<u64, LoadCall>, timers: &mut Wheel<u64>, tally: &mut Tally) {
    let Some(call) = calls.get(&n) else { return };
    match call.stage {
        Stage::Done => tally.completed += 1,
        Stage::Refused => tally.refused += 1,
        Stage::Failed(why) => *tally.failures.entry(why).or_insert(0) += 1,
        _ => {
            if let Some(at) = call.deadline() {
                timers.insert(now, at, n);
            }
            return;
        }
    }
    calls.remove(&n);
}

/// One generator thread: its own socket on baton's portable backend (epoll with batched
/// receives and sends, the same carrier whichever backend baton runs), calls keyed by
/// their number, retransmissions on a timer wheel: nothing walks every call in flight.
fn run_one(cfg: &LoadConfig) -> std::io::Result<Report> {
    let (mut io, me) = match cfg.transport {
        Transport::Udp => {
            let socket = crate::io::bind(cfg.bind)?;
            let me = socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP socket"))?;
            // No coalescing: the generator answers at once, so the latencies it reports are baton's.
            let (io, _) =
                crate::io::open(&IoMode::Epoll, vec![(socket, me)], Arc::new(Waker::new()?), Duration::ZERO, None)?;
            (Wire::Datagrams(io), me)
        }
        transport => {
            let (wire, me) = StreamWire::connect(cfg.target, transport, cfg.tls_ca.as_deref())?;
            (Wire::Stream(wire), me)
        }
    };
    let total = cfg.calls.unwrap_or_else(|| (cfg.rate * cfg.duration.as_secs_f64()).round() as u64);
    let gap = Duration::from_secs_f64(1.0 / cfg.rate.max(0.001));
    // 64 bits from the OS: two generators (or runs) never share a Call-ID.
    let prefix =
        format!("load-{:016x}-", u64::from_le_bytes(*baton_proto::Seed::from_os()?.0.first_chunk().unwrap_or(&[0; 8])));
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(std::io::Error::other)?;
    let mut calls: HashMap<u64, LoadCall> = HashMap::new();
    let mut timers: Wheel<u64> = Wheel::default();
    let (mut due, mut out) = (Vec::new(), Vec::new());
    let mut tally = Tally::default();
    let (mut started, mut retransmissions) = (0u64, 0u64);
    let begin = Instant::now();
    let mut last_progress = begin;
    let mut end_by: Option<Instant> = None;

    loop {
        let now = Instant::now();
        // Start every call whose time has come, at its intended time.
        while started < total {
            let intended = begin + gap.mul_f64(started as f64);
            if intended > now {
                break;
            }
            let (call, invite) =
                LoadCall::start(format!("{prefix}{started}"), (me, cfg.target, cfg.transport), intended, now);
            io.send(me, cfg.target, invite);
            calls.insert(started, call);
            settle(now, started, &mut calls, &mut timers, &mut tally);
            started += 1;
        }
        if started == total && end_by.is_none() {
            end_by = Some(now + cfg.drain);
        }
        // Our retransmissions (a wheel entry may be stale: the call's own deadline decides).
        timers.expire(now, &mut due);
        for (_, n) in due.drain(..) {
            let Some(call) = calls.get_mut(&n).filter(|c| c.deadline().is_some_and(|d| d <= now)) else { continue };
            if let Some(bytes) = call.on_timeout(now) {
                io.send(me, cfg.target, bytes);
            }
            settle(now, n, &mut calls, &mut timers, &mut tally);
        }
        if cfg.progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
            last_progress = now;
            let failed: u64 = tally.failures.values().sum();
            eprint!(
                "\r{:>5.1}s  started {started}  completed {}  refused {}  failed {failed}  in flight {}   ",
                now.duration_since(begin).as_secs_f64(),
                tally.completed,
                tally.refused,
                calls.len()
            );
        }
        if started == total && (calls.is_empty() || end_by.is_some_and(|t| now >= t)) {
            break;
        }
        let next_start = (started < total).then(|| begin + gap.mul_f64(started as f64));
        let wake = next_start.into_iter().chain(timers.next_deadline()).chain(end_by).min();
        let timeout = wake.map_or(Duration::from_millis(200), |t| {
            t.saturating_duration_since(Instant::now()).min(Duration::from_millis(200))
        });
        // Messages from baton; what they cause goes out with the next turn's batch.
        io.turn(timeout, &mut |data: &[u8]| {
            let Ok(msg) = parse(data) else { return };
            let Some(n) = msg.core().ok().and_then(|c| c.call_id.strip_prefix(prefix.as_str())?.parse().ok()) else {
                return;
            };
            let Some(call) = calls.get_mut(&n) else { return };
            let fx = call.on_message(&msg, Instant::now());
            out.extend(fx.send);
            for l in fx.latencies {
                let _ = latency.record(l.as_micros().max(1) as u64);
            }
            retransmissions += u64::from(fx.retransmissions);
            settle(now, n, &mut calls, &mut timers, &mut tally);
        })?;
        for bytes in out.drain(..) {
            io.send(me, cfg.target, bytes);
        }
    }
    io.flush();
    let Tally { completed, refused, mut failures } = tally;
    if cfg.progress {
        eprintln!();
    }
    for call in calls.values() {
        let why = match call.stage {
            Stage::Inviting => "no answer to the INVITE",
            Stage::AwaitRefer => "no REFER",
            Stage::Notifying(_) => "no answer to a NOTIFY",
            Stage::AwaitBye => "no BYE after the final NOTIFY",
            _ => "still in flight at the end",
        };
        *failures.entry(why).or_insert(0) += 1;
    }
    let failed = failures.values().sum();
    Ok(Report {
        started,
        completed,
        refused,
        failed,
        failures,
        retransmissions,
        latency,
        elapsed: begin.elapsed(),
        hooks: None,
    })
}
