//! `matrix.md`: the grid as a GitHub-flavoured Markdown table, the totals, then every cell
//! that needs a human (fail, error, not-run) with its reason and repro commands.

use std::fmt::Write as _;

use crate::matrix::Matrix;
use crate::present::{ALL_VERDICTS, MISSING_LABEL, label};
use crate::{Cell, RunReport, Verdict};

/// Renders the report as Markdown.
pub fn render(report: &RunReport) -> String {
    let matrix = Matrix::new(report);
    let mut md = String::new();
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        md,
        "# regcompat matrix — run `{}`\n",
        code_text(&report.run_id)
    );
    let _ = writeln!(
        md,
        "regcompat {}, started {}, finished {}.\n",
        inline_text(&report.regcompat_version),
        inline_text(&report.started),
        inline_text(&report.finished)
    );

    md.push_str("| Scenario |");
    for column in &matrix.columns {
        let _ = write!(md, " {} |", table_cell(column.id));
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(matrix.columns.len()));
    md.push('\n');
    for row in &matrix.rows {
        let heading = if row.title.is_empty() {
            row.id.to_owned()
        } else {
            format!("{} — {}", row.id, row.title)
        };
        let _ = write!(md, "| {} |", table_cell(&heading));
        for column in &matrix.columns {
            let shown = matrix
                .cell(row.id, column.id)
                .map_or_else(|| MISSING_LABEL.to_owned(), |c| label(c.verdict));
            let _ = write!(md, " {shown} |");
        }
        md.push('\n');
    }
    md.push('\n');
    md.push_str(&totals_line(report, matrix.missing()));
    md.push_str("\n\n");

    let unavailable: Vec<_> = matrix
        .columns
        .iter()
        .filter_map(|c| c.unavailable.map(|why| (c.id, why)))
        .collect();
    if !unavailable.is_empty() {
        md.push_str("## Unavailable clients\n\n");
        for (id, why) in unavailable {
            let _ = writeln!(md, "- `{}`: {}", code_text(id), inline_text(why));
        }
        md.push('\n');
    }

    md.push_str("## Failures and not-run\n\n");
    let mut listed = 0;
    for row in &matrix.rows {
        for column in &matrix.columns {
            let Some(cell) = matrix.cell(row.id, column.id) else {
                continue;
            };
            if !matches!(
                cell.verdict,
                Verdict::Fail | Verdict::Error | Verdict::NotRun
            ) {
                continue;
            }
            listed += 1;
            md.push_str(&failure_item(cell));
        }
    }
    if listed == 0 {
        md.push_str("None: every cell passed or was not applicable.\n");
    }
    md.truncate(md.trim_end().len());
    md.push('\n');
    md
}

/// One entry of "Failures and not-run": heading, reason, failed checks, repro commands.
fn failure_item(cell: &Cell) -> String {
    let mut item = format!(
        "### {} — `{}` × `{}`\n\n{}\n\n",
        label(cell.verdict),
        code_text(&cell.scenario),
        code_text(&cell.client),
        inline_text(&cell.reason)
    );
    for check in cell.checks.iter().filter(|c| !c.passed) {
        // `write!` into a String cannot fail.
        let _ = write!(item, "- failed check: {}", inline_text(&check.description));
        if !check.detail.is_empty() {
            let _ = write!(item, " — {}", inline_text(&check.detail));
        }
        item.push('\n');
    }
    if !cell.steps.is_empty() {
        let repro: Vec<&str> = cell.steps.iter().map(|s| s.repro.as_str()).collect();
        item.push_str("\nRepro:\n\n");
        item.push_str(&fenced("sh", &repro.join("\n")));
    }
    let mut item = item.trim_end().to_owned();
    item.push_str("\n\n");
    item
}

/// `**Totals:** 12 cells: 8 ✅ pass, 1 ❌ fail, …` — every verdict listed, zeros included, so
/// scripts can grep a stable shape.
pub(crate) fn totals_line(report: &RunReport, missing: usize) -> String {
    let totals = report.totals();
    let parts: Vec<String> = ALL_VERDICTS
        .iter()
        .map(|v| format!("{} {}", totals.get(v).copied().unwrap_or(0), label(*v)))
        .collect();
    let mut line = format!(
        "**Totals:** {} cells: {}",
        report.cells.len(),
        parts.join(", ")
    );
    if missing > 0 {
        let _ = write!(line, ", {missing} {MISSING_LABEL}");
    }
    line
}

/// Text for one table cell: `|` would end the cell and a newline the row; `<`, `>` and `&`
/// would be read as HTML by GitHub.
pub(crate) fn table_cell(text: &str) -> String {
    inline_text(text).replace('|', "\\|")
}

/// Text on one Markdown line: newlines become `<br>`, HTML metacharacters are escaped.
pub(crate) fn inline_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
    out
}

/// Text inside a single-backtick code span: a backtick would end it, a newline the line.
pub(crate) fn code_text(text: &str) -> String {
    text.replace('`', "'").replace(['\r', '\n'], " ")
}

/// A fenced code block whose fence is longer than any backtick run inside `body`.
pub(crate) fn fenced(info: &str, body: &str) -> String {
    let longest_run = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    format!("{fence}{info}\n{body}\n{fence}\n")
}
