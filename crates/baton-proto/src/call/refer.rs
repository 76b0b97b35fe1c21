//! The blind-transfer state machine (docs/behaviour.md §2): REFER response, NOTIFY progress,
//! timeout, far-end BYE. Pure: values in, decisions out; the session does the SIP and the
//! hooks.

use crate::stats::TransferOutcome;
use std::time::{Duration, Instant};

/// Why the transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The REFER got a final failure (or timed out: 408).
    Refused,
    /// `Refer-Sub: false` (RFC 4488): accepted, no NOTIFYs will follow.
    NoSubscription,
    /// A NOTIFY carried a final status.
    Final,
    /// `Subscription-State: terminated` without a final status.
    Terminated,
    /// No final NOTIFY before the timeout.
    Timeout,
    /// The caller hung up during the transfer.
    FarEndBye,
    /// The REFER could not be written: a value would have changed its structure.
    NotSent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub refer_status: u16,
    pub final_status: Option<u16>,
    pub end: End,
}

impl Outcome {
    /// A final 2xx NOTIFY: the call has left baton.
    pub fn transferred(&self) -> bool {
        self.final_status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Outcome {
    /// Whether the next target of a `referTo` array may be tried: the caller is still
    /// here and was certainly not transferred (an accepted REFER whose end was never told
    /// may have been, so it is not tried again elsewhere).
    pub fn may_fail_over(&self) -> bool {
        match self.end {
            End::Final => !self.transferred(),
            End::Refused | End::Timeout | End::NotSent => true,
            End::NoSubscription | End::Terminated | End::FarEndBye => false,
        }
    }

    /// How `/metrics` counts it.
    pub fn counted_as(&self) -> TransferOutcome {
        match self.end {
            End::Final if self.transferred() => TransferOutcome::Succeeded,
            End::Final => TransferOutcome::Failed,
            End::Refused if self.refer_status == 408 => TransferOutcome::TimedOut,
            End::Refused => TransferOutcome::Refused,
            End::Timeout => TransferOutcome::TimedOut,
            End::NoSubscription | End::Terminated => TransferOutcome::Unknown,
            End::FarEndBye => TransferOutcome::CallerGone,
            End::NotSent => TransferOutcome::NotSent,
        }
    }
}

/// One target of a transfer tried, and how it ended (a `referTo` array reports each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The Refer-To sent (or the target as written, when none could be).
    pub target: String,
    pub outcome: Outcome,
}

/// What one NOTIFY means for the transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyEffect {
    /// A status to report to the eventHook.
    pub progress: Option<u16>,
    pub outcome: Option<Outcome>,
}

#[derive(Clone, Debug)]
pub struct Transfer {
    /// CSeq of the REFER: the subscription's `id`.
    pub cseq: u32,
    timeout: Duration,
    refer_status: Option<u16>,
    accepted_at: Option<Instant>,
    last_notify_cseq: Option<u32>,
    /// The last status a NOTIFY reported.
    last_status: Option<u16>,
    done: bool,
}

impl Transfer {
    pub fn new(cseq: u32, timeout: Duration) -> Transfer {
        Transfer {
            cseq,
            timeout,
            refer_status: None,
            accepted_at: None,
            last_notify_cseq: None,
            last_status: None,
            done: false,
        }
    }

    /// The REFER's response so far (202 when a NOTIFY came first).
    pub fn refer_status(&self) -> Option<u16> {
        self.refer_status
    }

    /// Whether the far end took the REFER (a 2xx, or a NOTIFY before it).
    pub fn accepted(&self) -> bool {
        self.accepted_at.is_some()
    }

