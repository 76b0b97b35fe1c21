//! Runs a SWML document: sections, nested blocks, labels and a call stack for `execute`.
//! Control flow happens here; what touches the call comes out as an [`Action`].

use super::expr::{self, Scope};
use super::{Block, Document, Method, Request, SipRefer};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the call must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Answer,
    Hangup {
        reason: Option<String>,
    },
    Sleep(Duration),
    Refer(SipRefer),
    Request(Request),
    /// Load a SWML document from a URL: `execute` runs it as a subroutine, `transfer` replaces.
    Fetch {
        url: String,
        params: Map<String, Value>,
        execute: bool,
    },
    End,
}

struct Frame {
    doc: Arc<Document>,
    block: Block,
    pc: usize,
    /// Set on the frame of a whole section (where labels live and `return` stops).
    section: Option<String>,
    params: Map<String, Value>,
}

/// How much a document may keep in its variables: values from `set`, `request` answers
/// and substitutions can grow (a string doubled in a `goto` loop), and a call's memory must
/// not. A document that goes over ends, and the log says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarLimits {
    /// One variable's value, in bytes of JSON (about).
    pub value: usize,
    /// All of one call's variables together.
    pub total: usize,
}

impl Default for VarLimits {
    fn default() -> Self {
        VarLimits { value: 256 * 1024, total: 1024 * 1024 }
    }
}

/// About how many bytes `v` takes as JSON, without writing it.
fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|i| json_size(i) + 1).sum::<usize>(),
        Value::Object(m) => 2 + m.iter().map(|(k, v)| k.len() + 4 + json_size(v)).sum::<usize>(),
    }
}

pub struct Machine {
    frames: Vec<Frame>,
    vars: Map<String, Value>,
    limits: VarLimits,
    /// What `vars` holds, by [`json_size`].
    held: usize,
    call: Map<String, Value>,
    envs: Map<String, Value>,
    /// How often each goto (by section and index) has jumped.
    jumps: HashMap<(String, usize), u32>,
}

/// Methods run without yielding before the machine gives up (a loop with no action).
const STEP_LIMIT: usize = 10_000;

impl Machine {
    pub fn new(doc: Arc<Document>, call: Map<String, Value>, envs: Map<String, Value>, limits: VarLimits) -> Machine {
        let mut m =
            Machine { frames: Vec::new(), vars: Map::new(), limits, held: 0, call, envs, jumps: HashMap::new() };
        m.enter(doc, "main", Map::new());
        m
    }

    fn enter(&mut self, doc: Arc<Document>, section: &str, params: Map<String, Value>) -> bool {
        let Some(block) = doc.sections.get(section).cloned() else { return false };
        self.frames.push(Frame { doc, block, pc: 0, section: Some(section.to_string()), params });
        true
    }

    /// Sets a variable, unless that would go over the limits: then the document ends.
    pub fn set(&mut self, key: &str, value: Value) {
        let size = json_size(&value);
        let old = self.vars.get(key).map_or(0, |v| key.len() + json_size(v));
        let total = self.held - old + key.len() + size;
        let over = if size > self.limits.value {
            Some(("one value", size, self.limits.value))
        } else if total > self.limits.total {
            Some(("all variables", total, self.limits.total))
        } else {
            None
        };
        if let Some((what, size, limit)) = over {
            tracing::info!(variable = key, what, size, limit, "SWML variables over their limit; the document ends");
            self.frames.clear();
            return;
        }
        self.held = total;
        self.vars.insert(key.to_string(), value);
    }

