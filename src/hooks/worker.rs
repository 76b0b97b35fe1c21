//! Delivery: one thread with an async runtime. Jobs of one call run in order on that
//! call's task; different calls run concurrently over pooled keep-alive connections.
//! The shard only ever `try_send`s into the bounded queue, so SIP never waits on HTTP.
//! A hook that exhausts its retries, or is still queued when shutdown's flush time is
//! over, is written to the dead-letter file.

use super::batch::{BatchSettings, Item};
use super::dead_letter::{DeadLetter, DeadLetters};
use super::policy::{backoff, Failure, Policy};
use super::quiet::Quiet;
use super::sign::{baton_signature, jambonz_signature};
use base64::Engine as _;
use baton_proto::{Answer, DocRules, Expect, HookJob, HookReply, HttpMethod, Media, Payload};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use url::Url;

#[derive(Clone, Debug)]
pub struct HookSettings {
    /// What relative hook URLs resolve against.
    pub base: Option<Url>,
    pub secret: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub queue: usize,
    /// Where undeliverable hooks are written.
    pub dead_letter: PathBuf,
    /// At shutdown, how long queued hooks may still be tried before they are dead-lettered.
    pub flush: Duration,
    pub counters: Arc<super::counters::HookCounters>,
    /// Where events nobody waits on go in batches, if anywhere.
    pub batch: Option<BatchSettings>,
    /// Largest answer read; a longer one fails the hook (read as a stream and cut off).
    pub max_answer: usize,
    /// Requests in flight to one destination (scheme, host and port); more wait their turn.
    pub connections: usize,
    /// Most verbs in an application a hook answers with.
    /// What a hook's answer may hold (`--max-verbs`, `--media`).
    pub rules: DocRules,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            base: None,
            secret: None,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(200),
            queue: 65_536,
            dead_letter: PathBuf::from("baton-dead-letters.jsonl"),
            flush: Duration::from_secs(10),
            counters: Arc::default(),
            batch: None,
            max_answer: 1024 * 1024,
            connections: 256,
            rules: DocRules { max_verbs: 1000, media: Media::Refuse },
        }
    }
}

#[derive(Debug)]
pub enum Msg {
    Job(Box<HookJob>),
    /// The call is over: its task ends once its queued jobs are delivered.
    Gone(Arc<str>),
}

/// Where answers to awaited hooks go (the shard's inbox, which wakes the shard).
pub type ReplySink = Arc<dyn Fn(HookReply) + Send + Sync>;

/// The shards' handle on the hook queue; every shard holds a clone.
#[derive(Clone)]
pub struct Hooks {
    tx: mpsc::Sender<Msg>,
    queue: usize,
    /// Jobs submitted and not yet finished (delivered, failed or batched): what the queue's
    /// bound really bounds, since jobs leave the channel for their call's task at once.
    pending: Arc<AtomicUsize>,
}

/// The delivery thread: ends once every [`Hooks`] handle is gone and the queue is flushed.
pub struct Delivery {
    thread: JoinHandle<()>,
}

impl Delivery {
    /// Waits until every hook is delivered or dead-lettered.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Hook delivery is throughput work: as SCHED_BATCH its wake-ups never preempt a shard
/// sharing its core (measured at 4,000 transfers/s with hooks on: the shard was preempted
/// ~10,000 times a second, once for nearly every hook handed over).
fn yield_to_shards() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets the calling thread's policy from a valid, initialised parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot make the hook thread SCHED_BATCH");
    }
}

/// Redirects are followed by [`send`], not by the client: each hop is signed for its own URL.
fn client(timeout: Duration) -> std::io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(64)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)
}

/// Redirects one hook request may follow.
const MAX_REDIRECTS: usize = 5;

/// Destinations whose requests in flight are counted before idle ones are forgotten.
const DESTINATIONS: usize = 1024;

