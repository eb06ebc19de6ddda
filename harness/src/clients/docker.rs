//! docker CLI + dockerd (Debian docker.io 20.10.24). One dockerd per cell on its own data
//! root, exec root and socket, without networking of its own (`--bridge=none
//! --iptables=false`), `vfs` storage (works nested), its own containerd, and the cell's
//! hosts file in its private mount namespace. The CLI resolves credentials
//! (`auths`/`credsStore`/`credHelpers`/`identitytoken`) and sends them to the daemon,
//! which talks to the registry (clients.md §5.5).
//!
//! dockerd treats registries on 127.0.0.0/8 as insecure and skips certificate checks
//! (clients.md §0.3); trust is still wired (`SSL_CERT_FILE`) for what it does check.

use super::{Binaries, CellEnv, Driver, Invocation, Prepared, ResolvedStep, s};
use crate::daemon::Daemon;
use crate::process::{Isolation, Spec};
use crate::scenario::Action;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct Docker;

/// How long dockerd (and its containerd) may take to answer `/_ping`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
static NEXT_SOCKET_DIR: AtomicU32 = AtomicU32::new(0);

/// Unix socket paths are limited to 108 bytes: sockets live in a short dir under /tmp.
fn short_dir() -> PathBuf {
    let n = NEXT_SOCKET_DIR.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/tmp/rcd-{}-{n}", std::process::id()))
}

/// `GET /_ping` over the daemon's socket.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.take(4096).read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}

impl Driver for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn binaries(&self) -> &'static [&'static str] {
        &["docker", "dockerd"]
    }

    fn capabilities(&self) -> &'static [Action] {
        &[Action::Login, Action::Pull, Action::Push, Action::BuildFrom]
    }

    fn applicable(&self, step: &crate::scenario::Step) -> Result<(), String> {
        if step.action == Action::Push
            && let Some(src) = &step.source
            && (src.index || src.platforms.len() > 1)
        {
            return Err("docker pushes what `docker load` loaded: one platform, no index".into());
        }
        Ok(())
    }

    fn prepare(&self, cell: &CellEnv, bins: &Binaries) -> Result<Prepared, String> {
        let sb = cell.sandbox;
        let short = short_dir();
        let _ = std::fs::remove_dir_all(&short);
        std::fs::create_dir_all(&short).map_err(|e| format!("{}: {e}", short.display()))?;
        let data_root = sb.root.join("docker/root");
        std::fs::create_dir_all(&data_root).map_err(|e| format!("{}: {e}", data_root.display()))?;
        let config = sb.root.join("etc/daemon.json");
        // an empty daemon config: never /etc/docker/daemon.json of the machine
        crate::sandbox::write_file(&config, b"{}\n").map_err(|e| e.to_string())?;
        let socket = short.join("docker.sock");
        let p = |p: &Path| p.display().to_string();
        let argv = vec![
            bins.get("dockerd"),
            s("--config-file"),
            p(&config),
            s("--data-root"),
            p(&data_root),
            s("--exec-root"),
            p(&short.join("exec")),
            s("--pidfile"),
            p(&short.join("docker.pid")),
            s("-H"),
            format!("unix://{}", p(&socket)),
            s("--bridge=none"),
            s("--iptables=false"),
            s("--ip6tables=false"),
            s("--ip-masq=false"),
            s("--ip-forward=false"),
            s("--userland-proxy=false"),
            s("--storage-driver=vfs"),
            s("--debug"),
        ];
        // the daemon also reads certs.d of the registry hosts; bind the cell's tree when the
        // machine has the directory to mount over
        let mut isolation = Isolation {
            binds: cell.isolation.binds.clone(),
        };
        if Path::new("/etc/docker/certs.d").is_dir() {
            isolation
                .binds
                .push((sb.certs_d.clone(), PathBuf::from("/etc/docker/certs.d")));
        }
        let spec = Spec {
            argv,
            env: cell.env.clone(),
            cwd: sb.work.clone(),
            stdin: None,
            stdout: sb.logs.join("dockerd.out"),
            stderr: sb.logs.join("dockerd.log"),
            isolation,
        };
        let sock = socket.clone();
        let daemon = Daemon::start(
            "dockerd",
            &spec,
            &|| ping(&sock),
            START_TIMEOUT,
            // image layers (vfs copies) are not evidence; the daemon log stays in logs/
            vec![short, sb.root.join("docker")],
        )?;
        Ok(Prepared {
            daemons: vec![daemon],
            env: vec![
                (s("DOCKER_HOST"), format!("unix://{}", p(&socket))),
                // the classic builder: FROM + LABEL pulls the base without running containers
                (s("DOCKER_BUILDKIT"), s("0")),
            ],
        })
    }

    fn invocations(&self, step: &ResolvedStep, cell: &CellEnv, bins: &Binaries) -> Vec<Invocation> {
        let docker = bins.get("docker");
        let v = |args: &[String]| {
            let mut argv = vec![docker.clone()];
            argv.extend(args.iter().cloned());
            Invocation::new(argv)
        };
        let image = step.image.clone().unwrap_or_default();
        match step.action {
            Action::Login => vec![
                v(&[
                    s("login"),
                    s("-u"),
                    step.username.clone().unwrap_or_default(),
                    s("--password-stdin"),
                    step.registry.clone().unwrap_or_default(),
                ])
                .password_stdin(step),
            ],
            Action::Pull => {
                let mut args = vec![s("pull")];
                if let Some(p) = &step.platform {
                    args.extend([s("--platform"), p.clone()]);
                }
                args.push(image);
                vec![v(&args)]
            }
            Action::Push => {
                let archive = step
                    .docker_archive
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                vec![v(&[s("load"), s("-i"), archive]), v(&[s("push"), image])]
            }
            Action::BuildFrom => {
                let dir = cell.sandbox.work.join(format!("build-{}", step.index));
                let _ = std::fs::create_dir_all(&dir);
                let mut dockerfile = format!("FROM {image}\n");
                if let Some(p) = &step.platform {
                    dockerfile = format!("FROM --platform={p} {image}\n");
                }
                dockerfile.push_str("LABEL org.regcompat.step=\"build-from\"\n");
                let _ = std::fs::write(dir.join("Dockerfile"), dockerfile);
                vec![v(&[
                    s("build"),
                    s("-t"),
                    format!("regcompat-build-{}", step.index),
                    dir.display().to_string(),
                ])]
            }
            Action::Copy => Vec::new(),
        }
    }
}
