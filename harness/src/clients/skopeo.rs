//! skopeo (containers/image): credentials from an auth file in docker's format (we point it
//! at the cell's `config.json`), roots from `SSL_CERT_FILE`.

use super::{CellEnv, Driver, ResolvedAction};
use crate::scenario::{Action, ClientSetup};

pub struct Skopeo;

impl Driver for Skopeo {
    fn name(&self) -> &'static str {
        "skopeo"
    }

    fn binary(&self) -> &'static str {
        "skopeo"
    }

    fn supports(&self, action: Action) -> bool {
        !matches!(action, Action::BuildFrom | Action::BuilderCreate)
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_mirrors(
            setup,
            "skopeo reads mirrors from registries.conf, which the harness does not drive yet",
        )
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (bin, sandbox) = (cell.bin(), cell.sandbox);
        let s = |x: &str| x.to_owned();
        let authfile = format!(
            "--authfile={}",
            sandbox.docker_config.join("config.json").display()
        );
        let argv = match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![
                bin,
                s("login"),
                authfile,
                s("--username"),
                username.clone(),
                s("--password"),
                password.clone(),
                registry.clone(),
            ],
            ResolvedAction::Pull { image, .. } => vec![
                bin,
                s("copy"),
                authfile,
                format!("docker://{image}"),
                format!("oci:{}:pulled", sandbox.work.join("pulled").display()),
            ],
            ResolvedAction::Push { layout, to, .. } => vec![
                bin,
                s("copy"),
                authfile,
                format!("oci:{}", layout.display()),
                format!("docker://{to}"),
            ],
            ResolvedAction::Copy { from, to } => vec![
                bin,
                s("copy"),
                authfile,
                format!("docker://{from}"),
                format!("docker://{to}"),
            ],
            ResolvedAction::BuildFrom { .. } | ResolvedAction::BuilderCreate { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}
