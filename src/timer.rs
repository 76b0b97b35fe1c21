//! A hashed timer wheel with 1 ms slots: what each shard arms for every RFC 3261 timer and
//! verb timeout. Inserting is O(1), and finding the next deadline is a scan of a bitmap of
//! the slots that hold anything. Sans-IO: it is told the time, it never reads a clock.
//!
//! Deadlines round up to the next slot, so a timer never fires early and at most one slot
//! late; one more than a rotation (4.096 s) ahead waits in its slot for its round.

use std::time::{Duration, Instant};

const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;
const RESOLUTION: Duration = Duration::from_millis(1);

pub struct Wheel<K> {
    /// The time of tick 0: the caller's clock at the first insert. Every deadline inserted
    /// later is at or after it; a later deadline as tick 0 would strand every earlier one
    /// until the clock reached it.
    origin: Option<Instant>,
    /// The next tick to expire.
    current: u64,
    slots: Vec<Vec<(Instant, K)>>,
    /// Bit `i` is set when slot `i` holds an entry.
    occupied: [u64; WORDS],
    len: usize,
    spare: Vec<(Instant, K)>,
}

impl<K: Copy> Default for Wheel<K> {
    fn default() -> Self {
        Wheel {
            origin: None,
            current: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            len: 0,
            spare: Vec::new(),
        }
    }
}

