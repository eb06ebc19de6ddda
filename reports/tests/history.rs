//! History: stored as `<run_id>.json`, bounded, ordered by start time, hostile ids refused.

mod common;

use common::{CRANE, report};
use reports::Verdict::{self, Pass};
use reports::history;
use rstest::rstest;

fn run(run_id: &str, started: &str) -> reports::RunReport {
    let mut r = report(run_id, &[("login", CRANE, Pass)]);
    r.started = started.into();
    r
}

fn stored_ids(dir: &std::path::Path) -> Vec<String> {
    history::list(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.run_id)
        .collect()
}

#[test]
fn append_stores_run_id_json_and_keeps_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let history_dir = dir.path().join("history");
    for n in 1..=5 {
        let path = history::append_keeping(
            &run(&format!("run-{n}"), &format!("2025-01-0{n}T00:00:00Z")),
            &history_dir,
            3,
        )
        .unwrap();
        assert_eq!(path, history_dir.join(format!("run-{n}.json")));
        assert!(path.is_file());
    }
    assert_eq!(stored_ids(&history_dir), ["run-3", "run-4", "run-5"]);
    assert_eq!(std::fs::read_dir(&history_dir).unwrap().count(), 3);
}

#[test]
fn order_is_by_start_time_not_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    history::append(&run("b", "2025-01-01T00:00:00Z"), dir.path()).unwrap();
    history::append(&run("a", "2025-01-02T00:00:00Z"), dir.path()).unwrap();
    assert_eq!(stored_ids(dir.path()), ["b", "a"]);
    history::append_keeping(&run("c", "2025-01-03T00:00:00Z"), dir.path(), 2).unwrap();
    assert_eq!(stored_ids(dir.path()), ["a", "c"]);
}

#[test]
fn keep_zero_still_keeps_the_new_run() {
    let dir = tempfile::tempdir().unwrap();
    history::append(&run("a", "2025-01-01T00:00:00Z"), dir.path()).unwrap();
    history::append_keeping(&run("b", "2025-01-02T00:00:00Z"), dir.path(), 0).unwrap();
    assert_eq!(stored_ids(dir.path()), ["b"]);
}

#[test]
fn appending_the_same_run_again_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run("a", "2025-01-01T00:00:00Z");
    history::append(&r, dir.path()).unwrap();
    r.finished = "later".into();
    history::append(&r, dir.path()).unwrap();
    assert_eq!(stored_ids(dir.path()), ["a"]);
    let stored = reports::json::read(&dir.path().join("a.json")).unwrap();
    assert_eq!(stored.finished, "later");
}

#[test]
fn previous_is_the_newest_other_run() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(history::previous(dir.path(), "x").unwrap(), None);
    let missing = dir.path().join("not-yet");
    assert_eq!(history::previous(&missing, "x").unwrap(), None);
    history::append(&run("a", "2025-01-01T00:00:00Z"), dir.path()).unwrap();
    history::append(&run("b", "2025-01-02T00:00:00Z"), dir.path()).unwrap();
    history::append(&run("c", "2025-01-03T00:00:00Z"), dir.path()).unwrap();
    let prev = history::previous(dir.path(), "c").unwrap().unwrap();
    assert_eq!(prev.run_id, "b");
    let prev = history::previous(dir.path(), "new-run").unwrap().unwrap();
    assert_eq!(prev.run_id, "c");
}

#[test]
fn other_files_are_ignored_but_a_broken_report_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.txt"), "notes").unwrap();
    std::fs::write(dir.path().join(".a.json.tmp-1"), "partial").unwrap();
    history::append(&run("a", "2025-01-01T00:00:00Z"), dir.path()).unwrap();
    assert_eq!(stored_ids(dir.path()), ["a"]);

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let message = history::list(dir.path()).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:1:", broken.display())),
        "{message}"
    );

    std::fs::write(
        &broken,
        r#"{"schema":"regcompat.report/v0","run_id":"z","started":""}"#,
    )
    .unwrap();
    let message = history::list(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("unknown report schema `regcompat.report/v0`"),
        "{message}"
    );
}

