//! A seeded simulator for protocol tests, after quinn-proto's: one engine, a carrier user
//! agent and a hook side, joined by a network that loses, duplicates, delays and so
//! reorders datagrams, all on a virtual clock. A run is fixed by its seed: a failure
//! replays exactly, and RFC 3261's timers at their real defaults pass in microseconds.
//!
//! The carrier behaves as a UA would: it retransmits its requests until they are
//! answered (Timers A and E), answers a retransmitted request with the answer it gave,
//! and acknowledges every 2xx it receives. The test plays its decisions: which requests
//! to send, how to answer baton's.
#![allow(dead_code)]

pub mod text;

use baton_proto::sip::{parse, Name};
use baton_proto::{
    parse_document, read_answer, Answer, DocRules, Engine, Expect, Flow, Hook, HookJob, HookReply, Output, Seed,
    Settings,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use text::*;

pub const BATON: &str = "10.0.0.1:5060";
pub const CARRIER: &str = "10.0.0.2:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What the network does to each datagram, in both directions.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// The chance a datagram is lost.
    pub loss: f64,
    /// The chance it arrives twice.
    pub dup: f64,
    /// Each copy takes 1 ms plus up to this much: datagrams overtake one another.
    pub jitter: Duration,
}

impl Faults {
    /// A perfect network: every datagram arrives at once, in order.
    pub const NONE: Faults = Faults { loss: 0.0, dup: 0.0, jitter: Duration::ZERO };

    /// A bad one: a tenth lost, a tenth doubled, up to 80 ms of jitter.
    pub fn bad() -> Faults {
        Faults { loss: 0.1, dup: 0.1, jitter: Duration::from_millis(80) }
    }
}

/// A datagram on the wire.
struct Packet {
    at: Instant,
    to_baton: bool,
    bytes: Vec<u8>,
}

/// A request the carrier sent and retransmits until it is answered.
struct Pending {
    /// Its branch and method, as its answers name it.
    key: (String, String),
    invite: bool,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    until: Instant,
}

pub struct Sim {
    pub engine: Engine,
    pub now: Instant,
    start: Instant,
    rng: fastrand::Rng,
    pub faults: Faults,
    /// How the carrier reaches baton: UDP, or one TCP/TLS connection (whose bytes the
    /// simulator delivers as whole messages, as a framer would).
    pub flow: Flow,
    /// Transmits baton sent on another transport or connection than the carrier's.
    pub misrouted: usize,
    wire: Vec<Packet>,
    /// The carrier's requests not answered yet.
    pending: Vec<Pending>,
    /// The carrier's answers, by the branch and method of baton's request: sent again
    /// when the request is.
    answers: HashMap<(String, String), Vec<u8>>,
    seen: HashSet<(String, String)>,
    /// New requests from baton the test has not taken yet.
    inbox: VecDeque<Sip>,
    /// Every answer baton gave, by the branch and method of the carrier's request (a
    /// CANCEL shares its INVITE's branch).
    responses: HashMap<(String, String), Vec<Sip>>,
    /// Everything the carrier received, retransmissions included, with when.
    pub received: Vec<(Duration, Sip)>,
    /// Whether the carrier acknowledges 2xx answers to its INVITEs.
    pub auto_ack: bool,
    /// Every hook baton sent, with when.
    pub hooks: Vec<(Duration, HookJob)>,
    /// How the hook side answers awaited hooks, by path: (delay, HTTP status, body).
    hook_answers: HashMap<String, (Duration, u16, String)>,
    replies: Vec<(Instant, HookReply)>,
    /// Calls whose hook queues the engine said could close.
    pub gone: usize,
    /// Answers of the carrier that reached baton, by the branch of baton's request.
    delivered: HashSet<String>,
    /// Datagrams the network lost, and doubled.
    pub lost: usize,
    pub doubled: usize,
    /// Times the engine's deadline woke it (each a wake-up of a real shard).
    pub wakeups: usize,
    /// What the hook side accepts of the documents it reads.
    pub rules: DocRules,
}

