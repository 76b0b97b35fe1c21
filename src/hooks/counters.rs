//! What the hook worker counts, for `/metrics`: plain atomics the worker bumps and the API
//! reads, so neither waits on the other.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of the hook worker.
#[derive(Debug, Default)]
pub struct HookCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Hooks a call waited for that failed (the call went on without their answer).
    pub failed: AtomicU64,
    /// POSTs to the batch endpoint answered 2xx.
    pub batches: AtomicU64,
    /// Time from the event to its 2xx, per hook delivered.
    pub ack: Histogram,
}

impl HookCounters {
    /// `n` hooks answered 2xx, `latency` after the call produced them.
    pub fn delivered(&self, n: u64, latency: Duration) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.ack.record(latency, n);
    }
}

/// Upper bounds of the acknowledgement histogram, in seconds.
const BOUNDS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// A Prometheus histogram with fixed buckets: one atomic add per observation.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn record(&self, value: Duration, n: u64) {
        let secs = value.as_secs_f64();
        let i = BOUNDS.iter().position(|&b| secs <= b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
        self.sum_micros.fetch_add(value.as_micros() as u64 * n, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = write!(out, "# HELP baton_{name} {help}\n# TYPE baton_{name} histogram\n");
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            match BOUNDS.get(i) {
                Some(le) => writeln!(out, "baton_{name}_bucket{{le=\"{le}\"}} {total}"),
                None => writeln!(out, "baton_{name}_bucket{{le=\"+Inf\"}} {total}"),
            }
            .ok();
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(out, "baton_{name}_sum {sum}\nbaton_{name}_count {total}\n");
    }
}
