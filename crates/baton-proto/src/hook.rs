//! What the core hands to the hook workers and what comes back: plain data, no I/O.

use crate::app::{check_verb_count, parse_document_within, parse_verbs, Application, Doc, DocError, DocRules, Hook};
use crate::event::Event;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// A webhook for the hook side to deliver: in order per call, and answered through
/// [`crate::Engine::handle_hook_reply`] when `reply` is set.
#[derive(Clone, Debug)]
pub struct HookJob {
    /// Jobs of one call are delivered in order.
    pub call_sid: Arc<str>,
    /// The call's SIP Call-ID, for the logs.
    pub call_id: Arc<str>,
    /// Where it goes and how.
    pub hook: Hook,
    /// What it carries.
    pub body: Payload,
    /// Set when the call waits for the answer (call_hook, actionHook, redirect).
    pub reply: Option<ReplyTo>,
    /// When the call produced it: delivery measures the time to acknowledgement from here.
    pub at: Instant,
}

/// The body of a hook.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A webhook event: the JSON body of a POST, or the query string of a GET.
    Event(Event),
    /// A SWML status callback: `timestamp` is set when it is sent.
    Stamped(serde_json::Value),
    /// A SWML `request`: an optional JSON body and headers of the application's choosing.
    Request {
        /// The JSON body, if any.
        body: Option<serde_json::Value>,
        /// Headers to send with it.
        headers: Vec<(String, String)>,
    },
}

impl Payload {
    /// The JSON body, when there is one, taken out (rendered, for an event).
    pub fn into_json(self) -> Option<serde_json::Value> {
        match self {
            Payload::Event(e) => Some(e.into_json()),
            Payload::Stamped(v) => Some(v),
            Payload::Request { body, .. } => body,
        }
    }

    /// The JSON body, when there is one (rendered, for an event).
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            Payload::Event(e) => Some(e.to_json()),
            Payload::Stamped(v) => Some(v.clone()),
            Payload::Request { body, .. } => body.clone(),
        }
    }
}

/// Where the answer to an awaited hook goes back to: hand it over as a [`HookReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The shard that owns the call: its inbox gets the answer.
    pub shard: u16,
    /// The call, in its shard's table.
    pub call: u64,
    /// Which of the call's hooks: an answer to an older one is ignored.
    pub token: u64,
    /// What the answer must be.
    pub expect: Expect,
}

/// What an awaited hook's answer must hold ([`crate::read_answer`] reads it so).
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

/// An awaited hook's answer, read.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// An application that replaces the rest of the call's.
    Application(Application),
    /// An actionHook answered with no verbs: the application goes on.
    Nothing,
    /// A SWML `request`'s answer, whatever it holds.
    Http {
        /// The HTTP status.
        status: u16,
        /// The body as text.
        body: String,
    },
}

/// The answer to a hook the call waits for, or why there is none.
pub type HookOutcome = Result<Answer, String>;

/// The answer to an awaited hook, for [`crate::Engine::handle_hook_reply`]: the fields
/// of its [`ReplyTo`] and what came back.
#[derive(Clone, Debug)]
pub struct HookReply {
    /// [`ReplyTo::shard`].
    pub shard: u16,
    /// [`ReplyTo::call`].
    pub call: u64,
    /// [`ReplyTo::token`].
    pub token: u64,
    /// The answer, or why there is none.
    pub outcome: HookOutcome,
}

/// Reads the answer to a hook the call waits for, as `expect` says it should be: what the
/// hook side hands back to [`crate::Engine::handle_hook_reply`]. A document the operator's
/// `rules` refuse is refused like a bad one; every problem is named.
pub fn read_answer(body: &str, expect: Expect, rules: DocRules) -> HookOutcome {
    let problems = |errors: Vec<DocError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    match expect {
        Expect::Application | Expect::Swml if body.trim().is_empty() => Err("the answer holds no application".into()),
        Expect::Application => parse_document_within(body, rules).map(Answer::Application).map_err(problems),
        Expect::Swml => match parse_document_within(body, rules).map_err(problems)? {
            swml @ Application(Doc::Swml(_)) => Ok(Answer::Application(swml)),
            Application(Doc::Verbs(_)) => Err("expected a SWML document, got jambonz verbs".into()),
        },
        // An actionHook may answer with anything ("OK", {}): only a JSON array means verbs.
        Expect::Verbs => match serde_json::from_str::<Value>(body) {
            Ok(value @ Value::Array(_)) => {
                check_verb_count(&value, rules.max_verbs).map_err(problems)?;
                match parse_verbs(&value, rules.media).map_err(problems)? {
                    steps if steps.is_empty() => Ok(Answer::Nothing),
                    steps => Ok(Answer::Application(Application::verbs(steps))),
                }
            }
            _ => Ok(Answer::Nothing),
        },
        Expect::Http => Ok(Answer::Http { status: 200, body: body.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str, expect: Expect) -> HookOutcome {
        read_answer(body, expect, DocRules { max_verbs: 1000, ..DocRules::default() })
    }

    #[test]
    fn answers_are_read_as_the_hook_expects() {
        assert_eq!(read("", Expect::Verbs), Ok(Answer::Nothing));
        assert_eq!(read("OK", Expect::Verbs), Ok(Answer::Nothing));
        assert_eq!(read("{\"ok\":true}", Expect::Verbs), Ok(Answer::Nothing));
        assert!(
            matches!(read("[{\"verb\":\"hangup\"}]", Expect::Verbs), Ok(Answer::Application(Application(Doc::Verbs(v)))) if v.len() == 1)
        );
        assert!(read("[nope", Expect::Application).unwrap_err().contains("not valid JSON"));
        assert_eq!(
            read("[{\"verb\":\"play\"}]", Expect::Application),
            Err("verb 0 (play): play: needs media, which baton does not provide (--media skip passes it over)".into())
        );
        assert!(read("[{\"verb\":\"answer\"}]", Expect::Swml).unwrap_err().contains("expected a SWML document"));
        let two = "[{\"verb\":\"hangup\"},{\"verb\":\"hangup\"}]";
        assert!(read_answer(two, Expect::Verbs, DocRules { max_verbs: 1, ..DocRules::default() })
            .unwrap_err()
            .contains("--max-verbs"));
    }
}
