//! One cell's private world: fresh HOME, DOCKER_CONFIG, XDG dirs and work dir, the hosts
//! file that maps the scenario's hostnames to the fleet's loopback addresses, and the CA
//! bundle clients trust.
//!
//! The hosts file is never written to `/etc/hosts`: [`crate::process`] bind-mounts it over
//! `/etc/hosts` inside a private mount namespace of each client and daemon process. The
//! guard here refuses any address outside 127.0.0.0/8 (or `::1`): the network rule is that
//! clients only ever reach loopback.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The system CA bundle (Debian's `ca-certificates`), prepended to the fleet's CA.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The environment variable carrying the run's id into every process the harness starts;
/// the leftover-process check scans `/proc/*/environ` for it.
pub const RUN_ID_VAR: &str = "REGCOMPAT_RUN_ID";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "hostname {hostname:?} would resolve to {addr}, outside 127.0.0.0/8: refusing to run (clients may only reach loopback)"
    )]
    NotLoopback { hostname: String, addr: IpAddr },
    #[error("{hostname:?} is not a hostname a hosts file can carry")]
    BadHostname { hostname: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Io { what, path, source }
}

/// The directories and files of one cell, all under `root`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub home: PathBuf,
    pub docker_config: PathBuf,
    pub xdg_config: PathBuf,
    pub xdg_cache: PathBuf,
    pub xdg_data: PathBuf,
    pub xdg_runtime: PathBuf,
    pub tmp: PathBuf,
    /// The client's working directory (pulled images land here).
    pub work: PathBuf,
    /// Client stdout/stderr, daemon logs.
    pub logs: PathBuf,
    pub hosts_file: PathBuf,
    pub ca_bundle: PathBuf,
    /// `<host>/ca.crt` per registry host, for clients that read a certs.d tree.
    pub certs_d: PathBuf,
}

impl Sandbox {
    /// Creates the cell's directories under `root` (which must not exist yet or be empty).
    pub fn create(root: &Path) -> Result<Sandbox, SandboxError> {
        let d = |p: &str| root.join(p);
        let s = Sandbox {
            root: root.to_path_buf(),
            home: d("home"),
            docker_config: d("home/.docker"),
            xdg_config: d("home/.config"),
            xdg_cache: d("home/.cache"),
            xdg_data: d("home/.local/share"),
            xdg_runtime: d("run"),
            tmp: d("tmp"),
            work: d("work"),
            logs: d("logs"),
            hosts_file: d("etc/hosts"),
            ca_bundle: d("etc/ca-bundle.pem"),
            certs_d: d("etc/certs.d"),
        };
        for dir in [
            &s.home,
            &s.docker_config,
            &s.xdg_config,
            &s.xdg_cache,
            &s.xdg_data,
            &s.xdg_runtime,
            &s.tmp,
            &s.work,
            &s.logs,
            &s.certs_d,
        ] {
            fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        }
        // XDG_RUNTIME_DIR must be private to its user (containers/image checks it)
        set_mode(&s.xdg_runtime, 0o700)?;
        Ok(s)
    }

    /// Writes the hosts file, refusing any non-loopback address.
    pub fn write_hosts(&self, entries: &[(String, IpAddr)]) -> Result<(), SandboxError> {
        let text = hosts_file_text(entries)?;
        write(&self.hosts_file, text.as_bytes())
    }

    /// Writes the CA bundle (system CAs + the fleet's CA) and `certs.d/<host>/ca.crt`.
    pub fn write_trust(&self, fleet_ca_pem: &str, hosts: &[String]) -> Result<(), SandboxError> {
        let system = fs::read_to_string(SYSTEM_CA_BUNDLE).unwrap_or_default();
        let mut bundle = system;
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(fleet_ca_pem);
        write(&self.ca_bundle, bundle.as_bytes())?;
        for h in hosts {
            let dir = self.certs_d.join(h);
            fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
            write(&dir.join("ca.crt"), fleet_ca_pem.as_bytes())?;
        }
        Ok(())
    }

    /// The environment every process of this cell starts with (nothing inherited but PATH
    /// and locale): its own HOME, DOCKER_CONFIG, XDG dirs, TMPDIR, CA bundle and run id.
    pub fn env(&self, run_id: &str) -> Vec<(String, String)> {
        let p = |p: &Path| p.display().to_string();
        let mut env = vec![
            ("HOME".into(), p(&self.home)),
            ("DOCKER_CONFIG".into(), p(&self.docker_config)),
            ("XDG_CONFIG_HOME".into(), p(&self.xdg_config)),
            ("XDG_CACHE_HOME".into(), p(&self.xdg_cache)),
            ("XDG_DATA_HOME".into(), p(&self.xdg_data)),
            ("XDG_RUNTIME_DIR".into(), p(&self.xdg_runtime)),
            ("TMPDIR".into(), p(&self.tmp)),
            // Go's x509 reads SSL_CERT_FILE instead of the system locations (clients.md §0.4)
            ("SSL_CERT_FILE".into(), p(&self.ca_bundle)),
            (
                "REGISTRY_AUTH_FILE".into(),
                p(&self.docker_config.join("config.json")),
            ),
            (RUN_ID_VAR.into(), run_id.into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        env.push(("PATH".into(), path));
        env
    }
}

/// The hosts file for `entries`, or the guard's refusal.
pub fn hosts_file_text(entries: &[(String, IpAddr)]) -> Result<String, SandboxError> {
    let mut text = String::from(
        "# written by regcompat for one cell; bind-mounted over /etc/hosts\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for (hostname, addr) in entries {
        if !addr.is_loopback() {
            return Err(SandboxError::NotLoopback {
                hostname: hostname.clone(),
                addr: *addr,
            });
        }
        if hostname.is_empty()
            || !hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(SandboxError::BadHostname {
                hostname: hostname.clone(),
            });
        }
        text.push_str(&format!("{addr}\t{hostname}\n"));
    }
    Ok(text)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    }
    fs::write(path, bytes).map_err(io_err("cannot write", path))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    write(path, bytes)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot chmod", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_text_lists_loopback_entries() {
        let t = hosts_file_text(&[("a.test".into(), "127.0.3.2".parse().unwrap())]).unwrap();
        assert!(t.contains("127.0.3.2\ta.test\n"));
    }
}
