//! Client drivers: one module per client. A driver says which abstract actions its client
//! has and turns each into a command line; it never decides an outcome — the real process
//! does. An action a client lacks makes the cell `not-applicable`.

pub mod crane;
pub mod skopeo;

use crate::sandbox::Sandbox;
use crate::scenario::Action;
use std::path::{Path, PathBuf};

/// A step with its placeholders resolved.
#[derive(Debug, Clone)]
pub enum ResolvedAction {
    Login {
        registry: String,
        username: String,
        password: String,
    },
    Pull {
        image: String,
    },
    /// Push the OCI layout at `layout` (written by the runner) to `to`.
    Push {
        layout: PathBuf,
        to: String,
    },
    Copy {
        from: String,
        to: String,
    },
}

pub trait Driver: Send + Sync {
    /// The client's name in `clients.toml` (`crane`).
    fn name(&self) -> &'static str;
    /// The binary to run, among the installed client's binaries.
    fn binary(&self) -> &'static str;
    fn supports(&self, action: Action) -> bool;
    /// The argv (binary first) for one action.
    fn argv(&self, bin: &Path, sandbox: &Sandbox, action: &ResolvedAction) -> Vec<String>;
}

/// Every driver the runner knows.
pub fn all() -> Vec<Box<dyn Driver>> {
    vec![Box::new(crane::Crane), Box::new(skopeo::Skopeo)]
}

pub fn by_name(name: &str) -> Option<Box<dyn Driver>> {
    all().into_iter().find(|d| d.name() == name)
}
