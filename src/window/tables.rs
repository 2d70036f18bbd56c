//! The event tables the SQL pipelines read (`signups`, `logins`, `deposits`,
//! `withdrawals`, `trades`, `campaigns`): rows wait in an open buffer until
//! the frontier passes them, then become Arrow batches.
//!
//! Every table starts with `ts` (event time, epoch ms), `trader` (interned id,
//! never a label), the trader's acquisition channel `acq_channel` (known by
//! the time the row closes, so a signup arriving after its trader's first
//! deposit still counts) and `segment` as it was when the event was applied.
//! `deposits.first_deposit` marks the trader's earliest approved deposit,
//! decided when the row closes: by then every earlier event has arrived or
//! is late.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::event::{Body, DepositStatus, Event, EventType, Interner, Sym};
use crate::features::{Segment, TraderState, Traders};

/// Granularity of the offsets kept for closed rows.
const OFFSET_BUCKET_MS: i64 = 3_600_000;

/// The six event tables, in `EventType` order.
pub type TableKind = EventType;

/// Table name of an event type.
pub fn table_name(t: TableKind) -> &'static str {
    match t {
        EventType::Signup => "signups",
        EventType::Login => "logins",
        EventType::Deposit => "deposits",
        EventType::Withdrawal => "withdrawals",
        EventType::Trade => "trades",
        EventType::Campaign => "campaigns",
    }
}

/// An event waiting for its window to close, with the segment its trader
/// had when it was applied.
#[derive(Debug, Clone)]
pub struct OpenRow {
    pub ts: i64,
    pub trader: u32,
    pub segment: Segment,
    /// Source partition and offset: what may be committed is bounded by the
    /// rows still open.
    pub partition: u32,
    pub offset: i64,
    pub body: Body,
}

impl OpenRow {
    pub fn new(e: &Event, segment: Segment, partition: u32, offset: i64) -> Self {
        Self {
            ts: e.ts,
            trader: e.trader,
            segment,
            partition,
            offset,
            body: e.body.clone(),
        }
    }
}

fn schema_of(t: TableKind) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let mut fields = vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("trader", DataType::UInt32, false),
        s("acq_channel"),
        s("segment"),
    ];
    fields.extend(match t {
        EventType::Signup => vec![
            s("channel"),
            s("country"),
            Field::new("campaign_id", DataType::Utf8, true),
        ],
        EventType::Login => vec![
            Field::new("success", DataType::Boolean, false),
            s("country"),
            s("platform"),
        ],
        EventType::Deposit => vec![
            f("amount"),
            s("currency"),
            s("method"),
            s("status"),
            Field::new("first_deposit", DataType::Boolean, false),
        ],
        EventType::Withdrawal => vec![f("amount"), s("currency"), s("status")],
        EventType::Trade => vec![
            s("instrument"),
            s("side"),
            f("stake"),
            s("currency"),
            s("status"),
            Field::new("pnl", DataType::Float64, true),
        ],
        EventType::Campaign => vec![
            s("campaign_id"),
            s("variant"),
            s("action"),
            s("contact_channel"),
        ],
    });
    Arc::new(Schema::new(fields))
}

/// One column under construction.
enum Col {
    I64(Int64Builder),
    U32(UInt32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Col {
    fn for_type(dt: &DataType) -> Self {
        match dt {
            DataType::Int64 => Col::I64(Int64Builder::new()),
            DataType::UInt32 => Col::U32(UInt32Builder::new()),
            DataType::Float64 => Col::F64(Float64Builder::new()),
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::I64(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
        }
    }
}

/// Appends values to a table's columns in schema order.
struct Appender<'a> {
    cols: std::slice::IterMut<'a, Col>,
}

impl Appender<'_> {
    fn next(&mut self) -> &mut Col {
        self.cols.next().expect("as many values as columns")
    }
    fn i64(&mut self, v: i64) {
        if let Col::I64(b) = self.next() {
            b.append_value(v)
        }
    }
    fn u32(&mut self, v: u32) {
        if let Col::U32(b) = self.next() {
            b.append_value(v)
        }
    }
    fn f64(&mut self, v: Option<f64>) {
        if let Col::F64(b) = self.next() {
            b.append_option(v)
        }
    }
    fn bool(&mut self, v: bool) {
        if let Col::Bool(b) = self.next() {
            b.append_value(v)
        }
    }
    fn str(&mut self, v: Option<&str>) {
        if let Col::Str(b) = self.next() {
            b.append_option(v)
        }
    }
}

/// Open rows and the builders they close into.
pub struct EventTables {
    open: Vec<OpenRow>,
    schemas: Vec<SchemaRef>,
    cols: Vec<Vec<Col>>,
    /// Per hour of event time (index), the lowest source offset per
    /// partition of the closed rows some pipeline may still need.
    closed_offsets: std::collections::BTreeMap<i64, Vec<i64>>,
}

impl Default for EventTables {
    fn default() -> Self {
        Self::new()
    }
}

impl EventTables {
    pub fn new() -> Self {
        let schemas: Vec<SchemaRef> = EventType::ALL.iter().map(|t| schema_of(*t)).collect();
        let cols = schemas
            .iter()
            .map(|s| {
                s.fields()
                    .iter()
                    .map(|f| Col::for_type(f.data_type()))
                    .collect()
            })
            .collect();
        Self {
            open: Vec::new(),
            schemas,
            cols,
            closed_offsets: std::collections::BTreeMap::new(),
        }
    }

