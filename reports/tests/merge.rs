//! Sharding and merging: shard reports split from one whole report merge back into it, and
//! every input that cannot be merged is refused with its own error.

mod common;

use std::collections::HashMap;

use common::{CRANE, DOCKER, SKOPEO, cell, report};
use reports::merge::{MergeError, MergeInput, MergeOptions, merge, sort_cells_as_run};
use reports::shard::{CellKey, split};
use reports::{RunReport, Verdict};

const VERDICTS: [Verdict; 7] = [
    Verdict::Pass,
    Verdict::Fail,
    Verdict::NotApplicable,
    Verdict::NotRun,
    Verdict::Error,
    Verdict::KnownFailure,
    Verdict::Fixed,
];

/// 9 scenarios × 3 clients, every verdict, evidence on the cells that ran, durations that
/// differ.
fn whole() -> RunReport {
    let clients = [CRANE, SKOPEO, DOCKER];
    let mut cells = Vec::new();
    for s in 0..9 {
        for (c, client) in clients.iter().enumerate() {
            cells.push((
                format!("scenario-{s}"),
                *client,
                VERDICTS[(s + c) % VERDICTS.len()],
            ));
        }
    }
    let borrowed: Vec<(&str, &str, Verdict)> =
        cells.iter().map(|(s, c, v)| (s.as_str(), *c, *v)).collect();
    let mut whole = report("20250101T000000Z-1", &borrowed);
    for (i, cell) in whole.cells.iter_mut().enumerate() {
        cell.duration_ms = 500 + (i as u64 * 7919) % 17 * 1000;
    }
    whole
}

fn durations(report: &RunReport) -> HashMap<CellKey, u64> {
    report
        .cells
        .iter()
        .map(|c| {
            (
                CellKey::new(c.scenario.as_str(), c.client.as_str()),
                c.duration_ms,
            )
        })
        .collect()
}

fn inputs(shards: Vec<RunReport>) -> Vec<MergeInput> {
    shards
        .into_iter()
        .map(|report| MergeInput {
            origin: format!("shard-{}.json", report.shard.map_or(0, |s| s.index)),
            report,
        })
        .collect()
}

fn cells_json(report: &RunReport) -> String {
    let mut report = report.clone();
    sort_cells_as_run(&mut report);
    serde_json::to_string_pretty(&report.cells).unwrap()
}

#[test]
fn merging_the_shards_of_a_report_gives_back_its_cells() {
    let whole = whole();
    for with_durations in [false, true] {
        let recorded = if with_durations {
            durations(&whole)
        } else {
            HashMap::new()
        };
        for count in 1..=4 {
            let mut shards = split(&whole, count, &recorded);
            assert_eq!(shards.len(), count);
            // Given in any order, through the JSON files the shards write.
            shards.reverse();
            let dir = tempfile::tempdir().unwrap();
            let shards: Vec<RunReport> = shards
                .into_iter()
                .map(|shard| {
                    let path = dir.path().join(format!("{}.json", shard.run_id));
                    shard.write(&path).unwrap();
                    let read = RunReport::read(&path).unwrap();
                    assert_eq!(read.shard, shard.shard, "the shard survives JSON");
                    read
                })
                .collect();
            let merged = merge(inputs(shards), MergeOptions::default())
                .unwrap_or_else(|e| panic!("{count} shards: {e}"));
            assert_eq!(merged.shard, None);
            // The cells are the whole report's, in the order a whole run writes them.
            assert_eq!(cells_json(&merged), cells_json(&whole), "{count} shards");
            assert_eq!(
                serde_json::to_string(&merged.cells).unwrap(),
                serde_json::to_string(&whole.cells).unwrap(),
                "{count} shards: order"
            );
            assert_eq!(merged.totals(), whole.totals());
            assert_eq!(merged.clients, whole.clients);
            assert_eq!(merged.scenarios, whole.scenarios);
            assert_eq!(merged.regcompat_version, whole.regcompat_version);
            // Every writer renders it; the JSON has no `shard`.
            let out = dir.path().join("merged");
            let written = reports::write_all(&merged, &out).unwrap();
            let text = std::fs::read_to_string(&written.json).unwrap();
            assert!(!text.contains("\"shard\""), "{text}");
            let markdown = std::fs::read_to_string(&written.markdown).unwrap();
            assert!(markdown.contains("27 cells"), "{markdown}");
            assert!(!markdown.contains("missing"), "{markdown}");
        }
    }
}

#[test]
fn a_shard_report_shows_its_shard_and_old_reports_have_none() {
    let shards = split(&whole(), 3, &HashMap::new());
    let json = reports::json::to_string(&shards[1]).unwrap();
    assert!(
        json.contains("\"shard\": {\n    \"index\": 2,\n    \"count\": 3\n  }"),
        "{json}"
    );
    // Every human-facing writer says which shard it is.
    assert!(reports::markdown::render(&shards[1]).contains("(shard 2/3)"));
    assert!(reports::html::render(&shards[1]).contains("(shard 2/3)"));
    assert!(reports::summary::render_text(&shards[1]).contains("(shard 2/3)"));
    let merged = merge(inputs(shards.clone()), MergeOptions::default()).unwrap();
    assert!(!reports::markdown::render(&merged).contains("(shard"));
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value.as_object_mut().unwrap().remove("shard");
    let old = reports::json::parse(&value.to_string(), std::path::Path::new("old.json")).unwrap();
    assert_eq!(old.shard, None);
}

fn error_of(shards: Vec<RunReport>) -> MergeError {
    merge(inputs(shards), MergeOptions::default()).unwrap_err()
}

