//! `cargo xtask repro SCENARIO CLIENT`: one cell of the matrix, live. The cell runs as in
//! `run-scenarios` (fresh sandbox, its own fleet and CA, the client's daemons, every step);
//! then, with the fleet and the daemons still up, the command of the first step that did not
//! go as expected is printed — pasted into a root shell it runs the client again against the
//! same fleet, in the same isolation (hosts file bound over `/etc/hosts`, cleared
//! environment) — and everything stays up until Ctrl-C (or `--hold SECONDS`).

use crate::run_scenarios::{self, UsageError};
use anyhow::{Context, Result};
use harness::provision::{self, Manifest};
use harness::runner::{self, CellOptions, Hold, LiveStep};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The scenario's id (its file stem), e.g. `acr-wrong-password`.
    scenario: String,
    /// The client, as `run-scenarios --client` takes it: `name`, `name@version`,
    /// `name=PATH` or `refclient@MUTANT`.
    client: String,
    /// The directory of scenario files [default: scenarios/ at the workspace root].
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// Tear the cell down after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECONDS")]
    hold: Option<u64>,
    /// Also write the repro command to this file (a shell script), for scripts.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
}

/// Cell indexes (loopback addresses) of repro cells: clear of a matrix run's first cells.
const FIRST_INDEX: usize = 60_000;

pub fn run(args: Args) -> Result<()> {
    let root = run_scenarios::workspace_root();
    let manifest =
        Manifest::load(provision::default_manifest_path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_scenarios::check_request(&manifest, &args.client)?;
    let dir = args
        .scenarios
        .clone()
        .unwrap_or_else(|| root.join("scenarios"));
    let path = dir.join(format!("{}.toml", args.scenario));
    if !path.is_file() {
        return Err(UsageError(format!(
            "no scenario {:?} in {} (scenario ids are the file stems there)",
            args.scenario,
            dir.display()
        ))
        .into());
    }
    harness::scenario::Scenario::load(&path).map_err(|e| UsageError(e.to_string()))?;

    run_scenarios::build_helper_binaries(&root)?;
    let column = run_scenarios::client_column(&manifest, &args.client);
    if let Err(why) = &column.binary {
        anyhow::bail!("{why}");
    }

    let scratch = std::env::temp_dir().join(format!("regcompat-repro-{}", std::process::id()));
    let options = CellOptions {
        keep_failed: false,
        hold: Some(hold(args.hold, args.script.clone())),
    };
    let index = FIRST_INDEX + std::process::id() as usize % 1_000;
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    eprintln!("running {} × {} …", args.scenario, column.id);
    let cell = runtime.block_on(runner::run_cell_with(
        &path, &column, index, &scratch, &options,
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    println!("verdict: {} — {}", cell.verdict, cell.reason);
    if let Some(variant) = &cell.variant {
        println!(
            "ran the variant {variant} ({} cannot express {} itself)",
            column.id, args.scenario
        );
    }
    // The matrix would apply the recorded known failures: say so here too.
    let known = harness::known::KnownFailures::load(&root.join(harness::known::FILE_NAME))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(record) = known.find(&column.driver_name, &column.version, &cell) {
        println!(
            "recorded in {}: {} — {} (the matrix reads this cell as known-failure, or fixed \
             when it passes)",
            harness::known::FILE_NAME,
            record.reason,
            record.link.get_ref()
        );
    }
    Ok(())
}

/// Prints the steps and the command to paste, then waits.
fn hold(seconds: Option<u64>, script: Option<PathBuf>) -> Hold {
    Box::new(move |steps: &[LiveStep]| {
        print!("{}", describe(steps));
        if let (Some(file), Some(step)) = (&script, step_to_reproduce(steps)) {
            let text = format!("#!/bin/sh\n{}\n", step.command);
            if let Err(e) = std::fs::write(file, text) {
                eprintln!("warning: cannot write {}: {e}", file.display());
            }
        }
        match seconds {
            Some(s) => println!("The fleet and the daemons stay up for {s} s."),
            None => println!("The fleet and the daemons stay up until Ctrl-C."),
        }
        Box::pin(async move {
            match seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
    })
}

/// The first step that did not go as expected, else the last one.
fn step_to_reproduce(steps: &[LiveStep]) -> Option<&LiveStep> {
    steps
        .iter()
        .find(|s| !runner::step_met(&s.record))
        .or(steps.last())
}

/// Each step with what it was expected to do and what it did, then the command to paste.
fn describe(steps: &[LiveStep]) -> String {
    let mut out = String::from("\nSteps, as they ran:\n");
    let chosen = step_to_reproduce(steps).map(|s| s as *const LiveStep);
    for (i, live) in steps.iter().enumerate() {
        let s = &live.record;
        let outcome = match (s.timed_out, s.exit_code) {
            (true, _) => "killed at the timeout".to_owned(),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => "did not start".to_owned(),
        };
        let expected = if s.preparation {
            "success (preparation)".to_owned()
        } else {
            s.expected.clone()
        };
        let marker = if runner::step_met(s) {
            "ok"
        } else {
            "NOT AS EXPECTED"
        };
        out.push_str(&format!(
            "  {}. {} — expected {expected}, got {outcome}: {marker}\n",
            i + 1,
            s.action
        ));
        if chosen == Some(live as *const LiveStep) {
            out.push_str(&format!(
                "\nTo reproduce step {} (as root, in another shell):\n\n{}\n\n",
                i + 1,
                live.command
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::StepRecord;

    fn step(action: &str, expected: &str, exit: i32) -> LiveStep {
        LiveStep {
            command: format!("repro-of-{action}"),
            record: step_record(action, expected, exit),
        }
    }

    fn step_record(action: &str, expected: &str, exit: i32) -> StepRecord {
        StepRecord {
            step: 0,
            action: action.into(),
            expected: expected.into(),
            argv: vec!["client".into()],
            repro: "redacted".into(),
            exit_code: Some(exit),
            timed_out: false,
            duration_ms: 1,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            preparation: false,
        }
    }

    #[test]
    fn the_first_step_not_as_expected_is_the_one_to_paste() {
        let steps = [
            step("login", "success", 0),
            step("pull", "success", 1),
            step("push", "success", 1),
        ];
        let text = describe(&steps);
        assert!(text.contains("repro-of-pull"), "{text}");
        assert!(!text.contains("repro-of-push"), "{text}");
        assert!(text.contains("2. pull — expected success, got exit 1: NOT AS EXPECTED"));
    }

    #[test]
    fn a_passing_cell_offers_its_last_step() {
        let steps = [step("login", "success", 0), step("pull", "failure", 1)];
        assert_eq!(
            step_to_reproduce(&steps).map(|s| s.command.as_str()),
            Some("repro-of-pull")
        );
    }
}
