//! The daemons of the containerd family, one set per cell, and the files they read:
//!
//! - **buildkitd**: OCI worker (runc from the `runc` client), `native` snapshotter, host
//!   networking, its own root and socket, and a generated `buildkitd.toml` with a
//!   `[registry."<host>"]` table per registry (`ca` = the fleet CA, `mirrors` as the scenario
//!   says) — the file buildkit reads mirrors from (behaviours.md §2.2).
//! - **containerd**: a minimal config (own root, state and sockets, CRI disabled, debug log),
//!   and a hosts directory (`<dir>/<host>/hosts.toml`: `server`, `ca`, mirror `[host]`
//!   tables) that nerdctl and ctr are pointed at with `--hosts-dir` (behaviours.md §2.4).
//!
//! Every daemon runs in the cell's private mount namespace with the cell's hosts file (the
//! runner starts it), so mounts and name resolution stay inside the cell.

use super::{CellEnv, DaemonSpec, cmd};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The containerd namespace the harness's clients use.
pub const NAMESPACE: &str = "regcompat";

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `DOCKER_HOST` of the cell's dockerd.
pub fn docker_host(cell: &CellEnv) -> String {
    format!(
        "unix://{}",
        cell.sandbox.sockets.join("docker.sock").display()
    )
}

/// dockerd (Debian `docker.io`, beside `docker_cli`): `--bridge=none --iptables=false
/// --ip6tables=false`, vfs (no kernel overlay needed), its own config, data root, exec root
/// (containerd's socket lives there: kept short) and socket; ready when `docker version`
/// reaches it. `registry_mirrors`: the cell's Docker Hub mirrors as dockerd's own
/// `registry-mirrors` (the docker column); pack's dockerd gets none — pack rewrites image
/// names with its own `registry-mirrors`, and a daemon that mirrored on its own would hide
/// a pack that ignores them.
pub fn dockerd(
    cell: &CellEnv,
    docker_cli: &str,
    registry_mirrors: bool,
) -> Result<DaemonSpec, String> {
    let d = cell.sandbox.root.join("dockerd");
    let p = |name: &str| d.join(name).display().to_string();
    // The cell's own config file, so the machine's /etc/docker/daemon.json cannot
    // interfere: empty but for Docker Hub's mirrors (dockerd has no others).
    let hub_mirrors: Vec<String> = cell
        .mirrors
        .iter()
        .filter(|m| registry_mirrors && m.is_plain_docker_hub_mirror())
        .map(|m| format!("https://{}", m.mirror))
        .collect();
    let config = if hub_mirrors.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "registry-mirrors": hub_mirrors })
    };
    write(&d.join("daemon.json"), &config.to_string())?;
    let dockerd = Path::new(docker_cli).with_file_name("dockerd");
    Ok(DaemonSpec {
        name: "dockerd",
        argv: vec![
            dockerd.display().to_string(),
            format!("--config-file={}", p("daemon.json")),
            format!("--data-root={}", p("data")),
            format!("--exec-root={}", cell.sandbox.sockets.join("x").display()),
            format!("--pidfile={}", p("dockerd.pid")),
            format!("--host={}", docker_host(cell)),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--storage-driver=vfs".into(),
        ],
        ready: cmd(
            docker_cli,
            &[
                "--host",
                &docker_host(cell),
                "version",
                "--format",
                "{{.Server.Version}}",
            ],
        ),
        binds: vec![],
    })
}

pub fn buildkitd_socket(cell: &CellEnv) -> String {
    format!(
        "unix://{}",
        cell.sandbox.sockets.join("buildkitd.sock").display()
    )
}

/// `buildkitd.toml`: one `[registry."<host>"]` table per registry of the fleet.
pub fn buildkitd_toml(cell: &CellEnv) -> String {
    let mut out = String::from("debug = true\n");
    let ca = cell.ca_file.display().to_string();
    // Docker Hub's configuration is keyed `docker.io` (the references' domain); its CA too.
    let hub_key = cell
        .registries
        .iter()
        .any(|h| h == super::DOCKER_HUB_HOST)
        .then(|| "docker.io".to_owned());
    for host in cell.registries.iter().chain(hub_key.iter()) {
        let _ = writeln!(out, "\n[registry.{}]\n  ca = [{}]", q(host), q(&ca));
        let mirrors: Vec<String> = cell
            .mirrors
            .iter()
            .filter(|m| m.upstream_key() == host)
            .map(|m| {
                if m.path.is_empty() {
                    q(&m.mirror)
                } else {
                    q(&format!("{}/{}", m.mirror, m.path))
                }
            })
            .collect();
        if !mirrors.is_empty() {
            let _ = writeln!(out, "  mirrors = [{}]", mirrors.join(", "));
        }
    }
    out
}

