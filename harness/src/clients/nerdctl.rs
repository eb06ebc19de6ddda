//! nerdctl against the cell's own containerd, and buildctl + buildkitd for `nerdctl build`
//! (nerdctl runs the `buildctl` it finds on `PATH`: the `buildkit` client's, a tool of this
//! one). nerdctl resolves registries through the cell's hosts directory (`--hosts-dir`, the
//! fleet CA and the scenario's mirrors) and keeps its credentials in
//! `$DOCKER_CONFIG/config.json` — where v2.0.0–v2.0.2 `login` wrote only `host:443`
//! (nerdctl#3748, behaviours.md §3).
//!
//! - `push`: `nerdctl build` of a `FROM scratch` + `COPY` context, then `nerdctl push`;
//! - `copy`: `pull`, `tag`, `push`;
//! - `build-from`: `nerdctl build` (pushed with `nerdctl push` when the step has `to`).

use super::daemons::{self, NAMESPACE};
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction};
use crate::scenario::{Action, ClientSetup};

pub struct Nerdctl;

/// The local name of a build whose step has no `to` (never pushed; `.invalid` cannot
/// resolve).
const LOCAL_BUILD: &str = "regcompat.invalid/build:latest";

impl Nerdctl {
    fn global(cell: &CellEnv) -> Vec<String> {
        let sb = cell.sandbox;
        vec![
            cell.bin(),
            "--debug".into(),
            format!("--address={}", daemons::containerd_socket(cell).display()),
            format!("--namespace={NAMESPACE}"),
            format!("--data-root={}", sb.root.join("nerdctl").display()),
            format!("--hosts-dir={}", sb.root.join("certs.d").display()),
            "--snapshotter=native".into(),
        ]
    }
}

impl Driver for Nerdctl {
    fn name(&self) -> &'static str {
        "nerdctl"
    }

    fn binary(&self) -> &'static str {
        "nerdctl"
    }

    fn supports(&self, action: Action) -> bool {
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_inferred_helper(setup, "nerdctl")
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let n = |args: &[&str]| {
            let mut argv = Self::global(cell);
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            argv
        };
        let buildkit = daemons::buildkitd_socket(cell);
        let build = |tag: &str, ctx: &std::path::Path| {
            n(&[
                "build",
                &format!("--buildkit-host={buildkit}"),
                "--progress=plain",
                "-t",
                tag,
                &ctx.display().to_string(),
            ])
        };
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![n(&["login", "-u", username, "-p", password, registry])],
            ResolvedAction::Pull { image, .. } => vec![n(&["pull", image])],
            ResolvedAction::Push { context, to, .. } => {
                vec![build(to, context), n(&["push", to])]
            }
            ResolvedAction::Copy { from, to } => {
                vec![n(&["pull", from]), n(&["tag", from, to]), n(&["push", to])]
            }
            ResolvedAction::BuildFrom { context, to, .. } => match to {
                Some(to) => vec![build(to, context), n(&["push", to])],
                None => vec![build(LOCAL_BUILD, context)],
            },
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => Vec::new(),
        }
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // The build of the image to push (`FROM scratch`): local, no registry.
        usize::from(matches!(action, ResolvedAction::Push { .. }))
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        vec![
            // Not the machine's /etc/nerdctl/nerdctl.toml.
            (
                "NERDCTL_TOML".into(),
                cell.sandbox.root.join("nerdctl.toml").display().to_string(),
            ),
            ("BUILDKIT_HOST".into(), daemons::buildkitd_socket(cell)),
        ]
    }

    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        let empty = cell.sandbox.root.join("nerdctl.toml");
        std::fs::write(&empty, "").map_err(|e| format!("{}: {e}", empty.display()))?;
        daemons::hosts_dir(cell)?;
        Ok(vec![
            daemons::containerd(cell)?,
            daemons::buildkitd(cell, &cell.tool("buildctl"))?,
        ])
    }
}
