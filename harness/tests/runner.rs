//! The matrix runner end to end with stand-in clients (shell scripts in place of crane):
//! a client that never talks to the registry cannot pass, a hanging client is killed at the
//! scenario's timeout, and after a run nothing the harness started is still running.

use harness::clients::Binaries;
use harness::process;
use harness::runner::{self, ClientColumn, RunOptions};
use harness::sandbox::RUN_ID_VAR;
use harness::scenario::Scenario;
use reports::{ClientInfo, Verdict};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SCENARIO: &str = r#"
[scenario]
title = "stand-in client"
timeout = 2

[[host]]
name = "open"
hostname = "registry.example.test"
profile = { kind = "open" }
[[host.seed]]
repository = "library/base"
tag = "1"

[[step]]
action = "pull"
image = "{open}/library/base:1"
"#;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn column(id: &str, crane: PathBuf) -> ClientColumn {
    let mut bins = Binaries::default();
    bins.paths.insert("crane".into(), crane.clone());
    ClientColumn {
        info: ClientInfo {
            id: id.into(),
            name: "crane".into(),
            version: "dev".into(),
            source: "path".into(),
            path: Some(crane.display().to_string()),
            unavailable: None,
        },
        driver: "crane".into(),
        bins,
    }
}

#[test]
fn stand_in_clients_cannot_pass_hang_until_killed_and_leave_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::parse(SCENARIO, &dir.path().join("stand-in.toml")).unwrap();
    // exits 0 without contacting anything, leaving a background process in its group
    let liar = script(dir.path(), "liar", "sleep 1000 &\nexit 0");
    // hangs past the 2 s timeout, with a child
    let hanger = script(dir.path(), "hanger", "sleep 1000 &\nexec sleep 1000");
    let missing = column("crane@missing", PathBuf::from("/nonexistent"));
    let mut missing = missing;
    missing.info.unavailable = Some("not installed".into());
    let columns = vec![
        column("crane@liar", liar),
        column("crane@hanger", hanger),
        missing,
    ];
    let opts = RunOptions {
        out_dir: dir.path().join("out"),
        jobs: 3,
        helper: PathBuf::from(env!("CARGO_BIN_EXE_docker-credential-regcompat")),
        progress: false,
        run_id: format!("runner-test-{}", std::process::id()),
        root: dir.path().to_path_buf(),
    };
    let outcome = runner::run_matrix(&[scenario], &columns, &opts);
    let r = &outcome.report;

    let liar = r.cell("stand-in", "crane@liar").unwrap();
    assert_eq!(liar.verdict, Verdict::Fail, "{liar:?}");
    assert!(
        liar.reason.contains("talked to the fake registry"),
        "{}",
        liar.reason
    );
    assert_eq!(liar.steps[0].exit_code, Some(0));
    assert!(
        liar.steps[0].repro.contains("unshare --mount"),
        "{}",
        liar.steps[0].repro
    );

    let hanger = r.cell("stand-in", "crane@hanger").unwrap();
    assert_eq!(hanger.verdict, Verdict::Fail);
    assert!(hanger.steps[0].timed_out, "{hanger:?}");
    assert_eq!(hanger.steps[0].exit_code, None);

    let missing = r.cell("stand-in", "crane@missing").unwrap();
    assert_eq!(missing.verdict, Verdict::NotRun);
    assert!(missing.steps.is_empty());

    // nothing the harness started outlived the run, and the safety net had nothing to kill
    assert!(outcome.leftovers.is_empty(), "{:?}", outcome.leftovers);
    assert!(process::processes_with_env(RUN_ID_VAR, &opts.run_id).is_empty());
}

#[test]
fn a_scenario_needing_an_action_the_client_lacks_is_not_applicable() {
    let dir = tempfile::tempdir().unwrap();
    let text = SCENARIO.replace("action = \"pull\"", "action = \"build-from\"");
    let scenario = Scenario::parse(&text, &dir.path().join("b.toml")).unwrap();
    let crane = script(dir.path(), "crane", "exit 0");
    let opts = RunOptions {
        out_dir: dir.path().join("out"),
        jobs: 1,
        helper: PathBuf::from(env!("CARGO_BIN_EXE_docker-credential-regcompat")),
        progress: false,
        run_id: format!("runner-na-{}", std::process::id()),
        root: dir.path().to_path_buf(),
    };
    let outcome = runner::run_matrix(&[scenario], &[column("crane@x", crane)], &opts);
    let c = &outcome.report.cells[0];
    assert_eq!(c.verdict, Verdict::NotApplicable);
    assert!(c.reason.contains("build-from"), "{}", c.reason);
}