impl Sim {
    /// baton whose call hook (`/call`) answers with `app`, on a network with `faults`.
    pub fn new(seed: u64, app: Value, faults: Faults) -> Sim {
        Sim::with(seed, app, faults, |_| {})
    }

    pub fn with(seed: u64, app: Value, faults: Faults, tweak: impl FnOnce(&mut Settings)) -> Sim {
        let mut settings = Settings {
            call_hook: Some(Hook::post("/call")),
            status_hook: Some(Hook::post("/status")),
            ..Settings::default()
        };
        tweak(&mut settings);
        let now = Instant::now();
        let mut sim = Sim {
            engine: Engine::new(Arc::new(settings), 0, Seed::fixed(seed)),
            now,
            start: now,
            rng: fastrand::Rng::with_seed(seed),
            faults,
            flow: Flow::udp(addr(BATON), addr(CARRIER)),
            misrouted: 0,
            wire: Vec::new(),
            pending: Vec::new(),
            answers: HashMap::new(),
            seen: HashSet::new(),
            inbox: VecDeque::new(),
            responses: HashMap::new(),
            received: Vec::new(),
            auto_ack: true,
            hooks: Vec::new(),
            hook_answers: HashMap::new(),
            replies: Vec::new(),
            gone: 0,
            delivered: HashSet::new(),
            lost: 0,
            doubled: 0,
            wakeups: 0,
            rules: DocRules { max_verbs: 1000, ..DocRules::default() },
        };
        sim.answer_hook("/call", 200, &app.to_string());
        sim
    }

    /// baton running `app` as its static application (`--app`), no call hook.
    pub fn with_app(seed: u64, app: Value, faults: Faults) -> Sim {
        let doc = parse_document(&app.to_string()).unwrap();
        Sim::with(seed, Value::Null, faults, |s| {
            s.call_hook = None;
            s.app = Some(doc);
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    // ---- the hook side ------------------------------------------------------------------

    /// Awaited hooks to `path` are answered with this status and body.
    pub fn answer_hook(&mut self, path: &str, status: u16, body: &str) {
        self.hook_answers.insert(path.into(), (Duration::ZERO, status, body.into()));
    }

    /// The same, `delay` after the hook was sent.
    pub fn answer_hook_after(&mut self, path: &str, delay: Duration, status: u16, body: &str) {
        self.hook_answers.insert(path.into(), (delay, status, body.into()));
    }

    /// The JSON bodies of the hooks sent to `path`, in order.
    pub fn hooks_to(&self, path: &str) -> Vec<Value> {
        self.hooks.iter().filter(|(_, h)| h.hook.url == path).filter_map(|(_, h)| h.body.json()).collect()
    }

    fn on_hook(&mut self, job: HookJob) {
        if let Some(reply) = job.reply {
            let (delay, status, body) = self.hook_answers.get(&job.hook.url).cloned().unwrap_or_default();
            let outcome = match reply.expect {
                Expect::Http => Ok(Answer::Http { status, body }),
                _ if (200..300).contains(&status) => read_answer(&body, reply.expect, self.rules),
                _ => Err(format!("the application's hook answered HTTP {status}")),
            };
            let reply = HookReply { shard: reply.shard, call: reply.call, token: reply.token, outcome };
            self.replies.push((self.now + delay, reply));
        }
        self.hooks.push((self.elapsed(), job));
    }

    // ---- the network --------------------------------------------------------------------

    fn put_on_wire(&mut self, to_baton: bool, bytes: Vec<u8>) {
        let copies = if self.rng.f64() < self.faults.dup { 2 } else { 1 };
        self.doubled += copies - 1;
        for _ in 0..copies {
            if self.rng.f64() < self.faults.loss {
                self.lost += 1;
                continue;
            }
            let jitter = self.rng.u64(..=self.faults.jitter.as_micros() as u64);
            let base = if self.faults.jitter.is_zero() { Duration::ZERO } else { Duration::from_millis(1) };
            let at = self.now + base + Duration::from_micros(jitter);
            self.wire.push(Packet { at, to_baton, bytes: bytes.clone() });
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit(t) => {
                    assert_eq!(t.local, addr(BATON), "sent from the address the call came to");
                    if (t.transport, t.conn) != (self.flow.transport, self.flow.conn) {
                        self.misrouted += 1;
                    }
                    self.put_on_wire(false, t.bytes);
                }
                Output::Hook(job) => self.on_hook(job),
                Output::CallGone(_) => self.gone += 1,
            }
        }
    }

    /// The next moment anything happens.
    fn next_event(&self) -> Option<Instant> {
        let wire = self.wire.iter().map(|p| p.at);
        let pending = self.pending.iter().map(|p| p.next.min(p.until));
        let replies = self.replies.iter().map(|r| r.0);
        wire.chain(pending).chain(replies).chain(self.engine.poll_timeout()).min()
    }

    /// Runs the next moment's events; false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_event() else { return false };
        self.now = self.now.max(at);
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire).into_iter().partition(|p| p.at <= now);
        self.wire = later;
        for p in due {
            if p.to_baton {
                if let Some(branch) = parse(&p.bytes)
                    .ok()
                    .filter(|m| m.status().is_some())
                    .and_then(|m| m.core().ok().and_then(|c| c.via.branch().map(str::to_string)))
                {
                    self.delivered.insert(branch);
                }
                self.engine.handle_receive(now, self.flow, &p.bytes);
                self.drain();
            } else {
                self.carrier_receives(Sip(p.bytes));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.replies).into_iter().partition(|r| r.0 <= now);
        self.replies = later;
        for (_, reply) in due {
            self.engine.handle_hook_reply(now, reply);
            self.drain();
        }
        self.retransmit();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
            self.wakeups += 1;
            self.drain();
        }
        true
    }

