//! ctr (client `containerd`) against the cell's own containerd: the contrast client of the
//! mirror scenarios. `ctr images pull --user u:p` hands the same credential to every host it
//! contacts — mirrors included — as CRI does with a pod's pull secret (behaviours.md §2.4,
//! §2.5 cell iv). ctr reads no config.json and takes exactly one credential, so the harness
//! models a user with one credential: when the scenario's client holds one Basic credential
//! (whatever host it is stored for) ctr gets it as `--user`; when it holds one identity token
//! (`az acr login`'s refresh token) ctr gets it as `--refresh` — containerd then asks the
//! token endpoint with `grant_type=refresh_token`; when it holds none ctr gets none. ctr never
//! chooses a credential by host — the harness does not choose for it either: a scenario whose
//! client holds several credentials, or that tests config.json key lookups (`auths_by_key`)
//! or credential helpers, is not-applicable to ctr.
//!
//! Actions: pull (`ctr images pull`), push (the layout tarred and `ctr images import`ed under
//! a local name, then `ctr images push <to> <local>`), copy (`pull --all-platforms`, then
//! `push <to> <from>`). ctr has no login.

use super::daemons::{self, NAMESPACE};
use super::{CellEnv, DaemonSpec, Driver, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};

pub struct Ctr;

/// The name a pushed layout is imported under (`.invalid`: never a registry).
const LOCAL_NAME: &str = "regcompat.invalid/push";

/// `ctr --address … --namespace … <args>`.
fn ctr(cell: &CellEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!("--address={}", daemons::containerd_socket(cell).display()),
        format!("--namespace={NAMESPACE}"),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    cmd(&cell.bin(), &all)
}

/// `ctr images pull|push` with the cell's hosts directory and the user's one credential
/// (unsupported_setup refuses several), for every host; `args` are the subcommand's own.
fn remote(cell: &CellEnv, subcommand: &str, args: &[&str]) -> Vec<String> {
    let hosts_dir = format!(
        "--hosts-dir={}",
        cell.sandbox.root.join("certs.d").display()
    );
    let mut all = vec!["images", subcommand, hosts_dir.as_str()];
    if subcommand == "pull" {
        all.push("--snapshotter=native");
    }
    let user = cell
        .credentials
        .values()
        .next()
        .map(|(user, secret)| format!("--user={user}:{secret}"));
    let refresh = cell
        .identity_tokens
        .values()
        .next()
        .map(|token| format!("--refresh={token}"));
    all.extend(user.iter().chain(refresh.iter()).map(String::as_str));
    all.extend_from_slice(args);
    ctr(cell, &all)
}

impl Driver for Ctr {
    fn name(&self) -> &'static str {
        "containerd"
    }

    fn binary(&self) -> &'static str {
        "ctr"
    }

    fn supports(&self, action: Action) -> bool {
        matches!(action, Action::Pull | Action::Push | Action::Copy)
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // The layout's tar and its import into the cell's containerd: local, no registry.
        if matches!(action, ResolvedAction::Push { .. }) {
            2
        } else {
            0
        }
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        let needs_config_json = setup.creds_store.is_some()
            || !setup.cred_helpers.is_empty()
            || !setup.helper_credentials.is_empty();
        if needs_config_json {
            return Some(
                "ctr reads no config.json: credential helpers cannot reach it (one Basic \
                 credential as --user, or one identity token as --refresh)"
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
        let principals: std::collections::BTreeSet<&String> = setup
            .auths
            .values()
            .chain(setup.identity_tokens.values())
            .map(|p| p.get_ref())
            .collect();
        (principals.len() > 1).then(|| {
            format!(
                "the scenario's client holds {} credentials for different hosts; ctr takes \
                 one --user for every host",
                principals.len()
            )
        })
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        match action {
            ResolvedAction::Pull { image, .. } => vec![remote(cell, "pull", &[image])],
            // `ctr images push` pushes what the content store holds: the layout is imported
            // under a local name first.
            ResolvedAction::Push { layout, to, .. } => {
                let tar = layout.with_extension("tar").display().to_string();
                vec![
                    cmd(
                        "tar",
                        &["-cf", &tar, "-C", &layout.display().to_string(), "."],
                    ),
                    ctr(
                        cell,
                        &[
                            "images",
                            "import",
                            "--no-unpack",
                            "--base-name",
                            LOCAL_NAME,
                            &tar,
                        ],
                    ),
                    remote(cell, "push", &[to, &format!("{LOCAL_NAME}:latest")]),
                ]
            }
            // Copy is a pull (every platform, so an index can be pushed whole) and a push.
            ResolvedAction::Copy { from, to } => vec![
                remote(cell, "pull", &["--all-platforms", from]),
                remote(cell, "push", &[to, from]),
            ],
            _ => Vec::new(),
        }
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
