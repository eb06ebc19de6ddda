//! JUnit XML (`quick-junit`): one test suite per client, one test case per scenario.
//! `fail` is a failure, `error` an error, `fixed` a failure (the known-failure record is
//! stale); `known-failure`, `not-run` and `not-applicable` are skipped with their reason (and
//! a known failure's upstream link) — never a success. Text goes through
//! [`plain_text`](crate::present::plain_text): no terminal escape sequence reaches the XML.

use crate::model::{RunReport, Verdict};
use crate::present::plain_text;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

pub fn render(report: &RunReport) -> String {
    let mut junit = Report::new("regcompat");
    for client in &report.clients {
        let mut suite = TestSuite::new(client.id.as_str());
        for cell in report.cells.iter().filter(|c| c.client == client.id) {
            let details = cell
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "$ {}\nexit: {:?} timed out: {}\n{}\n{}",
                        s.repro, s.exit_code, s.timed_out, s.stdout_tail, s.stderr_tail
                    )
                })
                .chain(cell.checks.iter().map(|c| {
                    format!(
                        "[{}] {}: {}",
                        if c.passed { "ok" } else { "FAILED" },
                        c.description,
                        c.detail
                    )
                }))
                .collect::<Vec<_>>()
                .join("\n");
            let status = match cell.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Fail | Verdict::Error | Verdict::Fixed => {
                    let kind = if cell.verdict == Verdict::Error {
                        NonSuccessKind::Error
                    } else {
                        NonSuccessKind::Failure
                    };
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(plain_text(&cell.reason));
                    s.set_description(plain_text(&details));
                    s
                }
                Verdict::NotRun | Verdict::NotApplicable | Verdict::KnownFailure => {
                    let mut s = TestCaseStatus::skipped();
                    let link = cell
                        .known
                        .as_ref()
                        .map(|k| format!(" ({})", k.link))
                        .unwrap_or_default();
                    s.set_message(plain_text(&format!(
                        "{}: {}{link}",
                        cell.verdict, cell.reason
                    )));
                    s
                }
            };
            let mut case = TestCase::new(cell.scenario.as_str(), status);
            case.set_classname(client.id.as_str());
            case.set_time(std::time::Duration::from_millis(cell.duration_ms));
            let journal: Vec<String> = cell
                .journal
                .iter()
                .map(|e| {
                    format!(
                        "#{} {} {} {} → {} auth={}/{}",
                        e["seq"],
                        e["host"].as_str().unwrap_or(""),
                        e["method"].as_str().unwrap_or(""),
                        e["path"].as_str().unwrap_or(""),
                        e["status"],
                        e["auth"]["scheme"].as_str().unwrap_or(""),
                        e["auth"]["principal"].as_str().unwrap_or("-"),
                    )
                })
                .collect();
            if !journal.is_empty() {
                case.set_system_out(plain_text(&journal.join("\n")));
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_run_is_skipped_and_fail_is_a_failure() {
        let xml = render(&crate::markdown::tests::sample());
        let doc = roxmltree::Document::parse(&xml).expect("valid XML");
        let failures = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count();
        let skipped = doc
            .descendants()
            .filter(|n| n.has_tag_name("skipped"))
            .count();
        assert_eq!((failures, skipped), (1, 1), "{xml}");
    }
}
