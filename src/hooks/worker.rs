//! Delivery: one thread with an async runtime. Jobs of one call run in order on that
//! call's task; different calls run concurrently over pooled keep-alive connections.
//! The shard only ever `try_send`s into the bounded queue, so SIP never waits on HTTP.

use super::job::{Answer, Expect, HookJob, HookOutcome, HookReply, Payload};
use super::policy::{backoff, Failure, Policy};
use super::sign::signature;
use crate::app::{parse_document, parse_verbs, Application, HttpMethod};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
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
        }
    }
}

#[derive(Debug)]
pub enum Msg {
    Job(HookJob),
    /// The call is over: its task ends once its queued jobs are delivered.
    Gone(Arc<str>),
}

/// Where answers to awaited hooks go (the shard's inbox, which wakes the shard).
pub type ReplySink = Arc<dyn Fn(HookReply) + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

pub struct Hooks {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<()>,
}

impl Hooks {
    pub fn start(settings: HookSettings, sink: ReplySink) -> std::io::Result<Hooks> {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(std::io::Error::other)?;
        let deliverer = Arc::new(Deliverer { client, settings, sink });
        let thread = std::thread::Builder::new()
            .name("baton-hooks".into())
            .spawn(move || runtime.block_on(dispatch(rx, deliverer)))?;
        Ok(Hooks { tx, thread })
    }

    /// Never blocks: when the queue is full (or closed) the message is not taken.
    pub fn submit(&self, msg: Msg) -> Result<(), QueueFull> {
        self.tx.try_send(msg).map_err(|_| QueueFull)
    }

