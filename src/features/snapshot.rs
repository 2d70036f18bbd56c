//! The `traders` table: a snapshot of per-trader state as Arrow, captured
//! at each boundary of a snapshot pipeline's interval, and only when a
//! pipeline reads it.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, StringViewArray, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::segment::Segment;
use super::state::{NEVER, Traders};
use crate::event::{Interner, Money, Sym};
use crate::pipeline::{Columns, columns};

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
    // Channels and segments are a few names each: each row keeps the
    // place of its name, and the column is a gather of 16-byte views from
    // a small array of the names (a builder laid out and checked every
    // value: half of a capture's time).
    let mut channel: Vec<u32> = Vec::with_capacity(n);
    let mut channels = Names::new(symbols);
    let mut segment: Vec<u32> = Vec::with_capacity(n);
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
        channel.push(channels.place(s.channel));
        count.push(i64::from(s.deposit_count));
        trades.push(i64::from(s.trade_count));
        sum.push(i128::from(s.deposit_total.0));
        segment.push(traders.segment(s).index() as u32);
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
        gather(channels.names, channel),
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
        gather(Segment::NAMES.to_vec(), segment),
        Arc::new(Int64Array::from_value(as_of, rows)),
    ];
    RecordBatch::try_new(traders_schema(), columns).expect("columns match the schema")
}

/// The distinct channel names of a capture, in the order first met.
struct Names<'a> {
    symbols: &'a Interner,
    names: Vec<&'a str>,
    /// Per symbol id (the last: no channel), its place in `names`.
    place: Vec<u32>,
}

impl<'a> Names<'a> {
    const UNSEEN: u32 = u32::MAX;

    fn new(symbols: &'a Interner) -> Self {
        Self {
            symbols,
            names: Vec::new(),
            place: vec![Self::UNSEEN; symbols.len() + 1],
        }
    }

    /// The place of channel `sym` (`u32::MAX`: the signup was not seen,
    /// "unknown").
    fn place(&mut self, sym: Sym) -> u32 {
        let unknown = self.place.len() - 1;
        let i = if sym == u32::MAX {
            unknown
        } else {
            (sym as usize).min(unknown)
        };
        match self.place[i] {
            Self::UNSEEN => {
                let p = self.names.len() as u32;
                self.names.push(if i == unknown {
                    "unknown"
                } else {
                    self.symbols.name(sym)
                });
                self.place[i] = p;
                p
            }
            p => p,
        }
    }
}

/// A string column of `places` in `names`.
#[expect(
    clippy::expect_used,
    reason = "every place was handed out for an entry of names"
)]
fn gather(names: Vec<&str>, places: Vec<u32>) -> ArrayRef {
    let names = StringViewArray::from_iter_values(names);
    take(&names, &UInt32Array::new(places.into(), None), None).expect("places within the names")
}

/// Index of `as_of` in [`traders_schema`]: the capture's own time, the
/// same in every row.
const AS_OF: usize = 14;

/// A capture as it travels to a scale-out merge: only the columns its
/// pipelines read, without `as_of` (put back by [`expand_capture`]), and
/// always with `trader` (so the rows are there even when a query reads
/// no column, as `count(*)` does). A daily capture of every trader is
/// most of what the partials topic carries; the catalogue's snapshot
/// pipelines read 7 of its 15 columns.
pub fn capture_for_merge(batch: &RecordBatch, read: &Columns) -> RecordBatch {
    columns::cut(batch, read, 0, Some(AS_OF))
}

/// Whether a capture's columns are columns of [`traders_schema`], each of
/// its type: what [`expand_capture`] accepts.
pub fn check_capture(schema: &Schema) -> Result<(), String> {
    columns::fits(&traders_schema(), schema, "capture")
}