#[rstest]
#[case::empty("")]
#[case::parent("../escape")]
#[case::slash("a/b")]
#[case::hidden(".hidden")]
#[case::space("a b")]
#[case::too_long(&"x".repeat(129))]
fn hostile_run_ids_are_refused(#[case] run_id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let history_dir = dir.path().join("history");
    let error = history::append(&run(run_id, "2025-01-01T00:00:00Z"), &history_dir).unwrap_err();
    assert!(
        error.to_string().contains("cannot name a history file"),
        "{error}"
    );
    assert!(!history_dir.exists(), "nothing written for a refused id");
}

#[rstest]
#[case("20250101T000000Z-4f2a")]
#[case("nightly_2025.01.01")]
fn ordinary_run_ids_are_accepted(#[case] run_id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = history::append(&run(run_id, "2025-01-01T00:00:00Z"), dir.path()).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{run_id}.json")
    );
}

/// A report whose cells carry evidence as big as real runs' (4 MB for 450 cells): long
/// tails, repro lines, many journal entries, long reasons.
fn heavy(run_id: &str, started: &str, verdicts: &[Verdict]) -> reports::RunReport {
    let clients = ["crane@0.22.1", "skopeo@1.18.0", "docker@28.0.1"];
    let cells: Vec<(String, &str, Verdict)> = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("scenario-{}", i / 3), clients[i % 3], *v))
        .collect();
    let cells: Vec<(&str, &str, Verdict)> =
        cells.iter().map(|(s, c, v)| (s.as_str(), *c, *v)).collect();
    let mut r = report(run_id, &cells);
    r.started = started.into();
    for (i, cell) in r.cells.iter_mut().enumerate() {
        cell.reason = format!("reason {i}: {}", "the client said no; ".repeat(60));
        cell.artifacts = vec![format!("artifacts/{i}/dockerd.log")];
        if cell.verdict == Verdict::KnownFailure {
            cell.known = Some(reports::KnownIssue {
                reason: "recorded".into(),
                link: "https://example.invalid/issue/1".into(),
                versions: "*".into(),
            });
        }
        for step in &mut cell.steps {
            step.stdout_tail = "progress line\n".repeat(300);
            step.stderr_tail = "error line\n".repeat(300);
            step.repro = format!("HOME=/tmp/h {}", "x".repeat(1500));
        }
        let entry = cell.journal.first().cloned();
        if let Some(entry) = entry {
            cell.journal = vec![entry; 40];
        }
    }
    r
}

fn cells_of(verdicts: &str) -> Vec<Verdict> {
    verdicts
        .chars()
        .map(|c| match c {
            'p' => Pass,
            'f' => Verdict::Fail,
            'e' => Verdict::Error,
            'k' => Verdict::KnownFailure,
            'n' => Verdict::NotRun,
            _ => Verdict::NotApplicable,
        })
        .collect()
}

#[test]
fn a_history_entry_is_compact() {
    let full = heavy(
        "run-full",
        "2025-01-01T00:00:00Z",
        &cells_of(&"pfkpa".repeat(90)),
    );
    assert_eq!(full.cells.len(), 450);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    full.write(&out).unwrap();
    let path = history::append(&full, &dir.path().join("history")).unwrap();
    let full_size = std::fs::metadata(&out).unwrap().len();
    let entry_size = std::fs::metadata(&path).unwrap().len();
    println!("history entry {entry_size} bytes, report {full_size} bytes");
    assert!(
        entry_size * 20 < full_size,
        "history entry {entry_size} bytes, report {full_size} bytes"
    );
    assert!(
        entry_size < 450 * 1024,
        "at most 1 KiB per cell: {entry_size} bytes"
    );
    // What is kept: everything a diff, a baseline or a person scanning history needs.
    let stored = reports::RunReport::read(&path).unwrap();
    assert_eq!(stored.run_id, full.run_id);
    assert_eq!(stored.clients, full.clients);
    assert_eq!(stored.scenarios, full.scenarios);
    for (kept, cell) in stored.cells.iter().zip(&full.cells) {
        assert_eq!(
            (
                &kept.scenario,
                &kept.client,
                kept.verdict,
                kept.duration_ms,
                &kept.known
            ),
            (
                &cell.scenario,
                &cell.client,
                cell.verdict,
                cell.duration_ms,
                &cell.known
            )
        );
        assert!(kept.steps.is_empty() && kept.checks.is_empty());
        assert!(kept.journal.is_empty() && kept.artifacts.is_empty());
        assert!(kept.reason.chars().count() <= history::REASON_CHARS);
        let prefix: String = kept
            .reason
            .chars()
            .take(history::REASON_CHARS - 1)
            .collect();
        assert!(cell.reason.starts_with(&prefix));
    }
    // A short reason is kept as it is.
    let mut short = full.clone();
    short.cells[0].reason = "exit 1\nunauthorized".into();
    assert_eq!(
        history::compact(&short).cells[0].reason,
        "exit 1\nunauthorized"
    );
}

