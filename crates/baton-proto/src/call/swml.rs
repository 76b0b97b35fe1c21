//! What a call does for SWML: turns the machine's actions into verbs and hooks, and feeds
//! results back as variables (docs/behaviour.md §3).

use super::refer::Outcome;
use super::verbs::{AfterHook, Next, Program};
use super::{payload, Call, Ctx, Phase};
use crate::app::swml::run::{Action, Machine};
use crate::app::swml::Document;
use crate::app::{Application, BasicAuth, Doc, Hook, HttpMethod, Refer, Step, Target, Verb};
use crate::event::Event;
use crate::hook::{Answer, Expect, HookOutcome, Payload};
use crate::sip::write::Unwritable;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// SWML's word for how a transfer ended.
pub fn result(outcome: &Outcome) -> &'static str {
    match outcome.final_status {
        Some(s) => state_of(s),
        None if outcome.end == super::refer::End::Timeout => "noAnswer",
        None => "error",
    }
}

/// The state a final status maps to: success, busy, noAnswer, cancel, error.
fn state_of(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        486 | 600 => "busy",
        408 | 480 => "noAnswer",
        487 => "cancel",
        _ => "error",
    }
}

impl Call {
    pub(super) fn swml_machine(&self, ctx: &Ctx<'_>, doc: Arc<Document>) -> Machine {
        let fields = payload::call_fields(self).to_map();
        let mut call = Map::new();
        call.insert("call_id".into(), json!(&*self.sid));
        call.insert("type".into(), json!("sip"));
        call.insert("node_id".into(), json!(ctx.cfg.node_id));
        call.insert("sip_call_id".into(), json!(self.dialog.call_id()));
        for key in ["from", "to", "direction", "caller_name"] {
            if let Some(v) = fields.get(key) {
                call.insert(key.into(), v.clone());
            }
        }
        let envs = ctx.cfg.env_vars.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
        Machine::new(doc, call, envs, ctx.cfg.swml_limits)
    }

    fn machine(&mut self) -> Option<&mut Machine> {
        match &mut self.program {
            Program::Swml(m) => Some(m),
            Program::Verbs(..) => None,
        }
    }

    pub(super) fn swml_action(&mut self, ctx: &mut Ctx<'_>, action: Action) -> Next {
        let step = |verb| Next::Step(Arc::new(Step { id: None, verb }));
        // Without the call, a method that needs it ends the document quietly (§3.3).
        if self.detached()
            && matches!(action, Action::Answer | Action::Hangup { .. } | Action::Sleep(_) | Action::Refer(_))
        {
            tracing::debug!(call_sid = %self.sid, call_id = self.dialog.call_id(), "SWML: the call is over; the document ends");
            return Next::End;
        }
        match action {
            Action::Answer => step(Verb::Answer),
            Action::Hangup { reason } => match (reason.as_deref(), self.phase()) {
                (Some("busy"), Phase::Early) => step(Verb::Decline { status: 486, reason: None, headers: Vec::new() }),
                (Some("decline"), Phase::Early) => {
                    step(Verb::Decline { status: 603, reason: None, headers: Vec::new() })
                }
                _ => step(Verb::Hangup { headers: Vec::new() }),
            },
            Action::Sleep(length) => step(Verb::Pause { length }),
            Action::Refer(r) => {
                if let Some(m) = self.machine() {
                    m.set("sip_refer_to", json!(r.to_uri));
                }
                let auth = r.username.zip(r.password).map(|(username, password)| BasicAuth { username, password });
                step(Verb::Refer(Box::new(Refer {
                    refer_to: Target { uri: r.to_uri, timeout: None },
                    auth,
                    status_url: r.status_url.map(Hook::post),
                    uui: r.uui,
                    refer_to_headers: r.refer_to_headers,
                    ..Refer::default()
                })))
            }
            Action::Request(r) => {
                let method = match r.method.as_str() {
                    "POST" => HttpMethod::Post,
                    "PUT" => HttpMethod::Put,
                    "DELETE" => HttpMethod::Delete,
                    _ => HttpMethod::Get,
                };
                let headers =
                    r.headers.iter().map(|(k, v)| (k.clone(), crate::app::swml::expr::text(v))).collect::<Vec<_>>();
                let hook = Hook { url: r.url.clone(), method, auth: None };
                let after = AfterHook::SwmlRequest { url: r.url, save: r.save_variables };
                self.wait_for(ctx, &hook, Payload::Request { body: r.body, headers }, Expect::Http, after);
                Next::Waiting
            }
            Action::Fetch { url, params, execute } => {
                let vars = self.machine().map(|m| m.vars().clone()).unwrap_or_default();
                let body = json!({"call": payload::call_fields(self).to_map(), "vars": vars, "params": params});
                let after = AfterHook::SwmlFetch { params, execute };
                self.wait_for(ctx, &Hook::post(url), Payload::Event(Event::json(body)), Expect::Swml, after);
                Next::Waiting
            }
            Action::End => Next::End,
        }
    }

