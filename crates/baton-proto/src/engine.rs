//! The sans-IO endpoint of one shard (quinn's `Endpoint`, str0m's `Rtc`): datagrams, timeouts
//! and hook replies go in with `now`; datagrams to send, hook jobs and the next deadline
//! come out. It never reads the clock and never touches a socket.

use crate::admission::{Refusal, Sources};
use crate::call::{allowed, Call, Ctx, Tombstone, ALLOW};
use crate::hook::HookReply;
use crate::sip::parse::{parse_with, Core, Limits, Message, ParseError, StartLine};
use crate::sip::write::{reason, Writer};
use crate::sip::{Method, Name};
use crate::timer::{TimerId, Wheel};
use crate::tokens::{parse_branch, Ids, Seed};
use crate::transport::Flow;
use slotmap::{DefaultKey, Key, KeyData, SlotMap};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::output::{Output, Transmit};
use crate::settings::Settings;
use crate::stats::Stats;
use crate::summary::{CallSummary, CallUpdate, UpdateError};

/// Option tags a request's Require header names (RFC 3261 §8.2.2.3); baton supports none,
/// so any makes the request fail with 420, except on ACK and CANCEL.
fn unsupported_required(msg: &Message<'_>, core: &Core<'_>) -> Option<String> {
    if msg.status().is_some() || matches!(core.method, Method::Ack | Method::Cancel) {
        return None;
    }
    let tags: Vec<&str> = msg
        .headers
        .iter()
        .filter(|h| h.raw_name.eq_ignore_ascii_case("Require"))
        .flat_map(|h| crate::sip::header::split_list(h.value))
        .collect();
    (!tags.is_empty()).then(|| tags.join(", "))
}

/// The earliest a call's timer fires after the moment it is set.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// A call in the table: live, or reduced to what answers its retransmissions.
enum State {
    Live(Box<Call>),
    Buried(Tombstone),
}

struct Slot {
    state: State,
    /// The call's deadline as armed in the wheel.
    scheduled: Option<(Instant, TimerId)>,
    /// Counted in `Engine::active` (not ended yet).
    active: bool,
    /// Counted against this source's unconfirmed calls (not acknowledged nor ended yet).
    source: Option<IpAddr>,
}

impl Slot {
    fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Live(call) => call.deadline(),
            State::Buried(t) => Some(t.deadline()),
        }
    }
}

/// A call's key as it travels in branches and hook replies. A forged one is harmless: it
/// names no slot, or one whose transactions will not match.
fn key_of(k: DefaultKey) -> u64 {
    k.data().as_ffi()
}

fn slot_key(key: u64) -> DefaultKey {
    KeyData::from_ffi(key).into()
}

/// The call is leaving the live table: its hook queue, if it ever had one, can close.
fn forget(out: &mut VecDeque<Output>, call: &Call) {
    if call.sent_hooks() {
        out.push_back(Output::CallGone(call.sid.clone()));
    }
}

/// The call limit shared by the shards of one server: one atomic add per admitted call.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    active: AtomicUsize,
    /// The shards sharing it: each enforces its share of the per-source limits.
    shards: usize,
}

impl Admission {
    /// At most `max` calls in progress across `shards` shards.
    pub fn new(max: usize, shards: usize) -> Admission {
        Admission { max, active: AtomicUsize::new(0), shards }
    }

    fn try_admit(&self) -> bool {
        self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).is_ok()
    }

    fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One shard's calls: the sans-IO transfer engine (see the crate documentation).
pub struct Engine {
    cfg: Arc<Settings>,
    ids: Ids,
    shard: u16,
    calls: SlotMap<DefaultKey, Slot>,
    by_call_id: HashMap<String, u64>,
    timers: Wheel<u64>,
    /// Reused by `handle_timeout` for the timers that fire.
    due: Vec<(Instant, u64)>,
    out: VecDeque<Output>,
    /// This shard's calls not ended yet.
    active: usize,
    /// Ended calls reduced to tombstones.
    buried: usize,
    /// Every shard's calls not ended yet: what `max_calls` limits.
    admission: Arc<Admission>,
    /// Shutting down: no new calls.
    draining: bool,
    /// The hook queue is nearly full: no new calls.
    congested: bool,
    /// Per-source admission: `--allow`, the INVITE bucket, the unconfirmed cap.
    sources: Sources,
    /// What it counted: read by the driver for `/metrics`.
    pub stats: Stats,
}

