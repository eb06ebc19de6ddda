//! Diff and baseline truth tables: every (was, now) verdict pair, absent cells included.

mod common;

use common::{CRANE, SKOPEO, report};
use reports::Verdict::{self, Error, Fail, NotApplicable, NotRun, Pass};
use reports::baseline::{self, BaselineOutcome};
use reports::diff::{self, ChangeKind};
use rstest::rstest;

/// A one-cell run, or a run without that cell (another cell keeps the client column alive).
fn run(run_id: &str, verdict: Option<Verdict>) -> reports::RunReport {
    let mut cells = vec![("other", CRANE, Pass)];
    if let Some(v) = verdict {
        cells.push(("login", CRANE, v));
    }
    let mut report = report(run_id, &cells);
    // The run included `login` (a gone cell is gone from a scenario and a client it ran).
    if verdict.is_none() {
        report.scenarios.push(common::scenario("login"));
    }
    report
}

// ---------------------------------------------------------------- diff

#[rstest]
#[case(Pass, Pass, None)]
#[case(Pass, Fail, Some(ChangeKind::Regression))]
#[case(Pass, Error, Some(ChangeKind::Regression))]
#[case(Pass, NotRun, Some(ChangeKind::LostCoverage))]
#[case(Pass, NotApplicable, Some(ChangeKind::LostCoverage))]
#[case(Fail, Pass, Some(ChangeKind::Fix))]
#[case(Error, Pass, Some(ChangeKind::Fix))]
#[case(NotRun, Pass, Some(ChangeKind::Fix))]
#[case(NotApplicable, Pass, Some(ChangeKind::Fix))]
#[case(Fail, Error, Some(ChangeKind::Changed))]
#[case(Error, Fail, Some(ChangeKind::Changed))]
#[case(NotRun, Fail, Some(ChangeKind::Changed))]
#[case(Fail, NotRun, Some(ChangeKind::Changed))]
#[case(NotApplicable, NotRun, Some(ChangeKind::Changed))]
#[case(Fail, Fail, None)]
#[case(NotRun, NotRun, None)]
fn diff_classifies_verdict_changes(
    #[case] was: Verdict,
    #[case] now: Verdict,
    #[case] expected: Option<ChangeKind>,
) {
    let d = diff::diff(&run("old", Some(was)), &run("new", Some(now)));
    let kinds: Vec<ChangeKind> = d.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, expected.into_iter().collect::<Vec<_>>());
    if let Some(change) = d.changes.first() {
        assert_eq!((change.old, change.new), (Some(was), Some(now)));
        assert_eq!(change.scenario, "login");
        assert_eq!(change.client, CRANE);
        assert_eq!(change.old_client, None);
    }
}

#[rstest]
#[case::added(None, Some(Fail), ChangeKind::Added)]
#[case::removed(Some(Pass), None, ChangeKind::Removed)]
fn diff_reports_added_and_removed_cells(
    #[case] was: Option<Verdict>,
    #[case] now: Option<Verdict>,
    #[case] kind: ChangeKind,
) {
    let d = diff::diff(&run("old", was), &run("new", now));
    assert_eq!(d.changes.len(), 1, "{d:?}");
    assert_eq!(d.changes[0].kind, kind);
    assert_eq!((d.changes[0].old, d.changes[0].new), (was, now));
}

#[test]
fn diff_lists_regressions_first_and_renders_them_first() {
    let old = report(
        "old",
        &[
            ("a", CRANE, Fail),
            ("b", CRANE, Pass),
            ("c", CRANE, Pass),
            ("d", CRANE, Pass),
        ],
    );
    let new = report(
        "new",
        &[
            ("a", CRANE, Pass),
            ("b", CRANE, NotRun),
            ("c", CRANE, Error),
            ("e", CRANE, Pass),
        ],
    );
    let d = diff::diff(&old, &new);
    let kinds: Vec<_> = d
        .changes
        .iter()
        .map(|c| (c.kind, c.scenario.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Regression, "c"),
            (ChangeKind::LostCoverage, "b"),
            (ChangeKind::Fix, "a"),
            (ChangeKind::Added, "e"),
            (ChangeKind::Removed, "d"),
        ]
    );
    assert!(d.has_regressions());
    let md = diff::render_markdown(&d);
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with("### ")).collect();
    assert_eq!(
        headings,
        [
            "### Regressions (1)",
            "### Lost coverage (1)",
            "### Fixes (1)",
            "### New cells (1)",
            "### Removed cells (1)",
        ]
    );
    assert!(
        md.contains(
            "| c | crane@0.22.1 | ✅ pass | 💥 error | error because of c on crane@0.22.1 |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| d | crane@0.22.1 | ✅ pass | — | pass because of d on crane@0.22.1 |"),
        "{md}"
    );
}

#[test]
fn diff_of_identical_runs_is_empty() {
    let d = diff::diff(&common::sample(), &common::sample());
    assert!(d.is_empty());
    assert!(diff::render_markdown(&d).contains("No cell changed verdict."));
}

