//! The short form of a run, for where space is scarce (a PR comment, a terminal): the
//! totals, then the cells that need attention (fail, error, fixed, not-run — one line each,
//! with a short reason), then the recorded known failures (one line each with the upstream
//! link), then a compact grid with one mark per cell. The evidence (steps, repro commands,
//! tails, journals) stays in `matrix-full.md`, `index.html` and `report.json`.
//!
//! [`attention`] and [`known_failures`] choose and order the lines; `markdown::render` and
//! [`render_text`] (the console) lay them out.

use std::fmt::Write as _;

use crate::matrix::Matrix;
use crate::present::{ALL_VERDICTS, attention_rank, one_line};
use crate::{Cell, RunReport, Verdict};

/// How many characters of a cell's reason a summary line keeps.
pub const REASON_CHARS: usize = 160;

/// One line of the attention list.
#[derive(Debug, Clone, PartialEq)]
pub enum Attention<'a> {
    /// One cell: fail, error, fixed, or a not-run cell whose reason no other cell of its
    /// client shares.
    Cell(&'a Cell),
    /// The not-run cells of one client that share one reason (a client that is missing or
    /// failed to install makes its whole column not-run: one line, not forty-five).
    NotRun {
        client: &'a str,
        reason: &'a str,
        cells: Vec<&'a Cell>,
    },
}

impl Attention<'_> {
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Cell(cell) => cell.verdict,
            Self::NotRun { .. } => Verdict::NotRun,
        }
    }

    /// How many cells the line stands for.
    pub fn cells(&self) -> usize {
        match self {
            Self::Cell(_) => 1,
            Self::NotRun { cells, .. } => cells.len(),
        }
    }
}

/// The cells that need attention, fail first, then error, fixed and not-run; in report
/// order within a verdict. Not-run cells of one client with one reason are one line.
pub fn attention(report: &RunReport) -> Vec<Attention<'_>> {
    let mut cells: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|c| attention_rank(c.verdict).is_some())
        .collect();
    // Stable: report order stays within a verdict.
    cells.sort_by_key(|c| attention_rank(c.verdict));
    let mut lines: Vec<Attention<'_>> = Vec::new();
    for cell in cells {
        if cell.verdict == Verdict::NotRun {
            let same = lines.iter_mut().find_map(|line| match line {
                Attention::NotRun {
                    client,
                    reason,
                    cells,
                } if *client == cell.client && *reason == cell.reason => Some(cells),
                _ => None,
            });
            if let Some(cells) = same {
                cells.push(cell);
            } else {
                lines.push(Attention::NotRun {
                    client: &cell.client,
                    reason: &cell.reason,
                    cells: vec![cell],
                });
            }
        } else {
            lines.push(Attention::Cell(cell));
        }
    }
    // A group of one reads better as the cell itself.
    lines
        .into_iter()
        .map(|line| match line {
            Attention::NotRun { cells, .. } if cells.len() == 1 => Attention::Cell(cells[0]),
            line => line,
        })
        .collect()
}

/// The `known-failure` cells, in report order.
pub fn known_failures(report: &RunReport) -> Vec<&Cell> {
    report
        .cells
        .iter()
        .filter(|c| c.verdict == Verdict::KnownFailure)
        .collect()
}

/// `450 cells: 200 pass, 3 fail, …` (every verdict, zeros included, so the line always
/// has the same shape), plus the grid positions that have no cell.
pub fn totals_line(report: &RunReport, label: impl Fn(Verdict) -> String) -> String {
    let counts = report.totals();
    let mut parts: Vec<String> = ALL_VERDICTS
        .iter()
        .map(|v| format!("{} {}", counts.get(v).copied().unwrap_or(0), label(*v)))
        .collect();
    let missing = Matrix::new(report).missing();
    if missing > 0 {
        parts.push(format!("{missing} missing"));
    }
    format!("{} cells: {}", report.cells.len(), parts.join(", "))
}

/// ` (shard 2/3)` for a shard's report (`run-scenarios --shard`), else nothing: its matrix
/// holds only the shard's cells, the others counted as missing.
pub fn shard_label(report: &RunReport) -> String {
    report
        .shard
        .map(|shard| format!(" (shard {shard})"))
        .unwrap_or_default()
}

