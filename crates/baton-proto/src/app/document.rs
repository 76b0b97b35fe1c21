//! A whole application document (a file, a call hook's answer): JSON or YAML, jambonz verbs
//! or SWML, and how many verbs it may hold. The dialects' own validation is in `validate`
//! (jambonz) and `swml`; this is where a document is told apart and handed to one of them.

use super::validate::{doc_error, parse_verbs, DocError};
use super::{Application, Doc};
use crate::hook::{Answer, Expect, HookOutcome};
use serde_json::Value;
use std::sync::Arc;

/// A whole application (a file or a call_hook answer): a jambonz verb array, or a SWML
/// document in JSON or YAML. It must hold at least one verb.
pub fn parse_document(text: &str) -> Result<Application, Vec<DocError>> {
    parse_document_within(text, usize::MAX)
}

/// [`parse_document`], refusing a document of more than `max_verbs` verbs (or SWML methods
/// in its sections), as `--max-verbs` asks.
pub fn parse_document_within(text: &str, max_verbs: usize) -> Result<Application, Vec<DocError>> {
    let value = document_value(text)?;
    check_verb_count(&value, max_verbs)?;
    application(&value)
}

/// Refuses a document with more than `max` verbs: a list's items, or the methods of every
/// SWML section together.
pub fn check_verb_count(value: &Value, max: usize) -> Result<(), Vec<DocError>> {
    let count = match value {
        Value::Array(items) => items.len(),
        _ => match value.get("sections").and_then(Value::as_object) {
            Some(sections) => sections.values().filter_map(Value::as_array).map(Vec::len).sum(),
            None => 0,
        },
    };
    if count > max {
        return Err(doc_error(format!("the document has {count} verbs, more than {max} (--max-verbs)")));
    }
    Ok(())
}

fn document_value(text: &str) -> Result<Value, Vec<DocError>> {
    let trimmed = text.trim_start();
    let value: Value = if trimmed.starts_with(['[', '{']) {
        serde_json::from_str(text).map_err(|e| doc_error(format!("not valid JSON: {e}")))?
    } else {
        serde_norway::from_str(text).map_err(|e| doc_error(format!("neither JSON nor valid YAML: {e}")))?
    };
    Ok(value)
}

/// A whole application from a parsed value.
pub fn application(value: &Value) -> Result<Application, Vec<DocError>> {
    if !value.is_array() && super::swml::is_swml(value) {
        return super::swml::load(value).map(|doc| Application(Doc::Swml(Arc::new(doc))));
    }
    let steps = parse_verbs(value)?;
    if steps.is_empty() {
        return Err(doc_error("the document holds no verbs"));
    }
    Ok(Application::verbs(steps))
}

/// Reads the answer to a hook the call waits for, as `expect` says it should be: what the
/// hook side hands back to [`crate::Engine::handle_hook_reply`]. A document over
/// `max_verbs` verbs is refused like a bad one; every problem is named.
pub fn read_answer(body: &str, expect: Expect, max_verbs: usize) -> HookOutcome {
    let problems = |errors: Vec<DocError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    match expect {
        Expect::Application | Expect::Swml if body.trim().is_empty() => Err("the answer holds no application".into()),
        Expect::Application => parse_document_within(body, max_verbs).map(Answer::Application).map_err(problems),
        Expect::Swml => match parse_document_within(body, max_verbs).map_err(problems)? {
            swml @ Application(Doc::Swml(_)) => Ok(Answer::Application(swml)),
            Application(Doc::Verbs(_)) => Err("expected a SWML document, got jambonz verbs".into()),
        },
        // An actionHook may answer with anything ("OK", {}): only a JSON array means verbs.
        Expect::Verbs => match serde_json::from_str::<Value>(body) {
            Ok(value @ Value::Array(_)) => {
                check_verb_count(&value, max_verbs).map_err(problems)?;
                match parse_verbs(&value).map_err(problems)? {
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
        read_answer(body, expect, 1000)
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
            Err("verb 0 (play): play: needs media, which baton does not provide".into())
        );
        assert!(read("[{\"verb\":\"answer\"}]", Expect::Swml).unwrap_err().contains("expected a SWML document"));
        let two = "[{\"verb\":\"hangup\"},{\"verb\":\"hangup\"}]";
        assert!(read_answer(two, Expect::Verbs, 1).unwrap_err().contains("--max-verbs"));
    }
}
