//! The JSON report: pretty-printed [`RunReport`] tagged with [`SCHEMA_VERSION`], and the
//! reader that refuses any other schema instead of half-understanding it.

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use crate::fsutil::write_atomically;
use crate::{ReportError, RunReport, SCHEMA_VERSION};

/// The report as pretty JSON, its `schema` always [`SCHEMA_VERSION`] (this crate's writers
/// only know how to write the current schema).
pub fn to_string(report: &RunReport) -> Result<String, ReportError> {
    let report = if report.schema == SCHEMA_VERSION {
        Cow::Borrowed(report)
    } else {
        let mut current = report.clone();
        current.schema = SCHEMA_VERSION.to_owned();
        Cow::Owned(current)
    };
    let mut text = serde_json::to_string_pretty(&*report).map_err(ReportError::Serialise)?;
    text.push('\n');
    Ok(text)
}

/// Writes the report to `path` (atomically: a reader never sees half a report).
pub fn write(report: &RunReport, path: &Path) -> Result<(), ReportError> {
    write_atomically(path, to_string(report)?.as_bytes())
}

/// Reads a report written by [`write`].
pub fn read(path: &Path) -> Result<RunReport, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, "read", e))?;
    parse(&text, path)
}

/// Parses report text; `origin` names it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<RunReport, ReportError> {
    // Look at the schema before the shape, so a report from another version fails with
    // "unknown schema" rather than with whichever field happened to change first.
    #[derive(Deserialize)]
    struct SchemaProbe {
        schema: Option<String>,
    }
    let probe: SchemaProbe =
        serde_json::from_str(text).map_err(|e| ReportError::json(origin, &e))?;
    match probe.schema.as_deref() {
        // v2 added the `known-failure` and `fixed` verdicts and an optional `known` record:
        // every v1 report is a valid v2 report, so history and baselines stay readable.
        Some(SCHEMA_VERSION | "regcompat.report/v1") => {}
        other => {
            return Err(ReportError::UnknownSchema {
                path: origin.to_path_buf(),
                found: other.unwrap_or("<missing>").to_owned(),
                expected: SCHEMA_VERSION,
            });
        }
    }
    let mut report: RunReport =
        serde_json::from_str(text).map_err(|e| ReportError::json(origin, &e))?;
    report.schema = SCHEMA_VERSION.to_owned();
    Ok(report)
}

impl RunReport {
    /// Reads a JSON report (see [`read`]): errors name the file, and a report of another
    /// schema is refused rather than half understood.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, ReportError> {
        read(path.as_ref())
    }

    /// Writes the report as pretty JSON, atomically (see [`write`]).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        write(self, path.as_ref())
    }
}
