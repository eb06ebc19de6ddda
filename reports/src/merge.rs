//! Merging the reports of a sharded run (`run-scenarios --shard I/N`, [`crate::shard`]) into
//! the report of the whole matrix (`cargo xtask report-merge`).
//!
//! Shards of one run agree on everything but their cells: the regcompat version, the
//! scenario rows, the client columns and the shard count. [`merge`] refuses anything else —
//! reports of different versions, scenario sets or client columns, mixed shard counts, a
//! report that is no shard, a shard given twice, a cell in two inputs — and, unless
//! [`MergeOptions::allow_partial`], a missing shard or a cell of the matrix that no input
//! holds (shards that saw different histories assign cells differently).
//!
//! The merged report has no `shard`; its cells are in the order a whole run writes them
//! ([`sort_cells_as_run`]: scenario rows, then client columns, as declared), and everything
//! counted from them (totals, attention lists) is counted again by the writers.

use std::collections::{BTreeSet, HashMap};

use crate::shard::CellKey;
use crate::{ClientInfo, RunReport, SCHEMA_VERSION};

/// One report to merge and where it came from (its path), for error messages.
#[derive(Debug, Clone)]
pub struct MergeInput {
    pub origin: String,
    pub report: RunReport,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Merge even when shards are missing or cells of the matrix are in no input.
    pub allow_partial: bool,
}

/// Why reports cannot be merged. Each message is one line naming the inputs involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no report to merge")]
    NoInputs,
    #[error(
        "{origin} is not a shard report (it has no `shard`): merge the reports of \
         `run-scenarios --shard I/N`"
    )]
    NotAShard { origin: String },
    #[error(
        "{origin} was written by regcompat {found}, {first} by regcompat {expected}: shards of \
         one run come from one version"
    )]
    VersionsDiffer {
        origin: String,
        found: String,
        first: String,
        expected: String,
    },
    #[error(
        "{origin} is shard {shard}, {first} is one of {expected} shards: the inputs come from \
         different shard counts"
    )]
    ShardCountsDiffer {
        origin: String,
        shard: crate::shard::Shard,
        first: String,
        expected: usize,
    },
    #[error("{origin} and {first} have different scenario sets: {difference}")]
    ScenariosDiffer {
        origin: String,
        first: String,
        difference: String,
    },
    #[error("{origin} and {first} have different client columns: {difference}")]
    ClientsDiffer {
        origin: String,
        first: String,
        difference: String,
    },
    #[error("shard {shard} is given twice: {first} and {origin}")]
    ShardGivenTwice {
        shard: crate::shard::Shard,
        first: String,
        origin: String,
    },
    #[error("cell {cell} is in both {first} and {origin}: the shards overlap")]
    OverlappingCell {
        cell: CellKey,
        first: String,
        origin: String,
    },
    #[error(
        "{origin}: cell {cell} is outside its own matrix (its scenario or client is not declared)"
    )]
    CellOutsideMatrix { origin: String, cell: CellKey },
    #[error(
        "missing shard(s) {missing} of {count} (--allow-partial merges the shards that are there)"
    )]
    MissingShards { missing: String, count: usize },
    #[error(
        "{missing} cell(s) of the matrix are in no input, e.g. {example}: did every shard read \
         the same history directory? (--allow-partial merges anyway)"
    )]
    MissingCells { missing: usize, example: CellKey },
}

