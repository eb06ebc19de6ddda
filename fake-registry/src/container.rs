//! The fake as a container, for test suites in any language (feature `testcontainers`).
//!
//! The image is the `fake-registry` binary and exactly the shared objects it links (its
//! `ldd` list: the dynamic loader, libc, libm, libgcc_s) in an image with nothing else,
//! made with the engine's `import` from a tar — no base image, so nothing is pulled
//! (`cargo xtask image` builds and imports it; [`rootfs_tar`] is what it imports). Why not a
//! static musl build: the musl target is not installable offline here, and the dynamically
//! linked binary plus four libraries is as small.
//!
//! [`FakeRegistryContainer`] starts that image with testcontainers on the host network (the
//! fleet binds its loopback addresses on port 443, which a port mapping cannot express),
//! with the fleet's TOML and its state directory (the generated CA) in a bind-mounted
//! directory, and waits for the ready line — never a sleep.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_registry::container::ContainerError> {
//! use fake_registry::container::FakeRegistryContainer;
//! let registry = FakeRegistryContainer::acr("myregistry.azurecr.io")?.start().await?;
//! let acr = registry.host("myregistry.azurecr.io").expect("served");
//! println!("{} on {}, CA: {} bytes", acr.hostname, acr.addr, registry.ca_pem().len());
//! # Ok(()) }
//! ```

use serde::Deserialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, Image, ImageExt};

pub use crate::image::{IMAGE_NAME, image_reference, rootfs_tar};

/// Where the fleet's directory (its TOML, `state/` with the CA) is mounted.
const MOUNT: &str = "/regcompat";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the container engine: {0}")]
    Engine(#[from] testcontainers::TestcontainersError),
    #[error("the ready line: {0}")]
    Ready(String),
}

/// A fleet to run in a container: its TOML (docs/fleet.md) in a directory of its own.
#[derive(Debug, Clone)]
pub struct FakeRegistryContainer {
    dir: PathBuf,
    mounts: Vec<Mount>,
    tag: String,
}

impl FakeRegistryContainer {
    /// A fleet from its TOML (the format: docs/fleet.md). Hosts get loopback addresses
    /// from 127.0.0.2 unless the file says otherwise.
    pub fn from_config(toml: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "fake-registry-container-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("state"))?;
        std::fs::write(dir.join("fleet.toml"), toml)?;
        let mounts = vec![Mount::bind_mount(dir.display().to_string(), MOUNT)];
        Ok(Self {
            dir,
            mounts,
            tag: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }

    /// Azure Container Registry on `hostname`: a service principal (`sp`, Basic
    /// `77777777-…` / [`ACR_SP_SECRET`]), an `az acr login` identity token (`identity`,
    /// [`ACR_IDENTITY_TOKEN`], a refresh token), both granted pull and push everywhere, and
    /// a seeded image `base/run:1`.
    pub fn acr(hostname: &str) -> std::io::Result<Self> {
        Self::from_config(&format!(
            "[[host]]\nname = \"acr\"\nhostname = \"{hostname}\"\n[host.profile]\nkind = \"acr\"\n\
             [[host.principal]]\nname = \"sp\"\nkind = \"service-principal\"\n\
             username = \"{ACR_SP_USERNAME}\"\nsecret = \"{ACR_SP_SECRET}\"\ngrants = [\"**:pull,push\"]\n\
             [[host.principal]]\nname = \"identity\"\nkind = \"refresh-token\"\n\
             secret = \"{ACR_IDENTITY_TOKEN}\"\ngrants = [\"**:pull,push\"]\n\
             [[host.seed]]\nrepository = \"base/run\"\ntag = \"1\"\n"
        ))
    }

    /// Starts the container and returns once the fleet accepts connections.
    pub async fn start(self) -> Result<RunningFakeRegistry, ContainerError> {
        let dir = self.dir.clone();
        // Network mode `host`, never an engine network: the engine creates no bridge.
        let container = self
            .with_network("host")
            .with_startup_timeout(std::time::Duration::from_secs(60))
            .start()
            .await?;
        let mut stdout = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut container.stdout(false), &mut stdout).await?;
        let ready = ready_line(&String::from_utf8_lossy(&stdout))?;
        let ca_pem = std::fs::read(dir.join("state/ca.pem"))?;
        Ok(RunningFakeRegistry {
            container,
            hosts: ready.hosts,
            admin: ready.admin,
            ca_pem,
            dir,
        })
    }
}

/// The identity of the service principal [`FakeRegistryContainer::acr`] creates.
pub const ACR_SP_USERNAME: &str = "77777777-2222-3333-4444-555555555555";
/// Its secret (a test value).
pub const ACR_SP_SECRET: &str = "container-sp-S3cret~value";
/// The `az acr login` identity token (an ACR refresh token) it accepts.
pub const ACR_IDENTITY_TOKEN: &str = "container-identity-token-0123456789";

impl Image for FakeRegistryContainer {
    fn name(&self) -> &str {
        IMAGE_NAME
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stdout("{\"ready\"")]
    }

