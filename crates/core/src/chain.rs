//! The recent canonical chain as headers, and what dBFT tells from them.
//!
//! dBFT: the primary (speaker) of view `v` for block `index` is `(index − v) mod n`, so a
//! block's view is `(index − primary) mod n`. A view above 0 means the primaries of views
//! 0..v−1 failed to get their proposal accepted: those validators missed their turn. Block
//! times come from header `time` (ms). Pure: the watch loop fetches the headers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observation::HeaderInfo;

/// Headers of the recent canonical chain, by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainHistory {
    headers: BTreeMap<u64, HeaderInfo>,
    keep: usize,
}

/// One block's consensus round as read from its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub index: u64,
    pub view: u32,
    pub primary: u32,
    /// Validators (by index) whose view timed out before this block: `(index − k) mod n`
    /// for k in 0..view.
    pub failed_primaries: Vec<u32>,
    pub time_ms: u64,
}

/// A validator's recent record as primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryRecord {
    pub validator: u32,
    /// Oldest first: true = its proposal made the block, false = its view timed out.
    pub turns: Vec<bool>,
    /// Blocks (indexes) where it missed its turn, most recent last.
    pub missed_blocks: Vec<u64>,
}

impl PrimaryRecord {
    pub fn missed_in_last(&self, window: usize) -> usize {
        self.turns
            .iter()
            .rev()
            .take(window)
            .filter(|ok| !**ok)
            .count()
    }
}

impl ChainHistory {
    /// Keep at most `keep` newest headers.
    pub fn new(keep: usize) -> Self {
        Self {
            headers: BTreeMap::new(),
            keep: keep.max(2),
        }
    }

    pub fn insert(&mut self, h: HeaderInfo) {
        self.headers.insert(h.index, h);
        while self.headers.len() > self.keep {
            self.headers.pop_first();
        }
    }

    pub fn get(&self, index: u64) -> Option<&HeaderInfo> {
        self.headers.get(&index)
    }

    pub fn newest(&self) -> Option<&HeaderInfo> {
        self.headers.values().next_back()
    }

    /// Indexes up to `best` not yet held, oldest first, at most `max`, never older than the
    /// `keep` newest (so a far-behind history does not fetch the whole chain).
    pub fn missing(&self, best: u64, max: usize) -> Vec<u64> {
        let from = best.saturating_sub(self.keep as u64 - 1);
        (from..=best)
            .filter(|i| !self.headers.contains_key(i))
            .take(max)
            .collect()
    }

    /// Consensus rounds of the held headers that carry a primary, oldest first.
    pub fn rounds(&self, validators: u32) -> Vec<Round> {
        if validators == 0 {
            return Vec::new();
        }
        let n = u64::from(validators);
        self.headers
            .values()
            .filter_map(|h| {
                let primary = h.primary?;
                let view = ((h.index + n - u64::from(primary) % n) % n) as u32;
                let failed_primaries = (0..view)
                    .map(|k| ((h.index + n - u64::from(k) % n) % n) as u32)
                    .collect();
                Some(Round {
                    index: h.index,
                    view,
                    primary,
                    failed_primaries,
                    time_ms: h.time_ms,
                })
            })
            .collect()
    }

    /// Each validator's turns as primary over the held rounds.
    pub fn primary_records(&self, validators: u32) -> Vec<PrimaryRecord> {
        let mut records: BTreeMap<u32, PrimaryRecord> = (0..validators)
            .map(|v| {
                (
                    v,
                    PrimaryRecord {
                        validator: v,
                        turns: Vec::new(),
                        missed_blocks: Vec::new(),
                    },
                )
            })
            .collect();
        for r in self.rounds(validators) {
            for f in &r.failed_primaries {
                if let Some(rec) = records.get_mut(f) {
                    rec.turns.push(false);
                    rec.missed_blocks.push(r.index);
                }
            }
            if let Some(rec) = records.get_mut(&r.primary) {
                rec.turns.push(true);
            }
        }
        records.into_values().collect()
    }

    /// The last `blocks` block intervals (ms), oldest first, when the newest `blocks + 1`
    /// headers are all held; with the first and last index covered.
    pub fn recent_intervals(&self, blocks: usize) -> Option<(Vec<u64>, u64, u64)> {
        let newest = self.newest()?.index;
        let first = newest.checked_sub(blocks as u64)?;
        let mut out = Vec::with_capacity(blocks);
        for i in first..newest {
            let (a, b) = (self.headers.get(&i)?, self.headers.get(&(i + 1))?);
            out.push(b.time_ms.saturating_sub(a.time_ms));
        }
        Some((out, first, newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(index: u64, primary: u32, time_ms: u64) -> HeaderInfo {
        HeaderInfo {
            hash: format!("0x{index:064x}"),
            index,
            time_ms,
            primary: Some(primary),
            next_consensus: "NZHf1NJvz1tvELGLWZjhpb3NqZJFFUYpxT".into(),
            previous_hash: format!("0x{:064x}", index.saturating_sub(1)),
        }
    }

    #[test]
    fn view_and_failed_primaries_follow_dbft() {
        let mut c = ChainHistory::new(100);
        // n = 4: block 10 at view 0 has primary 2; block 11 at view 2 has primary 1 and
        // validators 3 (view 0) and 2 (view 1) failed.
        c.insert(header(10, 2, 1_000));
        c.insert(header(11, 1, 4_000));
        let r = c.rounds(4);
        assert_eq!((r[0].view, r[0].failed_primaries.clone()), (0, vec![]));
        assert_eq!((r[1].view, r[1].failed_primaries.clone()), (2, vec![3, 2]));
    }

    #[test]
    fn missed_turns_are_counted_per_validator() {
        let mut c = ChainHistory::new(100);
        let n = 4u64;
        // validator 1 is down: every block it should propose goes to view 1
        for i in 0..20u64 {
            let view0 = (i % n) as u32;
            let primary = if view0 == 1 { 0 } else { view0 };
            c.insert(header(i, primary, i * 1000));
        }
        let recs = c.primary_records(4);
        assert_eq!(recs[1].missed_in_last(5), 5);
        assert_eq!(recs[1].missed_blocks, [1, 5, 9, 13, 17]);
        assert_eq!(recs[0].missed_in_last(5), 0);
        assert_eq!(recs[2].missed_in_last(5), 0);
    }

    #[test]
    fn missing_and_block_time() {
        let mut c = ChainHistory::new(5);
        for i in [3u64, 5] {
            c.insert(header(i, 0, i * 2000));
        }
        assert_eq!(c.missing(7, 10), [4, 6, 7]);
        assert_eq!(c.missing(7, 2), [4, 6]);
        for i in 0..=20u64 {
            c.insert(header(i, 0, i * 2000));
        }
        assert_eq!(c.recent_intervals(4), Some((vec![2000; 4], 16, 20)));
        assert_eq!(c.recent_intervals(10), None, "only 5 headers kept");
    }
}
