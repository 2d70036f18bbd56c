//! The event tables the SQL pipelines read (`signups`, `logins`, `deposits`,
//! `withdrawals`, `trades`, `campaigns`): an event becomes an Arrow row when
//! the frontier releases it, in event-time order, right after it was
//! applied to its trader's state.
//!
//! Every table starts with `ts` (event time, epoch ms), `trader` (interned id,
//! never a label), the trader's acquisition channel `acq_channel` and
//! `segment` as they were once the event was applied (events are applied in
//! event-time order, so a signup that arrives after its trader's first
//! deposit but happened before it still counts). `deposits.first_deposit`
//! marks the trader's earliest approved deposit. Amounts (`amount`, `stake`,
//! `pnl`) are exact decimals with 6 places.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::event::{Body, DepositStatus, Event, EventType, Interner, Money, Sym};
use crate::features::{Segment, TraderState};

/// Precision of amount columns: up to 10^14 with 6 decimal places.
pub const AMOUNT_PRECISION: u8 = 20;

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

/// The Arrow type of amounts.
pub fn money_type() -> DataType {
    DataType::Decimal128(AMOUNT_PRECISION, Money::DECIMALS)
}

/// Schema of one table.
pub fn schema_of(t: TableKind) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let m = |n: &str| Field::new(n, money_type(), false);
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
            m("amount"),
            s("currency"),
            s("method"),
            s("status"),
            Field::new("first_deposit", DataType::Boolean, false),
        ],
        EventType::Withdrawal => vec![m("amount"), s("currency"), s("status")],
        EventType::Trade => vec![
            s("instrument"),
            s("side"),
            m("stake"),
            s("currency"),
            s("status"),
            Field::new("pnl", money_type(), true),
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
    Dec(Decimal128Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Col {
    #[expect(
        clippy::expect_used,
        reason = "decimal types come from the constant table schemas, within Decimal128's limits"
    )]
    fn for_type(dt: &DataType) -> Self {
        match dt {
            DataType::Int64 => Col::I64(Int64Builder::new()),
            DataType::UInt32 => Col::U32(UInt32Builder::new()),
            DataType::Float64 => Col::F64(Float64Builder::new()),
            DataType::Decimal128(p, s) => Col::Dec(
                Decimal128Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .expect("valid decimal type"),
            ),
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::I64(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Dec(b) => Arc::new(b.finish()),
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
    #[expect(
        clippy::expect_used,
        reason = "appenders write exactly their schema's columns, in order (tests cover every table)"
    )]
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
    fn money(&mut self, v: Option<Money>) {
        if let Col::Dec(b) = self.next() {
            b.append_option(v.map(|m| i128::from(m.0)))
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

/// Builders of the six tables: released events are appended as rows, and
/// each release ends with one batch per table.
pub struct TableBuilders {
    schemas: Vec<SchemaRef>,
    cols: Vec<Vec<Col>>,
    rows: usize,
}

impl Default for TableBuilders {
    fn default() -> Self {
        Self::new()
    }
}

impl TableBuilders {
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
            schemas,
            cols,
            rows: 0,
        }
    }

    /// Schema of one table.
    pub fn schema(&self, t: TableKind) -> SchemaRef {
        self.schemas[t.index()].clone()
    }

    /// Rows appended since the last [`TableBuilders::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// One batch per table (in `EventType` order, possibly empty) of the
    /// rows appended so far.
    #[expect(
        clippy::expect_used,
        reason = "columns built from the same constant schema, in order"
    )]
    pub fn finish(&mut self) -> Vec<RecordBatch> {
        self.rows = 0;
        (0..self.schemas.len())
            .map(|i| {
                let arrays: Vec<ArrayRef> = self.cols[i].iter_mut().map(Col::finish).collect();
                RecordBatch::try_new(self.schemas[i].clone(), arrays)
                    .expect("columns match the schema")
            })
            .collect()
    }

    /// Appends `e` as a row of its table; `state` is its trader's state
    /// once `e` was applied, `segment` the trader's segment then.
    pub fn append(&mut self, e: &Event, segment: Segment, symbols: &Interner, state: &TraderState) {
        self.rows += 1;
        let t = e.body.event_type();
        let name = |s: Sym| Some(symbols.name(s));
        let mut a = Appender {
            cols: self.cols[t.index()].iter_mut(),
        };
        a.i64(e.ts);
        a.u32(e.trader);
        a.str(Some(if state.channel == u32::MAX {
            "unknown"
        } else {
            symbols.name(state.channel)
        }));
        a.str(Some(segment.as_str()));
        match &e.body {
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
                a.money(Some(x.amount));
                a.str(name(x.currency));
                a.str(name(x.method));
                a.str(Some(x.status.as_str()));
                a.bool(x.status == DepositStatus::Approved && state.first_deposit_ts == e.ts);
            }
            Body::Withdrawal(x) => {
                a.money(Some(x.amount));
                a.str(name(x.currency));
                a.str(Some(x.status.as_str()));
            }
            Body::Trade(x) => {
                a.str(name(x.instrument));
                a.str(Some(x.side.as_str()));
                a.money(Some(x.stake));
                a.str(name(x.currency));
                a.str(Some(x.status.as_str()));
                a.money(x.pnl);
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
