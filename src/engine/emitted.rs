//! What the engine produced since its outputs were last taken: KPI rows
//! per pipeline and alerts, for the driver to send to its sinks.

use crate::alert::Alert;
use crate::pipeline::KpiRow;

/// Outputs waiting for the sinks.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Rows per pipeline index, in emission order.
    pub kpis: Vec<(usize, Vec<KpiRow>)>,
    pub alerts: Vec<Alert>,
    /// Audit records of erasures applied.
    pub erasures: Vec<super::ErasureAudit>,
    /// The closed frontier of the latest pipeline run.
    pub frontier: Option<i64>,
    /// Scale-out: encoded partials per partials partition, in order.
    pub partials: Vec<(u32, Vec<u8>)>,
}

impl Emitted {
    pub fn is_empty(&self) -> bool {
        self.kpis.is_empty()
            && self.alerts.is_empty()
            && self.erasures.is_empty()
            && self.partials.is_empty()
    }

    /// KPI rows held.
    pub fn rows(&self) -> usize {
        self.kpis.iter().map(|(_, r)| r.len()).sum()
    }
}
