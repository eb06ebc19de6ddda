//! docker CLI with the cell's own dockerd (Debian `docker.io`). The daemon does the registry
//! traffic: it runs in the cell's private mount namespace (the cell's hosts file) with
//! `--bridge=none --iptables=false`, its own data root, exec root and socket, the vfs storage
//! driver (works anywhere, no kernel overlay needed) and `SSL_CERT_FILE` = system roots + the
//! fleet CA (the daemon's registry TLS starts from the system pool, which Go reads from
//! there). The CLI reads `$DOCKER_CONFIG/config.json` and sends the credentials to the daemon.

use super::{Driver, ResolvedAction};
use crate::sandbox::Sandbox;
use crate::scenario::Action;
use std::path::Path;

pub struct Docker;

fn socket(sandbox: &Sandbox) -> String {
    format!("unix://{}", sandbox.sockets.join("docker.sock").display())
}

impl Driver for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn binary(&self) -> &'static str {
        "docker"
    }

    fn supports(&self, _action: Action) -> bool {
        true
    }

    fn argv(&self, bin: &Path, sandbox: &Sandbox, action: &ResolvedAction) -> Vec<String> {
        self.commands(bin, sandbox, action)
            .into_iter()
            .last()
            .unwrap_or_default()
    }

    fn commands(
        &self,
        bin: &Path,
        _sandbox: &Sandbox,
        action: &ResolvedAction,
    ) -> Vec<Vec<String>> {
        let cmd = |args: &[&str]| {
            std::iter::once(bin.display().to_string())
                .chain(args.iter().map(|a| (*a).to_owned()))
                .collect::<Vec<_>>()
        };
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![cmd(&["login", "-u", username, "-p", password, registry])],
            ResolvedAction::Pull { image } => vec![cmd(&["pull", image])],
            ResolvedAction::Push { layer, to, .. } => vec![
                cmd(&["import", &layer.display().to_string(), to]),
                cmd(&["push", to]),
            ],
            ResolvedAction::Copy { from, to } => vec![
                cmd(&["pull", from]),
                cmd(&["tag", from, to]),
                cmd(&["push", to]),
            ],
        }
    }

    fn env(&self, sandbox: &Sandbox) -> Vec<(String, String)> {
        vec![("DOCKER_HOST".into(), socket(sandbox))]
    }

    fn daemon(&self, bin: &Path, sandbox: &Sandbox) -> Option<Vec<String>> {
        let dockerd = bin.with_file_name("dockerd");
        let d = sandbox.root.join("dockerd");
        let p = |name: &str| d.join(name).display().to_string();
        let _ = std::fs::create_dir_all(&d);
        // An empty config file, so the machine's /etc/docker/daemon.json cannot interfere.
        let _ = std::fs::write(d.join("daemon.json"), "{}");
        Some(vec![
            dockerd.display().to_string(),
            format!("--config-file={}", p("daemon.json")),
            format!("--data-root={}", p("data")),
            // containerd's socket lives under the exec root: keep its path short.
            format!("--exec-root={}", sandbox.sockets.join("x").display()),
            format!("--pidfile={}", p("dockerd.pid")),
            format!("--host={}", socket(sandbox)),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--storage-driver=vfs".into(),
        ])
    }

    fn daemon_ready(&self, bin: &Path, _sandbox: &Sandbox) -> Vec<String> {
        vec![
            bin.display().to_string(),
            "version".into(),
            "--format".into(),
            "{{.Server.Version}}".into(),
        ]
    }
}
