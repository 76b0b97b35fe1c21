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
    }
}
