//! The rows of a batch in runs by group, for accumulators whose per-group work has a fixed cost
//! (finding a group's sketch, making it unique, checking its insert buffer) that should be paid
//! once per group and batch rather than once per row.
//!
//! A stable counting sort over the groups the batch touches: O(rows + touched groups) per batch,
//! with a per-group counter array kept between batches and all zero between calls, so a batch of
//! 1,000 rows in a table of a million groups costs what its 1,000 rows cost. Rows keep their
//! order within a run, so an order-dependent sketch sees its rows in the same order as a
//! row-by-row fold.

use super::NO_GROUP;

#[derive(Debug, Clone, Default)]
pub struct GroupRuns {
    /// Per group: rows seen in this batch (pass 1), then the next free slot (pass 2). All zero
    /// between calls.
    counts: Vec<u32>,
    /// Groups in the order the batch first touches them.
    touched: Vec<u32>,
    /// Where each touched group's run starts in `rows`, plus the end.
    starts: Vec<u32>,
    /// Row indices, grouped.
    rows: Vec<u32>,
}

impl GroupRuns {
    /// Group the rows `i` with `gids[i] != NO_GROUP` and `valid(i)`; groups are below `groups`.
    pub fn build(&mut self, gids: &[u32], groups: usize, valid: impl Fn(usize) -> bool) {
        if self.counts.len() < groups {
            self.counts.resize(groups, 0);
        }
        self.touched.clear();
        let mut n = 0u32;
        for (row, &g) in gids.iter().enumerate() {
            if g == NO_GROUP || !valid(row) {
                continue;
            }
            let c = &mut self.counts[g as usize];
            if *c == 0 {
                self.touched.push(g);
            }
            *c += 1;
            n += 1;
        }
        self.starts.clear();
        let mut at = 0u32;
        for &g in &self.touched {
            self.starts.push(at);
            let c = &mut self.counts[g as usize];
            let len = *c;
            *c = at;
            at += len;
        }
        self.starts.push(at);
        self.rows.clear();
        self.rows.resize(n as usize, 0);
        for (row, &g) in gids.iter().enumerate() {
            if g == NO_GROUP || !valid(row) {
                continue;
            }
            let slot = &mut self.counts[g as usize];
            self.rows[*slot as usize] = row as u32;
            *slot += 1;
        }
        for &g in &self.touched {
            self.counts[g as usize] = 0;
        }
    }

    /// Each touched group with its rows, in first-touched order.
    pub fn runs(&self) -> impl Iterator<Item = (usize, &[u32])> + '_ {
        self.touched.iter().enumerate().map(|(i, &g)| {
            let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
            (g as usize, &self.rows[a..b])
        })
    }

    pub fn memory_bytes(&self) -> usize {
        (self.counts.capacity() + self.touched.capacity() + self.starts.capacity())
            * std::mem::size_of::<u32>()
            + self.rows.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hold_each_valid_row_once_in_order_and_reset_the_counters() {
        let mut runs = GroupRuns::default();
        let mut rng = crate::testutil::SplitMix64(3);
        for batch in 0..50 {
            let groups = 1 + rng.below(40) as usize;
            let n = rng.below(300) as usize;
            let gids: Vec<u32> = (0..n)
                .map(|_| match rng.below(10) {
                    0 => NO_GROUP,
                    _ => rng.below(groups as u64) as u32,
                })
                .collect();
            let valid = |row: usize| row % 7 != 3;
            runs.build(&gids, groups, valid);
            let mut seen = Vec::new();
            let mut firsts = Vec::new();
            for (g, rows) in runs.runs() {
                assert!(!rows.is_empty());
                assert!(
                    rows.windows(2).all(|w| w[0] < w[1]),
                    "batch {batch}: order kept"
                );
                firsts.push(rows[0]);
                for &r in rows {
                    assert_eq!(gids[r as usize] as usize, g);
                    seen.push(r);
                }
            }
            // Runs come in first-touched order.
            assert!(firsts.windows(2).all(|w| w[0] < w[1]));
            seen.sort_unstable();
            let want: Vec<u32> = (0..n as u32)
                .filter(|&r| gids[r as usize] != NO_GROUP && valid(r as usize))
                .collect();
            assert_eq!(seen, want, "batch {batch}");
            assert!(runs.counts.iter().all(|&c| c == 0));
        }
    }
}