#[test]
fn diff_and_baseline_answer_the_same_on_compact_entries() {
    let old = heavy("old", "2025-01-01T00:00:00Z", &cells_of("ppfpanpkepap"));
    let new = heavy("new", "2025-01-02T00:00:00Z", &cells_of("pfpnappkfpep"));
    let dir = tempfile::tempdir().unwrap();
    history::append(&old, dir.path()).unwrap();
    history::append(&new, dir.path()).unwrap();
    let stored_old = history::previous(dir.path(), "new").unwrap().unwrap();
    let stored_new = history::previous(dir.path(), "old").unwrap().unwrap();
    assert_eq!(stored_old, history::compact(&old));

    let strip = |d: reports::diff::Diff| -> Vec<_> {
        d.changes
            .into_iter()
            .map(|c| (c.kind, c.scenario, c.client, c.old, c.new))
            .collect()
    };
    let full_diff = strip(reports::diff::diff(&old, &new));
    assert!(!full_diff.is_empty());
    assert_eq!(
        strip(reports::diff::diff(&stored_old, &stored_new)),
        full_diff
    );
    // Mixed: a compact entry against a full report.
    assert_eq!(strip(reports::diff::diff(&stored_old, &new)), full_diff);

    let outcome = |b: reports::baseline::BaselineOutcome| {
        let keys = |l: Vec<reports::diff::CellChange>| -> Vec<_> {
            l.into_iter()
                .map(|c| (c.scenario, c.client, c.old, c.new))
                .collect()
        };
        (
            b.passed(),
            keys(b.regressions),
            keys(b.lost_coverage),
            keys(b.new_failures),
            keys(b.known_failures),
            keys(b.fixed),
        )
    };
    let full_check = outcome(reports::baseline::check(&new, &old));
    assert!(!full_check.0, "the fixture has a regression");
    assert_eq!(
        outcome(reports::baseline::check(&stored_new, &stored_old)),
        full_check
    );
    assert_eq!(
        outcome(reports::baseline::check(&new, &stored_old)),
        full_check
    );
}

/// Entries stored whole by an older regcompat stay readable beside compact ones.
#[test]
fn old_full_entries_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let old = heavy("old", "2025-01-01T00:00:00Z", &cells_of("ppf"));
    // What `append` wrote before entries were compact: the whole report.
    old.write(dir.path().join("old.json")).unwrap();
    let new = heavy("new", "2025-01-02T00:00:00Z", &cells_of("pfp"));
    history::append(&new, dir.path()).unwrap();
    assert_eq!(stored_ids(dir.path()), ["old", "new"]);
    let previous = history::previous(dir.path(), "new").unwrap().unwrap();
    assert_eq!(previous, old, "read back whole, evidence and all");
    let d = reports::diff::diff(
        &previous,
        &history::previous(dir.path(), "old").unwrap().unwrap(),
    );
    assert_eq!(d.of_kind(reports::diff::ChangeKind::Regression).count(), 1);
}
