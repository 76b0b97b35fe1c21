//! JSON → typed verbs. Each problem is reported with the verb's index, the property path
//! and what is wrong, and one bad verb rejects the whole document.

use super::props::{check_uri_headers, kind, Props};
use super::{Media, Refer, SipRequest, Step, Verb};
use crate::sip::header::is_token;
use crate::sip::write::{address, name_addr_problem};
use serde_json::Value;
use std::fmt;

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
    use crate::app::{ByeAfter, Doc, HttpMethod, Target};
    use std::time::Duration;
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
