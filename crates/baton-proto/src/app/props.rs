//! Reading one verb's (or SWML method's) properties: each typed as the dialects write them,
//! each problem recorded with its verb index and property path, and every property the
//! verb did not read refused as unknown. `validate` and `swml` build their verbs with it.

use super::validate::DocError;
use super::{BasicAuth, ByeAfter, Headers, Hook, HttpMethod, Target};
use crate::sip::header::{is_token, Name};
use crate::sip::write::{address, name_addr_problem};
use serde_json::{Map, Value};
use std::time::Duration;

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

/// Reads the properties of one verb object and remembers which it consumed.
pub(super) struct Props<'a, 'e> {
    obj: &'a Map<String, Value>,
    pub(super) seen: Vec<&'a str>,
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
