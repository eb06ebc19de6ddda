//! The resilience table: for every scenario that tests the `fault-tolerance` rule, what each
//! client did when the registry misbehaved — how often it tried the faulted resource, how
//! long it waited before trying again, whether it got through, gave up (and after how long),
//! was killed at the timeout, or accepted content that did not match its digest.
//!
//! Everything is read from the cell's own evidence: the journal (an injected fault marks its
//! entry with `fault`) and the step records. Nothing is inferred from the client's name.

use crate::model::{Cell, RunReport, StepRecord, Verdict};
use serde_json::Value;

/// The rule (docs/verdicts.md) whose scenarios make up the table.
pub const RULE: &str = "fault-tolerance";

/// The table: a column per fault kind, a row per client that ran at least one of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<ClientRow>,
}

/// One fault kind: the scenarios that inject it (one per way a client can be driven into
/// it, e.g. `fault-503-blob` for clients that pull and `fault-503-blob-builder-create` for
/// pack), sharing the scenario field `fault_kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// `fault_kind`, else the scenario id, without a leading `fault-`.
    pub kind: String,
    /// The first scenario's title.
    pub title: String,
    pub scenarios: Vec<String>,
}

/// What one client did under each fault kind (`None`: no cell of that kind in the run).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    pub client: String,
    pub cells: Vec<Option<Behaviour>>,
}

/// What one client did under one fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub client: String,
    pub verdict: Verdict,
    /// The injected fault as the journal describes it (`too_many_requests retry-after=2`).
    pub fault: Option<String>,
    /// Requests for the faulted resource (its path), from the first faulted one on.
    pub attempts: usize,
    /// How many of those the fault answered.
    pub faulted: usize,
    /// Seconds between the end of the first faulted exchange and the next attempt.
    pub next_attempt_after_s: Option<f64>,
    /// Every step's outcome in order.
    pub outcomes: Vec<StepOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutcome {
    Succeeded { seconds: f64 },
    Failed { exit: i32, seconds: f64 },
    KilledAtTimeout { seconds: f64 },
    DidNotRun,
}

impl Behaviour {
    /// The client really ran this cell (not `not-applicable`, `not-run` or `error`).
    pub fn ran(&self) -> bool {
        !did_not_run(self.verdict)
    }

    /// A fault that breaks content (a corrupted or truncated body) answered every attempt,
    /// and the client still reported success.
    pub fn accepted_corrupt_data(&self) -> bool {
        let breaks_content = self
            .fault
            .as_deref()
            .is_some_and(|f| f.starts_with("corrupt") || f.starts_with("truncate"));
        breaks_content
            && self.attempts > 0
            && self.faulted == self.attempts
            && self
                .outcomes
                .iter()
                .any(|o| matches!(o, StepOutcome::Succeeded { .. }))
    }

    /// One line for a table cell: `3 tries, next after 2.0 s; ok in 3.1 s`.
    pub fn summary(&self) -> String {
        if !self.ran() {
            return self.verdict.to_string();
        }
        if self.fault.is_none() {
            return format!("fault not reached; {}", self.outcome_text());
        }
        let mut text = match self.attempts {
            1 => "1 try".to_owned(),
            n => format!("{n} tries"),
        };
        if let Some(after) = self.next_attempt_after_s {
            text.push_str(&format!(", next after {after:.1} s"));
        }
        if self.accepted_corrupt_data() {
            text.push_str("; ACCEPTED CORRUPT DATA");
        } else {
            text.push_str("; ");
            text.push_str(&self.outcome_text());
        }
        text
    }

    fn outcome_text(&self) -> String {
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|o| match o {
                StepOutcome::Succeeded { seconds } => format!("ok in {seconds:.1} s"),
                StepOutcome::Failed { exit, seconds } => {
                    format!("gave up after {seconds:.1} s (exit {exit})")
                }
                StepOutcome::KilledAtTimeout { seconds } => {
                    format!("killed at the {seconds:.0} s timeout")
                }
                StepOutcome::DidNotRun => "did not run".to_owned(),
            })
            .collect();
        parts.join(", then ")
    }
}

