//! LGPD erasure: a request names a trader; the shard that holds the
//! trader forgets everything it keeps about them (state, features, rule
//! memory, score, events still waiting for the frontier, the name itself)
//! and says so in an audit record. The next checkpoint writes a tombstone
//! for the trader, so the compacted changelog no longer holds them.
//!
//! A request is applied when it is read. What stays: KPI rows and alerts
//! already sent, and the trader's events inside windows still open, which
//! keep counting in those windows under a number that no longer maps to
//! any name.

use serde::{Deserialize, Serialize};

use super::{Engine, Processed};
use crate::event::{Invalid, Reason, trader_id};

/// One request, as `pulse forget` writes it to the erasure topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// Always `"erasure"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub trader_id: String,
    /// Names the request in the audit records of every partition.
    pub request_id: String,
    /// When it was asked for (RFC 3339), as the requester says.
    #[serde(default)]
    pub requested_at: Option<String>,
}

impl ErasureRequest {
    pub fn new(trader_id: &str, request_id: &str, requested_at: &str) -> Self {
        Self {
            kind: "erasure".into(),
            trader_id: trader_id.into(),
            request_id: request_id.into(),
            requested_at: Some(requested_at.into()),
        }
    }

    /// A request from the bytes of a message, or why it is not one.
    pub fn parse(bytes: &[u8]) -> Result<Self, Invalid> {
        let r: Self = serde_json::from_slice(bytes).map_err(|e| {
            Invalid::new(
                Reason::NotJson,
                None,
                format!(
                    "not an erasure request ({e}); expected {{\"type\":\"erasure\",\"trader_id\":\"...\",\"request_id\":\"...\"}}"
                ),
            )
        })?;
        if r.kind != "erasure" {
            return Err(Invalid::new(
                Reason::UnknownType,
                Some("type"),
                format!(
                    "{:?} on the erasure topic; only \"erasure\" is accepted",
                    r.kind
                ),
            ));
        }
        if r.trader_id.is_empty() {
            return Err(Invalid::new(
                Reason::MissingField,
                Some("trader_id"),
                "an erasure request names the trader to erase",
            ));
        }
        Ok(r)
    }
}

/// The audit record of one request on one shard (`type` = `erasure`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureAudit {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub request_id: String,
    pub trader_id: String,
    pub requested_at: Option<String>,
    /// The shard (input partition) that handled it.
    pub partition: u32,
    /// Whether this shard held anything of the trader.
    pub found: bool,
    /// Events of the trader that were waiting for the frontier, dropped.
    pub events_dropped: usize,
}

impl Engine {
    /// Applies the erasure request in `bytes`, read on an erasure input of
    /// `shard`.
    pub(super) fn erase_request(&mut self, bytes: &[u8], shard: u32) -> Processed {
        let request = match ErasureRequest::parse(bytes) {
            Ok(r) => r,
            Err(invalid) => return Processed::Invalid(invalid),
        };
        if self.shards.get(shard as usize).is_none_or(Option::is_none) {
            // A partition of the erasure topic with no input partition of
            // its number: no state here to erase from.
            return Processed::Valid;
        }
        let dropped = self.forget_trader(shard, &request.trader_id);
        self.out.erasures.push(ErasureAudit {
            kind: "erasure",
            request_id: request.request_id,
            trader_id: request.trader_id,
            requested_at: request.requested_at,
            partition: shard,
            found: dropped.is_some(),
            events_dropped: dropped.unwrap_or(0),
        });
        Processed::Valid
    }

    /// Forgets everything `shard` keeps of trader `name`; `None` when it
    /// holds nothing of them, else how many waiting events were dropped.
    pub fn forget_trader(&mut self, shard: u32, name: &str) -> Option<usize> {
        let local = self.ingest.decoder.traders.shard(shard)?.get(name)?;
        let id = trader_id(shard, local);
        self.traders.rows.reset(id);
        self.risk.forget(id);
        let sh = self.shard_mut(shard);
        let dropped = sh.pending.purge(|e| e.trader == id);
        sh.erased.push(local);
        self.ingest.decoder.traders.vacate(shard, local);
        Some(dropped)
    }
}
