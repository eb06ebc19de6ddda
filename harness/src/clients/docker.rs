//! docker CLI with the cell's own dockerd (Debian `docker.io`). The daemon does the registry
//! traffic: it runs in the cell's private mount namespace (the cell's hosts file) with
//! `--bridge=none --iptables=false`, its own data root, exec root and socket, the vfs storage
//! driver (works anywhere, no kernel overlay needed) and `SSL_CERT_FILE` = system roots + the
//! fleet CA (the daemon's registry TLS starts from the system pool, which Go reads from
//! there). The CLI reads `$DOCKER_CONFIG/config.json` and sends the credentials to the daemon.

use super::daemons;
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};

pub struct Docker;

impl Driver for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn binary(&self) -> &'static str {
        "docker"
    }

    fn supports(&self, action: Action) -> bool {
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        // `registry-mirrors` (daemon.json) mirror Docker Hub, registries only: no other
        // upstream, no path (https://docs.docker.com/docker-hub/image-library/mirror/).
        let other = setup
            .mirrored_hostnames
            .iter()
            .any(|h| !h.eq_ignore_ascii_case(super::DOCKER_HUB_HOST))
            || setup
                .mirrors
                .values()
                .flatten()
                .any(|m| m.get_ref().contains('/'));
        other
            .then(|| {
                "the scenario mirrors a registry other than Docker Hub, or under a path; \
                 dockerd's registry-mirrors mirror Docker Hub only, by registry \
                 (https://docs.docker.com/docker-hub/image-library/mirror/)"
                    .to_owned()
            })
            .or_else(|| super::no_inferred_helper(setup, "docker"))
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let bin = cell.bin();
        let cmd = |args: &[&str]| cmd(&bin, args);
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![cmd(&["login", "-u", username, "-p", password, registry])],
            ResolvedAction::Pull { image, .. } => vec![cmd(&["pull", image])],
            ResolvedAction::Push { layer, to, .. } => vec![
                cmd(&["import", &layer.display().to_string(), to]),
                cmd(&["push", to]),
            ],
            ResolvedAction::Copy { from, to } => vec![
                cmd(&["pull", from]),
                cmd(&["tag", from, to]),
                cmd(&["push", to]),
            ],
            // The classic builder of dockerd 20.10 (no BuildKit): FROM + COPY need no
            // container to run.
            ResolvedAction::BuildFrom { context, to, .. } => {
                let ctx = context.display().to_string();
                match to {
                    Some(to) => vec![cmd(&["build", "-t", to, &ctx]), cmd(&["push", to])],
                    None => vec![cmd(&["build", &ctx])],
                }
            }
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => Vec::new(),
        }
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // `docker import` of the generated layer: local, no registry.
        usize::from(matches!(action, ResolvedAction::Push { .. }))
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".into(), daemons::docker_host(cell)),
            ("DOCKER_BUILDKIT".into(), "0".into()),
        ]
    }

    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        Ok(vec![daemons::dockerd(cell, &cell.bin(), true)?])
    }
}
