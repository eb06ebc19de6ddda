//! The result model every writer renders: one run, its clients and scenarios, and one cell
//! per (scenario, client) with the verdict and the evidence behind it.
//!
//! This is the JSON report's schema too ([`SCHEMA_VERSION`]); change it only by bumping the
//! version, because platform teams diff nightly reports against older ones.

use serde::{Deserialize, Serialize};

/// The JSON report's schema identifier. Bump on any incompatible change.
pub const SCHEMA_VERSION: &str = "regcompat.report/v2";

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema: String,
    /// Unique per run (time-based), used to name history entries.
    pub run_id: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339.
    pub finished: String,
    /// The regcompat version that produced the report.
    pub regcompat_version: String,
    pub clients: Vec<ClientInfo>,
    pub scenarios: Vec<ScenarioInfo>,
    pub cells: Vec<Cell>,
    /// The shard this run was (`run-scenarios --shard I/N`): its cells are that part of the
    /// matrix, its clients and scenarios the whole matrix's. Absent for a whole run and a
    /// merged one (`report-merge`), and in reports written before sharding existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
}

/// A client column of the matrix: one binary at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The column's id, `name@version` (e.g. `crane@0.22.1`) or `name@dev` for a
    /// maintainer's own build.
    pub id: String,
    pub name: String,
    pub version: String,
    /// Where the binary came from: `cache`, `system`, `path` (given with `--client`).
    pub source: String,
    /// The binary run, when one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why this client could not run at all (every cell of its column is `not-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// A scenario row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The scenario's id (its file stem, e.g. `acr-refresh-token-login`).
    pub id: String,
    pub title: String,
    /// The scenario file, relative to the repository root.
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The rules of docs/verdicts.md the scenario tests (`fault-tolerance` puts it in the
    /// resilience table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The resilience table's column for a `fault-tolerance` scenario: scenarios that
    /// inject the same fault through different actions share it (default: the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
}

/// The verdict of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The client really ran and behaved as the scenario expects (which may be a clean,
    /// explained failure, e.g. on a wrong password).
    Pass,
    /// The client really ran and did not behave as expected.
    Fail,
    /// The scenario needs an action this client does not have.
    NotApplicable,
    /// The client could not be run (missing, failed to install, needs root…): never a pass.
    NotRun,
    /// The harness itself failed (could not start the registry, sandbox error…).
    Error,
    /// The client failed as recorded in `known-failures.toml` (a real deviation
    /// of that client version, with an upstream link): reported, never a pass.
    KnownFailure,
    /// Recorded as a known failure, but the client now passes: the record is stale and must
    /// be updated (a fix upstream, or a scenario that stopped reproducing the bug).
    Fixed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NotApplicable => "not-applicable",
            Self::NotRun => "not-run",
            Self::Error => "error",
            Self::KnownFailure => "known-failure",
            Self::Fixed => "fixed",
        }
    }

    /// Whether this verdict should fail a CI job: an unrecorded failure, a harness error,
    /// or a recorded failure that no longer reproduces (the record needs updating).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Fail | Self::Error | Self::Fixed)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One (scenario, client) cell with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// [`ScenarioInfo::id`]: the row, which is the base of a scenario family.
    pub scenario: String,
    /// The family member this cell ran instead of its row's base scenario, which the client
    /// cannot express (`fault-503-blob-builder-create` on the `fault-503-blob` row for pack,
    /// which cannot pull); absent when the client ran the row's own scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// [`ClientInfo::id`].
    pub client: String,
    pub verdict: Verdict,
    /// One line saying why: the first failed expectation, the missing capability, the
    /// reason the client could not run.
    pub reason: String,
    pub duration_ms: u64,
    /// What the client did, step by step (empty when it never ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
    /// Every expectation checked, passed or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// The journal entries of this cell (fake-registry's `Entry`, secrets already
    /// redacted at record time), kept as JSON so this crate does not depend on the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<serde_json::Value>,
    /// Files of evidence written beside the report (debug logs, HAR), relative paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// The known-failure record that matched this cell (`known-failure` and `fixed` cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<KnownIssue>,
    /// Where the cell's fleet and client ran: a private network namespace or loopback (and
    /// why); absent for cells whose client never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl Cell {
    /// A cell without evidence (no step ran): a not-applicable or not-run cell, a harness
    /// error before the client started — and the cells of tests.
    pub fn without_evidence(
        scenario: impl Into<String>,
        client: impl Into<String>,
        verdict: Verdict,
        reason: impl Into<String>,
    ) -> Self {
        Cell {
            scenario: scenario.into(),
            variant: None,
            client: client.into(),
            verdict,
            reason: reason.into(),
            duration_ms: 0,
            steps: vec![],
            checks: vec![],
            journal: vec![],
            artifacts: vec![],
            known: None,
            network: None,
        }
    }
}

