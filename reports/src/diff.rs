//! What changed between two runs, cell by cell: regressions first (they are why anyone
//! reads a diff), then lost coverage, fixes, other verdict changes, new and removed cells.
//!
//! Cells are matched by scenario id and client id. When a client's id differs between the
//! runs only because its version changed (`crane@0.22.1` → `crane@0.23.0`), the two columns
//! are paired by client name — if that pairing is unambiguous — so a client upgrade shows as
//! verdict changes rather than as a whole column removed and another added.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::markdown::{code_text, table_cell};
use crate::present::label;
use crate::{Cell, RunReport, Verdict};

/// How one cell changed. The order is the order a diff lists them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Was pass, now fail or error.
    Regression,
    /// Was pass, now not-run or not-applicable: nothing is known to be broken, but the
    /// cell no longer proves anything.
    LostCoverage,
    /// Was anything but pass, now pass.
    Fix,
    /// Any other verdict change (fail → error, not-run → fail…).
    Changed,
    /// A cell only the new run has.
    Added,
    /// A cell only the old run has.
    Removed,
}

impl ChangeKind {
    pub fn heading(self) -> &'static str {
        match self {
            Self::Regression => "Regressions",
            Self::LostCoverage => "Lost coverage",
            Self::Fix => "Fixes",
            Self::Changed => "Other verdict changes",
            Self::Added => "New cells",
            Self::Removed => "Removed cells",
        }
    }
}

/// One cell whose verdict changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellChange {
    pub kind: ChangeKind,
    pub scenario: String,
    /// The client's id in the new run (in the old run for a removed cell).
    pub client: String,
    /// The client's id in the old run, when it differs (a version change).
    pub old_client: Option<String>,
    /// `None` for an added cell.
    pub old: Option<Verdict>,
    /// `None` for a removed cell.
    pub new: Option<Verdict>,
    /// The new cell's reason (the old one's for a removed cell).
    pub reason: String,
}

/// Every changed cell between two runs, in [`ChangeKind`] order, then by scenario and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub old_run: String,
    pub new_run: String,
    pub changes: Vec<CellChange>,
}

impl Diff {
    pub fn of_kind(&self, kind: ChangeKind) -> impl Iterator<Item = &CellChange> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn has_regressions(&self) -> bool {
        self.of_kind(ChangeKind::Regression).next().is_some()
    }
}

/// Compares two runs.
pub fn diff(old: &RunReport, new: &RunReport) -> Diff {
    let mut changes: Vec<CellChange> = pairs(old, new)
        .into_iter()
        .filter_map(|pair| {
            let kind = classify(pair.old.map(|c| c.verdict), pair.new.map(|c| c.verdict))?;
            Some(pair.change(kind))
        })
        .collect();
    changes.sort_by(|a, b| (a.kind, &a.scenario, &a.client).cmp(&(b.kind, &b.scenario, &b.client)));
    Diff {
        old_run: old.run_id.clone(),
        new_run: new.run_id.clone(),
        changes,
    }
}

/// The kind of change from `old` to `new` (`None`: the cell is absent from that run), or
/// `None` when nothing changed.
pub fn classify(old: Option<Verdict>, new: Option<Verdict>) -> Option<ChangeKind> {
    use Verdict::*;
    let kind = match (old, new) {
        (None, None) => return None,
        (None, Some(_)) => ChangeKind::Added,
        (Some(_), None) => ChangeKind::Removed,
        (Some(o), Some(n)) if o == n => return None,
        (Some(Pass | Fixed), Some(Fail | Error | KnownFailure)) => ChangeKind::Regression,
        (Some(Pass | Fixed), Some(NotRun | NotApplicable)) => ChangeKind::LostCoverage,
        (Some(Fail | Error | KnownFailure | NotRun | NotApplicable), Some(Pass | Fixed)) => {
            ChangeKind::Fix
        }
        (Some(_), Some(_)) => ChangeKind::Changed,
    };
    Some(kind)
}

/// The diff as a Markdown section: one table per kind of change that has any.
pub fn render_markdown(diff: &Diff) -> String {
    let mut md = format!(
        "## Changes from run `{}` to run `{}`\n\n",
        code_text(&diff.old_run),
        code_text(&diff.new_run)
    );
    if diff.is_empty() {
        md.push_str("No cell changed verdict.\n");
        return md;
    }
    let kinds = [
        ChangeKind::Regression,
        ChangeKind::LostCoverage,
        ChangeKind::Fix,
        ChangeKind::Changed,
        ChangeKind::Added,
        ChangeKind::Removed,
    ];
    for kind in kinds {
        let changes: Vec<&CellChange> = diff.of_kind(kind).collect();
        if !changes.is_empty() {
            md.push_str(&changes_table(kind.heading(), &changes));
        }
    }
    md
}

