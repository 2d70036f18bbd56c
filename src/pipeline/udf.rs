//! Functions the pipelines' SQL can call beyond DataFusion's own:
//!
//! - `normal_cdf(x)`: the standard normal distribution function, for
//!   confidence intervals and p-values (`ab_tests`).
//! - `trader_set(trader)`: aggregate, the set of distinct traders as a
//!   bitmap over the dense trader ids.
//! - `union_count(set)`: aggregate, the number of traders in the union of
//!   such sets.
//!
//! The last two make distinct counts over hopping windows cheap: each slide
//! keeps one small (roaring) bitmap, and a window ORs its slides instead of
//! rescanning or replicating every (day, trader) pair.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, Float64Array, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udaf, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use roaring::MultiOps;

/// Registers every function of this module.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(normal_cdf());
    ctx.register_udaf(trader_set());
    ctx.register_udaf(union_count());
}

fn normal_cdf() -> ScalarUDF {
    create_udf(
        "normal_cdf",
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let x = arrays[0]
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| DataFusionError::Execution("normal_cdf expects a float".into()))?;
            let out: Float64Array = x.iter().map(|v| v.map(phi)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// Standard normal CDF via the complementary error function (libm's,
/// accurate to an ulp: p-values far in the tail stay meaningful).
pub fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// A set of trader ids: a roaring bitmap, compact whatever the ids (they
/// carry their shard in the high bits), serialised in the portable format.
/// Sets united into it are gathered and united together (roaring's
/// multi-way union ORs them into one bitmap container instead of merging
/// sorted arrays pairwise, a new array each time): a 30-day window unites
/// 38 daily sets.
#[derive(Debug, Default)]
struct Bits {
    set: roaring::RoaringBitmap,
    pending: Vec<roaring::RoaringBitmap>,
}

/// Sets gathered before they are united (bounds the memory they hold).
const GATHER: usize = 64;

impl Bits {
    fn insert(&mut self, id: u32) {
        self.set.insert(id);
    }

    fn union_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let other = roaring::RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| DataFusionError::Execution(format!("not a trader set: {e}")))?;
        self.pending.push(other);
        if self.pending.len() >= GATHER {
            self.unite();
        }
        Ok(())
    }

    fn union_array(&mut self, a: &ArrayRef) -> Result<()> {
        let sets = a
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| DataFusionError::Execution("expected a trader set (binary)".into()))?;
        for s in sets.iter().flatten() {
            self.union_bytes(s)?;
        }
        Ok(())
    }

    /// Unites the gathered sets into the set.
    fn unite(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let set = std::mem::take(&mut self.set);
        self.set = std::iter::once(set).chain(self.pending.drain(..)).union();
    }

    fn scalar(&mut self) -> ScalarValue {
        self.unite();
        let mut out = Vec::with_capacity(self.set.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.set.serialize_into(&mut out);
        ScalarValue::Binary(Some(out))
    }

    fn count(&mut self) -> i64 {
        self.unite();
        self.set.len() as i64
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.set.serialized_size()
            + self
                .pending
                .iter()
                .map(roaring::RoaringBitmap::serialized_size)
                .sum::<usize>()
    }
}

/// `trader_set(trader)`: the distinct traders of a group.
#[derive(Debug, Default)]
struct TraderSet(Bits);

impl Accumulator for TraderSet {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let ids = values[0]
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| {
                DataFusionError::Execution("trader_set expects the trader column".into())
            })?;
        for id in ids.iter().flatten() {
            self.0.insert(id);
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.union_array(&states[0])
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.0.scalar()])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.0.scalar())
    }
    fn size(&self) -> usize {
        self.0.size()
    }
}

/// `union_count(set)`: how many traders are in the union of the sets.
#[derive(Debug, Default)]
struct UnionCount(Bits);

impl Accumulator for UnionCount {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.union_array(&values[0])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.union_array(&states[0])
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.0.scalar()])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0.count())))
    }
    fn size(&self) -> usize {
        self.0.size()
    }
}

fn trader_set() -> AggregateUDF {
    create_udaf(
        "trader_set",
        vec![DataType::UInt32],
        Arc::new(DataType::Binary),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::<TraderSet>::default())),
        Arc::new(vec![DataType::Binary]),
    )
}