/// A recorded deviation of a client version (from `known-failures.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownIssue {
    /// Why the client fails this scenario, in one sentence.
    pub reason: String,
    /// The upstream issue, pull request or documentation that records the deviation.
    pub link: String,
    /// The versions the record covers, as written in the file (`>=2.0.0, <2.0.3`, `*`).
    pub versions: String,
}

/// One client process the cell ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The index of the scenario's `[[step]]` this command belongs to (a step may run
    /// several commands).
    #[serde(default)]
    pub step: usize,
    /// The scenario's abstract action (`login`, `pull`, `push`, `build-from`, `copy`).
    pub action: String,
    /// The argv actually executed.
    pub argv: Vec<String>,
    /// A shell command line that reproduces the step by hand (environment included).
    pub repro: String,
    /// `None` when the process was killed (timeout) or could not start.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// The last lines of stdout and stderr (secrets redacted).
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// What the scenario expected of this step: `success`, `failure` or `any`.
    pub expected: String,
    /// A command that only prepares the action under test (the local `docker import` before
    /// `docker push`, as the driver declares): it must succeed, and its failure never
    /// satisfies an expected failure of the action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preparation: bool,
}

/// One expectation of the scenario and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Human-readable: "the token request carried Basic for principal sp-push".
    pub description: String,
    pub passed: bool,
    /// What was observed, with journal sequence numbers when relevant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl RunReport {
    /// The cell of `scenario` × `client`, if the run has one.
    pub fn cell(&self, scenario: &str, client: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.scenario == scenario && c.client == client)
    }

    /// Counts of each verdict, in [`Verdict`] order.
    pub fn totals(&self) -> std::collections::BTreeMap<Verdict, usize> {
        let mut totals = std::collections::BTreeMap::new();
        for c in &self.cells {
            *totals.entry(c.verdict).or_insert(0) += 1;
        }
        totals
    }

    /// Whether a CI job running this matrix should fail.
    pub fn has_failures(&self) -> bool {
        self.cells.iter().any(|c| c.verdict.is_failure())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(verdict: Verdict) -> Cell {
        Cell::without_evidence("s", "crane@0.22.1", verdict, "")
    }

    #[test]
    fn verdicts_serialise_kebab_case() {
        let v = serde_json::to_string(&[Verdict::NotApplicable, Verdict::NotRun]).unwrap();
        assert_eq!(v, r#"["not-applicable","not-run"]"#);
    }

    #[test]
    fn not_run_and_not_applicable_do_not_fail_a_job_but_fail_and_error_do() {
        assert!(!Verdict::NotRun.is_failure());
        assert!(!Verdict::NotApplicable.is_failure());
        assert!(Verdict::Fail.is_failure());
        assert!(Verdict::Error.is_failure());
        let mut r = RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: "r".into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: String::new(),
            clients: vec![],
            scenarios: vec![],
            cells: vec![cell(Verdict::Pass), cell(Verdict::NotRun)],
            shard: None,
        };
        assert!(!r.has_failures());
        r.cells.push(cell(Verdict::Error));
        assert!(r.has_failures());
        assert_eq!(r.totals()[&Verdict::Pass], 1);
    }
}
