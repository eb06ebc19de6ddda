//! `index.html`: one self-contained static page — inline CSS, no script, no external
//! resource — so it can be archived as a CI artifact and opened from disk. Each grid cell is
//! a `<details>` element: clicking it shows the steps, repro commands, tails, checks and the
//! journal excerpt without any JavaScript.
//!
//! Every piece of text from the report goes through [`escape`]: scenario titles, client
//! output and journal paths are untrusted, and client output carries terminal colours —
//! `escape` drops escape sequences, so no raw `ESC` reaches the page.
//!
//! Verdicts are shown as their words on a coloured background, never as emoji: a page
//! opened on a machine without an emoji font still reads.

use std::fmt::Write as _;

use crate::matrix::Matrix;
use crate::present::{JournalLine, one_line, plain_text};
use crate::summary::{self, Attention, REASON_CHARS};
use crate::{Cell, RunReport};

/// Shown where the grid has no cell for a scenario × client.
const MISSING_LABEL: &str = "missing";

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3rem .5rem; vertical-align: top; text-align: left; }
table.grid > tbody > tr > th { font-weight: normal; min-width: 14rem; max-width: 22rem;
  position: sticky; left: 0; background: #fff; z-index: 1; }
table.grid > tbody > tr > th .id { white-space: nowrap; }
td:target { outline: 3px solid #222; }
ul.attention li, ul.known li { margin: .15rem 0; }
.v { font-weight: bold; font-family: ui-monospace, monospace; }
.v.fail, .v.error { color: #b00020; } .v.fixed { color: #0050a0; } .v.not-run { color: #8a6100; }
.v.known-failure { color: #a05a00; }
td.pass { background: #e6f4e6; } td.fail { background: #fbe3e3; } td.error { background: #f6d0f0; }
td.not-run { background: #fff4d6; } td.not-applicable { background: #eee; } td.missing { background: #ddd; }
td.known-failure { background: #fdebd3; } td.fixed { background: #d6e9fb; }
details > summary { cursor: pointer; white-space: nowrap; }
details[open] { min-width: 40rem; }
pre { background: #f6f6f6; padding: .4rem; overflow-x: auto; max-height: 20rem; white-space: pre-wrap; }
.id { font-family: ui-monospace, monospace; }
.muted { color: #666; }
table.journal td, table.journal th { font-family: ui-monospace, monospace; font-size: .85em; }
";

/// Renders the report as one static HTML page.
pub fn render(report: &RunReport) -> String {
    let matrix = Matrix::new(report);
    let mut html = String::new();
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>regcompat run {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&report.run_id)
    );
    let _ = writeln!(
        html,
        "<h1>regcompat run <span class=\"id\">{}</span>{}</h1>\n<p class=\"muted\">regcompat {}, \
         started {}, finished {}.</p>",
        escape(&report.run_id),
        escape(&crate::summary::shard_label(report)),
        escape(&report.regcompat_version),
        escape(&report.started),
        escape(&report.finished)
    );
    let _ = writeln!(html, "<p>{}</p>", totals(report));
    attention_list(&mut html, report, &matrix);
    known_list(&mut html, report, &matrix);
    resilience_table(&mut html, report);

    html.push_str("<table class=\"grid\">\n<thead><tr><th>Scenario</th>");
    for (c, column) in matrix.columns.iter().enumerate() {
        let _ = write!(
            html,
            "<th class=\"id\" id=\"{}\">{}",
            column_anchor(c),
            escape(column.id)
        );
        if let Some(why) = column.unavailable {
            let _ = write!(
                html,
                "<br><small class=\"muted\">unavailable: {}</small>",
                escape(why)
            );
        }
        html.push_str("</th>");
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (r, row) in matrix.rows.iter().enumerate() {
        let _ = write!(html, "<tr><th><span class=\"id\">{}</span>", escape(row.id));
        if !row.title.is_empty() {
            let _ = write!(html, "<br>{}", escape(row.title));
        }
        html.push_str("</th>");
        for (c, column) in matrix.columns.iter().enumerate() {
            match matrix.cell(row.id, column.id) {
                Some(cell) => grid_cell(&mut html, cell, &cell_anchor(r, c)),
                None => {
                    let _ = write!(html, "<td class=\"missing\">{MISSING_LABEL}</td>");
                }
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    html
}

fn totals(report: &RunReport) -> String {
    format!(
        "<strong>Totals:</strong> {}",
        escape(&summary::totals_line(report, |v| v.as_str().to_owned()))
    )
}

/// The `id` of the grid cell at (row, column): indices, so any scenario or client id is safe.
fn cell_anchor(row: usize, column: usize) -> String {
    format!("cell-{row}-{column}")
}

/// The `id` of a client's column heading.
fn column_anchor(column: usize) -> String {
    format!("client-{column}")
}

/// `<a href="#cell-r-c">scenario × client</a>`, or the text alone when the cell has no place.
fn cell_link(matrix: &Matrix<'_>, cell: &Cell) -> String {
    let text = format!(
        "<span class=\"id\">{}</span> × <span class=\"id\">{}</span>",
        escape(&cell.scenario),
        escape(&cell.client)
    );
    match matrix.position(&cell.scenario, &cell.client) {
        Some((r, c)) => format!("<a href=\"#{}\">{text}</a>", cell_anchor(r, c)),
        None => text,
    }
}

/// The cells that need attention (fail, error, fixed, not-run), each linking to its cell in
/// the grid; not-run cells of one client with one reason are one item linking to the column.
fn attention_list(html: &mut String, report: &RunReport, matrix: &Matrix<'_>) {
    let lines = summary::attention(report);
    if lines.is_empty() {
        return;
    }
    let cells: usize = lines.iter().map(Attention::cells).sum();
    let _ = writeln!(
        html,
        "<h2>Needs attention ({cells} cells)</h2>\n<ul class=\"attention\">"
    );
    for line in &lines {
        let verdict = line.verdict().as_str();
        match line {
            Attention::Cell(cell) => {
                let _ = write!(
                    html,
                    "<li><span class=\"v {verdict}\">{verdict}</span> {}: {}",
                    cell_link(matrix, cell),
                    escape(&one_line(&cell.reason, REASON_CHARS))
                );
                if let Some(known) = &cell.known {
                    let _ = write!(html, " (recorded: {})", known_link(&known.link));
                }
                html.push_str("</li>\n");
            }
            Attention::NotRun {
                client,
                reason,
                cells,
            } => {
                let name = format!("<span class=\"id\">{}</span>", escape(client));
                let name = match matrix.column_index(client) {
                    Some(c) => format!("<a href=\"#{}\">{name}</a>", column_anchor(c)),
                    None => name,
                };
                let _ = writeln!(
                    html,
                    "<li><span class=\"v {verdict}\">{verdict}</span> {name} × {} scenarios: {}</li>",
                    cells.len(),
                    escape(&one_line(reason, REASON_CHARS))
                );
            }
        }
    }
    html.push_str("</ul>\n");
}

/// The recorded known failures, each linking to its cell and to its upstream record.
fn known_list(html: &mut String, report: &RunReport, matrix: &Matrix<'_>) {
    let known = summary::known_failures(report);
    if known.is_empty() {
        return;
    }
    let _ = writeln!(
        html,
        "<h2>Recorded known failures ({})</h2>\n<ul class=\"known\">",
        known.len()
    );
    for cell in known {
        let _ = write!(html, "<li>{}", cell_link(matrix, cell));
        if let Some(record) = &cell.known {
            let _ = write!(
                html,
                " ({}): {} — {}",
                escape(&record.versions),
                escape(&one_line(&record.reason, REASON_CHARS)),
                known_link(&record.link)
            );
        }
        html.push_str("</li>\n");
    }
    html.push_str("</ul>\n");
}

/// The resilience table (`crate::resilience`): clients × fault kinds.
fn resilience_table(html: &mut String, report: &RunReport) {
    let table = crate::resilience::table(report);
    if table.rows.is_empty() {
        return;
    }
    html.push_str(
        "<h2>Resilience: what each client did under injected faults</h2>\n<p class=\"muted\">\
         Tries = requests for the faulted resource from the first faulted one on; \
         \"next after\" = the wait before the first retry.</p>\n<table class=\"grid\">\
         <thead><tr><th>Client</th>",
    );
    for column in &table.columns {
        let _ = write!(
            html,
            "<th class=\"id\" title=\"{}\">{}</th>",
            escape(&column.title),
            escape(&column.kind)
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        let _ = write!(html, "<tr><th class=\"id\">{}</th>", escape(&row.client));
        for b in &row.cells {
            match b {
                None => html.push_str("<td class=\"missing\">—</td>"),
                Some(b) => {
                    let _ = write!(
                        html,
                        "<td class=\"{}\">{}</td>",
                        b.verdict,
                        escape(&b.summary())
                    );
                }
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
}

/// An upstream record: a link when it is http(s), text otherwise.
fn known_link(link: &str) -> String {
    if link.starts_with("https://") || link.starts_with("http://") {
        format!("<a href=\"{0}\">{0}</a>", escape(link))
    } else {
        escape(link)
    }
}

fn grid_cell(html: &mut String, cell: &Cell, anchor: &str) {
    let _ = write!(
        html,
        "<td class=\"{0}\" id=\"{anchor}\"><details><summary>{0}{1}</summary>\n<p>{2}</p>\n",
        cell.verdict.as_str(),
        if cell.variant.is_some() {
            " <span class=\"muted\">(variant)</span>"
        } else {
            ""
        },
        escape(&cell.reason)
    );
    if let Some(variant) = &cell.variant {
        let _ = writeln!(
            html,
            "<p>ran variant <span class=\"id\">{}</span>: the client cannot express this \
             row's scenario</p>",
            escape(variant)
        );
    }
    if let Some(known) = &cell.known {
        let _ = writeln!(
            html,
            "<p>Recorded for {}: {} — {}</p>",
            escape(&known.versions),
            escape(&known.reason),
            known_link(&known.link)
        );
    }
    let _ = writeln!(html, "<p class=\"muted\">{} ms</p>", cell.duration_ms);
    for (n, step) in cell.steps.iter().enumerate() {
        let exit = match (step.exit_code, step.timed_out) {
            (_, true) => "timed out".to_owned(),
            (Some(code), false) => format!("exit {code}"),
            (None, false) => "did not start".to_owned(),
        };
        let _ = writeln!(
            html,
            "<h4>Step {} <span class=\"id\">{}</span>: expected {}, {} in {} ms</h4>",
            n + 1,
            escape(&step.action),
            escape(&step.expected),
            escape(&exit),
            step.duration_ms
        );
        let _ = writeln!(
            html,
            "<p>argv</p><pre>{}</pre>",
            escape(&step.argv.join(" "))
        );
        let _ = writeln!(html, "<p>repro</p><pre>{}</pre>", escape(&step.repro));
        for (name, tail) in [("stdout", &step.stdout_tail), ("stderr", &step.stderr_tail)] {
            if !tail.is_empty() {
                let _ = writeln!(html, "<p>{name} (tail)</p><pre>{}</pre>", escape(tail));
            }
        }
    }
    if !cell.checks.is_empty() {
        html.push_str("<h4>Checks</h4>\n<ul>\n");
        for check in &cell.checks {
            let mark = if check.passed { "ok" } else { "FAILED" };
            let _ = write!(html, "<li>{mark}: {}", escape(&check.description));
            if !check.detail.is_empty() {
                let _ = write!(
                    html,
                    " <span class=\"muted\">— {}</span>",
                    escape(&check.detail)
                );
            }
            html.push_str("</li>\n");
        }
        html.push_str("</ul>\n");
    }
    if !cell.journal.is_empty() {
        html.push_str(
            "<h4>Journal</h4>\n<table class=\"journal\"><thead><tr><th>#</th><th>host</th>\
             <th>method</th><th>path</th><th>status</th><th>auth</th><th>notes</th><th>exchange</th></tr></thead>\n<tbody>\n",
        );
        for entry in &cell.journal {
            let line = JournalLine::from_entry(entry);
            let mut notes = line.notes.join("; ");
            if let Some(leak) = &line.leak {
                if !notes.is_empty() {
                    notes.push_str("; ");
                }
                notes.push_str("LEAK: ");
                notes.push_str(leak);
            }
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&line.seq),
                escape(&line.host),
                escape(&line.method),
                escape(&line.target),
                escape(&line.status),
                escape(&line.auth),
                escape(&notes),
                exchange(entry)
            );
        }
        html.push_str("</tbody></table>\n");
    }
    if !cell.artifacts.is_empty() {
        html.push_str("<h4>Artifacts</h4>\n<ul>\n");
        for artifact in &cell.artifacts {
            // Artifacts are relative paths beside the report, so a link works when the
            // directory is archived whole. Anything else (`javascript:`, absolute paths) is
            // shown as text only; `escape` keeps the attribute from being broken out of.
            if is_relative_link(artifact) {
                let _ = writeln!(html, "<li><a href=\"{0}\">{0}</a></li>", escape(artifact));
            } else {
                let _ = writeln!(html, "<li>{}</li>", escape(artifact));
            }
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</details></td>");
}

/// The request and response headers (and token form fields) of one journal entry, in an
/// expandable block; empty when the entry has none. The registry redacted them when it
/// recorded the entry: this only shows what the report already holds.
fn exchange(entry: &serde_json::Value) -> String {
    let fields = |name: &str| -> Vec<(String, String)> {
        entry
            .get(name)
            .and_then(serde_json::Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let request = fields("request_headers");
    let form = fields("form");
    let response = fields("response_headers");
    if request.is_empty() && form.is_empty() && response.is_empty() {
        return String::new();
    }
    let mut text = String::from("request headers:\n");
    for (k, v) in &request {
        let _ = writeln!(text, "  {k}: {v}");
    }
    if !form.is_empty() {
        text.push_str("form:\n");
        for (k, v) in &form {
            let _ = writeln!(text, "  {k}={v}");
        }
    }
    text.push_str("response headers:\n");
    for (k, v) in &response {
        let _ = writeln!(text, "  {k}: {v}");
    }
    format!(
        "<details class=\"exchange\"><summary>headers</summary><pre>{}</pre></details>",
        escape(text.trim_end())
    )
}

fn is_relative_link(path: &str) -> bool {
    !path.is_empty() && !path.starts_with(['/', '\\']) && !path.contains(':')
}

/// Escapes text for HTML element content and double- or single-quoted attribute values,
/// without terminal escape sequences or control characters ([`plain_text`]).
pub fn escape(text: &str) -> String {
    let text = plain_text(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
