//! SWML (SignalWire Markup Language): the subset a transfer engine can run — `sip_refer`
//! and the control flow around it. Loaded into types once; run by [`run::Machine`].

pub mod expr;
pub mod run;

use super::media::{self, Media};
use super::props::{check_uri_headers, kind, Props};
use super::validate::{doc_error, DocError};
use super::Headers;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub type Block = Arc<[Method]>;

#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub sections: HashMap<String, Block>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Answer,
    Hangup {
        reason: Option<String>,
    },
    /// Milliseconds, or a `${...}` string that yields them.
    Sleep(Value),
    Set(Map<String, Value>),
    Unset(Vec<String>),
    Goto {
        label: String,
        when: Option<String>,
        max: u32,
    },
    Label(String),
    Switch {
        variable: String,
        cases: Vec<(String, Block)>,
        default: Option<Block>,
    },
    /// `(when, then)`; the `else` branch has no condition.
    Cond(Vec<(Option<String>, Block)>),
    Execute {
        dest: String,
        params: Map<String, Value>,
    },
    Return(Value),
    Transfer {
        dest: String,
        params: Map<String, Value>,
    },
    Request(Request),
    SipRefer(SipRefer),
    /// A media method, loaded under `--media skip`.
    Skipped(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub url: String,
    pub method: String,
    pub headers: Map<String, Value>,
    pub body: Option<Value>,
    pub save_variables: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SipRefer {
    pub to_uri: String,
    pub status_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// RFC 7433 User-to-User for the target's INVITE (baton's extension).
    pub uui: Option<String>,
    /// Headers escaped into the Refer-To URI (baton's extension).
    pub refer_to_headers: Headers,
}

/// Default cap on how often one `goto` may jump, so a loop cannot run forever.
const GOTO_MAX: u32 = 100;

/// A destination that is fetched (absolute, or relative to the hook base) rather than a
/// section name; one built from variables is decided when it runs.
pub fn is_url(dest: &str) -> bool {
    dest.contains("://") || dest.starts_with('/') || dest.contains("${") || dest.contains("%{")
}

/// Whether a JSON value looks like a SWML document rather than a jambonz verb array.
pub fn is_swml(value: &Value) -> bool {
    value.get("sections").is_some() || value.get("version").is_some()
}

pub fn load(value: &Value, media: Media) -> Result<Document, Vec<DocError>> {
    let Some(Value::Object(sections)) = value.get("sections") else {
        return Err(doc_error("a SWML document needs \"sections\", an object of named method lists"));
    };
    if !sections.contains_key("main") {
        return Err(doc_error("a SWML document needs a \"main\" section"));
    }
    let mut errors = Vec::new();
    let mut out = HashMap::new();
    for (name, methods) in sections {
        if let Some(block) = block(methods, name, media, &mut errors) {
            out.insert(name.clone(), block);
        }
    }
    let doc = Document { sections: out };
    check_targets(&doc, &mut errors);
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

fn error(errors: &mut Vec<DocError>, section: &str, index: Option<usize>, verb: Option<&str>, problem: String) {
    errors.push(DocError {
        section: Some(section.to_string()),
        index,
        verb: verb.map(str::to_string),
        property: None,
        problem,
    });
}

fn block(value: &Value, section: &str, media: Media, errors: &mut Vec<DocError>) -> Option<Block> {
    let Value::Array(items) = value else {
        error(errors, section, None, None, format!("must be a list of methods, not {}", kind(value)));
        return None;
    };
    let before = errors.len();
    let methods: Vec<Method> =
        items.iter().enumerate().filter_map(|(i, item)| method(item, section, i, media, errors)).collect();
    (errors.len() == before).then(|| methods.into())
}

fn method(item: &Value, section: &str, index: usize, media: Media, errors: &mut Vec<DocError>) -> Option<Method> {
    let empty = Value::Object(Map::new());
    let (name, body) = match item {
        Value::String(name) => (name.as_str(), &empty),
        Value::Object(obj) if obj.len() == 1 => obj.iter().next().map(|(k, v)| (k.as_str(), v))?,
        other => {
            error(
                errors,
                section,
                Some(index),
                None,
                format!("must be a method name or a one-key object, not {}", kind(other)),
            );
            return None;
        }
    };
    if let Some(name) = media::find(media::SWML, name) {
        if media == Media::Skip {
            return Some(Method::Skipped(name));
        }
        let problem = format!("{name}: needs media, which baton does not provide (--media skip passes it over)");
        error(errors, section, Some(index), Some(name), problem);
        return None;
    }
    let nested = |key: &str| format!("{section}[{index}].{key}");
    // Methods whose body may be a scalar.
    match (name, body) {
        ("label", Value::String(l)) => return Some(Method::Label(l.clone())),
        ("goto", Value::String(l)) => return Some(Method::Goto { label: l.clone(), when: None, max: GOTO_MAX }),
        ("sleep", Value::Number(_)) | ("sleep", Value::String(_)) => return Some(Method::Sleep(body.clone())),
        ("unset", Value::String(v)) => return Some(Method::Unset(vec![v.clone()])),
        ("unset", Value::Array(vs)) if vs.iter().all(Value::is_string) => {
            return Some(Method::Unset(vs.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()))
        }
        ("return", v) => return Some(Method::Return(v.clone())),
        ("execute" | "transfer", Value::String(dest)) => {
            let (dest, params) = (dest.clone(), Map::new());
            return Some(if name == "execute" {
                Method::Execute { dest, params }
            } else {
                Method::Transfer { dest, params }
            });
        }
        ("set", Value::Object(vars)) => return Some(Method::Set(vars.clone())),
        ("cond", Value::Array(branches)) => {
            let mut out = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                let path = nested(&format!("cond[{i}]"));
                match (b.get("when"), b.get("then"), b.get("else")) {
                    (Some(Value::String(when)), Some(then), None) => {
                        if let Err(e) = expr::check(when) {
                            error(errors, &path, None, Some("cond"), format!("\"when\": {e}"));
                        }
                        out.push((Some(when.clone()), block(then, &format!("{path}.then"), media, errors)?));
                    }
                    (None, None, Some(otherwise)) => {
                        out.push((None, block(otherwise, &format!("{path}.else"), media, errors)?))
                    }
                    _ => error(errors, &path, None, Some("cond"), "each branch is {when, then} or {else}".into()),
                }
            }
            return Some(Method::Cond(out));
        }
        _ => {}
    }
    let Value::Object(obj) = body else {
        error(errors, section, Some(index), Some(name), format!("{name}: takes an object, not {}", kind(body)));
        return None;
    };
    let mut p = Props::new(obj, Some(section), index, name, errors);
    let method = match name {
        "answer" => {
            p.take("max_duration");
            Some(Method::Answer)
        }
        "hangup" => Some(Method::Hangup { reason: p.string("reason", false) }),
        "sleep" => p.take("duration").cloned().map(Method::Sleep).or_else(|| p.missing("duration", true)),
        "goto" => {
            let label = p.string("label", true);
            let when = p.string("when", false);
            if let Some(e) = when.as_deref().and_then(|w| expr::check(w).err()) {
                p.fail("when", e);
            }
            let max = match p.take("max") {
                Some(Value::Number(n)) => n.as_u64().map_or(GOTO_MAX, |m| m.min(u64::from(u32::MAX)) as u32),
                Some(_) => p.reject("max", "must be a number").unwrap_or(GOTO_MAX),
                None => GOTO_MAX,
            };
            label.map(|label| Method::Goto { label, when, max })
        }
        "switch" => {
            let variable = p.string("variable", true);
            let cases = match p.take("case") {
                Some(Value::Object(cases)) => cases
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), block(v, &nested(&format!("case.{k}")), media, p.errors)?)))
                    .collect(),
                Some(other) => p
                    .reject("case", format!("must be an object of value: methods, not {}", kind(other)))
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let default = p.take("default").and_then(|d| block(d, &nested("default"), media, p.errors));
            variable.map(|variable| Method::Switch { variable, cases, default })
        }
        "execute" | "transfer" => {
            let dest = p.string("dest", true);
            let params = match p.take("params") {
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    p.reject("params", format!("must be an object, not {}", kind(other))).unwrap_or_default()
                }
                None => Map::new(),
            };
            for ignored in ["meta", "on_return", "result"] {
                p.take(ignored);
            }
            dest.map(|dest| {
                if name == "execute" {
                    Method::Execute { dest, params }
                } else {
                    Method::Transfer { dest, params }
                }
            })
        }
        "request" => {
            let url = p.string("url", true);
            let method = p.string("method", false).unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            if !["GET", "POST", "PUT", "DELETE"].contains(&method.as_str()) {
                p.fail("method", "must be GET, POST, PUT or DELETE");
            }
            let headers = match p.take("headers") {
                Some(Value::Object(h)) => h.clone(),
                Some(other) => {
                    p.reject("headers", format!("must be an object, not {}", kind(other))).unwrap_or_default()
                }
                None => Map::new(),
            };
            let body = p.take("body").cloned();
            let save_variables = p.bool("save_variables").unwrap_or(false);
            for ignored in ["timeout", "connect_timeout"] {
                p.take(ignored);
            }
            url.map(|url| Method::Request(Request { url, method, headers, body, save_variables }))
        }
        "sip_refer" => {
            let to_uri = p.address("to_uri", true);
            let status_url = p.string("status_url", false);
            let username = p.string("username", false);
            let password = p.string("password", false);
            if username.is_some() != password.is_some() {
                p.fail("password", "username and password go together");
            }
            let uui = p.uui("uui");
            let refer_to_headers = p.uri_headers("refer_to_headers");
            let uris = to_uri.as_deref().into_iter();
            check_uri_headers(&mut p, ("to_uri", uris), uui.is_some(), ("refer_to_headers", &refer_to_headers));
            to_uri.map(|to_uri| {
                Method::SipRefer(SipRefer { to_uri, status_url, username, password, uui, refer_to_headers })
            })
        }
        "label" | "unset" | "set" | "cond" => p.reject("", format!("{name}: unexpected form")),
        _ => p.reject("", format!("unknown method \"{name}\"")),
    };
    let valid = p.finish();
    method.filter(|_| valid)
}

