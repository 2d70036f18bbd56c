//! A deterministic synthetic brokerage: traders who sign up through channels
//! and campaigns, deposit (or never do), trade with heavy-tailed tickets and
//! losing streaks, withdraw, log in (sometimes suspiciously), answer A/B
//! campaigns, and churn for hidden causes, some coming back after a win-back.
//!
//! Same seed and settings, same bytes: one seeded RNG drives a day-by-day
//! simulation over traders in a fixed order.

mod catalog;
mod config;
mod day;
mod json;
mod simulator;
mod trader;
mod truth;

pub use config::SimConfig;
pub use simulator::{SimBody, SimEvent, Simulator};
pub use truth::{CampaignTruth, TraderTruth, Truth};
