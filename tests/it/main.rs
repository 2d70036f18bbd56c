//! Integration tests: one binary (cheap to link), one module per area. They
//! run the real `pulse` binary as users do.

mod alerts;
mod common;
mod dashboards;
mod demo;
mod durable;
mod erasure;
mod hostile;
mod kafka;
mod kpis;
mod model;
mod replay;
mod security;
mod simulate;
