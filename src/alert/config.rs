//! The `[alerts]` section of `pulse.toml`: every rule with its defaults.
//! Durations are text (`90m`, `2h`, `7d`); [`AlertsSection::resolve`]
//! checks them all and reports every problem at once.

use serde::Deserialize;

use crate::event::time::{DAY_MS, parse_duration_ms};

/// Alert rules.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Time-based rules (inactivity, activation, recovery, VIP drop) and
    /// churn re-scoring of changed traders run each time event time
    /// advances this much.
    pub tick: String,
    /// Traders whose features changed are scored this often (event time;
    /// a multiple of `tick`): churn moves over days, so scoring an active
    /// trader every few hours loses nothing and saves most of the cost.
    pub score_changed_every: String,
    /// Every scored trader is re-scored this often (event time), so a
    /// trader who goes quiet gets riskier without any new event.
    pub rescore_every: String,
    /// Alert ids remembered to drop repeats (after a restart or rebalance).
    pub dedup_ids: usize,
    pub churn_risk: ChurnRiskRule,
    pub inactivity: InactivityRule,
    pub activation: ActivationRule,
    pub deposit_recovery: RecoveryRule,
    pub vip_drop: VipDropRule,
    pub security: SecurityRule,
    pub aml: AmlRule,
    /// KPI drop rules; the defaults watch approved deposit volume, FTDs
    /// and the 7-day FTD rate per channel.
    pub kpi_drop: Vec<KpiDropRule>,
}

/// `churn_risk`: a trader enters the high or critical band.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnRiskRule {
    pub enabled: bool,
    /// Re-armed only once the score falls this far below the high band.
    pub hysteresis: f64,
    /// No second churn_risk alert for a trader within this time.
    pub cooldown: String,
}

/// `inactivity`: tiers of days past the trader's usual gap between active days.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InactivityRule {
    pub enabled: bool,
    /// Tier k fires when idle ≥ usual gap + spread_factor × gap spread + k days.
    pub tiers_days: Vec<u32>,
    pub spread_factor: f64,
}

/// `activation`: signups with no approved deposit yet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActivationRule {
    pub enabled: bool,
    /// When the D+0 contact goes out after signup.
    pub d0_after: String,
}

/// `deposit_recovery`: failed or pending deposits with no approved one since.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryRule {
    pub enabled: bool,
    pub steps_days: Vec<u32>,
}

/// `vip_drop`: a VIP's trade frequency falls below a share of its own baseline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VipDropRule {
    pub enabled: bool,
    /// Fires when the 7-day trade rate < share × the 90-day rate.
    pub share: f64,
    /// Re-armed when the 7-day rate is back above this share.
    pub rearm_share: f64,
    /// Only VIPs trading at least this many times a week on their baseline.
    pub min_trades_per_week: f64,
    pub cooldown: String,
}

/// `security`: failed-login bursts, logins from a new country or device.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityRule {
    pub enabled: bool,
    /// Failed logins within `burst_window` that make a burst (at most 8).
    pub burst_failures: u32,
    pub burst_window: String,
    pub new_country: bool,
    pub new_device: bool,
}

/// `aml`: deposit then withdrawal without trading; structuring.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AmlRule {
    pub enabled: bool,
    /// A withdrawal of at least this share of the last approved deposit...
    pub flip_share: f64,
    /// ...within this time of it, with no trade in between.
    pub flip_within: String,
    /// The reporting threshold deposits stay just under.
    pub threshold: f64,
    /// "Just under": at least this share of the threshold.
    pub near_share: f64,
    /// Deposits just under the threshold in one UTC day that fire.
    pub structuring_count: u32,
}

/// How a KPI value is reduced to one number per period.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KpiAgg {
    /// Sum of the period's windows (counters, volumes).
    Sum,
    /// The period's latest window (rates, gauges).
    Last,
}

