//! crane (go-containerregistry): reads `$DOCKER_CONFIG/config.json` (auths, identitytoken,
//! credential helpers) and the system roots (`SSL_CERT_FILE`). `build-from` is
//! `crane append`: the build context's file as a new layer on the base pulled from its
//! registry, pushed to `to` (`--new_tag`), or without `to` written to a local tarball
//! (`--output`, which fetches every base layer).

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
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_mirrors(setup, "crane has no registry-mirror configuration")
            .or_else(|| super::no_inferred_helper(setup, "crane"))
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // The layer tarball of the build context: local, no registry.
        usize::from(matches!(action, ResolvedAction::BuildFrom { .. }))
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
            ResolvedAction::BuildFrom {
                context, base, to, ..
            } => {
                let layer = context.join("layer.tar.gz").display().to_string();
                let tar = super::cmd(
                    "tar",
                    &[
                        "-czf",
                        &layer,
                        "-C",
                        &context.display().to_string(),
                        "regcompat.txt",
                    ],
                );
                let mut append = vec![
                    bin,
                    s("append"),
                    s("--base"),
                    base.clone(),
                    s("--new_layer"),
                    layer,
                ];
                match to {
                    Some(to) => append.extend([s("--new_tag"), to.clone()]),
                    // The tag only names the image inside the tarball.
                    None => append.extend([
                        s("--new_tag"),
                        s("regcompat.invalid/built:latest"),
                        s("--output"),
                        sandbox.work.join("built.tar").display().to_string(),
                    ]),
                }
                return vec![tar, append];
            }
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}
