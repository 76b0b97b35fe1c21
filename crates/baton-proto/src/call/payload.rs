//! The JSON bodies a call sends to its hooks (jambonz shape, snake_case keys).

use super::{Call, Outcome, Status};
use crate::settings::Settings;
use crate::sip::header::{Name, NameAddr};
use crate::sip::parse::{Core, Message, StartLine};
use crate::sip::uri::Uri;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::Instant;

/// Who the caller is, read once from the INVITE.
#[derive(Clone, Debug)]
pub struct Identity {
    from_user: String,
    to_user: String,
    caller_name: String,
    /// The party being transferred: P-Asserted-Identity, else From.
    transferee_user: String,
    transferee_display: Option<String>,
    source: SocketAddr,
    local: SocketAddr,
}

fn user_of(uri: &str) -> Option<String> {
    Uri::parse(uri).and_then(|u| u.user).map(str::to_string)
}

impl Identity {
    pub fn of(msg: &Message<'_>, core: &Core<'_>, source: SocketAddr, local: SocketAddr) -> Identity {
        let from_user = user_of(core.from.uri).unwrap_or_else(|| "anonymous".into());
        let pai = msg.all(Name::PAssertedIdentity).filter_map(NameAddr::parse).find(|n| user_of(n.uri).is_some());
        let display = |n: &NameAddr<'_>| n.display.map(str::to_string);
        let (transferee_user, transferee_display) = match pai {
            Some(p) => (user_of(p.uri).unwrap_or_default(), display(&p).or_else(|| display(&core.from))),
            None => (from_user.clone(), display(&core.from)),
        };
        Identity {
            caller_name: core.from.display.unwrap_or_default().to_string(),
            to_user: user_of(core.to.uri).unwrap_or_default(),
            from_user,
            transferee_user,
            transferee_display,
            source,
            local,
        }
    }

    /// The default Referred-By (docs/behaviour.md §2.1).
    pub fn referred_by(&self, host: &str) -> String {
        crate::sip::write::address(&self.transferee_user, self.transferee_display.as_deref(), host)
    }
}

/// Fields every hook of the call carries.
pub fn call_fields(call: &Call) -> Map<String, Value> {
    let id = &call.identity;
    let mut m = Map::new();
    m.insert("call_sid".into(), json!(&*call.sid));
    m.insert("direction".into(), json!("inbound"));
    m.insert("from".into(), json!(id.from_user));
    m.insert("to".into(), json!(id.to_user));
    m.insert("call_id".into(), json!(call.dialog.call_id()));
    m.insert("caller_name".into(), json!(id.caller_name));
    m.insert("sip_status".into(), json!(call.sip_status));
    m.insert("sip_reason".into(), json!(crate::sip::write::reason(call.sip_status)));
    m.insert("call_status".into(), json!(call.status.as_str()));
    m.insert("originating_sip_ip".into(), json!(id.source.ip().to_string()));
    m.insert("originating_sip_port".into(), json!(id.source.port()));
    m.insert("local_sip_address".into(), json!(id.local.to_string()));
    m.insert("trace_id".into(), json!(call.trace_id));
    if !call.customer_data.is_empty() {
        m.insert("customerData".into(), Value::Object(call.customer_data.clone()));
    }
    m
}

/// The call_hook body: the call's identity plus the INVITE itself (docs/behaviour.md §1.3).
pub fn call_hook(call: &Call, msg: &Message<'_>, cfg: &Settings) -> Value {
    let mut m = call_fields(call);
    let mut headers = Map::new();
    for h in msg.headers.iter() {
        let value = match headers.get(h.raw_name) {
            Some(Value::String(prev)) => format!("{prev}, {}", h.value),
            _ => h.value.to_string(),
        };
        headers.insert(h.raw_name.to_string(), json!(value));
    }
    let (method, uri) = match msg.start {
        StartLine::Request { method, uri } => (method, uri),
        StartLine::Response { .. } => ("", ""),
    };
    m.insert(
        "sip".into(),
        json!({"method": method, "uri": uri, "version": "2.0", "headers": headers,
               "body": String::from_utf8_lossy(msg.body)}),
    );
    for (key, value) in [("account_sid", &cfg.account_sid), ("application_sid", &cfg.application_sid)] {
        if let Some(v) = value {
            m.insert(key.into(), json!(v));
        }
    }
    if let Some(env) = &cfg.env_vars {
        m.insert("env_vars".into(), env.clone());
    }
    Value::Object(m)
}

/// The call_status_hook body (docs/behaviour.md §1.8).
pub fn status(call: &Call, now: Instant) -> Value {
    let mut m = call_fields(call);
    if matches!(call.status, Status::Completed | Status::Failed | Status::Canceled) {
        if let Some(by) = call.termination_by {
            m.insert("call_termination_by".into(), json!(by));
        }
        if let Some(at) = call.answered_at {
            m.insert("duration".into(), json!(now.saturating_duration_since(at).as_secs()));
        }
    }
    Value::Object(m)
}

/// The sip:refer actionHook body (docs/behaviour.md §2.4): integers, as jambonz sends them.
pub fn refer_action(call: &Call, outcome: &Outcome, verb_id: Option<&str>) -> Value {
    let mut m = call_fields(call);
    m.insert("refer_status".into(), json!(outcome.refer_status));
    if let Some(s) = outcome.final_status {
        m.insert("final_referred_call_status".into(), json!(s));
    }
    if let Some(id) = verb_id {
        m.insert("verb_id".into(), json!(id));
    }
    Value::Object(m)
}

/// SWML's `calling.call.refer` status callback (docs/behaviour.md §3); codes are strings in
/// this dialect and a code not yet received is absent. The worker adds `timestamp` when it
/// sends.
pub fn swml_refer_event(
    call: &Call,
    cfg: &Settings,
    to_uri: &str,
    state: &str,
    refer_code: Option<u16>,
    notify_code: Option<u16>,
) -> Value {
    let mut params = json!({"call_id": &*call.sid, "node_id": cfg.node_id, "sip_refer_to": to_uri, "state": state});
    if let Some(c) = refer_code {
        params["sip_refer_response_code"] = json!(c.to_string());
    }
    if let Some(c) = notify_code {
        params["sip_notify_response_code"] = json!(c.to_string());
    }
    json!({"event_type": "calling.call.refer", "event_channel": format!("swml:{}", call.sid),
           "project_id": cfg.project_id, "space_id": cfg.space_id, "params": params})
}
