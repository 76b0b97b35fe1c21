//! Interrupt coalescing, as a NIC does it for its host: while datagrams arrive steadily, a
//! shard wakes at most once per `--coalesce-us`, so one wake-up carries a batch of
//! datagrams and the answers they cause leave as one batch. On this
//! machine a wake-up costs more than handling a datagram, so at 10,000 transfers/s this
//! is the largest single saving measured here (perf/run.sh, docs/measurements.md).
//!
//! The coalescing time runs from the last wake-up, not from the end of the work it
//! brought: the shard wakes at most once per coalescing time, and a shard that is busy
//! for longer does not wait at all. (Waiting the full time after the work, as first
//! built, stretched each cycle to wait / (1 - load): near saturation, at 15,000
//! transfers/s, the median latency went from 0.1 to 1.4–4.5 ms.)
//!
//! A wait only happens when it should pay for its own timer: the last turn brought
//! datagrams, and the recent rate says the wait will gather at least [`WORTH`] more. Below
//! that rate, and on the first datagram after a quiet turn, the shard wakes at once as if
//! coalescing were off, so a lightly loaded server adds no latency.
//!
//! Nor does it wait when the rate says a wait would gather [`ENOUGH`] or more: the
//! wake-ups it could still save are few, and near saturation waiting cost the shard its
//! footing (below).

use std::time::{Duration, Instant};

/// How often the arrival rate is measured again.
const WINDOW: Duration = Duration::from_millis(10);
/// Datagrams a wait must be expected to gather to be worth its timer (at one per wait, a
/// timer wake-up only replaces a datagram's own; measured: SIPp at 1,000 calls/s, which
/// brings about 1.4 per 200 µs, cost more CPU with the wait than without).
const WORTH: u128 = 2;
/// Datagrams a wait may be expected to gather before waiting stops paying. At 16 a wait,
/// all but a sixteenth of the wake-ups are saved already. Measured with the 200 µs default,
/// where 16 a wait is about 11,000 transfers/s. At 18,000/s, in 5 alternating runs on both
/// backends, shards that waited fell behind in all 5 (p99 47–1,500 ms, retransmissions in
/// 4); with this ceiling they kept up in all 5 (p99 2.4–14 ms, none). The price: at
/// 15,000/s the wait had saved 10–15 % CPU.
const ENOUGH: u128 = 16;

#[derive(Debug)]
pub struct Gather {
    linger: Duration,
    /// Start of the current measuring window, and datagrams seen since.
    since: Instant,
    seen: u64,
    /// The last window's rate makes a wait worth it.
    steady: bool,
    /// The last turn brought datagrams.
    flowing: bool,
    /// When the last turn's wait ended.
    woke: Instant,
}

impl Gather {
    /// Coalescing for up to `linger` (zero: never).
    pub fn new(linger: Duration, now: Instant) -> Gather {
        Gather { linger, since: now, seen: 0, steady: false, flowing: false, woke: now }
    }

    pub fn coalescing(&self) -> bool {
        !self.linger.is_zero()
    }

    /// How long the turn starting `now` waits for datagrams to gather before it sleeps on
    /// them: what is left of the coalescing time since the last wake-up, never longer than
    /// `timeout` (the next timer); `None` when it should not wait.
    pub fn wait(&self, timeout: Option<Duration>, now: Instant) -> Option<Duration> {
        if !(self.steady && self.flowing) {
            return None;
        }
        let left = self.linger.saturating_sub(now.saturating_duration_since(self.woke));
        let wait = timeout.map_or(left, |t| t.min(left));
        (!wait.is_zero()).then_some(wait)
    }

    /// Records a turn whose wait ended at `woke` and that brought `datagrams`.
    pub fn turned(&mut self, datagrams: usize, woke: Instant) {
        self.woke = woke;
        self.flowing = datagrams > 0;
        self.seen += datagrams as u64;
        let elapsed = woke.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            // Expected per wait: seen · linger / elapsed, from WORTH up to ENOUGH.
            let gathered = u128::from(self.seen) * self.linger.as_nanos();
            self.steady = gathered >= WORTH * elapsed.as_nanos() && gathered < ENOUGH * elapsed.as_nanos();
            self.since = woke;
            self.seen = 0;
        }
    }
}

/// Lets this thread's timers fire within a microsecond of when they are asked for rather
/// than the default 50: a 200 µs wait would otherwise last up to a quarter longer.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a value, no pointers; it affects this thread only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// `n` datagrams a turn, one turn every `gap`, for a few windows.
    fn fed(linger: Duration, n: usize, gap: Duration) -> (Gather, Instant) {
        let mut now = Instant::now();
        let mut g = Gather::new(linger, now);
        for _ in 0..100 {
            now += gap;
            g.turned(n, now);
        }
        (g, now)
    }

    #[test]
    fn waits_while_the_rate_fills_a_wait() {
        // 4 datagrams per 200 µs: 4 per wait of 200.
        let (g, now) = fed(200 * US, 4, 200 * US);
        assert_eq!(g.wait(None, now), Some(200 * US));
        assert_eq!(g.wait(Some(50 * US), now), Some(50 * US), "never past the next timer");
        assert_eq!(g.wait(Some(Duration::ZERO), now), None);
    }

    #[test]
    fn the_wait_counts_from_the_last_wake_up() {
        let (g, woke) = fed(200 * US, 4, 200 * US);
        assert_eq!(g.wait(None, woke + 150 * US), Some(50 * US), "150 µs of work: 50 left");
        assert_eq!(g.wait(None, woke + 300 * US), None, "busier than the coalescing time: no wait");
    }

    #[test]
    fn waits_only_while_a_wait_would_gather_from_two_to_sixteen() {
        // (datagrams a turn, one turn every so many µs, expected per 200 µs wait)
        let cases = [
            (7, 1000, None),     // SIPp at 1,000 calls/s: 1.4 per wait, not worth a timer
            (10, 1000, Some(2)), // 2 per wait is enough
            (15, 200, Some(15)), // still worth gathering
            (16, 200, None),     // all but a sixteenth of the wake-ups saved already
            (25, 200, None),     // 18,000 transfers/s: the shard's own batches suffice
        ];
        for (n, gap, per_wait) in cases {
            let (g, now) = fed(200 * US, n, gap * US);
            let expected = per_wait.map(|_| 200 * US);
            assert_eq!(g.wait(None, now), expected, "{n} datagrams every {gap} µs ({per_wait:?} per wait)");
        }
    }

    #[test]
    fn the_first_datagram_after_a_quiet_turn_is_not_kept_waiting() {
        let (mut g, now) = fed(200 * US, 4, 200 * US);
        g.turned(0, now + 200 * US);
        assert_eq!(g.wait(None, now + 200 * US), None, "a turn that brought nothing ends the gathering");
        let later = now + Duration::from_secs(2);
        g.turned(1, later);
        assert_eq!(g.wait(None, later), None, "two quiet seconds: the rate is low again");
    }

    #[test]
    fn zero_never_waits() {
        let (g, now) = fed(Duration::ZERO, 100, US);
        assert_eq!(g.wait(None, now), None);
    }
}
