//! skopeo (containers/image): credentials from an auth file in docker's format (we point it
//! at the cell's `config.json`), roots from `SSL_CERT_FILE`.

use super::{Driver, ResolvedAction};
use crate::sandbox::Sandbox;
use crate::scenario::Action;
use std::path::Path;

pub struct Skopeo;

impl Driver for Skopeo {
    fn name(&self) -> &'static str {
        "skopeo"
    }

    fn binary(&self) -> &'static str {
        "skopeo"
    }

    fn supports(&self, _action: Action) -> bool {
        true
    }

    fn argv(&self, bin: &Path, sandbox: &Sandbox, action: &ResolvedAction) -> Vec<String> {
        let bin = bin.display().to_string();
        let s = |x: &str| x.to_owned();
        let authfile = format!(
            "--authfile={}",
            sandbox.docker_config.join("config.json").display()
        );
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![
                bin,
                s("login"),
                authfile,
                s("--username"),
                username.clone(),
                s("--password"),
                password.clone(),
                registry.clone(),
            ],
            ResolvedAction::Pull { image } => vec![
                bin,
                s("copy"),
                authfile,
                format!("docker://{image}"),
                format!("oci:{}:pulled", sandbox.work.join("pulled").display()),
            ],
            ResolvedAction::Push { layout, to, .. } => vec![
                bin,
                s("copy"),
                authfile,
                format!("oci:{}", layout.display()),
                format!("docker://{to}"),
            ],
            ResolvedAction::Copy { from, to } => vec![
                bin,
                s("copy"),
                authfile,
                format!("docker://{from}"),
                format!("docker://{to}"),
            ],
        }
    }
}
