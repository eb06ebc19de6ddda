//! Child processes of a cell: each in its own process group and private mount namespace
//! (with the cell's hosts file bind-mounted over `/etc/hosts`), with a timeout after
//! which the whole group is sent SIGTERM, then SIGKILL after a grace period. Output is
//! kept as a bounded tail with known secrets redacted.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of stdout/stderr kept (the tail).
pub const TAIL_BYTES: usize = 16 * 1024;

/// What to run and how to isolate it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// `(source, target)` bind mounts made in the child's private mount namespace, e.g.
    /// the cell's hosts file over `/etc/hosts`. Empty = share the harness's namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL on timeout.
    pub grace: Duration,
    /// Replaced by `***` in the captured tails.
    pub secrets: Vec<String>,
}

impl Spec {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, cwd: &Path) -> Spec {
        Spec {
            program: program.into(),
            args,
            env: BTreeMap::new(),
            cwd: cwd.to_path_buf(),
            binds: Vec::new(),
            timeout: Duration::from_secs(120),
            grace: Duration::from_secs(3),
            secrets: Vec::new(),
        }
    }

    /// A shell line that reproduces the command by hand (environment included; the hosts
    /// bind mount is shown as an `unshare` wrapper when there is one).
    pub fn repro(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.push(format!(
            "cd {} &&",
            shell_quote(&self.cwd.display().to_string())
        ));
        let mut inner: Vec<String> = vec!["env -i".into()];
        for (k, v) in &self.env {
            inner.push(format!("{k}={}", shell_quote(v)));
        }
        inner.push(shell_quote(&self.program.display().to_string()));
        inner.extend(self.args.iter().map(|a| shell_quote(a)));
        let inner = redact(&inner.join(" "), &self.secrets);
        if self.binds.is_empty() {
            parts.push(inner);
        } else {
            let mounts: Vec<String> = self
                .binds
                .iter()
                .map(|(s, t)| format!("mount --bind {} {}", s.display(), t.display()))
                .collect();
            parts.push(format!(
                "unshare -m --propagation private sh -c {}",
                shell_quote(&format!("{} && exec {inner}", mounts.join(" && ")))
            ));
        }
        parts.join(" ")
    }
}

/// Quote for POSIX sh when needed.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Replace every non-empty secret with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// How a process ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `None` when killed by a signal (the signal is in `signal`).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// The child's pid, which was also its process-group id.
    pub pgid: i32,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid path for a bind mount: {0}")]
    BadPath(String),
}

/// A bounded ring of the last bytes read.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        if self.0.len() > TAIL_BYTES {
            let cut = self.0.len() - TAIL_BYTES;
            self.0.drain(..cut);
        }
    }
}

fn drain(mut r: impl Read + Send + 'static, tail: Arc<Mutex<Tail>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut t) = tail.lock() {
                        t.push(&buf[..n]);
                    }
                }
            }
        }
    })
}

fn cstring(p: &Path) -> Result<CString, ProcessError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ProcessError::BadPath(p.display().to_string()))
}

/// A started child in its own group.
pub struct Running {
    child: Child,
    pgid: i32,
    started: Instant,
    out: Arc<Mutex<Tail>>,
    err: Arc<Mutex<Tail>>,
    readers: Vec<JoinHandle<()>>,
    secrets: Vec<String>,
}

/// Start `spec` in its own process group (and mount namespace when it has binds).
pub fn spawn(spec: &Spec) -> Result<Running, ProcessError> {
    let binds: Vec<(CString, CString)> = spec
        .binds
        .iter()
        .map(|(s, t)| Ok((cstring(s)?, cstring(t)?)))
        .collect::<Result<_, ProcessError>>()?;
    let root = CString::new("/").map_err(|_| ProcessError::BadPath("/".into()))?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe libc calls between fork and exec; every string was
    // allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If the harness dies, its children die with it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if !binds.is_empty() {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Private propagation, so our bind mounts never reach the host namespace.
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                for (s, t) in &binds {
                    if libc::mount(
                        s.as_ptr(),
                        t.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: spec.program.display().to_string(),
        source,
    })?;
    let pgid = child.id() as i32;
    let out = Arc::new(Mutex::new(Tail::default()));
    let err = Arc::new(Mutex::new(Tail::default()));
    let mut readers = Vec::new();
    if let Some(o) = child.stdout.take() {
        readers.push(drain(o, out.clone()));
    }
    if let Some(e) = child.stderr.take() {
        readers.push(drain(e, err.clone()));
    }
    Ok(Running {
        child,
        pgid,
        started: Instant::now(),
        out,
        err,
        readers,
        secrets: spec.secrets.clone(),
    })
}

/// Send `sig` to a whole process group (errors ignored: the group may be gone).
pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a negative pid addresses the group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Whether any process of the group still exists.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

impl Running {
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether the leader has exited (without reaping others).
    pub fn try_finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Wait until exit or `timeout`; then SIGTERM the group, SIGKILL after `grace`.
    /// The group is always SIGKILLed at the end so no grandchild survives the step.
    pub fn wait(mut self, timeout: Duration, grace: Duration) -> Finished {
        let deadline = self.started + timeout;
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break None,
            }
        };
        let status = match status {
            Some(st) => Some(st),
            None => {
                kill_group(self.pgid, libc::SIGTERM);
                let grace_end = Instant::now() + grace;
                loop {
                    match self.child.try_wait() {
                        Ok(Some(st)) => break Some(st),
                        Ok(None) if Instant::now() < grace_end => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        _ => {
                            kill_group(self.pgid, libc::SIGKILL);
                            break self.child.wait().ok();
                        }
                    }
                }
            }
        };
        kill_group(self.pgid, libc::SIGKILL);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let text = |t: &Arc<Mutex<Tail>>| {
            let bytes = t.lock().map(|t| t.0.clone()).unwrap_or_default();
            redact(&String::from_utf8_lossy(&bytes), &self.secrets)
        };
        Finished {
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out,
            duration: self.started.elapsed(),
            stdout_tail: text(&self.out),
            stderr_tail: text(&self.err),
            pgid: self.pgid,
        }
    }
}

/// Run `spec` to completion (or timeout).
pub fn run(spec: &Spec) -> Result<Finished, ProcessError> {
    Ok(spawn(spec)?.wait(spec.timeout, spec.grace))
}
