//! ctr (client `containerd`) against the cell's own containerd: the contrast client of the
//! mirror scenarios. `ctr images pull --user u:p` hands the same credential to every host it
//! contacts — mirrors included — as CRI does with a pod's pull secret (behaviours.md §2.4,
//! §2.5 cell iv). ctr has no config.json: the harness gives it, with `--user`, the Basic
//! credential the scenario's config.json holds for the image's registry — by `host` or
//! `host:443` alike, as a user (or kubelet) who knows which registry a secret is for would.
//! ctr is therefore no witness of config.json key lookups; its column shows what one
//! credential handed to every host does.

use super::daemons::{self, NAMESPACE};
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};

pub struct Ctr;

/// The registry authority of a reference (`host[:port]/repo:tag` → `host[:port]`).
fn authority(image: &str) -> &str {
    image.split('/').next().unwrap_or(image)
}

impl Driver for Ctr {
    fn name(&self) -> &'static str {
        "containerd"
    }

    fn binary(&self) -> &'static str {
        "ctr"
    }

    fn supports(&self, action: Action) -> bool {
        action == Action::Pull
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        let needs_config_json = !setup.identity_tokens.is_empty()
            || setup.creds_store.is_some()
            || !setup.cred_helpers.is_empty()
            || !setup.helper_credentials.is_empty();
        needs_config_json.then(|| {
            "ctr reads no config.json: only Basic `auths` reach it (as --user); identity \
             tokens and credential helpers cannot"
                .to_owned()
        })
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let ResolvedAction::Pull { image, .. } = action else {
            return Vec::new();
        };
        let mut args = vec![
            format!("--address={}", daemons::containerd_socket(cell).display()),
            format!("--namespace={NAMESPACE}"),
            "images".into(),
            "pull".into(),
            format!(
                "--hosts-dir={}",
                cell.sandbox.root.join("certs.d").display()
            ),
            "--snapshotter=native".into(),
        ];
        let registry = authority(image);
        let same = registry
            .strip_suffix(":443")
            .map_or_else(|| format!("{registry}:443"), str::to_owned);
        if let Some((user, secret)) = cell
            .credentials
            .get(registry)
            .or_else(|| cell.credentials.get(&same))
        {
            args.push(format!("--user={user}:{secret}"));
        }
        args.push(image.clone());
        vec![cmd(&cell.bin(), &args)]
    }

    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        daemons::hosts_dir(cell)?;
        Ok(vec![daemons::containerd(cell)?])
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_keeps_the_port() {
        assert_eq!(authority("mirror.test:5443/team/app:1"), "mirror.test:5443");
        assert_eq!(authority("private.test/team/app@sha256:ab"), "private.test");
    }
}
