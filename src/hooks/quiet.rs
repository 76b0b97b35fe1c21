//! A log line that speaks once per period however often its event happens: during an
//! outage or a flood every hook fails, and one line per failure would bury everything else.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Quiet {
    every: Duration,
    /// When it last spoke, and how many events since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Quiet {
    pub fn new(every: Duration) -> Quiet {
        Quiet { every, state: Mutex::new((None, 0)) }
    }

    /// Counts one event; the events since it last spoke when it is time to speak again.
    pub fn event(&self) -> Option<u64> {
        let mut state = self.state.lock().ok()?;
        state.1 += 1;
        if state.0.is_some_and(|at| at.elapsed() < self.every) {
            return None;
        }
        let count = state.1;
        *state = (Some(Instant::now()), 0);
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn speaks_first_then_once_per_period() {
        let q = super::Quiet::new(std::time::Duration::from_secs(3600));
        assert_eq!(q.event(), Some(1));
        assert_eq!((q.event(), q.event()), (None, None));
    }
}
