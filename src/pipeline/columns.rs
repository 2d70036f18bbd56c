//! The columns of a table that queries read, and batches cut down to them
//! for the way to a scale-out merge and put back in their table's schema
//! there (the columns no query reads as zeros and empty strings).

use datafusion::arrow::array::{Array, ArrayRef, make_array, new_null_array};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

/// The columns of a table that queries read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// These, by index in the table's schema (ascending, each once).
    Only(Vec<usize>),
    /// Every column (a scan without a projection).
    All,
}

impl Default for Columns {
    fn default() -> Self {
        Columns::Only(Vec::new())
    }
}

impl Columns {
    /// The columns of a scan's projection (`None`: all of them).
    pub fn of(projection: Option<&Vec<usize>>) -> Self {
        let mut c = Columns::default();
        c.add(&projection.map_or(Columns::All, |p| Columns::Only(p.clone())));
        c
    }

    /// Adds the columns `other` reads.
    pub fn add(&mut self, other: &Columns) {
        match (&mut *self, other) {
            (Columns::All, _) => {}
            (_, Columns::All) => *self = Columns::All,
            (Columns::Only(a), Columns::Only(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
            }
        }
    }

    /// The columns any of `all` reads.
    pub fn union<'a>(all: impl IntoIterator<Item = &'a Columns>) -> Columns {
        all.into_iter().fold(Columns::default(), |mut u, c| {
            u.add(c);
            u
        })
    }

    /// Whether column `i` is read.
    pub fn contains(&self, i: usize) -> bool {
        match self {
            Columns::Only(v) => v.binary_search(&i).is_ok(),
            Columns::All => true,
        }
    }
}

/// `batch` with the columns `read` names only, plus column `always` (the
/// rows must stay, and a merge's windows need `ts`); `without` is left out
/// even when read (a column the merge rebuilds).
pub fn cut(
    batch: &RecordBatch,
    read: &Columns,
    always: usize,
    without: Option<usize>,
) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| i == always || (Some(i) != without && read.contains(i)))
        .collect();
    if keep.len() == batch.num_columns() {
        return batch.clone();
    }
    // Indexes taken from the batch itself: they cannot be out of range.
    batch.project(&keep).unwrap_or_else(|_| batch.clone())
}

/// Whether `got`'s columns are columns of `full`, each of its type: what
/// [`expand`] accepts. `what` names the table in the error.
pub fn fits(full: &Schema, got: &Schema, what: &str) -> Result<(), String> {
    for f in got.fields() {
        match full.field_with_name(f.name()) {
            Ok(t) if t.data_type() == f.data_type() => {}
            Ok(t) => {
                return Err(format!(
                    "{what} column {} is {}, where the table has {}",
                    f.name(),
                    f.data_type(),
                    t.data_type()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "{what} column {} is no column of the table",
                    f.name()
                ));
            }
        }
    }
    Ok(())
}

/// A batch cut by [`cut`] (or whole) back in the `full` schema: each
/// column by name, `fill(i, rows)` for a column it lacks when it gives
/// one, else zeros (no query reads it).
pub fn expand(
    full: &SchemaRef,
    batch: &RecordBatch,
    what: &str,
    fill: impl Fn(usize, usize) -> Option<ArrayRef>,
) -> Result<RecordBatch, String> {
    fits(full, &batch.schema(), what)?;
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = full
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match fill(i, n) {
            Some(c) => c,
            None => batch
                .column_by_name(f.name())
                .cloned()
                .unwrap_or_else(|| unread_column(f.data_type(), n)),
        })
        .collect();
    RecordBatch::try_new(full.clone(), columns).map_err(|e| e.to_string())
}

/// A column no query reads: `n` zeros (or empty strings), no nulls, so
/// that it fits a column declared without nulls too.
fn unread_column(data_type: &DataType, n: usize) -> ArrayRef {
    let nulls = new_null_array(data_type, n).into_data();
    // The values under a null array are zeroed; dropping its null mask
    // leaves zeros (empty strings), valid for every type of these tables.
    match nulls.into_builder().nulls(None).build() {
        Ok(data) => make_array(data),
        Err(_) => new_null_array(data_type, n),
    }
}