/// Merges shard reports into the report of the whole run (see the module documentation).
pub fn merge(inputs: Vec<MergeInput>, options: MergeOptions) -> Result<RunReport, MergeError> {
    let mut shards = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input.report.shard {
            Some(shard) => shards.push((shard, input)),
            None => {
                return Err(MergeError::NotAShard {
                    origin: input.origin,
                });
            }
        }
    }
    // The lowest shard first: it is the one every other input is compared with. Stable, so
    // two inputs claiming one shard keep the command line's order.
    shards.sort_by_key(|(shard, _)| shard.index);
    let Some((first_shard, first)) = shards.first() else {
        return Err(MergeError::NoInputs);
    };
    let (first_shard, first) = (*first_shard, first.clone());
    let scenario_ids: BTreeSet<&str> = first
        .report
        .scenarios
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    let client_ids: BTreeSet<&str> = first.report.clients.iter().map(|c| c.id.as_str()).collect();
    for (shard, input) in &shards {
        let report = &input.report;
        if report.regcompat_version != first.report.regcompat_version {
            return Err(MergeError::VersionsDiffer {
                origin: input.origin.clone(),
                found: report.regcompat_version.clone(),
                first: first.origin.clone(),
                expected: first.report.regcompat_version.clone(),
            });
        }
        if shard.count != first_shard.count {
            return Err(MergeError::ShardCountsDiffer {
                origin: input.origin.clone(),
                shard: *shard,
                first: first.origin.clone(),
                expected: first_shard.count,
            });
        }
        let scenarios: BTreeSet<&str> = report.scenarios.iter().map(|s| s.id.as_str()).collect();
        if let Some(difference) =
            difference(&scenarios, &scenario_ids, &input.origin, &first.origin)
        {
            return Err(MergeError::ScenariosDiffer {
                origin: input.origin.clone(),
                first: first.origin.clone(),
                difference,
            });
        }
        let clients: BTreeSet<&str> = report.clients.iter().map(|c| c.id.as_str()).collect();
        if let Some(difference) = difference(&clients, &client_ids, &input.origin, &first.origin) {
            return Err(MergeError::ClientsDiffer {
                origin: input.origin.clone(),
                first: first.origin.clone(),
                difference,
            });
        }
    }
    for pair in shards.windows(2) {
        if let [(a, first_input), (b, input)] = pair
            && a.index == b.index
        {
            return Err(MergeError::ShardGivenTwice {
                shard: *b,
                first: first_input.origin.clone(),
                origin: input.origin.clone(),
            });
        }
    }

    let mut holder: HashMap<CellKey, &str> = HashMap::new();
    for (_, input) in &shards {
        for cell in &input.report.cells {
            let key = CellKey::new(cell.scenario.as_str(), cell.client.as_str());
            if !scenario_ids.contains(key.scenario.as_str())
                || !client_ids.contains(key.client.as_str())
            {
                return Err(MergeError::CellOutsideMatrix {
                    origin: input.origin.clone(),
                    cell: key,
                });
            }
            if let Some(other) = holder.insert(key.clone(), input.origin.as_str()) {
                return Err(MergeError::OverlappingCell {
                    cell: key,
                    first: other.to_owned(),
                    origin: input.origin.clone(),
                });
            }
        }
    }

    if !options.allow_partial {
        let missing: Vec<String> = (1..=first_shard.count)
            .filter(|index| !shards.iter().any(|(shard, _)| shard.index == *index))
            .map(|index| index.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::MissingShards {
                missing: missing.join(", "),
                count: first_shard.count,
            });
        }
        let absent: Vec<CellKey> = first
            .report
            .scenarios
            .iter()
            .flat_map(|s| {
                first
                    .report
                    .clients
                    .iter()
                    .map(move |c| CellKey::new(s.id.as_str(), c.id.as_str()))
            })
            .filter(|key| !holder.contains_key(key))
            .collect();
        if let Some(example) = absent.first() {
            return Err(MergeError::MissingCells {
                missing: absent.len(),
                example: example.clone(),
            });
        }
    }

    let clients = first
        .report
        .clients
        .iter()
        .map(|column| available_column(column, &shards))
        .collect();
    let started = shards
        .iter()
        .map(|(_, i)| i.report.started.as_str())
        .min()
        .unwrap_or_default()
        .to_owned();
    let finished = shards
        .iter()
        .map(|(_, i)| i.report.finished.as_str())
        .max()
        .unwrap_or_default()
        .to_owned();
    let cells = shards
        .iter()
        .flat_map(|(_, input)| input.report.cells.iter().cloned())
        .collect();
    let mut merged = RunReport {
        schema: SCHEMA_VERSION.to_owned(),
        run_id: format!("{}-merged", first.report.run_id),
        started,
        finished,
        regcompat_version: first.report.regcompat_version.clone(),
        clients,
        scenarios: first.report.scenarios.clone(),
        cells,
        shard: None,
    };
    sort_cells_as_run(&mut merged);
    Ok(merged)
}

/// A column as a shard that ran cells of it saw it, preferably one where its client was
/// available: a shard without cells in a column may not have installed its client (its
/// report then says `unavailable`).
fn available_column(
    column: &ClientInfo,
    shards: &[(crate::shard::Shard, MergeInput)],
) -> ClientInfo {
    let seen: Vec<(&ClientInfo, bool)> = shards
        .iter()
        .filter_map(|(_, input)| {
            let info = input.report.clients.iter().find(|c| c.id == column.id)?;
            let ran = input
                .report
                .cells
                .iter()
                .any(|cell| cell.client == column.id);
            Some((info, ran))
        })
        .collect();
    let pick = |wanted: &dyn Fn(&(&ClientInfo, bool)) -> bool| {
        seen.iter().find(|s| wanted(s)).map(|(info, _)| *info)
    };
    pick(&|(info, ran)| *ran && info.unavailable.is_none())
        .or_else(|| pick(&|(_, ran)| *ran))
        .or_else(|| pick(&|(info, _)| info.unavailable.is_none()))
        .unwrap_or(column)
        .clone()
}

/// The first id in one set and not the other, said in one phrase.
fn difference(
    these: &BTreeSet<&str>,
    first: &BTreeSet<&str>,
    origin: &str,
    first_origin: &str,
) -> Option<String> {
    if let Some(id) = these.difference(first).next() {
        return Some(format!("`{id}` only in {origin}"));
    }
    first
        .difference(these)
        .next()
        .map(|id| format!("`{id}` only in {first_origin}"))
}

/// Orders the cells as a whole run writes them: by the declared scenario rows, then by the
/// declared client columns; cells of undeclared rows or columns after them, by id.
pub fn sort_cells_as_run(report: &mut RunReport) {
    let rows: HashMap<&str, usize> = report
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let columns: HashMap<&str, usize> = report
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut cells = std::mem::take(&mut report.cells);
    cells.sort_by_cached_key(|cell| {
        (
            rows.get(cell.scenario.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            cell.scenario.clone(),
            columns
                .get(cell.client.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            cell.client.clone(),
        )
    });
    report.cells = cells;
}
