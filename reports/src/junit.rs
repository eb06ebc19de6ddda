//! JUnit XML for CI dashboards: one testsuite per client, one testcase per scenario.
//!
//! Only `pass` is a success. `fail` is a failure and `error` an error; `not-run`,
//! `not-applicable` and a missing cell are skipped with their reason — never a success,
//! because a green dashboard must mean the client really ran and behaved.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::matrix::Matrix;
use crate::present::journal_summary;
use crate::{Cell, ReportError, RunReport, Verdict};

/// Renders the report as JUnit XML.
pub fn render(report: &RunReport) -> Result<String, ReportError> {
    let matrix = Matrix::new(report);
    let mut junit = Report::new(format!("regcompat {}", report.run_id));
    for column in &matrix.columns {
        let mut suite = TestSuite::new(column.id);
        if let Some(client) = report.clients.iter().find(|c| c.id == column.id) {
            suite.add_property(Property::new("name", client.name.as_str()));
            suite.add_property(Property::new("version", client.version.as_str()));
            suite.add_property(Property::new("source", client.source.as_str()));
            if let Some(path) = &client.path {
                suite.add_property(Property::new("path", path.as_str()));
            }
            if let Some(why) = &client.unavailable {
                suite.add_property(Property::new("unavailable", why.as_str()));
            }
        }
        for row in &matrix.rows {
            suite.add_test_case(test_case(row.id, column.id, matrix.cell(row.id, column.id)));
        }
        junit.add_test_suite(suite);
    }
    Ok(junit.to_string()?)
}

fn test_case(scenario: &str, client: &str, cell: Option<&Cell>) -> TestCase {
    let Some(cell) = cell else {
        let mut status = TestCaseStatus::skipped();
        status
            .set_type("missing")
            .set_message("no result was recorded for this scenario and client");
        let mut case = TestCase::new(scenario, status);
        case.set_classname(client);
        return case;
    };
    let status = match cell.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => non_success(NonSuccessKind::Failure, cell),
        Verdict::Error => non_success(NonSuccessKind::Error, cell),
        Verdict::NotRun | Verdict::NotApplicable => {
            let mut status = TestCaseStatus::skipped();
            status
                .set_type(cell.verdict.as_str())
                .set_message(cell.reason.as_str());
            status
        }
    };
    let mut case = TestCase::new(scenario, status);
    case.set_classname(client)
        .set_time(Duration::from_millis(cell.duration_ms));
    if !cell.journal.is_empty() {
        case.set_system_out(journal_summary(&cell.journal));
    }
    case
}

fn non_success(kind: NonSuccessKind, cell: &Cell) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_type(cell.verdict.as_str())
        .set_message(cell.reason.as_str())
        .set_description(evidence_text(cell));
    status
}

/// The failure's body: what to run to reproduce it, what each step printed, which checks
/// failed. Plain text, indented so it stays readable in CI log viewers.
pub(crate) fn evidence_text(cell: &Cell) -> String {
    let mut text = String::new();
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(text, "reason: {}", cell.reason);
    if !cell.steps.is_empty() {
        let _ = writeln!(text, "repro:");
        for step in &cell.steps {
            let _ = writeln!(text, "  $ {}", step.repro);
        }
    }
    for (n, step) in cell.steps.iter().enumerate() {
        let exit = match (step.exit_code, step.timed_out) {
            (_, true) => "timed out".to_owned(),
            (Some(code), false) => format!("exit {code}"),
            (None, false) => "did not start".to_owned(),
        };
        let _ = writeln!(
            text,
            "step {} `{}` (expected {}): {exit} in {} ms",
            n + 1,
            step.action,
            step.expected,
            step.duration_ms
        );
        let _ = writeln!(text, "  argv: {}", step.argv.join(" "));
        for (name, tail) in [("stdout", &step.stdout_tail), ("stderr", &step.stderr_tail)] {
            if !tail.trim().is_empty() {
                let _ = writeln!(text, "  {name} (tail):");
                for line in tail.lines() {
                    let _ = writeln!(text, "    {line}");
                }
            }
        }
    }
    if !cell.checks.is_empty() {
        let _ = writeln!(text, "checks:");
        for check in &cell.checks {
            let mark = if check.passed { "ok" } else { "FAILED" };
            let _ = write!(text, "  [{mark}] {}", check.description);
            if !check.detail.is_empty() {
                let _ = write!(text, " — {}", check.detail);
            }
            text.push('\n');
        }
    }
    if !cell.artifacts.is_empty() {
        let _ = writeln!(text, "artifacts: {}", cell.artifacts.join(", "));
    }
    text
}
