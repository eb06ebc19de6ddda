//! Long-running processes of a cell (dockerd): same isolation as clients (own process
//! group, private mount namespace with the cell's hosts file), a bounded readiness wait,
//! and stop = SIGTERM the group, SIGKILL after a grace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::{self, Finished, Running, Spec};
use crate::sandbox::Sandbox;

/// A started daemon.
pub struct Daemon {
    pub name: String,
    running: Option<Running>,
    grace: Duration,
}

impl Daemon {
    /// Start `spec` and wait until `ready()` holds (checked every 100 ms, at most
    /// `within`); a daemon that exits or never becomes ready is stopped and reported.
    pub fn start(
        name: &str,
        spec: &Spec,
        within: Duration,
        ready: impl Fn() -> bool,
    ) -> Result<Daemon, String> {
        let running = process::spawn(spec).map_err(|e| e.to_string())?;
        let mut d = Daemon {
            name: name.to_string(),
            running: Some(running),
            grace: spec.grace,
        };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if ready() {
                return Ok(d);
            }
            if d.running.as_mut().is_some_and(Running::try_finished) {
                let f = d.stop();
                let code = f.as_ref().and_then(|f| f.exit_code);
                let tail = f.map(|f| f.stderr_tail).unwrap_or_default();
                let last: Vec<&str> = tail.lines().rev().take(3).collect();
                return Err(format!(
                    "{name} exited during startup (exit code {code:?}): {}",
                    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let tail = d.stop().map(|f| f.stderr_tail).unwrap_or_default();
        let last: Vec<&str> = tail.lines().rev().take(5).collect();
        Err(format!(
            "{name} not ready after {}s: {}",
            within.as_secs(),
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }

    /// Stop the daemon and its whole group; returns how it ended (with its log tails).
    pub fn stop(&mut self) -> Option<Finished> {
        let r = self.running.take()?;
        process::kill_group(r.pgid(), libc::SIGTERM);
        Some(r.wait(Duration::ZERO, self.grace))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// dockerd for one cell: its own data root, exec root, pidfile and socket, no bridge and
/// no iptables (clients use host networking), vfs storage (works nested, no kernel
/// features needed). `/etc/docker` is replaced by the cell's copy so the daemon reads
/// the cell's `certs.d/<host>/ca.crt` and nothing of the machine's configuration.
pub fn dockerd_spec(dockerd: &Path, sb: &Sandbox, etc_docker: &Path) -> Spec {
    let root = &sb.root;
    let p = |n: &str| root.join(n).display().to_string();
    let args = vec![
        "--data-root".into(),
        p("docker-data"),
        "--exec-root".into(),
        p("docker-exec"),
        "--pidfile".into(),
        p("docker.pid"),
        "-H".into(),
        format!("unix://{}", p("docker.sock")),
        "--bridge=none".into(),
        "--iptables=false".into(),
        "--ip6tables=false".into(),
        "--ip-masq=false".into(),
        "--storage-driver=vfs".into(),
        "--userland-proxy=false".into(),
        "--config-file".into(),
        etc_docker.join("daemon.json").display().to_string(),
        "--containerd-namespace".into(),
        format!("regcompat-{}", sb.run_id),
    ];
    let mut spec = Spec::new(dockerd, args, &sb.work);
    spec.env = sb.env();
    spec.binds = vec![
        (sb.hosts.clone(), "/etc/hosts".into()),
        (etc_docker.to_path_buf(), PathBuf::from("/etc/docker")),
    ];
    spec.timeout = Duration::from_secs(3600);
    spec.grace = Duration::from_secs(10);
    spec
}
