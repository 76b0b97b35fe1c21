//! What an operator sees of a call in progress: a snapshot, taken on the shard's thread and
//! handed over as plain values.

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
}