impl Hooks {
    pub fn start(settings: HookSettings, sink: ReplySink) -> std::io::Result<(Hooks, Delivery)> {
        let queue = settings.queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (cut, cutoff) = watch::channel(false);
        let (batch, items) = mpsc::unbounded_channel();
        let batch_settings = settings.batch.clone();
        let pending = Arc::new(AtomicUsize::new(0));
        let deliverer = Arc::new(Deliverer {
            batch: batch_settings.is_some().then_some(batch),
            client: client(settings.timeout)?,
            pending: pending.clone(),
            destinations: std::sync::Mutex::new(HashMap::new()),
            failing: Quiet::new(Duration::from_secs(10)),
            dead: DeadLetters::new(settings.dead_letter.clone()),
            settings,
            sink,
            cutoff,
        });
        let thread = std::thread::Builder::new().name("baton-hooks".into()).spawn(move || {
            yield_to_shards();
            runtime.block_on(async move {
                if let Some(settings) = batch_settings {
                    tokio::spawn(super::batch::run(items, deliverer.clone(), settings));
                }
                dispatch(rx, deliverer, cut).await
            })
        })?;
        Ok((Hooks { tx, queue, pending }, Delivery { thread }))
    }

    /// Never blocks: when the queue is full the message comes back.
    pub fn submit(&self, msg: Msg) -> Result<(), Msg> {
        let job = matches!(msg, Msg::Job(_));
        if job && self.pending.load(Ordering::Acquire) >= self.queue {
            return Err(msg);
        }
        // Counted before it can reach the worker, which counts it out when it finishes.
        if job {
            self.pending.fetch_add(1, Ordering::AcqRel);
        }
        self.tx.try_send(msg).map_err(|e| {
            if job {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
            match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            }
        })
    }

    /// Nearly full (7/8 of the jobs the queue holds are not finished): new calls should be
    /// refused so the calls already admitted keep room for their hooks.
    pub fn congested(&self) -> bool {
        let room = (self.queue / 8).max(1);
        self.tx.capacity() < room || self.pending.load(Ordering::Acquire) + room > self.queue
    }

    /// A shard that ends hands over what it held (waiting for room is fine now) and lets
    /// go of the queue.
    pub fn hand_over(self, held: impl IntoIterator<Item = Msg>) {
        for msg in held {
            if self.tx.blocking_send(msg).is_err() {
                break;
            }
        }
    }
}

