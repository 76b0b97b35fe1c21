//! A whole application document (a file, a call hook's answer): JSON or YAML, jambonz verbs
//! or SWML, and how many verbs it may hold. The dialects' own validation is in `validate`
//! (jambonz) and `swml`; this is where a document is told apart and handed to one of them.

use super::media::Media;
use super::validate::{doc_error, parse_verbs, DocError};
use super::{Application, Doc};
use serde_json::Value;
use std::sync::Arc;

/// What the operator allows of a document beyond its dialect's own rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocRules {
    /// Most verbs (or SWML methods, all sections together): `--max-verbs`.
    pub max_verbs: usize,
    /// What a media verb gets: `--media`.
    pub media: Media,
}

impl Default for DocRules {
    fn default() -> Self {
        DocRules { max_verbs: usize::MAX, media: Media::Refuse }
    }
}

/// A whole application (a file or a call_hook answer): a jambonz verb array, or a SWML
/// document in JSON or YAML. It must hold at least one verb.
pub fn parse_document(text: &str) -> Result<Application, Vec<DocError>> {
    parse_document_within(text, DocRules::default())
}

/// [`parse_document`] under the operator's rules: more than `max_verbs` verbs is refused,
/// and media verbs are refused or skipped as `media` says.
pub fn parse_document_within(text: &str, rules: DocRules) -> Result<Application, Vec<DocError>> {
    let value = document_value(text)?;
    check_verb_count(&value, rules.max_verbs)?;
    application(&value, rules.media)
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
        serde_json::from_str(text).map_err(|e| doc_error(format!("not valid JSON: {e}{}", plus_hint(text, &e))))?
    } else {
        serde_norway::from_str(text).map_err(|e| doc_error(format!("neither JSON nor valid YAML: {e}")))?
    };
    Ok(value)
}

/// Two of the seed pages write a number as `+4915683084809`, which JSON does not allow:
/// when that is where the parser stopped, say so, and what to write instead.
fn plus_hint(text: &str, e: &serde_json::Error) -> String {
    let Some(line) = text.lines().nth(e.line().saturating_sub(1)) else { return String::new() };
    let upto = line.get(..e.column().min(line.len())).unwrap_or(line);
    let Some(plus) = upto.rfind('+') else { return String::new() };
    if !upto[..plus].trim_end().ends_with([':', '[', ',']) {
        return String::new();
    }
    let digits: String = line[plus + 1..].chars().take_while(char::is_ascii_digit).collect();
    match digits.is_empty() {
        true => String::new(),
        false => format!(" (a JSON number cannot start with '+': write \"+{digits}\", a string)"),
    }
}

/// A whole application from a parsed value.
pub fn application(value: &Value, media: Media) -> Result<Application, Vec<DocError>> {
    if !value.is_array() && super::swml::is_swml(value) {
        return super::swml::load(value, media).map(|doc| Application(Doc::Swml(Arc::new(doc))));
    }
    let steps = parse_verbs(value, media)?;
    if steps.is_empty() {
        return Err(doc_error("the document holds no verbs"));
    }
    Ok(Application::verbs(steps))
}

#[cfg(test)]
mod plus {
    use super::*;

    #[test]
    fn a_number_written_with_a_leading_plus_is_explained() {
        let doc = "[{\"verb\": \"sip:refer\",\n  \"referTo\": +4915683084809}]";
        let problems = parse_document(doc).unwrap_err();
        let text = problems[0].to_string();
        assert!(text.contains("write \"+4915683084809\", a string"), "{text}");
        let other = parse_document("[{\"verb\": \"sip:refer\", \"referTo\": }]").unwrap_err()[0].to_string();
        assert!(!other.contains("cannot start with '+'"), "{other}");
    }
}
