//! The Markdown files: `matrix.md`, a summary that fits a GitHub comment ([`render`]), and
//! `matrix-full.md`, the whole matrix with every cell that did not pass, its reason and the
//! commands that reproduce it ([`render_full`]).

use std::fmt::Write as _;

use crate::matrix::Matrix;
use crate::model::{RunReport, Verdict};
use crate::present::{grid_mark, one_line, plain_text, symbol};
use crate::summary::{self, Attention, REASON_CHARS};

fn mark(v: Verdict) -> String {
    crate::present::label(v)
}

/// The most `matrix.md` may hold, in bytes (so in characters too). A GitHub comment or job
/// summary holds 65,536 characters; the rest is room for whatever wraps the file.
pub const MAX_BYTES: usize = 60_000;

/// The file the summary points to for everything it leaves out.
pub const FULL_FILE: &str = "matrix-full.md";

/// Table-cell text: no `|` or newline can break the table, no escape sequence survives.
pub fn escape(text: &str) -> String {
    plain_text(text)
        .replace('\\', "\\\\")
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
    plain_text(text)
        .replace('`', "'")
        .replace(['\r', '\n'], " ")
}

/// `matrix.md`: the totals, the cells that need attention (fail, error, fixed, not-run; one
/// line each with a short reason), the recorded known failures (one line each with the
/// upstream link), then the grid with one mark per cell. Never more than [`MAX_BYTES`]:
/// lists that do not fit end with "… N more, see matrix-full.md".
pub fn render(report: &RunReport) -> String {
    let matrix = Matrix::new(report);
    let mut head = format!(
        "## regcompat run `{}`{}\n\n**Totals:** {}\n",
        code_text(&one_line(&report.run_id, 100)),
        summary::shard_label(report),
        summary::totals_line(report, |v| format!("{} {v}", symbol(v)))
    );
    let footer = format!(
        "\nEvery cell with its evidence (steps, repro commands, output, journal): \
         `{FULL_FILE}`, `index.html`, `report.json`.\n"
    );
    let grid = grid(&matrix, MAX_BYTES / 2);
    // What the two lists may use; each keeps room for its heading and its "… more" line.
    let mut budget = MAX_BYTES.saturating_sub(head.len() + grid.len() + footer.len());

    let attention = summary::attention(report);
    if !attention.is_empty() {
        let cells: usize = attention.iter().map(Attention::cells).sum();
        let lines: Vec<String> = attention.iter().map(attention_line).collect();
        head.push_str(&bounded_list(
            &format!("\n### Needs attention ({cells} cells)\n\n"),
            &lines,
            &mut budget,
        ));
    }
    let known = summary::known_failures(report);
    if !known.is_empty() {
        let lines: Vec<String> = known.iter().map(|c| known_line(c)).collect();
        head.push_str(&bounded_list(
            &format!("\n### Recorded known failures ({})\n\n", known.len()),
            &lines,
            &mut budget,
        ));
    }
    let resilience = resilience_table(report);
    if resilience.len() <= budget {
        head.push_str(&resilience);
    }
    head.push_str(&grid);
    head.push_str(&footer);
    head
}

