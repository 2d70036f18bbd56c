//! The `traders` table: a snapshot of per-trader state as Arrow, built at
//! most once per emission cycle and only when a pipeline reads it.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, StringBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::state::{NEVER, Traders};
use crate::event::{Interner, Money};

/// Precision of exact sums of amounts (`traders.deposit_sum`).
pub const SUM_PRECISION: u8 = 28;

/// Schema of the `traders` table. Times are epoch ms, null when never.
pub fn traders_schema() -> SchemaRef {
    let t = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("trader", DataType::UInt32, false),
        t("signup_ts"),
        Field::new("channel", DataType::Utf8, false),
        t("first_deposit_ts"),
        t("second_deposit_ts"),
        Field::new("deposit_count", DataType::Int64, false),
        Field::new(
            "deposit_sum",
            DataType::Decimal128(SUM_PRECISION, Money::DECIMALS),
            false,
        ),
        Field::new("trade_count", DataType::Int64, false),
        t("last_trade_ts"),
        t("last_deposit_ts"),
        t("last_login_ts"),
        t("last_activity_ts"),
        t("last_event_ts"),
        Field::new("segment", DataType::Utf8, false),
        Field::new("as_of", DataType::Int64, false),
    ]))
}

/// The state of every trader of `shard` as of `as_of` (state holds the
/// events applied so far: those before `as_of`).
#[expect(
    clippy::expect_used,
    reason = "columns built in schema order from the same constant schema"
)]
pub fn traders_batch(traders: &Traders, symbols: &Interner, as_of: i64, shard: u32) -> RecordBatch {
    let n = traders.rows.shard(shard).len();
    let mut id = UInt32Builder::with_capacity(n);
    let mut times: Vec<Int64Builder> = (0..8).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut channel = StringBuilder::with_capacity(n, n * 8);
    let mut segment = StringBuilder::with_capacity(n, n * 8);
    let mut count = Int64Builder::with_capacity(n);
    let mut trades = Int64Builder::with_capacity(n);
    #[expect(
        clippy::expect_used,
        reason = "a constant precision and scale within Decimal128's limits"
    )]
    let mut sum = Decimal128Builder::with_capacity(n)
        .with_precision_and_scale(SUM_PRECISION, Money::DECIMALS)
        .expect("valid decimal type");
    let mut as_of_col = Int64Builder::with_capacity(n);
    let opt = |t: i64| (t != NEVER).then_some(t);
    // Traders interned but with no event applied yet (still waiting for
    // the frontier) are not in the snapshot.
    for (tid, s) in traders
        .iter_shard(shard)
        .filter(|(_, s)| s.last_event_ts() != NEVER)
    {
        id.append_value(tid);
        let ts = [
            s.signup_ts,
            s.first_deposit_ts,
            s.second_deposit_ts,
            s.last_trade_ts,
            s.last_deposit_ts,
            s.last_login_ts,
            s.last_activity_ts(),
            s.last_event_ts(),
        ];
        for (b, t) in times.iter_mut().zip(ts) {
            b.append_option(opt(t));
        }
        channel.append_value(if s.channel == u32::MAX {
            "unknown"
        } else {
            symbols.name(s.channel)
        });
        count.append_value(i64::from(s.deposit_count));
        trades.append_value(i64::from(s.trade_count));
        sum.append_value(i128::from(s.deposit_total.0));
        segment.append_value(traders.segment(s).as_str());
        as_of_col.append_value(as_of);
    }
    let mut t: Vec<ArrayRef> = times
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        t.remove(0), // signup_ts
        Arc::new(channel.finish()),
        t.remove(0), // first_deposit_ts
        t.remove(0), // second_deposit_ts
        Arc::new(count.finish()),
        Arc::new(sum.finish()),
        Arc::new(trades.finish()),
        t.remove(0), // last_trade_ts
        t.remove(0), // last_deposit_ts
        t.remove(0), // last_login_ts
        t.remove(0), // last_activity_ts
        t.remove(0), // last_event_ts
        Arc::new(segment.finish()),
        Arc::new(as_of_col.finish()),
    ];
    RecordBatch::try_new(traders_schema(), columns).expect("columns match the schema")
}