/// Every `goto` names a label of its section; every section `execute`/`transfer` names exists.
fn check_targets(doc: &Document, errors: &mut Vec<DocError>) {
    for (name, block) in &doc.sections {
        let labels: Vec<&str> =
            block.iter().filter_map(|m| if let Method::Label(l) = m { Some(l.as_str()) } else { None }).collect();
        walk(block, &mut |i, m| match m {
            Method::Goto { label, .. } if !labels.contains(&label.as_str()) => {
                error(errors, name, Some(i), Some("goto"), format!("no label \"{label}\" in section {name}"));
            }
            Method::Execute { dest, .. } | Method::Transfer { dest, .. }
                if !is_url(dest) && !doc.sections.contains_key(dest) =>
            {
                error(errors, name, Some(i), None, format!("no section \"{dest}\" (and not a URL)"));
            }
            _ => {}
        });
    }
}

fn walk(block: &[Method], f: &mut impl FnMut(usize, &Method)) {
    for (i, m) in block.iter().enumerate() {
        f(i, m);
        match m {
            Method::Switch { cases, default, .. } => {
                for (_, b) in cases {
                    walk(b, f);
                }
                if let Some(d) = default {
                    walk(d, f);
                }
            }
            Method::Cond(branches) => {
                for (_, b) in branches {
                    walk(b, f);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(doc: Value) -> Vec<String> {
        load(&doc, Media::Refuse).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn loads_the_seed_example_minus_media() {
        let doc = load(
            &json!({"version": "1.0.0", "sections": {"main": [
            "answer",
            {"sip_refer": {"to_uri": "sip:alice@example.com", "status_url": "https://example.com/status"}},
            {"cond": [{"when": "sip_refer_result == 'success'", "then": ["hangup"]}, {"else": [{"goto": "retry"}]}]},
            {"label": "retry"},
            {"execute": {"dest": "fallback", "params": {"n": 1}}}
        ], "fallback": [{"set": {"x": "${params.n}"}}, {"return": "done"}]}}),
            Media::Refuse,
        )
        .unwrap();
        assert_eq!(doc.sections["main"].len(), 5);
        assert!(matches!(&doc.sections["main"][1], Method::SipRefer(r) if r.to_uri == "sip:alice@example.com"));
    }

    #[test]
    fn names_section_index_and_problem() {
        assert_eq!(
            errors(json!({"sections": {"main": [{"sip_refer": {"status_url": 3}}, {"play": {"url": "x"}}]}})),
            vec![
                "section main, verb 0 (sip_refer), property \"to_uri\": is required",
                "section main, verb 0 (sip_refer), property \"status_url\": must be a string, not a number",
                "section main, verb 1 (play): play: needs media, which baton does not provide (--media skip passes it over)",
            ]
        );
        assert_eq!(
            errors(json!({"sections": {"main": [{"goto": "nowhere"}]}})),
            vec!["section main, verb 0 (goto): no label \"nowhere\" in section main"]
        );
        assert_eq!(
            errors(json!({"sections": {"other": []}})),
            vec!["document: a SWML document needs a \"main\" section"]
        );
        assert_eq!(errors(json!({"sections": {"main": [{"cond": [{"when": "a ==", "then": []}]}]}})).len(), 1);
    }
}