    /// Runs until `done` holds; panics (naming `what`) after two minutes of virtual time.
    pub fn run_until(&mut self, what: &str, mut done: impl FnMut(&mut Sim) -> bool) {
        let limit = self.now + Duration::from_secs(120);
        while !done(self) {
            assert!(self.now < limit, "{what}: not within two minutes of virtual time");
            assert!(self.step(), "{what}: nothing left to happen");
        }
    }

    /// Runs every event up to `by` from now.
    pub fn run_for(&mut self, by: Duration) {
        let end = self.now + by;
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Runs until baton holds no call at all (every retransmission window over).
    pub fn settle(&mut self) {
        let idle =
            |s: &mut Sim| s.engine.calls() == 0 && s.wire.is_empty() && s.replies.is_empty() && s.pending.is_empty();
        self.run_until("every call forgotten", idle);
    }

    // ---- the carrier --------------------------------------------------------------------

    /// Sends a request as a UA does: again and again until it is answered.
    pub fn send(&mut self, text: &str) {
        let msg = parse(text.as_bytes()).unwrap();
        // Only on UDP: a reliable transport delivers, so a UA never sends again there.
        if msg.method() != Some("ACK") && !self.flow.transport.is_reliable() {
            self.pending.push(Pending {
                key: key_of(text),
                invite: msg.method() == Some("INVITE"),
                bytes: text.as_bytes().to_vec(),
                next: self.now + Duration::from_millis(500),
                interval: Duration::from_millis(500),
                until: self.now + Duration::from_secs(32),
            });
        }
        self.put_on_wire(true, text.as_bytes().to_vec());
    }

    /// Sends a datagram once, whatever it is.
    pub fn send_once(&mut self, bytes: &[u8]) {
        self.put_on_wire(true, bytes.to_vec());
    }

    /// Sends a datagram once and runs what it causes at this instant (on a perfect
    /// network it arrives at once).
    pub fn deliver(&mut self, text: &str) {
        self.send_once(text.as_bytes());
        while self.next_event().is_some_and(|t| t <= self.now) {
            self.step();
        }
    }

    /// What the carrier received since the last call, with when.
    pub fn take(&mut self) -> Vec<(Duration, Sip)> {
        self.inbox.clear();
        std::mem::take(&mut self.received)
    }

    fn retransmit(&mut self) {
        let now = self.now;
        self.pending.retain(|p| p.until > now);
        let mut again = Vec::new();
        for p in &mut self.pending {
            if p.next <= now {
                again.push(p.bytes.clone());
                p.interval = if p.invite { p.interval * 2 } else { (p.interval * 2).min(Duration::from_secs(4)) };
                p.next = now + p.interval;
            }
        }
        for bytes in again {
            self.put_on_wire(true, bytes);
        }
    }

    fn carrier_receives(&mut self, sip: Sip) {
        self.received.push((self.elapsed(), sip.clone()));
        // What baton answers to a mangled request may lack what a UA would act on.
        let Some(branch) = sip.try_branch() else { return };
        let msg = sip.msg();
        if let Some(method) = msg.method() {
            let key = (branch, method.to_string());
            if let Some(answer) = self.answers.get(&key).cloned() {
                self.put_on_wire(true, answer);
            } else if self.seen.insert(key) {
                self.inbox.push_back(sip.clone());
            }
            return;
        }
        let code = msg.status().unwrap();
        let key = (branch, sip.cseq().1);
        let of_invite = key.1 == "INVITE";
        if code >= 200 || of_invite {
            self.pending.retain(|p| p.key != key);
        }
        if of_invite && code >= 200 && self.auto_ack {
            let call_id = msg.get(Name::CallId).unwrap().to_string();
            let to = msg.get(Name::To).unwrap().to_string();
            let ack = if code < 300 {
                ack_text(addr(CARRIER), addr(BATON), &call_id, &to)
            } else {
                // A failure's ACK belongs to the INVITE's transaction: its branch.
                ack_text(addr(CARRIER), addr(BATON), &call_id, &to).replace(&format!("z9hG4bK-ack-{call_id}"), &key.0)
            };
            self.put_on_wire(true, ack.into_bytes());
        }
        self.responses.entry(key).or_default().push(sip.clone());
    }

    /// Answers a request baton sent; a retransmission of it gets the same answer.
    pub fn respond(&mut self, req: &Sip, code: u16, extra: &str) {
        let text = response_text(req, code, extra);
        self.answers.insert((req.branch(), req.method().unwrap()), text.clone().into_bytes());
        self.put_on_wire(true, text.into_bytes());
    }

    /// Runs until the carrier's answer to `req` has reached baton (it may be lost and
    /// sent again when baton retransmits `req`).
    pub fn until_delivered(&mut self, req: &Sip) {
        let branch = req.branch();
        self.run_until("the answer delivered", |s| s.delivered.contains(&branch));
    }

    /// The next new request baton sent with this method, waiting for it (other requests
    /// stay in the inbox).
    pub fn expect_request(&mut self, method: &str) -> Sip {
        let what = format!("a {method} from baton");
        self.run_until(&what, |s| s.inbox.iter().any(|m| m.method().as_deref() == Some(method)));
        let i = self.inbox.iter().position(|m| m.method().as_deref() == Some(method)).unwrap();
        self.inbox.remove(i).unwrap()
    }

    /// Requests baton sent that the test has not taken.
    pub fn unanswered(&self) -> Vec<String> {
        self.inbox.iter().filter_map(Sip::method).collect()
    }

    /// baton's final answer to the carrier's request `text`, waiting for it.
    pub fn final_answer(&mut self, text: &str) -> Sip {
        let key = key_of(text);
        let done = |s: &mut Sim| s.responses.get(&key).is_some_and(|r| r.iter().any(|m| m.status() >= Some(200)));
        self.run_until(&format!("the answer to {key:?}"), done);
        self.responses[&key].iter().find(|m| m.status() >= Some(200)).unwrap().clone()
    }

    /// baton's first answer (provisional or final) to the carrier's request `text`.
    pub fn first_answer(&mut self, text: &str) -> Sip {
        let key = key_of(text);
        self.run_until(&format!("an answer to {key:?}"), |s| s.responses.contains_key(&key));
        self.responses[&key][0].clone()
    }

    /// Every answer baton gave to the carrier's request `text`, repeats included.
    pub fn answers(&self, text: &str) -> Vec<Sip> {
        self.responses.get(&key_of(text)).cloned().unwrap_or_default()
    }

    /// Sends a request and waits for baton's final answer's status.
    pub fn request(&mut self, text: &str) -> u16 {
        self.send(text);
        self.final_answer(text).status().unwrap()
    }

    /// INVITE, 200, ACK: the carrier's side of an established call.
    pub fn call(&mut self, call_id: &str) -> Leg {
        self.call_with(call_id, "")
    }

    pub fn call_with(&mut self, call_id: &str, extra: &str) -> Leg {
        let invite = invite_text(addr(CARRIER), addr(BATON), call_id, extra);
        self.send(&invite);
        let ok = self.final_answer(&invite);
        assert_eq!(ok.status(), Some(200), "{}", ok.text());
        let to = ok.header(Name::To).unwrap();
        Leg { call_id: call_id.into(), to, cseq: 1, ok }
    }

    /// Every message the carrier received with this method (retransmissions included).
    pub fn received(&self, method: &str) -> Vec<(Duration, Sip)> {
        self.received.iter().filter(|(_, m)| m.method().as_deref() == Some(method)).cloned().collect()
    }
}

/// A request's transaction as its answers name it: branch and method.
fn key_of(text: &str) -> (String, String) {
    let request = Sip(text.as_bytes().to_vec());
    (request.branch(), request.method().unwrap())
}

/// The carrier's side of an established call.
pub struct Leg {
    pub call_id: String,
    /// The To baton answered with (with its tag).
    pub to: String,
    pub cseq: u32,
    pub ok: Sip,
}

impl Leg {
    pub fn dialog(&self) -> Dialog<'_> {
        Dialog { me: addr(CARRIER), baton: addr(BATON), call_id: &self.call_id, to: &self.to }
    }