/// How many lines of each list the console shows.
const TEXT_LINES: usize = 40;

/// The summary for a terminal: plain text, no Markdown, no escape sequences, nothing wider
/// than the grid (columns are numbered; the numbers are listed under it).
pub fn render_text(report: &RunReport) -> String {
    let matrix = Matrix::new(report);
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(
        out,
        "regcompat run {}{}: {}",
        one_line(&report.run_id, 100),
        shard_label(report),
        totals_line(report, |v| v.as_str().to_owned())
    );

    let lines = attention(report);
    if !lines.is_empty() {
        let cells: usize = lines.iter().map(Attention::cells).sum();
        let _ = writeln!(out, "\nNeeds attention ({cells} cells):");
        for line in lines.iter().take(TEXT_LINES) {
            let _ = writeln!(out, "  {}", text_line(line));
        }
        more(&mut out, lines.len());
    }

    let known = known_failures(report);
    if !known.is_empty() {
        let _ = writeln!(out, "\nRecorded known failures ({}):", known.len());
        for cell in known.iter().take(TEXT_LINES) {
            let link = cell.known.as_ref().map_or("", |k| k.link.as_str());
            let _ = writeln!(
                out,
                "  {} × {} — {}",
                one_line(&cell.scenario, 80),
                one_line(&cell.client, 60),
                one_line(link, 200)
            );
        }
        more(&mut out, known.len());
    }

    if !matrix.rows.is_empty() && !matrix.columns.is_empty() {
        out.push_str(
            "\nMatrix (ok pass, kf known-failure, . not-applicable; capitals need attention: \
             XX fail, ER error, FX fixed, NR not-run; -- no cell):\n",
        );
        let ids: Vec<String> = matrix.rows.iter().map(|r| one_line(r.id, 60)).collect();
        let width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(0);
        let _ = write!(out, "  {:width$}", "");
        for n in 1..=matrix.columns.len() {
            let _ = write!(out, " {n:>2}");
        }
        out.push('\n');
        for (row, id) in matrix.rows.iter().zip(&ids) {
            let _ = write!(out, "  {id:width$}");
            for column in &matrix.columns {
                let code = matrix
                    .cell(row.id, column.id)
                    .map_or("--", |c| text_code(c.verdict));
                let _ = write!(out, " {code:>2}");
            }
            out.push('\n');
        }
        for (n, column) in matrix.columns.iter().enumerate() {
            let _ = write!(out, "  {:>2} {}", n + 1, one_line(column.id, 60));
            if let Some(why) = column.unavailable {
                let _ = write!(out, " (unavailable: {})", one_line(why, REASON_CHARS));
            }
            out.push('\n');
        }
    }
    out
}

fn more(out: &mut String, total: usize) {
    if total > TEXT_LINES {
        let _ = writeln!(
            out,
            "  … {} more, see matrix-full.md or index.html",
            total - TEXT_LINES
        );
    }
}

/// `FAIL  scenario × client: reason`.
fn text_line(line: &Attention<'_>) -> String {
    let verdict = line.verdict().as_str().to_ascii_uppercase();
    match line {
        Attention::Cell(cell) => {
            let mut text = format!(
                "{verdict:<7} {} × {}: {}",
                one_line(&cell.scenario, 80),
                one_line(&cell.client, 60),
                one_line(&cell.reason, REASON_CHARS)
            );
            if let (Verdict::Fixed, Some(known)) = (cell.verdict, &cell.known) {
                let _ = write!(text, " (recorded: {})", one_line(&known.link, 200));
            }
            text
        }
        Attention::NotRun {
            client,
            reason,
            cells,
        } => format!(
            "{verdict:<7} {} × {} scenarios: {}",
            one_line(client, 60),
            cells.len(),
            one_line(reason, REASON_CHARS)
        ),
    }
}

/// Two characters per grid cell; capitals need attention.
fn text_code(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "ok",
        Verdict::KnownFailure => "kf",
        Verdict::NotApplicable => ".",
        Verdict::Fail => "XX",
        Verdict::Error => "ER",
        Verdict::Fixed => "FX",
        Verdict::NotRun => "NR",
    }
}
