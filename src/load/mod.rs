//! `baton load`: a carrier that calls in at a fixed rate (open loop), accepts each REFER,
//! reports NOTIFY 100/180/200 and expects baton's BYE. Latency is measured from when each
//! request was meant to be sent, so a stalled engine cannot hide (coordinated omission).

pub mod carrier;
pub mod sink;

use crate::sip::parse::parse;
use carrier::{LoadCall, Stage};
use hdrhistogram::Histogram;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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

const SOCKET: Token = Token(0);

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

fn run_one(cfg: &LoadConfig) -> std::io::Result<Report> {
    let mut socket = crate::io::bind_udp(cfg.bind)?;
    let me = socket.local_addr()?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut socket, SOCKET, Interest::READABLE)?;
    let total = cfg.calls.unwrap_or_else(|| (cfg.rate * cfg.duration.as_secs_f64()).round() as u64);
    let gap = Duration::from_secs_f64(1.0 / cfg.rate.max(0.001));
    let run_id = fastrand::u32(..);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(std::io::Error::other)?;
    let mut calls: HashMap<String, LoadCall> = HashMap::new();
    let (mut started, mut completed, mut refused, mut retransmissions) = (0u64, 0u64, 0u64, 0u64);
    let mut failures: HashMap<&'static str, u64> = HashMap::new();
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 65_536];
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
            let call_id = format!("load-{run_id:x}-{started}");
            let (call, invite) = LoadCall::start(call_id.clone(), me, cfg.target, intended, now);
            send(&socket, &invite, cfg.target);
            calls.insert(call_id, call);
            started += 1;
        }
        if started == total && end_by.is_none() {
            end_by = Some(now + cfg.drain);
        }
        // Datagrams from baton.
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let Ok(msg) = parse(&buf[..n]) else { continue };
                    let Ok(core) = msg.core() else { continue };
                    let Some(call) = calls.get_mut(core.call_id) else { continue };
                    let fx = call.on_message(&msg, Instant::now());
                    for bytes in &fx.send {
                        send(&socket, bytes, cfg.target);
                    }
                    for l in fx.latencies {
                        let _ = latency.record(l.as_micros().max(1) as u64);
                    }
                    retransmissions += u64::from(fx.retransmissions);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Our retransmissions, and calls that are over.
        let now = Instant::now();
        calls.retain(|_, call| {
            if let Some(bytes) = call.on_timeout(now) {
                send(&socket, &bytes, cfg.target);
            }
            match call.stage {
                Stage::Done => completed += 1,
                Stage::Refused => refused += 1,
                Stage::Failed(why) => *failures.entry(why).or_insert(0) += 1,
                _ => return true,
            }
            false
        });
        if cfg.progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
            last_progress = now;
            let failed: u64 = failures.values().sum();
            eprint!("\r{:>5.1}s  started {started}  completed {completed}  refused {refused}  failed {failed}  in flight {}   ",
                    now.duration_since(begin).as_secs_f64(), calls.len());
        }
        let done = started == total && (calls.is_empty() || end_by.is_some_and(|t| now >= t));
        if done {
            break;
        }
        let next_start = (started < total).then(|| begin + gap.mul_f64(started as f64));
        let next_retx = calls.values().filter_map(LoadCall::deadline).min();
        let wake = next_start.into_iter().chain(next_retx).chain(end_by).min();
        let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()).min(Duration::from_millis(200)));
        poll.poll(&mut events, timeout.or(Some(Duration::from_millis(200))))?;
    }
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

fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    // A lost datagram is retransmitted like any other.
    let _ = socket.send_to(bytes, to);
}
