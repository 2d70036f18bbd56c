//! The HTTP face of the service: `/metrics` for Prometheus, `/healthz`,
//! `/readyz`, the JSON API (`/api/kpis`, `/api/status`) and the live page
//! at `/`.

mod server;

pub use server::{AppState, LiveStatus, ModelStatus, router, serve};
