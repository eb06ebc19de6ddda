//! docker CLI + the cell's own dockerd (Debian `docker.io`). The CLI talks to the daemon
//! at `DOCKER_HOST=unix://<cell>/docker.sock`; registry traffic comes from the daemon,
//! which trusts `/etc/docker/certs.d/<host>/ca.crt` (the cell's copy is bind-mounted over
//! `/etc/docker` in the daemon's private mount namespace, see `crate::daemon`).

use super::{CellEnv, Driver, Invocation, ResolvedStep, destination, login_parts};
use crate::scenario::Action;

pub struct Docker;

/// The daemon socket of a cell.
pub fn socket(cell: &CellEnv<'_>) -> std::path::PathBuf {
    cell.sandbox.root.join("docker.sock")
}

impl Driver for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::Copy]
    }

    fn needs_daemon(&self) -> bool {
        true
    }

    fn invocations(
        &self,
        step: &ResolvedStep,
        cell: &CellEnv<'_>,
    ) -> Result<Vec<Invocation>, String> {
        let docker = cell.binary("docker")?;
        let host = format!("unix://{}", socket(cell).display());
        let cmd = |args: &[&str]| {
            let mut i = Invocation::new(docker, args);
            i.env.insert("DOCKER_HOST".into(), host.clone());
            i
        };
        Ok(match step.action {
            Action::Login => {
                let (u, p) = login_parts(step)?;
                vec![cmd(&["login", "-u", u, "-p", p, &step.image])]
            }
            Action::Pull => vec![cmd(&["pull", &step.image])],
            Action::Push => vec![
                cmd(&["import", &cell.layer_tar.display().to_string(), &step.image]),
                cmd(&["push", &step.image]),
            ],
            Action::Copy => {
                let to = destination(step)?;
                vec![
                    cmd(&["pull", &step.image]),
                    cmd(&["tag", &step.image, to]),
                    cmd(&["push", to]),
                ]
            }
            Action::BuildFrom => return Err("build-from is not wired for docker yet".into()),
        })
    }
}
