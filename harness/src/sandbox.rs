//! One cell's sandbox: a fresh HOME, DOCKER_CONFIG, XDG directories and work directory, a
//! hosts file mapping the scenario's hostnames to the fleet's loopback addresses, and a CA
//! bundle (the system's roots plus the fleet's CA). Client processes see the hosts file as
//! `/etc/hosts` through a bind mount in their own private mount namespace
//! ([`crate::process`]); the machine's `/etc/hosts` is never touched.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The system roots Go clients would use, to which the fleet's CA is appended.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("refusing to run: {hostname} would resolve to {addr}, outside {allowed}")]
    NotLoopback {
        hostname: String,
        addr: IpAddr,
        allowed: &'static str,
    },
    #[error("refusing to run: {0:?} is not a hostname")]
    BadHostname(String),
    #[error("sandbox {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub home: PathBuf,
    pub docker_config: PathBuf,
    pub work: PathBuf,
    pub hosts_file: PathBuf,
    pub ca_bundle: PathBuf,
    /// A short directory for unix sockets (their paths are limited to 107 bytes, too short
    /// for paths under `root`): `/tmp/rc-<hash of root>`.
    pub sockets: PathBuf,
    /// The cell's private network namespace ([`crate::network`]); `None` on loopback. With
    /// it, the hosts file may map names to RFC 5737 addresses, which exist only inside it.
    pub netns: Option<Arc<OwnedFd>>,
}

impl Sandbox {
    /// Creates the directories under `root` (which must not exist yet or be empty).
    pub fn create(root: &Path) -> Result<Self, SandboxError> {
        let s = Self::at(root);
        s.make_dirs()?;
        Ok(s)
    }

    /// The sandbox's paths under `root`, without creating anything.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            home: root.join("home"),
            docker_config: root.join("home/.docker"),
            work: root.join("work"),
            hosts_file: root.join("hosts"),
            ca_bundle: root.join("ca-bundle.pem"),
            sockets: std::env::temp_dir().join(format!("rc-{:08x}", short_hash(root))),
            netns: None,
        }
    }

    fn make_dirs(&self) -> Result<(), SandboxError> {
        let (s, root) = (self, &self.root);
        for dir in [
            &s.home,
            &s.docker_config,
            &s.work,
            &root.join("xdg/config"),
            &root.join("xdg/cache"),
            &root.join("xdg/data"),
            &root.join("xdg/runtime"),
            &s.sockets,
        ] {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the hosts file; refuses any hostname that would resolve outside loopback (or,
    /// in a private network, outside loopback and RFC 5737).
    pub fn write_hosts(&self, entries: &[(String, IpAddr)]) -> Result<(), SandboxError> {
        let text = hosts_file_in(entries, self.netns.is_some())?;
        self.write(&self.hosts_file, text.as_bytes())
    }

    /// The system CA bundle (if the machine has one) followed by `extra_ca_pem`.
    pub fn write_ca_bundle(&self, extra_ca_pem: &Path) -> Result<(), SandboxError> {
        let mut bundle = std::fs::read(SYSTEM_CA_BUNDLE).unwrap_or_default();
        let extra = std::fs::read(extra_ca_pem).map_err(|source| SandboxError::Io {
            path: extra_ca_pem.to_owned(),
            source,
        })?;
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(&extra);
        self.write(&self.ca_bundle, &bundle)
    }

    pub fn write(&self, path: &Path, data: &[u8]) -> Result<(), SandboxError> {
        std::fs::write(path, data).map_err(|source| SandboxError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The environment every client process of the cell gets (on top of a cleared one).
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |p: &Path| p.display().to_string();
        vec![
            ("HOME".into(), p(&self.home)),
            ("DOCKER_CONFIG".into(), p(&self.docker_config)),
            ("XDG_CONFIG_HOME".into(), p(&self.root.join("xdg/config"))),
            ("XDG_CACHE_HOME".into(), p(&self.root.join("xdg/cache"))),
            ("XDG_DATA_HOME".into(), p(&self.root.join("xdg/data"))),
            ("XDG_RUNTIME_DIR".into(), p(&self.root.join("xdg/runtime"))),
            ("TMPDIR".into(), p(&self.work)),
            // Go clients (crane, skopeo, docker) read their roots from here on Linux.
            ("SSL_CERT_FILE".into(), p(&self.ca_bundle)),
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }
}

/// Removes the sandbox and its socket directory.
impl Sandbox {
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.sockets);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn short_hash(path: &Path) -> u32 {
    // FNV-1a: stable, tiny, good enough to keep parallel cells apart.
    let mut h: u32 = 0x811c_9dc5;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The hosts file text for `entries`, with localhost first; refuses non-loopback addresses.
pub fn hosts_file(entries: &[(String, IpAddr)]) -> Result<String, SandboxError> {
    hosts_file_in(entries, false)
}

/// [`hosts_file`] for a cell in a private network (`private_network`): RFC 5737 addresses
/// are allowed too — they exist only inside the cell's namespace.
pub fn hosts_file_in(
    entries: &[(String, IpAddr)],
    private_network: bool,
) -> Result<String, SandboxError> {
    use fake_registry::addresses::{permitted, permitted_text};
    let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
    for (hostname, addr) in entries {
        if !permitted(*addr, private_network) {
            return Err(SandboxError::NotLoopback {
                hostname: hostname.clone(),
                addr: *addr,
                allowed: permitted_text(private_network),
            });
        }
        if hostname.is_empty()
            || !hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(SandboxError::BadHostname(hostname.clone()));
        }
        text.push_str(&format!("{addr}\t{hostname}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_guard_refuses_a_non_loopback_address() {
        let e = hosts_file(&[
            ("ok.example.com".into(), "127.0.0.2".parse().unwrap()),
            ("evil.example.com".into(), "93.184.216.34".parse().unwrap()),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("evil.example.com"), "{e}");
        assert!(
            hosts_file(&[("x.example.com".into(), "::1".parse().unwrap())]).is_ok(),
            "::1 is loopback"
        );
    }

    #[test]
    fn documentation_addresses_only_in_a_private_network() {
        let entry = [("acr.example".to_owned(), "198.51.100.2".parse().unwrap())];
        assert!(hosts_file(&entry).is_err());
        assert!(hosts_file_in(&entry, true).is_ok());
        let out = [("x.example".to_owned(), "93.184.216.34".parse().unwrap())];
        assert!(hosts_file_in(&out, true).is_err());
    }

    #[test]
    fn hosts_file_maps_every_hostname() {
        let t = hosts_file(&[(
            "myregistry.azurecr.io".into(),
            "127.0.10.2".parse().unwrap(),
        )])
        .unwrap();
        assert!(t.contains("127.0.10.2\tmyregistry.azurecr.io\n"));
        assert!(t.starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn a_hostname_with_whitespace_cannot_inject_entries() {
        assert!(hosts_file(&[("a.com 1.2.3.4".into(), "127.0.0.2".parse().unwrap())]).is_err());
    }
}
