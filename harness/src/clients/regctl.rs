//! regctl (regclient): its own configuration file (`$REGCTL_CONFIG`, here in the cell's
//! sandbox) holds what `regctl registry login` stores and the registry mirrors; credentials
//! are also read from docker's `$DOCKER_CONFIG/config.json` (auths, identitytoken,
//! credHelpers, credsStore: regclient `config/docker.go`); roots from `SSL_CERT_FILE`.
//!
//! - pull: `regctl image copy <image> ocidir://<dir>:pulled` (every manifest and blob of the
//!   image, indexes whole, into a local OCI layout);
//! - push: `regctl image copy ocidir://<layout>:latest <to>`;
//! - build-from: `regctl image mod <base> --create <to> --layer-add dir=<context>` (the build
//!   context as a new layer on the base; without `to`, `--create ocidir://…`, which pulls the
//!   base);
//! - mirrors: one host entry per upstream with `mirrors = [<mirror>]`, and per mirror a host
//!   entry named by its authority (so docker's credential for that authority is the
//!   mirror's) with `pathPrefix` = the mirror's path (`regctl registry set <upstream>
//!   --mirror <mirror>`, `regctl registry set <mirror> --path-prefix <path>` write the same).

use super::{CellEnv, Driver, Mirror, ResolvedAction};
use crate::scenario::{Action, ClientSetup};
use std::path::PathBuf;

pub struct Regctl;

impl Driver for Regctl {
    fn name(&self) -> &'static str {
        "regctl"
    }

    fn binary(&self) -> &'static str {
        "regctl"
    }

    fn supports(&self, action: Action) -> bool {
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_inferred_helper(setup, "regctl")
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        vec![(
            "REGCTL_CONFIG".to_owned(),
            config_path(cell).display().to_string(),
        )]
    }

    /// The configuration is written once, before the cell's first action: a later
    /// `registry login` adds its credential to it, and a later action must still see that.
    fn prepare(&self, cell: &CellEnv, _action: &ResolvedAction) -> Result<(), String> {
        let path = config_path(cell);
        if path.exists() {
            return Ok(());
        }
        std::fs::write(&path, config_json(cell.mirrors))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (bin, sandbox) = (cell.bin(), cell.sandbox);
        let s = |x: &str| x.to_owned();
        let ocidir = |dir: PathBuf, tag: &str| format!("ocidir://{}:{tag}", dir.display());
        let argv = match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![
                bin,
                s("registry"),
                s("login"),
                registry.clone(),
                s("-u"),
                username.clone(),
                s("-p"),
                password.clone(),
            ],
            ResolvedAction::Pull { image, .. } => vec![
                bin,
                s("image"),
                s("copy"),
                image.clone(),
                ocidir(sandbox.work.join("pulled"), "pulled"),
            ],
            ResolvedAction::Push { layout, to, .. } => vec![
                bin,
                s("image"),
                s("copy"),
                ocidir(layout.clone(), "latest"),
                to.clone(),
            ],
            ResolvedAction::Copy { from, to } => {
                vec![bin, s("image"), s("copy"), from.clone(), to.clone()]
            }
            ResolvedAction::BuildFrom {
                context, base, to, ..
            } => vec![
                bin,
                s("image"),
                s("mod"),
                base.clone(),
                s("--create"),
                to.clone()
                    .unwrap_or_else(|| ocidir(sandbox.work.join("built"), "latest")),
                s("--layer-add"),
                format!("dir={}", context.display()),
            ],
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}

fn config_path(cell: &CellEnv) -> PathBuf {
    cell.sandbox.root.join("regctl-config.json")
}

/// regctl's configuration for the cell's mirrors (an empty `hosts` without any).
fn config_json(mirrors: &[Mirror]) -> String {
    let mut hosts = serde_json::Map::new();
    for (upstream, mirrors) in super::mirrors_by_upstream(mirrors) {
        let names: Vec<&str> = mirrors.iter().map(|m| m.mirror.as_str()).collect();
        hosts.insert(upstream.to_owned(), serde_json::json!({ "mirrors": names }));
        for m in mirrors {
            let mut host = serde_json::json!({ "hostname": m.mirror });
            let prefix = m.path.trim_matches('/');
            if !prefix.is_empty() {
                host["pathPrefix"] = prefix.into();
            }
            hosts.insert(m.mirror.clone(), host);
        }
    }
    serde_json::json!({ "hosts": hosts }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_host_entries_named_by_authority_with_their_path_as_prefix() {
        let m = |upstream: &str, mirror: &str, path: &str| Mirror {
            upstream: upstream.into(),
            mirror: mirror.into(),
            path: path.into(),
        };
        let config: serde_json::Value = serde_json::from_str(&config_json(&[
            m(
                "registry.gitlab.example.com",
                "mirror.example.com:5443",
                "/gitlab/",
            ),
            m("registry.gitlab.example.com", "backup.example.com", ""),
        ]))
        .unwrap();
        let hosts = &config["hosts"];
        assert_eq!(
            hosts["registry.gitlab.example.com"]["mirrors"],
            serde_json::json!(["mirror.example.com:5443", "backup.example.com"])
        );
        assert_eq!(
            hosts["mirror.example.com:5443"],
            serde_json::json!({"hostname": "mirror.example.com:5443", "pathPrefix": "gitlab"})
        );
        assert_eq!(
            hosts["backup.example.com"],
            serde_json::json!({"hostname": "backup.example.com"})
        );
        let none: serde_json::Value = serde_json::from_str(&config_json(&[])).unwrap();
        assert_eq!(none, serde_json::json!({"hosts": {}}));
    }
}