    /// Closes the queue and waits until every queued hook has been delivered or given up.
    pub fn shutdown(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

async fn dispatch(mut rx: mpsc::Receiver<Msg>, deliverer: Arc<Deliverer>) {
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
                let _ = queue.send(job);
            }
            Msg::Gone(sid) => {
                calls.remove(&sid);
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(calls);
    while tasks.join_next().await.is_some() {}
}

struct Deliverer {
    client: reqwest::Client,
    settings: HookSettings,
    sink: ReplySink,
}

impl Deliverer {
    async fn run(&self, job: HookJob) {
        let result = self.deliver(&job).await;
        let Some(reply) = job.reply else {
            match result {
                Ok((status, _)) if !(200..300).contains(&status) => {
                    tracing::warn!(call_sid = %job.call_sid, url = %job.hook.url, status, "hook refused")
                }
                Err(e) => tracing::warn!(call_sid = %job.call_sid, error = %e, "hook not delivered"),
                Ok(_) => {}
            }
            return;
        };
        let outcome = match (result, reply.expect) {
            (Ok((status, body)), Expect::Http) => Ok(Answer::Http { status, body }),
            (Ok((status, body)), expect) if (200..300).contains(&status) => interpret(&body, expect),
            (Ok((status, _)), _) => Err(format!("{} answered HTTP {status}", job.hook.url)),
            (Err(e), _) => Err(e),
        };
        (self.sink)(HookReply { call: reply.call, token: reply.token, outcome });
    }

    fn resolve(&self, raw: &str) -> Result<Url, String> {
        match Url::parse(raw) {
            Ok(url) => Ok(url),
            Err(url::ParseError::RelativeUrlWithoutBase) => match &self.settings.base {
                Some(base) => base.join(raw).map_err(|e| format!("hook URL {raw:?}: {e}")),
                None => Err(format!("relative hook URL {raw:?} has no base: set --hook-base or use a call hook")),
            },
            Err(e) => Err(format!("hook URL {raw:?}: {e}")),
        }
    }

    /// Delivers with retries; the status and body of the last completed exchange.
    async fn deliver(&self, job: &HookJob) -> Result<(u16, String), String> {
        let mut url = self.resolve(&job.hook.url)?;
        let policy = Policy::from_fragment(url.fragment(), Policy::default_with(self.settings.retries));
        url.set_fragment(None);
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(&url, job).await {
                Ok((status, body)) if (200..300).contains(&status) => return Ok((status, body)),
                Ok((status, body)) => (Failure::Status(status), Ok((status, body))),
                Err((failure, why)) => (failure, Err(why)),
            };
            if attempt >= policy.retries || !policy.retries(failure.0) {
                return failure.1;
            }
            tracing::debug!(call_sid = %job.call_sid, url = %url, attempt, "hook failed; retrying");
            tokio::time::sleep(backoff(self.settings.backoff, attempt, fastrand::f64())).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &Url, job: &HookJob) -> Result<(u16, String), (Failure, String)> {
        let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
        let method = match job.hook.method {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let (target, body) = match &job.body {
            Payload::Event(v) if job.hook.method == HttpMethod::Get => (query_url(url, v), None),
            Payload::Event(v) => (url.clone(), Some(json(v))),
            Payload::Stamped(v) => {
                let mut v = v.clone();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                v["timestamp"] = serde_json::json!(now);
                (url.clone(), Some(json(&v)))
            }
            Payload::Request { body, .. } => (url.clone(), body.as_ref().map(json)),
        };
        let headers = match &job.body {
            Payload::Request { headers, .. } => headers.as_slice(),
            _ => &[],
        };
        let mut req = self.client.request(method, target);
        if let Some(body) = &body {
            req = req.header("Content-Type", "application/json").body(body.clone());
        }
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(auth) = &job.hook.auth {
            req = req.basic_auth(&auth.username, Some(&auth.password));
        }
        if let Some(secret) = &self.settings.secret {
            let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let sig = signature(secret.as_bytes(), unix, body.as_deref().unwrap_or_default());
            req = req.header("Baton-Signature", &sig).header("Jambonz-Signature", &sig);
        }
        let classify = |e: reqwest::Error| {
            let failure = if e.is_timeout() {
                Failure::Timeout
            } else if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Other
            };
            (failure, format!("{url}: {e}"))
        };
        let resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(classify)?;
        Ok((status, text))
    }
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

/// Reads an awaited hook's answer.
fn interpret(body: &str, expect: Expect) -> HookOutcome {
    let problems =
        |errors: Vec<crate::app::DocError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    match expect {
        Expect::Application | Expect::Swml if body.trim().is_empty() => Err("the answer holds no application".into()),
        Expect::Application => parse_document(body).map(Answer::Application).map_err(problems),
        Expect::Swml => match parse_document(body).map_err(problems)? {
            swml @ Application::Swml(_) => Ok(Answer::Application(swml)),
            Application::Verbs(_) => Err("expected a SWML document, got jambonz verbs".into()),
        },
        // An actionHook may answer with anything ("OK", {}): only a JSON array means verbs.
        Expect::Verbs => match serde_json::from_str::<serde_json::Value>(body) {
            Ok(value @ serde_json::Value::Array(_)) => match parse_verbs(&value).map_err(problems)? {
                steps if steps.is_empty() => Ok(Answer::Nothing),
                steps => Ok(Answer::Application(Application::Verbs(steps))),
            },
            _ => Ok(Answer::Nothing),
        },
        Expect::Http => Ok(Answer::Http { status: 200, body: body.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interprets_answers() {
        assert_eq!(interpret("", Expect::Verbs), Ok(Answer::Nothing));
        assert_eq!(interpret("OK", Expect::Verbs), Ok(Answer::Nothing));
        assert_eq!(interpret("{\"ok\":true}", Expect::Verbs), Ok(Answer::Nothing));
        assert!(
            matches!(interpret("[{\"verb\":\"hangup\"}]", Expect::Verbs), Ok(Answer::Application(Application::Verbs(v))) if v.len() == 1)
        );
        assert!(interpret("[nope", Expect::Application).unwrap_err().contains("not valid JSON"));
        assert_eq!(
            interpret("[{\"verb\":\"play\"}]", Expect::Application),
            Err("verb 0 (play): play: needs media, which baton does not provide".into())
        );
        assert!(interpret("[{\"verb\":\"answer\"}]", Expect::Swml).unwrap_err().contains("expected a SWML document"));
    }

    #[test]
    fn get_hooks_carry_fields_in_the_query() {
        let url = Url::parse("http://h/x?a=1").unwrap();
        let out = query_url(&url, &serde_json::json!({"call_sid": "s", "refer_status": 202}));
        assert_eq!(out.as_str(), "http://h/x?a=1&call_sid=s&refer_status=202");
    }
}
