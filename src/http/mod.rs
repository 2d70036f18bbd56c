//! The HTTP face of the service: `/metrics` for Prometheus, `/healthz`,
//! `/readyz`, the JSON API (`/api/kpis`, `/api/status`) and the live page
//! at `/`; an optional bearer token guards `/api/*` and, when asked,
//! `/metrics`.

mod access;
mod server;

pub use access::{Access, ENV_HTTP_TOKEN, MIN_TOKEN_LEN};
pub use server::{AppState, LiveStatus, ModelStatus, router, serve};
