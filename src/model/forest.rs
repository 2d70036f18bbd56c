//! A bagged forest of linfa decision trees, stored flat for fast scoring.
//!
//! linfa's trees predict a class; a churn score needs a probability, so
//! each fitted tree is copied into flat arrays and every node gets the
//! churn share of the training rows that reach it. The score is the mean
//! leaf share over trees; the same node shares explain a score (each split
//! on a trader's path moves the share, and the move is credited to the
//! split's feature).

use linfa::Dataset;
use linfa::prelude::Fit;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::ModelError;

/// Hyper-parameters of the forest.
#[derive(Debug, Clone, Copy)]
pub struct ForestParams {
    pub trees: usize,
    pub max_depth: usize,
    /// Minimum training rows in a leaf.
    pub min_leaf: f32,
    /// Share of the features each tree may split on.
    pub feature_share: f64,
    /// Rows drawn (with replacement) per tree, at most.
    pub max_rows: usize,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            trees: 30,
            max_depth: 8,
            min_leaf: 10.0,
            feature_share: 0.5,
            max_rows: 30_000,
            seed: 0x5eed,
        }
    }
}

/// One tree as stored in the artifact: flat arrays, a leaf has
/// `feature == LEAF` (u32::MAX).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeArrays {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    /// Churn share of the training rows reaching the node.
    pub value: Vec<f64>,
}

/// One node, packed so that a step down the tree touches one cache line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f64,
    value: f64,
    feature: u32,
    left: u32,
    right: u32,
}

/// A tree ready to score (stored as [`TreeArrays`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TreeArrays", into = "TreeArrays")]
pub struct Tree {
    nodes: Vec<Node>,
    /// Set when the arrays were of different lengths (reported by validate).
    malformed: bool,
}

const LEAF: u32 = u32::MAX;

impl Node {
    /// The child `x` goes to at this split: left when `x[f] < threshold`,
    /// as linfa (so a NaN goes right).
    #[inline]
    fn child(&self, x: &[f64]) -> u32 {
        if x[self.feature as usize] < self.threshold {
            self.left
        } else {
            self.right
        }
    }
}

impl From<TreeArrays> for Tree {
    fn from(a: TreeArrays) -> Self {
        let n = a.feature.len();
        let malformed = [
            a.threshold.len(),
            a.left.len(),
            a.right.len(),
            a.value.len(),
        ]
        .iter()
        .any(|&l| l != n);
        let nodes = if malformed {
            Vec::new()
        } else {
            (0..n)
                .map(|i| Node {
                    threshold: a.threshold[i],
                    value: a.value[i],
                    feature: a.feature[i],
                    left: a.left[i],
                    right: a.right[i],
                })
                .collect()
        };
        Self { nodes, malformed }
    }
}

impl From<Tree> for TreeArrays {
    fn from(t: Tree) -> Self {
        Self {
            feature: t.nodes.iter().map(|n| n.feature).collect(),
            threshold: t.nodes.iter().map(|n| n.threshold).collect(),
            left: t.nodes.iter().map(|n| n.left).collect(),
            right: t.nodes.iter().map(|n| n.right).collect(),
            value: t.nodes.iter().map(|n| n.value).collect(),
        }
    }
}

impl Tree {
    /// The leaf share for `x` (go left when `x[f] < threshold`, as linfa).
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut n = &self.nodes[0];
        while n.feature != LEAF {
            n = &self.nodes[n.child(x) as usize];
        }
        n.value
    }

    /// Adds each split's move of the churn share along `x`'s path to
    /// `contrib[feature]`.
    pub fn explain(&self, x: &[f64], contrib: &mut [f64]) {
        let mut n = &self.nodes[0];
        while n.feature != LEAF {
            let next = &self.nodes[n.child(x) as usize];
            contrib[n.feature as usize] += next.value - n.value;
            n = next;
        }
    }

    /// Checks the structure: indices in range, children after parents.
    pub fn validate(&self, width: usize) -> Result<(), String> {
        if self.malformed || self.nodes.is_empty() {
            return Err("arrays of different lengths or empty".into());
        }
        let len = self.nodes.len();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.feature == LEAF {
                continue;
            }
            if n.feature as usize >= width {
                return Err(format!(
                    "node {i} splits on feature {} of {width}",
                    n.feature
                ));
            }
            for c in [n.left, n.right] {
                if c as usize <= i || c as usize >= len {
                    return Err(format!("node {i} has child {c} out of order"));
                }
            }
        }
        Ok(())
    }
}