/// `kpi_drop`: a KPI's latest period far below its trailing baseline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KpiDropRule {
    /// Pipeline name (file stem).
    pub pipeline: String,
    /// Value column.
    pub value: String,
    /// Only rows whose labels have these values.
    #[serde(default)]
    pub r#where: std::collections::BTreeMap<String, String>,
    /// One baseline per value of this label (e.g. channel); one overall when unset.
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default = "KpiDropRule::default_agg")]
    pub agg: KpiAgg,
    /// Length of a period.
    #[serde(default = "KpiDropRule::default_period")]
    pub period: String,
    /// Periods in the trailing baseline (their mean).
    #[serde(default = "KpiDropRule::default_baseline_periods")]
    pub baseline_periods: usize,
    /// Fires when latest < (1 − drop) × baseline.
    #[serde(default = "KpiDropRule::default_drop")]
    pub drop: f64,
    /// No alert while the baseline is below this (too little to judge).
    #[serde(default)]
    pub min_baseline: f64,
    /// A value column giving the size behind the KPI (e.g. `cohort_7d`
    /// for a rate); periods where it is below `min_weight` are skipped
    /// (neither judged nor part of a baseline).
    #[serde(default)]
    pub weight: Option<String>,
    #[serde(default)]
    pub min_weight: f64,
}

impl KpiDropRule {
    fn default_agg() -> KpiAgg {
        KpiAgg::Sum
    }
    fn default_period() -> String {
        "1d".into()
    }
    fn default_baseline_periods() -> usize {
        7
    }
    fn default_drop() -> f64 {
        0.5
    }
}

impl Default for AlertsSection {
    fn default() -> Self {
        let rule = |pipeline: &str, value: &str| KpiDropRule {
            pipeline: pipeline.into(),
            value: value.into(),
            r#where: Default::default(),
            by: None,
            agg: KpiAgg::Sum,
            period: KpiDropRule::default_period(),
            baseline_periods: KpiDropRule::default_baseline_periods(),
            drop: KpiDropRule::default_drop(),
            min_baseline: 0.0,
            weight: None,
            min_weight: 0.0,
        };
        let mut deposits = rule("deposits", "amount_total");
        deposits.r#where.insert("status".into(), "approved".into());
        deposits.min_baseline = 100_000.0;
        let mut ftds = rule("first_deposits", "count_total");
        ftds.min_baseline = 20.0;
        let mut ftd_rate = rule("funnel", "ftd_rate_7d");
        ftd_rate.by = Some("channel".into());
        ftd_rate.agg = KpiAgg::Last;
        ftd_rate.min_baseline = 0.05;
        ftd_rate.weight = Some("cohort_7d".into());
        ftd_rate.min_weight = 100.0;
        Self {
            tick: "1h".into(),
            score_changed_every: "6h".into(),
            rescore_every: "1d".into(),
            dedup_ids: 200_000,
            churn_risk: ChurnRiskRule {
                enabled: true,
                hysteresis: 0.1,
                cooldown: "30d".into(),
            },
            inactivity: InactivityRule {
                enabled: true,
                tiers_days: vec![1, 3, 7, 14, 30],
                spread_factor: 2.0,
            },
            activation: ActivationRule {
                enabled: true,
                d0_after: "2h".into(),
            },
            deposit_recovery: RecoveryRule {
                enabled: true,
                steps_days: vec![1, 3, 7],
            },
            vip_drop: VipDropRule {
                enabled: true,
                share: 0.4,
                rearm_share: 0.7,
                min_trades_per_week: 5.0,
                cooldown: "14d".into(),
            },
            security: SecurityRule {
                enabled: true,
                burst_failures: 5,
                burst_window: "10m".into(),
                new_country: true,
                new_device: true,
            },
            aml: AmlRule {
                enabled: true,
                flip_share: 0.8,
                flip_within: "48h".into(),
                threshold: 10_000.0,
                near_share: 0.9,
                structuring_count: 3,
            },
            kpi_drop: vec![deposits, ftds, ftd_rate],
        }
    }
}

macro_rules! section_default {
    ($($t:ident => $field:ident),+) => {$(
        impl Default for $t {
            fn default() -> Self {
                AlertsSection::default().$field
            }
        }
    )+};
}
section_default!(
    ChurnRiskRule => churn_risk,
    InactivityRule => inactivity,
    ActivationRule => activation,
    RecoveryRule => deposit_recovery,
    VipDropRule => vip_drop,
    SecurityRule => security,
    AmlRule => aml
);

/// The rules with durations in ms, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    pub section: AlertsSection,
    pub tick_ms: i64,
    pub score_changed_ms: i64,
    pub rescore_ms: i64,
    pub churn_cooldown_ms: i64,
    pub activation_d0_ms: i64,
    pub vip_cooldown_ms: i64,
    pub burst_window_ms: i64,
    pub flip_within_ms: i64,
    /// Per KPI rule, its period.
    pub kpi_period_ms: Vec<i64>,
}

