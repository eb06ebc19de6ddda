//! Sharding a matrix run: `run-scenarios --shard I/N` runs one of N disjoint parts of the
//! cells (scenario row × client column); `report-merge` ([`crate::merge`]) puts the N
//! reports back together.
//!
//! The assignment is a pure function of the cell list, N and the recorded durations, so every
//! shard computes the same one on its own: the N shards together hold every cell exactly once.
//!
//! - **With recorded durations** (earlier results for the cells in the history directory,
//!   [`recorded_durations`]): greedy longest-processing-time — cells sorted by duration,
//!   longest first (ties by scenario, then client), each given to the currently lightest
//!   shard (ties: the lowest index). A cell without a record counts as the mean of the
//!   recorded ones. The heaviest shard is then at most the ideal (total / N) plus the longest
//!   cell.
//! - **Without** (no cell has a record): round-robin over the cells sorted by scenario, then
//!   client.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ReportError, RunReport, history, json};

/// One shard of a run: `index` of `count`, 1-based (`2/3` is the second of three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Why a `--shard` value is not `I/N` with `1 <= I <= N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("expected I/N (e.g. 2/3), got `{0}`")]
    Syntax(String),
    #[error("the shard count must be at least 1, got `{0}`")]
    NoShards(String),
    #[error("the shard index must be between 1 and {count}, got `{value}`")]
    IndexOutOfRange { value: String, count: usize },
}

impl Shard {
    /// Shard `index` of `count`, checked: `1 <= index <= count`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        let value = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardError::NoShards(value));
        }
        if index == 0 || index > count {
            return Err(ShardError::IndexOutOfRange { value, count });
        }
        Ok(Self { index, count })
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(text.to_owned());
        let (index, count) = text.split_once('/').ok_or_else(syntax)?;
        let number = |part: &str| {
            // `usize::from_str` accepts a leading `+`; an index is digits only.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            part.parse::<usize>().map_err(|_| syntax())
        };
        let (index, count) = (number(index)?, number(count)?);
        Self::new(index, count).map_err(|e| match e {
            ShardError::NoShards(_) => ShardError::NoShards(text.to_owned()),
            ShardError::IndexOutOfRange { count, .. } => ShardError::IndexOutOfRange {
                value: text.to_owned(),
                count,
            },
            other => other,
        })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A cell of the matrix by its row and column ids ([`crate::Cell::scenario`],
/// [`crate::Cell::client`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub scenario: String,
    pub client: String,
}

impl CellKey {
    pub fn new(scenario: impl Into<String>, client: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            client: client.into(),
        }
    }
}

impl std::fmt::Display for CellKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} × {}", self.scenario, self.client)
    }
}

/// What an assignment was balanced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Recorded durations (`recorded` of the cells had one; the others counted as their mean).
    Durations { recorded: usize },
    /// No cell had a recorded duration: round-robin over the cells sorted by (scenario, client).
    Order,
}

/// The cells' shards: `shard_of[i]` is the 1-based shard of `cells[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub shard_of: Vec<usize>,
    pub balance: Balance,
}

impl Assignment {
    /// The positions (in the input list, ascending) of the cells of shard `index` (1-based).
    pub fn cells_of(&self, index: usize) -> Vec<usize> {
        self.shard_of
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == index)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Assigns each of `cells` to one of `count` shards (see the module documentation);
/// `durations` holds the recorded durations in milliseconds of the cells that have one.
/// A `count` of 0 is taken as 1.
pub fn assign(cells: &[CellKey], count: usize, durations: &HashMap<CellKey, u64>) -> Assignment {
    let count = count.max(1);
    // Positions sorted by (scenario, client), the input position last (duplicated cells).
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|a, b| (&cells[*a], a).cmp(&(&cells[*b], b)));
    let mut shard_of = vec![0; cells.len()];
    let recorded: Vec<u64> = cells
        .iter()
        .filter_map(|c| durations.get(c).copied())
        .collect();
    if recorded.is_empty() {
        for (k, position) in order.iter().enumerate() {
            shard_of[*position] = k % count + 1;
        }
        return Assignment {
            shard_of,
            balance: Balance::Order,
        };
    }
    let mean = recorded.iter().map(|d| u128::from(*d)).sum::<u128>() / recorded.len() as u128;
    let mean = u64::try_from(mean).unwrap_or(u64::MAX);
    let duration = |position: usize| durations.get(&cells[position]).copied().unwrap_or(mean);
    // Longest first; `sort_by` is stable, so equal durations keep the (scenario, client) order.
    order.sort_by_key(|position| std::cmp::Reverse(duration(*position)));
    // More shards than cells: the ones beyond the cell count stay empty either way.
    let mut loads = vec![0u128; count.min(cells.len())];
    for position in order {
        let lightest = loads
            .iter()
            .enumerate()
            .min_by_key(|(index, load)| (**load, *index))
            .map_or(0, |(index, _)| index);
        loads[lightest] += u128::from(duration(position));
        shard_of[position] = lightest + 1;
    }
    Assignment {
        shard_of,
        balance: Balance::Durations {
            recorded: recorded.len(),
        },
    }
}

