//! File writes that never leave a half-written report behind: CI may archive the output
//! directory while a later step still runs, and a truncated `report.json` would poison
//! history and baseline comparisons.

use std::path::Path;

use crate::ReportError;

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    let temporary = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(|e| ReportError::io(&temporary, "write", e))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        // Best effort: do not leave the temporary behind when the rename failed.
        let _ = std::fs::remove_file(&temporary);
        ReportError::io(path, "write", e)
    })
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, "create directory", e))
}
