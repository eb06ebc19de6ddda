//! buildah (Debian 1.28.2: containers/image 5.23, containers/storage), rootful. Same
//! per-cell files and binds as podman (`podman::ContainersFiles`: own storage root and short
//! runroot, vfs, `containers.conf`, `storage.conf`, `registries.conf` with the cell's
//! mirrors — also given as `--registries-conf` —, `policy.json`, `--authfile` = the cell's
//! `config.json`, private `/var/lib/containers/cache`, `/run/containers` and `/dev/shm`).
//! buildah's global flags come before the subcommand and every option before the image
//! argument (it stops parsing flags at the first argument).
//!
//! Actions: login (`buildah login`), pull (`buildah pull`), push (the runner's OCI layout
//! loaded with `buildah pull oci:<layout>:latest` and tagged — buildah pushes images from
//! its local storage —, then `buildah push <to>`; the load and the tag are preparation; the
//! layout is first copied to a lowercase path, `podman::layout_copy`),
//! copy (`pull`, `tag`, `push`), build-from (`buildah bud -t <to>` then `buildah push <to>`;
//! without `to` just `buildah bud`, which pulls the base). The build context has no `RUN`,
//! so no container runtime starts.

use super::podman::{ContainersFiles, layout_copy, layout_image_id, prepare_layout};
use super::{CellEnv, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};
use std::path::PathBuf;

pub struct Buildah;

impl Driver for Buildah {
    fn name(&self) -> &'static str {
        "buildah"
    }

    fn binary(&self) -> &'static str {
        "buildah"
    }

    fn supports(&self, action: Action) -> bool {
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_inferred_helper(setup, "buildah")
    }

    fn prepare(&self, cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
        ContainersFiles::of(cell).write(cell.mirrors)?;
        prepare_layout(cell, action)
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        ContainersFiles::of(cell).env()
    }

    fn binds(&self, cell: &CellEnv) -> Vec<(PathBuf, PathBuf)> {
        ContainersFiles::binds(cell)
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // `pull oci:<layout>` and `tag`: local storage only.
        if matches!(action, ResolvedAction::Push { .. }) {
            2
        } else {
            0
        }
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let files = ContainersFiles::of(cell);
        let bin = cell.bin();
        let mut global = files.global();
        global.push(format!(
            "--registries-conf={}",
            files.registries_conf.display()
        ));
        let b = |args: &[&str]| {
            let mut argv = cmd(&bin, &global);
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            argv
        };
        let (auth, policy) = (files.authfile(), files.signature_policy());
        let pull = |image: &str| b(&["pull", &auth, &policy, image]);
        let push = |to: &str| b(&["push", &auth, &policy, to]);
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![b(&[
                "login",
                &auth,
                "--username",
                username,
                "--password",
                password,
                registry,
            ])],
            ResolvedAction::Pull { image, .. } => vec![pull(image)],
            ResolvedAction::Push { layout, to, .. } => {
                let copy = layout_copy(cell, layout);
                let id = layout_image_id(&copy)
                    .unwrap_or_else(|| format!("localhost{}:latest", copy.display()));
                vec![
                    b(&["pull", &policy, &format!("oci:{}:latest", copy.display())]),
                    b(&["tag", &id, to]),
                    push(to),
                ]
            }
            ResolvedAction::Copy { from, to } => {
                vec![pull(from), b(&["tag", from, to]), push(to)]
            }
            ResolvedAction::BuildFrom { context, to, .. } => {
                let ctx = context.display().to_string();
                match to {
                    Some(to) => vec![b(&["bud", &auth, &policy, "-t", to, &ctx]), push(to)],
                    None => vec![b(&["bud", &auth, &policy, &ctx])],
                }
            }
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => Vec::new(),
        }
    }
}
