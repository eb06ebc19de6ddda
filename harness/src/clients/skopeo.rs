//! skopeo (containers/image): credentials through `--authfile $DOCKER_CONFIG/config.json`
//! so every client of a cell reads the same docker-format file (auths, credHelpers);
//! trust from `SSL_CERT_FILE` (Go's system pool).

use super::{CellEnv, Driver, Invocation, ResolvedStep, destination, login_parts};
use crate::scenario::Action;

pub struct Skopeo;

impl Driver for Skopeo {
    fn name(&self) -> &'static str {
        "skopeo"
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::Copy]
    }

    fn invocations(
        &self,
        step: &ResolvedStep,
        cell: &CellEnv<'_>,
    ) -> Result<Vec<Invocation>, String> {
        let skopeo = cell.binary("skopeo")?;
        let authfile = cell
            .sandbox
            .docker_config
            .join("config.json")
            .display()
            .to_string();
        let work = cell.sandbox.work.display().to_string();
        let docker = |r: &str| format!("docker://{r}");
        let inv = match step.action {
            Action::Login => {
                let (u, p) = login_parts(step)?;
                Invocation::new(
                    skopeo,
                    &[
                        "login",
                        "--authfile",
                        &authfile,
                        "-u",
                        u,
                        "-p",
                        p,
                        &step.image,
                    ],
                )
            }
            Action::Pull => Invocation::new(
                skopeo,
                &[
                    "copy",
                    "--authfile",
                    &authfile,
                    &docker(&step.image),
                    &format!("oci:{work}/pulled:latest"),
                ],
            ),
            Action::Push => Invocation::new(
                skopeo,
                &[
                    "copy",
                    "--authfile",
                    &authfile,
                    &format!("oci:{}:latest", cell.local_image.display()),
                    &docker(&step.image),
                ],
            ),
            Action::Copy => Invocation::new(
                skopeo,
                &[
                    "copy",
                    "--authfile",
                    &authfile,
                    &docker(&step.image),
                    &docker(destination(step)?),
                ],
            ),
            Action::BuildFrom => return Err("skopeo cannot build".into()),
        };
        Ok(vec![inv])
    }
}