    /// Schema of one table.
    pub fn schema(&self, t: TableKind) -> SchemaRef {
        self.schemas[t.index()].clone()
    }

    /// Holds a row until its window closes.
    #[inline]
    pub fn push(&mut self, row: OpenRow) {
        self.open.push(row);
    }

    /// Rows still open.
    pub fn open_rows(&self) -> usize {
        self.open.len()
    }

    /// Lowest source offset of a closed row at or after `t` (hour
    /// granularity, rounding down) in each partition (`i64::MAX` for none).
    pub fn min_closed_offsets(&self, partitions: usize) -> Vec<i64> {
        let mut min = vec![i64::MAX; partitions];
        for bucket in self.closed_offsets.values() {
            for (m, o) in min.iter_mut().zip(bucket) {
                *m = (*m).min(*o);
            }
        }
        min
    }

    /// Forgets the offsets of closed rows before `t` (every pipeline has
    /// read past them).
    pub fn forget_closed_before(&mut self, t: i64) {
        let first_kept = t.div_euclid(OFFSET_BUCKET_MS);
        self.closed_offsets = self.closed_offsets.split_off(&first_kept);
    }

    /// Lowest offset of an open row in each partition (`i64::MAX` for none).
    pub fn min_open_offsets(&self, partitions: usize) -> Vec<i64> {
        let mut min = vec![i64::MAX; partitions];
        for r in &self.open {
            if let Some(m) = min.get_mut(r.partition as usize) {
                *m = (*m).min(r.offset);
            }
        }
        min
    }

    /// Approximate bytes held by open rows.
    pub fn open_bytes(&self) -> usize {
        self.open.capacity() * std::mem::size_of::<OpenRow>()
    }

    /// Converts every open row before `frontier` into Arrow, returning one
    /// batch per table (in `EventType` order, possibly empty); later rows
    /// stay open.
    pub fn close_before(
        &mut self,
        frontier: i64,
        symbols: &Interner,
        traders: &Traders,
    ) -> Vec<RecordBatch> {
        let mut keep = Vec::with_capacity(self.open.len() / 8);
        for row in std::mem::take(&mut self.open) {
            if row.ts < frontier {
                let p = row.partition as usize;
                let bucket = self
                    .closed_offsets
                    .entry(row.ts.div_euclid(OFFSET_BUCKET_MS))
                    .or_default();
                if p >= bucket.len() {
                    bucket.resize(p + 1, i64::MAX);
                }
                bucket[p] = bucket[p].min(row.offset);
                let state = traders.get(row.trader).copied().unwrap_or_default();
                self.append(&row, symbols, &state);
            } else {
                keep.push(row);
            }
        }
        self.open = keep;
        (0..self.schemas.len())
            .map(|i| {
                let arrays: Vec<ArrayRef> = self.cols[i].iter_mut().map(Col::finish).collect();
                RecordBatch::try_new(self.schemas[i].clone(), arrays)
                    .expect("columns match the schema")
            })
            .collect()
    }

    fn append(&mut self, row: &OpenRow, symbols: &Interner, state: &TraderState) {
        let t = row.body.event_type();
        let name = |s: Sym| Some(symbols.name(s));
        let mut a = Appender {
            cols: self.cols[t.index()].iter_mut(),
        };
        a.i64(row.ts);
        a.u32(row.trader);
        a.str(Some(if state.channel == u32::MAX {
            "unknown"
        } else {
            symbols.name(state.channel)
        }));
        a.str(Some(row.segment.as_str()));
        match &row.body {
            Body::Signup(x) => {
                a.str(name(x.channel));
                a.str(name(x.country));
                a.str(x.campaign.map(|c| symbols.name(c)));
            }
            Body::Login(x) => {
                a.bool(x.success);
                a.str(name(x.country));
                a.str(Some(x.platform.as_str()));
            }
            Body::Deposit(x) => {
                a.f64(Some(x.amount));
                a.str(name(x.currency));
                a.str(name(x.method));
                a.str(Some(x.status.as_str()));
                a.bool(x.status == DepositStatus::Approved && state.first_deposit_ts == row.ts);
            }
            Body::Withdrawal(x) => {
                a.f64(Some(x.amount));
                a.str(name(x.currency));
                a.str(Some(x.status.as_str()));
            }
            Body::Trade(x) => {
                a.str(name(x.instrument));
                a.str(Some(x.side.as_str()));
                a.f64(Some(x.stake));
                a.str(name(x.currency));
                a.str(Some(x.status.as_str()));
                a.f64(x.pnl);
            }
            Body::Campaign(x) => {
                a.str(name(x.campaign));
                a.str(name(x.variant));
                a.str(Some(x.action.as_str()));
                a.str(Some(x.channel.as_str()));
            }
        }
    }
}
