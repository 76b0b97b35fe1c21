//! What a call's hooks carry: typed events (rendered to JSON by `event.rs`, off the shard),
//! and the bodies that are JSON from the start (the call hook's INVITE, SWML's callbacks).

use super::refer::Attempt;
use super::{Call, Outcome, Status};
use crate::event::{CallFields, Detail, Event, Identity, Kind};
use crate::settings::Settings;
use crate::sip::header::{Name, NameAddr};
use crate::sip::parse::{Core, Message, StartLine};
use crate::sip::uri::Uri;
use crate::sip::write::Unwritable;
use crate::transport::Flow;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// Who the caller is, read once from the INVITE, with the identifiers the call minted.
pub fn identity(msg: &Message<'_>, core: &Core<'_>, sid: &Arc<str>, trace_id: String, flow: Flow) -> Arc<Identity> {
    let from_user = user_of(core.from.uri).unwrap_or_else(|| "anonymous".into());
    let pai = msg.all(Name::PAssertedIdentity).filter_map(NameAddr::parse).find(|n| user_of(n.uri).is_some());
    let display = |n: &NameAddr<'_>| n.display.map(str::to_string);
    let (transferee_user, transferee_display) = match pai {
        Some(p) => (user_of(p.uri).unwrap_or_default(), display(&p).or_else(|| display(&core.from))),
        None => (from_user.clone(), display(&core.from)),
    };
    Arc::new(Identity {
        call_sid: sid.clone(),
        call_id: core.call_id.into(),
        trace_id,
        caller_name: core.from.display.unwrap_or_default().to_string(),
        to_user: user_of(core.to.uri).unwrap_or_default(),
        from_user,
        transferee_user,
        transferee_display,
        source: flow.remote,
        local: flow.local,
    })
}

fn user_of(uri: &str) -> Option<String> {
    Uri::parse(uri).and_then(|u| u.user).map(str::to_string)
}

/// The default Referred-By (docs/behaviour.md §2.1): the party being transferred,
/// P-Asserted-Identity before From.
pub fn referred_by(id: &Identity, host: &str) -> String {
    crate::sip::write::address(&id.transferee_user, id.transferee_display.as_deref(), host)
}

/// The call's fields as they stand: shared, not copied.
pub fn call_fields(call: &Call) -> CallFields {
    CallFields {
        identity: call.identity.clone(),
        sip_status: call.sip_status,
        call_status: call.status.as_str(),
        customer_data: call.customer_data.clone(),
    }
}

/// The call_hook body: the call's identity plus the INVITE itself (docs/behaviour.md §1.3).
pub fn call_hook(call: &Call, msg: &Message<'_>, cfg: &Settings) -> Event {
    let mut m = call_fields(call).to_map();
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
    Event::json(Value::Object(m))
}

/// The call_status_hook body (docs/behaviour.md §1.8).
pub fn status(call: &Call, now: Instant) -> Event {
    let over = matches!(call.status, Status::Completed | Status::Failed | Status::Canceled);
    let detail = Detail::Status {
        termination_by: call.termination_by.filter(|_| over),
        duration: call.answered_at.filter(|_| over).map(|at| now.saturating_duration_since(at).as_secs()),
    };
    Event(Kind::Call(call_fields(call), detail))
}

/// The sip:refer actionHook body (docs/behaviour.md §2.4): the last attempt's outcome,
/// and every attempt when `referTo` was an array.
pub fn refer_action(
    call: &Call,
    outcome: &Outcome,
    verb_id: Option<String>,
    unsent: Option<&Unwritable>,
    attempts: Vec<Attempt>,
) -> Event {
    let detail = Detail::Refer {
        refer_status: outcome.refer_status,
        final_status: outcome.final_status,
        verb_id,
        error: unsent.map(ToString::to_string),
        attempts,
    };
    Event(Kind::Call(call_fields(call), detail))
}

/// The eventHook's `transfer-attempt` for target `index` of a `referTo` array.
pub fn attempt_event(
    call: &Call,
    verb_id: Option<String>,
    index: usize,
    attempt: &Attempt,
    unsent: Option<&Unwritable>,
) -> Event {
    let error = unsent.map(ToString::to_string);
    Event(Kind::TransferAttempt { call_sid: call.sid.clone(), verb_id, index, attempt: attempt.clone(), error })
}

/// SWML's `calling.call.refer` status callback (docs/behaviour.md §3); codes are strings in
/// this dialect and a code not yet received is absent. `segment_id` is the leg's SIP
/// Call-ID; `tag` the document's `tag` variable, when it set one. The worker adds
/// `timestamp` when it sends.
pub fn swml_refer_event(
    call: &Call,
    cfg: &Settings,
    to_uri: &str,
    state: &str,
    refer_code: Option<u16>,
    notify_code: Option<u16>,
    tag: Option<String>,
) -> Value {
    let mut params = json!({"call_id": &*call.sid, "node_id": cfg.node_id, "sip_refer_to": to_uri, "state": state,
                            "segment_id": call.dialog.call_id()});
    if let Some(tag) = tag {
        params["tag"] = json!(tag);
    }
    if let Some(c) = refer_code {
        params["sip_refer_response_code"] = json!(c.to_string());
    }
    if let Some(c) = notify_code {
        params["sip_notify_response_code"] = json!(c.to_string());
    }
    json!({"event_type": "calling.call.refer", "event_channel": format!("swml:{}", call.sid),
           "project_id": cfg.project_id, "space_id": cfg.space_id, "params": params})
}
