//! What an operator sees of a call in progress (a snapshot, taken on the shard's thread and
//! handed over as plain values), and what an operator may ask of it.

use crate::app::{Application, Hook};
use std::sync::Arc;

/// One call, as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    /// baton's id of the call (the hooks' `call_sid`).
    pub call_sid: Arc<str>,
    /// The SIP Call-ID.
    pub call_id: String,
    /// The caller (the From's user).
    pub from: String,
    /// Who was called (the To's user).
    pub to: String,
    /// Where the INVITE dialog stands: `early`, `answering`, `confirmed` or `ended`.
    pub state: &'static str,
    /// The status hooks report: `trying`, `in-progress`, `completed`, `failed`, `canceled`.
    pub call_status: &'static str,
    /// The last status the INVITE was answered with.
    pub sip_status: u16,
    /// The verb running, if any (`sip:refer`, `pause`, ...).
    pub verb: Option<&'static str>,
    /// A transfer in progress: the REFER's response and the last NOTIFY status, when seen.
    pub transfer: Option<(Option<u16>, Option<u16>)>,
    /// The trunk profile the call matched, by name.
    pub profile: Option<String>,
}

/// What the operator asks of a call in progress (jambonz's `updateCall`).
#[derive(Clone, Debug)]
pub enum CallUpdate {
    /// Run this application instead of the rest of the current one, now: a verb that
    /// waits (a pause, a hook's answer) is cut short.
    Application(Application),
    /// Fetch the application from this hook (as the call hook is asked), then run it
    /// instead of the rest.
    Fetch(Hook),
    /// Hang up: BYE (603 before the answer); a transfer in progress reports its end.
    Hangup,
}

/// Why an update was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// No call in progress has that call_sid (on this shard).
    NotFound,
    /// A transfer or a `sip:request` is waiting for its answer: the application cannot be
    /// replaced under it.
    Busy,
}
