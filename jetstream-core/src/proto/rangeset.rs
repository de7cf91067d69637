//! A set of `u64` stored as coalesced half-open ranges.
//!
//! Used for the received / acknowledged global byte offsets of a transfer (which may span
//! terabytes: memory grows with the number of *holes*, never with the number of bytes) and for
//! received packet numbers.
//!
//! Invariants, upheld by every method:
//! - every stored range `start..end` has `start < end`;
//! - stored ranges are disjoint and never adjacent (`a.end < b.start` for consecutive `a`, `b`),
//!   so the representation of a given set is unique and `len()` is the number of maximal runs;
//! - `total` equals the sum of the lengths of the stored ranges.
//!
//! Every operation costs `O(log n + k)` where `n` is the number of stored ranges and `k` the
//! number of ranges it touches. No method panics, whatever its input: a range whose
//! `start >= end` is empty and a no-op.

use std::collections::BTreeMap;
use std::ops::Range;

/// A set of `u64` values kept as disjoint, non-adjacent half-open ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end (exclusive).
    map: BTreeMap<u64, u64>,
    /// Number of values in the set.
    total: u64,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every value of `r`; returns how many of them were not already present.
    pub fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        let (mut start, mut end) = (r.start, r.end);
        let mut removed = 0u64;
        // A range starting at or before `start` that overlaps or touches `r` absorbs it.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= start {
                self.map.remove(&s);
                removed += e - s;
                start = s;
                end = end.max(e);
            }
        }
        // Every range starting inside `start..=end` (inclusive: adjacency merges) is absorbed.
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            self.map.remove(&s);
            removed += e - s;
            end = end.max(e);
        }
        self.map.insert(start, end);
        // The merged range covers every absorbed range, so this cannot underflow.
        let added = (end - start) - removed;
        self.total += added;
        added
    }

    /// Removes every value of `r`; returns how many of them were present.
    pub fn remove(&mut self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        let mut removed = 0u64;
        // A range starting strictly before `r` may need to be clipped (and maybe split).
        if let Some((&s, &e)) = self.map.range(..r.start).next_back() {
            if e > r.start {
                self.map.insert(s, r.start);
                if e > r.end {
                    self.map.insert(r.end, e);
                }
                removed += e.min(r.end) - r.start;
            }
        }
        while let Some((&s, &e)) = self.map.range(r.start..r.end).next() {
            self.map.remove(&s);
            if e > r.end {
                self.map.insert(r.end, e);
            }
            removed += e.min(r.end) - s;
        }
        self.total -= removed;
        removed
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.map
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &e)| e > x)
    }

    /// Whether every value of `r` is in the set (true for an empty `r`).
    pub fn contains_range(&self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        self.map
            .range(..=r.start)
            .next_back()
            .is_some_and(|(_, &e)| e >= r.end)
    }

    /// How many values of `r` are in the set.
    pub fn covered_len(&self, r: Range<u64>) -> u64 {
        if r.start >= r.end {
            return 0;
        }
        let mut n = 0;
        if let Some((_, &e)) = self.map.range(..r.start).next_back() {
            n += e.min(r.end).saturating_sub(r.start);
        }
        for (&s, &e) in self.map.range(r.start..r.end) {
            n += e.min(r.end) - s;
        }
        n
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of stored (maximal) ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of values in the set, in O(1).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.map.first_key_value().map(|(&s, _)| s)
    }

    /// Exclusive end of the highest range (one past the largest value).
    pub fn max(&self) -> Option<u64> {
        self.map.last_key_value().map(|(_, &e)| e)
    }

    /// The stored ranges, ascending.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// The ranges whose end is above `x`, ascending; the first one is clipped to start at `x` if
    /// it contains `x`.
    pub fn iter_from(&self, x: u64) -> impl Iterator<Item = Range<u64>> + '_ {
        let head = self
            .map
            .range(..x)
            .next_back()
            .filter(|(_, &e)| e > x)
            .map(|(_, &e)| x..e);
        head.into_iter()
            .chain(self.map.range(x..).map(|(&s, &e)| s..e))
    }

    /// The smallest `y >= x` that is not in the set.
    ///
    /// Returns `u64::MAX` if every value from `x` up is present (only possible when the last range
    /// ends at `u64::MAX`; the value `u64::MAX` itself can never be stored in a half-open range).
    pub fn first_missing_from(&self, x: u64) -> u64 {
        match self.map.range(..=x).next_back() {
            // Ranges never touch, so `e` itself is missing.
            Some((_, &e)) if e > x => e,
            _ => x,
        }
    }

    /// The maximal sub-ranges of `r` that are not in the set, ascending.
    pub fn gaps(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let end = r.end;
        let mut cursor = r.start;
        let mut present = self.iter_from(r.start);
        std::iter::from_fn(move || loop {
            if cursor >= end {
                return None;
            }
            match present.next() {
                None => {
                    let gap = cursor..end;
                    cursor = end;
                    return Some(gap);
                }
                Some(p) => {
                    // `p.end > cursor`: ranges come ascending and the first one ends above
                    // `r.start`.
                    if p.start > cursor {
                        let gap = cursor..p.start.min(end);
                        cursor = p.end;
                        return Some(gap);
                    }
                    cursor = p.end;
                }
            }
        })
    }

    /// Drops every value below `x`.
    pub fn remove_below(&mut self, x: u64) {
        while let Some((&s, &e)) = self.map.first_key_value() {
            if s >= x {
                break;
            }
            self.map.remove(&s);
            if e > x {
                self.map.insert(x, e);
                self.total -= x - s;
                break;
            }
            self.total -= e - s;
        }
    }

    /// If more than `max_ranges` ranges are stored, drops the lowest ones until exactly
    /// `max_ranges` remain. Bounds the memory of packet-number history.
    pub fn pop_front_ranges_beyond(&mut self, max_ranges: usize) {
        while self.map.len() > max_ranges {
            match self.map.pop_first() {
                Some((s, e)) => self.total -= e - s,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use std::collections::BTreeSet;

    fn ranges(s: &RangeSet) -> Vec<Range<u64>> {
        s.iter().collect()
    }

    #[test]
    fn insert_merges_overlap_and_adjacency() {
        let mut s = RangeSet::new();
        assert_eq!(s.insert(10..20), 10);
        assert_eq!(s.insert(30..40), 10);
        assert_eq!(s.insert(20..30), 10, "fills the gap exactly");
        assert_eq!(ranges(&s), vec![10..40]);
        assert_eq!(s.insert(5..10), 5, "adjacent below");
        assert_eq!(s.insert(40..41), 1, "adjacent above");
        assert_eq!(ranges(&s), vec![5..41]);
        assert_eq!(s.insert(0..50), 14, "superset");
        assert_eq!(ranges(&s), vec![0..50]);
        assert_eq!(s.total(), 50);
    }

    #[test]
    fn duplicate_and_empty_inserts_are_noops() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        assert_eq!(s.insert(10..20), 0);
        assert_eq!(s.insert(12..15), 0);
        assert_eq!(s.insert(15..15), 0);
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 30..25;
        assert_eq!(s.insert(backwards.clone()), 0);
        assert_eq!(s.remove(backwards.clone()), 0);
        assert!(s.contains_range(backwards.clone()));
        assert_eq!(s.covered_len(backwards.clone()), 0);
        assert_eq!(s.gaps(backwards).count(), 0);
        assert_eq!(ranges(&s), vec![10..20]);
        assert_eq!(s.total(), 10);
    }

    #[test]
    fn insert_spanning_many_ranges() {
        let mut s = RangeSet::new();
        for i in 0..10 {
            s.insert(i * 10..i * 10 + 5);
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.insert(3..93), 45);
        assert_eq!(ranges(&s), vec![0..95]);
    }

    #[test]
    fn remove_splits_a_range() {
        let mut s = RangeSet::new();
        s.insert(0..100);
        assert_eq!(s.remove(40..60), 20);
        assert_eq!(ranges(&s), vec![0..40, 60..100]);
        assert_eq!(s.remove(30..70), 20);
        assert_eq!(ranges(&s), vec![0..30, 70..100]);
        assert_eq!(s.remove(0..30), 30);
        assert_eq!(s.remove(200..300), 0);
        assert_eq!(ranges(&s), vec![70..100]);
        assert_eq!(s.total(), 30);
        assert!(!s.contains(69));
        assert!(s.contains(70));
        assert!(!s.contains(100));
    }

    #[test]
    fn queries() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        assert_eq!(s.min(), Some(10));
        assert_eq!(s.max(), Some(40));
        assert!(s.contains_range(12..20));
        assert!(!s.contains_range(12..21));
        assert_eq!(s.covered_len(0..100), 20);
        assert_eq!(s.covered_len(15..35), 10);
        assert_eq!(s.first_missing_from(0), 0);
        assert_eq!(s.first_missing_from(10), 20);
        assert_eq!(s.first_missing_from(20), 20);
        assert_eq!(
            s.gaps(0..50).collect::<Vec<_>>(),
            vec![0..10, 20..30, 40..50]
        );
        assert_eq!(s.gaps(12..35).collect::<Vec<_>>(), vec![20..30]);
        assert_eq!(s.gaps(12..18).count(), 0);
        assert_eq!(s.iter_from(15).collect::<Vec<_>>(), vec![15..20, 30..40]);
        assert_eq!(s.iter_from(20).collect::<Vec<_>>(), vec![30..40]);
        assert_eq!(s.iter().next_back(), Some(30..40));
    }

    #[test]
    fn remove_below_and_pop_front() {
        let mut s = RangeSet::new();
        s.insert(0..10);
        s.insert(20..30);
        s.insert(40..50);
        s.remove_below(25);
        assert_eq!(ranges(&s), vec![25..30, 40..50]);
        assert_eq!(s.total(), 15);
        s.remove_below(0);
        assert_eq!(s.total(), 15);
        s.insert(60..70);
        s.pop_front_ranges_beyond(2);
        assert_eq!(ranges(&s), vec![40..50, 60..70]);
        assert_eq!(s.total(), 20);
        s.pop_front_ranges_beyond(5);
        assert_eq!(s.len(), 2);
        s.pop_front_ranges_beyond(0);
        assert!(s.is_empty());
        assert_eq!(s.total(), 0);
        assert_eq!(s.min(), None);
        assert_eq!(s.max(), None);
    }

    #[test]
    fn u64_max_bounds() {
        let mut s = RangeSet::new();
        assert_eq!(s.insert(u64::MAX - 10..u64::MAX), 10);
        assert_eq!(s.insert(0..u64::MAX), u64::MAX - 10);
        assert_eq!(s.total(), u64::MAX);
        assert_eq!(ranges(&s), vec![0..u64::MAX]);
        assert!(s.contains(u64::MAX - 1));
        assert!(!s.contains(u64::MAX));
        assert_eq!(s.first_missing_from(5), u64::MAX);
        assert_eq!(s.gaps(0..u64::MAX).count(), 0);
        assert_eq!(s.remove(1..u64::MAX - 1), u64::MAX - 2);
        assert_eq!(ranges(&s), vec![0..1, u64::MAX - 1..u64::MAX]);
        s.remove_below(u64::MAX);
        assert!(s.is_empty());
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn terabyte_offsets_cost_memory_per_hole() {
        let mut s = RangeSet::new();
        let tb = 1u64 << 40;
        for i in 0..1000u64 {
            s.insert(i * (tb / 1000)..(i + 1) * (tb / 1000) - 1);
        }
        assert_eq!(s.len(), 1000);
        for i in 0..1000u64 {
            s.insert((i + 1) * (tb / 1000) - 1..(i + 1) * (tb / 1000));
        }
        assert_eq!(s.len(), 1);
        assert_eq!(s.total(), 1000 * (tb / 1000));
    }

    /// Dense snapshot of the model over `0..DOMAIN + 8` (the model never holds values beyond
    /// `DOMAIN`), so that each check walks the `BTreeSet` once.
    fn dense(m: &BTreeSet<u64>) -> Vec<bool> {
        let mut d = vec![false; DOMAIN as usize + 8];
        for &x in m {
            d[x as usize] = true;
        }
        d
    }

    fn model_runs(d: &[bool]) -> Vec<Range<u64>> {
        model_gaps_or_runs(d, 0..d.len() as u64, true)
    }

    /// Maximal runs of `value` within `r` (clipped to the snapshot).
    fn model_gaps_or_runs(d: &[bool], r: Range<u64>, value: bool) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for x in r {
            let present = d.get(x as usize).copied().unwrap_or(false);
            if present != value {
                continue;
            }
            match out.last_mut() {
                Some(g) if g.end == x => g.end = x + 1,
                _ => out.push(x..x + 1),
            }
        }
        out
    }

    const DOMAIN: u64 = 300;

    fn check(s: &RangeSet, m: &BTreeSet<u64>, rng: &mut Rng, ctx: &str) {
        let d = dense(m);
        let has = |x: u64| d.get(x as usize).copied().unwrap_or(false);
        let runs = model_runs(&d);
        assert_eq!(ranges(s), runs, "{ctx}: ranges");
        assert_eq!(s.len(), runs.len(), "{ctx}: len");
        assert_eq!(s.total(), m.len() as u64, "{ctx}: total");
        assert_eq!(s.is_empty(), m.is_empty(), "{ctx}: is_empty");
        assert_eq!(s.min(), m.first().copied(), "{ctx}: min");
        assert_eq!(s.max(), m.last().map(|x| x + 1), "{ctx}: max");
        for x in 0..DOMAIN + 2 {
            assert_eq!(s.contains(x), has(x), "{ctx}: contains({x})");
        }
        // The costlier queries at random points plus some run boundaries.
        let mut points: Vec<u64> = (0..12).map(|_| rng.below(DOMAIN + 2)).collect();
        points.extend(runs.iter().flat_map(|r| [r.start, r.end]).take(8));
        for x in points {
            let fm = (x..).find(|&y| !has(y)).unwrap_or(u64::MAX);
            assert_eq!(
                s.first_missing_from(x),
                fm,
                "{ctx}: first_missing_from({x})"
            );
            let model_from: Vec<Range<u64>> = runs
                .iter()
                .filter(|r| r.end > x)
                .map(|r| r.start.max(x)..r.end)
                .collect();
            assert_eq!(
                s.iter_from(x).collect::<Vec<_>>(),
                model_from,
                "{ctx}: iter_from({x})"
            );
        }
        for _ in 0..4 {
            let a = rng.below(DOMAIN + 5);
            let b = rng.below(DOMAIN + 5);
            let r = a..b;
            assert_eq!(
                s.gaps(r.clone()).collect::<Vec<_>>(),
                model_gaps_or_runs(&d, r.clone(), false),
                "{ctx}: gaps({r:?})"
            );
            let cov = r.clone().filter(|&x| has(x)).count() as u64;
            assert_eq!(s.covered_len(r.clone()), cov, "{ctx}: covered_len({r:?})");
            let all = r.clone().all(has);
            assert_eq!(
                s.contains_range(r.clone()),
                all,
                "{ctx}: contains_range({r:?})"
            );
        }
    }

    #[test]
    fn model_random_ops_match_btreeset() {
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let mut s = RangeSet::new();
            let mut m = BTreeSet::new();
            for op in 0..500 {
                let a = rng.below(DOMAIN);
                // Mostly short ranges so that holes survive; sometimes long or backwards ones.
                let len = if rng.below(8) == 0 {
                    rng.below(DOMAIN)
                } else {
                    rng.below(12)
                };
                let b = if rng.below(20) == 0 {
                    a.saturating_sub(len)
                } else {
                    (a + len).min(DOMAIN)
                };
                let kind = rng.below(10);
                let ctx = format!("seed {seed} op {op} kind {kind} range {a}..{b}");
                match kind {
                    0..=5 => {
                        let expect = (a..b).filter(|x| m.insert(*x)).count() as u64;
                        assert_eq!(s.insert(a..b), expect, "{ctx}: insert return");
                    }
                    6..=8 => {
                        let expect = (a..b).filter(|x| m.remove(x)).count() as u64;
                        assert_eq!(s.remove(a..b), expect, "{ctx}: remove return");
                    }
                    _ => {
                        if rng.below(4) == 0 {
                            let keep = rng.below(4) as usize;
                            s.pop_front_ranges_beyond(keep);
                            let runs = model_runs(&dense(&m));
                            let drop = runs.len().saturating_sub(keep);
                            for r in &runs[..drop] {
                                for x in r.clone() {
                                    m.remove(&x);
                                }
                            }
                        } else {
                            s.remove_below(a);
                            m.retain(|&x| x >= a);
                        }
                    }
                }
                check(&s, &m, &mut rng, &ctx);
            }
        }
    }
}
