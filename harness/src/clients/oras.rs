//! oras (ORAS CLI, oras-go): credentials from docker's `$DOCKER_CONFIG/config.json` (auths,
//! identitytoken as a refresh token, credHelpers, credsStore: oras-go
//! `registry/remote/credentials.NewStoreFromDocker`, which `oras login` also writes to;
//! oras `internal/credential/store.go`); roots from `SSL_CERT_FILE`.
//!
//! - login: `oras login <host> -u <user> -p <password>` (the harness's processes have no
//!   stdin, so not `--password-stdin`; oras prints a warning and stores the same);
//! - pull: `oras cp <image> --to-oci-layout <dir>:pulled` (every manifest and blob of the
//!   image, indexes whole — `oras cp` copies every manifest of an index — into a local OCI
//!   layout; `oras pull` would skip the layers of a container image, which carry no file
//!   name annotation);
//! - push: `oras cp --from-oci-layout <layout>:latest <to>`;
//! - copy: `oras cp <from> <to>` (indexes whole; no `-r`: referrers are not the scenario's);
//! - no build-from, no builder-create, no registry mirrors: oras copies and pushes artifacts,
//!   it does not build images, and has no mirror configuration (docs/clients.md).

use super::{CellEnv, Driver, ResolvedAction};
use crate::scenario::{Action, ClientSetup};
use std::path::Path;

pub struct Oras;

impl Driver for Oras {
    fn name(&self) -> &'static str {
        "oras"
    }

    fn binary(&self) -> &'static str {
        "oras"
    }

    fn supports(&self, action: Action) -> bool {
        !matches!(action, Action::BuildFrom) && !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_mirrors(setup, "oras has no registry-mirror configuration")
            .or_else(|| super::no_inferred_helper(setup, "oras"))
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let bin = cell.bin();
        let argv: Vec<String> = match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => super::cmd(&bin, &["login", registry, "-u", username, "-p", password]),
            ResolvedAction::Pull { image, .. } => super::cmd(
                &bin,
                &[
                    "cp",
                    image,
                    "--to-oci-layout",
                    &layout_ref(&cell.sandbox.work.join("pulled"), "pulled"),
                ],
            ),
            ResolvedAction::Push { layout, to, .. } => super::cmd(
                &bin,
                &["cp", "--from-oci-layout", &layout_ref(layout, "latest"), to],
            ),
            ResolvedAction::Copy { from, to } => super::cmd(&bin, &["cp", from, to]),
            ResolvedAction::BuildFrom { .. }
            | ResolvedAction::BuilderCreate { .. }
            | ResolvedAction::AppBuild { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}

/// An OCI layout reference as oras's `--from-oci-layout`/`--to-oci-layout` read it:
/// `<dir>:<tag>`.
fn layout_ref(dir: &Path, tag: &str) -> String {
    format!("{}:{tag}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Sandbox;

    fn commands_of(action: &ResolvedAction) -> (Sandbox, Vec<Vec<String>>) {
        super::super::commands_in_bare_cell(&Oras, "/bin/oras", action)
    }

    /// Every transfer is one `oras cp` of the whole graph: no `--platform` (an index is
    /// copied with every manifest), no `-r` (referrers are not the scenarios'), and a pull
    /// lands in an OCI layout (`oras pull` would skip an image's unnamed layers).
    #[test]
    fn transfers_are_one_oras_cp_of_the_whole_graph() {
        let (sandbox, pull) = commands_of(&ResolvedAction::Pull {
            image: "r.test/app:1".into(),
            context: "/cell/ctx".into(),
        });
        let pulled = format!("{}:pulled", sandbox.work.join("pulled").display());
        assert_eq!(
            pull,
            vec![vec![
                "/bin/oras",
                "cp",
                "r.test/app:1",
                "--to-oci-layout",
                pulled.as_str()
            ]]
        );
        let (_, push) = commands_of(&ResolvedAction::Push {
            layout: "/cell/layout".into(),
            layer: "/cell/layer.tar.gz".into(),
            context: "/cell/ctx".into(),
            to: "r.test/app:2".into(),
        });
        assert_eq!(
            push,
            vec![vec![
                "/bin/oras",
                "cp",
                "--from-oci-layout",
                "/cell/layout:latest",
                "r.test/app:2"
            ]]
        );
        let (_, copy) = commands_of(&ResolvedAction::Copy {
            from: "a.test/x:1".into(),
            to: "b.test/y:1".into(),
        });
        assert_eq!(
            copy,
            vec![vec!["/bin/oras", "cp", "a.test/x:1", "b.test/y:1"]]
        );
        let (_, login) = commands_of(&ResolvedAction::Login {
            registry: "r.test".into(),
            username: "u".into(),
            password: "p".into(),
        });
        assert_eq!(
            login,
            vec![vec!["/bin/oras", "login", "r.test", "-u", "u", "-p", "p"]]
        );
    }

    #[test]
    fn no_build_no_builder_no_mirrors() {
        assert!(!Oras.supports(Action::BuildFrom));
        assert!(!Oras.supports(Action::BuilderCreate));
        for a in [Action::Login, Action::Pull, Action::Push, Action::Copy] {
            assert!(Oras.supports(a));
        }
        let mut setup = ClientSetup::default();
        assert_eq!(Oras.unsupported_setup(&setup), None);
        setup.mirrors.insert(
            "r.test".into(),
            vec![toml::Spanned::new(0..0, "m.test".into())],
        );
        assert!(
            Oras.unsupported_setup(&setup)
                .is_some_and(|why| why.contains("oras has no registry-mirror configuration"))
        );
    }
}
