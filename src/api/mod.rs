//! The operator's HTTP endpoint (`--http`), on hyper and axum, on a thread of its own off
//! the shards: `/healthz`, `/readyz`, `/metrics`, and the calls under `/v1` (docs/operating.md,
//! "The HTTP endpoint"). Every connection is bounded: at most `MAX_CONNECTIONS` at once, a
//! request's headers within `HEADER_TIMEOUT` (an idle keep-alive connection is closed
//! then too), a body of at most `MAX_BODY`, and the wrong method is a 405.

mod calls;
pub mod metrics;

use crate::shard::Peer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
pub use metrics::{Metrics, ShardMetrics};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections served at once; more are closed as they arrive. High, so that idle
/// connections cannot crowd out a liveness probe: each costs a task and at most
/// `MAX_BUFFER`, and is closed after `HEADER_TIMEOUT` without a request.
const MAX_CONNECTIONS: usize = 10_000;
/// What one connection may buffer of a request's head.
const MAX_BUFFER: usize = 16 * 1024;
/// A request's headers must arrive within this; an idle keep-alive connection closes then.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// The API, described (and checked against the routes by `tests/api.rs`).
const OPENAPI: &str = include_str!("../../docs/openapi.json");
/// A shard that has not turned for this long is stuck (it turns every `shard::HEARTBEAT`).
const STUCK: Duration = Duration::from_secs(5);

/// What the endpoint reads and whom it asks.
pub struct Api {
    pub metrics: Metrics,
    /// The shards, asked for their calls.
    pub peers: Arc<[Peer]>,
    /// Bearer token for `/v1`; without one, `/v1` answers loopback clients only.
    pub token: Option<String>,
    /// What a posted application may hold (`--max-verbs`, `--media`).
    pub rules: baton_proto::DocRules,
    /// Answers to POSTs with a `command_id`.
    pub commands: calls::Commands,
}

/// The client's address, for the loopback rule of `/v1`.
#[derive(Clone, Copy)]
struct Client(SocketAddr);

/// Binds `addr` and serves until the process ends; returns the bound address.
pub fn serve(addr: SocketAddr, api: Api) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    if api.token.is_none() {
        tracing::info!(%local, "no --api-token: /v1 answers loopback clients only");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("baton-http".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!(error = %e, "the HTTP endpoint cannot listen"),
            };
            let app = router(Arc::new(api));
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                let Ok((tcp, peer)) = listener.accept().await else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let service = TowerToHyperService::new(app.clone().layer(Extension(Client(peer))));
                tokio::spawn(async move {
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_BUFFER);
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                    drop(slot);
                });
            }
        });
    })?;
    Ok(local)
}

fn router(api: Arc<Api>) -> Router {
    let v1 = Router::new()
        .route("/calls", get(calls::list))
        .route("/calls/{call_sid}", get(calls::one).post(calls::update))
        .layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .nest("/v1", v1)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], api.metrics.render()).into_response()
}

/// Ready: every shard turning, none refusing calls for a full hook queue. (The sockets are
/// bound before this endpoint is.)
async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let now = Instant::now();
    let mut problems = Vec::new();
    for (i, g) in api.metrics.shards.read().iter().enumerate() {
        if g.turned_at.is_none_or(|t| now.duration_since(t) > STUCK) {
            problems.push(format!("shard {i} has not turned for more than {} s", STUCK.as_secs()));
        }
        if g.congested {
            problems.push(format!("shard {i} refuses new calls: the hook queue is nearly full"));
        }
    }
    match problems.is_empty() {
        true => (StatusCode::OK, "ready\n".to_string()).into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response(),
    }
}

/// `/v1` takes the bearer token; without one configured, loopback clients only.
async fn authorize(
    State(api): State<Arc<Api>>,
    Extension(Client(peer)): Extension<Client>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = match &api.token {
        Some(token) => {
            let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|g| same(g.as_bytes(), token.as_bytes()))
        }
        None => peer.ip().is_loopback(),
    };
    match allowed {
        true => next.run(req).await,
        false if api.token.is_some() => (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response(),
        false => (StatusCode::FORBIDDEN, "/v1 answers loopback clients only without --api-token\n").into_response(),
    }
}

/// Compares without stopping at the first difference (the time taken says nothing).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
