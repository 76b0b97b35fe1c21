//! JSON → typed verbs. Each problem is reported with the verb's index, the property path
//! and what is wrong, and one bad verb rejects the whole document.

use super::{BasicAuth, Headers, Hook, HttpMethod, Refer, SipRequest, Step, Verb};
use crate::sip::header::{is_token, Name};
use crate::sip::write::{address, name_addr_problem};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// One problem of an application document, placed as precisely as the document allows:
/// `verb 2 (sip:refer): referTo: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocError {
    /// SWML: the section (and nested block) holding the method.
    pub section: Option<String>,
    /// The verb's index.
    pub index: Option<usize>,
    /// The verb's name.
    pub verb: Option<String>,
    /// The property at fault.
    pub property: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(section) = &self.section {
            write!(f, "section {section}, ")?;
        }
        match (self.index, &self.verb) {
            (Some(i), Some(v)) => write!(f, "verb {i} ({v})")?,
            (Some(i), None) => write!(f, "verb {i}")?,
            _ => f.write_str("document")?,
        }
        if let Some(p) = &self.property {
            write!(f, ", property \"{p}\"")?;
        }
        write!(f, ": {}", self.problem)
    }
}

pub(super) fn doc_error(problem: impl Into<String>) -> Vec<DocError> {
    vec![DocError { section: None, index: None, verb: None, property: None, problem: problem.into() }]
}

/// Verbs of the jambonz dialect that need a media engine.
const MEDIA_VERBS: &[&str] = &[
    "say",
    "play",
    "gather",
    "listen",
    "stream",
    "dial",
    "transcribe",
    "conference",
    "enqueue",
    "dequeue",
    "leave",
    "lex",
    "rasa",
    "dialogflow",
    "llm",
    "dub",
    "dtmf",
    "record",
    "s2s",
    "message",
    "alert",
    "siprec",
];

/// Headers the application may not set: baton owns them (docs/behaviour.md §2.1).
const RESERVED: &[Name] = &[
    Name::Via,
    Name::From,
    Name::To,
    Name::CallId,
    Name::CSeq,
    Name::Contact,
    Name::ContentLength,
    Name::MaxForwards,
    Name::ReferTo,
    Name::ReferredBy,
];

