//! regcompat reports: the result model of a matrix run and the writers that render it
//! (JSON with a versioned schema, JUnit XML, Markdown, a static HTML page), plus run
//! history, run-to-run diffs and baseline checks, and sharding a run and merging its shards.

pub mod baseline;
pub mod diff;
mod error;
mod fsutil;
pub mod history;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
mod matrix;
pub mod merge;
pub mod model;
pub mod present;
pub mod resilience;
pub mod shard;
pub mod summary;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use model::{
    Cell, CheckRecord, ClientInfo, KnownIssue, RunReport, SCHEMA_VERSION, ScenarioInfo, StepRecord,
    Verdict,
};

/// The files [`write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub json: PathBuf,
    pub junit: PathBuf,
    /// `matrix.md`: the summary ([`markdown::render`]), small enough for a PR comment.
    pub markdown: PathBuf,
    /// `matrix-full.md`: every cell with its reason and repro commands
    /// ([`markdown::render_full`]).
    pub markdown_full: PathBuf,
    pub html: PathBuf,
}

/// Writes `report.json`, `junit.xml`, `matrix.md`, `matrix-full.md` and `index.html` into
/// `out_dir` (created if needed). Every rendering is done before the first file is written,
/// so a rendering error leaves no partial set behind; each file is written atomically.
pub fn write_all(report: &RunReport, out_dir: &Path) -> Result<Written, ReportError> {
    let json_text = json::to_string(report)?;
    let junit_text = junit::render(report);
    let markdown_text = markdown::render(report);
    let markdown_full_text = markdown::render_full(report);
    let html_text = html::render(report);
    fsutil::create_dir(out_dir)?;
    let written = Written {
        json: out_dir.join("report.json"),
        junit: out_dir.join("junit.xml"),
        markdown: out_dir.join("matrix.md"),
        markdown_full: out_dir.join(markdown::FULL_FILE),
        html: out_dir.join("index.html"),
    };
    for (path, text) in [
        (&written.json, &json_text),
        (&written.junit, &junit_text),
        (&written.markdown, &markdown_text),
        (&written.markdown_full, &markdown_full_text),
        (&written.html, &html_text),
    ] {
        fsutil::write_atomically(path, text.as_bytes())?;
    }
    Ok(written)
}
