//! `/v1/calls`: the calls in progress, asked of every shard (each answers on its next
//! turn, within a second), merged in call_sid order and paged.

use super::Api;
use crate::shard::Query;
use axum::body::Bytes;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_proto::{parse_document_within, CallSummary, CallUpdate, DocRules, Hook, UpdateError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a shard may take to answer.
const ANSWER: Duration = Duration::from_secs(2);
/// The longest page.
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
pub struct Page {
    /// Calls per page (default 100, at most 1,000).
    limit: Option<usize>,
    /// The last call_sid of the previous page.
    after: Option<String>,
}

/// Every live call of every shard, in call_sid order.
async fn all(api: &Api) -> Result<Vec<CallSummary>, Response> {
    let mut answers = Vec::with_capacity(api.peers.len());
    for peer in api.peers.iter() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if peer.queries.try_send(Query::Calls(tx)).is_err() {
            return Err(unavailable());
        }
        peer.waker.wake();
        answers.push(rx);
    }
    let mut calls = Vec::new();
    for rx in answers {
        match tokio::time::timeout(ANSWER, rx).await {
            Ok(Ok(mine)) => calls.extend(mine),
            _ => return Err(unavailable()),
        }
    }
    calls.sort_by(|a, b| a.call_sid.cmp(&b.call_sid));
    Ok(calls)
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "a shard did not answer\n").into_response()
}

fn render(c: &CallSummary) -> Value {
    let mut v = json!({"call_sid": &*c.call_sid, "call_id": c.call_id, "from": c.from, "to": c.to,
                       "state": c.state, "call_status": c.call_status, "sip_status": c.sip_status,
                       "verb": c.verb, "profile": c.profile});
    if let Some((refer_status, notify_status)) = c.transfer {
        v["transfer"] = json!({"refer_status": refer_status, "last_notify_status": notify_status});
    }
    v
}

pub async fn list(State(api): State<Arc<Api>>, Params(page): Params<Page>) -> Response {
    let calls = match all(&api).await {
        Ok(calls) => calls,
        Err(e) => return e,
    };
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let start = page.after.as_deref().map_or(0, |after| calls.partition_point(|c| &*c.call_sid <= after));
    let shown = &calls[start.min(calls.len())..(start + limit).min(calls.len())];
    let next = (start + limit < calls.len()).then(|| shown.last().map(|c| c.call_sid.to_string())).flatten();
    Json(json!({"calls": shown.iter().map(render).collect::<Vec<_>>(), "next": next})).into_response()
}

pub async fn one(State(api): State<Arc<Api>>, Path(call_sid): Path<String>) -> Response {
    match all(&api).await {
        Ok(calls) => match calls.iter().find(|c| *c.call_sid == call_sid) {
            Some(call) => Json(render(call)).into_response(),
            None => (StatusCode::NOT_FOUND, "no such call in progress\n").into_response(),
        },
        Err(e) => e,
    }
}

/// `POST /v1/calls/{call_sid}`, jambonz's `updateCall` shapes: `{"verbs": [...]}` (or a SWML
/// document) runs now instead of the rest, `{"call_hook": URL}` fetches the application
/// to run, `{"call_status": "completed"}` hangs up. With `command_id`, a repeat within a
/// minute gets the first answer and changes nothing.
pub async fn update(State(api): State<Arc<Api>>, Path(call_sid): Path<String>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return (StatusCode::BAD_REQUEST, "the body must be a JSON object\n").into_response(),
    };
    let command = request.get("command_id").and_then(Value::as_str).map(|c| format!("{call_sid}/{c}"));
    if let Some(answer) = command.as_deref().and_then(|c| api.commands.seen(c)) {
        return respond(answer);
    }
    let answer = match read_update(&request, api.rules) {
        Ok(update) => apply(&api, &call_sid, update).await,
        Err(why) => (StatusCode::BAD_REQUEST, why),
    };
    if let Some(command) = command {
        api.commands.remember(command, answer.clone());
    }
    respond(answer)
}

/// A success is JSON; a refusal says why in a line or more of text.
fn respond((status, body): Answer) -> Response {
    match status {
        StatusCode::OK => (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        _ => (status, body).into_response(),
    }
}

fn read_update(request: &Value, rules: DocRules) -> Result<CallUpdate, String> {
    if let Some(verbs) = request.get("verbs") {
        return parse_document_within(&verbs.to_string(), rules)
            .map(CallUpdate::Application)
            .map_err(|errors| errors.iter().map(|e| format!("{e}\n")).collect::<String>());
    }
    if let Some(hook) = request.get("call_hook") {
        return match hook.as_str().filter(|url| !url.is_empty()) {
            Some(url) => Ok(CallUpdate::Fetch(Hook::post(url))),
            None => Err("call_hook: must be a URL\n".into()),
        };
    }
    match request.get("call_status").and_then(Value::as_str) {
        Some("completed") => Ok(CallUpdate::Hangup),
        Some(other) => Err(format!("call_status: {other:?} is not \"completed\"\n")),
        None => Err("expected one of verbs, call_hook, call_status\n".into()),
    }
}

/// Asks every shard; the one with the call applies it.
async fn apply(api: &Api, call_sid: &str, update: CallUpdate) -> Answer {
    let sid: Arc<str> = call_sid.into();
    let mut answers = Vec::with_capacity(api.peers.len());
    for peer in api.peers.iter() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if peer.queries.try_send(Query::Update(sid.clone(), update.clone(), tx)).is_err() {
            return (StatusCode::SERVICE_UNAVAILABLE, "a shard did not answer\n".into());
        }
        peer.waker.wake();
        answers.push(rx);
    }
    let mut busy = false;
    for rx in answers {
        match tokio::time::timeout(ANSWER, rx).await {
            Ok(Ok(Ok(()))) => return (StatusCode::OK, "{\"status\": \"ok\"}\n".into()),
            Ok(Ok(Err(UpdateError::Busy))) => busy = true,
            Ok(Ok(Err(UpdateError::NotFound))) => {}
            _ => return (StatusCode::SERVICE_UNAVAILABLE, "a shard did not answer\n".into()),
        }
    }
    match busy {
        true => (StatusCode::CONFLICT, "a transfer or request of the call awaits its answer\n".into()),
        false => (StatusCode::NOT_FOUND, "no such call in progress\n".into()),
    }
}

/// An answer to a POST: status and body.
type Answer = (StatusCode, String);

/// Answers to POSTs that carried a `command_id`, for a minute (at most `MAX_COMMANDS`).
#[derive(Default)]
pub struct Commands(Mutex<HashMap<String, (Instant, Answer)>>);

const MAX_COMMANDS: usize = 10_000;
const COMMAND_MEMORY: Duration = Duration::from_secs(60);

impl Commands {
    fn seen(&self, command: &str) -> Option<Answer> {
        let table = self.0.lock().ok()?;
        table.get(command).filter(|(at, _)| at.elapsed() < COMMAND_MEMORY).map(|(_, answer)| answer.clone())
    }

    fn remember(&self, command: String, answer: Answer) {
        let Ok(mut table) = self.0.lock() else { return };
        if table.len() >= MAX_COMMANDS {
            table.retain(|_, (at, _)| at.elapsed() < COMMAND_MEMORY);
        }
        if table.len() < MAX_COMMANDS {
            table.insert(command, (Instant::now(), answer));
        }
    }
}
