//! Hook events as data. The core says what happened and hands over what the JSON needs
//! (shared, not copied); [`Event::to_json`] renders the body wherever the driver chooses.
//! baton's hook workers render it on their own threads, so a shard builds no JSON for the
//! hooks a transfer sends (docs/measurements.md has the instructions this saved).

use crate::call::refer::Attempt;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// A webhook event's body, to render with [`Event::to_json`].
#[derive(Clone, Debug)]
pub struct Event(pub(crate) Kind);

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// jambonz's eventHook `transfer-status`: a NOTIFY's status (docs/behaviour.md §2.3).
    TransferStatus { call_sid: Arc<str>, code: u16, verb_id: Option<String> },
    /// baton's eventHook `transfer-attempt`: one target of a `referTo` array ended
    /// (docs/behaviour.md §2.5).
    TransferAttempt {
        call_sid: Arc<str>,
        verb_id: Option<String>,
        index: usize,
        attempt: Attempt,
        error: Option<String>,
    },
    /// The call's fields, and what this hook adds to them.
    Call(CallFields, Detail),
    /// A body built as JSON (the call hook's INVITE, SWML's, `verb:status`).
    Json(Value),
}

/// Who a call is, read once from its INVITE and shared by every hook of the call.
#[derive(Debug)]
pub(crate) struct Identity {
    pub call_sid: Arc<str>,
    pub call_id: Arc<str>,
    pub trace_id: String,
    pub from_user: String,
    pub to_user: String,
    pub caller_name: String,
    /// The party being transferred (P-Asserted-Identity, else From), for Referred-By.
    pub transferee_user: String,
    pub transferee_display: Option<String>,
    pub source: SocketAddr,
    pub local: SocketAddr,
}

/// The call's fields as they stood when the hook was sent.
#[derive(Clone, Debug)]
pub(crate) struct CallFields {
    pub identity: Arc<Identity>,
    pub sip_status: u16,
    pub call_status: &'static str,
    pub customer_data: Option<Arc<Map<String, Value>>>,
}

/// What a hook adds to the call's fields.
#[derive(Clone, Debug)]
pub(crate) enum Detail {
    /// A redirect's actionHook: the fields alone.
    Nothing,
    /// The call status hook (docs/behaviour.md §1.8).
    Status { termination_by: Option<&'static str>, duration: Option<u64> },
    /// A sip:refer actionHook (docs/behaviour.md §2.4): integers, as jambonz sends them.
    /// `attempts`: every target tried, when `referTo` was an array.
    Refer {
        refer_status: u16,
        final_status: Option<u16>,
        verb_id: Option<String>,
        error: Option<String>,
        attempts: Vec<Attempt>,
    },
    /// A sip:request actionHook.
    Request { code: u16, reason: String, error: Option<String> },
}

impl Event {
    pub(crate) fn json(value: Value) -> Event {
        Event(Kind::Json(value))
    }

    /// The JSON body (jambonz's shape, snake_case keys).
    pub fn to_json(&self) -> Value {
        match &self.0 {
            Kind::TransferStatus { call_sid, code, verb_id } => {
                let mut body = json!({"event": "transfer-status", "call_status": code, "call_sid": &**call_sid});
                if let Some(id) = verb_id {
                    body["verb_id"] = json!(id);
                }
                body
            }
            Kind::TransferAttempt { call_sid, verb_id, index, attempt, error } => {
                let mut body = attempt_json(attempt);
                body["event"] = json!("transfer-attempt");
                body["call_sid"] = json!(&**call_sid);
                body["target_index"] = json!(index);
                if let Some(id) = verb_id {
                    body["verb_id"] = json!(id);
                }
                if let Some(e) = error {
                    body["error"] = json!(e);
                }
                body
            }
            Kind::Call(call, detail) => {
                let mut m = call.to_map();
                detail.add_to(&mut m);
                Value::Object(m)
            }
            Kind::Json(value) => value.clone(),
        }
    }

    /// The JSON body, taken out without a copy where it is JSON already.
    pub fn into_json(self) -> Value {
        match self.0 {
            Kind::Json(value) => value,
            other => Event(other).to_json(),
        }
    }
}

impl CallFields {
    /// The fields every hook of the call carries.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        let id = &self.identity;
        let mut m = Map::new();
        m.insert("call_sid".into(), json!(&*id.call_sid));
        m.insert("direction".into(), json!("inbound"));
        m.insert("from".into(), json!(id.from_user));
        m.insert("to".into(), json!(id.to_user));
        m.insert("call_id".into(), json!(&*id.call_id));
        m.insert("caller_name".into(), json!(id.caller_name));
        m.insert("sip_status".into(), json!(self.sip_status));
        m.insert("sip_reason".into(), json!(crate::sip::write::reason(self.sip_status)));
        m.insert("call_status".into(), json!(self.call_status));
        m.insert("originating_sip_ip".into(), json!(id.source.ip().to_string()));
        m.insert("originating_sip_port".into(), json!(id.source.port()));
        m.insert("local_sip_address".into(), json!(id.local.to_string()));
        m.insert("trace_id".into(), json!(id.trace_id));
        if let Some(data) = &self.customer_data {
            m.insert("customerData".into(), Value::Object(Map::clone(data)));
        }
        m
    }
}

/// One target tried: what it was and how it ended, in the actionHook's words.
fn attempt_json(a: &Attempt) -> Value {
    let mut v = json!({"target": a.target, "refer_status": a.outcome.refer_status,
                       "result": a.outcome.counted_as().as_str()});
    if let Some(s) = a.outcome.final_status {
        v["final_referred_call_status"] = json!(s);
    }
    v
}

impl Detail {
    fn add_to(&self, m: &mut Map<String, Value>) {
        match self {
            Detail::Nothing => {}
            Detail::Status { termination_by, duration } => {
                if let Some(by) = termination_by {
                    m.insert("call_termination_by".into(), json!(by));
                }
                if let Some(secs) = duration {
                    m.insert("duration".into(), json!(secs));
                }
            }
            Detail::Refer { refer_status, final_status, verb_id, error, attempts } => {
                if !attempts.is_empty() {
                    m.insert("attempts".into(), Value::Array(attempts.iter().map(attempt_json).collect()));
                }
                m.insert("refer_status".into(), json!(refer_status));
                if let Some(s) = final_status {
                    m.insert("final_referred_call_status".into(), json!(s));
                }
                if let Some(id) = verb_id {
                    m.insert("verb_id".into(), json!(id));
                }
                if let Some(e) = error {
                    m.insert("error".into(), json!(e));
                }
            }
            Detail::Request { code, reason, error } => {
                m.insert("result".into(), json!(if *code < 300 { "success" } else { "failed" }));
                m.insert("sip_status".into(), json!(code));
                m.insert("sip_reason".into(), json!(reason));
                if let Some(e) = error {
                    m.insert("error".into(), json!(e));
                }
            }
        }
    }
}
