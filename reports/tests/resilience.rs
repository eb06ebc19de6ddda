//! The resilience table groups scenarios by fault kind and keeps only clients that ran one.

mod common;

use reports::Verdict;
use reports::resilience::{self, RULE};

#[test]
fn scenarios_of_one_fault_kind_share_a_column_and_each_client_shows_the_one_it_ran() {
    let mut report = common::report(
        "r",
        &[
            ("fault-503-blob", "crane@1", Verdict::Pass),
            ("fault-503-blob", "pack@1", Verdict::NotApplicable),
            (
                "fault-503-blob-builder-create",
                "crane@1",
                Verdict::NotApplicable,
            ),
            (
                "fault-503-blob-builder-create",
                "pack@1",
                Verdict::KnownFailure,
            ),
            (
                "fault-hung-token-endpoint",
                "crane@1",
                Verdict::KnownFailure,
            ),
            (
                "fault-hung-token-endpoint",
                "pack@1",
                Verdict::NotApplicable,
            ),
            ("open-pull", "crane@1", Verdict::Pass),
            ("open-pull", "skopeo@1", Verdict::Pass),
            (
                "fault-hung-token-endpoint",
                "skopeo@1",
                Verdict::NotApplicable,
            ),
        ],
    );
    for s in &mut report.scenarios {
        if s.id.starts_with("fault-") {
            s.rules = vec![RULE.into()];
        }
        if s.id == "fault-503-blob-builder-create" {
            s.fault_kind = Some("fault-503-blob".into());
        }
    }
    let table = resilience::table(&report);

    let kinds: Vec<&str> = table.columns.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["503-blob", "hung-token-endpoint"]);
    assert_eq!(
        table.columns[0].scenarios,
        ["fault-503-blob", "fault-503-blob-builder-create"]
    );
    // skopeo ran no fault cell: no row.
    let clients: Vec<&str> = table.rows.iter().map(|r| r.client.as_str()).collect();
    assert_eq!(clients, ["crane@1", "pack@1"]);
    let verdicts = |row: usize| -> Vec<Verdict> {
        table.rows[row]
            .cells
            .iter()
            .map(|b| b.as_ref().expect("a cell").verdict)
            .collect()
    };
    assert_eq!(verdicts(0), [Verdict::Pass, Verdict::KnownFailure]);
    // pack's 503 cell is the builder-create one it ran, not the pull one it could not.
    assert_eq!(verdicts(1), [Verdict::KnownFailure, Verdict::NotApplicable]);
}

#[test]
fn a_run_without_fault_scenarios_has_no_table() {
    let report = common::report("r", &[("open-pull", "crane@1", Verdict::Pass)]);
    let table = resilience::table(&report);
    assert!(table.columns.is_empty() && table.rows.is_empty());
    assert!(reports::markdown::resilience_table(&report).is_empty());
}

/// A scenario family is one row: pack's cell on `fault-503-blob` ran the variant
/// `fault-503-blob-builder-create` (no row of its own), and the table reads it from there —
/// the fault from its own journal.
#[test]
fn a_cell_that_ran_a_variant_sits_in_its_rows_column() {
    let mut report = common::report(
        "r",
        &[
            ("fault-503-blob", "crane@1", Verdict::Pass),
            ("fault-503-blob", "pack@1", Verdict::Fail),
            ("open-pull", "pack@1", Verdict::NotApplicable),
        ],
    );
    report.scenarios[0].rules = vec![RULE.into()];
    let pack = &mut report.cells[1];
    pack.verdict = Verdict::KnownFailure;
    pack.variant = Some("fault-503-blob-builder-create".into());
    pack.steps[0].action = "builder-create".into();
    pack.journal[1]["path"] = "/v2/cnb/build/blobs/sha256:aa".into();
    pack.journal[1]["fault"] = "status 503".into();
    let table = resilience::table(&report);
    assert_eq!(table.columns.len(), 1);
    assert_eq!(table.columns[0].scenarios, ["fault-503-blob"]);
    let clients: Vec<&str> = table.rows.iter().map(|r| r.client.as_str()).collect();
    assert_eq!(clients, ["crane@1", "pack@1"]);
    let pack = table.rows[1].cells[0].as_ref().expect("pack's cell");
    assert_eq!(pack.verdict, Verdict::KnownFailure);
    assert_eq!(pack.fault.as_deref(), Some("status 503"));
    assert_eq!(pack.attempts, 1);
    let md = reports::markdown::resilience_table(&report);
    assert!(md.contains("pack@1"), "{md}");
}
