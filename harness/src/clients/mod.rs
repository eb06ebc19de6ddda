//! Client drivers: one module per real client. A driver declares the actions it can do
//! and turns an abstract step into command lines; it never decides a verdict.

mod crane;
pub mod docker;
mod skopeo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::sandbox::Sandbox;
use crate::scenario::Action;

pub use crane::Crane;
pub use docker::Docker;
pub use skopeo::Skopeo;

/// A step with its host placeholders resolved to the cell's registries.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    pub action: Action,
    /// `login`: `host[:port]`; others: a full reference.
    pub image: String,
    pub to: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// One command line of a step (a step may need several, e.g. docker import + push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the sandbox environment.
    pub env: BTreeMap<String, String>,
}

impl Invocation {
    pub fn new(program: &Path, args: &[&str]) -> Invocation {
        Invocation {
            program: program.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
        }
    }
}

/// What a driver needs to know about its cell.
pub struct CellEnv<'a> {
    pub sandbox: &'a Sandbox,
    /// The client's binaries by name (`docker`, `dockerd`, `crane`…).
    pub binaries: &'a BTreeMap<String, PathBuf>,
    /// The OCI image layout the harness writes for pushes (`<work>/local-image`).
    pub local_image: &'a Path,
    /// A plain layer tarball for clients that import one (`docker import`).
    pub layer_tar: &'a Path,
}

impl CellEnv<'_> {
    pub fn binary(&self, name: &str) -> Result<&Path, String> {
        self.binaries
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("binary `{name}` not provided by the client's install"))
    }
}

/// One real client.
pub trait Driver: Send + Sync {
    /// The manifest name (`crane`, `skopeo`, `docker`).
    fn name(&self) -> &'static str;
    /// The abstract actions it can perform; others are `not-applicable`.
    fn capabilities(&self) -> &'static [Action];
    /// Whether the cell needs a daemon ([`crate::daemon`]) started before the steps.
    fn needs_daemon(&self) -> bool {
        false
    }
    /// The command lines of one step.
    fn invocations(
        &self,
        step: &ResolvedStep,
        cell: &CellEnv<'_>,
    ) -> Result<Vec<Invocation>, String>;
}

/// The driver for a client name, if there is one.
pub fn driver(name: &str) -> Option<Box<dyn Driver>> {
    match name {
        "crane" => Some(Box::new(Crane)),
        "skopeo" => Some(Box::new(Skopeo)),
        "docker" => Some(Box::new(Docker)),
        _ => None,
    }
}

/// Names of the clients that have drivers, in matrix order.
pub const DRIVERS: &[&str] = &["crane", "skopeo", "docker"];

fn login_parts(step: &ResolvedStep) -> Result<(&str, &str), String> {
    match (&step.username, &step.password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("login step without username and password".into()),
    }
}

fn destination(step: &ResolvedStep) -> Result<&str, String> {
    step.to
        .as_deref()
        .ok_or_else(|| "copy step without `to`".to_string())
}
