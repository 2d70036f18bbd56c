//! The `traders` table: a snapshot of per-trader state as Arrow, captured
//! at each boundary of a snapshot pipeline's interval, and only when a
//! pipeline reads it.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, StringViewBuilder, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
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
        Field::new("channel", DataType::Utf8View, false),
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
        Field::new("segment", DataType::Utf8View, false),
        Field::new("as_of", DataType::Int64, false),
    ]))
}

/// The state of every trader of `shard` as of `as_of` (state holds the
/// events applied so far: those before `as_of`).
///
/// Columns are written as plain vectors and wrapped once: a capture runs
/// daily over every trader, and per-value builder appends (with their
/// null bookkeeping) were as costly as the snapshot queries themselves.
#[expect(
    clippy::expect_used,
    reason = "columns built in schema order from the same constant schema, a constant decimal type"
)]
pub fn traders_batch(traders: &Traders, symbols: &Interner, as_of: i64, shard: u32) -> RecordBatch {
    let n = traders.rows.shard(shard).len();
    let mut id: Vec<u32> = Vec::with_capacity(n);
    let mut times: [Vec<i64>; 8] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut channel = StringViewBuilder::with_capacity(n);
    let mut segment = StringViewBuilder::with_capacity(n);
    let mut count: Vec<i64> = Vec::with_capacity(n);
    let mut trades: Vec<i64> = Vec::with_capacity(n);
    let mut sum: Vec<i128> = Vec::with_capacity(n);
    // Traders interned but with no event applied yet (still waiting for
    // the frontier) are not in the snapshot.
    for (tid, s) in traders
        .iter_shard(shard)
        .filter(|(_, s)| s.last_event_ts() != NEVER)
    {
        id.push(tid);
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
        for (v, t) in times.iter_mut().zip(ts) {
            v.push(t);
        }
        channel.append_value(if s.channel == u32::MAX {
            "unknown"
        } else {
            symbols.name(s.channel)
        });
        count.push(i64::from(s.deposit_count));
        trades.push(i64::from(s.trade_count));
        sum.push(i128::from(s.deposit_total.0));
        segment.append_value(traders.segment(s).as_str());
    }
    let rows = id.len();
    // `NEVER` reads as null; the value under a null slot is not looked at.
    let [
        signup,
        first,
        second,
        trade,
        deposit,
        login,
        activity,
        event,
    ] = times.map(|v| {
        let known = BooleanBuffer::collect_bool(v.len(), |i| v[i] != NEVER);
        let nulls = NullBuffer::new(known);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Arc::new(Int64Array::new(v.into(), nulls)) as ArrayRef
    });
    let sum = Decimal128Array::new(sum.into(), None)
        .with_precision_and_scale(SUM_PRECISION, Money::DECIMALS)
        .expect("valid decimal type");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::new(id.into(), None)),
        signup,
        Arc::new(channel.finish()),
        first,
        second,
        Arc::new(Int64Array::new(count.into(), None)),
        Arc::new(sum),
        Arc::new(Int64Array::new(trades.into(), None)),
        trade,
        deposit,
        login,
        activity,
        event,
        Arc::new(segment.finish()),
        Arc::new(Int64Array::from_value(as_of, rows)),
    ];
    RecordBatch::try_new(traders_schema(), columns).expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Decimal128Type, Int64Type, UInt32Type};

    use super::*;

    /// Times never set read as null, every column has the schema's type,
    /// and a trader with no event applied yet is left out.
    #[test]
    fn a_snapshot_holds_each_trader_with_an_event_and_nulls_for_never() {
        let mut symbols = Interner::new();
        let organic = symbols.intern("organic");
        let mut traders = Traders::default();
        let a = traders.rows.get_mut(0);
        a.signup_ts = 1_000;
        a.channel = organic;
        a.behaviour.decay_ts = 1_000;
        // Interned, nothing applied: not in the snapshot.
        traders.rows.get_mut(1);
        let c = traders.rows.get_mut(2);
        c.first_deposit_ts = 5_000;
        c.last_deposit_ts = 5_000;
        c.deposit_count = 1;
        c.deposit_total = Money(12_500_000);
        c.behaviour.decay_ts = 5_000;

        let b = traders_batch(&traders, &symbols, 86_400_000, 0);
        assert_eq!(b.schema(), traders_schema());
        assert_eq!(b.num_rows(), 2);
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let ids: Vec<u32> = col("trader").as_primitive::<UInt32Type>().values().to_vec();
        assert_eq!(ids, vec![0, 2]);
        let signup = col("signup_ts");
        let signup = signup.as_primitive::<Int64Type>();
        assert_eq!((signup.is_valid(0), signup.value(0)), (true, 1_000));
        assert!(signup.is_null(1));
        let activity = col("last_activity_ts");
        let activity = activity.as_primitive::<Int64Type>();
        assert!(activity.is_null(0));
        assert_eq!(activity.value(1), 5_000);
        // A column with nothing missing carries no null buffer at all.
        assert!(col("last_event_ts").nulls().is_none());
        let channel = col("channel");
        let channel = channel.as_string_view();
        assert_eq!((channel.value(0), channel.value(1)), ("organic", "unknown"));
        let sum = col("deposit_sum");
        assert_eq!(sum.as_primitive::<Decimal128Type>().value(1), 12_500_000);
        let as_of = col("as_of");
        assert!(
            as_of
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .all(|&t| t == 86_400_000)
        );
        let segment = col("segment");
        let segment = segment.as_string_view();
        assert_eq!(segment.value(0), "new");
        let with_deposit = traders.get(2).unwrap();
        assert_eq!(segment.value(1), traders.segment(with_deposit).as_str());
    }
}