/// The table, columns in the report's scenario order, rows in its client order; empty when
/// no scenario tests faults or no client ran one.
pub fn table(report: &RunReport) -> Table {
    let mut columns: Vec<Column> = Vec::new();
    for s in report
        .scenarios
        .iter()
        .filter(|s| s.rules.iter().any(|r| r == RULE))
    {
        let kind = s
            .fault_kind
            .as_deref()
            .unwrap_or(&s.id)
            .trim_start_matches("fault-")
            .to_owned();
        match columns.iter_mut().find(|c| c.kind == kind) {
            Some(column) => column.scenarios.push(s.id.clone()),
            None => columns.push(Column {
                kind,
                title: s.title.clone(),
                scenarios: vec![s.id.clone()],
            }),
        }
    }
    let rows = report
        .clients
        .iter()
        .map(|client| ClientRow {
            client: client.id.clone(),
            cells: columns
                .iter()
                .map(|column| column_cell(report, column, &client.id))
                .collect(),
        })
        .filter(|row| row.cells.iter().flatten().any(Behaviour::ran))
        .collect();
    Table { columns, rows }
}

/// The client's cell of a fault kind: the scenario it ran, else the first it has a cell in
/// (which says why it did not run).
fn column_cell(report: &RunReport, column: &Column, client: &str) -> Option<Behaviour> {
    let cells: Vec<&Cell> = column
        .scenarios
        .iter()
        .filter_map(|id| {
            report
                .cells
                .iter()
                .find(|c| &c.scenario == id && c.client == client)
        })
        .collect();
    let chosen = cells
        .iter()
        .find(|c| !did_not_run(c.verdict))
        .or(cells.first())?;
    Some(behaviour(chosen))
}

fn did_not_run(verdict: Verdict) -> bool {
    matches!(
        verdict,
        Verdict::NotApplicable | Verdict::NotRun | Verdict::Error
    )
}

/// What the cell's evidence says the client did.
pub fn behaviour(cell: &Cell) -> Behaviour {
    let entries = &cell.journal;
    let first = entries
        .iter()
        .position(|e| e.get("fault").is_some_and(|f| !f.is_null()));
    let (fault, attempts, faulted, next_attempt_after_s) = match first {
        None => (None, 0, 0, None),
        Some(i) => {
            let first = &entries[i];
            let path = first.get("path").and_then(Value::as_str).unwrap_or("");
            let same: Vec<&Value> = entries[i..]
                .iter()
                .filter(|e| e.get("path").and_then(Value::as_str) == Some(path))
                .collect();
            let faulted = same
                .iter()
                .filter(|e| e.get("fault").is_some_and(|f| !f.is_null()))
                .count();
            let after = same.get(1).and_then(|next| {
                let end = time_ms(first)? + duration_ms(first);
                Some(((time_ms(next)? - end) / 1000.0).max(0.0))
            });
            let fault = first
                .get("fault")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (fault, same.len(), faulted, after)
        }
    };
    Behaviour {
        client: cell.client.clone(),
        verdict: cell.verdict,
        fault,
        attempts,
        faulted,
        next_attempt_after_s,
        outcomes: outcomes(&cell.steps),
    }
}

/// The outcome of each scenario step: its last command's (preparation commands skipped),
/// timed over all of its commands.
fn outcomes(steps: &[StepRecord]) -> Vec<StepOutcome> {
    let mut out = Vec::new();
    let own: Vec<&StepRecord> = steps.iter().filter(|s| !s.preparation).collect();
    for group in own.chunk_by(|a, b| a.step == b.step) {
        let seconds = group.iter().map(|s| s.duration_ms).sum::<u64>() as f64 / 1000.0;
        let Some(last) = group.last() else {
            continue;
        };
        out.push(if last.timed_out {
            StepOutcome::KilledAtTimeout { seconds }
        } else {
            match last.exit_code {
                Some(0) => StepOutcome::Succeeded { seconds },
                Some(exit) => StepOutcome::Failed { exit, seconds },
                None => StepOutcome::DidNotRun,
            }
        });
    }
    out
}

