//! Run history: each run stored as `<run_id>.json` in one directory, the oldest removed
//! beyond a bound so a nightly job cannot fill the disk.
//!
//! An entry is a *compact* report ([`compact`]): the same schema as `report.json`, with the
//! run, its clients and scenarios, and per cell the verdict, a bounded reason, the duration
//! and the known-failure record — no steps, checks, journal or artifacts. The evidence stays
//! in the run's output directory (`report.json`, `index.html`); a full report of 4 MB is a
//! history entry of a few dozen KB. Entries written whole by older versions read the same way
//! ([`RunReport::read`]), so diffs and baseline checks work across both.
//!
//! Order is by the report's `started` time (RFC 3339, compared as text: the runner writes
//! every timestamp in UTC with the same format), then by run id.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fsutil::create_dir;
use crate::{Cell, ReportError, RunReport, json};

/// How many runs [`append`] keeps.
pub const DEFAULT_KEEP: usize = 50;

/// One stored run, without its cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub path: PathBuf,
    pub run_id: String,
    pub started: String,
}

/// Stores `report` (compacted) in `history_dir` and keeps the last [`DEFAULT_KEEP`] runs.
pub fn append(report: &RunReport, history_dir: &Path) -> Result<PathBuf, ReportError> {
    append_keeping(report, history_dir, DEFAULT_KEEP)
}

/// The longest reason a history entry keeps, in characters; a longer one is cut with `…`.
pub const REASON_CHARS: usize = 400;

/// `report` without its evidence: every cell keeps its scenario (and the family member it
/// ran), client, verdict, reason (at most [`REASON_CHARS`] characters) and duration, and its
/// known-failure record; steps, checks, journal and artifacts are dropped. What diffs and
/// baseline checks compare — verdicts by scenario and client — is unchanged.
pub fn compact(report: &RunReport) -> RunReport {
    RunReport {
        schema: report.schema.clone(),
        run_id: report.run_id.clone(),
        started: report.started.clone(),
        finished: report.finished.clone(),
        regcompat_version: report.regcompat_version.clone(),
        clients: report.clients.clone(),
        scenarios: report.scenarios.clone(),
        cells: report
            .cells
            .iter()
            .map(|cell| Cell {
                scenario: cell.scenario.clone(),
                variant: cell.variant.clone(),
                client: cell.client.clone(),
                verdict: cell.verdict,
                reason: bounded(&cell.reason, REASON_CHARS),
                duration_ms: cell.duration_ms,
                steps: Vec::new(),
                checks: Vec::new(),
                journal: Vec::new(),
                artifacts: Vec::new(),
                known: cell.known.clone(),
                network: cell.network.clone(),
            })
            .collect(),
        shard: report.shard,
    }
}

/// `text` itself when it has at most `max` characters, else its first `max - 1` and `…`.
fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Stores `report`, [`compact`]ed, as `<run_id>.json` in `history_dir` (created if needed),
/// then removes the oldest stored runs beyond `keep` (at least the new one is always kept).
/// Returns the path written. Storing the same run id again replaces it.
pub fn append_keeping(
    report: &RunReport,
    history_dir: &Path,
    keep: usize,
) -> Result<PathBuf, ReportError> {
    let path = history_dir.join(file_name(&report.run_id)?);
    create_dir(history_dir)?;
    json::write(&compact(report), &path)?;
    let entries = list(history_dir)?;
    let excess = entries.len().saturating_sub(keep.max(1));
    for old in entries.iter().take(excess).filter(|e| e.path != path) {
        std::fs::remove_file(&old.path).map_err(|e| ReportError::io(&old.path, "remove", e))?;
    }
    Ok(path)
}

/// The stored runs, oldest first. Files not ending in `.json` are ignored; a `.json` file
/// that is not a report of this schema is an error naming it (rather than being silently
/// skipped and then never pruned).
pub fn list(history_dir: &Path) -> Result<Vec<HistoryEntry>, ReportError> {
    #[derive(Deserialize)]
    struct Header {
        schema: String,
        run_id: String,
        started: String,
    }
    let read_dir = match std::fs::read_dir(history_dir) {
        Ok(read_dir) => read_dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(ReportError::io(history_dir, "list", e)),
    };
    let mut entries = Vec::new();
    for item in read_dir {
        let item = item.map_err(|e| ReportError::io(history_dir, "list", e))?;
        let path = item.path();
        let is_report = path.extension().is_some_and(|x| x == "json")
            && !item.file_name().to_string_lossy().starts_with('.');
        if !is_report {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, "read", e))?;
        let header: Header =
            serde_json::from_str(&text).map_err(|e| ReportError::json(&path, &e))?;
        if header.schema != crate::SCHEMA_VERSION {
            return Err(ReportError::UnknownSchema {
                path,
                found: header.schema,
                expected: crate::SCHEMA_VERSION,
            });
        }
        entries.push(HistoryEntry {
            path,
            run_id: header.run_id,
            started: header.started,
        });
    }
    entries.sort_by(|a, b| (&a.started, &a.run_id).cmp(&(&b.started, &b.run_id)));
    Ok(entries)
}

/// The most recent stored run other than `run_id` — what a new run is diffed against. A
/// compact entry has no evidence; an entry stored whole by an older version keeps its own.
pub fn previous(history_dir: &Path, run_id: &str) -> Result<Option<RunReport>, ReportError> {
    let entries = list(history_dir)?;
    match entries.iter().rev().find(|e| e.run_id != run_id) {
        Some(entry) => json::read(&entry.path).map(Some),
        None => Ok(None),
    }
}

/// `<run_id>.json`, refusing ids that could escape the directory or hide the file.
fn file_name(run_id: &str) -> Result<String, ReportError> {
    let valid = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(format!("{run_id}.json"))
    } else {
        Err(ReportError::BadRunId(run_id.to_owned()))
    }
}