/// Copies a linfa tree; `features` maps the tree's columns to ours.
fn flatten(root: &TreeNode<f64, bool>, features: &[usize], out: &mut TreeArrays) {
    let at = out.feature.len();
    out.feature.push(LEAF);
    out.threshold.push(0.0);
    out.left.push(0);
    out.right.push(0);
    out.value.push(0.0);
    if root.is_leaf() {
        return;
    }
    let children = root.children();
    let (Some(left), Some(right)) = (children[0].as_deref(), children[1].as_deref()) else {
        return;
    };
    let (f, threshold, _) = root.split();
    out.feature[at] = features[f] as u32;
    out.threshold[at] = threshold;
    out.left[at] = out.feature.len() as u32;
    flatten(left, features, out);
    out.right[at] = out.feature.len() as u32;
    flatten(right, features, out);
}

/// Fills node shares from the rows `rows` of `x` (Laplace-smoothed, so a
/// small leaf never claims certainty).
fn fill_values(tree: &mut TreeArrays, x: &[Vec<f64>], y: &[bool], rows: &[usize]) {
    let n = tree.feature.len();
    let (mut pos, mut tot) = (vec![0.0; n], vec![0.0; n]);
    for &r in rows {
        let mut node = 0usize;
        loop {
            tot[node] += 1.0;
            pos[node] += f64::from(u8::from(y[r]));
            let f = tree.feature[node];
            if f == LEAF {
                break;
            }
            node = if x[r][f as usize] < tree.threshold[node] {
                tree.left[node]
            } else {
                tree.right[node]
            } as usize;
        }
    }
    for i in 0..n {
        tree.value[i] = (pos[i] + 1.0) / (tot[i] + 2.0);
    }
}

/// Fits the forest on rows `x` (already standardised) with labels `y`.
pub fn fit(x: &[Vec<f64>], y: &[bool], p: ForestParams) -> Result<Vec<Tree>, ModelError> {
    let (n, width) = (x.len(), x.first().map_or(0, Vec::len));
    if n == 0 || width == 0 {
        return Err(ModelError::Training("no training rows".into()));
    }
    let mut rng = StdRng::seed_from_u64(p.seed);
    let per_tree = ((width as f64 * p.feature_share).ceil() as usize).clamp(1, width);
    let rows_per_tree = n.min(p.max_rows);
    let mut trees = Vec::with_capacity(p.trees);
    for _ in 0..p.trees {
        let rows: Vec<usize> = (0..rows_per_tree).map(|_| rng.random_range(0..n)).collect();
        let mut features = sample(&mut rng, width, per_tree).into_vec();
        features.sort_unstable();
        let records = Array2::from_shape_fn((rows.len(), features.len()), |(i, j)| {
            x[rows[i]][features[j]]
        });
        let targets: Array1<bool> = rows.iter().map(|&r| y[r]).collect();
        let params = DecisionTree::params()
            .max_depth(Some(p.max_depth))
            .min_weight_leaf(p.min_leaf)
            .min_weight_split(2.0 * p.min_leaf);
        // linfa breaks a tie between classes in a leaf by hash-map order
        // (random per process) and then prunes siblings that predict the
        // same class: a weight a hair above 1 on churners makes ties
        // impossible in practice, so the same seed gives the same trees.
        let weights: Array1<f32> = rows
            .iter()
            .map(|&r| {
                if y[r] {
                    1.0 + f32::EPSILON * 8192.0
                } else {
                    1.0
                }
            })
            .collect();
        let fitted = params
            .fit(&Dataset::new(records, targets).with_weights(weights))
            .map_err(|e| ModelError::Training(format!("decision tree: {e}")))?;
        let mut tree = TreeArrays {
            feature: Vec::new(),
            threshold: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            value: Vec::new(),
        };
        flatten(fitted.root_node(), &features, &mut tree);
        fill_values(&mut tree, x, y, &rows);
        trees.push(Tree::from(tree));
    }
    Ok(trees)
}

/// Mean leaf share over `trees`. Trees are walked `LOCKSTEP` at a time:
/// one walk is a chain of dependent loads, and independent chains in one
/// loop let the CPU overlap them (8 at a time measured the same as 4).
/// The leaves are added in tree order from -0.0, as `Iterator::sum` does,
/// so the score is bit for bit the one of walking the trees one by one.
#[inline]
pub fn predict(trees: &[Tree], x: &[f64]) -> f64 {
    let mut sum = -0.0;
    let mut groups = trees.chunks_exact(LOCKSTEP);
    for group in &mut groups {
        for leaf in leaves_in_lockstep(group, x) {
            sum += leaf;
        }
    }
    for t in groups.remainder() {
        sum += t.predict(x);
    }
    sum / trees.len().max(1) as f64
}

