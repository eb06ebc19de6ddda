//! Client drivers: one module per client. A driver says which abstract actions its client
//! has and turns each into a command line; it never decides an outcome — the real process
//! does. An action a client lacks makes the cell `not-applicable`.

pub mod crane;
pub mod docker;
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
    /// Push the OCI layout at `layout` (written by the runner) to `to`; `layer` is the same
    /// image's layer as a `.tar.gz` (for clients that build an image from a rootfs tarball).
    Push {
        layout: PathBuf,
        layer: PathBuf,
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
    /// The commands of one action, run in order until one fails (default: [`Driver::argv`]).
    fn commands(&self, bin: &Path, sandbox: &Sandbox, action: &ResolvedAction) -> Vec<Vec<String>> {
        vec![self.argv(bin, sandbox, action)]
    }
    /// Environment added to the sandbox's for every command.
    fn env(&self, _sandbox: &Sandbox) -> Vec<(String, String)> {
        Vec::new()
    }
    /// A daemon the client needs, started before the first step and stopped after the last
    /// (`bin` is the client's binary; the daemon is found beside it).
    fn daemon(&self, _bin: &Path, _sandbox: &Sandbox) -> Option<Vec<String>> {
        None
    }
    /// A command that exits 0 once the daemon is ready.
    fn daemon_ready(&self, _bin: &Path, _sandbox: &Sandbox) -> Vec<String> {
        Vec::new()
    }
}

/// Every driver the runner knows.
pub fn all() -> Vec<Box<dyn Driver>> {
    vec![
        Box::new(crane::Crane),
        Box::new(skopeo::Skopeo),
        Box::new(docker::Docker),
    ]
}

pub fn by_name(name: &str) -> Option<Box<dyn Driver>> {
    all().into_iter().find(|d| d.name() == name)
}
