//! `/metrics` in Prometheus' text format, from the counters the shards, the hook worker
//! and the stream threads publish.

use crate::hooks::counters::HookCounters;
use crate::shard::Gauges;
use crate::stream::Counters as StreamCounters;
use baton_proto::{Latency, Refusal, Stats, TransferOutcome};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// What each shard publishes after each turn of its loop, by shard number.
#[derive(Clone, Default)]
pub struct ShardMetrics(pub Vec<Arc<Mutex<Gauges>>>);

impl ShardMetrics {
    pub fn read(&self) -> Vec<Gauges> {
        self.0.iter().map(|g| g.lock().map(|g| *g).unwrap_or_default()).collect()
    }
}

/// Everything `/metrics` shows.
#[derive(Clone, Default)]
pub struct Metrics {
    pub shards: ShardMetrics,
    pub hooks: Arc<HookCounters>,
    /// The TCP/TLS connections' counters, when there are stream listeners.
    pub streams: Option<Arc<StreamCounters>>,
}

impl Metrics {
    pub fn render(&self) -> String {
        let shards = self.shards.read();
        let mut s = Stats::default();
        let (mut active, mut buried, mut held) = (0, 0, 0);
        for g in &shards {
            s.add(&g.stats);
            active += g.active_calls;
            buried += g.tombstones;
            held += g.held_hooks;
        }
        let h = &self.hooks;
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP baton_{name} {help}\n# TYPE baton_{name} {kind}\nbaton_{name} {value}\n");
        };
        metric("datagrams_total", "counter", "SIP datagrams handled.", s.datagrams);
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
        let _ = write!(
            out,
            "# HELP baton_calls_rejected_total New calls refused, by reason.\n# TYPE baton_calls_rejected_total counter\n"
        );
        for (refusal, n) in Refusal::ALL.iter().zip(s.edge_refused) {
            let _ = writeln!(out, "baton_calls_rejected_total{{reason=\"{}\"}} {n}", refusal.as_str());
        }
        let _ = writeln!(out, "baton_calls_rejected_total{{reason=\"capacity\"}} {}", s.refused);
        let _ = write!(
            out,
            "# HELP baton_transfers_total Transfers ended, by outcome.\n# TYPE baton_transfers_total counter\n"
        );
        for (outcome, n) in TransferOutcome::ALL.iter().zip(s.transfers) {
            let _ = writeln!(out, "baton_transfers_total{{outcome=\"{}\"}} {n}", outcome.as_str());
        }
        histogram(&mut out, "refer_accepted_seconds", "From a REFER to its 2xx.", &s.refer_accepted);
        histogram(&mut out, "refer_final_seconds", "From a REFER to the NOTIFY with a final status.", &s.refer_final);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP baton_{name} {help}\n# TYPE baton_{name} {kind}\nbaton_{name} {value}\n");
        };
        metric(
            "calls_never_acked_total",
            "counter",
            "Calls whose 200 was never acknowledged: ended without a BYE.",
            s.never_acked,
        );
        metric("calls_active", "gauge", "Calls in progress.", active as u64);
        metric(
            "calls_ended_held",
            "gauge",
            "Ended calls kept as tombstones (a few hundred bytes each) to answer retransmissions for 64*T1.",
            buried as u64,
        );
        metric("hooks_held", "gauge", "Hooks held by the shards while the hook queue is full.", held as u64);
        metric("hooks_delivered_total", "counter", "Hook requests answered 2xx.", h.delivered.load(Ordering::Relaxed));
        metric("hooks_retried_total", "counter", "Hook attempts retried.", h.retried.load(Ordering::Relaxed));
        metric(
            "hooks_dead_lettered_total",
            "counter",
            "Hooks written to the dead-letter file.",
            h.dead_lettered.load(Ordering::Relaxed),
        );
        metric(
            "hooks_failed_total",
            "counter",
            "Hooks a call waited for that failed (the call went on without their answer).",
            h.failed.load(Ordering::Relaxed),
        );
        metric(
            "hook_batches_total",
            "counter",
            "POSTs to the batch endpoint answered 2xx.",
            h.batches.load(Ordering::Relaxed),
        );
        if let Some(c) = &self.streams {
            let stream_metrics = [
                ("stream_connections_open", "gauge", "TCP and TLS connections open.", &c.open),
                ("stream_connections_accepted_total", "counter", "TCP and TLS connections accepted.", &c.accepted),
                (
                    "stream_connections_refused_total",
                    "counter",
                    "Connections closed at once: over --tcp-per-source or --tcp-max-connections.",
                    &c.refused,
                ),
                ("stream_messages_total", "counter", "Messages read from connections.", &c.received),
                (
                    "stream_messages_dropped_total",
                    "counter",
                    "Messages lost on streams: a full queue, or no connection to be had.",
                    &c.dropped,
                ),
                (
                    "stream_unframed_total",
                    "counter",
                    "Connections closed for a message without a sound Content-Length, or too large.",
                    &c.unframed,
                ),
            ];
            for (name, kind, help, value) in stream_metrics {
                metric(name, kind, help, value.load(Ordering::Relaxed));
            }
        }
        h.ack.render(&mut out, "hook_ack_seconds", "Time from an event in a call to its hook's 2xx.");
        let mut by_shard = |name: &str, help: &str, value: &dyn Fn(&Gauges) -> u64| {
            let _ = write!(out, "# HELP baton_shard_{name} {help}\n# TYPE baton_shard_{name} counter\n");
            for (i, g) in shards.iter().enumerate() {
                let _ = writeln!(out, "baton_shard_{name}{{shard=\"{i}\"}} {}", value(g));
            }
        };
        by_shard("calls_total", "Calls admitted by each shard.", &|g| g.stats.calls);
        by_shard("received_total", "Datagrams read from each shard's sockets.", &|g| g.io.received);
        by_shard("turns_total", "Turns of each shard's loop (its wake-ups; coalescing makes them fewer).", &|g| {
            g.io.turns
        });
        by_shard("handed_off_total", "Datagrams a shard received and handed to the shard that owns them.", &|g| {
            g.io.handed_off
        });
        by_shard("handoff_dropped_total", "Hand-offs dropped because the owner's queue was full.", &|g| {
            g.io.handoff_dropped
        });
        out
    }
}

/// A Prometheus histogram: cumulative buckets, sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &Latency) {
    let _ = write!(out, "# HELP baton_{name} {help}\n# TYPE baton_{name} histogram\n");
    let mut total = 0;
    for (bound, n) in Latency::BOUNDS.iter().zip(h.buckets) {
        total += n;
        let _ = writeln!(out, "baton_{name}_bucket{{le=\"{bound}\"}} {total}");
    }
    total += h.buckets[Latency::BOUNDS.len()];
    let _ = writeln!(out, "baton_{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "baton_{name}_sum {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "baton_{name}_count {total}");
}
