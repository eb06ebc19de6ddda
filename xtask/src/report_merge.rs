//! `cargo xtask report-merge --out DIR SHARD…`: the reports of a sharded run
//! (`run-scenarios --shard I/N`) merged into the report of the whole matrix, written in every
//! format a run writes (`reports::write_all`), with the shards' evidence files
//! (`artifacts/`) copied beside it. Shards of different regcompat versions, scenario sets,
//! client columns or shard counts, overlapping shards, and — unless `--allow-partial` — a
//! missing shard or cell are refused (`reports::merge`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use reports::RunReport;
use reports::merge::{MergeInput, MergeOptions, merge};

use crate::run_scenarios::UsageError;

#[derive(clap::Args)]
pub struct Args {
    /// Where the merged report.json, junit.xml, matrix.md, matrix-full.md and index.html are
    /// written (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Merge even when a shard is missing (the merged matrix then has cells without a
    /// verdict, counted as missing).
    #[arg(long)]
    allow_partial: bool,
    /// The shards' reports: `report.json` files, or the `--out` directories of the
    /// `run-scenarios --shard` runs.
    #[arg(value_name = "REPORT_DIR_OR_JSON", required = true)]
    inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if args.out.exists() && !args.out.is_dir() {
        return Err(UsageError(format!(
            "--out {} is a file; give a directory for the merged reports",
            args.out.display()
        ))
        .into());
    }
    let mut inputs = Vec::new();
    let mut evidence_dirs = Vec::new();
    for path in &args.inputs {
        let (json, dir) = if path.is_dir() {
            (path.join("report.json"), path.clone())
        } else {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (path.clone(), dir)
        };
        if same_dir(&dir, &args.out) {
            return Err(UsageError(format!(
                "--out {} holds the shard report {}: give another directory",
                args.out.display(),
                json.display()
            ))
            .into());
        }
        let report = RunReport::read(&json).context("reading a shard report")?;
        inputs.push(MergeInput {
            origin: json.display().to_string(),
            report,
        });
        evidence_dirs.push(dir.join("artifacts"));
    }
    let shards = inputs.len();
    let merged = merge(
        inputs,
        MergeOptions {
            allow_partial: args.allow_partial,
        },
    )?;
    let written = reports::write_all(&merged, &args.out)?;
    let artifacts = args.out.join("artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    for dir in &evidence_dirs {
        crate::run_scenarios::copy_tree(dir, &artifacts)?;
    }
    print!("{}", reports::summary::render_text(&merged));
    println!(
        "\nmerged {shards} shard report(s): {}, {}, {}, {}, {}",
        written.html.display(),
        written.markdown.display(),
        written.markdown_full.display(),
        written.junit.display(),
        written.json.display()
    );
    Ok(())
}

/// Whether two paths name one directory (an absent one is no input's).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::shard::split;
    use reports::{Cell, ClientInfo, SCHEMA_VERSION, ScenarioInfo, Verdict};
    use std::collections::HashMap;

    fn whole() -> RunReport {
        let clients = ["crane@1", "oras@2"];
        let scenarios = ["login", "pull", "push"];
        RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: "20260101T000000Z-1".into(),
            started: "2026-01-01T00:00:00Z".into(),
            finished: "2026-01-01T00:01:00Z".into(),
            regcompat_version: env!("CARGO_PKG_VERSION").into(),
            clients: clients
                .iter()
                .map(|id| ClientInfo {
                    id: (*id).into(),
                    name: id.split('@').next().unwrap_or(id).into(),
                    version: "1".into(),
                    source: "cache".into(),
                    path: None,
                    unavailable: None,
                })
                .collect(),
            scenarios: scenarios
                .iter()
                .map(|id| ScenarioInfo {
                    id: (*id).into(),
                    title: (*id).into(),
                    file: format!("scenarios/{id}.toml"),
                    description: String::new(),
                    rules: vec![],
                    fault_kind: None,
                })
                .collect(),
            cells: scenarios
                .iter()
                .flat_map(|s| {
                    clients.iter().map(move |c| {
                        let mut cell = Cell::without_evidence(*s, *c, Verdict::Pass, "ok");
                        cell.artifacts = vec![format!("artifacts/{s}-{c}/log")];
                        cell
                    })
                })
                .collect(),
            shard: None,
        }
    }

    /// The shards written as `run-scenarios --shard` writes them: one directory each, with
    /// an evidence file per cell.
    fn shard_dirs(root: &Path, count: usize) -> Vec<PathBuf> {
        split(&whole(), count, &HashMap::new())
            .into_iter()
            .enumerate()
            .map(|(i, shard)| {
                let dir = root.join(format!("shard-{}", i + 1));
                reports::write_all(&shard, &dir).unwrap();
                for cell in &shard.cells {
                    let file = dir.join(&cell.artifacts[0]);
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, "log").unwrap();
                }
                dir
            })
            .collect()
    }

    fn args(out: &Path, inputs: &[PathBuf], allow_partial: bool) -> Args {
        Args {
            out: out.to_path_buf(),
            allow_partial,
            inputs: inputs.to_vec(),
        }
    }

    #[test]
    fn merges_shard_directories_and_files_into_every_format_with_the_evidence() {
        let root = tempfile::tempdir().unwrap();
        let mut inputs = shard_dirs(root.path(), 3);
        // A report.json file works as well as its directory.
        inputs[1] = inputs[1].join("report.json");
        let out = root.path().join("merged");
        run(args(&out, &inputs, false)).unwrap();
        for file in [
            "report.json",
            "junit.xml",
            "matrix.md",
            "matrix-full.md",
            "index.html",
        ] {
            assert!(out.join(file).is_file(), "{file}");
        }
        let merged = RunReport::read(out.join("report.json")).unwrap();
        assert_eq!(merged.shard, None);
        assert_eq!(merged.cells, whole().cells);
        for cell in &merged.cells {
            assert!(
                out.join(&cell.artifacts[0]).is_file(),
                "{:?}",
                cell.artifacts
            );
        }
    }

    #[test]
    fn refusals_are_one_line_naming_the_problem() {
        let root = tempfile::tempdir().unwrap();
        let inputs = shard_dirs(root.path(), 3);
        let out = root.path().join("merged");
        let one_line = |result: Result<()>| {
            let message = format!("{:#}", result.unwrap_err());
            assert!(!message.contains('\n'), "{message}");
            message
        };
        let missing = one_line(run(args(
            &out,
            &[inputs[0].clone(), inputs[2].clone()],
            false,
        )));
        assert!(missing.contains("missing shard(s) 2 of 3"), "{missing}");
        assert!(
            !out.join("report.json").exists(),
            "nothing written on a refusal"
        );
        run(args(&out, &[inputs[0].clone(), inputs[2].clone()], true)).unwrap();

        let twice = one_line(run(args(
            &root.path().join("twice"),
            &[inputs[0].clone(), inputs[1].clone(), inputs[1].clone()],
            false,
        )));
        assert!(twice.contains("given twice"), "{twice}");

        let into_input = one_line(run(args(&inputs[0], &inputs, false)));
        assert!(
            into_input.contains("holds the shard report"),
            "{into_input}"
        );

        let absent = root.path().join("absent.json");
        let unreadable = one_line(run(args(&out, std::slice::from_ref(&absent), false)));
        assert!(
            unreadable.contains(&absent.display().to_string()),
            "{unreadable}"
        );
    }
}
