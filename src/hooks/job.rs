//! What the core hands to the hook workers and what comes back: plain data, no I/O.

use crate::app::{Hook, Step};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct HookJob {
    /// Jobs of one call are delivered in order.
    pub call_sid: Arc<str>,
    pub hook: Hook,
    pub body: serde_json::Value,
    /// Set when the call waits for the answer (call_hook, actionHook, redirect).
    pub reply: Option<ReplyTo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub call: u64,
    pub token: u64,
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A whole application: at least one verb.
    Application,
    /// Verbs that replace the rest of the application; empty or no body means "go on".
    Verbs,
}

/// The answer to a hook the call waits for: its verbs, or why there are none.
pub type HookOutcome = Result<Vec<Step>, String>;

#[derive(Clone, Debug)]
pub struct HookReply {
    pub call: u64,
    pub token: u64,
    pub outcome: HookOutcome,
}
