//! History: stored as `<run_id>.json`, bounded, ordered by start time, hostile ids refused.

mod common;

use common::{CRANE, report};
use reports::Verdict::Pass;
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
