//! buildctl against the cell's own buildkitd (client `buildkit`). buildctl reads
//! `$DOCKER_CONFIG/config.json` and answers the daemon's credential requests by the host the
//! daemon contacts (behaviours.md §2.2, §3.2) — the behaviour the mirror and GitLab sub-path
//! scenarios exist for. buildctl has no `pull`, `push` or `login` of its own, so:
//!
//! - `pull`: a build of `FROM <image>` + `COPY` with no output — buildkitd resolves the image
//!   and fetches its layers, nothing is exported;
//! - `push`: a build `FROM scratch` + `COPY`, exported with `type=image,push=true`;
//! - `build-from`: the scenario's base, pushed when the step has `to`;
//! - `copy`: a build of `FROM <image>` alone, exported with `type=image,push=true` to the
//!   destination — how a buildkit user copies an image between registries (the base's
//!   layers and config, re-exported; buildkitd resolves both references);
//! - `login` is not a buildctl action: setup logins reach it as `docker login` stores them.
//!
//! `--debug` output (buildctl's and, in the cell's log, buildkitd's) is the evidence.

use super::daemons;
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};
use std::path::{Path, PathBuf};

pub struct Buildctl;

/// `buildctl build` of the Dockerfile in `context`, pushed to `to` if given.
pub fn build(buildctl: &str, addr: &str, context: &Path, to: Option<&str>) -> Vec<String> {
    let ctx = context.display().to_string();
    let mut argv = cmd(
        buildctl,
        &[
            "--debug",
            "--addr",
            addr,
            "build",
            "--progress=plain",
            "--frontend=dockerfile.v0",
            &format!("--local=context={ctx}"),
            &format!("--local=dockerfile={ctx}"),
        ],
    );
    if let Some(to) = to {
        argv.push(format!("--output=type=image,name={to},push=true"));
    }
    argv
}

impl Driver for Buildctl {
    fn name(&self) -> &'static str {
        "buildkit"
    }

    fn binary(&self) -> &'static str {
        "buildctl"
    }

    fn supports(&self, action: Action) -> bool {
        matches!(
            action,
            Action::Pull | Action::Push | Action::BuildFrom | Action::Copy
        )
    }

    fn prepare(&self, cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
        if let ResolvedAction::Copy { from, .. } = action {
            let dir = copy_context(cell);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("Dockerfile"), format!("FROM {from}\n")))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_inferred_helper(setup, "buildctl")
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (bin, addr) = (cell.bin(), daemons::buildkitd_socket(cell));
        match action {
            ResolvedAction::Pull { context, .. } => vec![build(&bin, &addr, context, None)],
            ResolvedAction::Push { context, to, .. } => {
                vec![build(&bin, &addr, context, Some(to))]
            }
            ResolvedAction::BuildFrom { context, to, .. } => {
                vec![build(&bin, &addr, context, to.as_deref())]
            }
            ResolvedAction::Copy { to, .. } => {
                vec![build(&bin, &addr, &copy_context(cell), Some(to))]
            }
            ResolvedAction::Login { .. }
            | ResolvedAction::BuilderCreate { .. }
            | ResolvedAction::AppBuild { .. } => Vec::new(),
        }
    }

    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        Ok(vec![daemons::buildkitd(cell, &cell.bin())?])
    }
}

/// The build context of a copy: a Dockerfile `FROM <image>` and nothing else.
fn copy_context(cell: &CellEnv) -> PathBuf {
    cell.sandbox.work.join("copy-context")
}
