//! podman (Debian 4.3.1: containers/image 5.23, containers/storage, buildah 1.28 inside for
//! `podman build`), rootful and daemonless. Everything it reads or writes is the cell's own
//! (`ContainersFiles`, shared with `buildah.rs`):
//!
//! - storage: `--root <cell>/containers/storage`, `--runroot /tmp/rc-<hash>/run` (short:
//!   podman's runroot must stay under about 50 characters — it puts unix sockets there — so
//!   it cannot live under the cell's long root),
//!   `--storage-driver vfs` (no kernel overlay needed), and the same in the cell's
//!   `storage.conf` (`CONTAINERS_STORAGE_CONF`);
//! - engine: the cell's `containers.conf` (`CONTAINERS_CONF`): `tmp_dir` (else
//!   `/run/libpod`), `events_logger = "file"`, `cgroup_manager = "cgroupfs"`,
//!   `network_config_dir`;
//! - credentials: `--authfile` = the cell's `config.json` (docker's format, as skopeo), also
//!   `REGISTRY_AUTH_FILE` so no command falls back to `/run/containers/0/auth.json`;
//! - mirrors: the cell's `registries.conf` (`CONTAINERS_REGISTRIES_CONF`), written exactly as
//!   skopeo's (`skopeo::registries_conf_toml`);
//! - signature policy: the cell's `policy.json` (`insecureAcceptAnything`,
//!   `--signature-policy`), never `/etc/containers/policy.json`;
//! - roots: `SSL_CERT_FILE` (the sandbox's bundle: system roots + the fleet CA), which
//!   containers/image's Go TLS reads; no `/etc/containers/certs.d/<host>` is needed.
//!
//! Fixed paths it writes whatever `--root` says are bound over with private copies in the
//! cell's mount namespace (`Driver::binds`): `/var/lib/containers/cache` (the blob-info
//! cache, `blob-info-cache-v1.boltdb`), `/run/containers` and `/dev/shm` (podman's SHM lock
//! segment `libpod_lock`, whose size must match the `num_locks` of whoever created it).
//!
//! Actions, as a podman user writes them: login (`podman login`), pull (`podman pull`),
//! push (the runner's OCI layout loaded with `podman pull oci:<layout>:latest` and tagged —
//! podman pushes only what is in its local storage — then `podman push <to>`; the load and
//! the tag are preparation, no registry involved; the layout is first copied to a lowercase
//! path, `layout_copy`, since podman names the loaded image after it), copy (`pull`, `tag`,
//! `push`), build-from (`podman build -t <to>` then `podman push <to>`; without `to` just
//! `podman build`, which pulls the base). The build context has no `RUN`, so no container
//! runtime (runc, conmon) ever starts.

use super::{CellEnv, Driver, Mirror, ResolvedAction, cmd};
use crate::scenario::{Action, ClientSetup};
use std::path::{Path, PathBuf};

pub struct Podman;

/// The per-cell files and paths of a containers/storage + containers/image client.
pub(crate) struct ContainersFiles {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub containers_conf: PathBuf,
    pub storage_conf: PathBuf,
    pub registries_conf: PathBuf,
    pub policy: PathBuf,
    pub authfile: PathBuf,
    /// Where `tmp_dir` points (podman's alive lock, events log, exit files).
    pub tmp_dir: PathBuf,
    pub network_dir: PathBuf,
}

impl ContainersFiles {
    pub fn of(cell: &CellEnv) -> Self {
        let base = cell.sandbox.root.join("containers");
        Self {
            root: base.join("storage"),
            // `/tmp/rc-<8 hex>/run`: well under the ~50 characters podman's runroot allows.
            runroot: cell.sandbox.sockets.join("run"),
            containers_conf: base.join("containers.conf"),
            storage_conf: base.join("storage.conf"),
            registries_conf: base.join("registries.conf"),
            policy: base.join("policy.json"),
            authfile: cell.sandbox.docker_config.join("config.json"),
            tmp_dir: cell.sandbox.sockets.join("libpod"),
            network_dir: base.join("networks"),
        }
    }

