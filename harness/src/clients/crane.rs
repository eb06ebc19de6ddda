//! crane (go-containerregistry): reads `$DOCKER_CONFIG/config.json` (auths, identitytoken,
//! credential helpers) and the system roots (`SSL_CERT_FILE`).

use super::{CellEnv, Driver, ResolvedAction};
use crate::scenario::{Action, ClientSetup};

pub struct Crane;

impl Driver for Crane {
    fn name(&self) -> &'static str {
        "crane"
    }

    fn binary(&self) -> &'static str {
        "crane"
    }

    fn supports(&self, action: Action) -> bool {
        !matches!(action, Action::BuildFrom | Action::BuilderCreate)
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_mirrors(setup, "crane has no registry-mirror configuration")
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (bin, sandbox) = (cell.bin(), cell.sandbox);
        let s = |x: &str| x.to_owned();
        let argv = match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![
                bin,
                s("auth"),
                s("login"),
                registry.clone(),
                s("-u"),
                username.clone(),
                s("-p"),
                password.clone(),
            ],
            // An OCI layout handles single images and indexes alike.
            ResolvedAction::Pull { image, .. } => vec![
                bin,
                s("pull"),
                s("--format=oci"),
                image.clone(),
                sandbox.work.join("pulled").display().to_string(),
            ],
            ResolvedAction::Push { layout, to, .. } => {
                vec![bin, s("push"), layout.display().to_string(), to.clone()]
            }
            ResolvedAction::Copy { from, to } => vec![bin, s("copy"), from.clone(), to.clone()],
            ResolvedAction::BuildFrom { .. } | ResolvedAction::BuilderCreate { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}
