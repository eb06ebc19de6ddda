//! skopeo (containers/image): credentials from an auth file in docker's format (we point it
//! at the cell's `config.json`), roots from `SSL_CERT_FILE`, registry mirrors from the
//! cell's own `registries.conf` (`--registries-conf`, never the machine's
//! `/etc/containers/registries.conf`): `[[registry]] location = "<upstream>"` with one
//! `[[registry.mirror]] location = "<mirror>[/<path>]"` per mirror — containers/image
//! substitutes the location for the upstream, so a path becomes a repository prefix
//! (`/v2/<path>/<repository>/…`), and asks the auth file for the mirror's own credential.

use super::{CellEnv, Driver, Mirror, ResolvedAction};
use crate::scenario::Action;
use std::path::PathBuf;

pub struct Skopeo;

impl Driver for Skopeo {
    fn name(&self) -> &'static str {
        "skopeo"
    }

    fn binary(&self) -> &'static str {
        "skopeo"
    }

    fn supports(&self, action: Action) -> bool {
        !matches!(action, Action::BuildFrom) && !action.is_buildpacks()
    }

    fn prepare(&self, cell: &CellEnv, _action: &ResolvedAction) -> Result<(), String> {
        let path = registries_conf(cell);
        std::fs::write(&path, registries_conf_toml(cell.mirrors))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (bin, sandbox) = (cell.bin(), cell.sandbox);
        let s = |x: &str| x.to_owned();
        let authfile = format!(
            "--authfile={}",
            sandbox.docker_config.join("config.json").display()
        );
        // A global option: before the subcommand.
        let registries = format!("--registries-conf={}", registries_conf(cell).display());
        let argv = match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![
                bin,
                registries,
                s("login"),
                authfile,
                s("--username"),
                username.clone(),
                s("--password"),
                password.clone(),
                registry.clone(),
            ],
            ResolvedAction::Pull { image, .. } => vec![
                bin,
                registries.clone(),
                s("copy"),
                authfile,
                format!("docker://{image}"),
                format!("oci:{}:pulled", sandbox.work.join("pulled").display()),
            ],
            ResolvedAction::Push { layout, to, .. } => vec![
                bin,
                registries.clone(),
                s("copy"),
                authfile,
                format!("oci:{}", layout.display()),
                format!("docker://{to}"),
            ],
            ResolvedAction::Copy { from, to } => vec![
                bin,
                registries.clone(),
                s("copy"),
                authfile,
                format!("docker://{from}"),
                format!("docker://{to}"),
            ],
            ResolvedAction::BuildFrom { .. }
            | ResolvedAction::BuilderCreate { .. }
            | ResolvedAction::AppBuild { .. } => {
                return Vec::new();
            }
        };
        vec![argv]
    }
}

fn registries_conf(cell: &CellEnv) -> PathBuf {
    cell.sandbox.root.join("registries.conf")
}

/// The cell's `registries.conf` (v2): one `[[registry]]` per upstream with its mirrors, in
/// the scenario's order; empty without mirrors.
pub(crate) fn registries_conf_toml(mirrors: &[Mirror]) -> String {
    let mut out = String::from("# written by regcompat for this cell\n");
    for (upstream, mirrors) in super::mirrors_by_upstream(mirrors) {
        out.push_str(&format!("\n[[registry]]\nlocation = {upstream:?}\n"));
        for m in mirrors {
            let location = if m.path.is_empty() {
                m.mirror.clone()
            } else {
                format!("{}/{}", m.mirror, m.path.trim_matches('/'))
            };
            out.push_str(&format!("[[registry.mirror]]\nlocation = {location:?}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_listed_under_their_upstream_with_the_path_as_a_prefix() {
        let m = |upstream: &str, mirror: &str, path: &str| Mirror {
            upstream: upstream.into(),
            mirror: mirror.into(),
            path: path.into(),
        };
        let text = registries_conf_toml(&[
            m(
                "registry.gitlab.example.com",
                "mirror.example.com:5443",
                "gitlab",
            ),
            m("registry.gitlab.example.com", "backup.example.com", ""),
        ]);
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let registry = &parsed["registry"][0];
        assert_eq!(
            registry["location"].as_str(),
            Some("registry.gitlab.example.com")
        );
        let locations: Vec<&str> = registry["mirror"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["location"].as_str().unwrap())
            .collect();
        assert_eq!(
            locations,
            ["mirror.example.com:5443/gitlab", "backup.example.com"]
        );
        let empty: toml::Value = toml::from_str(&registries_conf_toml(&[])).unwrap();
        assert!(empty.as_table().unwrap().is_empty());
    }
}
