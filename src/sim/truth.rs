//! Ground truth of a simulation, for tests and model evaluation.

use serde::Serialize;

use super::catalog::CAMPAIGNS;
use super::simulator::Simulator;
use super::trader::AmlPattern;
use crate::event::time::format_rfc3339_ms;

/// What really happened to one trader.
#[derive(Debug, Clone, Serialize)]
pub struct TraderTruth {
    pub trader_id: String,
    /// True segment (low_volume, moderate, vip).
    pub segment: &'static str,
    pub signup_at: String,
    /// First churn, when it happened.
    pub churned_at: Option<String>,
    /// First comeback after that churn.
    pub reactivated_at: Option<String>,
    /// AML pattern followed: none, flip or structuring.
    pub aml: &'static str,
}

/// True conversion rate of one campaign variant.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignTruth {
    pub campaign_id: &'static str,
    pub variant: &'static str,
    pub control: bool,
    /// P(converted | sent).
    pub true_conversion: f64,
    /// Relative lift over the control variant.
    pub lift: f64,
}

/// The ground truth file written by `pulse simulate --truth`.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    pub seed: u64,
    pub traders: Vec<TraderTruth>,
    pub campaigns: Vec<CampaignTruth>,
}

impl Truth {
    pub(crate) fn from_simulator(sim: &Simulator) -> Self {
        let traders = sim
            .traders
            .iter()
            .enumerate()
            .map(|(i, t)| TraderTruth {
                trader_id: sim.trader_id(i as u32).to_owned(),
                segment: t.segment.as_str(),
                signup_at: format_rfc3339_ms(t.signup_ts),
                churned_at: t.churned_at.map(format_rfc3339_ms),
                reactivated_at: t.reactivated_at.map(format_rfc3339_ms),
                aml: match t.aml {
                    AmlPattern::None => "none",
                    AmlPattern::Flip => "flip",
                    AmlPattern::Structuring => "structuring",
                },
            })
            .collect();
        let campaigns = CAMPAIGNS
            .iter()
            .flat_map(|(campaign_id, _, variants)| {
                let control = variants[0].1;
                variants
                    .iter()
                    .enumerate()
                    .map(move |(i, (variant, p))| CampaignTruth {
                        campaign_id,
                        variant,
                        control: i == 0,
                        true_conversion: *p,
                        lift: p / control - 1.0,
                    })
            })
            .collect();
        Self {
            seed: sim.config.seed,
            traders,
            campaigns,
        }
    }
}
