//! Everything that can go wrong reading, writing or keeping reports. Each message names the
//! file involved, because these errors end up in CI logs read by someone who did not run it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    // The I/O error is in the message, not a `source`: error-chain printers (anyhow)
    // would otherwise print it twice.
    #[error("{}: cannot {action}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done: "read", "write", "create directory"…
        action: &'static str,
        error: std::io::Error,
    },

    #[error("{}:{line}:{column}: not a valid regcompat report: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "{}: unknown report schema `{found}`; this regcompat reads `{expected}`\n  hint: \
         regenerate the report with this regcompat version, or read it with the version that wrote it",
        path.display()
    )]
    UnknownSchema {
        path: PathBuf,
        /// The `schema` field found, or `<missing>`.
        found: String,
        expected: &'static str,
    },

    #[error(
        "run id `{0}` cannot name a history file\n  hint: use 1-128 characters from \
         A-Z a-z 0-9 . _ - not starting with `.`"
    )]
    BadRunId(String),

    #[error("cannot serialise the report as JSON: {0}")]
    Serialise(#[source] serde_json::Error),
}

impl ReportError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            error,
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, error: &serde_json::Error) -> Self {
        Self::Json {
            path: path.into(),
            line: error.line(),
            column: error.column(),
            // serde_json's Display appends " at line L column C"; the path prefix says it already.
            message: error
                .to_string()
                .trim_end_matches(&format!(
                    " at line {} column {}",
                    error.line(),
                    error.column()
                ))
                .to_owned(),
        }
    }
}
