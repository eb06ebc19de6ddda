//! pack (Buildpacks CLI): `pack builder create --publish`, daemonless — pack fetches the
//! build and run images and pushes the builder itself with go-containerregistry — or, with
//! `publish = false`, the daemon path: the cell's dockerd pulls the images with the
//! credentials pack hands it (behaviours.md §1.2) and keeps the builder. pack reads
//! `$DOCKER_CONFIG/config.json` (auths, identitytoken, credential helpers) and the system
//! roots (`SSL_CERT_FILE`). The builder's lifecycle is the local tarball of the `lifecycle`
//! client (pack's default would be downloaded from GitHub); the buildpack is generated.
//!
//! `app-build` is `pack build <to> --builder <builder> --publish`: pack pulls the builder
//! into the cell's dockerd and runs the lifecycle's phases in containers of it (`--network
//! host`: the cell's own network namespace, hosts file and fleet); the analyzer and the
//! exporter fetch the run image and push the app themselves, with the credentials pack
//! hands them in `CNB_REGISTRY_AUTH` — a second auth path, not pack's. The builder's build
//! image must be runnable (a shell for the buildpack, the fleet's CA): scenarios seed one
//! with `files` (busybox, `/etc/ssl/certs/ca-certificates.crt` = the fleet's CA).

use super::daemons;
use super::{CellEnv, DaemonSpec, Driver, Mirror, ResolvedAction};
use crate::scenario::{Action, ClientSetup};
use std::path::{Path, PathBuf};

pub struct Pack;

/// The stack id of the generated buildpack (`*`: any stack) and of the builder.toml.
const BUILDPACK_ID: &str = "regcompat/hello";

impl Driver for Pack {
    fn name(&self) -> &'static str {
        "pack"
    }

    fn binary(&self) -> &'static str {
        "pack"
    }

    fn supports(&self, action: Action) -> bool {
        action.is_buildpacks()
    }

    /// pack's `registry-mirrors` (`pack config registry-mirrors add <registry> --mirror
    /// <mirror>`) map a registry to *one* mirror that replaces it in every image name pack
    /// fetches (internal/name TranslateRegistry): no list to fall back along.
    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        setup
            .mirrors
            .iter()
            .find(|(_, list)| list.len() > 1)
            .map(|(upstream, list)| {
                format!(
                    "pack's registry-mirrors map a registry to one mirror that replaces it; \
                     {upstream} has {} mirrors to try in turn",
                    list.len()
                )
            })
    }

    fn prepare(&self, cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
        write_pack_config(cell)?;
        let ResolvedAction::BuilderCreate {
            dir,
            build_image,
            run_image,
            ..
        } = action
        else {
            return Ok(());
        };
        let lifecycle = lifecycle_tarball(cell.tools).ok_or(
            "no lifecycle tarball (lifecycle-v*+linux.x86-64.tgz) beside an installed \
             lifecycle: cargo xtask install-clients lifecycle",
        )?;
        let bp = dir.join("buildpack");
        let write = |path: PathBuf, text: &str, exec: bool| -> Result<(), String> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            if exec {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(())
        };
        // Buildpack API 0.8: understood by pack 0.26 (lifecycle 0.14) and pack 0.40.
        write(
            bp.join("buildpack.toml"),
            &format!(
                "api = \"0.8\"\n\n[buildpack]\nid = \"{BUILDPACK_ID}\"\nversion = \"0.0.1\"\n\n\
                 [[stacks]]\nid = \"*\"\n"
            ),
            false,
        )?;
        write(bp.join("bin/detect"), "#!/bin/sh\nexit 0\n", true)?;
        write(bp.join("bin/build"), "#!/bin/sh\nexit 0\n", true)?;
        // The legacy `[stack]` form: the only one pack 0.26 reads; pack 0.40 maps it to
        // `[build]`/`[[run.images]]`. The images carry the same stack id label.
        let builder = format!(
            "[[buildpacks]]\nuri = {bp:?}\n\n[[order]]\n[[order.group]]\nid = \"{BUILDPACK_ID}\"\n\
             version = \"0.0.1\"\n\n[stack]\nid = \"{STACK_ID}\"\nbuild-image = {build_image:?}\n\
             run-image = {run_image:?}\n\n[lifecycle]\nuri = {lifecycle:?}\n",
            bp = bp.display().to_string(),
            lifecycle = lifecycle.display().to_string(),
        );
        write(dir.join("builder.toml"), &builder, false)
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        if let ResolvedAction::AppBuild {
            dir,
            builder,
            to,
            publish,
            ..
        } = action
        {
            return vec![app_build(cell, dir, builder, to, *publish)];
        }
        let ResolvedAction::BuilderCreate {
            dir, to, publish, ..
        } = action
        else {
            return Vec::new();
        };
        let config = dir.join("builder.toml").display().to_string();
        let mut args = vec![
            "builder",
            "create",
            to,
            "--config",
            &config,
            "--pull-policy",
            "always",
            "--no-color",
            "--verbose",
        ];
        if *publish {
            args.push("--publish");
        }
        vec![super::cmd(&cell.bin(), &args)]
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        // pack's own config (~/.pack) in the sandbox, never the machine's.
        vec![
            (
                "PACK_HOME".into(),
                cell.sandbox.root.join("pack-home").display().to_string(),
            ),
            ("DOCKER_HOST".into(), daemons::docker_host(cell)),
        ]
    }

    /// The daemon path (`publish = false`) needs a dockerd; pack cannot say which path a
    /// cell takes before its steps run, so every pack cell gets one (about two seconds).
    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        Ok(vec![daemons::dockerd(cell, &cell.tool("docker"), false)?])
    }
}