    /// An in-dialog request with the next CSeq.
    pub fn next(&mut self, method: &str, headers: &str, body: &str) -> String {
        self.cseq += 1;
        self.dialog().request(method, self.cseq, headers, body)
    }

    /// A NOTIFY of the refer subscription with the next CSeq.
    pub fn next_notify(&mut self, refer: &Sip, status: &str, state: &str) -> String {
        self.cseq += 1;
        self.dialog().notify(self.cseq, refer.cseq().0, status, state)
    }

    /// A NOTIFY of the refer subscription, sent until answered: baton's status.
    pub fn notify(&mut self, sim: &mut Sim, refer: &Sip, status: &str, state: &str) -> u16 {
        sim.request(&self.next_notify(refer, status, state))
    }
}

/// A call whose transfer succeeds: INVITE, REFER answered 202, a final NOTIFY 200. Returns
/// the carrier's leg and when (virtual time) the NOTIFY was first sent.
pub fn transferred(sim: &mut Sim, call_id: &str) -> (Leg, Duration) {
    let mut leg = sim.call(call_id);
    let refer = sim.expect_request("REFER");
    sim.respond(&refer, 202, "");
    let at = sim.elapsed();
    assert_eq!(leg.notify(sim, &refer, "200 OK", "terminated"), 200);
    (leg, at)
}

/// Runs `case` under each of `seeds` on a bad network, naming the seed that fails.
pub fn every_seed(seeds: std::ops::Range<u64>, case: impl Fn(u64)) {
    for seed in seeds {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(seed)));
        if let Err(e) = run {
            eprintln!("failed with seed {seed}");
            std::panic::resume_unwind(e);
        }
    }
}
