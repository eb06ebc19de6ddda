//! Client drivers: one module per real client. A driver declares which abstract actions
//! the client has, how it is configured in a sandbox (trust, credentials, hostnames,
//! daemons) and how an action becomes its command line.
//!
//! Common to all: HOME/DOCKER_CONFIG/XDG dirs of the cell, `SSL_CERT_FILE` = system CAs +
//! the fleet CA (clients.md §0.4), hostnames through the cell's hosts file bind-mounted
//! over `/etc/hosts`, and `docker-credential-regcompat` first on PATH.

pub mod crane;
pub mod docker;
pub mod skopeo;

use crate::daemon::Daemon;
use crate::process::Isolation;
use crate::sandbox::Sandbox;
use crate::scenario::Action;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every driver this build has, in matrix column order.
pub const DRIVERS: &[&str] = &["crane", "skopeo", "docker"];

pub fn driver(name: &str) -> Option<Box<dyn Driver>> {
    match name {
        "crane" => Some(Box::new(crane::Crane)),
        "skopeo" => Some(Box::new(skopeo::Skopeo)),
        "docker" => Some(Box::new(docker::Docker)),
        _ => None,
    }
}

/// The binaries of one client column (`docker` → docker + dockerd).
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    pub paths: BTreeMap<String, PathBuf>,
}

impl Binaries {
    pub fn get(&self, name: &str) -> String {
        self.paths
            .get(name)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| name.to_owned())
    }
}

/// One step, with templates expanded and credentials resolved.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    /// 0-based index in the scenario (names work files).
    pub index: usize,
    pub action: Action,
    pub image: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// login: the authority.
    pub registry: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Label shown instead of the password in repro lines.
    pub password_label: String,
    pub platform: Option<String>,
    /// push: the image as an OCI layout directory …
    pub oci_layout: Option<PathBuf>,
    /// … and as a `docker save` archive (single-platform sources only).
    pub docker_archive: Option<PathBuf>,
}

/// One command line of a step.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// Added to the cell's environment.
    pub env: Vec<(String, String)>,
    /// (bytes, what repro lines show instead).
    pub stdin: Option<(Vec<u8>, String)>,
}

impl Invocation {
    pub fn new(argv: Vec<String>) -> Self {
        Invocation {
            argv,
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn password_stdin(mut self, step: &ResolvedStep) -> Self {
        let p = step.password.clone().unwrap_or_default();
        self.stdin = Some((p.into_bytes(), format!("<{}>", step.password_label)));
        self
    }
}

/// What the harness gives a driver about the cell.
pub struct CellEnv<'a> {
    pub sandbox: &'a Sandbox,
    pub env: Vec<(String, String)>,
    pub isolation: Isolation,
    pub run_id: &'a str,
    /// Authorities (`host[:port]`) of every registry host the cell serves.
    pub registries: Vec<String>,
}

/// What `prepare` started or wrote for the cell.
#[derive(Debug, Default)]
pub struct Prepared {
    pub daemons: Vec<Daemon>,
    /// Added to every invocation's environment (`DOCKER_HOST`…).
    pub env: Vec<(String, String)>,
}

pub trait Driver: Send + Sync {
    /// The name in clients.toml and in `--client`.
    fn name(&self) -> &'static str;
    /// The binaries it needs from the client's install.
    fn binaries(&self) -> &'static [&'static str];
    /// The abstract actions it can perform.
    fn capabilities(&self) -> &'static [Action];
    fn supports(&self, action: Action) -> bool {
        self.capabilities().contains(&action)
    }
    /// Whether this client can do this particular step (beyond its action), else why not.
    fn applicable(&self, _step: &crate::scenario::Step) -> Result<(), String> {
        Ok(())
    }
    /// Start daemons and write client configuration files for the cell.
    fn prepare(&self, _cell: &CellEnv, _bins: &Binaries) -> Result<Prepared, String> {
        Ok(Prepared::default())
    }
    /// The command lines of one step, run in order (the step fails at the first failure).
    fn invocations(&self, step: &ResolvedStep, cell: &CellEnv, bins: &Binaries) -> Vec<Invocation>;
}

fn s(v: &str) -> String {
    v.to_owned()
}
