//! The core's counters, published by each shard for `/metrics`.

/// Counters an operator reads to see what the edge is sending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages received.
    pub datagrams: u64,
    /// Not parsable far enough to answer: dropped.
    pub dropped: u64,
    /// Answered 400.
    pub bad_requests: u64,
    /// Answered 481.
    pub unknown_dialog: u64,
    /// Responses that match no transaction.
    pub stray_responses: u64,
    /// Calls admitted.
    pub calls: u64,
    /// New calls refused with 503 over `max_calls`.
    pub refused: u64,
    /// Calls answered 200 but never acknowledged: ended without a BYE.
    pub never_acked: u64,
    /// New calls refused at the edge, by [`crate::admission::Refusal`] (in `Refusal::ALL`'s order).
    pub edge_refused: [u64; 3],
    /// Transfers ended, by [`TransferOutcome`] (in `TransferOutcome::ALL`'s order).
    pub transfers: [u64; 7],
    /// From the REFER to its 2xx.
    pub refer_accepted: Latency,
    /// From the REFER to the NOTIFY with a final status.
    pub refer_final: Latency,
}

/// A latency histogram with fixed buckets, cheap to copy and to add up across shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// How many fell at or under each of [`Latency::BOUNDS`], and above the last.
    pub buckets: [u64; 11],
    /// Their sum, in microseconds.
    pub sum_us: u64,
}

impl Latency {
    /// The buckets' upper bounds, in seconds.
    pub const BOUNDS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

    /// Counts one.
    pub fn record(&mut self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let i = Latency::BOUNDS.iter().position(|&b| secs <= b).unwrap_or(Latency::BOUNDS.len());
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(took.as_micros() as u64);
    }

    fn add(&mut self, other: &Latency) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_us += other.sum_us;
    }
}

/// How a transfer ended, as `/metrics` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// A final 2xx NOTIFY: the caller reached the target.
    Succeeded,
    /// A final NOTIFY of 300 or more: busy, no answer, declined.
    Failed,
    /// The REFER was refused.
    Refused,
    /// No answer to the REFER (408), or no final NOTIFY in time.
    TimedOut,
    /// Accepted, but how it ended was never told (`Refer-Sub: false`, or a subscription
    /// ended without a final status).
    Unknown,
    /// The caller hung up first.
    CallerGone,
    /// The REFER could not be written.
    NotSent,
}

impl TransferOutcome {
    /// Every outcome, in [`Stats::transfers`]' order.
    pub const ALL: [TransferOutcome; 7] = [
        TransferOutcome::Succeeded,
        TransferOutcome::Failed,
        TransferOutcome::Refused,
        TransferOutcome::TimedOut,
        TransferOutcome::Unknown,
        TransferOutcome::CallerGone,
        TransferOutcome::NotSent,
    ];

    /// The `outcome` label of `baton_transfers_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferOutcome::Succeeded => "succeeded",
            TransferOutcome::Failed => "failed",
            TransferOutcome::Refused => "refused",
            TransferOutcome::TimedOut => "timed_out",
            TransferOutcome::Unknown => "unknown",
            TransferOutcome::CallerGone => "caller_gone",
            TransferOutcome::NotSent => "not_sent",
        }
    }
}

impl Stats {
    /// Adds another shard's counters to these.
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            datagrams,
            dropped,
            bad_requests,
            unknown_dialog,
            stray_responses,
            calls,
            refused,
            never_acked,
            edge_refused,
            transfers,
            refer_accepted,
            refer_final,
        } = *other;
        self.datagrams += datagrams;
        self.dropped += dropped;
        self.bad_requests += bad_requests;
        self.unknown_dialog += unknown_dialog;
        self.stray_responses += stray_responses;
        self.calls += calls;
        self.refused += refused;
        self.never_acked += never_acked;
        for (mine, theirs) in self.edge_refused.iter_mut().zip(edge_refused) {
            *mine += theirs;
        }
        for (mine, theirs) in self.transfers.iter_mut().zip(transfers) {
            *mine += theirs;
        }
        self.refer_accepted.add(&refer_accepted);
        self.refer_final.add(&refer_final);
    }
}
