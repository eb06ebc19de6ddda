//! Report writers until the `reports` crate's writers land: JSON (schema
//! `regcompat.report/v1`) and a Markdown matrix. Swap for `reports::write_all`.

use anyhow::{Context, Result};
use reports::{RunReport, Verdict};
use std::path::{Path, PathBuf};

pub fn write_all(report: &RunReport, out: &Path) -> Result<Vec<PathBuf>> {
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let junit = out.join("junit.xml");
    std::fs::write(&junit, junit_xml(report))
        .with_context(|| format!("writing {}", junit.display()))?;
    let md = out.join("matrix.md");
    std::fs::write(&md, markdown(report)).with_context(|| format!("writing {}", md.display()))?;
    Ok(vec![json, junit, md])
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
            let v = report
                .cell(&sc.id, &c.id)
                .map(|c| symbol(c.verdict))
                .unwrap_or("—");
            s.push_str(&format!(" {v} |"));
        }
        s.push('\n');
    }
    let totals: Vec<String> = report
        .totals()
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect();
    s.push_str(&format!("\n{}\n", totals.join(", ")));
    s
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// One testsuite per client, one testcase per scenario; `not-applicable`/`not-run` are
/// skipped, `fail` a failure, `error` an error.
pub fn junit_xml(report: &RunReport) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = report.totals();
    let n = |v: Verdict| totals.get(&v).copied().unwrap_or(0);
    x.push_str(&format!(
        "<testsuites name=\"regcompat\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        report.cells.len(),
        n(Verdict::Fail),
        n(Verdict::Error)
    ));
    for c in &report.clients {
        let cells: Vec<_> = report.cells.iter().filter(|x| x.client == c.id).collect();
        let count = |v: Verdict| cells.iter().filter(|x| x.verdict == v).count();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
            xml_escape(&c.id),
            cells.len(),
            count(Verdict::Fail),
            count(Verdict::Error),
            count(Verdict::NotApplicable) + count(Verdict::NotRun)
        ));
        for cell in cells {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
                xml_escape(&c.id),
                xml_escape(&cell.scenario),
                cell.duration_ms as f64 / 1000.0
            ));
            let reason = xml_escape(&cell.reason);
            match cell.verdict {
                Verdict::Pass => {}
                Verdict::Fail => x.push_str(&format!("      <failure message=\"{reason}\"/>\n")),
                Verdict::Error => x.push_str(&format!("      <error message=\"{reason}\"/>\n")),
                Verdict::NotApplicable | Verdict::NotRun => x.push_str(&format!(
                    "      <skipped message=\"{}: {reason}\"/>\n",
                    cell.verdict
                )),
            }
            if let Some(step) = cell.steps.last() {
                x.push_str(&format!(
                    "      <system-out>{}</system-out>\n      <system-err>{}</system-err>\n",
                    xml_escape(&format!("$ {}\n{}", step.repro, step.stdout_tail)),
                    xml_escape(&step.stderr_tail)
                ));
            }
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