/// A capture as sent ([`capture_for_merge`], or whole) back in the
/// [`traders_schema`]: `as_of` from the capture's time, the columns left
/// out as zeros and empty strings (no query reads them).
pub fn expand_capture(batch: &RecordBatch, as_of: i64) -> Result<RecordBatch, String> {
    columns::expand(&traders_schema(), batch, "capture", |i, n| {
        (i == AS_OF).then(|| Arc::new(Int64Array::from_value(as_of, n)) as ArrayRef)
    })
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

    /// A capture cut to the columns read travels smaller and comes back
    /// in the traders schema: the columns read as they were, `as_of`
    /// rebuilt, the others zeros; a whole capture comes back unchanged.
    #[test]
    fn a_capture_cut_to_the_columns_read_comes_back_in_the_traders_schema() {
        let mut symbols = Interner::new();
        let organic = symbols.intern("organic");
        let mut traders = Traders::default();
        for (i, ts) in [(0u32, 1_000i64), (1, 2_000), (3, 3_000)] {
            let t = traders.rows.get_mut(i);
            t.signup_ts = ts;
            t.channel = organic;
            t.behaviour.decay_ts = ts;
            t.deposit_count = i;
            t.deposit_total = Money(i64::from(i) * 1_000_000);
            t.last_trade_ts = ts + 1;
        }
        let as_of = 86_400_000;
        let full = traders_batch(&traders, &symbols, as_of, 0);
        assert_eq!(traders_schema().index_of("as_of").unwrap(), AS_OF);
        let schema = traders_schema();
        let index = |name: &str| schema.index_of(name).unwrap();
        let read = Columns::Only(vec![index("signup_ts"), index("channel"), index("as_of")]);
        let sent = capture_for_merge(&full, &read);
        let names: Vec<&str> = sent
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["trader", "signup_ts", "channel"]);
        let wire = crate::state::decode_batch(&crate::state::encode_batch(&sent)).unwrap();
        assert!(
            crate::state::encode_batch(&sent).len() * 2 < crate::state::encode_batch(&full).len()
        );
        let back = expand_capture(&wire, as_of).unwrap();
        assert_eq!(back.schema(), traders_schema());
        assert_eq!(back.num_rows(), full.num_rows());
        for name in ["trader", "signup_ts", "channel", "as_of"] {
            assert_eq!(back.column(index(name)), full.column(index(name)), "{name}");
        }
        let unread = back.column(index("deposit_sum"));
        assert_eq!(unread.null_count(), 0);
        assert!(
            unread
                .as_primitive::<Decimal128Type>()
                .values()
                .iter()
                .all(|&v| v == 0)
        );
        let segment = back.column(index("segment"));
        assert!(segment.as_string_view().iter().all(|s| s == Some("")));
        assert_eq!(
            back.column(index("last_trade_ts"))
                .as_primitive::<Int64Type>()
                .values()[0],
            0
        );
        // Read whole: every column but `as_of` travels; the same batch
        // comes back, as does one sent whole.
        let all = capture_for_merge(&full, &Columns::All);
        assert_eq!(all.num_columns(), full.num_columns() - 1);
        assert_eq!(expand_capture(&all, as_of).unwrap(), full);
        assert_eq!(expand_capture(&full, as_of).unwrap(), full);
        // A query that reads no column still gets every row.
        let none = capture_for_merge(&full, &Columns::default());
        assert_eq!(expand_capture(&none, as_of).unwrap().num_rows(), 3);
    }

    #[test]
    fn a_capture_with_a_foreign_column_is_refused() {
        let wrong = Schema::new(vec![Field::new("signup_ts", DataType::Utf8, true)]);
        let e = check_capture(&wrong).unwrap_err();
        assert!(e.contains("signup_ts is Utf8"), "{e}");
        let unknown = Schema::new(vec![Field::new("shoe_size", DataType::Int64, true)]);
        let e = check_capture(&unknown).unwrap_err();
        assert!(e.contains("shoe_size is no column"), "{e}");
    }
}