impl Engine {
    /// An engine for shard `shard`: the tokens it mints name it, and their random part
    /// comes from `seed` ([`Seed::from_os`] in a server, [`Seed::fixed`] where runs must repeat).
    pub fn new(cfg: Arc<Settings>, shard: u16, seed: Seed) -> Engine {
        let max_calls = cfg.max_calls;
        Engine {
            sources: Sources::new(&cfg.edge, 1),
            cfg,
            ids: Ids::new(shard, seed),
            shard,
            calls: SlotMap::new(),
            by_call_id: HashMap::new(),
            timers: Wheel::default(),
            due: Vec::new(),
            out: VecDeque::new(),
            active: 0,
            buried: 0,
            admission: Arc::new(Admission::new(max_calls, 1)),
            draining: false,
            congested: false,
            stats: Stats::default(),
        }
    }

    /// Counts this engine's calls against a limit shared with other shards.
    pub fn sharing(mut self, admission: Arc<Admission>) -> Engine {
        self.sources = Sources::new(&self.cfg.edge, admission.shards);
        self.admission = admission;
        self
    }

    /// Calls held, including ended ones still absorbing retransmissions.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions held across all calls, including answers kept for retransmissions.
    /// Walks every call: for tests and diagnostics, not the datagram path.
    pub fn transactions(&self) -> usize {
        self.calls
            .values()
            .map(|s| match &s.state {
                State::Live(call) => call.transactions(),
                State::Buried(t) => t.transactions(),
            })
            .sum()
    }

    /// Every live call, as an operator sees it (ended calls kept only to absorb
    /// retransmissions are left out). Walks every call: for the operator's API, not the
    /// datagram path.
    pub fn call_summaries(&self) -> Vec<CallSummary> {
        let live = self.calls.values().filter_map(|s| match &s.state {
            State::Live(call) if call.is_active() => Some(call.summary(&self.cfg)),
            _ => None,
        });
        live.collect()
    }

    /// Applies an operator's update to the call with this call_sid, if it is this
    /// engine's and in progress. Finds it by walking the calls: for the operator's API.
    pub fn update_call(&mut self, now: Instant, call_sid: &str, update: CallUpdate) -> Result<(), UpdateError> {
        let found = self.calls.iter().find_map(|(k, s)| match &s.state {
            State::Live(call) if &*call.sid == call_sid => Some(key_of(k)),
            _ => None,
        });
        let key = found.ok_or(UpdateError::NotFound)?;
        let Some(Slot { state: State::Live(call), .. }) = self.calls.get_mut(slot_key(key)) else {
            return Err(UpdateError::NotFound);
        };
        let mut ctx = Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
        let applied = call.update(&mut ctx, update);
        self.reschedule(now, key);
        applied
    }

    /// Calls not ended yet.
    pub fn active_calls(&self) -> usize {
        self.active
    }

    /// Ended calls held only as tombstones, to answer retransmissions.
    pub fn tombstones(&self) -> usize {
        self.buried
    }

    /// Stops admitting calls (503 with Retry-After); calls in progress carry on.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// While set, new calls are refused so admitted calls keep room for their hooks.
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// Ends every call still in progress (shutdown's grace is over): transfers report
    /// their actionHook, answered calls get BYE, unanswered ones 503.
    pub fn end_all(&mut self, now: Instant) {
        let keys: Vec<u64> = self.calls.keys().map(key_of).collect();
        for key in keys {
            if let Some(Slot { state: State::Live(call), .. }) = self.calls.get_mut(slot_key(key)) {
                let mut ctx =
                    Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
                call.shut_down(&mut ctx);
            }
            self.reschedule(now, key);
        }
    }

    /// The next thing to do: drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Engine::handle_timeout`] is next wanted, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// One whole SIP message from `flow`: a datagram, or a message a stream transport's
    /// framer ([`crate::sip::frame`]) cut out of its bytes.
    pub fn handle_receive(&mut self, now: Instant, flow: Flow, data: &[u8]) {
        self.stats.datagrams += 1;
        if data.len() > self.cfg.max_message_size {
            self.stats.dropped += 1;
            return;
        }
        self.receive(now, flow, data, true);
    }