fn duration_ms(entry: &Value) -> f64 {
    entry
        .get("duration_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

fn time_ms(entry: &Value) -> Option<f64> {
    journal_time_ms(entry.get("time")?.as_str()?)
}

/// Milliseconds since 1970 of a journal entry's `time` (RFC 3339,
/// `2026-11-30T15:00:00.123Z`).
pub fn journal_time_ms(t: &str) -> Option<f64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(exit: Option<i32>, timed_out: bool, ms: u64) -> StepRecord {
        StepRecord {
            step: 0,
            action: "pull".into(),
            argv: vec![],
            repro: String::new(),
            exit_code: exit,
            timed_out,
            duration_ms: ms,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            expected: "any".into(),
            preparation: false,
        }
    }

    fn entry(time: &str, path: &str, fault: Option<&str>) -> Value {
        json!({"time": time, "duration_ms": 100.0, "method": "GET", "path": path, "fault": fault})
    }

    fn cell(journal: Vec<Value>, steps: Vec<StepRecord>) -> Cell {
        let mut c = Cell::without_evidence("fault-429-manifest", "crane@1", Verdict::Pass, "");
        c.journal = journal;
        c.steps = steps;
        c
    }

    #[test]
    fn a_retry_after_the_delay_is_counted_and_timed() {
        let m = "/v2/base/run/manifests/1";
        let b = behaviour(&cell(
            vec![
                entry("2026-11-30T23:59:59.000Z", "/v2/", None),
                entry(
                    "2026-11-30T23:59:59.500Z",
                    m,
                    Some("too_many_requests retry-after=2"),
                ),
                entry("2026-12-01T00:00:01.600Z", m, None),
            ],
            vec![step(Some(0), false, 3100)],
        ));
        assert_eq!((b.attempts, b.faulted), (2, 1));
        let after = b.next_attempt_after_s.unwrap();
        assert!((after - 2.0).abs() < 1e-6, "{after}");
        assert_eq!(b.summary(), "2 tries, next after 2.0 s; ok in 3.1 s");
    }

    #[test]
    fn a_client_that_succeeds_on_corrupt_content_is_named() {
        let blob = "/v2/base/run/blobs/sha256:aa";
        let b = behaviour(&cell(
            vec![entry(
                "2026-11-30T10:00:00.000Z",
                blob,
                Some("corrupt last byte"),
            )],
            vec![step(Some(0), false, 800)],
        ));
        assert!(b.accepted_corrupt_data());
        assert_eq!(b.summary(), "1 try; ACCEPTED CORRUPT DATA");
        // the same client failing on it did not accept it
        let b = behaviour(&cell(
            vec![entry(
                "2026-11-30T10:00:00.000Z",
                blob,
                Some("corrupt last byte"),
            )],
            vec![step(Some(1), false, 800)],
        ));
        assert!(!b.accepted_corrupt_data());
        assert_eq!(b.summary(), "1 try; gave up after 0.8 s (exit 1)");
    }

    #[test]
    fn a_hang_until_the_timeout_and_an_unreached_fault_are_told_apart() {
        let b = behaviour(&cell(
            vec![entry(
                "2026-11-30T10:00:00.000Z",
                "/oauth2/token",
                Some("hang 90000ms"),
            )],
            vec![step(None, true, 60_000)],
        ));
        assert_eq!(b.summary(), "1 try; killed at the 60 s timeout");
        let b = behaviour(&cell(
            vec![entry("2026-11-30T10:00:00.000Z", "/v2/", None)],
            vec![step(Some(0), false, 500)],
        ));
        assert_eq!(b.summary(), "fault not reached; ok in 0.5 s");
    }

    #[test]
    fn two_steps_read_in_order() {
        let mut second = step(Some(0), false, 400);
        second.expected = "success".into();
        second.step = 1;
        let mut first = step(Some(1), false, 200);
        first.expected = "failure".into();
        let b = behaviour(&cell(
            vec![entry(
                "2026-11-30T10:00:00.000Z",
                "/v2/a/manifests/1",
                Some("status 403"),
            )],
            vec![first, second],
        ));
        assert_eq!(
            b.summary(),
            "1 try; gave up after 0.2 s (exit 1), then ok in 0.4 s"
        );
    }
}