    /// Writes the configuration files (idempotent: before every action).
    pub fn write(&self, mirrors: &[Mirror]) -> Result<(), String> {
        let dir = self.containers_conf.parent().expect("has a parent");
        for d in [dir, &self.root, &self.network_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        write(
            &self.storage_conf,
            format!(
                "# written by regcompat for this cell\n[storage]\ndriver = \"vfs\"\n\
                 runroot = {:?}\ngraphroot = {:?}\n",
                self.runroot.display().to_string(),
                self.root.display().to_string()
            ),
        )?;
        write(
            &self.containers_conf,
            format!(
                "# written by regcompat for this cell\n[engine]\ntmp_dir = {:?}\n\
                 events_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n\
                 [network]\nnetwork_config_dir = {:?}\n",
                self.tmp_dir.display().to_string(),
                self.network_dir.display().to_string()
            ),
        )?;
        write(
            &self.registries_conf,
            super::skopeo::registries_conf_toml(mirrors),
        )?;
        write(
            &self.policy,
            "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}\n".into(),
        )
    }

    /// The global storage flags (before the subcommand).
    pub fn global(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "--runroot".into(),
            self.runroot.display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    pub fn authfile(&self) -> String {
        format!("--authfile={}", self.authfile.display())
    }

    pub fn signature_policy(&self) -> String {
        format!("--signature-policy={}", self.policy.display())
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let p = |p: &Path| p.display().to_string();
        vec![
            ("CONTAINERS_CONF".into(), p(&self.containers_conf)),
            ("CONTAINERS_STORAGE_CONF".into(), p(&self.storage_conf)),
            (
                "CONTAINERS_REGISTRIES_CONF".into(),
                p(&self.registries_conf),
            ),
            ("REGISTRY_AUTH_FILE".into(), p(&self.authfile)),
        ]
    }

    /// Private copies of the fixed paths containers/image and podman write to.
    pub fn binds(cell: &CellEnv) -> Vec<(PathBuf, PathBuf)> {
        let base = cell.sandbox.root.join("containers");
        vec![
            (
                base.join("cache"),
                PathBuf::from("/var/lib/containers/cache"),
            ),
            (
                cell.sandbox.sockets.join("run-containers"),
                PathBuf::from("/run/containers"),
            ),
            (cell.sandbox.sockets.join("shm"), PathBuf::from("/dev/shm")),
        ]
    }
}

/// Where the runner's OCI layout is copied before it is loaded: containers/image names an
/// image loaded from `oci:<dir>` `localhost<dir>`, which must be a valid (lowercase)
/// repository name — the cell's own paths carry the run id's capitals. `/tmp/rc-<hex>/…` is
/// lowercase; a symlink would not do (the transport resolves it).
pub(crate) fn layout_copy(cell: &CellEnv, layout: &Path) -> PathBuf {
    let name = layout
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase());
    cell.sandbox
        .sockets
        .join("layouts")
        .join(name.unwrap_or_else(|| "push".into()))
}

/// Copies the layout of a push to `layout_copy` (before the action's commands).
pub(crate) fn prepare_layout(cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
    let ResolvedAction::Push { layout, .. } = action else {
        return Ok(());
    };
    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
    }
    let to = layout_copy(cell, layout);
    copy_dir(layout, &to)
        .map_err(|e| format!("copying {} to {}: {e}", layout.display(), to.display()))
}

/// The image ID containers/storage gives the image of an OCI layout (its config digest's
/// hex), to tag it after loading; `None` if the layout cannot be read.
pub(crate) fn layout_image_id(layout: &Path) -> Option<String> {
    let read = |p: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:")?;
        Some(layout.join("blobs/sha256").join(hex))
    };
    let index = read(layout.join("index.json"))?;
    let manifest = read(blob(index["manifests"][0]["digest"].as_str()?)?)?;
    let config = manifest["config"]["digest"].as_str()?;
    Some(config.strip_prefix("sha256:")?.to_owned())
}

impl Driver for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn binary(&self) -> &'static str {
        "podman"
    }

    fn supports(&self, action: Action) -> bool {
        !action.is_buildpacks()
    }

    fn unsupported_setup(&self, setup: &ClientSetup) -> Option<String> {
        super::no_inferred_helper(setup, "podman")
    }

    fn prepare(&self, cell: &CellEnv, action: &ResolvedAction) -> Result<(), String> {
        ContainersFiles::of(cell).write(cell.mirrors)?;
        prepare_layout(cell, action)
    }

    fn env(&self, cell: &CellEnv) -> Vec<(String, String)> {
        ContainersFiles::of(cell).env()
    }

    fn binds(&self, cell: &CellEnv) -> Vec<(PathBuf, PathBuf)> {
        ContainersFiles::binds(cell)
    }

    fn preparation(&self, action: &ResolvedAction) -> usize {
        // `pull oci:<layout>` and `tag`: local storage only.
        if matches!(action, ResolvedAction::Push { .. }) {
            2
        } else {
            0
        }
    }

    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let files = ContainersFiles::of(cell);
        let bin = cell.bin();
        let p = |args: &[&str]| {
            let mut argv = cmd(&bin, &files.global());
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            argv
        };
        let (auth, policy) = (files.authfile(), files.signature_policy());
        let pull = |image: &str| p(&["pull", &auth, &policy, image]);
        let push = |to: &str| p(&["push", &auth, &policy, to]);
        match action {
            ResolvedAction::Login {
                registry,
                username,
                password,
            } => vec![p(&[
                "login",
                &auth,
                "--username",
                username,
                "--password",
                password,
                registry,
            ])],
            ResolvedAction::Pull { image, .. } => vec![pull(image)],
            ResolvedAction::Push { layout, to, .. } => {
                let copy = layout_copy(cell, layout);
                let id = layout_image_id(&copy)
                    .unwrap_or_else(|| format!("localhost{}:latest", copy.display()));
                vec![
                    p(&["pull", &policy, &format!("oci:{}:latest", copy.display())]),
                    p(&["tag", &id, to]),
                    push(to),
                ]
            }
            ResolvedAction::Copy { from, to } => {
                vec![pull(from), p(&["tag", from, to]), push(to)]
            }
            ResolvedAction::BuildFrom { context, to, .. } => {
                let ctx = context.display().to_string();
                match to {
                    Some(to) => vec![p(&["build", &auth, &policy, "-t", to, &ctx]), push(to)],
                    None => vec![p(&["build", &auth, &policy, &ctx])],
                }
            }
            ResolvedAction::BuilderCreate { .. } | ResolvedAction::AppBuild { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_registry::fixtures::{self, Format, ImageSpec};

    #[test]
    fn the_image_id_of_a_layout_is_its_config_digest() {
        for format in [Format::Oci, Format::Docker] {
            let dir = tempfile::tempdir().unwrap();
            let image = fixtures::generate(&ImageSpec::single(format, &[64])).unwrap();
            crate::runner::write_oci_layout(dir.path(), &image).unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(&image.top().bytes).unwrap();
            let config = manifest["config"]["digest"].as_str().unwrap();
            assert_eq!(
                layout_image_id(dir.path()).as_deref(),
                config.strip_prefix("sha256:")
            );
        }
        assert_eq!(layout_image_id(Path::new("/nonexistent")), None);
    }
}
