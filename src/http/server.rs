//! Routes and the server loop (axum).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What the handlers read; shared with the pipeline thread.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Mutex<Metrics>>,
    /// Set once the pipeline consumes events.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics: Arc::new(Mutex::new(metrics)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The routes of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
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