    pub fn vars(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// A document fetched for `execute` or `transfer` arrived.
    pub fn fetched(&mut self, doc: Arc<Document>, params: Map<String, Value>, execute: bool) {
        if !execute {
            self.frames.clear();
        }
        self.enter(doc, "main", params);
    }

    fn section_frame(&self) -> Option<&Frame> {
        self.frames.iter().rev().find(|f| f.section.is_some())
    }

    /// Pops frames up to and including the innermost section frame (`return`).
    fn leave_section(&mut self) {
        while let Some(f) = self.frames.pop() {
            if f.section.is_some() {
                return;
            }
        }
    }

    /// Runs control flow until the call has something to do.
    pub fn advance(&mut self) -> Action {
        for _ in 0..STEP_LIMIT {
            let Some(frame) = self.frames.last_mut() else { return Action::End };
            let Some(method) = frame.block.get(frame.pc).cloned() else {
                self.frames.pop();
                continue;
            };
            let here = (frame.section.clone().unwrap_or_default(), frame.pc);
            frame.pc += 1;
            if let Some(action) = self.step(method, here) {
                return action;
            }
        }
        tracing::warn!("SWML ran {STEP_LIMIT} methods without an action; stopping it");
        self.frames.clear();
        Action::End
    }

    fn step(&mut self, method: Method, here: (String, usize)) -> Option<Action> {
        match method {
            Method::Answer => return Some(Action::Answer),
            Method::Hangup { reason } => {
                return Some(Action::Hangup { reason: reason.map(|r| expr::substitute(&r, self)) })
            }
            Method::Sleep(v) => {
                let ms = expr::text(&expr::substitute_value(&v, self)).trim().parse::<f64>().unwrap_or(0.0);
                return Some(Action::Sleep(Duration::from_secs_f64(ms.max(0.0) / 1000.0)));
            }
            Method::SipRefer(r) => {
                return Some(Action::Refer(SipRefer {
                    to_uri: expr::substitute(&r.to_uri, self),
                    status_url: r.status_url.map(|u| expr::substitute(&u, self)),
                    username: r.username.map(|u| expr::substitute(&u, self)),
                    password: r.password.map(|p| expr::substitute(&p, self)),
                    uui: r.uui.map(|u| expr::substitute(&u, self)),
                    refer_to_headers: r
                        .refer_to_headers
                        .iter()
                        .map(|(n, v)| (n.clone(), expr::substitute(v, self)))
                        .collect(),
                }))
            }
            Method::Request(r) => {
                return Some(Action::Request(Request {
                    url: expr::substitute(&r.url, self),
                    headers: r.headers.iter().map(|(k, v)| (k.clone(), expr::substitute_value(v, self))).collect(),
                    body: r.body.map(|b| expr::substitute_value(&b, self)),
                    ..r
                }))
            }
            Method::Set(vars) => {
                for (k, v) in vars {
                    let v = expr::substitute_value(&v, self);
                    self.set(&k, v);
                }
            }
            Method::Unset(names) => {
                for n in names {
                    if let Some(old) = self.vars.remove(&n) {
                        self.held -= json_size(&old) + n.len();
                    }
                }
            }
            Method::Label(_) => {}
            Method::Skipped(name) => crate::app::skipped(name),
            Method::Goto { label, when, max } => {
                let go = when.is_none_or(|w| expr::eval(&w, self).is_ok_and(|v| expr::truthy(&v)));
                let count = self.jumps.entry(here).or_insert(0);
                if go && *count < max {
                    *count += 1;
                    self.goto(&label);
                }
            }
            Method::Switch { variable, cases, default } => {
                let value = expr::eval(&variable, self).map(|v| expr::text(&v)).unwrap_or_default();
                let chosen = cases.iter().find(|(k, _)| *k == value).map(|(_, b)| b.clone()).or(default);
                self.push_block(chosen);
            }
            Method::Cond(branches) => {
                let chosen = branches.iter().find(|(when, _)| match when {
                    Some(w) => expr::eval(w, self).is_ok_and(|v| expr::truthy(&v)),
                    None => true,
                });
                self.push_block(chosen.map(|(_, b)| b.clone()));
            }
            Method::Execute { dest, params } | Method::Transfer { dest, params } => {
                let execute = matches!(self.current_method(&here), Some(Method::Execute { .. }));
                let dest = if super::is_url(&dest) { expr::substitute(&dest, self) } else { dest };
                let params: Map<String, Value> =
                    params.iter().map(|(k, v)| (k.clone(), expr::substitute_value(v, self))).collect();
                let doc = self.frames.last().map(|f| f.doc.clone())?;
                if !doc.sections.contains_key(&dest) {
                    return Some(Action::Fetch { url: dest, params, execute });
                }
                if !execute {
                    self.frames.clear();
                }
                self.enter(doc, &dest, params);
            }
            Method::Return(v) => {
                let v = expr::substitute_value(&v, self);
                self.set("return_value", v);
                self.leave_section();
            }
        }
        None
    }

    /// The method at `here` in the innermost frame (to tell execute from transfer).
    fn current_method(&self, here: &(String, usize)) -> Option<&Method> {
        self.frames.last().and_then(|f| f.block.get(here.1))
    }

    fn push_block(&mut self, block: Option<Block>) {
        let (Some(block), Some(doc)) = (block, self.frames.last().map(|f| f.doc.clone())) else { return };
        self.frames.push(Frame { doc, block, pc: 0, section: None, params: Map::new() });
    }

    /// Jumps to a label of the innermost section, leaving nested blocks.
    fn goto(&mut self, label: &str) {
        while self.frames.last().is_some_and(|f| f.section.is_none()) {
            self.frames.pop();
        }
        if let Some(frame) = self.frames.last_mut() {
            if let Some(i) = frame.block.iter().position(|m| matches!(m, Method::Label(l) if l == label)) {
                frame.pc = i + 1;
            }
        }
    }
}

fn path<'v>(root: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let first = root.get(parts.next()?)?;
    parts.try_fold(first, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

impl Scope for Machine {
    fn lookup(&self, p: &str) -> Value {
        let found = match p.split_once('.') {
            Some(("vars", rest)) => path(&self.vars, rest),
            Some(("call", rest)) => path(&self.call, rest),
            Some(("envs", rest)) => path(&self.envs, rest),
            Some(("params", rest)) => self.section_frame().and_then(|f| path(&f.params, rest)),
            _ => path(&self.vars, p),
        };
        found.cloned().unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Media;
    use serde_json::json;

    fn machine(doc: Value) -> Machine {
        Machine::new(
            Arc::new(super::super::load(&doc, Media::Refuse).unwrap()),
            Map::new(),
            Map::new(),
            VarLimits::default(),
        )
    }

    #[test]
    fn runs_control_flow_and_substitutes() {
        let mut m = machine(json!({"sections": {
            "main": [
                "answer",
                {"set": {"target": "sip:agent@example.com"}},
                {"sip_refer": {"to_uri": "${target}"}},
                {"switch": {"variable": "sip_refer_result", "case": {"busy": [{"execute": {"dest": "retry", "params": {"n": 2}}}]},
                            "default": ["hangup"]}},
                {"hangup": {"reason": "${return_value}"}}
            ],
            "retry": [{"sleep": "${params.n}000"}, {"return": "busy-done"}]
        }}));
        assert_eq!(m.advance(), Action::Answer);
        let Action::Refer(r) = m.advance() else { panic!() };
        assert_eq!(r.to_uri, "sip:agent@example.com");
        m.set("sip_refer_result", json!("busy"));
        assert_eq!(m.advance(), Action::Sleep(Duration::from_secs(2)));
        assert_eq!(m.advance(), Action::Hangup { reason: Some("busy-done".into()) });
        assert_eq!(m.advance(), Action::End);
    }

    #[test]
    fn goto_loops_are_bounded_and_cond_branches() {
        let mut m = machine(json!({"sections": {"main": [
            {"label": "top"},
            {"cond": [{"when": "vars.tries >= 2", "then": [{"hangup": {"reason": "done"}}]},
                      {"else": [{"set": {"tries": "${tries + 1}"}}, {"goto": "top"}]}]}
        ]}}));
        m.set("tries", json!(0));
        assert_eq!(m.advance(), Action::Hangup { reason: Some("done".into()) });
        let mut spin =
            machine(json!({"sections": {"main": [{"label": "a"}, {"goto": {"label": "a", "max": 3}}, "answer"]}}));
        assert_eq!(spin.advance(), Action::Answer);
    }

    #[test]
    fn url_destinations_are_fetched() {
        let mut m = machine(
            json!({"sections": {"main": [{"execute": {"dest": "https://app/next", "params": {"a": 1}}}, "answer"]}}),
        );
        assert_eq!(
            m.advance(),
            Action::Fetch {
                url: "https://app/next".into(),
                params: json!({"a": 1}).as_object().unwrap().clone(),
                execute: true
            }
        );
        let sub =
            super::super::load(&json!({"sections": {"main": [{"hangup": {"reason": "${params.a}"}}]}}), Media::Refuse)
                .unwrap();
        m.fetched(Arc::new(sub), json!({"a": "x"}).as_object().unwrap().clone(), true);
        assert_eq!(m.advance(), Action::Hangup { reason: Some("x".into()) });
        assert_eq!(m.advance(), Action::Answer, "execute returns to the caller");
    }
}