async fn dispatch(mut rx: mpsc::Receiver<Msg>, deliverer: Arc<Deliverer>, cut: watch::Sender<bool>) {
    let mut calls: HashMap<Arc<str>, mpsc::UnboundedSender<HookJob>> = HashMap::new();
    let mut tasks = JoinSet::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Job(job) => {
                let queue = calls.entry(job.call_sid.clone()).or_insert_with(|| {
                    let (tx, mut jobs) = mpsc::unbounded_channel::<HookJob>();
                    let d = deliverer.clone();
                    tasks.spawn(async move {
                        while let Some(job) = jobs.recv().await {
                            d.run(job).await;
                        }
                    });
                    tx
                });
                let _ = queue.send(*job);
            }
            Msg::Gone(sid) => {
                calls.remove(&sid);
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    // Shutdown: what is queued gets the flush time, then goes to the dead-letter file.
    drop(calls);
    let flush = deliverer.settings.flush;
    if tokio::time::timeout(flush, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        let _ = cut.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// A request ready to send: what a dead letter records and a replay sends again.
#[derive(Clone, Debug)]
pub(super) struct Prepared {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// What `Jambonz-Signature` signs when it is not the body: a GET's payload as JSON
    /// (jambonz signs the payload whatever the method carries it in).
    pub payload: Option<Vec<u8>>,
}

/// A job is finished (delivered, failed, handed to the batcher) when this is dropped.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) struct Deliverer {
    /// Jobs submitted and not finished (shared with every [`Hooks`] handle).
    pending: Arc<AtomicUsize>,
    /// Requests in flight per destination (`scheme://host:port`), at most `connections`.
    destinations: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Says once per period that hooks a call waits for are failing.
    failing: Quiet,
    /// Events nobody waits on go here when there is a batch endpoint.
    batch: Option<mpsc::UnboundedSender<Item>>,
    client: reqwest::Client,
    pub settings: HookSettings,
    sink: ReplySink,
    dead: DeadLetters,
    /// Turns true when shutdown's flush time is over.
    cutoff: watch::Receiver<bool>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// SWML status callbacks carry the time they are sent, in fractional seconds.
fn unix_now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Deliverer {
    async fn run(&self, job: HookJob) {
        let _finished = Finished(&self.pending);
        if let (Some(batch), None, Payload::Event(_) | Payload::Stamped(_)) = (&self.batch, job.reply, &job.body) {
            return self.batched(batch, job).await;
        }
        let result = self.deliver(&job).await;
        let Some(reply) = job.reply else { return };
        // What goes back to the call may reach the caller (a 480's X-Reason): it names what
        // failed, never the application's URL; the log has that.
        let outcome = match (result, reply.expect) {
            (Ok((status, body)), Expect::Http) => Ok(Answer::Http { status, body }),
            (Ok((status, body)), expect) if (200..300).contains(&status) => {
                baton_proto::read_answer(&body, expect, self.settings.rules)
            }
            (Ok((status, _)), _) => Err(format!("the application's hook answered HTTP {status}")),
            (Err(e), _) => Err(format!("the application's hook failed: {e}")),
        };
        if let Err(e) = &outcome {
            self.settings.counters.failed.fetch_add(1, Ordering::Relaxed);
            if let Some(count) = self.failing.event() {
                tracing::warn!(count, url = %job.hook.url, error = %e, "hooks that calls wait for are failing");
            }
        }
        (self.sink)(HookReply { shard: reply.shard, call: reply.call, token: reply.token, outcome });
    }

    /// The permit to send one request to `url`'s destination.
    async fn turn(&self, url: &Url) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let origin = url.origin().ascii_serialization();
        let connections = self.settings.connections;
        let limit = {
            let mut map = self.destinations.lock().ok()?;
            // Applications name their hosts: forget the idle ones rather than grow forever.
            if map.len() >= DESTINATIONS && !map.contains_key(&origin) {
                map.retain(|_, limit| limit.available_permits() < connections);
            }
            map.entry(origin).or_insert_with(|| Arc::new(Semaphore::new(connections))).clone()
        };
        limit.acquire_owned().await.ok()
    }

    /// Hands an event to the batcher and waits until its batch is acknowledged.
    async fn batched(&self, batch: &mpsc::UnboundedSender<Item>, job: HookJob) {
        let hook = match self.resolve(&job.hook.url) {
            Ok(mut url) => {
                url.set_fragment(None);
                url.to_string()
            }
            Err(e) => {
                return tracing::warn!(call_sid = %job.call_sid, call_id = %job.call_id, error = %e, "event not sent")
            }
        };
        let stamped = matches!(job.body, Payload::Stamped(_));
        let mut element = job.body.into_json().unwrap_or_default();
        if let Some(fields) = element.as_object_mut() {
            if stamped {
                fields.insert("timestamp".into(), serde_json::json!(unix_now_f64()));
            }
            fields.insert("hook".into(), serde_json::Value::String(hook));
        }
        let (done, acknowledged) = tokio::sync::oneshot::channel();
        let item = Item { element, call_sid: job.call_sid, at: job.at, done };
        if batch.send(item).is_ok() {
            let _ = acknowledged.await;
        }
    }

    fn resolve(&self, raw: &str) -> Result<Url, String> {
        match Url::parse(raw) {
            Ok(url) => Ok(url),
            Err(url::ParseError::RelativeUrlWithoutBase) => match &self.settings.base {
                Some(base) => base.join(raw).map_err(|e| format!("bad hook URL: {e}")),
                None => Err("a relative hook URL has no base: set --hook-base or use a call hook".into()),
            },
            Err(e) => Err(format!("bad hook URL: {e}")),
        }
    }

    /// The request for a job: method, URL (with a GET's query), headers, body.
    fn prepare(&self, url: &Url, job: &HookJob) -> Prepared {
        let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
        let method = match job.hook.method {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        };
        let mut payload = None;
        let (url, body) = match &job.body {
            // Rendered here, on the hook side's thread: the shard only handed over data.
            Payload::Event(event) if job.hook.method == HttpMethod::Get => {
                let v = event.to_json();
                payload = Some(json(&v));
                (query_url(url, &v), None)
            }
            Payload::Event(event) => (url.clone(), Some(json(&event.to_json()))),
            Payload::Stamped(v) => {
                let mut v = v.clone();
                v["timestamp"] = serde_json::json!(unix_now_f64());
                (url.clone(), Some(json(&v)))
            }
            Payload::Request { body, .. } => (url.clone(), body.as_ref().map(json)),
        };
        let mut headers = Vec::new();
        if body.is_some() {
            headers.push(("Content-Type".to_string(), "application/json".to_string()));
        }
        if let Payload::Request { headers: extra, .. } = &job.body {
            headers.extend(extra.iter().cloned());
        }
        if let Some(auth) = &job.hook.auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.username, auth.password));
            headers.push(("Authorization".to_string(), format!("Basic {token}")));
        }
        Prepared { method: method.to_string(), url, headers, body, payload }
    }

    /// Delivers with retries; the status and body of the last completed exchange. A hook
    /// nobody waits on (or an actionHook) that cannot be delivered is dead-lettered.
    async fn deliver(&self, job: &HookJob) -> Result<(u16, String), String> {
        let mut url = self.resolve(&job.hook.url)?;
        let policy = Policy::from_fragment(url.fragment(), Policy::default_with(self.settings.retries));
        url.set_fragment(None);
        let prepared = self.prepare(&url, job);
        let (last, attempts) = self.send_with_retries(&prepared, policy, &job.call_sid).await;
        match &last {
            Ok((status, _)) if (200..300).contains(status) => {
                self.settings.counters.delivered(1, job.at.elapsed());
                return last;
            }
            _ => {}
        }
        if matches!(job.reply.map(|r| r.expect), None | Some(Expect::Verbs)) {
            self.dead_letter(&job.call_sid, &prepared, attempts, &last);
        }
        last
    }

    /// Sends until a 2xx, the policy gives up, or shutdown's cutoff: the last completed
    /// exchange (or why there was none) and the attempts made.
    pub(super) async fn send_with_retries(
        &self,
        prepared: &Prepared,
        policy: Policy,
        call_sid: &str,
    ) -> (Result<(u16, String), String>, u32) {
        let mut attempt = 0;
        let mut cutoff = self.cutoff.clone();
        loop {
            if *cutoff.borrow() {
                return (Err("not delivered before shutdown".to_string()), attempt);
            }
            let secret = self.settings.secret.as_deref();
            let exchange = async {
                let _turn = self.turn(&prepared.url).await;
                send(&self.client, secret, prepared, self.settings.max_answer).await
            };
            let result = tokio::select! {
                r = exchange => r,
                _ = cutoff.wait_for(|cut| *cut) => Err((Failure::Other, "not delivered before shutdown".into())),
            };
            attempt += 1;
            let (failure, last) = match result {
                Ok((status, body)) if (200..300).contains(&status) => return (Ok((status, body)), attempt),
                Ok((status, body)) => (Failure::Status(status), Ok((status, body))),
                Err((failure, why)) => (failure, Err(why)),
            };
            if attempt > policy.retries || !policy.retries(failure) || *cutoff.borrow() {
                return (last, attempt);
            }
            tracing::debug!(call_sid, url = %prepared.url, attempt, "hook failed; retrying");
            self.settings.counters.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(self.settings.backoff, attempt - 1, fastrand::f64())).await;
        }
    }

    pub(super) fn dead_letter(
        &self,
        call_sid: &str,
        prepared: &Prepared,
        attempts: u32,
        last: &Result<(u16, String), String>,
    ) {
        let last_error = match last {
            Ok((status, _)) => format!("HTTP {status}"),
            Err(e) => e.clone(),
        };
        self.settings.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.dead.append(&DeadLetter {
            call_sid: call_sid.to_string(),
            url: prepared.url.to_string(),
            method: prepared.method.clone(),
            headers: prepared.headers.clone(),
            body: prepared.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            payload: prepared.payload.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            attempts,
            last_error,
            at: unix_now(),
        });
    }
}

