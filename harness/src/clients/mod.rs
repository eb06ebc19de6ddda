//! Client drivers: one module per client. A driver says which abstract actions its client
//! has, turns each into command lines, and names the daemons the client needs (with the
//! configuration files they read); it never decides an outcome — the real process does. An
//! action a client lacks makes the cell `not-applicable`.

pub mod buildah;
pub mod buildkit;
pub mod containerd;
pub mod crane;
pub mod daemons;
pub mod docker;
pub mod jib;
pub mod nerdctl;
pub mod oras;
pub mod pack;
pub mod podman;
pub mod refclient;
pub mod regctl;
pub mod skopeo;

use crate::sandbox::Sandbox;
use crate::scenario::{Action, ClientSetup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A step with its placeholders resolved.
#[derive(Debug, Clone)]
pub enum ResolvedAction {
    Login {
        registry: String,
        username: String,
        password: String,
    },
    /// `context`: a build context `FROM image` + `COPY`, for clients that pull by building.
    Pull {
        image: String,
        context: PathBuf,
    },
    /// Push the OCI layout at `layout` (written by the runner) to `to`; `layer` is the same
    /// image's layer as a `.tar.gz` (for clients that build an image from a rootfs tarball);
    /// `context` is a build context `FROM scratch` + `COPY` (for clients that only push what
    /// they build).
    Push {
        layout: PathBuf,
        layer: PathBuf,
        context: PathBuf,
        to: String,
    },
    Copy {
        from: String,
        to: String,
    },
    /// Build `context` (a Dockerfile `FROM base` + `COPY`, written by the runner); push the
    /// result to `to` when there is one.
    /// `platforms` (`os/arch`): the platforms to build, for clients that build several
    /// (Jib); empty = the client's default.
    BuildFrom {
        context: PathBuf,
        base: String,
        to: Option<String>,
        platforms: Vec<String>,
    },
    /// Create a buildpacks builder from `build_image` and `run_image` and publish it to
    /// `to`; `dir` is an empty directory for the builder's files (builder.toml, buildpack).
    BuilderCreate {
        dir: PathBuf,
        build_image: String,
        run_image: String,
        to: String,
        /// `--publish` (daemonless); else the daemon path.
        publish: bool,
    },
    /// Build the app in `dir` (generated source) with `builder`, whose run image is
    /// `run_image`, and publish it to `to`.
    AppBuild {
        dir: PathBuf,
        builder: String,
        run_image: String,
        to: String,
        /// `--publish` (daemonless export by the lifecycle); else the daemon path.
        publish: bool,
    },
}

/// A registry mirror as the client configures it: requests for `upstream` (an authority,
/// `host[:port]`) go first to `mirror` (an authority) under `path` (`""` or `proxy/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub upstream: String,
    pub mirror: String,
    pub path: String,
}

/// Docker Hub's registry host. Clients name its images `docker.io/…`, key Docker Hub's
/// configuration (mirrors, hosts directories, registries.conf) by `docker.io`, and talk to
/// this host.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

impl Mirror {
    /// The name clients key this mirror's upstream by: `docker.io` for Docker Hub (the
    /// domain of its references), else the upstream's authority.
    pub fn upstream_key(&self) -> &str {
        if self.upstream == DOCKER_HUB_HOST {
            "docker.io"
        } else {
            &self.upstream
        }
    }

    /// A mirror of Docker Hub without a path: what dockerd's `registry-mirrors` express.
    pub fn is_plain_docker_hub_mirror(&self) -> bool {
        self.upstream == DOCKER_HUB_HOST && self.path.is_empty()
    }
}

/// What a driver knows of its cell.
pub struct CellEnv<'a> {
    /// The client's binary.
    pub bin: &'a Path,
    pub sandbox: &'a Sandbox,
    /// Where the binaries of the clients this one requires live (buildkitd, containerd,
    /// runc…); the runner puts them on `PATH` too.
    pub tools: &'a [PathBuf],
    /// Every registry authority (`host[:port]`) of the fleet.
    pub registries: &'a [String],
    pub mirrors: &'a [Mirror],
    /// The fleet's CA certificate (PEM).
    pub ca_file: &'a Path,
    /// The Basic credentials the cell's `config.json` holds, by key, for clients that take
    /// credentials on their command line instead (ctr `--user`).
    pub credentials: &'a BTreeMap<String, (String, String)>,
    /// The identity tokens (`az acr login`'s refresh tokens) config.json holds, by key, for
    /// clients that take one on their command line instead (ctr `--refresh`).
    pub identity_tokens: &'a BTreeMap<String, String>,
}

impl CellEnv<'_> {
    /// A binary by name (`buildkitd`): beside the client's, else in a required client's
    /// directory, else the name itself (found on `PATH`).
    pub fn tool(&self, name: &str) -> String {
        self.bin
            .parent()
            .into_iter()
            .chain(self.tools.iter().map(PathBuf::as_path))
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(name))
            .display()
            .to_string()
    }

    /// The client's own binary as a string.
    pub fn bin(&self) -> String {
        self.bin.display().to_string()
    }
}

/// One daemon of a cell: started before the first step, in order, and stopped after the
/// last, in reverse order.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// `dockerd`, `containerd`, `buildkitd`: names its log file in the sandbox.
    pub name: &'static str,
    pub argv: Vec<String>,
    /// A command that exits 0 once the daemon is ready.
    pub ready: Vec<String>,
    /// `(sandbox dir, fixed path)` bind mounts in the daemon's mount namespace, for paths
    /// the daemon cannot be told to move.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

