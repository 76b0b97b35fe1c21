//! A hierarchical timer wheel with 1 ms slots: what each shard arms for every RFC 3261 timer
//! and verb timeout. Sans-IO: it is told the time, it never reads a clock.
//!
//! The near level holds the current period of 4,096 ticks (4.096 s), one slot a tick; the
//! far level holds one slot a period (4.7 hours in all). A deadline in a later period waits
//! in the far level and moves down once, when its period begins, so a far deadline (a
//! tombstone's 32 s, a 15 s NOTIFY timeout) wakes a shard at most once early instead of
//! once a rotation. Every timer has an id, and removing one clears its slot's bit when it
//! was the last there, so a deadline that moved wakes nobody. Inserting, removing and
//! moving down are O(1) a timer; the next deadline is a scan of the bitmaps.
//!
//! Deadlines round up to the next tick, so a timer never fires early and at most one tick
//! late.

use slotmap::SlotMap;
use std::time::{Duration, Instant};

const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;
/// Ticks in a period: one rotation of the near level, one slot of the far one.
const PERIOD: u64 = SLOTS as u64;
const RESOLUTION: Duration = Duration::from_millis(1);

slotmap::new_key_type! {
    /// An armed timer, for [`Wheel::remove`].
    pub struct TimerId;
}

struct Entry<K> {
    at: Instant,
    key: K,
    /// The tick it fires on; with the hand, this says which level and slot hold it.
    tick: u64,
}

/// One level: each slot lists its timers' ids (removed ones too, until the slot is
/// emptied) and counts the live ones, so its bit says whether anything is armed there.
struct Level {
    slots: Vec<Vec<TimerId>>,
    live: Vec<u32>,
    occupied: [u64; WORDS],
}

impl Default for Level {
    fn default() -> Self {
        Level { slots: (0..SLOTS).map(|_| Vec::new()).collect(), live: vec![0; SLOTS], occupied: [0; WORDS] }
    }
}

impl Level {
    fn push(&mut self, slot: usize, id: TimerId) {
        self.slots[slot].push(id);
        self.live[slot] += 1;
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    /// One of the slot's timers was removed.
    fn release(&mut self, slot: usize) {
        self.live[slot] = self.live[slot].saturating_sub(1);
        if self.live[slot] == 0 {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
            self.slots[slot].clear();
        }
    }

    /// Empties the slot, handing its list over and taking `spare` (empty) in its place, so
    /// capacity circulates instead of being freed and allocated again.
    fn take(&mut self, slot: usize, spare: Vec<TimerId>) -> Vec<TimerId> {
        self.live[slot] = 0;
        self.occupied[slot / 64] &= !(1 << (slot % 64));
        std::mem::replace(&mut self.slots[slot], spare)
    }

    /// The first occupied slot among `count` from `start` (wrapping), as a distance from it.
    fn first(&self, start: usize, count: usize) -> Option<usize> {
        let mut distance = 0;
        while distance < count {
            let slot = (start + distance) % SLOTS;
            let bits = self.occupied[slot / 64] >> (slot % 64);
            if bits != 0 {
                let found = distance + bits.trailing_zeros() as usize;
                return (found < count).then_some(found);
            }
            distance += 64 - slot % 64;
        }
        None
    }
}

/// A hierarchical timer wheel: deadlines keyed by `K`, expired in order in amortised
/// constant time. Driving loops use it to know which calls' deadlines are due.
pub struct Wheel<K> {
    /// The time of tick 0: the caller's clock at the first insert. Every deadline inserted
    /// later is at or after it; a later deadline as tick 0 would strand every earlier one
    /// until the clock reached it.
    origin: Option<Instant>,
    /// The next tick to expire. The far slot of its period has always been moved down.
    current: u64,
    timers: SlotMap<TimerId, Entry<K>>,
    near: Level,
    far: Level,
    spare: Vec<TimerId>,
}

impl<K: Copy> Default for Wheel<K> {
    fn default() -> Self {
        Wheel {
            origin: None,
            current: 0,
            timers: SlotMap::with_key(),
            near: Level::default(),
            far: Level::default(),
            spare: Vec::new(),
        }
    }
}

impl<K: Copy> Wheel<K> {
    /// Deadlines held.
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// The tick a deadline fires on, rounded up.
    fn tick(&self, at: Instant) -> u64 {
        let since = self.origin.map_or(Duration::ZERO, |o| at.saturating_duration_since(o));
        since.as_nanos().div_ceil(RESOLUTION.as_nanos()) as u64
    }

    fn time_of(&self, tick: u64) -> Instant {
        let origin = self.origin.unwrap_or_else(Instant::now);
        // Milliseconds as u64: a u32 ran out after 49.7 days of uptime, and every deadline
        // after that read as past, so the shard never slept again.
        origin.checked_add(Duration::from_millis(tick)).unwrap_or(origin)
    }

    /// The level and slot that hold a timer firing on `tick`.
    fn home(&mut self, tick: u64) -> (&mut Level, usize) {
        if tick / PERIOD == self.current / PERIOD {
            (&mut self.near, (tick % PERIOD) as usize)
        } else {
            (&mut self.far, ((tick / PERIOD) % SLOTS as u64) as usize)
        }
    }

    /// Arms `key` for `at`; `now` is the caller's clock.
    pub fn insert(&mut self, now: Instant, at: Instant, key: K) -> TimerId {
        let origin = *self.origin.get_or_insert(now.min(at));
        // Never behind the hand: a deadline already due fires at the next expiry.
        let tick = self.tick(at.max(origin)).max(self.current);
        let id = self.timers.insert(Entry { at, key, tick });
        let (level, slot) = self.home(tick);
        level.push(slot, id);
        id
    }

