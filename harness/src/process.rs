//! Running one client process: its own process group, the cell's network namespace (when it
//! has one), its own private mount namespace with the cell's hosts file bound over
//! `/etc/hosts`, a cleared environment, a timeout after
//! which the whole group is killed (SIGTERM, then SIGKILL), and the group killed again when
//! the process exits so nothing it started outlives it. Output is captured with a bounded
//! tail.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Bytes of stdout/stderr kept (the tail).
const TAIL_BYTES: usize = 16 * 1024;
/// Between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Invocation {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Bound over `/etc/hosts` in the process's private mount namespace.
    pub hosts_file: Option<PathBuf>,
    /// More bind mounts in that namespace (needs `hosts_file`): `(source, target)`
    /// directories; a missing target is created first (an empty directory). For daemons
    /// with fixed paths (buildkitd's `/run/buildkit/otel-grpc.sock`) that would collide
    /// between cells.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// The cell's private network namespace ([`crate::network`]), entered before `exec`;
    /// `None`: the machine's (loopback cells).
    pub netns: Option<Arc<OwnedFd>>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Finished {
    /// `None` when killed (timeout) or not started.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    pub stdout: String,
    pub stderr: String,
    /// Why it could not start, if it did not.
    pub spawn_error: Option<String>,
}

impl Invocation {
    /// A shell line that reproduces this run by hand (environment included, hosts file
    /// bound with `unshare`, the cell's network entered with `nsenter` through the
    /// harness's handle — valid while the harness holds the cell, as `cargo xtask repro`
    /// does).
    pub fn repro(&self) -> String {
        let mut line = String::new();
        if let Some(ns) = &self.netns {
            line.push_str(&format!(
                "nsenter --net=/proc/{}/fd/{} ",
                std::process::id(),
                ns.as_raw_fd()
            ));
        }
        if let Some(h) = &self.hosts_file {
            let mut mounts = format!("mount --bind {} /etc/hosts", h.display());
            for (source, target) in &self.binds {
                mounts.push_str(&format!(
                    " && mkdir -p {t} && mount --bind {} {t}",
                    source.display(),
                    t = target.display()
                ));
            }
            line.push_str(&format!(
                "unshare --mount --propagation private sh -c {} ",
                shell_quote(&format!("{mounts} && exec \"$0\" \"$@\""))
            ));
        }
        let mut cmd = format!(
            "cd {} && env -i ",
            shell_quote(&self.cwd.display().to_string())
        );
        for (k, v) in &self.env {
            cmd.push_str(&format!("{k}={} ", shell_quote(v)));
        }
        let argv: Vec<String> = self.argv.iter().map(|a| shell_quote(a)).collect();
        format!("{cmd}{line}{}", argv.join(" "))
    }

    pub async fn run(&self) -> Finished {
        let started = Instant::now();
        let not_started = |why: String| Finished {
            exit_code: None,
            timed_out: false,
            duration: started.elapsed(),
            stdout: String::new(),
            stderr: String::new(),
            spawn_error: Some(why),
        };
        let mut cmd = match self.command(Stdio::piped(), Stdio::piped()) {
            Ok(c) => c,
            Err(e) => return not_started(e),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            // `command` refused an empty argv, so argv[0] exists.
            Err(e) => return not_started(format!("cannot start {}: {e}", self.argv[0])),
        };
        let pgid = child.id().map(|p| p as i32);
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let read_out = tokio::spawn(async move { read_tail(out.as_mut()).await });
        let read_err = tokio::spawn(async move { read_tail(err.as_mut()).await });
        let (status, timed_out) = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                kill_group(pgid, libc::SIGTERM);
                let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        kill_group(pgid, libc::SIGKILL);
                        child.wait().await.ok()
                    }
                };
                let _ = status;
                (None, true)
            }
        };
        // Whatever the client left behind in its group goes too.
        kill_group(pgid, libc::SIGKILL);
        let stdout = read_out.await.unwrap_or_default();
        let stderr = read_err.await.unwrap_or_default();
        Finished {
            exit_code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            timed_out,
            duration: started.elapsed(),
            stdout,
            stderr,
            spawn_error: None,
        }
    }
}

impl Invocation {
    /// The command with the isolation every client and daemon process gets: cleared
    /// environment, own process group, death signal, private mount namespace with the hosts
    /// file bound over `/etc/hosts`.
    fn command(&self, stdout: Stdio, stderr: Stdio) -> Result<tokio::process::Command, String> {
        let program = self.argv.first().ok_or("empty command")?;
        let hosts = self.hosts_file.as_deref().map(path_cstring).transpose()?;
        // The handle stays open until after the spawn (`self` outlives it).
        let netns = self.netns.as_ref().map(|ns| ns.as_raw_fd());
        let mut binds = Vec::new();
        for (source, target) in &self.binds {
            for dir in [source, target] {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            binds.push((path_cstring(source)?, path_cstring(target)?));
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        // SAFETY: the closure only makes async-signal-safe system calls (setpgid, prctl,
        // setns, unshare, mount) on data allocated before the fork.
        unsafe {
            cmd.pre_exec(move || isolate(netns, hosts.as_ref(), &binds));
        }
        Ok(cmd)
    }
}

/// A long-running process (a daemon such as dockerd) started with the same isolation as a
/// client, its output going to a log file. Stopped with its whole group.
pub struct Daemon {
    child: tokio::process::Child,
    pgid: Option<i32>,
    pub log: PathBuf,
}

impl Invocation {
    /// Starts the process and returns at once; output goes to `log`.
    pub fn spawn_daemon(&self, log: &Path) -> Result<Daemon, String> {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .command(Stdio::from(file), Stdio::from(file2))?
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.argv[0]))?;
        let pgid = child.id().map(|p| p as i32);
        Ok(Daemon {
            child,
            pgid,
            log: log.to_owned(),
        })
    }
}

impl Daemon {
    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL; waits for the leader.
    pub async fn stop(mut self, grace: Duration) {
        kill_group(self.pgid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            kill_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Children it started (containerd…) go with the group.
        kill_group(self.pgid, libc::SIGKILL);
    }

    /// The last `n` bytes of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(n);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }
}

fn path_cstring(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("bad path {}", p.display()))
}

/// Runs in the child between fork and exec.
fn isolate(
    netns: Option<i32>,
    hosts: Option<&CString>,
    binds: &[(CString, CString)],
) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls with valid pointers (static strings, CStrings that outlive
    // the call) — async-signal-safe.
    unsafe {
        check(libc::setpgid(0, 0))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if let Some(ns) = netns {
            check(libc::setns(ns, libc::CLONE_NEWNET))?;
        }
        if let Some(hosts) = hosts {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                hosts.as_ptr(),
                c"/etc/hosts".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            for (source, target) in binds {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
        }
    }
    Ok(())
}

fn kill_group(pgid: Option<i32>, signal: libc::c_int) {
    if let Some(pgid) = pgid.filter(|p| *p > 1) {
        // SAFETY: kill(2) on a process group we created.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

async fn read_tail<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    // Bounded by the process's lifetime (its pipes close when it and its group are gone).
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * TAIL_BYTES {
            tail.drain(..tail.len() - TAIL_BYTES);
        }
    }
    if tail.len() > TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
    String::from_utf8_lossy(&tail).into_owned()
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