pub trait Driver: Send + Sync {
    /// The client's name in `clients.toml` (`crane`, `buildkit`).
    fn name(&self) -> &'static str;
    /// The binary to run, among the installed client's binaries.
    fn binary(&self) -> &'static str;
    fn supports(&self, action: Action) -> bool;
    /// The commands of one action, run in order until one fails; the last one run carries
    /// the step's expectation.
    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>>;
    /// How many leading commands of `action` only prepare local state (a `docker import` of
    /// the image to push): they must succeed, and their failure never counts as the action's
    /// expected failure. The action's own commands follow.
    fn preparation(&self, _action: &ResolvedAction) -> usize {
        0
    }
    /// Environment added to the sandbox's for every command.
    fn env(&self, _cell: &CellEnv) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Why the client cannot be tested with this client-side setup (the cell is then
    /// `not-applicable`), e.g. a mirror for a client that has no mirror configuration.
    fn unsupported_setup(&self, _setup: &ClientSetup) -> Option<String> {
        None
    }
    /// Writes what an action's commands read (a builder.toml, a Maven project…) before
    /// they run; an error is the harness's, not the client's.
    fn prepare(&self, _cell: &CellEnv, _action: &ResolvedAction) -> Result<(), String> {
        Ok(())
    }
    /// `(sandbox dir, fixed path)` bind mounts in the mount namespace of every command of
    /// the cell, for state a client writes to a fixed path whatever its flags say
    /// (podman's and buildah's blob-info cache under `/var/lib/containers/cache`).
    fn binds(&self, _cell: &CellEnv) -> Vec<(PathBuf, PathBuf)> {
        Vec::new()
    }
    /// The daemons the client needs; may write their configuration files into the sandbox.
    fn daemons(&self, _cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        Ok(Vec::new())
    }
}

/// The commands `driver` gives for `action` in a cell at `/cell` with nothing configured
/// (no tools, registries, mirrors or credentials): for the drivers' unit tests.
#[cfg(test)]
pub(crate) fn commands_in_bare_cell(
    driver: &dyn Driver,
    bin: &str,
    action: &ResolvedAction,
) -> (crate::sandbox::Sandbox, Vec<Vec<String>>) {
    let sandbox = crate::sandbox::Sandbox::at(Path::new("/cell"));
    let credentials = std::collections::BTreeMap::new();
    let identity_tokens = std::collections::BTreeMap::new();
    let cell = CellEnv {
        bin: Path::new(bin),
        sandbox: &sandbox,
        tools: &[],
        registries: &[],
        mirrors: &[],
        ca_file: Path::new("/cell/ca.pem"),
        credentials: &credentials,
        identity_tokens: &identity_tokens,
    };
    let argv = driver.commands(&cell, action);
    (sandbox, argv)
}

/// Every driver the runner knows.
pub fn all() -> Vec<Box<dyn Driver>> {
    vec![
        Box::new(crane::Crane),
        Box::new(skopeo::Skopeo),
        Box::new(podman::Podman),
        Box::new(buildah::Buildah),
        Box::new(docker::Docker),
        Box::new(buildkit::Buildctl),
        Box::new(nerdctl::Nerdctl),
        Box::new(containerd::Ctr),
        Box::new(pack::Pack),
        Box::new(jib::Jib),
        Box::new(regctl::Regctl),
        Box::new(oras::Oras),
        Box::new(refclient::RefClient::default()),
    ]
}

/// The driver of a client, by its name in `clients.toml`.
pub fn by_name(name: &str) -> Option<Box<dyn Driver>> {
    all().into_iter().find(|d| d.name() == name)
}

/// The scenario's mirrors grouped by upstream ([`Mirror::upstream_key`]: `docker.io` for
/// Docker Hub), upstreams and mirrors in the scenario's order: the shape of every client's
/// mirror configuration (one entry per upstream, its mirrors tried in order).
pub(crate) fn mirrors_by_upstream(mirrors: &[Mirror]) -> Vec<(&str, Vec<&Mirror>)> {
    let mut groups: Vec<(&str, Vec<&Mirror>)> = Vec::new();
    for m in mirrors {
        match groups.iter_mut().find(|(u, _)| *u == m.upstream_key()) {
            Some((_, list)) => list.push(m),
            None => groups.push((m.upstream_key(), vec![m])),
        }
    }
    groups
}

/// The reason a client without registry-mirror configuration cannot run a mirror scenario.
pub(crate) fn no_mirrors(setup: &ClientSetup, why: &str) -> Option<String> {
    (!setup.mirrors.is_empty()).then(|| format!("the scenario configures registry mirrors; {why}"))
}

/// The reason a client that never infers a credential helper from the registry's hostname
/// (only Jib does: `docker-credential-ecr-login` for `*.amazonaws.com`, behaviours.md §4.2)
/// cannot run a scenario that puts the inferred helper on `PATH`: what the user intends
/// there depends on that inference, which the client does not claim to do.
pub(crate) fn no_inferred_helper(setup: &ClientSetup, client: &str) -> Option<String> {
    setup.ecr_login_helper.then(|| {
        format!(
            "the scenario relies on an inferred docker-credential-ecr-login (Jib's \
             documented lookup); {client} infers no credential helper"
        )
    })
}

/// `argv` from a binary and string-ish arguments.
pub(crate) fn cmd<S: AsRef<str>>(bin: &str, args: &[S]) -> Vec<String> {
    std::iter::once(bin.to_owned())
        .chain(args.iter().map(|a| a.as_ref().to_owned()))
        .collect()
}
