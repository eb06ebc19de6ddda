//! Running client and daemon processes: each in its own process group and (optionally) a
//! private mount namespace where the cell's hosts file is bind-mounted over `/etc/hosts`,
//! with a timeout after which the whole group is terminated, then killed.
//!
//! Output goes to files in the cell's log directory (never pipes: a grandchild that
//! escaped the group could hold a pipe open forever); tails are read back, bounded and
//! redacted.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child exits, so spawn from a
//! thread that outlives the process (the runner spawns from each cell's own thread).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How much of each stream a tail keeps.
pub const TAIL_BYTES: u64 = 16 * 1024;
/// Between SIGTERM and SIGKILL of a group.
pub const KILL_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);

/// What a process sees of the file system that differs from the machine.
#[derive(Debug, Clone, Default)]
pub struct Isolation {
    /// (source, target) bind mounts made in a private mount namespace before exec; the
    /// cell's hosts file over `/etc/hosts` is the usual one.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

impl Isolation {
    pub fn hosts(hosts_file: &Path) -> Isolation {
        Isolation {
            binds: vec![(hosts_file.to_path_buf(), PathBuf::from("/etc/hosts"))],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
    }
}

/// A process to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub stdin: Option<Vec<u8>>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub isolation: Isolation,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("empty command line")]
    Empty,
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("cannot open {path}: {source}")]
    Output { path: PathBuf, source: io::Error },
    #[error("bad argument for a mount: {0}")]
    Mount(String),
}

/// A started process group.
#[derive(Debug)]
pub struct Group {
    child: Child,
    pgid: i32,
    started: Instant,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `None` when it was killed by a signal (timeouts included).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
}

