//! Progress output for installs: one line per client on stderr, plus a spinner with
//! elapsed time when stderr is a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Spec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Spinner,
    Plain,
    Quiet,
}

/// Where install progress goes.
#[derive(Debug, Clone)]
pub struct Progress {
    mode: Mode,
}

impl Progress {
    /// Spinner when stderr is a TTY, plain lines otherwise.
    pub fn auto() -> Progress {
        Progress {
            mode: if std::io::stderr().is_terminal() {
                Mode::Spinner
            } else {
                Mode::Plain
            },
        }
    }
    /// Plain lines on stderr.
    pub fn plain() -> Progress {
        Progress { mode: Mode::Plain }
    }
    /// Nothing at all (tests, or a caller with its own progress display).
    pub fn quiet() -> Progress {
        Progress { mode: Mode::Quiet }
    }

    pub(crate) fn task(&self, n: usize, total: usize, spec: &Spec) -> Task<'_> {
        let prefix = format!("[{n}/{total}] {} {}", spec.name, spec.version);
        let bar = (self.mode == Mode::Spinner).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(prefix.clone());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Task {
            progress: self,
            prefix,
            bar,
        }
    }
}

/// Progress of one client.
pub(crate) struct Task<'a> {
    progress: &'a Progress,
    prefix: String,
    bar: Option<ProgressBar>,
}

impl Task<'_> {
    /// A new phase: "building (go install)…".
    pub fn step(&self, msg: &str) {
        match (&self.bar, self.progress.mode) {
            (Some(b), _) => b.set_message(msg.to_string()),
            (None, Mode::Plain) => eprintln!("{}: {msg}", self.prefix),
            _ => {}
        }
    }

    fn done(&self, line: String) {
        match (&self.bar, self.progress.mode) {
            (Some(b), _) => {
                b.finish_and_clear();
                eprintln!("{line}");
            }
            (None, Mode::Plain) => eprintln!("{line}"),
            _ => {}
        }
    }

    pub fn finish_cached(&self, bin: &Path) {
        self.done(format!("{}: cached ({})", self.prefix, bin.display()));
    }

    pub fn finish_installed(&self, bin: &Path, secs: f64) {
        self.done(format!(
            "{}: installed in {secs:.1}s ({})",
            self.prefix,
            bin.display()
        ));
    }

    pub fn finish_failed(&self, reason: &str) {
        let first = reason.lines().next().unwrap_or(reason);
        self.done(format!("{}: FAILED: {first}", self.prefix));
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.bar.as_ref().filter(|b| !b.is_finished()) {
            b.finish_and_clear();
        }
    }
}
