//! Application documents: the jambonz verb dialect, parsed into types that cannot hold an
//! invalid verb. Validation reports every problem with its verb index and property.

mod document;
mod media;
mod props;
pub mod swml;
mod validate;

pub use document::{check_verb_count, parse_document, parse_document_within, DocRules};
pub(crate) use media::skipped;
pub use media::Media;
pub use props::header_problem;
pub use validate::parse_verbs;
pub use validate::DocError;

use std::sync::Arc;

use std::time::Duration;

/// An application, checked: jambonz verbs or a SWML document, from [`parse_document`]
/// or a hook's answer ([`read_answer`]). Cheap to clone: every call that runs it shares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Application(pub(crate) Doc);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Doc {
    /// Shared by every call that runs it: a call keeps its place, not a copy.
    Verbs(Arc<[Arc<Step>]>),
    Swml(Arc<swml::Document>),
}

impl Application {
    pub(crate) fn verbs(steps: Vec<Step>) -> Application {
        Application(Doc::Verbs(steps.into_iter().map(Arc::new).collect()))
    }

    /// What it holds, for `baton check`: `3 verbs` or `SWML, 2 sections`.
    pub fn summary(&self) -> String {
        match &self.0 {
            Doc::Verbs(steps) => format!("{} verbs", steps.len()),
            Doc::Swml(doc) => format!("SWML, {} sections", doc.sections.len()),
        }
    }
}

/// How a hook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    /// A JSON body.
    Post,
    /// The fields in the query string.
    Get,
    /// SWML `request` only.
    Put,
    /// SWML `request` only.
    Delete,
}

/// HTTP Basic credentials of a hook (or Digest credentials of a REFER).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

/// A webhook: a URL (absolute, or relative to the call hook / `--hook-base`), how to call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The URL as the application wrote it.
    pub url: String,
    /// POST (the default) or GET.
    pub method: HttpMethod,
    /// Credentials sent with it.
    pub auth: Option<BasicAuth>,
}

impl Hook {
    /// A POST hook without credentials.
    pub fn post(url: impl Into<String>) -> Hook {
        Hook { url: url.into(), method: HttpMethod::Post, auth: None }
    }
}

/// Extra SIP headers, names and values already checked against header injection.
pub type Headers = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Voice Gateway's verb `id`, echoed as `verb_id`.
    pub id: Option<String>,
    pub verb: Verb,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verb {
    Refer(Box<Refer>),
    Decline {
        status: u16,
        reason: Option<String>,
        headers: Headers,
    },
    Hangup {
        headers: Headers,
    },
    Pause {
        length: Duration,
    },
    Answer,
    Redirect {
        action_hook: Hook,
    },
    Tag {
        data: serde_json::Map<String, serde_json::Value>,
    },
    Request(SipRequest),
    Config {
        notify_events: Option<bool>,
    },
    /// A media verb, loaded under `--media skip`: logged once, then passed over.
    Skipped(&'static str),
}

impl Verb {
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Refer(_) => "sip:refer",
            Verb::Decline { .. } => "sip:decline",
            Verb::Hangup { .. } => "hangup",
            Verb::Pause { .. } => "pause",
            Verb::Answer => "answer",
            Verb::Redirect { .. } => "redirect",
            Verb::Tag { .. } => "tag",
            Verb::Request(_) => "sip:request",
            Verb::Config { .. } => "config",
            Verb::Skipped(name) => name,
        }
    }

    /// Verbs that run inside an established dialog, so the call is answered first.
    pub fn needs_dialog(&self) -> bool {
        matches!(self, Verb::Refer(_) | Verb::Pause { .. } | Verb::Answer | Verb::Request(_))
    }
}

/// One place a REFER may send the caller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    /// A SIP or tel URI, a number, or a user (then `@` the Refer-To host).
    pub uri: String,
    /// How long this attempt waits for its final NOTIFY; the verb's `timeout` otherwise.
    pub timeout: Option<Duration>,
}

/// How a call ends once a transfer succeeded (docs/behaviour.md §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByeAfter {
    /// baton sends its BYE at once.
    Now,
    /// baton waits this long for the far end's own BYE, then sends its own.
    Wait(Duration),
    /// baton never sends one: the far end (or the operator) ends the call.
    Never,
}

impl ByeAfter {
    /// Reads `now`, `never` or `wait:MS`.
    pub fn parse(s: &str) -> Result<ByeAfter, String> {
        match s.trim() {
            "now" => Ok(ByeAfter::Now),
            "never" => Ok(ByeAfter::Never),
            other => match other.strip_prefix("wait:").map(|ms| ms.trim().parse::<u64>()) {
                Some(Ok(ms)) if ms <= 600_000 => Ok(ByeAfter::Wait(Duration::from_millis(ms))),
                Some(Ok(_)) => Err("wait:MS waits at most 600000 ms".into()),
                _ => Err(format!("{other:?}: must be \"now\", \"never\" or \"wait:MS\" (milliseconds)")),
            },
        }
    }
}

impl std::fmt::Display for ByeAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ByeAfter::Now => f.write_str("now"),
            ByeAfter::Wait(d) => write!(f, "wait:{}", d.as_millis()),
            ByeAfter::Never => f.write_str("never"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refer {
    /// The first target.
    pub refer_to: Target,
    /// Tried in order, each after the one before failed (a `referTo` array).
    pub failover: Vec<Target>,
    /// RFC 7433 `User-to-User`, as the header's value (`DATA;encoding=hex;purpose=...`):
    /// carried in the Refer-To URI, so the INVITE to the target holds it.
    pub uui: Option<String>,
    /// Headers escaped into the Refer-To URI (`?Name=value&...`), after `uui`.
    pub refer_to_headers: Headers,
    /// How the call ends after success; the trunk profile's, else `now`.
    pub bye_after_success: Option<ByeAfter>,
    pub referred_by: Option<String>,
    pub referred_by_display: Option<String>,
    pub headers: Headers,
    pub action_hook: Option<Hook>,
    pub event_hook: Option<Hook>,
    /// How long to wait for the final NOTIFY after the REFER is accepted.
    pub timeout: Option<Duration>,
    /// Digest credentials for a REFER the far end challenges (401/407).
    pub auth: Option<BasicAuth>,
    /// SWML `status_url`: `calling.call.refer` events instead of jambonz hooks.
    pub status_url: Option<Hook>,
}

impl Refer {
    /// Attempt `i`'s target: the first, then the failover ones in order.
    pub fn target(&self, i: usize) -> Option<&Target> {
        match i {
            0 => Some(&self.refer_to),
            i => self.failover.get(i - 1),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SipRequest {
    pub method: String,
    pub body: Option<String>,
    pub headers: Headers,
    pub action_hook: Option<Hook>,
}