/// buildkitd with the OCI worker; ready when `buildctl debug workers` answers.
pub fn buildkitd(cell: &CellEnv, buildctl: &str) -> Result<DaemonSpec, String> {
    let dir = cell.sandbox.root.join("buildkitd");
    let config = dir.join("buildkitd.toml");
    write(&config, &buildkitd_toml(cell))?;
    let addr = buildkitd_socket(cell);
    Ok(DaemonSpec {
        name: "buildkitd",
        argv: vec![
            cell.tool("buildkitd"),
            "--debug".into(),
            format!("--config={}", config.display()),
            format!("--root={}", dir.join("root").display()),
            format!("--addr={addr}"),
            "--oci-worker=true".into(),
            "--oci-worker-snapshotter=native".into(),
            "--oci-worker-net=host".into(),
            "--containerd-worker=false".into(),
        ],
        ready: cmd(buildctl, &["--addr", &addr, "debug", "workers"]),
        // buildkitd (as root) always listens on /run/buildkit/otel-grpc.sock: two cells'
        // daemons would collide there. Each gets its own directory.
        binds: vec![(dir.join("run"), PathBuf::from("/run/buildkit"))],
    })
}

pub fn containerd_socket(cell: &CellEnv) -> PathBuf {
    cell.sandbox.sockets.join("containerd.sock")
}

/// containerd's `config.toml` (version 2, as containerd 1.6 reads it).
pub fn containerd_toml(cell: &CellEnv) -> String {
    let root = cell.sandbox.root.join("containerd");
    let s = cell.sandbox.sockets.clone();
    let p = |p: PathBuf| q(&p.display().to_string());
    format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         \n[grpc]\n  address = {grpc}\n\
         \n[ttrpc]\n  address = {ttrpc}\n\
         \n[debug]\n  address = {debug}\n  level = \"debug\"\n\
         \n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
        root = p(root.join("root")),
        state = p(s.join("cs")),
        grpc = p(containerd_socket(cell)),
        ttrpc = p(s.join("containerd.sock.ttrpc")),
        debug = p(s.join("containerd-debug.sock")),
        opt = p(root.join("opt")),
    )
}

/// containerd with its own everything; ready when `ctr version` answers.
pub fn containerd(cell: &CellEnv) -> Result<DaemonSpec, String> {
    let config = cell.sandbox.root.join("containerd/config.toml");
    write(&config, &containerd_toml(cell))?;
    let socket = containerd_socket(cell).display().to_string();
    Ok(DaemonSpec {
        name: "containerd",
        argv: vec![
            cell.tool("containerd"),
            format!("--config={}", config.display()),
        ],
        ready: cmd(&cell.tool("ctr"), &["--address", &socket, "version"]),
        binds: vec![],
    })
}