/// The resilience table (`crate::resilience`): a row per client that ran a fault scenario,
/// a column per fault kind; empty when the run has none.
pub fn resilience_table(report: &RunReport) -> String {
    let table = crate::resilience::table(report);
    if table.rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n### Resilience: what each client did under injected faults\n\n\
         Tries = requests for the faulted resource from the first faulted one on; \
         \"next after\" = the wait before the first retry.\n\n| client |",
    );
    for column in &table.columns {
        out.push_str(&format!(" {} |", escape(&column.kind)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(table.columns.len()));
    out.push('\n');
    for row in &table.rows {
        out.push_str(&format!("| {} |", escape(&row.client)));
        for b in &row.cells {
            let text = match b {
                None => "—".to_owned(),
                Some(b) if b.verdict == Verdict::Pass => escape(&b.summary()),
                Some(b) => format!("**{}:** {}", b.verdict, escape(&b.summary())),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    out
}

/// Room kept for a list's heading and its "… N more" line.
const LIST_RESERVE: usize = 200;

/// `heading`, then as many `lines` as fit in `budget` (less what the heading and a closing
/// "… N more" line need), then that line if some were left out. `budget` shrinks by what
/// was used.
fn bounded_list(heading: &str, lines: &[String], budget: &mut usize) -> String {
    let mut out = heading.to_owned();
    let limit = budget.saturating_sub(LIST_RESERVE);
    let mut shown = 0;
    for line in lines {
        if out.len() + line.len() + 1 > limit {
            break;
        }
        out.push_str(line);
        out.push('\n');
        shown += 1;
    }
    if shown < lines.len() {
        let _ = writeln!(out, "- … {} more, see `{FULL_FILE}`", lines.len() - shown);
    }
    *budget = budget.saturating_sub(out.len());
    out
}

/// `- ❌ **fail** — `scenario` × `client`: reason`.
fn attention_line(line: &Attention<'_>) -> String {
    let verdict = line.verdict();
    match line {
        Attention::Cell(cell) => {
            let mut text = format!(
                "- {} **{verdict}** — `{}` × `{}`: {}",
                symbol(verdict),
                code_text(&one_line(&cell.scenario, 100)),
                code_text(&one_line(&cell.client, 60)),
                table_cell(&one_line(&cell.reason, REASON_CHARS))
            );
            if let (Verdict::Fixed, Some(known)) = (verdict, &cell.known) {
                let _ = write!(text, " (recorded: {})", link(&known.link));
            }
            text
        }
        Attention::NotRun {
            client,
            reason,
            cells,
        } => format!(
            "- {} **{verdict}** — `{}` × {} scenarios: {}",
            symbol(verdict),
            code_text(&one_line(client, 60)),
            cells.len(),
            table_cell(&one_line(reason, REASON_CHARS))
        ),
    }
}

/// `- 🔶 `scenario` × `client` (`versions`): reason — link`.
fn known_line(cell: &crate::Cell) -> String {
    let mut text = format!(
        "- {} `{}` × `{}`",
        symbol(cell.verdict),
        code_text(&one_line(&cell.scenario, 100)),
        code_text(&one_line(&cell.client, 60)),
    );
    match &cell.known {
        Some(known) => {
            let _ = write!(
                text,
                " (`{}`): {} — {}",
                code_text(&one_line(&known.versions, 40)),
                table_cell(&one_line(&known.reason, REASON_CHARS)),
                link(&known.link)
            );
        }
        None => {
            let _ = write!(
                text,
                ": {}",
                table_cell(&one_line(&cell.reason, REASON_CHARS))
            );
        }
    }
    text
}

/// An upstream link as text GitHub turns into a link; bounded, nothing that breaks the line.
fn link(url: &str) -> String {
    table_cell(&one_line(url, 200))
}

/// The compact grid: one mark per cell, not-applicable as `·`. Rows that would take it past
/// `max` bytes are left out with a line saying how many.
fn grid(matrix: &Matrix<'_>, max: usize) -> String {
    let mut out = String::from("\n### Matrix\n\n");
    let legend: Vec<String> = crate::present::ALL_VERDICTS
        .iter()
        .map(|v| format!("{} {v}", grid_mark(*v)))
        .chain(std::iter::once(format!("{} no cell", MISSING_MARK)))
        .collect();
    let _ = writeln!(out, "{}\n", legend.join(", "));
    if matrix.rows.is_empty() || matrix.columns.is_empty() {
        out.push_str("(no cells)\n");
        return out;
    }
    let mut table = String::from("| scenario |");
    for column in &matrix.columns {
        let _ = write!(table, " {} |", escape(&one_line(column.id, 40)));
    }
    table.push_str("\n|---|");
    table.push_str(&":-:|".repeat(matrix.columns.len()));
    table.push('\n');
    // Room for the line that says how many rows were left out.
    let limit = max.saturating_sub(out.len() + 100);
    if table.len() > limit {
        let _ = writeln!(
            out,
            "The grid ({} scenarios × {} clients) is too wide for this file: see `{FULL_FILE}`.",
            matrix.rows.len(),
            matrix.columns.len()
        );
        return out;
    }
    let mut shown = 0;
    for row in &matrix.rows {
        let mut line = format!("| {} |", escape(&one_line(row.id, 100)));
        for column in &matrix.columns {
            let mark = matrix
                .cell(row.id, column.id)
                .map_or(MISSING_MARK, |c| grid_mark(c.verdict));
            let _ = write!(line, " {mark} |");
        }
        line.push('\n');
        if table.len() + line.len() > limit {
            break;
        }
        table.push_str(&line);
        shown += 1;
    }
    out.push_str(&table);
    if shown < matrix.rows.len() {
        let _ = writeln!(
            out,
            "\n… {} more scenarios, see `{FULL_FILE}`",
            matrix.rows.len() - shown
        );
    }
    out
}

/// The grid's mark where the run has no cell.
const MISSING_MARK: &str = "❔";

/// `matrix-full.md`: scenarios × clients with each verdict's word, the totals, then every
/// cell that did not pass with its reason, its known-failure record and the command that
/// reproduces each step. Unbounded: this is the file the summary points to.
pub fn render_full(report: &RunReport) -> String {
    let mut out = String::from("| scenario |");
    let resilience = resilience_table(report);
    for c in &report.clients {
        out.push_str(&format!(" {} |", escape(&c.id)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(report.clients.len()));
    out.push('\n');
    for s in &report.scenarios {
        out.push_str(&format!("| {} |", escape(&s.id)));
        for c in &report.clients {
            let text = report.cell(&s.id, &c.id).map_or_else(
                || "—".to_owned(),
                |cell| match &cell.variant {
                    Some(variant) => {
                        format!(
                            "{} (ran variant `{}`)",
                            mark(cell.verdict),
                            escape(&code_text(variant))
                        )
                    }
                    None => mark(cell.verdict),
                },
            );
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
    out.push_str(&resilience);
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
            if let Some(variant) = &c.variant {
                out.push_str(&format!("  - ran variant `{}`\n", code_text(variant)));
            }
            if let Some(known) = &c.known {
                out.push_str(&format!(
                    "  - recorded for `{}`: {} — {}\n",
                    code_text(&known.versions),
                    escape(&known.reason),
                    escape(&known.link)
                ));
            }
            for s in &c.steps {
                out.push_str(&format!(
                    "  - `{}`: `{}`\n",
                    code_text(&s.action),
                    code_text(&s.repro)
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
            variant: None,
            client: c.into(),
            verdict: v,
            reason: reason.into(),
            duration_ms: 1,
            steps: vec![],
            checks: vec![],
            journal: vec![],
            artifacts: vec![],
            known: None,
            network: None,
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
                rules: vec![],
                fault_kind: None,
            }],
            cells: vec![
                cell("a|b", "crane@1", Verdict::Fail, "exit 1\nunauthorized"),
                cell("a|b", "docker", Verdict::NotRun, "no driver"),
            ],
            shard: None,
        }
    }

    #[test]
    fn the_full_matrix_has_one_row_per_scenario_and_escapes_pipes() {
        let md = render_full(&sample());
        assert!(md.contains("| a\\|b | ❌ fail | ⚠ not-run |"), "{md}");
        assert!(md.contains("Totals: 1 fail, 1 not-run"), "{md}");
        assert!(md.contains("exit 1 unauthorized"), "newline folded: {md}");
    }

    #[test]
    fn the_summary_lists_attention_before_the_grid() {
        let md = render(&sample());
        let attention = md.find("### Needs attention (2 cells)").expect(&md);
        let fail = md
            .find("- ❌ **fail** — `a|b` × `crane@1`: exit 1 unauthorized")
            .expect(&md);
        let not_run = md
            .find("- ⚠ **not-run** — `a|b` × `docker`: no driver")
            .expect(&md);
        let grid = md.find("| scenario |").expect(&md);
        assert!(attention < fail && fail < not_run && not_run < grid, "{md}");
        assert!(md.contains("| a\\|b | ❌ | ⚠ |"), "{md}");
        assert!(
            md.contains("**Totals:** 2 cells: 0 ✅ pass, 1 ❌ fail"),
            "{md}"
        );
    }

    #[test]
    fn markdown_carries_no_escape_sequence() {
        let mut report = sample();
        report.cells[0].reason = "\u{1b}[31mred\u{1b}[0m".into();
        report.cells[0].steps.push(StepRecord {
            step: 0,
            action: "pull".into(),
            argv: vec![],
            repro: "\u{1b}[1mcrane\u{1b}[0m pull".into(),
            exit_code: Some(1),
            timed_out: false,
            duration_ms: 1,
            stdout_tail: "\u{1b}[31mred\u{1b}[0m".into(),
            stderr_tail: String::new(),
            expected: "success".into(),
            preparation: false,
        });
        for md in [render(&report), render_full(&report)] {
            assert!(!md.contains('\u{1b}'), "{md}");
            assert!(md.contains("red"), "{md}");
        }
    }
}
