//! Long-running processes a client needs (dockerd): started by the harness with the same
//! isolation as clients, checked for readiness, and stopped with their whole group.

use crate::process::{self, Finished, Group, Spec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a stopping daemon gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
const READY_POLL: Duration = Duration::from_millis(100);

/// A running daemon; dropping it kills its group.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    group: Group,
    pub log: PathBuf,
    /// Directories removed after the daemon stopped (short socket dirs under /tmp).
    pub cleanup: Vec<PathBuf>,
    pub repro: String,
}

impl Daemon {
    /// Starts `spec` and waits until `ready()` holds, the process exits, or `timeout`.
    pub fn start(
        name: &str,
        spec: &Spec,
        ready: &dyn Fn() -> bool,
        timeout: Duration,
        cleanup: Vec<PathBuf>,
    ) -> Result<Daemon, String> {
        let mut group = process::spawn(spec).map_err(|e| format!("{name}: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = group.try_finished() {
                return Err(format!(
                    "{name} exited during start-up ({}): {}",
                    describe(&f),
                    process::tail(&spec.stderr, 2048)
                ));
            }
            if ready() {
                break;
            }
            if Instant::now() >= deadline {
                group.stop(Duration::from_secs(3), true);
                return Err(format!(
                    "{name} was not ready after {}s: {}",
                    timeout.as_secs(),
                    process::tail(&spec.stderr, 2048)
                ));
            }
            std::thread::sleep(READY_POLL);
        }
        Ok(Daemon {
            name: name.to_owned(),
            group,
            log: spec.stderr.clone(),
            cleanup,
            repro: process::repro(spec, None),
        })
    }

    /// SIGTERM to the group, SIGKILL after the grace, then remove the cleanup dirs.
    pub fn stop(mut self) -> Finished {
        let f = self.group.stop(STOP_GRACE, false);
        for d in &self.cleanup {
            let _ = std::fs::remove_dir_all(d);
        }
        f
    }
}

fn describe(f: &Finished) -> String {
    match (f.exit_code, f.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}
