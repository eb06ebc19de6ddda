//! `cargo xtask report-diff OLD NEW`: what changed between two `report.json` files, as
//! Markdown (regressions first, then lost coverage, fixes, other changes, added and removed
//! cells). With `--baseline`, the baseline check of NEW against OLD instead.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use reports::{RunReport, baseline, diff};

#[derive(clap::Args)]
pub struct Args {
    /// The older report (e.g. reports/history/<run id>.json).
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The newer report (e.g. reports/out/report.json).
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Exit non-zero when a cell regressed (pass in OLD, fail or error in NEW).
    #[arg(long)]
    fail_on_regression: bool,
    /// Print the baseline check of NEW against OLD (known failures, fixes…) instead.
    #[arg(long)]
    baseline: bool,
}

pub fn run(args: Args) -> Result<()> {
    let old = RunReport::read(&args.old).context("reading the old report")?;
    let new = RunReport::read(&args.new).context("reading the new report")?;
    let regressed = if args.baseline {
        let outcome = baseline::check(&new, &old);
        print!("{}", baseline::render_markdown(&outcome));
        outcome.regressions.len()
    } else {
        let d = diff::diff(&old, &new);
        print!("{}", diff::render_markdown(&d));
        d.of_kind(diff::ChangeKind::Regression).count()
    };
    if args.fail_on_regression && regressed > 0 {
        bail!("{regressed} cell(s) regressed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::{Cell, SCHEMA_VERSION, Verdict};

    fn report(dir: &std::path::Path, name: &str, verdict: Verdict) -> PathBuf {
        let report = RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: name.into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: String::new(),
            clients: vec![],
            scenarios: vec![],
            cells: vec![Cell {
                scenario: "login".into(),
                client: "crane@1".into(),
                verdict,
                reason: String::new(),
                duration_ms: 0,
                steps: vec![],
                checks: vec![],
                journal: vec![],
                artifacts: vec![],
                known: None,
            }],
        };
        let path = dir.join(format!("{name}.json"));
        report.write(&path).unwrap();
        path
    }

    fn args(old: &std::path::Path, new: &std::path::Path, fail: bool) -> Args {
        Args {
            old: old.to_path_buf(),
            new: new.to_path_buf(),
            fail_on_regression: fail,
            baseline: false,
        }
    }

    #[test]
    fn fails_on_regression_only_when_asked_and_names_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("xtask-report-diff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = report(&dir, "old", Verdict::Pass);
        let new = report(&dir, "new", Verdict::Fail);
        assert!(run(args(&old, &new, false)).is_ok());
        let error = run(args(&old, &new, true)).unwrap_err();
        assert_eq!(error.to_string(), "1 cell(s) regressed");
        assert!(
            run(args(&new, &old, true)).is_ok(),
            "a fix is no regression"
        );

        let broken = dir.join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let error = format!("{:#}", run(args(&old, &broken, false)).unwrap_err());
        assert!(error.contains(&broken.display().to_string()), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
