//! The Markdown matrix: scenarios × clients, then every cell that did not pass with its
//! reason and the command that reproduces it.

use crate::model::{RunReport, Verdict};

fn mark(v: Verdict) -> String {
    crate::present::label(v)
}

/// Table-cell text: no `|` or newline can break the table.
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Table-cell text for the diff and baseline tables, whose reasons come from client output:
/// [`escape`], plus `&`, `<` and `>` so GitHub does not read them as HTML.
pub(crate) fn table_cell(text: &str) -> String {
    escape(
        &text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
    )
}

/// Text inside a single-backtick code span: a backtick would end it, a newline the line.
pub(crate) fn code_text(text: &str) -> String {
    text.replace('`', "'").replace(['\r', '\n'], " ")
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::from("| scenario |");
    for c in &report.clients {
        out.push_str(&format!(" {} |", escape(&c.id)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(report.clients.len()));
    out.push('\n');
    for s in &report.scenarios {
        out.push_str(&format!("| {} |", escape(&s.id)));
        for c in &report.clients {
            let text = report
                .cell(&s.id, &c.id)
                .map_or_else(|| "—".to_owned(), |cell| mark(cell.verdict));
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    let totals: Vec<String> = report
        .totals()
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect();
    out.push_str(&format!("\nTotals: {}\n", totals.join(", ")));
    let notable: Vec<_> = report
        .cells
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    if !notable.is_empty() {
        out.push_str("\n## Cells that did not pass\n\n");
        for c in notable {
            out.push_str(&format!(
                "- **{} × {}** — {}: {}\n",
                escape(&c.scenario),
                escape(&c.client),
                c.verdict,
                escape(&c.reason)
            ));
            if let Some(known) = &c.known {
                out.push_str(&format!(
                    "  - recorded for `{}`: {} — {}\n",
                    code_text(&known.versions),
                    escape(&known.reason),
                    known.link
                ));
            }
            for s in &c.steps {
                out.push_str(&format!(
                    "  - `{}`: `{}`\n",
                    s.action,
                    s.repro.replace('`', "'")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    pub(crate) fn sample() -> RunReport {
        let cell = |s: &str, c: &str, v: Verdict, reason: &str| Cell {
            scenario: s.into(),
            client: c.into(),
            verdict: v,
            reason: reason.into(),
            duration_ms: 1,
            steps: vec![],
            checks: vec![],
            journal: vec![],
            artifacts: vec![],
            known: None,
        };
        RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: "r".into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: "0".into(),
            clients: vec![
                ClientInfo {
                    id: "crane@1".into(),
                    name: "crane".into(),
                    version: "1".into(),
                    source: "cache".into(),
                    path: None,
                    unavailable: None,
                },
                ClientInfo {
                    id: "docker".into(),
                    name: "docker".into(),
                    version: String::new(),
                    source: "none".into(),
                    path: None,
                    unavailable: Some("no driver".into()),
                },
            ],
            scenarios: vec![ScenarioInfo {
                id: "a|b".into(),
                title: "<script>".into(),
                file: "scenarios/a.toml".into(),
                description: String::new(),
            }],
            cells: vec![
                cell("a|b", "crane@1", Verdict::Fail, "exit 1\nunauthorized"),
                cell("a|b", "docker", Verdict::NotRun, "no driver"),
            ],
        }
    }

    #[test]
    fn the_matrix_has_one_row_per_scenario_and_escapes_pipes() {
        let md = render(&sample());
        assert!(md.contains("| a\\|b | ❌ fail | ⚠ not-run |"), "{md}");
        assert!(md.contains("Totals: 1 fail, 1 not-run"), "{md}");
        assert!(md.contains("exit 1 unauthorized"), "newline folded: {md}");
    }
}
