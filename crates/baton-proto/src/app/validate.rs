//! JSON → typed verbs. Each problem is reported with the verb's index, the property path
//! and what is wrong, and one bad verb rejects the whole document.

use super::{BasicAuth, ByeAfter, Headers, Hook, HttpMethod, Media, Refer, SipRequest, Step, Target, Verb};
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

/// Why a header an application (or a trunk profile) gives cannot go into a request baton
/// sends, if it cannot.
pub fn header_problem(name: &str, value: &str) -> Option<&'static str> {
    let owned = RESERVED.contains(&Name::lookup(name));
    unwritable_header(name, value).or_else(|| owned.then_some("baton sets this header itself; an application may not"))
}

/// Why a header cannot be written at all, if it cannot.
fn unwritable_header(name: &str, value: &str) -> Option<&'static str> {
    if !is_token(name) {
        Some("header name is not a SIP token")
    } else if value.contains(['\r', '\n', '\0']) {
        Some("header value must not contain CR, LF or NUL")
    } else {
        None
    }
}

/// Headers a Refer-To URI may not carry: the INVITE it asks for is the referee's own
/// (RFC 3261 §19.1.5 lists the dangerous ones).
const URI_RESERVED: &[Name] = &[
    Name::Via,
    Name::From,
    Name::CallId,
    Name::CSeq,
    Name::Contact,
    Name::ContentLength,
    Name::MaxForwards,
    Name::Route,
];

