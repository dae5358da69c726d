//! Small helpers for the result tables: nearest-rank percentiles, second formatting,
//! wall-clock milliseconds and a plain fixed-width text table.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (fractional), the one clock every timestamp of the
/// detection run uses: block times, injections, notices and webhook arrivals.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// Latency summary of one series (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

/// Nearest-rank p50 / p95 / max; `None` for an empty series.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[i.clamp(1, v.len()) - 1]
    };
    Some(Summary {
        p50: rank(50.0),
        p95: rank(95.0),
        max: v[v.len() - 1],
    })
}

/// `1.23 s`
pub fn secs(ms: f64) -> String {
    format!("{:.3} s", ms / 1000.0)
}

/// A text table with left-aligned columns separated by two spaces.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, r) in self.rows.iter().enumerate() {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| format!("{s:<w$}", w = width[c]))
                .collect();
            println!("  {}", line.join("  ").trim_end());
            if i == 0 {
                let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
                println!("  {}", "-".repeat(total));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = summarize(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.p50, s.p95, s.max), (3.0, 5.0, 5.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summarize(&twenty).unwrap();
        assert_eq!((s.p50, s.p95, s.max), (10.0, 19.0, 20.0));
        assert!(summarize(&[]).is_none());
    }
}