    /// Disarms a timer, so a deadline that moved wakes nobody. False when it had fired or
    /// was removed already.
    pub fn remove(&mut self, id: TimerId) -> bool {
        let Some(entry) = self.timers.remove(id) else { return false };
        let (level, slot) = self.home(entry.tick);
        level.release(slot);
        true
    }

    /// When the wheel next needs a turn: the time of the first occupied slot of the current
    /// period, else the start of the next period that holds anything (to move it down; early
    /// by up to a period, once a period).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.timers.is_empty() {
            return None;
        }
        let period = self.current / PERIOD;
        let hand = (self.current % PERIOD) as usize;
        if let Some(d) = self.near.first(hand, SLOTS - hand) {
            return Some(self.time_of(self.current + d as u64));
        }
        let next = ((period + 1) % SLOTS as u64) as usize;
        self.far.first(next, SLOTS).map(|d| self.time_of((period + 1 + d as u64) * PERIOD))
    }

    /// Moves every entry due at `now` into `due`, in tick order.
    pub fn expire(&mut self, now: Instant, due: &mut Vec<(Instant, K)>) {
        let Some(origin) = self.origin else { return };
        let target = (now.saturating_duration_since(origin).as_nanos() / RESOLUTION.as_nanos()) as u64;
        while self.current <= target {
            let period = self.current / PERIOD;
            let period_end = period * PERIOD + PERIOD - 1;
            let last = target.min(period_end);
            let hand = (self.current % PERIOD) as usize;
            let span = (last - self.current) as usize + 1;
            while let Some(d) = self.near.first(hand, span) {
                let mut ids = self.near.take(hand + d, std::mem::take(&mut self.spare));
                due.extend(ids.drain(..).filter_map(|id| self.timers.remove(id)).map(|e| (e.at, e.key)));
                self.spare = ids;
            }
            if last < period_end {
                self.current = target + 1;
                return;
            }
            // The period is over: on to the next one that holds anything, or the target's.
            let stop = (target / PERIOD).max(period + 1);
            let ahead = (stop - period) as usize;
            let next = ((period + 1) % SLOTS as u64) as usize;
            let to = period + 1 + self.far.first(next, ahead.min(SLOTS)).map_or(ahead - 1, |d| d) as u64;
            self.current = to * PERIOD;
            self.move_down(to);
        }
    }

    /// The period `period` begins: its timers go from the far level to the near one
    /// (those of a later round, 4.7 hours on, stay).
    fn move_down(&mut self, period: u64) {
        let slot = (period % SLOTS as u64) as usize;
        let mut ids = self.far.take(slot, std::mem::take(&mut self.spare));
        for id in ids.drain(..) {
            let Some(entry) = self.timers.get(id) else { continue };
            if entry.tick / PERIOD == period {
                self.near.push((entry.tick % PERIOD) as usize, id);
            } else {
                self.far.push(slot, id);
            }
        }
        self.spare = ids;
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
    fn a_removed_deadline_wakes_nobody() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        let a = w.insert(t0, t0 + ms(500), 1);
        let b = w.insert(t0, t0 + ms(500), 2);
        let far = w.insert(t0, t0 + ms(9_000), 3);
        assert!(w.remove(a));
        assert!(!w.remove(a), "gone already");
        assert!(w.next_deadline().is_some_and(|d| d <= t0 + ms(501)), "2 still fires at 500 ms");
        assert!(w.remove(b));
        assert_eq!(w.next_deadline(), Some(t0 + ms(8_192)), "only the far one's period is left to wake for");
        assert!(w.remove(far));
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
        let mut due = Vec::new();
        w.expire(t0 + ms(10_000), &mut due);
        assert!(due.is_empty());
    }

    /// A deadline periods away wakes the shard once to move down, then on time: not once a
    /// rotation (a 32 s tombstone used to wake its shard eight times).
    #[test]
    fn a_far_deadline_wakes_once_early_then_on_time() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.insert(t0, t0 + ms(32_100), 7);
        let mut wakes = Vec::new();
        let mut due = Vec::new();
        while let Some(at) = w.next_deadline() {
            wakes.push(at - t0);
            w.expire(at, &mut due);
        }
        assert_eq!(wakes, vec![ms(28_672), ms(32_100)]);
        assert_eq!(due, vec![(t0 + ms(32_100), 7)]);
    }

    /// A timer removed after it moved down to the near level, and one removed while still
    /// far: neither fires nor wakes anyone.
    #[test]
    fn removal_works_on_either_level() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        let moved = w.insert(t0, t0 + ms(5_000), 1);
        let stays = w.insert(t0, t0 + ms(9_000), 2);
        w.insert(t0, t0 + ms(9_001), 3);
        let mut due = Vec::new();
        w.expire(t0 + ms(4_500), &mut due);
        assert!(due.is_empty());
        assert!(w.remove(moved));
        assert!(w.remove(stays));
        w.expire(t0 + ms(8_999), &mut due);
        assert!(due.is_empty());
        assert_eq!(w.next_deadline(), Some(t0 + ms(9_001)));
        w.expire(t0 + ms(9_001), &mut due);
        assert_eq!(due, vec![(t0 + ms(9_001), 3)]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_after_49_days_of_uptime_are_still_ahead() {
        let t0 = Instant::now();
        let mut w = Wheel::default();
        w.insert(t0, t0 + ms(1), 1);
        let later = t0 + Duration::from_secs(50 * 86_400);
        let mut due = Vec::new();
        w.expire(later, &mut due);
        assert_eq!(due, vec![(t0 + ms(1), 1)]);
        w.insert(later, later + ms(100), 2);
        assert_eq!(w.next_deadline(), Some(later + ms(100)));
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