    /// Sets `request_*` variables from a SWML `request`'s answer.
    pub(super) fn swml_request_done(&mut self, url: &str, save: bool, outcome: HookOutcome) {
        let Some(m) = self.machine() else { return };
        m.set("request_url", json!(url));
        match outcome {
            Ok(Answer::Http { status, body }) => {
                m.set("request_result", json!(if (200..300).contains(&status) { "success" } else { "failed" }));
                m.set("request_response_code", json!(status.to_string()));
                if save {
                    m.set("request_response", serde_json::from_str(&body).unwrap_or(Value::Null));
                }
                m.set("request_response_body", json!(body));
            }
            Ok(_) | Err(_) => {
                m.set("request_result", json!("failed"));
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, "SWML request failed");
                }
            }
        }
    }

    /// Runs a document fetched for `execute` or `transfer`; a failed fetch is skipped.
    pub(super) fn swml_fetched(&mut self, params: Map<String, Value>, execute: bool, outcome: HookOutcome) {
        let (sid, call_id) = (self.sid.clone(), self.dialog.call_id().to_string());
        let Some(m) = self.machine() else { return };
        match outcome {
            Ok(Answer::Application(Application(Doc::Swml(doc)))) => m.fetched(doc, params, execute),
            Ok(_) => tracing::warn!(call_sid = %sid, call_id, "SWML fetch answered no document; going on"),
            Err(e) => tracing::warn!(call_sid = %sid, call_id, error = %e, "SWML fetch failed; going on"),
        }
    }

    /// SWML variables after a transfer (docs/behaviour.md §3).
    pub(super) fn swml_refer_done(&mut self, outcome: &Outcome) {
        let Some(m) = self.machine() else { return };
        let result = result(outcome);
        m.set("sip_refer_result", json!(result));
        m.set("return_value", json!(result));
        m.set("sip_refer_response_code", json!(outcome.refer_status.to_string()));
        match outcome.final_status {
            Some(s) => m.set("sip_refer_to_response_code", json!(s.to_string())),
            None => m.set("sip_refer_to_response_code", Value::Null),
        }
    }

    /// The REFER was never sent: `sip_refer_error` says why (the result is `error`).
    pub(super) fn swml_refer_failed(&mut self, e: &Unwritable) {
        if let Some(m) = self.machine() {
            m.set("sip_refer_error", json!(e.to_string()));
        }
    }

    /// A `calling.call.refer` status callback: on the REFER's response and on every NOTIFY.
    pub(super) fn swml_status(&mut self, ctx: &mut Ctx<'_>, refer_code: Option<u16>, notify_code: Option<u16>) {
        let Some(Step { verb: Verb::Refer(r), .. }) = self.current.as_deref() else { return };
        let Some(hook) = r.status_url.clone() else { return };
        let state = match (refer_code, notify_code) {
            (_, Some(n)) if n >= 200 => state_of(n),
            (Some(c), None) if c >= 300 => "error",
            _ => "inProgress",
        };
        let tag = match &self.program {
            Program::Swml(m) => m.vars().get("tag").map(crate::app::swml::expr::text),
            Program::Verbs(..) => None,
        };
        let body = payload::swml_refer_event(self, ctx.cfg, &r.refer_to.uri, state, refer_code, notify_code, tag);
        self.hook(ctx, &hook, Payload::Stamped(body), None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::refer::{End, Outcome};
    use super::result;

    #[test]
    fn results_follow_the_spec() {
        let o = |final_status, end| Outcome { refer_status: 202, final_status, end };
        assert_eq!(result(&o(Some(200), End::Final)), "success");
        assert_eq!(result(&o(Some(486), End::Final)), "busy");
        assert_eq!(result(&o(Some(600), End::Final)), "busy");
        assert_eq!(result(&o(Some(480), End::Final)), "noAnswer");
        assert_eq!(result(&o(None, End::Timeout)), "noAnswer");
        assert_eq!(result(&o(Some(487), End::Final)), "cancel");
        assert_eq!(result(&o(Some(503), End::Final)), "error");
        assert_eq!(result(&Outcome { refer_status: 603, final_status: None, end: End::Refused }), "error");
    }
}
