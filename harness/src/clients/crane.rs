//! crane (go-containerregistry), pinned in clients.toml and built with `go install`.
//! No daemon; reads `$HOME/.docker/config.json` then `$DOCKER_CONFIG` (clients.md §0.6,
//! both the same file in a sandbox) and trusts `SSL_CERT_FILE` (§0.4). Hostnames are
//! names, never IP literals, so it never falls back to plain HTTP (§0.2).

use super::{Binaries, CellEnv, Driver, Invocation, ResolvedStep, s};
use crate::scenario::Action;

pub struct Crane;

impl Driver for Crane {
    fn name(&self) -> &'static str {
        "crane"
    }

    fn binaries(&self) -> &'static [&'static str] {
        &["crane"]
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::Copy]
    }

    fn invocations(&self, step: &ResolvedStep, cell: &CellEnv, bins: &Binaries) -> Vec<Invocation> {
        let crane = bins.get("crane");
        let work = &cell.sandbox.work;
        let v = |args: &[&str]| {
            let mut argv = vec![crane.clone()];
            argv.extend(args.iter().map(|a| s(a)));
            argv
        };
        match step.action {
            // `crane auth login` only writes config.json; the next step proves it
            Action::Login => vec![
                Invocation::new(v(&[
                    "auth",
                    "login",
                    step.registry.as_deref().unwrap_or_default(),
                    "-u",
                    step.username.as_deref().unwrap_or_default(),
                    "--password-stdin",
                ]))
                .password_stdin(step),
            ],
            Action::Pull => {
                let out = work.join(format!("pull-{}.tar", step.index));
                let mut argv = v(&["pull"]);
                if let Some(p) = &step.platform {
                    argv.extend([s("--platform"), p.clone()]);
                }
                argv.push(step.image.clone().unwrap_or_default());
                argv.push(out.display().to_string());
                vec![Invocation::new(argv)]
            }
            Action::Push => {
                let layout = step
                    .oci_layout
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let mut argv = v(&["push"]);
                // a multi-platform layout is pushed as its index
                if step.docker_archive.is_none() {
                    argv.push(s("--index"));
                }
                argv.push(layout);
                argv.push(step.image.clone().unwrap_or_default());
                vec![Invocation::new(argv)]
            }
            Action::Copy => vec![Invocation::new(v(&[
                "copy",
                step.from.as_deref().unwrap_or_default(),
                step.to.as_deref().unwrap_or_default(),
            ]))],
            Action::BuildFrom => Vec::new(),
        }
    }
}