    /// The last status a NOTIFY reported (100, 180, ...).
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.accepted_at.filter(|_| !self.done).map(|t| t + self.timeout)
    }

    fn finish(&mut self, refer_status: u16, final_status: Option<u16>, end: End) -> Outcome {
        self.done = true;
        Outcome { refer_status, final_status, end }
    }

    fn accept(&mut self, now: Instant) {
        self.accepted_at.get_or_insert(now);
    }

    pub fn on_response(&mut self, now: Instant, code: u16, refer_sub_false: bool) -> Option<Outcome> {
        if self.done || code < 200 {
            return None;
        }
        if code < 300 {
            self.refer_status = Some(code);
            self.accept(now);
            return refer_sub_false.then(|| self.finish(code, None, End::NoSubscription));
        }
        // A failure after a NOTIFY already showed the transfer under way changes nothing.
        if self.accepted_at.is_some() {
            return None;
        }
        Some(self.finish(code, None, End::Refused))
    }

    pub fn on_notify(&mut self, now: Instant, cseq: u32, status: Option<u16>, terminated: bool) -> NotifyEffect {
        if self.done || self.last_notify_cseq.is_some_and(|last| cseq <= last) {
            return NotifyEffect::default();
        }
        self.last_notify_cseq = Some(cseq);
        self.last_status = status.or(self.last_status);
        self.accept(now);
        let refer_status = *self.refer_status.get_or_insert(202);
        let outcome = match status {
            Some(s) if s >= 200 => Some(self.finish(refer_status, Some(s), End::Final)),
            _ if terminated => Some(self.finish(refer_status, None, End::Terminated)),
            _ => None,
        };
        NotifyEffect { progress: status, outcome }
    }

    pub fn on_timeout(&mut self, now: Instant) -> Option<Outcome> {
        let due = self.deadline().is_some_and(|d| now >= d);
        due.then(|| self.finish(self.refer_status.unwrap_or(202), None, End::Timeout))
    }

    pub fn on_far_end_bye(&mut self) -> Option<Outcome> {
        (!self.done).then(|| self.finish(self.refer_status.unwrap_or(487), None, End::FarEndBye))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> (Instant, Transfer) {
        (Instant::now(), Transfer::new(2, Duration::from_secs(15)))
    }

    #[test]
    fn happy_path_ends_on_final_notify() {
        let (now, mut t) = t0();
        assert_eq!(t.on_response(now, 100, false), None);
        assert_eq!(t.on_response(now, 202, false), None);
        assert_eq!(t.on_notify(now, 1, Some(100), false).progress, Some(100));
        let e = t.on_notify(now, 2, Some(200), true);
        assert_eq!(e.outcome, Some(Outcome { refer_status: 202, final_status: Some(200), end: End::Final }));
        assert!(e.outcome.unwrap().transferred());
        assert_eq!(t.on_notify(now, 3, Some(200), true), NotifyEffect::default());
    }

    #[test]
    fn notify_before_2xx_and_out_of_order() {
        let (now, mut t) = t0();
        assert_eq!(t.on_notify(now, 5, Some(180), false).progress, Some(180));
        assert_eq!(t.on_notify(now, 4, Some(100), false), NotifyEffect::default());
        assert_eq!(t.on_response(now, 200, false), None);
        let e = t.on_notify(now, 6, Some(486), true);
        assert_eq!(e.outcome, Some(Outcome { refer_status: 200, final_status: Some(486), end: End::Final }));
    }

    #[test]
    fn refused_refer_sub_false_timeout_and_bye() {
        let (now, mut t) = t0();
        assert_eq!(t.on_response(now, 603, false).map(|o| o.end), Some(End::Refused));
        let (now, mut t) = t0();
        assert_eq!(t.on_response(now, 202, true).map(|o| o.end), Some(End::NoSubscription));
        let (now, mut t) = t0();
        t.on_response(now, 202, false);
        assert_eq!(t.on_timeout(now + Duration::from_secs(14)), None);
        assert_eq!(t.on_timeout(now + Duration::from_secs(15)).map(|o| o.end), Some(End::Timeout));
        let (now, mut t) = t0();
        t.on_response(now, 202, false);
        assert_eq!(t.on_far_end_bye().map(|o| (o.refer_status, o.end)), Some((202, End::FarEndBye)));
        assert_eq!(t.on_far_end_bye(), None);
    }
}
