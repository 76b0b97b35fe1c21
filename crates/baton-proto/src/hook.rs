//! What the core hands to the hook workers and what comes back: plain data, no I/O.

use crate::app::{Application, Hook};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct HookJob {
    /// Jobs of one call are delivered in order.
    pub call_sid: Arc<str>,
    pub hook: Hook,
    pub body: Payload,
    /// Set when the call waits for the answer (call_hook, actionHook, redirect).
    pub reply: Option<ReplyTo>,
    /// When the call produced it: delivery measures the time to acknowledgement from here.
    pub at: Instant,
}

#[derive(Clone, Debug)]
pub enum Payload {
    /// A webhook event: the JSON body of a POST, or the query string of a GET.
    Event(serde_json::Value),
    /// A SWML status callback: `timestamp` is set when it is sent.
    Stamped(serde_json::Value),
    /// A SWML `request`: an optional JSON body and headers of the application's choosing.
    Request { body: Option<serde_json::Value>, headers: Vec<(String, String)> },
}

impl Payload {
    /// The JSON body, when there is one, taken out.
    pub fn into_json(self) -> Option<serde_json::Value> {
        match self {
            Payload::Event(v) | Payload::Stamped(v) => Some(v),
            Payload::Request { body, .. } => body,
        }
    }

    /// The JSON body, when there is one.
    pub fn json(&self) -> Option<&serde_json::Value> {
        match self {
            Payload::Event(v) | Payload::Stamped(v) => Some(v),
            Payload::Request { body, .. } => body.as_ref(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The shard that owns the call: its inbox gets the answer.
    pub shard: u16,
    pub call: u64,
    pub token: u64,
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A whole application (verbs or SWML): at least one verb.
    Application,
    /// Verbs that replace the rest of the application; empty or no body means "go on".
    Verbs,
    /// A SWML document (`execute` or `transfer` to a URL).
    Swml,
    /// Whatever the server answers (SWML `request`).
    Http,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Application(Application),
    /// An actionHook answered with no verbs: the application goes on.
    Nothing,
    Http {
        status: u16,
        body: String,
    },
}

/// The answer to a hook the call waits for, or why there is none.
pub type HookOutcome = Result<Answer, String>;

#[derive(Clone, Debug)]
pub struct HookReply {
    pub shard: u16,
    pub call: u64,
    pub token: u64,
    pub outcome: HookOutcome,
}