    fn mounts(&self) -> impl IntoIterator<Item = &Mount> {
        &self.mounts
    }

    fn cmd(&self) -> impl IntoIterator<Item = impl Into<Cow<'_, str>>> {
        [
            "serve",
            "--config",
            "/regcompat/fleet.toml",
            "--state-dir",
            "/regcompat/state",
        ]
    }
}

/// One host of the running fleet, as its ready line gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub hostname: String,
    pub addr: SocketAddr,
    pub url: String,
    pub role: String,
}

#[derive(Deserialize)]
struct ReadyLine {
    ready: Ready,
}

#[derive(Deserialize)]
struct Ready {
    hosts: Vec<Endpoint>,
    admin: Option<String>,
}

fn ready_line(stdout: &str) -> Result<Ready, ContainerError> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"ready\""))
        .ok_or_else(|| ContainerError::Ready(format!("none in {stdout:?}")))?;
    serde_json::from_str::<ReadyLine>(line)
        .map(|r| r.ready)
        .map_err(|e| ContainerError::Ready(format!("{e}: {line}")))
}

/// A started fleet: its hosts, CA and admin API; the container is stopped and removed,
/// and its directory deleted, when this is dropped.
pub struct RunningFakeRegistry {
    container: ContainerAsync<FakeRegistryContainer>,
    hosts: Vec<Endpoint>,
    admin: Option<String>,
    ca_pem: Vec<u8>,
    dir: PathBuf,
}

impl RunningFakeRegistry {
    pub fn hosts(&self) -> &[Endpoint] {
        &self.hosts
    }

    /// The host serving `hostname` (registries, realms and storage hosts alike).
    pub fn host(&self, hostname: &str) -> Option<&Endpoint> {
        self.hosts
            .iter()
            .find(|h| h.hostname.eq_ignore_ascii_case(hostname))
    }

    /// The fleet's generated CA certificate (PEM): what a client must trust.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The admin API (`GET {admin}/_regcompat/journal`…), when the fleet has one.
    pub fn admin_url(&self) -> Option<&str> {
        self.admin.as_deref()
    }

    pub fn container(&self) -> &ContainerAsync<FakeRegistryContainer> {
        &self.container
    }
}

impl Drop for RunningFakeRegistry {
    fn drop(&mut self) {
        // The container is removed by its own Drop; the directory holds the CA key.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_is_found_among_logs() {
        let out = "starting\n{\"ready\":{\"ca\":\"/regcompat/state/ca.pem\",\"hosts\":[{\"name\":\"acr\",\"hostname\":\"a.example.com\",\"addr\":\"127.0.0.2:443\",\"url\":\"https://a.example.com\",\"profile\":\"acr/1\",\"tls\":true,\"role\":\"registry\"}],\"admin\":null,\"pid\":1}}\n";
        let ready = ready_line(out).unwrap();
        assert_eq!(ready.hosts[0].addr, "127.0.0.2:443".parse().unwrap());
        assert!(ready.admin.is_none());
        assert!(ready_line("nothing").is_err());
    }
}