    /// Parses and handles one datagram. `lossy`: a header section that is not UTF-8 may be
    /// read again with each bad byte as U+FFFD (a Latin-1 display name from an old PBX): the
    /// call goes on rather than vanish, and the rare copy is made only then.
    fn receive(&mut self, now: Instant, flow: Flow, data: &[u8], lossy: bool) {
        let msg = match parse_with(data, Limits { max_headers: self.cfg.max_headers }) {
            Ok(msg) => msg,
            Err(ParseError::NotUtf8) if lossy => {
                let header_end = memchr::memmem::find(data, b"\r\n\r\n").map_or(data.len(), |i| i + 4);
                let mut text = String::from_utf8_lossy(&data[..header_end]).into_owned().into_bytes();
                text.extend_from_slice(&data[header_end..]);
                return self.receive(now, flow, &text, false);
            }
            Err(e) => {
                self.stats.dropped += 1;
                tracing::debug!(src = %flow.remote, error = %e, "dropped unparsable datagram");
                return;
            }
        };
        if msg.version != "SIP/2.0" {
            if matches!(msg.method(), Some(m) if m != "ACK") && msg.get(Name::Via).is_some() {
                self.stats.bad_requests += 1;
                self.stateless(flow, &msg, 505, "Version Not Supported", &[]);
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        // RFC 3261 §18.3: on a stream only Content-Length says where a message ends; the
        // framer refuses a stream without one, and so does the engine, whoever framed it.
        if flow.transport.is_reliable() && msg.get(Name::ContentLength).is_none() {
            if matches!(msg.method(), Some(m) if m != "ACK") && msg.get(Name::Via).is_some() {
                self.stats.bad_requests += 1;
                self.stateless(flow, &msg, 400, "Missing Content-Length Header", &[]);
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let core = match msg.core() {
            Ok(core) => core,
            Err(e) => {
                let answerable = matches!(msg.method(), Some(m) if m != "ACK") && msg.get(Name::Via).is_some();
                if answerable {
                    self.stats.bad_requests += 1;
                    self.stateless(flow, &msg, 400, &e.to_string(), &[]);
                } else {
                    self.stats.dropped += 1;
                }
                return;
            }
        };
        if let Some(tags) = unsupported_required(&msg, &core) {
            self.stateless(flow, &msg, 420, reason(420), &[("Unsupported", &tags)]);
            return;
        }
        let key = match msg.start {
            StartLine::Response { .. } => {
                let call = core.via.branch().and_then(parse_branch).filter(|(s, _)| *s == self.shard).map(|(_, c)| c);
                let Some((key, slot)) = call.and_then(|c| self.calls.get_mut(slot_key(c)).map(|slot| (c, slot))) else {
                    self.stats.stray_responses += 1;
                    return;
                };
                // A buried call absorbs retransmitted answers to its requests (Timer K).
                if let State::Live(call) = &mut slot.state {
                    let mut ctx =
                        Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
                    if !call.on_response(&mut ctx, &msg, &core) {
                        self.stats.stray_responses += 1;
                    }
                }
                key
            }
            StartLine::Request { .. } => match self.by_call_id.get(core.call_id) {
                Some(&key) => {
                    let Some(slot) = self.calls.get_mut(slot_key(key)) else { return };
                    let mut ctx =
                        Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
                    match &mut slot.state {
                        State::Live(call) => call.on_request(&mut ctx, &msg, &core, flow),
                        State::Buried(t) => t.on_request(&mut ctx, &msg, &core, flow),
                    }
                    key
                }
                None if core.method == Method::Invite && core.to.tag().is_none() => {
                    if let Err(refusal) = self.sources.admit(now, flow.remote.ip()) {
                        self.stats.edge_refused[refusal as usize] += 1;
                        let (code, extra): (u16, &[(&str, &str)]) = match refusal {
                            Refusal::NotAllowed => (403, &[]),
                            Refusal::SourceRate | Refusal::SourceUnconfirmed => (503, &[("Retry-After", "5")]),
                        };
                        self.stateless(flow, &msg, code, reason(code), extra);
                        return;
                    }
                    if self.draining || self.congested || !self.admission.try_admit() {
                        self.sources.confirmed(flow.remote.ip());
                        self.stats.refused += 1;
                        self.stateless(flow, &msg, 503, reason(503), &[("Retry-After", "5")]);
                        return;
                    }
                    let mut ctx =
                        Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
                    let accepted = self.calls.try_insert_with_key(|k| {
                        let call = Call::accept(&mut ctx, key_of(k), data, &msg, &core, flow)?;
                        Ok(Slot {
                            state: State::Live(Box::new(call)),
                            scheduled: None,
                            active: true,
                            source: Some(flow.remote.ip()),
                        })
                    });
                    match accepted {
                        Ok(k) => {
                            self.stats.calls += 1;
                            self.by_call_id.insert(core.call_id.to_string(), key_of(k));
                            self.active += 1;
                            key_of(k)
                        }
                        Err(why) => {
                            self.admission.release();
                            self.sources.confirmed(flow.remote.ip());
                            self.stats.bad_requests += 1;
                            self.stateless(flow, &msg, 400, why, &[]);
                            return;
                        }
                    }
                }
                None => {
                    match core.method {
                        Method::Ack => {}
                        Method::Options => {
                            self.stateless(flow, &msg, 200, "OK", &[("Allow", ALLOW), ("Accept", "application/sdp")])
                        }
                        m if allowed(m) || core.to.tag().is_some() => {
                            self.stats.unknown_dialog += 1;
                            self.stateless(flow, &msg, 481, reason(481), &[]);
                        }
                        _ => self.stateless(flow, &msg, 405, reason(405), &[("Allow", ALLOW)]),
                    }
                    return;
                }
            },
        };
        self.reschedule(now, key);
    }

    /// Runs what is due at `now`: retransmissions, timeouts, pauses, lingering calls.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.timers.expire(now, &mut due);
        for (at, key) in due.drain(..) {
            let Some(slot) = self.calls.get_mut(slot_key(key)) else { continue };
            debug_assert_eq!(slot.scheduled.map(|(t, _)| t), Some(at), "a moved deadline is removed from the wheel");
            slot.scheduled = None;
            if let State::Live(call) = &mut slot.state {
                let mut ctx =
                    Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
                call.on_timeout(&mut ctx);
            }
            self.reschedule(now, key);
        }
        self.due = due;
    }

    /// The answer to a hook a call waits for.
    pub fn handle_hook_reply(&mut self, now: Instant, reply: HookReply) {
        let Some(Slot { state: State::Live(call), .. }) = self.calls.get_mut(slot_key(reply.call)) else { return };
        let mut ctx = Ctx { now, cfg: &self.cfg, out: &mut self.out, ids: &mut self.ids, stats: &mut self.stats };
        call.on_hook_reply(&mut ctx, reply.token, reply.outcome);
        self.reschedule(now, reply.call);
    }

    fn reschedule(&mut self, now: Instant, key: u64) {
        let Some(slot) = self.calls.get_mut(slot_key(key)) else { return };
        let live = match &mut slot.state {
            State::Live(call) => Some(call),
            State::Buried(_) => None,
        };
        if slot.active && live.as_ref().is_none_or(|call| !call.is_active()) {
            slot.active = false;
            self.active -= 1;
            self.admission.release();
        }
        if slot.source.is_some() && live.as_ref().is_none_or(|call| call.is_confirmed() || !call.is_active()) {
            if let Some(ip) = slot.source.take() {
                self.sources.confirmed(ip);
            }
        }
        if let Some(call) = live {
            // An ended call shrinks to its tombstone as soon as only retransmissions can reach it.
            if let Some(tombstone) = call.bury(&self.ids) {
                forget(&mut self.out, call);
                slot.state = State::Buried(tombstone);
                self.buried += 1;
            }
        }
        let finished = match &slot.state {
            State::Live(call) => call.finished(now),
            State::Buried(t) => now >= t.deadline(),
        };
        if finished {
            if let Some(slot) = self.calls.remove(slot_key(key)) {
                if let Some((_, timer)) = slot.scheduled {
                    self.timers.remove(timer);
                }
                match slot.state {
                    State::Live(call) => {
                        self.by_call_id.remove(call.dialog_call_id());
                        forget(&mut self.out, &call);
                    }
                    State::Buried(t) => {
                        self.by_call_id.remove(&*t.call_id);
                        self.buried -= 1;
                    }
                }
            }
            return;
        }
        // Never at or before `now`: a deadline a call failed to clear must not spin the
        // timer loop (and with it every call on the shard).
        let next = slot.deadline().map(|t| t.max(now + MIN_TIMER));
        if next != slot.scheduled.map(|(t, _)| t) {
            // A deadline that moved must not wake the shard for nothing.
            if let Some((_, timer)) = slot.scheduled.take() {
                self.timers.remove(timer);
            }
            slot.scheduled = next.map(|at| (at, self.timers.insert(now, at, key)));
        }
    }

    /// Answers without creating state (RFC 3261 §8.2.7): errors, OPTIONS, overload.
    fn stateless(&mut self, flow: Flow, msg: &Message<'_>, code: u16, why: &str, extra: &[(&str, &str)]) {
        let tag = self.ids.tag();
        let mut w = Writer::response_to(msg, flow.remote, code, why, Some(&tag));
        for (name, value) in extra {
            w.header(name, value);
        }
        match w.finish(None) {
            Ok(bytes) => self.out.push_back(Output::Transmit(Transmit::on(flow, bytes))),
            Err(e) => tracing::debug!(dst = %flow.remote, error = %e, "stateless answer not sent"),
        }
    }
}
