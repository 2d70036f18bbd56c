//! The HTTP face of the service: `/metrics` for Prometheus, `/healthz`,
//! `/readyz`.

mod server;

pub use server::{AppState, router, serve};