/// A JSON array of verbs (an actionHook answer may be empty: the application goes on).
pub fn parse_verbs(value: &Value) -> Result<Vec<Step>, Vec<DocError>> {
    let Value::Array(items) = value else {
        return Err(doc_error("expected a JSON array of verbs or a SWML document"));
    };
    let mut errors = Vec::new();
    let steps: Vec<Step> = items.iter().enumerate().filter_map(|(i, item)| parse_step(i, item, &mut errors)).collect();
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

/// Reads the properties of one verb object and remembers which it consumed.
pub(super) struct Props<'a, 'e> {
    obj: &'a Map<String, Value>,
    seen: Vec<&'a str>,
    section: Option<&'a str>,
    index: usize,
    verb: &'a str,
    pub(super) errors: &'e mut Vec<DocError>,
    pub(super) failed: bool,
}

impl<'a, 'e> Props<'a, 'e> {
    pub(super) fn new(
        obj: &'a Map<String, Value>,
        section: Option<&'a str>,
        index: usize,
        verb: &'a str,
        errors: &'e mut Vec<DocError>,
    ) -> Props<'a, 'e> {
        Props { obj, seen: Vec::new(), section, index, verb, errors, failed: false }
    }

    pub(super) fn fail(&mut self, property: &str, problem: impl Into<String>) {
        self.failed = true;
        self.errors.push(DocError {
            section: self.section.map(str::to_string),
            index: Some(self.index),
            verb: Some(self.verb.to_string()),
            property: (!property.is_empty()).then(|| property.to_string()),
            problem: problem.into(),
        });
    }

    /// Records a problem; returns `None` so arms can end with it.
    pub(super) fn reject<T>(&mut self, property: &str, problem: impl Into<String>) -> Option<T> {
        self.fail(property, problem);
        None
    }

    pub(super) fn missing<T>(&mut self, key: &str, required: bool) -> Option<T> {
        if required {
            self.fail(key, "is required");
        }
        None
    }

    pub(super) fn take(&mut self, key: &'a str) -> Option<&'a Value> {
        self.seen.push(key);
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&mut self, key: &'a str, required: bool) -> Option<String> {
        match self.take(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) => self.reject(key, "must not be empty"),
            Some(other) => self.reject(key, format!("must be a string, not {}", kind(other))),
            None => self.missing(key, required),
        }
    }

    /// A SIP address: a string, or a whole number (a phone number written without quotes).
    pub(super) fn address(&mut self, key: &'a str, required: bool) -> Option<String> {
        if let Some(Value::Number(n)) = self.obj.get(key) {
            self.seen.push(key);
            return match n.as_u64() {
                Some(n) => Some(n.to_string()),
                None => self.reject(key, "a number must be a whole positive phone number"),
            };
        }
        let value = self.string(key, required)?;
        if value.contains(['\r', '\n', '\0']) {
            return self.reject(key, "must not contain CR, LF or NUL");
        }
        Some(value)
    }

    pub(super) fn seconds(&mut self, key: &'a str, required: bool) -> Option<Duration> {
        match self.take(key) {
            Some(Value::Number(n)) => match n.as_f64().filter(|s| *s > 0.0 && *s <= 86_400.0) {
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => self.reject(key, "must be a number of seconds above 0 and at most 86400"),
            },
            Some(other) => self.reject(key, format!("must be a number of seconds, not {}", kind(other))),
            None => self.missing(key, required),
        }
    }

    pub(super) fn bool(&mut self, key: &'a str) -> Option<bool> {
        match self.take(key) {
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => self.reject(key, format!("must be true or false, not {}", kind(other))),
            None => None,
        }
    }

    pub(super) fn hook(&mut self, key: &'a str, ignored: &[&str]) -> Option<Hook> {
        let value = self.take(key)?;
        match value {
            Value::String(url) if !url.trim().is_empty() => Some(Hook::post(url.trim())),
            Value::Object(obj) => {
                let mut hook = Hook::post(String::new());
                for (k, v) in obj {
                    let path = format!("{key}.{k}");
                    match (k.as_str(), v) {
                        ("url", Value::String(u)) if !u.trim().is_empty() => hook.url = u.trim().to_string(),
                        ("method", Value::String(m)) if m.eq_ignore_ascii_case("post") => {
                            hook.method = HttpMethod::Post
                        }
                        ("method", Value::String(m)) if m.eq_ignore_ascii_case("get") => hook.method = HttpMethod::Get,
                        ("method", _) => self.fail(&path, "must be \"POST\" or \"GET\""),
                        ("username" | "password", Value::String(s)) => {
                            let auth =
                                hook.auth.get_or_insert(BasicAuth { username: String::new(), password: String::new() });
                            if k == "username" {
                                auth.username = s.clone()
                            } else {
                                auth.password = s.clone()
                            }
                        }
                        (k, _) if ignored.contains(&k) => {}
                        ("url" | "username" | "password", _) => self.fail(&path, "must be a non-empty string"),
                        _ => self.fail(&path, "unknown property"),
                    }
                }
                if hook.url.is_empty() {
                    return self.missing(&format!("{key}.url"), true);
                }
                Some(hook)
            }
            other => {
                let problem = format!(
                    "must be a URL string or a {{url, method, username, password}} object, not {}",
                    kind(other)
                );
                self.reject(key, problem)
            }
        }
    }

    /// `{"username": "...", "password": "..."}`
    pub(super) fn credentials(&mut self, key: &'a str) -> Option<BasicAuth> {
        let value = self.take(key)?;
        let Value::Object(obj) = value else {
            return self.reject(key, format!("must be an object {{username, password}}, not {}", kind(value)));
        };
        let mut field = |name: &str| match obj.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => self.reject(&format!("{key}.{name}"), "must be a non-empty string"),
        };
        let (username, password) = (field("username"), field("password"));
        for k in obj.keys().filter(|k| !["username", "password"].contains(&k.as_str())) {
            self.fail(&format!("{key}.{k}"), "unknown property");
        }
        Some(BasicAuth { username: username?, password: password? })
    }

    pub(super) fn headers(&mut self, key: &'a str) -> Headers {
        let Some(value) = self.take(key) else { return Vec::new() };
        let Value::Object(obj) = value else {
            self.fail(key, format!("must be an object of header names to string values, not {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(obj.len());
        for (name, v) in obj {
            let path = format!("{key}.{name}");
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    self.fail(&path, format!("must be a string, not {}", kind(other)));
                    continue;
                }
            };
            if !is_token(name) {
                self.fail(&path, "header name is not a SIP token");
            } else if value.contains(['\r', '\n', '\0']) {
                self.fail(&path, "header value must not contain CR, LF or NUL");
            } else if RESERVED.contains(&Name::lookup(name)) {
                self.fail(&path, "baton sets this header itself; an application may not");
            } else {
                out.push((name.clone(), value));
            }
        }
        out
    }

    pub(super) fn finish(mut self) -> bool {
        let unknown: Vec<&String> = self.obj.keys().filter(|k| !self.seen.contains(&k.as_str())).collect();
        for k in unknown {
            self.fail(k, "unknown property");
        }
        !self.failed
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_step(index: usize, item: &Value, errors: &mut Vec<DocError>) -> Option<Step> {
    let err = |errors: &mut Vec<DocError>, verb: Option<&str>, problem: String| {
        errors.push(DocError {
            section: None,
            index: Some(index),
            verb: verb.map(str::to_string),
            property: None,
            problem,
        });
    };
    let Value::Object(obj) = item else {
        err(errors, None, format!("must be an object, not {}", kind(item)));
        return None;
    };
    // `{"verb": "name", ...}` or `{"name": {...}}`.
    let (name, body, skip_verb_key) = match obj.get("verb") {
        Some(Value::String(name)) => (name.as_str(), obj, true),
        Some(other) => {
            err(errors, None, format!("\"verb\" must be a string, not {}", kind(other)));
            return None;
        }
        None => match (obj.len(), obj.iter().next()) {
            (1, Some((name, Value::Object(body)))) => (name.as_str(), body, false),
            _ => {
                err(errors, None, "names no verb: write {\"verb\": \"name\", ...} or {\"name\": {...}}".to_string());
                return None;
            }
        },
    };
    if MEDIA_VERBS.contains(&name) {
        err(errors, Some(name), format!("{name}: needs media, which baton does not provide"));
        return None;
    }
    let mut p = Props::new(body, None, index, name, errors);
    if skip_verb_key {
        p.seen.push("verb");
    }
    let id = p.string("id", false);
    let verb = match name {
        "sip:refer" => {
            let refer_to = p.address("referTo", true);
            let referred_by = p.address("referredBy", false);
            let referred_by_display = p.address("referredByDisplayName", false);
            // What the REFER would carry must pass the writer's check (a `>` or `,` in a URI
            // would add a second address); the bare host stands in for the dialog's.
            let written = [("referTo", &refer_to, &None), ("referredBy", &referred_by, &referred_by_display)];
            for (key, value, display) in written {
                if let Some(v) = value {
                    if let Some(problem) = name_addr_problem(&address(v, display.as_deref(), "host")) {
                        p.fail(key, problem);
                    }
                }
            }
            let headers = p.headers("headers");
            // Voice Gateway's page shows the payload fields inside actionHook; accept and ignore them.
            let action_hook = p.hook("actionHook", &["referStatus", "final_referred_call_status", "eventHook"]);
            let event_hook = p.hook("eventHook", &[]);
            let timeout = p.seconds("timeout", false);
            let auth = p.credentials("auth");
            refer_to.map(|refer_to| {
                Verb::Refer(Box::new(Refer {
                    refer_to,
                    referred_by,
                    referred_by_display,
                    headers,
                    action_hook,
                    event_hook,
                    timeout,
                    auth,
                    status_url: None,
                }))
            })
        }
        "sip:decline" => {
            let status = match p.take("status") {
                Some(Value::Number(n)) => match n.as_u64().filter(|s| (300..=699).contains(s)) {
                    Some(s) => Some(s as u16),
                    None => p.reject("status", "must be a SIP final failure code from 300 to 699"),
                },
                Some(other) => p.reject("status", format!("must be a number, not {}", kind(other))),
                None => p.missing("status", true),
            };
            let reason = p.address("reason", false);
            let headers = p.headers("headers");
            status.map(|status| Verb::Decline { status, reason, headers })
        }
        "hangup" => Some(Verb::Hangup { headers: p.headers("headers") }),
        "pause" => p.seconds("length", true).map(|length| Verb::Pause { length }),
        "answer" => Some(Verb::Answer),
        "redirect" => {
            let hook = p.hook("actionHook", &[]);
            if hook.is_none() && !p.failed {
                p.fail("actionHook", "is required");
            }
            hook.map(|action_hook| Verb::Redirect { action_hook })
        }
        "tag" => match p.take("data") {
            Some(Value::Object(data)) => Some(Verb::Tag { data: data.clone() }),
            Some(other) => p.reject("data", format!("must be an object, not {}", kind(other))),
            None => p.missing("data", true),
        },
        "sip:request" => {
            let method = p.string("method", true).map(|m| m.to_ascii_uppercase());
            if let Some(m) = &method {
                if !is_token(m) {
                    p.fail("method", "is not a SIP method token");
                } else if ["INVITE", "ACK", "CANCEL", "BYE", "PRACK"].contains(&m.as_str()) {
                    p.fail("method", format!("{m} cannot be sent with sip:request"));
                }
            }
            let body = p.string("body", false);
            let headers = p.headers("headers");
            let action_hook = p.hook("actionHook", &[]);
            method.map(|method| Verb::Request(SipRequest { method, body, headers, action_hook }))
        }
        "config" => Some(Verb::Config { notify_events: p.bool("notifyEvents") }),
        _ => {
            p.fail("", format!("unknown verb \"{name}\""));
            p.failed = true;
            return None;
        }
    };
    let valid = p.finish();
    verb.filter(|_| valid).map(|verb| Step { id, verb })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Doc;
    // Verbs are validated here; these tests read them as a whole document would be.
    use crate::app::{parse_document, Application};

    fn errors(doc: &str) -> Vec<String> {
        parse_document(doc).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn both_verb_forms_and_all_properties() {
        let Ok(Application(Doc::Verbs(steps))) = parse_document(
            r#"[{"verb":"sip:refer","id":"x1","referTo":15083084809,"referredBy":"sip:bot@a","referredByDisplayName":"Bot",
                "headers":{"X-Ticket":"42"},"actionHook":{"url":"/action","method":"get","referStatus":"202"},
                "eventHook":"/event","timeout":7.5},
               {"hangup":{"headers":{"X-Why":"done"}}}]"#,
        ) else {
            panic!("not verbs")
        };
        let Verb::Refer(r) = &steps[0].verb else { panic!() };
        assert_eq!(steps[0].id.as_deref(), Some("x1"));
        assert_eq!(r.refer_to, "15083084809");
        assert_eq!(r.headers, vec![("X-Ticket".to_string(), "42".to_string())]);
        assert_eq!(r.action_hook.as_ref().unwrap().method, HttpMethod::Get);
        assert_eq!(r.timeout, Some(Duration::from_millis(7500)));
        assert_eq!(steps[1].verb, Verb::Hangup { headers: vec![("X-Why".into(), "done".into())] });
    }

    #[test]
    fn swml_in_yaml_is_an_application() {
        let yaml = "version: 1.0.0\nsections:\n  main:\n    - answer\n    - sip_refer:\n        to_uri: 'sip:alice@example.com'\n";
        assert!(matches!(parse_document(yaml), Ok(Application(Doc::Swml(_)))));
        assert!(parse_document("version: [").unwrap_err()[0].problem.starts_with("neither JSON nor valid YAML"));
    }

    #[test]
    fn names_index_property_and_problem() {
        assert_eq!(
            errors(r#"[{"verb":"answer"},{"verb":"sip:refer","referTo":"x","headers":{"X-A":"1\r\nVia: evil"}}]"#),
            vec!["verb 1 (sip:refer), property \"headers.X-A\": header value must not contain CR, LF or NUL"]
        );
        assert_eq!(
            errors(r#"[{"verb":"sip:refer","headers":{"Contact":"x"},"bogus":1}]"#),
            vec![
                "verb 0 (sip:refer), property \"referTo\": is required",
                "verb 0 (sip:refer), property \"headers.Contact\": baton sets this header itself; an application may not",
                "verb 0 (sip:refer), property \"bogus\": unknown property",
            ]
        );
        assert_eq!(
            errors(r#"[{"verb":"say","text":"hi"}]"#),
            vec!["verb 0 (say): say: needs media, which baton does not provide"]
        );
        assert_eq!(errors(r#"[{"verb":"dance"}]"#), vec!["verb 0 (dance): unknown verb \"dance\""]);
        assert_eq!(
            errors(r#"[{"verb":"pause","length":"5"}]"#),
            vec!["verb 0 (pause), property \"length\": must be a number of seconds, not a string"]
        );
        assert_eq!(errors("[]"), vec!["document: the document holds no verbs"]);
        assert!(errors("[").first().unwrap().starts_with("document: not valid JSON"));
        assert_eq!(
            errors(r#"[{"verb":"sip:refer","referTo":"x","headers":{"Bad Name":"v"}}]"#),
            vec!["verb 0 (sip:refer), property \"headers.Bad Name\": header name is not a SIP token"]
        );
    }
}