/// Trees walked together by [`predict`].
const LOCKSTEP: usize = 4;

/// Rows walked together down one tree by [`predict_rows`].
const ROWS_LOCKSTEP: usize = 8;

/// [`predict`] of each row of `rows` (`width` features each) into `out`,
/// tree by tree over all rows: a tree's nodes (a few kilobytes) stay in
/// the first-level cache while every row walks it, where one row walking
/// every tree in turn reads the whole forest (160 kB for the bundled
/// model) from the second level. Each row's leaves are added in tree order
/// from -0.0 and divided once, as `predict` does, so every score is bit
/// for bit `predict`'s.
pub fn predict_rows(trees: &[Tree], rows: &[f64], width: usize, out: &mut Vec<f64>) {
    let n = rows.len().checked_div(width).unwrap_or(0);
    out.clear();
    out.resize(n, -0.0);
    if n == 0 {
        return;
    }
    let rows = &rows[..n * width];
    for t in trees {
        let mut sums = out.chunks_exact_mut(ROWS_LOCKSTEP);
        let mut xs = rows.chunks_exact(width * ROWS_LOCKSTEP);
        for (s, x) in (&mut sums).zip(&mut xs) {
            for (sum, leaf) in s.iter_mut().zip(rows_in_lockstep(t, x, width)) {
                *sum += leaf;
            }
        }
        let rest = xs.remainder().chunks_exact(width);
        for (sum, x) in sums.into_remainder().iter_mut().zip(rest) {
            *sum += t.predict(x);
        }
    }
    let len = trees.len().max(1) as f64;
    for sum in out.iter_mut() {
        *sum /= len;
    }
}

/// The leaf shares of `ROWS_LOCKSTEP` rows of `x` down tree `t`, walked
/// in lockstep (independent chains of loads the CPU overlaps).
#[inline]
fn rows_in_lockstep(t: &Tree, x: &[f64], width: usize) -> [f64; ROWS_LOCKSTEP] {
    let mut at = [0u32; ROWS_LOCKSTEP];
    loop {
        let mut moved = false;
        for (k, i) in at.iter_mut().enumerate() {
            let n = &t.nodes[*i as usize];
            if n.feature != LEAF {
                *i = n.child(&x[k * width..(k + 1) * width]);
                moved = true;
            }
        }
        if !moved {
            return std::array::from_fn(|k| t.nodes[at[k] as usize].value);
        }
    }
}

/// The leaf shares of `LOCKSTEP` trees for `x`, walked in lockstep.
#[inline]
fn leaves_in_lockstep(trees: &[Tree], x: &[f64]) -> [f64; LOCKSTEP] {
    let mut at = [0u32; LOCKSTEP];
    loop {
        let mut moved = false;
        for (t, i) in trees.iter().zip(at.iter_mut()) {
            let n = &t.nodes[*i as usize];
            if n.feature != LEAF {
                *i = n.child(x);
                moved = true;
            }
        }
        if !moved {
            return std::array::from_fn(|k| trees[k].nodes[at[k] as usize].value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockstep_walks_score_bit_for_bit_as_one_tree_at_a_time() {
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<Vec<f64>> = (0..600)
            .map(|_| (0..6).map(|_| rng.random_range(-2.0..2.0)).collect())
            .collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] + 0.5 * r[3] > 0.2).collect();
        // 30 trees: seven groups of four and a remainder of two.
        let params = ForestParams {
            trees: 30,
            min_leaf: 2.0,
            ..ForestParams::default()
        };
        let trees = fit(&x, &y, params).expect("fits");
        for row in x.iter().take(200) {
            let one_by_one = trees.iter().map(|t| t.predict(row)).sum::<f64>() / trees.len() as f64;
            assert_eq!(predict(&trees, row).to_bits(), one_by_one.to_bits());
        }
        // Tree by tree over many rows: the same bits as row by row, for
        // counts of rows below, at and around the lockstep width.
        for n in [0, 1, 7, 8, 9, 17, 200] {
            let flat: Vec<f64> = x.iter().take(n).flatten().copied().collect();
            let mut out = Vec::new();
            predict_rows(&trees, &flat, 6, &mut out);
            assert_eq!(out.len(), n);
            for (row, p) in x.iter().zip(&out) {
                assert_eq!(p.to_bits(), predict(&trees, row).to_bits());
            }
        }
        assert_eq!(predict(&trees[..3], &x[0]).to_bits(), {
            let s: f64 = trees[..3].iter().map(|t| t.predict(&x[0])).sum();
            (s / 3.0).to_bits()
        });
    }
}
