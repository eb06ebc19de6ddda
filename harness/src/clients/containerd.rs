//! ctr (client `containerd`) against the cell's own containerd: the contrast client of the
//! mirror scenarios. `ctr images pull --user u:p` hands the same credential to every host it
//! contacts — mirrors included — as CRI does with a pod's pull secret (behaviours.md §2.4,
//! §2.5 cell iv). ctr reads no config.json and takes exactly one credential, so the harness
//! models a user with one credential: when the scenario's client holds one Basic credential
//! (whatever host it is stored for) ctr gets it as `--user`, when it holds none ctr gets
//! none. ctr never chooses a credential by host — the harness does not choose for it either:
//! a scenario whose client holds several credentials, or that tests config.json key lookups
//! (`auths_by_key`), identity tokens or credential helpers, is not-applicable to ctr.

use super::daemons::{self, NAMESPACE};
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};

pub struct Ctr;

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
        if needs_config_json {
            return Some(
                "ctr reads no config.json: identity tokens and credential helpers cannot reach \
                 it (only one Basic credential, as --user)"
                    .to_owned(),
            );
        }
        if !setup.auths_by_key.is_empty() {
            return Some(
                "the scenario tests how config.json keys are looked up; ctr reads no \
                 config.json"
                    .to_owned(),
            );
        }
        let principals: std::collections::BTreeSet<&String> =
            setup.auths.values().map(|p| p.get_ref()).collect();
        (principals.len() > 1).then(|| {
            format!(
                "the scenario's client holds {} credentials for different hosts; ctr takes \
                 one --user for every host",
                principals.len()
            )
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
        // The user's one credential (unsupported_setup refuses several), for every host.
        if let Some((user, secret)) = cell.credentials.values().next() {
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
    use super::*;
    use toml::Spanned;

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(0..0, s.to_owned())
    }

    #[test]
    fn ctr_runs_with_one_credential_and_is_not_applicable_with_several_or_with_key_tests() {
        let mut setup = ClientSetup::default();
        setup.auths.insert("gitlab".into(), spanned("dev"));
        setup.auths.insert("mirror".into(), spanned("dev"));
        assert_eq!(
            Ctr.unsupported_setup(&setup),
            None,
            "one principal, two hosts"
        );
        setup.auths.insert("mirror".into(), spanned("cache-user"));
        let why = Ctr.unsupported_setup(&setup).expect("two credentials");
        assert!(why.contains("one --user for every host"), "{why}");
        let mut setup = ClientSetup::default();
        setup
            .auths_by_key
            .insert("{gitlab}:443".into(), spanned("dev"));
        let why = Ctr.unsupported_setup(&setup).expect("key lookup test");
        assert!(why.contains("config.json keys"), "{why}");
    }
}