fn union_count() -> AggregateUDF {
    create_udaf(
        "union_count",
        vec![DataType::Binary],
        Arc::new(DataType::Int64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::<UnionCount>::default())),
        Arc::new(vec![DataType::Binary]),
    )
}

/// Non-null entries of an array.
#[cfg(test)]
fn set_len(a: &dyn Array) -> usize {
    a.len() - a.null_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from SciPy 1.17.1 (`scipy.stats.norm.cdf(x)`), not
    /// from this code. The bound is the function's own conditioning: in the
    /// tail a one-ulp change of x moves phi by about x^2 ulps (relative), so
    /// 4 (1 + x^2) ulps; the approximation this replaced was off by up to
    /// 1.2e-7 relative near 0 and by far more in the tail.
    #[test]
    fn phi_matches_scipy() {
        for (x, scipy) in [
            (0.0, 0.5),
            (1.959_963_984_540_054, 0.975),
            (-1.0, 0.158_655_253_931_457_07),
            (-8.0, 6.220_960_574_271_74e-16),
            (-30.0, 4.906_713_927_147_908e-198),
        ] {
            let got: f64 = phi(x);
            assert!(
                (got - scipy).abs() <= 4.0 * (1.0 + x * x) * f64::EPSILON * scipy,
                "phi({x}) = {got:e}, SciPy {scipy:e}"
            );
        }
    }

    #[test]
    fn sets_union_and_count() {
        let mut a = TraderSet::default();
        a.update_batch(&[Arc::new(UInt32Array::from(vec![1, 5, 5, 200])) as ArrayRef])
            .unwrap();
        let ScalarValue::Binary(Some(sa)) = a.evaluate().unwrap() else {
            panic!()
        };
        let mut b = TraderSet::default();
        b.update_batch(&[Arc::new(UInt32Array::from(vec![5, 7])) as ArrayRef])
            .unwrap();
        let ScalarValue::Binary(Some(sb)) = b.evaluate().unwrap() else {
            panic!()
        };
        let sets: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(sa.as_slice()),
            None,
            Some(sb.as_slice()),
        ]));
        assert_eq!(set_len(&sets), 2);
        let mut u = UnionCount::default();
        u.update_batch(&[sets]).unwrap();
        assert_eq!(u.evaluate().unwrap(), ScalarValue::Int64(Some(4)));
    }

    /// Many sets (more than are gathered at once), sparse and dense, some
    /// in other shards' id ranges: the union counts what a hash set does,
    /// through updates, merges of partial states and repeated evaluation.
    #[test]
    fn many_sets_unite_to_the_distinct_ids() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut all = std::collections::HashSet::new();
        let mut serialised = Vec::new();
        for i in 0..150u32 {
            // Every tenth set dense (a bitmap container), the rest arrays.
            let n = if i % 10 == 0 {
                6000
            } else {
                rng.random_range(0..300)
            };
            let ids: Vec<u32> = (0..n)
                .map(|_| (rng.random_range(0..3u32) << 24) | rng.random_range(0..20_000u32))
                .collect();
            all.extend(ids.iter().copied());
            let mut t = TraderSet::default();
            t.update_batch(&[Arc::new(UInt32Array::from(ids)) as ArrayRef])
                .unwrap();
            let ScalarValue::Binary(Some(b)) = t.evaluate().unwrap() else {
                panic!()
            };
            serialised.push(b);
        }
        let array = |sets: &[Vec<u8>]| -> ArrayRef {
            Arc::new(BinaryArray::from_iter_values(
                sets.iter().map(Vec::as_slice),
            ))
        };
        let mut u = UnionCount::default();
        u.update_batch(&[array(&serialised[..100])]).unwrap();
        let ScalarValue::Binary(Some(partial)) = u.state().unwrap().remove(0) else {
            panic!()
        };
        let mut v = UnionCount::default();
        v.update_batch(&[array(&serialised[100..])]).unwrap();
        v.merge_batch(&[array(&[partial])]).unwrap();
        let want = ScalarValue::Int64(Some(all.len() as i64));
        assert_eq!(v.evaluate().unwrap(), want);
        assert_eq!(v.evaluate().unwrap(), want, "evaluating again");
        let mut w = UnionCount::default();
        w.update_batch(&[array(&serialised)]).unwrap();
        assert_eq!(w.evaluate().unwrap(), want);
    }
}
