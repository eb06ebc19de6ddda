//! `cargo xtask report-diff OLD NEW`: what changed between two `report.json` files, as
//! Markdown (regressions first, then lost coverage, fixes, other changes, added and removed
//! cells). With `--baseline`, the baseline check of NEW against OLD instead, exiting as
//! `cargo xtask run-scenarios --baseline OLD` would have on NEW: non-zero on a regression or
//! when nothing in NEW passed.

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
    /// Print the baseline check of NEW against OLD (known failures, fixes…) instead, and exit
    /// non-zero when it fails: a regression, or nothing in NEW passed (the rule of
    /// `run-scenarios --baseline`).
    #[arg(long)]
    baseline: bool,
}

pub fn run(args: Args) -> Result<()> {
    let old = RunReport::read(&args.old).context("reading the old report")?;
    let new = RunReport::read(&args.new).context("reading the new report")?;
    if args.baseline {
        let outcome = baseline::check(&new, &old);
        print!("{}", baseline::render_markdown(&outcome));
        return crate::run_scenarios::exit_decision(&new, Some(&outcome), false)
            .map_err(anyhow::Error::msg);
    }
    let d = diff::diff(&old, &new);
    print!("{}", diff::render_markdown(&d));
    let regressed = d.of_kind(diff::ChangeKind::Regression).count();
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
        report_of(dir, name, &[("login", verdict)])
    }

    fn report_of(dir: &std::path::Path, name: &str, cells: &[(&str, Verdict)]) -> PathBuf {
        let report = RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: name.into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: String::new(),
            clients: vec![],
            scenarios: vec![],
            cells: cells
                .iter()
                .map(|(scenario, verdict)| {
                    Cell::without_evidence(*scenario, "crane@1", *verdict, "")
                })
                .collect(),
            shard: None,
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
    fn a_failed_baseline_check_exits_non_zero_without_being_asked() {
        let dir = std::env::temp_dir().join(format!("xtask-report-diff-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // `pull` passes throughout; `login` changes.
        let with_login = |name: &str, login: Verdict| {
            report_of(&dir, name, &[("login", login), ("pull", Verdict::Pass)])
        };
        let pass = with_login("pass", Verdict::Pass);
        let fail = with_login("fail", Verdict::Fail);
        let fixed = with_login("fixed", Verdict::Fixed);
        let failing = report(&dir, "failing", Verdict::Fail);
        let known = report(&dir, "known", Verdict::KnownFailure);
        let baseline = |old: &PathBuf, new: &PathBuf| {
            run(Args {
                baseline: true,
                ..args(old, new, false)
            })
        };
        // pass -> fail: a regression.
        let error = baseline(&pass, &fail).unwrap_err().to_string();
        assert!(error.contains("1 cell(s) regressed"), "{error}");
        // pass -> known-failure: a regression too.
        let error = baseline(&pass, &with_login("pass-known", Verdict::KnownFailure))
            .unwrap_err()
            .to_string();
        assert!(error.contains("1 cell(s) regressed"), "{error}");
        // Same verdicts, or a fix: fine.
        assert!(baseline(&pass, &pass).is_ok());
        assert!(baseline(&fail, &pass).is_ok());
        assert!(baseline(&fail, &fixed).is_ok());
        // Nothing passes now: fails like `run-scenarios --baseline`, even with no regression.
        let error = baseline(&failing, &known).unwrap_err().to_string();
        assert!(error.contains("no cell passed"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
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
