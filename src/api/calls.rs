//! `/v1/calls`: the calls in progress, asked of every shard (each answers on its next
//! turn, within a second), merged in call_sid order and paged.

use super::Api;
use crate::shard::Query;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_proto::CallSummary;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

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
                       "verb": c.verb});
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