/// The hosts directory (`--hosts-dir`): `<host>/hosts.toml` for every registry, with the
/// fleet CA and the scenario's mirrors. A registry on port 443 also gets a `host:443`
/// directory (nerdctl#3047: clients disagree on which one they look up) whose `server` keeps
/// the `:443` — what containerd assumes when there is no file: nerdctl's login checks that
/// the host its credential callback is asked about is the `host:443` it parsed.
pub fn hosts_dir(cell: &CellEnv) -> Result<PathBuf, String> {
    let dir = cell.sandbox.root.join("certs.d");
    let ca = q(&cell.ca_file.display().to_string());
    for host in cell.registries {
        let mut keys = vec![host.clone()];
        if !host.contains(':') {
            keys.push(format!("{host}:443"));
        }
        // containerd looks Docker Hub up as `docker.io` (server registry-1.docker.io).
        if host == super::DOCKER_HUB_HOST {
            keys.push("docker.io".to_owned());
        }
        for key in keys {
            let server = if key == "docker.io" { host } else { &key };
            let mut text = format!("server = {}\nca = {ca}\n", q(&format!("https://{server}")));
            for m in cell.mirrors.iter().filter(|m| &m.upstream == host) {
                // containerd appends `/v2` to a host's path unless told not to.
                let (url, override_path) = if m.path.is_empty() {
                    (format!("https://{}", m.mirror), "")
                } else {
                    (
                        format!("https://{}/v2/{}", m.mirror, m.path),
                        "  override_path = true\n",
                    )
                };
                let _ = write!(
                    text,
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = {ca}\n{override_path}",
                    q(&url)
                );
            }
            write(&dir.join(&key).join("hosts.toml"), &text)?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::Mirror;
    use crate::sandbox::Sandbox;
    use std::collections::BTreeMap;

    fn with_cell<T>(f: impl FnOnce(&CellEnv) -> T) -> T {
        with_upstream("private.test", f)
    }

    /// A cell whose fleet is `upstream` and `mirror.test:5443`, a mirror of it.
    fn with_upstream<T>(upstream: &str, f: impl FnOnce(&CellEnv) -> T) -> T {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::at(tmp.path());
        let registries = vec![upstream.to_owned(), "mirror.test:5443".to_owned()];
        let mirrors = vec![Mirror {
            upstream: upstream.into(),
            mirror: "mirror.test:5443".into(),
            path: String::new(),
        }];
        let credentials = BTreeMap::new();
        let cell = CellEnv {
            bin: Path::new("/bin/true"),
            sandbox: &sandbox,
            tools: &[],
            registries: &registries,
            mirrors: &mirrors,
            ca_file: Path::new("/fleet/ca.pem"),
            credentials: &credentials,
            identity_tokens: &BTreeMap::new(),
        };
        f(&cell)
    }

    #[test]
    fn buildkitd_toml_names_the_mirror_under_its_upstream_only() {
        let text = with_cell(buildkitd_toml);
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let reg = &parsed["registry"];
        assert_eq!(
            reg["private.test"]["mirrors"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(
            reg["private.test"]["mirrors"][0].as_str(),
            Some("mirror.test:5443")
        );
        assert!(reg["mirror.test:5443"].get("mirrors").is_none());
        assert_eq!(
            reg["mirror.test:5443"]["ca"][0].as_str(),
            Some("/fleet/ca.pem")
        );
    }

    #[test]
    fn containerd_toml_disables_cri_and_keeps_every_path_in_the_cell() {
        let (text, sockets) = with_cell(|c| (containerd_toml(c), c.sandbox.sockets.clone()));
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert_eq!(
            parsed["disabled_plugins"][0].as_str(),
            Some("io.containerd.grpc.v1.cri")
        );
        let grpc = parsed["grpc"]["address"].as_str().unwrap_or_default();
        assert!(grpc.starts_with(&sockets.display().to_string()), "{grpc}");
        assert!(grpc.len() < 100, "unix socket path too long: {grpc}");
        assert!(!text.contains("/run/containerd"), "{text}");
    }

    #[test]
    fn hosts_dir_has_the_mirror_first_and_both_keys_for_port_443() {
        with_cell(|cell| {
            let dir = hosts_dir(cell).expect("hosts dir");
            let text =
                std::fs::read_to_string(dir.join("private.test/hosts.toml")).expect("hosts.toml");
            let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
            assert_eq!(parsed["server"].as_str(), Some("https://private.test"));
            let host = &parsed["host"]["https://mirror.test:5443"];
            assert_eq!(host["capabilities"][0].as_str(), Some("pull"));
            let with_port = std::fs::read_to_string(dir.join("private.test:443/hosts.toml"))
                .expect("host:443 hosts.toml");
            assert!(with_port.contains("server = \"https://private.test:443\""));
            assert!(with_port.contains("[host.\"https://mirror.test:5443\"]"));
            assert!(dir.join("mirror.test:5443/hosts.toml").is_file());
            assert!(!dir.join("mirror.test:5443:443").exists());
        });
    }

    #[test]
    fn docker_hub_mirrors_are_keyed_docker_io_as_clients_look_them_up() {
        let hub = crate::clients::DOCKER_HUB_HOST;
        // buildkitd: [registry."docker.io"] mirrors (and the CA), as for any reference docker.io/…
        let text = with_upstream(hub, buildkitd_toml);
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let io = &parsed["registry"]["docker.io"];
        assert_eq!(
            io["mirrors"].as_array().map(|m| m[0].as_str()),
            Some(Some("mirror.test:5443"))
        );
        assert!(io["ca"].is_array());
        // containerd/nerdctl: certs.d/docker.io/hosts.toml, served by registry-1.docker.io.
        with_upstream(hub, |cell| {
            let dir = hosts_dir(cell).expect("hosts dir");
            let text = std::fs::read_to_string(dir.join("docker.io/hosts.toml")).unwrap();
            assert!(
                text.contains("server = \"https://registry-1.docker.io\""),
                "{text}"
            );
            assert!(
                text.contains("[host.\"https://mirror.test:5443\"]"),
                "{text}"
            );
        });
        // dockerd: registry-mirrors for Docker Hub only.
        with_upstream(hub, |cell| {
            dockerd(cell, "/usr/bin/docker", true).expect("dockerd");
            let config = std::fs::read_to_string(cell.sandbox.root.join("dockerd/daemon.json"));
            assert_eq!(
                config.unwrap(),
                r#"{"registry-mirrors":["https://mirror.test:5443"]}"#
            );
            // pack's dockerd: none (pack rewrites names with its own mirrors).
            dockerd(cell, "/usr/bin/docker", false).expect("dockerd");
            let config = std::fs::read_to_string(cell.sandbox.root.join("dockerd/daemon.json"));
            assert_eq!(config.unwrap(), "{}");
        });
        with_cell(|cell| {
            dockerd(cell, "/usr/bin/docker", true).expect("dockerd");
            let config = std::fs::read_to_string(cell.sandbox.root.join("dockerd/daemon.json"));
            assert_eq!(config.unwrap(), "{}");
        });
    }
}