/// Starts `spec` in a new process group (and mount namespace when isolated).
pub fn spawn(spec: &Spec) -> Result<Group, ProcessError> {
    let (program, args) = spec.argv.split_first().ok_or(ProcessError::Empty)?;
    let out = |p: &Path| {
        File::create(p).map_err(|source| ProcessError::Output {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdout(out(&spec.stdout)?)
        .stderr(out(&spec.stderr)?)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    // Everything the child needs after fork is prepared here: pre_exec may only make
    // async-signal-safe calls (no allocation).
    let binds: Vec<(CString, CString)> = spec
        .isolation
        .binds
        .iter()
        .map(|(s, t)| Ok((cstring(s)?, cstring(t)?)))
        .collect::<Result<_, ProcessError>>()?;
    let root = c"/";
    let isolate = !binds.is_empty();
    // SAFETY: the closure only calls async-signal-safe libc functions on data prepared
    // before fork, as `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if isolate {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // keep our mounts from propagating back to the machine's namespace
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
                for (src, target) in &binds {
                    if libc::mount(
                        src.as_ptr(),
                        target.as_ptr(),
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
        program: program.clone(),
        source,
    })?;
    if let (Some(input), Some(mut stdin)) = (&spec.stdin, child.stdin.take()) {
        // small inputs (passwords); a closed pipe just means the client did not read it
        let _ = stdin.write_all(input);
    }
    let pgid = child.id() as i32;
    Ok(Group {
        child,
        pgid,
        started: Instant::now(),
    })
}

fn cstring(p: &Path) -> Result<CString, ProcessError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ProcessError::Mount(p.display().to_string()))
}

impl Group {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether the group leader has exited (it is reaped then).
    pub fn try_finished(&mut self) -> Option<Finished> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.finished(status, false)),
            Ok(None) => None,
            Err(_) => Some(Finished {
                exit_code: None,
                signal: None,
                timed_out: false,
                duration: self.started.elapsed(),
            }),
        }
    }

    fn finished(&self, status: std::process::ExitStatus, timed_out: bool) -> Finished {
        Finished {
            exit_code: status.code(),
            signal: status.signal(),
            timed_out,
            duration: self.started.elapsed(),
        }
    }

    /// Waits for the leader up to `timeout`; on timeout terminates the group. Either way
    /// the rest of the group (helpers the client started) is killed afterwards.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = self.started + timeout;
        let result = loop {
            if let Some(f) = self.try_finished() {
                break f;
            }
            if Instant::now() >= deadline {
                break self.stop(KILL_GRACE, true);
            }
            std::thread::sleep(POLL);
        };
        kill_group(self.pgid, libc::SIGKILL);
        result
    }

    /// SIGTERM to the group, SIGKILL after `grace`, then reap the leader.
    pub fn stop(&mut self, grace: Duration, timed_out: bool) -> Finished {
        kill_group(self.pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                kill_group(self.pgid, libc::SIGKILL);
                return self.finished(status, timed_out);
            }
            std::thread::sleep(POLL);
        }
        kill_group(self.pgid, libc::SIGKILL);
        match self.child.wait() {
            Ok(status) => self.finished(status, timed_out),
            Err(_) => Finished {
                exit_code: None,
                signal: Some(libc::SIGKILL),
                timed_out,
                duration: self.started.elapsed(),
            },
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // never leave a group behind, whatever path dropped us
        if let Ok(None) = self.child.try_wait() {
            kill_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait();
        } else {
            kill_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to every process of group `pgid` (ESRCH when none is left is fine).
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a negative pid addresses the group.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Runs `spec` to completion or `timeout`.
pub fn run(spec: &Spec, timeout: Duration) -> Result<Finished, ProcessError> {
    Ok(spawn(spec)?.wait(timeout))
}

/// The last `max` bytes of a file, from a line start, lossily decoded.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0
        && let Some(nl) = text.find('\n')
    {
        text = format!("[… {start} bytes before]\n{}", &text[nl + 1..]);
    }
    text
}

/// Replaces every secret with its label.
pub fn redact(text: &str, secrets: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (secret, label) in secrets {
        if secret.len() >= 3 {
            out = out.replace(secret.as_str(), &format!("[REDACTED:{label}]"));
        }
    }
    out
}

/// A shell line that reruns `spec` by hand: same environment, same mounts, same cwd.
pub fn repro(spec: &Spec, stdin_shown: Option<&str>) -> String {
    let q = |s: &str| shell_quote(s);
    let mut line = format!("cd {} && ", q(&spec.cwd.display().to_string()));
    if let Some(s) = stdin_shown {
        line.push_str(&format!("printf %s {} | ", q(s)));
    }
    line.push_str("env -i");
    for (k, v) in &spec.env {
        line.push_str(&format!(" {k}={}", q(v)));
    }
    let argv: Vec<String> = spec.argv.iter().map(|a| q(a)).collect();
    if spec.isolation.is_empty() {
        line.push(' ');
        line.push_str(&argv.join(" "));
    } else {
        let mut inner = String::new();
        for (s, t) in &spec.isolation.binds {
            inner.push_str(&format!(
                "mount --bind {} {} && ",
                q(&s.display().to_string()),
                q(&t.display().to_string())
            ));
        }
        inner.push_str("exec ");
        inner.push_str(&argv.join(" "));
        line.push_str(&format!(
            " unshare --mount --propagation private sh -c {}",
            q(&inner)
        ));
    }
    line
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

/// PIDs of live processes whose environment carries `var=value` (bounded scan of /proc).
pub fn processes_with_env(var: &str, value: &str) -> Vec<u32> {
    let needle = format!("{var}={value}");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten().take(1_000_000) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            // zombies still show their environment until reaped; they are gone for our purpose
            let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            if !zombie {
                found.push(pid);
            }
        }
    }
    found
}

/// Kills every process carrying the run marker (the runner's last safety net); returns
/// the PIDs it had to kill.
pub fn kill_marked(var: &str, value: &str) -> Vec<u32> {
    let pids = processes_with_env(var, value);
    for pid in &pids {
        // SAFETY: plain syscall on a PID we just found.
        unsafe {
            libc::kill(*pid as i32, libc::SIGKILL);
        }
    }
    pids
}