#[test]
fn diff_pairs_a_client_whose_version_changed() {
    let old = report("old", &[("login", CRANE, Pass), ("pull", CRANE, Pass)]);
    let new = report(
        "new",
        &[
            ("login", "crane@0.23.0", Fail),
            ("pull", "crane@0.23.0", Pass),
        ],
    );
    let d = diff::diff(&old, &new);
    assert_eq!(d.changes.len(), 1, "{d:?}");
    let change = &d.changes[0];
    assert_eq!(change.kind, ChangeKind::Regression);
    assert_eq!(change.client, "crane@0.23.0");
    assert_eq!(change.old_client.as_deref(), Some(CRANE));
    assert!(diff::render_markdown(&d).contains("| crane@0.22.1 → crane@0.23.0 |"));
}

#[test]
fn diff_does_not_guess_when_the_pairing_is_ambiguous() {
    let old = report("old", &[("login", CRANE, Pass)]);
    let new = report(
        "new",
        &[
            ("login", "crane@0.23.0", Pass),
            ("login", "crane@0.24.0", Pass),
        ],
    );
    let d = diff::diff(&old, &new);
    let kinds: Vec<_> = d
        .changes
        .iter()
        .map(|c| (c.kind, c.client.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Added, "crane@0.23.0"),
            (ChangeKind::Added, "crane@0.24.0"),
            (ChangeKind::Removed, CRANE),
        ]
    );
}

// ---------------------------------------------------------------- baseline

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Bucket {
    Fine,
    Regression,
    LostCoverage,
    NewFailure,
    KnownFailure,
    Fixed,
}

fn bucket_of(outcome: &BaselineOutcome) -> Bucket {
    let buckets = [
        (Bucket::Regression, outcome.regressions.len()),
        (Bucket::LostCoverage, outcome.lost_coverage.len()),
        (Bucket::NewFailure, outcome.new_failures.len()),
        (Bucket::KnownFailure, outcome.known_failures.len()),
        (Bucket::Fixed, outcome.fixed.len()),
    ];
    let hit: Vec<_> = buckets.iter().filter(|(_, n)| *n > 0).collect();
    match hit.as_slice() {
        [] => Bucket::Fine,
        [(b, 1)] => *b,
        more => panic!("cell landed in {more:?}"),
    }
}

#[rstest]
// baseline pass
#[case(Some(Pass), Some(Pass), Bucket::Fine)]
#[case(Some(Pass), Some(Fail), Bucket::Regression)]
#[case(Some(Pass), Some(Error), Bucket::Regression)]
#[case(Some(Pass), Some(NotRun), Bucket::LostCoverage)]
#[case(Some(Pass), Some(NotApplicable), Bucket::LostCoverage)]
#[case(Some(Pass), None, Bucket::LostCoverage)]
// baseline fail / error: known broken
#[case(Some(Fail), Some(Pass), Bucket::Fixed)]
#[case(Some(Fail), Some(Fail), Bucket::KnownFailure)]
#[case(Some(Fail), Some(Error), Bucket::KnownFailure)]
#[case(Some(Fail), Some(NotRun), Bucket::Fine)]
#[case(Some(Fail), Some(NotApplicable), Bucket::Fine)]
#[case(Some(Fail), None, Bucket::Fine)]
#[case(Some(Error), Some(Pass), Bucket::Fixed)]
#[case(Some(Error), Some(Fail), Bucket::KnownFailure)]
#[case(Some(Error), Some(Error), Bucket::KnownFailure)]
#[case(Some(Error), Some(NotRun), Bucket::Fine)]
#[case(Some(Error), Some(NotApplicable), Bucket::Fine)]
#[case(Some(Error), None, Bucket::Fine)]
// baseline not-run / not-applicable: nothing was known
#[case(Some(NotRun), Some(Pass), Bucket::Fixed)]
#[case(Some(NotRun), Some(Fail), Bucket::NewFailure)]
#[case(Some(NotRun), Some(Error), Bucket::NewFailure)]
#[case(Some(NotRun), Some(NotRun), Bucket::Fine)]
#[case(Some(NotRun), Some(NotApplicable), Bucket::Fine)]
#[case(Some(NotRun), None, Bucket::Fine)]
#[case(Some(NotApplicable), Some(Pass), Bucket::Fixed)]
#[case(Some(NotApplicable), Some(Fail), Bucket::NewFailure)]
#[case(Some(NotApplicable), Some(Error), Bucket::NewFailure)]
#[case(Some(NotApplicable), Some(NotRun), Bucket::Fine)]
#[case(Some(NotApplicable), Some(NotApplicable), Bucket::Fine)]
#[case(Some(NotApplicable), None, Bucket::Fine)]
// cell not in the baseline
#[case(None, Some(Pass), Bucket::Fixed)]
#[case(None, Some(Fail), Bucket::NewFailure)]
#[case(None, Some(Error), Bucket::NewFailure)]
#[case(None, Some(NotRun), Bucket::Fine)]
#[case(None, Some(NotApplicable), Bucket::Fine)]
fn baseline_truth_table(
    #[case] was: Option<Verdict>,
    #[case] now: Option<Verdict>,
    #[case] expected: Bucket,
) {
    let outcome = baseline::check(&run("new", now), &run("base", was));
    assert_eq!(bucket_of(&outcome), expected, "{outcome:?}");
    // Only a regression (pass → fail/error) fails the check.
    let should_fail = expected == Bucket::Regression;
    assert_eq!(outcome.passed(), !should_fail, "{}", outcome.summary());
}

