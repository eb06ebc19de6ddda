//! Baseline mode: a team pins a known report and CI fails only when the matrix gets worse
//! than it — a cell that passed in the baseline now fails or errors — not on failures
//! everyone already knows about.
//!
//! The rule, cell by cell (baseline verdict → verdict now):
//!
//! | baseline            | now                          | outcome                             |
//! |---------------------|------------------------------|-------------------------------------|
//! | pass                | pass                         | fine                                |
//! | pass                | fail, error                  | **regression** (the only failure)   |
//! | pass                | not-run, not-applicable, gone| lost coverage (listed, warned)      |
//! | fail, error         | fail, error                  | known failure (listed, fine)        |
//! | anything else / new | fail, error                  | new failure (listed, warned)        |
//! | not pass / new      | pass                         | fixed (listed: update the baseline) |
//! | not pass / new      | not-run, not-applicable, gone| fine                                |
//!
//! Lost coverage and new failures do not fail the check: nothing that used to work is known
//! to be broken. They are listed first after the regressions so nobody misses them, and a
//! run in which nothing passed at all is refused by `cargo xtask run-scenarios` regardless.

use std::fmt::Write as _;

use crate::diff::{CellChange, ChangeKind, changes_table, classify, pairs};
use crate::markdown::code_text;
use crate::{RunReport, Verdict};

/// The result of checking a run against a baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineOutcome {
    pub baseline_run: String,
    pub run: String,
    /// Pass in the baseline, fail or error now.
    pub regressions: Vec<CellChange>,
    /// Pass in the baseline; not-run, not-applicable or absent now (warned, does not fail).
    pub lost_coverage: Vec<CellChange>,
    /// Fail or error now, and neither in the baseline (or not there at all): warned, does
    /// not fail.
    pub new_failures: Vec<CellChange>,
    /// Fail or error in both: tolerated, but listed.
    pub known_failures: Vec<CellChange>,
    /// Not pass (or absent) in the baseline, pass now: the baseline can be updated.
    pub fixed: Vec<CellChange>,
    /// Baseline cells of scenarios or clients this run did not include at all (a subset
    /// run, `--scenario`/`--client`): outside the run, neither lost nor compared.
    pub outside_the_run: usize,
}

impl BaselineOutcome {
    /// Whether the run is acceptable: no cell that passed in the baseline fails or errors now.
    pub fn passed(&self) -> bool {
        self.regressions.is_empty()
    }

    /// One line for a CI log.
    pub fn summary(&self) -> String {
        let outside = if self.outside_the_run > 0 {
            format!(
                " ({} baseline cell(s) outside this run's scenarios and clients)",
                self.outside_the_run
            )
        } else {
            String::new()
        };
        format!(
            "baseline {}: {} regression(s), {} lost coverage, {} new failure(s), {} known \
             failure(s), {} fixed{outside}",
            if self.passed() { "ok" } else { "FAILED" },
            self.regressions.len(),
            self.lost_coverage.len(),
            self.new_failures.len(),
            self.known_failures.len(),
            self.fixed.len()
        )
    }
}

/// Checks `report` against `baseline`.
pub fn check(report: &RunReport, baseline: &RunReport) -> BaselineOutcome {
    let mut outcome = BaselineOutcome {
        baseline_run: baseline.run_id.clone(),
        run: report.run_id.clone(),
        regressions: vec![],
        lost_coverage: vec![],
        new_failures: vec![],
        known_failures: vec![],
        fixed: vec![],
        outside_the_run: 0,
    };
    let in_run_scenario = |id: &str| report.scenarios.iter().any(|s| s.id == id);
    let pairs = pairs(baseline, report);
    // Baseline clients with a counterpart in this run.
    let in_run_client: std::collections::HashSet<&str> = pairs
        .iter()
        .filter(|p| p.new.is_some())
        .filter_map(|p| p.old_client)
        .collect();
    for pair in pairs {
        // A subset run (`--scenario`, `--client`) says nothing of the rest of the baseline.
        let outside = !in_run_scenario(pair.scenario)
            || pair.old_client.is_some_and(|c| !in_run_client.contains(c));
        if pair.new.is_none() && outside {
            outcome.outside_the_run += 1;
            continue;
        }
        let was = pair.old.map(|c| c.verdict);
        let now = pair.new.map(|c| c.verdict);
        // A client that passes: pass, or `fixed` (passes where a failure was recorded).
        let passing = |v: Option<Verdict>| matches!(v, Some(Verdict::Pass | Verdict::Fixed));
        let failing = |v: Option<Verdict>| {
            matches!(
                v,
                Some(Verdict::Fail | Verdict::Error | Verdict::KnownFailure)
            )
        };
        let list = match (was, now) {
            (w, n) if passing(w) && passing(n) => continue,
            (w, n) if passing(w) && failing(n) => &mut outcome.regressions,
            (w, _) if passing(w) => &mut outcome.lost_coverage,
            (w, n) if failing(w) && failing(n) => &mut outcome.known_failures,
            (_, n) if failing(n) => &mut outcome.new_failures,
            (_, n) if passing(n) => &mut outcome.fixed,
            _ => continue,
        };
        // A known failure may keep its verdict, which `classify` calls "no change".
        let kind = classify(was, now).unwrap_or(ChangeKind::Changed);
        list.push(pair.change(kind));
    }
    for list in [
        &mut outcome.regressions,
        &mut outcome.lost_coverage,
        &mut outcome.new_failures,
        &mut outcome.known_failures,
        &mut outcome.fixed,
    ] {
        list.sort_by(|a, b| (&a.scenario, &a.client).cmp(&(&b.scenario, &b.client)));
    }
    outcome
}

/// The outcome as a Markdown section: the verdict line, then one table per non-empty list,
/// the failing lists first.
pub fn render_markdown(outcome: &BaselineOutcome) -> String {
    let mut md = format!(
        "## Baseline check against run `{}`\n\n",
        code_text(&outcome.baseline_run)
    );
    // `write!` into a String cannot fail.
    let _ = writeln!(
        md,
        "{} {}\n",
        if outcome.passed() { "✅" } else { "❌" },
        outcome.summary()
    );
    let sections = [
        ("Regressions (pass in the baseline)", &outcome.regressions),
        (
            "Lost coverage (pass in the baseline, not run now; not fatal)",
            &outcome.lost_coverage,
        ),
        (
            "New failures (not in the baseline; not fatal)",
            &outcome.new_failures,
        ),
        ("Known failures (tolerated)", &outcome.known_failures),
        ("Fixed (update the baseline)", &outcome.fixed),
    ];
    for (heading, changes) in sections {
        if !changes.is_empty() {
            let changes: Vec<&CellChange> = changes.iter().collect();
            md.push_str(&changes_table(heading, &changes));
        }
    }
    md
}