impl Default for AlertRules {
    #[expect(
        clippy::expect_used,
        reason = "the built-in defaults, resolved by every test that builds rules"
    )]
    fn default() -> Self {
        AlertsSection::default()
            .resolve()
            .expect("the defaults are valid")
    }
}

impl AlertsSection {
    /// Every rule switched off (benchmarks of the KPI path alone).
    pub fn disabled() -> Self {
        let mut s = Self::default();
        s.churn_risk.enabled = false;
        s.inactivity.enabled = false;
        s.activation.enabled = false;
        s.deposit_recovery.enabled = false;
        s.vip_drop.enabled = false;
        s.security.enabled = false;
        s.aml.enabled = false;
        s.kpi_drop.clear();
        s
    }

    /// Checks every setting; the rules ready to run, or every problem.
    pub fn resolve(&self) -> Result<AlertRules, Vec<String>> {
        let mut problems = Vec::new();
        let mut d = |name: &str, v: &str| match parse_duration_ms(v) {
            Ok(ms) if ms > 0 => ms,
            Ok(_) => {
                problems.push(format!("alerts.{name}: {v:?} must be longer than zero"));
                DAY_MS
            }
            Err(e) => {
                problems.push(format!("alerts.{name}: {e}"));
                DAY_MS
            }
        };
        let tick_ms = d("tick", &self.tick);
        let score_changed_ms = d("score_changed_every", &self.score_changed_every);
        let rescore_ms = d("rescore_every", &self.rescore_every);
        let churn_cooldown_ms = d("churn_risk.cooldown", &self.churn_risk.cooldown);
        let activation_d0_ms = d("activation.d0_after", &self.activation.d0_after);
        let vip_cooldown_ms = d("vip_drop.cooldown", &self.vip_drop.cooldown);
        let burst_window_ms = d("security.burst_window", &self.security.burst_window);
        let flip_within_ms = d("aml.flip_within", &self.aml.flip_within);
        let kpi_period_ms: Vec<i64> = self
            .kpi_drop
            .iter()
            .enumerate()
            .map(|(i, r)| d(&format!("kpi_drop[{i}].period"), &r.period))
            .collect();
        let share = |name: &str, v: f64, problems: &mut Vec<String>| {
            if !(0.0..=1.0).contains(&v) {
                problems.push(format!("alerts.{name}: {v} is not a share between 0 and 1"));
            }
        };
        share(
            "churn_risk.hysteresis",
            self.churn_risk.hysteresis,
            &mut problems,
        );
        share("vip_drop.share", self.vip_drop.share, &mut problems);
        share(
            "vip_drop.rearm_share",
            self.vip_drop.rearm_share,
            &mut problems,
        );
        share("aml.flip_share", self.aml.flip_share, &mut problems);
        share("aml.near_share", self.aml.near_share, &mut problems);
        if self.vip_drop.rearm_share < self.vip_drop.share {
            problems.push("alerts.vip_drop.rearm_share: must be at least vip_drop.share".into());
        }
        if !(2..=8).contains(&self.security.burst_failures) {
            problems.push(format!(
                "alerts.security.burst_failures: {} is not between 2 and 8",
                self.security.burst_failures
            ));
        }
        if self.aml.structuring_count < 2 {
            problems.push("alerts.aml.structuring_count: must be at least 2".into());
        }
        if self.inactivity.tiers_days.len() > 8 || self.deposit_recovery.steps_days.len() > 8 {
            problems.push("alerts: at most 8 inactivity tiers and 8 recovery steps".into());
        }
        for (i, r) in self.kpi_drop.iter().enumerate() {
            share(&format!("kpi_drop[{i}].drop"), r.drop, &mut problems);
            if r.baseline_periods == 0 {
                problems.push(format!(
                    "alerts.kpi_drop[{i}].baseline_periods: must be at least 1"
                ));
            }
        }
        if problems.is_empty() {
            Ok(AlertRules {
                section: self.clone(),
                tick_ms,
                score_changed_ms,
                rescore_ms,
                churn_cooldown_ms,
                activation_d0_ms,
                vip_cooldown_ms,
                burst_window_ms,
                flip_within_ms,
                kpi_period_ms,
            })
        } else {
            Err(problems)
        }
    }
}
