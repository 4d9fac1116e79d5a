//! A set of disjoint, half-open `u64` ranges.
//!
//! Three parts of the protocol need "which numbers have I seen?": the
//! receiver's record of packet numbers to acknowledge (PROTOCOL.md §6), the
//! sender's record of stream bytes the peer has acknowledged, and the
//! receiver's record of stream bytes that arrived out of order (§8). One small
//! type serves all three.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges, keyed by start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (exclusive). Invariant: no two entries overlap or touch.
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether `value` lies in the set.
    pub fn contains(&self, value: u64) -> bool {
        self.map
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value < end)
    }

    /// Adds `range`, merging with neighbours. Returns true if any value was new.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        if range.start >= range.end {
            return false;
        }
        let (mut start, mut end) = (range.start, range.end);
        // Is the range already wholly covered?
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if s <= start && end <= e {
                return false;
            }
        }
        // Merge with a predecessor that overlaps or touches.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.map.remove(&s);
            }
        }
        // Absorb every successor that starts within (or touching) the range.
        while let Some((&s, &e)) = self.map.range(start..).next() {
            if s > end {
                break;
            }
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
        true
    }

    /// Removes every value in `range`.
    pub fn remove(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        let overlapping: Vec<(u64, u64)> = self
            .map
            .range(..range.end)
            .rev()
            .take_while(|(_, &e)| e > range.start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.map.remove(&s);
            if s < range.start {
                self.map.insert(s, range.start);
            }
            if e > range.end {
                self.map.insert(range.end, e);
            }
        }
    }

    /// The parts of `range` that are not in the set, in ascending order.
    pub fn gaps_in(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut cursor = range.start;
        // Start from the range that may cover `range.start`.
        let first = self
            .map
            .range(..=range.start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(range.start);
        for (&s, &e) in self.map.range(first..) {
            if s >= range.end {
                break;
            }
            if s > cursor {
                out.push(cursor..s.min(range.end));
            }
            cursor = cursor.max(e);
            if cursor >= range.end {
                break;
            }
        }
        if cursor < range.end {
            out.push(cursor..range.end);
        }
        out
    }

    /// Lowest range, if any.
    pub fn first(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// Removes and returns the lowest range.
    pub fn pop_first(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Ranges from highest to lowest.
    pub fn iter_rev(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().rev().map(|(&s, &e)| s..e)
    }

    /// Ranges from lowest to highest.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_merges_neighbours() {
        let mut s = RangeSet::new();
        assert!(s.insert(0..2));
        assert!(s.insert(4..6));
        assert!(s.insert(2..4));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..6]);
        assert!(!s.insert(1..5));
    }

    #[test]
    fn remove_splits() {
        let mut s = RangeSet::new();
        s.insert(0..10);
        s.remove(3..5);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..3, 5..10]);
        assert!(!s.contains(4));
        assert!(s.contains(5));
    }

    #[test]
    fn gaps() {
        let mut s = RangeSet::new();
        s.insert(2..4);
        s.insert(6..8);
        assert_eq!(s.gaps_in(0..10), vec![0..2, 4..6, 8..10]);
        assert_eq!(s.gaps_in(3..7), vec![4..6]);
        assert_eq!(s.gaps_in(2..4), Vec::<Range<u64>>::new());
    }

    proptest! {
        /// The set behaves exactly like a set of integers.
        #[test]
        fn matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 0u64..8), 0..64)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for (add, start, len) in ops {
                if add {
                    let new = (start..start + len).any(|v| !model.contains(&v));
                    prop_assert_eq!(s.insert(start..start + len), new);
                    model.extend(start..start + len);
                } else {
                    s.remove(start..start + len);
                    for v in start..start + len { model.remove(&v); }
                }
                for v in 0..80 {
                    prop_assert_eq!(s.contains(v), model.contains(&v));
                }
                let gaps: Vec<u64> = s.gaps_in(0..80).into_iter().flatten().collect();
                let model_gaps: Vec<u64> = (0..80).filter(|v| !model.contains(v)).collect();
                prop_assert_eq!(gaps, model_gaps);
                // Ranges never touch.
                let r: Vec<_> = s.iter().collect();
                for w in r.windows(2) { prop_assert!(w[0].end < w[1].start); }
            }
        }
    }
}