/// The stack id builder.toml declares; scenarios label their build and run images with it.
pub const STACK_ID: &str = "io.regcompat.stack";

/// `$PACK_HOME/config.toml` with the cell's mirrors, as `pack config registry-mirrors add`
/// writes them; nothing without mirrors.
fn write_pack_config(cell: &CellEnv) -> Result<(), String> {
    if cell.mirrors.is_empty() {
        return Ok(());
    }
    let home = cell.sandbox.root.join("pack-home");
    std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
    let path = home.join("config.toml");
    std::fs::write(&path, registry_mirrors_toml(cell.mirrors))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// pack keys a mirror by the registry as go-containerregistry names it (`index.docker.io`
/// for Docker Hub) and rewrites `<registry>/<repo>` to `<mirror>[/<path>]/<repo>`.
fn registry_mirrors_toml(mirrors: &[Mirror]) -> String {
    let mut text = String::from("[registry-mirrors]\n");
    for m in mirrors {
        let key = if m.upstream == super::DOCKER_HUB_HOST {
            "index.docker.io"
        } else {
            &m.upstream
        };
        let value = if m.path.is_empty() {
            m.mirror.clone()
        } else {
            format!("{}/{}", m.mirror, m.path)
        };
        text.push_str(&format!("{key:?} = {value:?}\n"));
    }
    text
}

/// `pack build`: the lifecycle's containers join the cell's network namespace (the only
/// network a cell has; dockerd runs with `--bridge=none`). `--trust-builder`: the builder
/// is the cell's own, so pack runs the lifecycle's `creator` in it and hands it the
/// registry credentials (`CNB_REGISTRY_AUTH`). An untrusted builder would make pack fetch
/// a separate lifecycle image from Docker Hub (`buildpacksio/lifecycle`) to hold the
/// credentials instead — a registry the cell does not have.
fn app_build(cell: &CellEnv, dir: &Path, builder: &str, to: &str, publish: bool) -> Vec<String> {
    let path = dir.display().to_string();
    let mut args = vec![
        "build",
        to,
        "--builder",
        builder,
        "--path",
        &path,
        "--network",
        "host",
        "--trust-builder",
        "--pull-policy",
        "always",
        "--no-color",
        "--verbose",
    ];
    if publish {
        args.push("--publish");
    } else {
        // The daemon path: the lifecycle exports into the daemon through its socket, which
        // pack mounts into the container — `/var/run/docker.sock` unless told `inherit`
        // (DOCKER_HOST: the cell's own dockerd).
        args.extend(["--docker-host", "inherit"]);
    }
    super::cmd(&cell.bin(), &args)
}

/// `lifecycle-v<version>+linux.x86-64.tgz` in the version directory of an installed
/// lifecycle (the parent of its `bin`), among the required tools' directories.
fn lifecycle_tarball(tools: &[PathBuf]) -> Option<PathBuf> {
    tools
        .iter()
        .filter_map(|bin| bin.parent())
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .find(|p| is_lifecycle_tarball(p))
}

fn is_lifecycle_tarball(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("lifecycle-v") && n.ends_with("+linux.x86-64.tgz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_build(publish: bool) -> Vec<Vec<String>> {
        let action = ResolvedAction::AppBuild {
            dir: "/cell/work/app-1".into(),
            builder: "r.test/cnb/builder:1".into(),
            run_image: "r.test/cnb/run:1".into(),
            to: "r.test/app:1".into(),
            publish,
        };
        super::super::commands_in_bare_cell(&Pack, "/bin/pack", &action).1
    }

    /// `pack build` on the cell's network (`--network host`: dockerd has no bridge), with
    /// the cell's builder trusted (no Docker Hub lifecycle image); the daemon path mounts
    /// the cell's dockerd socket (`--docker-host inherit`), never /var/run/docker.sock.
    #[test]
    fn app_build_runs_pack_build_on_the_cells_network_and_daemon() {
        let published = app_build(true);
        assert_eq!(published.len(), 1);
        let argv = &published[0];
        assert_eq!(argv[..3], ["/bin/pack", "build", "r.test/app:1"]);
        let after = |flag: &str| {
            argv.iter()
                .position(|a| a == flag)
                .and_then(|i| argv.get(i + 1))
                .cloned()
        };
        assert_eq!(after("--builder").as_deref(), Some("r.test/cnb/builder:1"));
        assert_eq!(after("--path").as_deref(), Some("/cell/work/app-1"));
        assert_eq!(after("--network").as_deref(), Some("host"));
        assert!(argv.iter().any(|a| a == "--trust-builder"));
        assert!(argv.iter().any(|a| a == "--publish"));
        assert!(!argv.iter().any(|a| a == "--docker-host"));
        let daemon = &app_build(false)[0];
        assert!(!daemon.iter().any(|a| a == "--publish"));
        let i = daemon.iter().position(|a| a == "--docker-host").unwrap();
        assert_eq!(daemon[i + 1], "inherit");
        assert!(Pack.supports(Action::AppBuild) && Pack.supports(Action::BuilderCreate));
        assert!(!Pack.supports(Action::Pull));
    }

    #[test]
    fn mirrors_are_keyed_as_go_containerregistry_names_registries() {
        let mirrors = [
            Mirror {
                upstream: super::super::DOCKER_HUB_HOST.into(),
                mirror: "hub-mirror.example.com:5443".into(),
                path: String::new(),
            },
            Mirror {
                upstream: "registry.gitlab.example.com".into(),
                mirror: "mirror.example.com".into(),
                path: "gitlab".into(),
            },
        ];
        assert_eq!(
            registry_mirrors_toml(&mirrors),
            "[registry-mirrors]\n\"index.docker.io\" = \"hub-mirror.example.com:5443\"\n\
             \"registry.gitlab.example.com\" = \"mirror.example.com/gitlab\"\n"
        );
        let parsed: toml::Value = toml::from_str(&registry_mirrors_toml(&mirrors)).unwrap();
        assert_eq!(
            parsed["registry-mirrors"]["index.docker.io"].as_str(),
            Some("hub-mirror.example.com:5443")
        );
    }

    #[test]
    fn finds_the_tarball_beside_the_lifecycle_bin_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("lifecycle/0.21.0/bin");
        std::fs::create_dir_all(&bin).unwrap();
        assert_eq!(lifecycle_tarball(std::slice::from_ref(&bin)), None);
        let tgz = tmp
            .path()
            .join("lifecycle/0.21.0/lifecycle-v0.21.0+linux.x86-64.tgz");
        std::fs::write(&tgz, b"").unwrap();
        assert_eq!(lifecycle_tarball(&[bin]), Some(tgz));
    }
}