#[test]
fn reports_that_cannot_be_merged_are_refused() {
    let whole = whole();
    let shards = || split(&whole, 3, &HashMap::new());

    assert_eq!(
        merge(vec![], MergeOptions::default()).unwrap_err(),
        MergeError::NoInputs
    );

    // Different regcompat versions.
    let mut different = shards();
    different[2].regcompat_version = "0.2.0".into();
    let error = error_of(different);
    assert!(
        matches!(error, MergeError::VersionsDiffer { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("0.2.0"), "{error}");

    // Different scenario sets.
    let mut different = shards();
    different[1].scenarios.retain(|s| s.id != "scenario-4");
    let error = error_of(different);
    assert!(
        matches!(error, MergeError::ScenariosDiffer { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("`scenario-4` only in shard-1.json"),
        "{error}"
    );
    let mut different = shards();
    different[0].scenarios.push(common::scenario("extra"));
    let error = error_of(different);
    assert!(
        error.to_string().contains("`extra` only in shard-1.json"),
        "{error}"
    );

    // Different client columns.
    let mut different = shards();
    different[2].clients.push(common::client("oras@1.2.0"));
    let error = error_of(different);
    assert!(matches!(error, MergeError::ClientsDiffer { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("`oras@1.2.0` only in shard-3.json"),
        "{error}"
    );

    // The same cell in two inputs.
    let mut overlapping = shards();
    let stolen = overlapping[0].cells[0].clone();
    overlapping[1].cells.push(stolen.clone());
    let error = error_of(overlapping);
    assert_eq!(
        error,
        MergeError::OverlappingCell {
            cell: CellKey::new(stolen.scenario.as_str(), stolen.client.as_str()),
            first: "shard-1.json".into(),
            origin: "shard-2.json".into(),
        }
    );
    // One shard given twice.
    let mut twice = shards();
    twice.push(twice[1].clone());
    let error = error_of(twice);
    assert!(
        matches!(error, MergeError::ShardGivenTwice { .. }),
        "{error}"
    );

    // Mixed shard counts.
    let mut mixed = split(&whole, 2, &HashMap::new());
    mixed.push(shards()[2].clone());
    let error = error_of(mixed);
    assert!(
        matches!(error, MergeError::ShardCountsDiffer { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("shard 3/3"), "{error}");

    // A whole report is no shard.
    let mut unsharded = shards();
    unsharded[0].shard = None;
    let error = error_of(unsharded);
    assert!(matches!(error, MergeError::NotAShard { .. }), "{error}");

    // A cell outside the declared matrix.
    let mut outside = shards();
    outside[0]
        .cells
        .push(cell("undeclared", CRANE, Verdict::Pass));
    let error = error_of(outside);
    assert!(
        matches!(error, MergeError::CellOutsideMatrix { .. }),
        "{error}"
    );

    // Every message is one line.
    for error in [
        error_of(vec![whole.clone()]),
        MergeError::MissingShards {
            missing: "2".into(),
            count: 3,
        },
    ] {
        assert!(!error.to_string().contains('\n'), "{error}");
    }
}

#[test]
fn a_missing_shard_or_cell_is_refused_unless_partial_is_allowed() {
    let whole = whole();
    let mut shards = split(&whole, 3, &HashMap::new());
    let second = shards.remove(1);
    let partial = MergeOptions {
        allow_partial: true,
    };

    let error = merge(inputs(shards.clone()), MergeOptions::default()).unwrap_err();
    assert_eq!(
        error,
        MergeError::MissingShards {
            missing: "2".into(),
            count: 3
        }
    );
    assert!(error.to_string().contains("--allow-partial"), "{error}");
    let merged = merge(inputs(shards.clone()), partial).unwrap();
    assert_eq!(merged.cells.len(), whole.cells.len() - second.cells.len());
    assert_eq!(merged.shard, None);
    let markdown = reports::markdown::render(&merged);
    assert!(
        markdown.contains(&format!("{} missing", second.cells.len())),
        "{markdown}"
    );

    // All shards there, but a cell in none (shards that assigned differently).
    let mut shards = split(&whole, 3, &HashMap::new());
    let lost = shards[2].cells.pop().unwrap();
    let error = merge(inputs(shards.clone()), MergeOptions::default()).unwrap_err();
    assert_eq!(
        error,
        MergeError::MissingCells {
            missing: 1,
            example: CellKey::new(lost.scenario.as_str(), lost.client.as_str()),
        }
    );
    assert!(merge(inputs(shards), partial).is_ok());
}

#[test]
fn a_column_is_taken_from_a_shard_that_ran_it() {
    let whole = whole();
    let mut shards = split(&whole, 4, &HashMap::new());
    // Shard 1 has no skopeo cell and did not install it.
    shards[0].cells.retain(|c| c.client != SKOPEO);
    let moved: Vec<_> = split(&whole, 4, &HashMap::new())[0]
        .cells
        .iter()
        .filter(|c| c.client == SKOPEO)
        .cloned()
        .collect();
    shards[1].cells.extend(moved);
    for info in &mut shards[0].clients {
        if info.id == SKOPEO {
            info.unavailable = Some("skopeo@1.18.0 is not installed".into());
            info.path = None;
        }
    }
    let merged = merge(inputs(shards), MergeOptions::default()).unwrap();
    let skopeo = merged.clients.iter().find(|c| c.id == SKOPEO).unwrap();
    assert_eq!(skopeo.unavailable, None);
    assert_eq!(cells_json(&merged), cells_json(&whole));
}