fn classify(e: reqwest::Error) -> (Failure, String) {
    let failure = if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect
    } else {
        Failure::Other
    };
    (failure, e.without_url().to_string())
}

/// One HTTP exchange, signed when there is a secret; the answer is read up to `max_answer`
/// bytes, and a longer one fails the exchange. A redirect (301, 302, 307, 308) is followed
/// with the same method and body, signed anew for its URL, and only to the same scheme,
/// host and port: the signature and any Basic credentials never reach another host
/// (docs/security.md, "Signatures"); a redirect elsewhere is the answer, and fails the hook.
/// Errors never name the URL (the caller may see them); the log and the dead letter do.
async fn send(
    client: &reqwest::Client,
    secret: Option<&str>,
    p: &Prepared,
    max_answer: usize,
) -> Result<(u16, String), (Failure, String)> {
    let method = reqwest::Method::from_bytes(p.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut url = p.url.clone();
    let mut hops = 0;
    let mut resp = loop {
        let mut req = client.request(method.clone(), url.clone());
        for (name, value) in &p.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(secret) = secret {
            let (secret, now, body) = (secret.as_bytes(), unix_now(), p.body.as_deref().unwrap_or_default());
            let ours = baton_signature(secret, now, &p.method, url.as_str(), body);
            let theirs = jambonz_signature(secret, now, p.payload.as_deref().unwrap_or(body));
            req = req.header("Baton-Signature", ours).header("Jambonz-Signature", theirs);
        }
        if let Some(body) = &p.body {
            req = req.body(body.clone());
        }
        let resp = req.send().await.map_err(classify)?;
        let next = matches!(resp.status().as_u16(), 301 | 302 | 307 | 308)
            .then(|| resp.headers().get(reqwest::header::LOCATION)?.to_str().ok())
            .flatten()
            .and_then(|location| url.join(location).ok())
            .filter(|next| next.origin() == url.origin());
        match next {
            Some(next) if hops < MAX_REDIRECTS => {
                hops += 1;
                url = next;
            }
            Some(_) => return Err((Failure::Other, format!("more than {MAX_REDIRECTS} redirects"))),
            None => break resp,
        }
    };
    let too_long = || (Failure::Other, format!("answer longer than {max_answer} bytes (--hook-max-answer)"));
    let status = resp.status().as_u16();
    if resp.content_length().is_some_and(|n| n > max_answer as u64) {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > max_answer {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `baton replay`: sends every dead letter of `path` once more, in order. Returns the
/// letters that failed again.
pub fn replay(letters: Vec<DeadLetter>, secret: Option<&str>, timeout: Duration) -> std::io::Result<Vec<DeadLetter>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = client(timeout)?;
    runtime.block_on(async {
        let mut failed = Vec::new();
        for mut letter in letters {
            let prepared = match Url::parse(&letter.url) {
                Ok(url) => Prepared {
                    method: letter.method.clone(),
                    url,
                    headers: letter.headers.clone(),
                    body: letter.body.clone().map(String::into_bytes),
                    payload: letter.payload.clone().map(String::into_bytes),
                },
                Err(e) => {
                    letter.last_error = format!("bad URL: {e}");
                    failed.push(letter);
                    continue;
                }
            };
            letter.attempts += 1;
            letter.at = unix_now();
            match send(&client, secret, &prepared, HookSettings::default().max_answer).await {
                Ok((status, _)) if (200..300).contains(&status) => {}
                Ok((status, _)) => {
                    letter.last_error = format!("HTTP {status}");
                    failed.push(letter);
                }
                Err((_, e)) => {
                    letter.last_error = e;
                    failed.push(letter);
                }
            }
        }
        Ok(failed)
    })
}

/// GET hooks carry the payload's top-level fields as the query string.
fn query_url(url: &Url, body: &serde_json::Value) -> Url {
    let mut url = url.clone();
    if let Some(fields) = body.as_object() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in fields {
            match value {
                serde_json::Value::String(s) => pairs.append_pair(key, s),
                other => pairs.append_pair(key, &other.to_string()),
            };
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_hooks_carry_fields_in_the_query() {
        let url = Url::parse("http://h/x?a=1").unwrap();
        let out = query_url(&url, &serde_json::json!({"call_sid": "s", "refer_status": 202}));
        assert_eq!(out.as_str(), "http://h/x?a=1&call_sid=s&refer_status=202");
    }
}