#[test]
fn baseline_lists_lost_coverage_and_known_failures_without_failing() {
    let base = report("base", &[("login", CRANE, Pass), ("login", SKOPEO, Fail)]);
    let mut now = report("now", &[("login", CRANE, NotRun), ("login", SKOPEO, Fail)]);
    now.cells[0].reason = "crane missing from the cache".into();
    let outcome = baseline::check(&now, &base);
    assert!(outcome.passed());
    assert_eq!(
        outcome.summary(),
        "baseline ok: 0 regression(s), 1 lost coverage, 0 new failure(s), 1 known failure(s), 0 fixed"
    );
    let md = baseline::render_markdown(&outcome);
    assert!(
        md.starts_with("## Baseline check against run `base`\n\n✅ baseline ok"),
        "{md}"
    );
    let lost = md.split("### Lost coverage").nth(1).unwrap();
    assert!(
        lost.contains(
            "| login | crane@0.22.1 | ✅ pass | ⚠ not-run | crane missing from the cache |"
        ),
        "{md}"
    );
    assert!(md.contains("### Known failures (tolerated) (1)"), "{md}");
}

#[test]
fn one_regression_among_known_failures_fails_and_fixes_are_reported() {
    let base = report(
        "base",
        &[
            ("login", CRANE, Pass),
            ("login", SKOPEO, Fail),
            ("pull", CRANE, Error),
            ("pull", SKOPEO, Fail),
        ],
    );
    let now = report(
        "now",
        &[
            ("login", CRANE, Fail),
            ("login", SKOPEO, Fail),
            ("pull", CRANE, Error),
            ("pull", SKOPEO, Pass),
        ],
    );
    let outcome = baseline::check(&now, &base);
    assert!(!outcome.passed());
    let cells = |list: &[reports::diff::CellChange]| -> Vec<(String, String)> {
        list.iter()
            .map(|c| (c.scenario.clone(), c.client.clone()))
            .collect()
    };
    assert_eq!(
        cells(&outcome.regressions),
        [("login".to_owned(), CRANE.to_owned())]
    );
    assert_eq!(cells(&outcome.known_failures).len(), 2);
    assert_eq!(
        cells(&outcome.fixed),
        [("pull".to_owned(), SKOPEO.to_owned())]
    );
    let md = baseline::render_markdown(&outcome);
    assert!(md.contains("❌ baseline FAILED: 1 regression(s)"), "{md}");
    let regressions = md.split("### Regressions").nth(1).unwrap();
    assert!(
        regressions.contains(
            "| login | crane@0.22.1 | ✅ pass | ❌ fail | fail because of login on crane@0.22.1 |"
        ),
        "{md}"
    );
    assert!(md.contains("### Fixed (update the baseline) (1)"), "{md}");

    // The same run without its regression passes despite the known failures.
    let mut fixed = now.clone();
    fixed.cells[0].verdict = Pass;
    assert!(baseline::check(&fixed, &base).passed());
}

#[test]
fn baseline_follows_a_client_version_bump() {
    let base = report("base", &[("login", CRANE, Pass)]);
    let now = report("now", &[("login", "crane@0.23.0", Pass)]);
    let outcome = baseline::check(&now, &base);
    assert!(outcome.passed(), "{}", outcome.summary());
    assert!(outcome.lost_coverage.is_empty() && outcome.fixed.is_empty());
}

#[test]
fn a_subset_run_is_compared_only_where_it_ran() {
    // The baseline ran two scenarios × two clients; this run only `login` × crane.
    let base = report(
        "base",
        &[
            ("login", CRANE, Pass),
            ("login", SKOPEO, Pass),
            ("pull", CRANE, Pass),
            ("pull", SKOPEO, Pass),
        ],
    );
    let now = report("now", &[("login", CRANE, Pass)]);
    let outcome = baseline::check(&now, &base);
    assert!(outcome.passed());
    assert!(outcome.lost_coverage.is_empty(), "{outcome:?}");
    assert_eq!(outcome.outside_the_run, 3);
    assert!(
        outcome
            .summary()
            .ends_with("(3 baseline cell(s) outside this run's scenarios and clients)"),
        "{}",
        outcome.summary()
    );
    // Inside the run's scenarios and clients, a cell that is gone is still lost coverage.
    let mut now = report("now", &[("login", CRANE, Pass), ("pull", SKOPEO, Pass)]);
    now.cells.retain(|c| c.scenario == "login");
    now.scenarios.retain(|s| s.id == "login" || s.id == "pull");
    let outcome = baseline::check(&now, &base);
    assert_eq!(outcome.outside_the_run, 2, "{outcome:?}");
    assert_eq!(outcome.lost_coverage.len(), 1, "pull × crane: {outcome:?}");
}
