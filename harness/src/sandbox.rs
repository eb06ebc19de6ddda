//! One sandbox per cell: fresh HOME, DOCKER_CONFIG, XDG dirs, a work dir, the cell's
//! hosts file (bind-mounted over `/etc/hosts` in the client's private mount namespace,
//! never written to the machine's own) and the CA bundle its clients trust.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The machine's CA bundle (Debian); ours is appended to a copy of it.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Errors preparing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The network rule: scenario hosts resolve to loopback only.
    #[error(
        "refusing to run: host `{hostname}` would resolve to {addr}, outside 127.0.0.0/8 and ::1"
    )]
    NotLoopback { hostname: String, addr: IpAddr },
    #[error("invalid hostname `{0}` for a hosts file")]
    BadHostname(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether an address is loopback (127.0.0.0/8 or ::1) — the only addresses allowed.
pub fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// Render a hosts file for `entries` (hostname → address), refusing anything that would
/// send a client off the machine.
pub fn hosts_file(entries: &[(String, IpAddr)]) -> Result<String, SandboxError> {
    let mut out = String::from(
        "# written by regcompat for one cell\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for (hostname, addr) in entries {
        let valid = !hostname.is_empty()
            && hostname.len() <= 253
            && hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            return Err(SandboxError::BadHostname(hostname.clone()));
        }
        if !is_loopback(*addr) {
            return Err(SandboxError::NotLoopback {
                hostname: hostname.clone(),
                addr: *addr,
            });
        }
        out.push_str(&format!("{addr}\t{hostname}\n"));
    }
    Ok(out)
}

/// A cell's private directories and files.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub home: PathBuf,
    pub docker_config: PathBuf,
    pub xdg_config: PathBuf,
    pub xdg_data: PathBuf,
    pub xdg_cache: PathBuf,
    pub xdg_runtime: PathBuf,
    pub work: PathBuf,
    pub tmp: PathBuf,
    /// Bind-mounted over `/etc/hosts` for every process of the cell.
    pub hosts: PathBuf,
    /// System CAs + the fleet CA (`SSL_CERT_FILE`).
    pub ca_bundle: PathBuf,
    /// The fleet CA alone (for certs.d style trust).
    pub ca_pem: PathBuf,
    /// Marks every process of the run (leftover detection scans for it).
    pub run_id: String,
}

impl Sandbox {
    /// Create the directories under `root` (which must not exist yet or be empty).
    pub fn create(root: &Path, run_id: &str) -> Result<Sandbox, SandboxError> {
        let d = |name: &str| root.join(name);
        let sb = Sandbox {
            root: root.to_path_buf(),
            home: d("home"),
            docker_config: d("home/.docker"),
            xdg_config: d("home/.config"),
            xdg_data: d("home/.local/share"),
            xdg_cache: d("home/.cache"),
            xdg_runtime: d("run"),
            work: d("work"),
            tmp: d("tmp"),
            hosts: d("hosts"),
            ca_bundle: d("ca-bundle.pem"),
            ca_pem: d("ca.pem"),
            run_id: run_id.to_string(),
        };
        for dir in [
            &sb.home,
            &sb.docker_config,
            &sb.xdg_config,
            &sb.xdg_data,
            &sb.xdg_cache,
            &sb.xdg_runtime,
            &sb.work,
            &sb.tmp,
        ] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        set_mode(&sb.xdg_runtime, 0o700)?;
        // Until a fleet is wired, the cell resolves nothing but localhost.
        sb.write_hosts(&[])?;
        Ok(sb)
    }

    /// Write the cell's hosts file (guarded: loopback only).
    pub fn write_hosts(&self, entries: &[(String, IpAddr)]) -> Result<(), SandboxError> {
        let text = hosts_file(entries)?;
        fs::write(&self.hosts, text).map_err(io_err(&self.hosts))
    }

    /// Write `ca.pem` and `ca-bundle.pem` = system CAs (when present) + `ca_pem`.
    pub fn write_ca(&self, ca_pem: &str) -> Result<(), SandboxError> {
        fs::write(&self.ca_pem, ca_pem).map_err(io_err(&self.ca_pem))?;
        let mut bundle = fs::read_to_string(SYSTEM_CA_BUNDLE).unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(ca_pem);
        fs::write(&self.ca_bundle, bundle).map_err(io_err(&self.ca_bundle))
    }

    /// The environment every process of the cell gets (the rest is cleared).
    pub fn env(&self) -> BTreeMap<String, String> {
        let s = |p: &Path| p.display().to_string();
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), s(&self.home));
        env.insert("DOCKER_CONFIG".into(), s(&self.docker_config));
        env.insert("XDG_CONFIG_HOME".into(), s(&self.xdg_config));
        env.insert("XDG_DATA_HOME".into(), s(&self.xdg_data));
        env.insert("XDG_CACHE_HOME".into(), s(&self.xdg_cache));
        env.insert("XDG_RUNTIME_DIR".into(), s(&self.xdg_runtime));
        env.insert("TMPDIR".into(), s(&self.tmp));
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        env.insert("SSL_CERT_FILE".into(), s(&self.ca_bundle));
        env.insert(RUN_ID_ENV.into(), self.run_id.clone());
        // Clients must never reach a proxy: everything is loopback.
        env.insert("NO_PROXY".into(), "*".into());
        env.insert("no_proxy".into(), "*".into());
        env
    }

    /// Remove the sandbox (best effort: daemons may leave root-owned files behind).
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_dir_all(&self.root)
    }
}

/// The variable every process the harness starts carries; leftover scans look for it.
pub const RUN_ID_ENV: &str = "REGCOMPAT_RUN_ID";

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Processes whose environment carries `REGCOMPAT_RUN_ID=<run_id>` (scans /proc).
pub fn processes_of_run(run_id: &str) -> Vec<u32> {
    let needle = format!("{RUN_ID_ENV}={run_id}");
    let Ok(rd) = fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // Zombies have an empty environ; they are gone as far as resources go.
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}
