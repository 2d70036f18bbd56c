//! Routes and the server loop (axum).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use super::access::{Access, require_token};
use crate::alert::{RECENT_ALERTS, RecentAlerts};
use crate::metrics::Metrics;
use crate::pipeline::{KpiBoard, SharedBoard, Summary};

/// What the pipeline thread reports for `/api/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    pub source: &'static str,
    pub events: Option<Summary>,
    pub events_per_s: f64,
    pub traders: usize,
    pub state_bytes: usize,
    /// Overall watermark (RFC 3339).
    pub watermark: Option<String>,
    pub watermark_lag_s: Option<f64>,
    pub dead_letters: u64,
    /// The churn model in use.
    pub model: Option<ModelStatus>,
    /// Traders per churn-risk band.
    pub churn_bands: Option<std::collections::BTreeMap<&'static str, i64>>,
    /// Alerts sent since the start.
    pub alerts_sent: u64,
    /// Scale-out: the pipelines exported here and who exports the rest.
    pub exports: Option<crate::pipeline::Exports>,
}

/// The churn model as `/api/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub version: String,
    pub estimator: String,
    pub loaded_at: String,
}

/// What the handlers read; shared with the pipeline thread.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Mutex<Metrics>>,
    /// Set once the pipeline consumes events.
    pub ready: Arc<AtomicBool>,
    pub board: SharedBoard,
    pub status: Arc<Mutex<LiveStatus>>,
    /// The latest alerts emitted (newest last), for `/api/alerts`.
    pub alerts: RecentAlerts,
    /// Who may read `/api/*` and `/metrics`.
    pub access: Access,
    started: Instant,
}

/// Query of `/api/alerts`.
#[derive(Debug, serde::Deserialize)]
struct AlertsQuery {
    limit: Option<usize>,
}

impl AppState {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics: Arc::new(Mutex::new(metrics)),
            ready: Arc::new(AtomicBool::new(false)),
            board: Arc::new(Mutex::new(KpiBoard::default())),
            status: Arc::new(Mutex::new(LiveStatus::default())),
            alerts: Arc::new(Mutex::new(VecDeque::new())),
            access: Access::open(),
            started: Instant::now(),
        }
    }

    /// The same state behind `access`.
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }
}

/// The live page, embedded so the binary needs no files beside it.
const PAGE: &str = include_str!("page/index.html");

/// The routes of the service; `/api/*` (and `/metrics` when asked) behind
/// the bearer token of [`Access`], when one is set.
pub fn router(state: AppState) -> Router {
    let access = state.access.clone();
    let guard = || axum::middleware::from_fn_with_state(access.clone(), require_token);
    let api = Router::new()
        .route("/api/kpis", get(kpis))
        .route("/api/status", get(status))
        .route("/api/alerts", get(alerts))
        .route_layer(guard());
    let mut scrape = Router::new().route("/metrics", get(metrics));
    if access.metrics {
        scrape = scrape.route_layer(guard());
    }
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(scrape)
        .with_state(state)
}

fn lock<T: Clone>(m: &Mutex<T>) -> T {
    match m.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = match state.metrics.lock() {
        Ok(m) => m.render(),
        Err(poisoned) => poisoned.into_inner().render(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn kpis(State(state): State<AppState>) -> Json<KpiBoard> {
    Json(lock(&state.board))
}

async fn alerts(State(state): State<AppState>, Query(q): Query<AlertsQuery>) -> impl IntoResponse {
    let all = lock(&state.alerts);
    let limit = q.limit.unwrap_or(50).min(RECENT_ALERTS);
    // Each alert is JSON text already: the body is written around them.
    let mut body = String::from(r#"{"alerts":["#);
    for (i, a) in all.iter().rev().take(limit).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&a.json);
    }
    body.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let s = lock(&state.status);
    let events = s.events.clone();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "source": s.source,
        "events": events,
        "events_per_s": s.events_per_s,
        "traders": s.traders,
        "state_bytes": s.state_bytes,
        "watermark": s.watermark,
        "watermark_lag_s": s.watermark_lag_s,
        "dead_letters": s.dead_letters,
        "model": s.model,
        "churn_bands": s.churn_bands,
        "alerts_total": s.alerts_sent,
        "exports": s.exports,
    }))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
