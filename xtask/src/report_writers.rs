//! Report writers until the `reports` crate's writers land: JSON (schema
//! `regcompat.report/v1`) and a Markdown matrix. Swap for `reports::write_all`.

use anyhow::{Context, Result};
use reports::{RunReport, Verdict};
use std::path::{Path, PathBuf};

pub fn write_all(report: &RunReport, out: &Path) -> Result<Vec<PathBuf>> {
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?).with_context(|| format!("writing {}", json.display()))?;
    let md = out.join("matrix.md");
    std::fs::write(&md, markdown(report)).with_context(|| format!("writing {}", md.display()))?;
    Ok(vec![json, md])
}

fn symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "**FAIL**",
        Verdict::NotApplicable => "n/a",
        Verdict::NotRun => "not-run",
        Verdict::Error => "**ERROR**",
    }
}

/// Scenarios × clients.
pub fn markdown(report: &RunReport) -> String {
    let mut s = String::from("| scenario |");
    for c in &report.clients {
        s.push_str(&format!(" {} |", c.id));
    }
    s.push_str("\n|---|");
    for _ in &report.clients {
        s.push_str("---|");
    }
    s.push('\n');
    for sc in &report.scenarios {
        s.push_str(&format!("| {} |", sc.id));
        for c in &report.clients {
            let v = report.cell(&sc.id, &c.id).map(|c| symbol(c.verdict)).unwrap_or("—");
            s.push_str(&format!(" {v} |"));
        }
        s.push('\n');
    }
    let totals: Vec<String> = report.totals().iter().map(|(v, n)| format!("{n} {v}")).collect();
    s.push_str(&format!("\n{}\n", totals.join(", ")));
    s
}