impl<K: Copy> Wheel<K> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tick a deadline fires on, rounded up.
    fn tick(&self, at: Instant) -> u64 {
        let since = self.origin.map_or(Duration::ZERO, |o| at.saturating_duration_since(o));
        since.as_nanos().div_ceil(RESOLUTION.as_nanos()) as u64
    }

    fn time_of(&self, tick: u64) -> Instant {
        let origin = self.origin.unwrap_or_else(Instant::now);
        origin + RESOLUTION * u32::try_from(tick).unwrap_or(u32::MAX)
    }

    /// Arms `key` for `at`; `now` is the caller's clock.
    pub fn insert(&mut self, now: Instant, at: Instant, key: K) {
        let origin = *self.origin.get_or_insert(now.min(at));
        // Never behind the hand: a deadline already due fires at the next expiry.
        let tick = self.tick(at.max(origin)).max(self.current);
        let slot = tick as usize % SLOTS;
        self.slots[slot].push((at, key));
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.len += 1;
    }

    /// The first occupied slot at or after the hand, as a tick.
    fn next_occupied(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let start = self.current as usize % SLOTS;
        (0..=WORDS).find_map(|step| {
            let word = (start / 64 + step) % WORDS;
            let mut bits = self.occupied[word];
            if step == 0 {
                bits &= u64::MAX << (start % 64);
            } else if step == WORDS {
                bits &= !(u64::MAX << (start % 64)); // wrapped around to the start word
            }
            (bits != 0).then(|| {
                let slot = word * 64 + bits.trailing_zeros() as usize;
                self.current + ((slot + SLOTS - start) % SLOTS) as u64
            })
        })
    }

    /// When the wheel next needs a turn: the time of its first occupied slot (possibly
    /// early, for an entry of a later round, which is then kept).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_occupied().map(|tick| self.time_of(tick))
    }

    /// Moves every entry due at `now` into `due`, in slot order.
    pub fn expire(&mut self, now: Instant, due: &mut Vec<(Instant, K)>) {
        let Some(origin) = self.origin else { return };
        let target = (now.saturating_duration_since(origin).as_nanos() / RESOLUTION.as_nanos()) as u64;
        while let Some(tick) = self.next_occupied().filter(|&t| t <= target) {
            let slot = tick as usize % SLOTS;
            // The slot gets the spare (empty) list and the spare becomes this one once
            // drained: capacity circulates instead of being freed and allocated again.
            let mut entries = std::mem::replace(&mut self.slots[slot], std::mem::take(&mut self.spare));
            self.occupied[slot / 64] &= !(1 << (slot % 64));
            self.len -= entries.len();
            self.current = tick + 1;
            for (at, key) in entries.drain(..) {
                if at <= now {
                    due.push((at, key));
                } else {
                    // A later round.
                    self.insert(now, at, key);
                }
            }
            self.spare = entries;
        }
        self.current = self.current.max(target + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_in_order_never_early() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        for (i, d) in [5u64, 1, 500, 32_000, 3].iter().enumerate() {
            w.insert(t0, t0 + ms(*d) + Duration::from_micros(300), i);
        }
        let mut due = Vec::new();
        w.expire(t0 + ms(3), &mut due);
        assert_eq!(due.iter().map(|d| d.1).collect::<Vec<_>>(), vec![1], "3.3 ms is not due at 3 ms");
        due.clear();
        w.expire(t0 + ms(7), &mut due);
        let mut keys: Vec<_> = due.iter().map(|d| d.1).collect();
        keys.sort();
        assert_eq!(keys, vec![0, 4]);
        let next = w.next_deadline().unwrap();
        assert!(next >= t0 + ms(500) + Duration::from_micros(300) && next <= t0 + ms(502), "{:?}", next - t0);
        due.clear();
        w.expire(t0 + ms(10_000), &mut due);
        assert_eq!(due.iter().map(|d| d.1).collect::<Vec<_>>(), vec![2]);
        assert_eq!(w.len(), 1, "32 s is eight rotations away");
        assert!(w.next_deadline().is_some());
        due.clear();
        w.expire(t0 + ms(32_000), &mut due);
        assert!(due.is_empty());
        w.expire(t0 + ms(32_001), &mut due);
        assert_eq!(due.iter().map(|d| d.1).collect::<Vec<_>>(), vec![3]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    /// The first deadline armed is far off (a call waiting 30 s for its hook); one armed
    /// after it for 50 ms still fires at 50 ms.
    #[test]
    fn a_near_deadline_after_a_far_first_one_fires_on_time() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.insert(t0, t0 + ms(30_000), 1);
        w.insert(t0 + ms(1), t0 + ms(50), 2);
        assert!(w.next_deadline().is_some_and(|d| d <= t0 + ms(51)));
        let mut due = Vec::new();
        w.expire(t0 + ms(51), &mut due);
        assert_eq!(due, vec![(t0 + ms(50), 2)]);
    }

    #[test]
    fn a_deadline_already_past_fires_at_once() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.insert(t0, t0 + ms(100), 1);
        let mut due = Vec::new();
        w.expire(t0 + ms(200), &mut due);
        w.insert(t0 + ms(200), t0 + ms(50), 2);
        assert!(w.next_deadline().is_some_and(|d| d <= t0 + ms(202)));
        due.clear();
        w.expire(t0 + ms(201), &mut due);
        assert_eq!(due, vec![(t0 + ms(50), 2)]);
    }

    #[test]
    fn agrees_with_a_sorted_list() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut w = Wheel::default();
        let mut all: Vec<(Instant, u32)> = Vec::new();
        for k in 0..5_000 {
            let at = t0 + Duration::from_micros(rng.u64(0..20_000_000));
            w.insert(t0, at, k);
            all.push((at, k));
        }
        let mut now = t0;
        let mut fired = Vec::new();
        while !w.is_empty() {
            let next = w.next_deadline().unwrap();
            assert!(next >= now || next + ms(1) >= now);
            now = next.max(now) + Duration::from_micros(rng.u64(0..3_000));
            let mut due = Vec::new();
            w.expire(now, &mut due);
            assert!(due.iter().all(|(at, _)| *at <= now), "fired early");
            fired.extend(due);
            // At most one slot (1 ms) late.
            let overdue = all.iter().filter(|(at, _)| *at + ms(1) <= now).count();
            assert!(fired.len() >= overdue, "everything due by {:?} fired", now - t0);
        }
        assert_eq!(fired.len(), all.len());
    }
}
