//! The batch endpoint (`--hook-batch-url`): events nobody waits on (eventHook, status
//! callbacks) from many calls are collected and sent as one POST carrying a JSON array,
//! each element the object its own hook would have received plus that hook's URL. A batch
//! goes when it holds `max` events or its first event has waited `linger`.
//!
//! A call's task waits until the batch carrying its event is acknowledged before it sends
//! the call's next hook, so each call's hooks still arrive in order.

use super::policy::Policy;
use super::worker::{Deliverer, Prepared};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use url::Url;

#[derive(Clone, Debug)]
pub struct BatchSettings {
    pub url: Url,
    pub max: usize,
    pub linger: Duration,
}

/// One event waiting for its batch.
pub(super) struct Item {
    pub element: serde_json::Value,
    pub call_sid: Arc<str>,
    /// When the call produced the event.
    pub at: Instant,
    /// Told once the batch is acknowledged (or given up on).
    pub done: oneshot::Sender<()>,
}

/// Collects items into batches and sends each batch on its own task, so collecting never
/// waits on HTTP.
pub(super) async fn run(mut items: mpsc::UnboundedReceiver<Item>, deliverer: Arc<Deliverer>, settings: BatchSettings) {
    let max = settings.max.max(1);
    while let Some(first) = items.recv().await {
        let deadline = tokio::time::Instant::now() + settings.linger;
        let mut batch = vec![first];
        while batch.len() < max {
            tokio::select! {
                item = items.recv() => match item {
                    Some(item) => batch.push(item),
                    None => break,
                },
                _ = sleep_until(deadline) => break,
            }
        }
        let (deliverer, url) = (deliverer.clone(), settings.url.clone());
        tokio::spawn(async move { send(&deliverer, url, batch).await });
    }
}

async fn send(deliverer: &Deliverer, url: Url, batch: Vec<Item>) {
    let elements: Vec<&serde_json::Value> = batch.iter().map(|i| &i.element).collect();
    let body = serde_json::to_vec(&elements).unwrap_or_default();
    let prepared = Prepared {
        method: "POST".into(),
        url,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Some(body),
        payload: None,
    };
    let calls = batch.iter().map(|i| &*i.call_sid).collect::<Vec<_>>().join(",");
    let policy = Policy::default_with(deliverer.settings.retries);
    let (last, attempts) = deliverer.send_with_retries(&prepared, policy, &calls).await;
    let now = Instant::now();
    match &last {
        Ok((status, _)) if (200..300).contains(status) => {
            deliverer.settings.counters.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for item in &batch {
                deliverer.settings.counters.delivered(1, now.saturating_duration_since(item.at));
            }
        }
        _ => deliverer.dead_letter(&calls, &prepared, attempts, &last),
    }
    for item in batch {
        let _ = item.done.send(());
    }
}
