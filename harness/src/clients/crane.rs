//! crane (go-containerregistry): reads `$DOCKER_CONFIG/config.json` (auths, credsStore,
//! credHelpers) and trusts `SSL_CERT_FILE` (Go's system pool), both set by the sandbox.

use super::{CellEnv, Driver, Invocation, ResolvedStep, destination, login_parts};
use crate::scenario::Action;

pub struct Crane;

impl Driver for Crane {
    fn name(&self) -> &'static str {
        "crane"
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::Copy]
    }

    fn invocations(
        &self,
        step: &ResolvedStep,
        cell: &CellEnv<'_>,
    ) -> Result<Vec<Invocation>, String> {
        let crane = cell.binary("crane")?;
        let work = cell.sandbox.work.display().to_string();
        let inv = match step.action {
            Action::Login => {
                let (u, p) = login_parts(step)?;
                Invocation::new(crane, &["auth", "login", &step.image, "-u", u, "-p", p])
            }
            Action::Pull => Invocation::new(
                crane,
                &[
                    "pull",
                    "--format",
                    "oci",
                    &step.image,
                    &format!("{work}/pulled"),
                ],
            ),
            Action::Push => Invocation::new(
                crane,
                &["push", &cell.local_image.display().to_string(), &step.image],
            ),
            Action::Copy => Invocation::new(crane, &["copy", &step.image, destination(step)?]),
            Action::BuildFrom => return Err("crane cannot build".into()),
        };
        Ok(vec![inv])
    }
}