/// `report` cut into its `count` shard reports as `run-scenarios --shard I/N` would have
/// written them (every shard keeps the whole matrix's clients and scenarios and gets
/// `shard` set); `durations` as for [`assign`].
pub fn split(
    report: &RunReport,
    count: usize,
    durations: &HashMap<CellKey, u64>,
) -> Vec<RunReport> {
    let count = count.max(1);
    let keys: Vec<CellKey> = report
        .cells
        .iter()
        .map(|c| CellKey::new(c.scenario.as_str(), c.client.as_str()))
        .collect();
    let assignment = assign(&keys, count, durations);
    (1..=count)
        .map(|index| RunReport {
            run_id: format!("{}-shard-{index}-of-{count}", report.run_id),
            cells: assignment
                .cells_of(index)
                .into_iter()
                .map(|position| report.cells[position].clone())
                .collect(),
            shard: Some(Shard { index, count }),
            ..report.clone()
        })
        .collect()
}

/// Each cell's duration in the newest run of `history_dir` that has the cell (history entries
/// keep `duration_ms`); empty when the directory does not exist. A file that is not a report
/// of this schema is an error naming it.
pub fn recorded_durations(history_dir: &Path) -> Result<HashMap<CellKey, u64>, ReportError> {
    let mut durations = HashMap::new();
    for entry in history::list(history_dir)?.iter().rev() {
        let report = json::read(&entry.path)?;
        for cell in report.cells {
            durations
                .entry(CellKey::new(cell.scenario, cell.client))
                .or_insert(cell.duration_ms);
        }
    }
    Ok(durations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(scenarios: usize, clients: usize) -> Vec<CellKey> {
        let mut cells = Vec::new();
        for s in 0..scenarios {
            for c in 0..clients {
                cells.push(CellKey::new(
                    format!("scenario-{s:02}"),
                    format!("client-{c}"),
                ));
            }
        }
        cells
    }

    /// Durations that differ a lot and repeat (ties), from a fixed formula.
    fn durations(cells: &[CellKey]) -> HashMap<CellKey, u64> {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), 100 + ((i as u64 * 7919) % 13) * 1000))
            .collect()
    }

    fn check_partition(cells: &[CellKey], assignment: &Assignment, count: usize) {
        assert_eq!(assignment.shard_of.len(), cells.len());
        let mut seen = vec![0usize; cells.len()];
        for index in 1..=count {
            for position in assignment.cells_of(index) {
                seen[position] += 1;
            }
        }
        // Every cell in exactly one shard: the union is all cells, the shards are disjoint.
        assert!(seen.iter().all(|n| *n == 1), "count {count}: {seen:?}");
        assert!(assignment.shard_of.iter().all(|s| (1..=count).contains(s)));
    }

    #[test]
    fn shards_partition_the_cells_with_and_without_durations() {
        let cells = cells(7, 5);
        let recorded = durations(&cells);
        for count in 1..=4 {
            let by_order = assign(&cells, count, &HashMap::new());
            assert_eq!(by_order.balance, Balance::Order);
            check_partition(&cells, &by_order, count);
            // Round-robin: shard sizes differ by at most one.
            let sizes: Vec<usize> = (1..=count).map(|i| by_order.cells_of(i).len()).collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                "{sizes:?}"
            );

            let by_duration = assign(&cells, count, &recorded);
            assert_eq!(
                by_duration.balance,
                Balance::Durations {
                    recorded: cells.len()
                }
            );
            check_partition(&cells, &by_duration, count);
            let load = |index: usize| -> u64 {
                by_duration
                    .cells_of(index)
                    .iter()
                    .map(|p| recorded[&cells[*p]])
                    .sum()
            };
            let total: u64 = recorded.values().sum();
            let longest = recorded.values().max().copied().unwrap_or(0);
            let heaviest = (1..=count).map(load).max().unwrap_or(0);
            // Within the longest cell of the ideal.
            assert!(
                heaviest as f64 <= total as f64 / count as f64 + longest as f64,
                "count {count}: heaviest {heaviest}, total {total}, longest {longest}"
            );
            // Deterministic: the same answer every time.
            assert_eq!(assign(&cells, count, &recorded), by_duration);
            assert_eq!(assign(&cells, count, &HashMap::new()), by_order);
        }
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_input_order() {
        let cells = cells(6, 4);
        let recorded = durations(&cells);
        let mut reversed = cells.clone();
        reversed.reverse();
        for durations in [HashMap::new(), recorded] {
            let forward = assign(&cells, 3, &durations);
            let backward = assign(&reversed, 3, &durations);
            for (i, cell) in cells.iter().enumerate() {
                let j = reversed.iter().position(|c| c == cell).unwrap();
                assert_eq!(forward.shard_of[i], backward.shard_of[j], "{cell}");
            }
        }
    }

    #[test]
    fn durations_balance_better_than_order_and_unrecorded_cells_count_as_the_mean() {
        // One long cell and many short ones: by order, the long one's shard also gets its
        // share of short ones; by duration, it is alone.
        let cells = cells(1, 9);
        let mut recorded: HashMap<CellKey, u64> = cells.iter().map(|c| (c.clone(), 10)).collect();
        recorded.insert(cells[0].clone(), 1000);
        let assignment = assign(&cells, 2, &recorded);
        let shard_of_long = assignment.shard_of[0];
        assert_eq!(assignment.cells_of(shard_of_long), vec![0]);
        // Only some recorded: still balanced by durations, every cell placed.
        let mut some = HashMap::new();
        some.insert(cells[3].clone(), 500);
        let partial = assign(&cells, 3, &some);
        assert_eq!(partial.balance, Balance::Durations { recorded: 1 });
        check_partition(&cells, &partial, 3);
    }

    #[test]
    fn more_shards_than_cells_leaves_some_empty() {
        let cells = cells(1, 2);
        for durations in [HashMap::new(), durations(&cells)] {
            let assignment = assign(&cells, 5, &durations);
            check_partition(&cells, &assignment, 5);
            assert!(assignment.cells_of(5).is_empty());
        }
        assert_eq!(
            assign(&[], 3, &HashMap::new()).shard_of,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn shard_values_parse_and_bad_ones_say_why() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("1/1".parse::<Shard>(), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(Shard { index: 2, count: 3 }.to_string(), "2/3");
        for (bad, needle) in [
            ("0/3", "between 1 and 3"),
            ("4/3", "between 1 and 3"),
            ("1/0", "at least 1"),
            ("0/0", "at least 1"),
            ("x/y", "expected I/N"),
            ("2", "expected I/N"),
            ("+1/3", "expected I/N"),
            ("1/3/4", "expected I/N"),
            ("", "expected I/N"),
            ("1/99999999999999999999999", "expected I/N"),
        ] {
            let error = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(error.contains(needle), "{bad}: {error}");
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn recorded_durations_come_from_the_newest_run_that_has_the_cell() {
        let dir = tempfile::tempdir().unwrap();
        let run = |run_id: &str, started: &str, cells: &[(&str, u64)]| {
            let mut report = crate::markdown::tests::sample();
            report.run_id = run_id.into();
            report.started = started.into();
            report.cells = cells
                .iter()
                .map(|(scenario, ms)| {
                    let mut cell = crate::Cell::without_evidence(
                        *scenario,
                        "crane@1",
                        crate::Verdict::Pass,
                        "",
                    );
                    cell.duration_ms = *ms;
                    cell
                })
                .collect();
            history::append(&report, dir.path()).unwrap();
        };
        run("old", "2026-01-01T00:00:00Z", &[("a", 1), ("b", 2)]);
        run("new", "2026-02-01T00:00:00Z", &[("a", 10)]);
        let durations = recorded_durations(dir.path()).unwrap();
        assert_eq!(durations[&CellKey::new("a", "crane@1")], 10);
        assert_eq!(durations[&CellKey::new("b", "crane@1")], 2);
        assert_eq!(durations.len(), 2);
        assert!(
            recorded_durations(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}