/// A JSON array of verbs (an actionHook answer may be empty: the application goes on).
pub fn parse_verbs(value: &Value, media: Media) -> Result<Vec<Step>, Vec<DocError>> {
    let Value::Array(items) = value else {
        return Err(doc_error("expected a JSON array of verbs or a SWML document"));
    };
    let mut errors = Vec::new();
    let steps: Vec<Step> =
        items.iter().enumerate().filter_map(|(i, item)| parse_step(i, item, media, &mut errors)).collect();
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
        match self.take(key) {
            Some(value) => self.address_in(key, value),
            None => self.missing(key, required),
        }
    }

    /// A line of text (a display name): a string without CR, LF or NUL.
    pub(super) fn text(&mut self, key: &'a str) -> Option<String> {
        let value = self.string(key, false)?;
        if value.contains(['\r', '\n', '\0']) {
            return self.reject(key, "must not contain CR, LF or NUL");
        }
        Some(value)
    }

    /// [`Props::address`] of a value found at `path`.
    fn address_in(&mut self, path: &str, value: &Value) -> Option<String> {
        let value = match value {
            Value::Number(n) => match n.as_u64() {
                Some(n) => return Some(n.to_string()),
                None => return self.reject(path, "a number must be a whole positive phone number"),
            },
            Value::String(s) if s.trim().is_empty() => return self.reject(path, "must not be empty"),
            Value::String(s) => s,
            other => return self.reject(path, format!("must be a string, not {}", kind(other))),
        };
        if value.contains(['\r', '\n', '\0']) {
            return self.reject(path, "must not contain CR, LF or NUL");
        }
        // What the REFER would carry must pass the writer's check (a `>` or `,` in a URI
        // would add a second address); the bare host stands in for the dialog's.
        if let Some(problem) = name_addr_problem(&address(value, None, "host")) {
            return self.reject(path, problem);
        }
        Some(value.clone())
    }

    /// `referTo`: one target, or an array of them tried in order, each a string, a number
    /// or `{"uri": ..., "timeout": seconds}`.
    pub(super) fn targets(&mut self, key: &'a str) -> Option<(Target, Vec<Target>)> {
        const MAX_TARGETS: usize = 10;
        let Some(value) = self.take(key) else { return self.missing(key, true) };
        let Value::Array(items) = value else {
            return self.address_in(key, value).map(|uri| (Target { uri, timeout: None }, Vec::new()));
        };
        if items.is_empty() || items.len() > MAX_TARGETS {
            return self.reject(key, format!("an array of targets holds from 1 to {MAX_TARGETS}"));
        }
        let before = self.failed;
        self.failed = false;
        let mut targets = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{key}[{i}]");
            let Value::Object(obj) = item else {
                if let Some(uri) = self.address_in(&path, item) {
                    targets.push(Target { uri, timeout: None });
                }
                continue;
            };
            for k in obj.keys().filter(|k| !["uri", "timeout"].contains(&k.as_str())) {
                self.fail(&format!("{path}.{k}"), "unknown property (a target is {uri, timeout})");
            }
            let uri = match obj.get("uri") {
                Some(v) => self.address_in(&format!("{path}.uri"), v),
                None => self.reject(&format!("{path}.uri"), "is required"),
            };
            let timeout = match obj.get("timeout") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_f64().filter(|s| *s > 0.0 && *s <= 86_400.0) {
                    Some(s) => Some(Duration::from_secs_f64(s)),
                    None => {
                        self.reject::<()>(
                            &format!("{path}.timeout"),
                            "must be a number of seconds above 0 and at most 86400",
                        );
                        None
                    }
                },
            };
            if let Some(uri) = uri {
                targets.push(Target { uri, timeout });
            }
        }
        let ok = !self.failed;
        self.failed |= before;
        let mut targets = targets.into_iter();
        match (ok, targets.next()) {
            (true, Some(first)) => Some((first, targets.collect())),
            _ => None,
        }
    }

    /// RFC 7433 User-to-User: `"HEX"` (hex-encoded data), or
    /// `{"data": ..., "encoding": "hex" | "none", "purpose": token, "content": token}`;
    /// returned as the header's value.
    pub(super) fn uui(&mut self, key: &'a str) -> Option<String> {
        const MAX_DATA: usize = 2048;
        let value = self.take(key)?;
        let (data, encoding, mut params) = match value {
            Value::String(data) => (data.as_str(), Some("hex"), Vec::new()),
            Value::Object(obj) => {
                let mut params = Vec::new();
                let mut encoding = Some("hex");
                for (k, v) in obj {
                    let path = format!("{key}.{k}");
                    match (k.as_str(), v) {
                        ("data", Value::String(_)) => {}
                        ("encoding", Value::String(e)) if e == "hex" => {}
                        ("encoding", Value::String(e)) if e == "none" => encoding = None,
                        ("encoding", _) => self.fail(&path, "must be \"hex\" (the default) or \"none\""),
                        ("purpose" | "content", Value::String(t)) if is_token(t) => params.push(format!("{k}={t}")),
                        ("purpose" | "content", _) => self.fail(&path, "must be a token (letters, digits, -.!%*_+`'~)"),
                        ("data", _) => self.fail(&path, "must be a string"),
                        _ => self.fail(&path, "unknown property (uui is {data, encoding, purpose, content})"),
                    }
                }
                match obj.get("data") {
                    Some(Value::String(data)) => (data.as_str(), encoding, params),
                    _ => return self.reject(&format!("{key}.data"), "is required"),
                }
            }
            other => {
                return self.reject(
                    key,
                    format!("must be a hex string or an object {{data, encoding, purpose}}, not {}", kind(other)),
                )
            }
        };
        if data.is_empty() || data.len() > MAX_DATA {
            return self.reject(key, format!("data holds from 1 to {MAX_DATA} characters"));
        }
        match encoding {
            Some(_) if data.len() % 2 != 0 || !data.bytes().all(|b| b.is_ascii_hexdigit()) => {
                return self.reject(key, "data with encoding=hex must be an even number of hex digits")
            }
            Some(e) => params.insert(0, format!("encoding={e}")),
            // Unencoded data is a token or a quoted string in the header (RFC 7433 §4.1).
            None if !is_token(data) => return self.reject(key, "data with encoding none must be a token; use hex"),
            None => {}
        }
        Some(std::iter::once(data.to_string()).chain(params).collect::<Vec<_>>().join(";"))
    }

    /// `referToHeaders`: headers the Refer-To URI carries to the target's INVITE.
    pub(super) fn uri_headers(&mut self, key: &'a str) -> Headers {
        self.header_table(key, |name, value| {
            let owned = URI_RESERVED.contains(&Name::lookup(name));
            unwritable_header(name, value)
                .or_else(|| owned.then_some("the target's user agent sets this header of its INVITE itself"))
        })
    }

    /// `byeAfterSuccess`: `now`, `never` or `wait:MS`.
    pub(super) fn bye_after(&mut self, key: &'a str) -> Option<ByeAfter> {
        match self.take(key)? {
            Value::String(s) => match ByeAfter::parse(s) {
                Ok(b) => Some(b),
                Err(e) => self.reject(key, e),
            },
            other => self.reject(key, format!("must be \"now\", \"never\" or \"wait:MS\", not {}", kind(other))),
        }
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

    /// `headers`: extra headers of the request baton sends.
    pub(super) fn headers(&mut self, key: &'a str) -> Headers {
        self.header_table(key, header_problem)
    }

    /// An object of header names to strings (or numbers), each checked by `problem`.
    fn header_table(&mut self, key: &'a str, problem: impl Fn(&str, &str) -> Option<&'static str>) -> Headers {
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
            match problem(name, &value) {
                Some(problem) => self.fail(&path, problem),
                None => out.push((name.clone(), value)),
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

/// URI headers need a URI that can carry them: not `tel:` (RFC 3966 has no headers), and
/// `User-to-User` once (`uui` writes it).
pub(super) fn check_uri_headers<'t>(
    p: &mut Props<'_, '_>,
    targets: (&str, impl ExactSizeIterator<Item = &'t str>),
    uui: bool,
    (key, headers): (&str, &Headers),
) {
    if uui && headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("User-to-User")) {
        p.fail(key, "User-to-User is given twice: by uui and here");
    }
    if !uui && headers.is_empty() {
        return;
    }
    let (targets_key, uris) = targets;
    let many = uris.len() > 1;
    for (i, uri) in uris.enumerate() {
        if crate::sip::uri::starts_with_ci(uri.trim_start_matches(['<', ' ']), "tel:") {
            let at = if many { format!("{targets_key}[{i}]") } else { targets_key.to_string() };
            p.fail(&at, "a tel: URI cannot carry the headers uui or the Refer-To headers need; write a sip: target");
        }
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

fn parse_step(index: usize, item: &Value, media: Media, errors: &mut Vec<DocError>) -> Option<Step> {
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
    if let Some(name) = super::media::find(super::media::JAMBONZ, name) {
        if media == Media::Skip {
            return Some(Step { id: None, verb: Verb::Skipped(name) });
        }
        err(
            errors,
            Some(name),
            format!("{name}: needs media, which baton does not provide (--media skip passes it over)"),
        );
        return None;
    }
    let mut p = Props::new(body, None, index, name, errors);
    if skip_verb_key {
        p.seen.push("verb");
    }
    let id = p.string("id", false);
    let verb = match name {
        "sip:refer" => {
            let targets = p.targets("referTo");
            let referred_by = p.address("referredBy", false);
            let referred_by_display = p.text("referredByDisplayName");
            if let (Some(by), Some(display)) = (&referred_by, &referred_by_display) {
                if let Some(problem) = name_addr_problem(&address(by, Some(display), "host")) {
                    p.fail("referredByDisplayName", problem);
                }
            }
            let headers = p.headers("headers");
            // Voice Gateway's page shows the payload fields inside actionHook; accept and ignore them.
            let action_hook = p.hook("actionHook", &["referStatus", "final_referred_call_status", "eventHook"]);
            let event_hook = p.hook("eventHook", &[]);
            let timeout = p.seconds("timeout", false);
            let auth = p.credentials("auth");
            let uui = p.uui("uui");
            let refer_to_headers = p.uri_headers("referToHeaders");
            let bye_after_success = p.bye_after("byeAfterSuccess");
            targets.map(|(refer_to, failover)| {
                let refer = Refer {
                    refer_to,
                    failover,
                    referred_by,
                    referred_by_display,
                    headers,
                    action_hook,
                    event_hook,
                    timeout,
                    auth,
                    status_url: None,
                    uui,
                    refer_to_headers,
                    bye_after_success,
                };
                let uris = std::iter::once(&refer.refer_to).chain(&refer.failover).map(|t| t.uri.as_str());
                let uris: Vec<&str> = uris.collect();
                let headers = ("referToHeaders", &refer.refer_to_headers);
                check_uri_headers(&mut p, ("referTo", uris.into_iter()), refer.uui.is_some(), headers);
                Verb::Refer(Box::new(refer))
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
            let reason = p.text("reason");
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
    use crate::app::{ByeAfter, Doc, Target};
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
        assert_eq!(r.refer_to.uri, "15083084809");
        assert_eq!(r.headers, vec![("X-Ticket".to_string(), "42".to_string())]);
        assert_eq!(r.action_hook.as_ref().unwrap().method, HttpMethod::Get);
        assert_eq!(r.timeout, Some(Duration::from_millis(7500)));
        assert_eq!(steps[1].verb, Verb::Hangup { headers: vec![("X-Why".into(), "done".into())] });
    }

    #[test]
    fn failover_uui_uri_headers_and_bye_policy() {
        let Ok(Application(Doc::Verbs(steps))) = parse_document(
            r#"[{"verb":"sip:refer","referTo":["sip:a@x", {"uri": 4915683084809, "timeout": 20}],
                "uui":"56a390f3","referToHeaders":{"X-Case":"12"},"byeAfterSuccess":"wait:1500"}]"#,
        ) else {
            panic!("not verbs")
        };
        let Verb::Refer(r) = &steps[0].verb else { panic!() };
        assert_eq!(r.refer_to.uri, "sip:a@x");
        assert_eq!(r.failover, vec![Target { uri: "4915683084809".into(), timeout: Some(Duration::from_secs(20)) }]);
        assert_eq!(r.uui.as_deref(), Some("56a390f3;encoding=hex"));
        assert_eq!(r.bye_after_success, Some(ByeAfter::Wait(Duration::from_millis(1500))));
        let refer = |props: &str| errors(&format!(r#"[{{"verb":"sip:refer",{props}}}]"#));
        assert_eq!(
            refer(r#""referTo":["sip:a@x", {"uri": "sip:b@y", "timeout": -1, "ring": 1}, 3.5]"#),
            vec![
                "verb 0 (sip:refer), property \"referTo[1].ring\": unknown property (a target is {uri, timeout})",
                "verb 0 (sip:refer), property \"referTo[1].timeout\": must be a number of seconds above 0 and at most 86400",
                "verb 0 (sip:refer), property \"referTo[2]\": a number must be a whole positive phone number",
            ]
        );
        assert_eq!(
            refer(r#""referTo":[]"#),
            vec!["verb 0 (sip:refer), property \"referTo\": an array of targets holds from 1 to 10"]
        );
        assert_eq!(
            refer(r#""referTo":"tel:+1555","uui":"abc""#),
            vec!["verb 0 (sip:refer), property \"uui\": data with encoding=hex must be an even number of hex digits",]
        );
        assert_eq!(
            refer(r#""referTo":["sip:a@x","tel:+1555"],"uui":{"data":"ab","purpose":"a b"},"referToHeaders":{"User-to-User":"x","Call-ID":"y"}"#),
            vec![
                "verb 0 (sip:refer), property \"uui.purpose\": must be a token (letters, digits, -.!%*_+`'~)",
                "verb 0 (sip:refer), property \"referToHeaders.Call-ID\": the target's user agent sets this header of its INVITE itself",
                "verb 0 (sip:refer), property \"referToHeaders\": User-to-User is given twice: by uui and here",
                "verb 0 (sip:refer), property \"referTo[1]\": a tel: URI cannot carry the headers uui or the Refer-To headers need; write a sip: target",
            ]
        );
        assert_eq!(
            refer(r#""referTo":"a","byeAfterSuccess":"later""#),
            vec!["verb 0 (sip:refer), property \"byeAfterSuccess\": \"later\": must be \"now\", \"never\" or \"wait:MS\" (milliseconds)"]
        );
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
            vec!["verb 0 (say): say: needs media, which baton does not provide (--media skip passes it over)"]
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
