//! skopeo (Debian 1.9.3, containers/image 5.23). No daemon. Credentials: its default
//! lookup (`$XDG_RUNTIME_DIR/containers/auth.json`, then `$DOCKER_CONFIG/config.json`,
//! clients.md §0.6 [run]); `login` writes its default auth.json. Trust: `SSL_CERT_FILE`
//! (Go's system pool) plus `--cert-dir` with the fleet CA. `copy` needs a signature policy:
//! the cell gets its own accept-anything policy instead of /etc/containers/policy.json.

use super::{Binaries, CellEnv, Driver, Invocation, Prepared, ResolvedStep, s};
use crate::scenario::Action;

pub struct Skopeo;

const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

impl Driver for Skopeo {
    fn name(&self) -> &'static str {
        "skopeo"
    }

    fn binaries(&self) -> &'static [&'static str] {
        &["skopeo"]
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::Copy]
    }

    fn prepare(&self, cell: &CellEnv, _bins: &Binaries) -> Result<Prepared, String> {
        let path = cell.sandbox.root.join("etc/containers-policy.json");
        crate::sandbox::write_file(&path, POLICY.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Prepared::default())
    }

    fn invocations(&self, step: &ResolvedStep, cell: &CellEnv, bins: &Binaries) -> Vec<Invocation> {
        let skopeo = bins.get("skopeo");
        let policy = cell
            .sandbox
            .root
            .join("etc/containers-policy.json")
            .display()
            .to_string();
        let work = &cell.sandbox.work;
        let copy = |src: String, dst: String, extra: &[String]| {
            let mut argv = vec![
                skopeo.clone(),
                s("--debug"),
                s("copy"),
                s("--policy"),
                policy.clone(),
            ];
            argv.extend(extra.iter().cloned());
            argv.extend([src, dst]);
            Invocation::new(argv)
        };
        match step.action {
            Action::Login => vec![
                Invocation::new(vec![
                    skopeo.clone(),
                    s("--debug"),
                    s("login"),
                    s("-u"),
                    step.username.clone().unwrap_or_default(),
                    s("--password-stdin"),
                    step.registry.clone().unwrap_or_default(),
                ])
                .password_stdin(step),
            ],
            Action::Pull => {
                let mut extra = Vec::new();
                if let Some(p) = &step.platform {
                    let mut parts = p.split('/');
                    if let Some(os) = parts.next() {
                        extra.extend([s("--override-os"), s(os)]);
                    }
                    if let Some(arch) = parts.next() {
                        extra.extend([s("--override-arch"), s(arch)]);
                    }
                    if let Some(variant) = parts.next() {
                        extra.extend([s("--override-variant"), s(variant)]);
                    }
                }
                let dst = format!(
                    "oci:{}",
                    work.join(format!("pull-{}", step.index)).display()
                );
                vec![copy(
                    format!("docker://{}", step.image.as_deref().unwrap_or_default()),
                    dst,
                    &extra,
                )]
            }
            Action::Push => {
                let layout = step
                    .oci_layout
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let extra = if step.docker_archive.is_none() {
                    vec![s("--all")]
                } else {
                    Vec::new()
                };
                vec![copy(
                    format!("oci:{layout}"),
                    format!("docker://{}", step.image.as_deref().unwrap_or_default()),
                    &extra,
                )]
            }
            Action::Copy => vec![copy(
                format!("docker://{}", step.from.as_deref().unwrap_or_default()),
                format!("docker://{}", step.to.as_deref().unwrap_or_default()),
                &[],
            )],
            Action::BuildFrom => Vec::new(),
        }
    }
}