/// `### Heading (N)` and a table of the changes; shared with the baseline report.
pub(crate) fn changes_table(heading: &str, changes: &[&CellChange]) -> String {
    let mut md = format!("### {heading} ({})\n\n", changes.len());
    md.push_str("| Scenario | Client | Was | Now | Reason |\n|---|---|---|---|---|\n");
    for change in changes {
        let client = match &change.old_client {
            Some(old) => format!("{old} → {}", change.client),
            None => change.client.clone(),
        };
        let shown = |v: Option<Verdict>| v.map_or_else(|| "—".to_owned(), label);
        // `write!` into a String cannot fail.
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            table_cell(&change.scenario),
            table_cell(&client),
            shown(change.old),
            shown(change.new),
            table_cell(&change.reason)
        );
    }
    md.push('\n');
    md
}

/// One grid position as seen by both runs.
pub(crate) struct CellPair<'a> {
    pub scenario: &'a str,
    pub old_client: Option<&'a str>,
    pub new_client: Option<&'a str>,
    pub old: Option<&'a Cell>,
    pub new: Option<&'a Cell>,
}

impl CellPair<'_> {
    pub fn change(&self, kind: ChangeKind) -> CellChange {
        let client = self.new_client.or(self.old_client).unwrap_or_default();
        let old_client = self
            .old_client
            .filter(|old| self.new_client.is_some_and(|new| new != *old));
        CellChange {
            kind,
            scenario: self.scenario.to_owned(),
            client: client.to_owned(),
            old_client: old_client.map(str::to_owned),
            old: self.old.map(|c| c.verdict),
            new: self.new.map(|c| c.verdict),
            reason: self
                .new
                .or(self.old)
                .map(|c| c.reason.clone())
                .unwrap_or_default(),
        }
    }
}

/// Every cell of either run, matched across the runs.
pub(crate) fn pairs<'a>(old: &'a RunReport, new: &'a RunReport) -> Vec<CellPair<'a>> {
    let old_to_new = pair_clients(old, new);
    let new_cells = first_cells(new);
    let mut matched: HashSet<(&str, &str)> = HashSet::new();
    let mut pairs = Vec::new();
    for ((scenario, old_client), old_cell) in first_cells(old) {
        let new_client = old_to_new.get(old_client).copied();
        let new_cell = new_client.and_then(|client| new_cells.get(&(scenario, client)).copied());
        if let (Some(client), Some(_)) = (new_client, new_cell) {
            matched.insert((scenario, client));
        }
        pairs.push(CellPair {
            scenario,
            old_client: Some(old_client),
            new_client: new_cell.and(new_client),
            old: Some(old_cell),
            new: new_cell,
        });
    }
    for ((scenario, new_client), new_cell) in new_cells {
        if !matched.contains(&(scenario, new_client)) {
            pairs.push(CellPair {
                scenario,
                old_client: None,
                new_client: Some(new_client),
                old: None,
                new: Some(new_cell),
            });
        }
    }
    pairs
}

/// The first cell of each (scenario, client) — a duplicate is ignored, as `RunReport::cell` does.
fn first_cells(report: &RunReport) -> HashMap<(&str, &str), &Cell> {
    let mut cells = HashMap::new();
    for cell in &report.cells {
        cells
            .entry((cell.scenario.as_str(), cell.client.as_str()))
            .or_insert(cell);
    }
    cells
}

/// Maps each old client id to the new run's id for the same client: the same id, else the
/// only client of the same name on both sides that has no exact match.
fn pair_clients<'a>(old: &'a RunReport, new: &'a RunReport) -> HashMap<&'a str, &'a str> {
    let old_ids = client_ids(old);
    let new_ids = client_ids(new);
    let mut map: HashMap<&str, &str> = HashMap::new();
    for id in &old_ids {
        if new_ids.contains(id) {
            map.insert(id, id);
        }
    }
    let unmatched_old: Vec<&str> = old_ids
        .iter()
        .copied()
        .filter(|id| !new_ids.contains(id))
        .collect();
    let unmatched_new: Vec<&str> = new_ids
        .iter()
        .copied()
        .filter(|id| !old_ids.contains(id))
        .collect();
    for old_id in &unmatched_old {
        let name = client_name(old, old_id);
        let same_name_old = unmatched_old
            .iter()
            .filter(|id| client_name(old, id) == name)
            .count();
        let same_name_new: Vec<&str> = unmatched_new
            .iter()
            .copied()
            .filter(|id| client_name(new, id) == name)
            .collect();
        if let ([new_id], 1) = (same_name_new.as_slice(), same_name_old) {
            map.insert(old_id, new_id);
        }
    }
    map
}

/// The declared clients' ids and any other id a cell names, in first-seen order.
fn client_ids(report: &RunReport) -> Vec<&str> {
    let mut ids: Vec<&str> = report.clients.iter().map(|c| c.id.as_str()).collect();
    for cell in &report.cells {
        if !ids.contains(&cell.client.as_str()) {
            ids.push(&cell.client);
        }
    }
    ids
}

/// The client's declared name, else the part of its id before `@`.
fn client_name<'a>(report: &'a RunReport, id: &'a str) -> &'a str {
    report
        .clients
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
        .unwrap_or_else(|| id.split('@').next().unwrap_or(id))
}
