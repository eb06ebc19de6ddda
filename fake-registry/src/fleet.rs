//! A fleet: every virtual registry of a [`FleetConfig`] served from one process, each on its
//! own loopback address and port, over TLS with a certificate for its hostname from one CA
//! generated at start, all writing to one journal.
//!
//! Besides the configured hosts, a fleet serves the *auxiliary* hosts their profiles need:
//! token realms on another host ([`Profile::extra_hosts`], e.g. `gitlab.example.com`; named
//! `<host>.realm`) and the storage hosts blob downloads are redirected to (`blob_redirect`
//! of ACR/ECR; named `<host>.storage`). Every hostname gets its own listener, so a client
//! only has to map each name to its address (`/etc/hosts`, `--add-host`, reqwest `resolve`).
//!
//! Addresses: a host without `address` gets the next free 127.0.0.N (N from 2), probing by
//! binding — two fleets in one machine never collide. Ports: 443 unless configured; 0 picks
//! an ephemeral port. Nothing ever binds outside 127.0.0.0/8 or ::1.

use crate::admin;
use crate::api::{Registry, RegistryOptions};
use crate::auth::{Clock, Directory, Principal, PrincipalKind, TokenIssuer};
use crate::config::{FleetConfig, HostConfig, ProfileConfig, parse_grant};
use crate::fault::Faults;
use crate::journal::Journal;
use crate::profile::acr::Acr;
use crate::profile::bearer::Bearer;
use crate::profile::ecr::Ecr;
use crate::profile::gitlab::Gitlab;
use crate::profile::{Profile, open::Open};
use crate::redirect::{BlobRedirect, StorageVendor};
use crate::storage::{DiskStorage, MemoryStorage, Storage};
use crate::tls::{CertificateAuthority, TlsError};
use crate::vhost::{Role, VirtualHost};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How many loopback addresses a fleet tries before giving up on finding a free one.
const ADDRESS_ATTEMPTS: u32 = 4096;
/// ECR's authorization tokens last 12 hours (behaviours.md §4.4).
const ECR_TOKEN_LIFETIME: i64 = 12 * 3600;

pub struct FleetOptions {
    /// `ca.pem` (and `ca-key.pem`, mode 0600) are written here.
    pub state_dir: PathBuf,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet config: field `{field}`: {message}\n  hint: {hint}")]
    Config {
        field: String,
        message: String,
        hint: String,
    },
    #[error("cannot write {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr} for {hostname}: {source}")]
    Bind {
        hostname: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "no free loopback address for {hostname} on port {port} after {ADDRESS_ATTEMPTS} tries"
    )]
    NoAddress { hostname: String, port: u16 },
    #[error("the hostname {0:?} is needed twice (two hosts, or a host and a realm/storage host)")]
    DuplicateHostname(String),
    #[error("cannot open storage directory {dir}: {source}")]
    Storage {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot seed {host}: {repository}:{tag}: {reason}")]
    Seed {
        host: String,
        repository: String,
        tag: String,
        reason: String,
    },
    #[error("cannot create the token signing key of {host}: {reason}")]
    Key { host: String, reason: String },
    #[error("fault rule of {host}: {reason}")]
    Fault { host: String, reason: String },
}

/// One hostname the fleet serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// `acr`, or for auxiliary hosts `acr.storage`, `gitlab.realm`.
    pub name: String,
    pub hostname: String,
    pub addr: SocketAddr,
    /// `https://hostname`, or `https://hostname:port` when the port is not 443.
    pub url: String,
    /// The profile serving it: `acr/1`; `storage/azure-blob` or `storage/s3` for storage hosts.
    pub profile: String,
    pub tls: bool,
    /// `registry`, `realm` or `storage`.
    pub role: String,
}

impl HostInfo {
    /// `hostname[:port]` as image references and credential keys want it.
    pub fn authority(&self) -> &str {
        self.url
            .split_once("://")
            .map(|(_, a)| a)
            .unwrap_or(&self.url)
    }
}

/// A credential of a configured principal (generated when the config gave none).
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    /// The host's name.
    pub host: String,
    pub principal: String,
    pub kind: PrincipalKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub secret: String,
    /// The fleet made the secret up (the config had none).
    pub generated: bool,
}

pub struct Fleet;

pub struct RunningFleet {
    ca_pem: PathBuf,
    hosts: Vec<HostInfo>,
    credentials: Vec<Credential>,
    registries: Vec<(String, Registry)>,
    journal: Arc<Journal>,
    faults: Arc<Faults>,
    clock: Clock,
    admin_url: String,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// A listener bound for a hostname, before it serves.
struct Bound {
    listener: TcpListener,
    info: HostInfo,
}

impl Fleet {
    /// Binds every listener, seeds every registry, and serves until [`RunningFleet::shutdown`].
    /// When this returns, every listener accepts connections.
    pub async fn start(
        config: FleetConfig,
        options: FleetOptions,
    ) -> Result<RunningFleet, FleetError> {
        config
            .validate()
            .map_err(|(field, message, hint)| FleetError::Config {
                field,
                message,
                hint,
            })?;
        let state = |path: PathBuf| move |source| FleetError::State { path, source };
        std::fs::create_dir_all(&options.state_dir).map_err(state(options.state_dir.clone()))?;
        let ca = CertificateAuthority::generate("regcompat fleet CA")?;
        let ca_pem = options.state_dir.join("ca.pem");
        ca.write_pem(&ca_pem)?;
        ca.write_key_pem(options.state_dir.join("ca-key.pem"))?;

        let journal = Arc::new(Journal::default());
        let faults = Arc::new(Faults::default());
        let clock = options.clock.clone();
        let mut allocator = Allocator::new(&config);
        let mut seen_hostnames: Vec<String> = Vec::new();
        let mut claim = |hostname: &str| {
            if seen_hostnames.iter().any(|h| h == hostname) {
                return Err(FleetError::DuplicateHostname(hostname.to_owned()));
            }
            seen_hostnames.push(hostname.to_owned());
            Ok(())
        };
        for h in &config.hosts {
            claim(&h.hostname)?;
        }

        let mut serving: Vec<(Bound, Arc<VirtualHost>)> = Vec::new();
        let mut credentials = Vec::new();
        let mut registries = Vec::new();
        for host in &config.hosts {
            let bound = allocator
                .bind(
                    &host.name,
                    &host.hostname,
                    host.address,
                    host.port,
                    host.tls,
                )
                .await?;
            let authority = host.authority(bound.info.addr.port());
            let registry = open_registry(host).await?;
            registries.push((host.name.clone(), registry.clone()));
            let (directory, creds) = directory_of(host, &clock);
            credentials.extend(creds);
            let profile = build_profile(host, &authority, directory, &clock, &journal)?;
            for rule in &host.faults {
                let mut rule = rule.clone();
                rule.matcher.registry = Some(host.name.clone());
                faults.add(rule).map_err(|e| FleetError::Fault {
                    host: host.name.clone(),
                    reason: e.to_string(),
                })?;
            }
            let mut info = bound.info;
            info.profile = profile.name().to_owned();
            let bound = Bound {
                listener: bound.listener,
                info,
            };

            // Realm hosts: the profile's endpoints on another hostname.
            let mut aux = Vec::new();
            for (i, extra) in profile.extra_hosts().iter().enumerate() {
                if extra == &authority {
                    continue;
                }
                let (hostname, port) = split_authority(extra);
                claim(&hostname)?;
                let name = if i == 0 {
                    format!("{}.realm", host.name)
                } else {
                    format!("{}.realm-{}", host.name, i + 1)
                };
                let mut b = allocator.bind(&name, &hostname, None, port, true).await?;
                b.info.profile = profile.name().to_owned();
                b.info.role = "realm".into();
                aux.push((b, Role::Realm));
            }
            // The storage host blob downloads are redirected to.
            let mut redirect = None;
            if let Some((vendor, target)) = storage_target(&host.profile) {
                let (hostname, port) = split_authority(&target);
                claim(&hostname)?;
                let r = Arc::new(BlobRedirect::new(
                    vendor,
                    &target,
                    &host.name,
                    clock.clone(),
                    journal.redactor.clone(),
                ));
                let name = format!("{}.storage", host.name);
                let mut b = allocator.bind(&name, &hostname, None, port, true).await?;
                b.info.profile = match vendor {
                    StorageVendor::AzureBlob => "storage/azure-blob",
                    StorageVendor::S3 => "storage/s3",
                }
                .into();
                b.info.role = "storage".into();
                aux.push((b, Role::Storage(r.clone())));
                redirect = Some(r);
            }

            let vhost = Arc::new(VirtualHost {
                name: host.name.clone(),
                base_url: bound.info.url.clone(),
                registry: registry.clone(),
                profile: profile.clone(),
                journal: journal.clone(),
                role: Role::Registry,
                redirect,
                faults: Some(faults.clone()),
            });
            serving.push((bound, vhost));
            for (b, role) in aux {
                let vhost = Arc::new(VirtualHost {
                    name: b.info.name.clone(),
                    base_url: b.info.url.clone(),
                    registry: registry.clone(),
                    profile: profile.clone(),
                    journal: journal.clone(),
                    role,
                    redirect: None,
                    faults: Some(faults.clone()),
                });
                serving.push((b, vhost));
            }
        }

        let admin_listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|source| FleetError::Bind {
                    hostname: "admin".into(),
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    source,
                })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| FleetError::Bind {
                hostname: "admin".into(),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                source,
            })?;

        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut hosts = Vec::new();
        for (bound, vhost) in serving {
            let tls = if bound.info.tls {
                Some(ca.issue(std::slice::from_ref(&bound.info.hostname), &[])?)
            } else {
                None
            };
            hosts.push(bound.info.clone());
            let router = vhost.router();
            let stopped = stop.clone().cancelled_owned();
            let hostname = bound.info.hostname.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::listener::serve(bound.listener, tls, router, stopped).await {
                    tracing::error!(%hostname, error = %e, "listener stopped");
                }
            });
        }
        let admin_state = Arc::new(admin::AdminState {
            journal: journal.clone(),
            faults: faults.clone(),
            registries: registries.clone(),
        });
        let admin_router = admin::router(admin_state);
        let stopped = stop.clone().cancelled_owned();
        tasks.spawn(async move {
            if let Err(e) =
                crate::listener::serve(admin_listener, None, admin_router, stopped).await
            {
                tracing::error!(error = %e, "admin listener stopped");
            }
        });
        for h in &hosts {
            tracing::info!(name = %h.name, url = %h.url, addr = %h.addr, "serving");
        }
        Ok(RunningFleet {
            ca_pem,
            hosts,
            credentials,
            registries,
            journal,
            faults,
            clock,
            admin_url: format!("http://{admin_addr}"),
            stop,
            tasks,
        })
    }
}

impl RunningFleet {
    /// The CA certificate clients must trust (PEM).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem
    }

    /// Every hostname served, auxiliary ones (realms, storage) too.
    pub fn hosts(&self) -> &[HostInfo] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Option<&HostInfo> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every principal's credential, by host.
    pub fn credentials(&self) -> &[Credential] {
        &self.credentials
    }

    /// The registry (storage) of a configured host.
    pub fn registry(&self, name: &str) -> Option<&Registry> {
        self.registries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
    }

    /// One journal for the whole fleet: `Entry.registry` is the host's name, `Entry.host` the
    /// `Host` header.
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `http://127.0.0.1:PORT`: the admin API (`/_regcompat/journal`, `/reset`, `/faults`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Stops every listener (in-flight requests get a grace period) and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for RunningFleet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `host[:port]` → (host, port; 443 when absent).
fn split_authority(authority: &str) -> (String, u16) {
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => (authority.to_owned(), 443),
        },
        None => (authority.to_owned(), 443),
    }
}

fn storage_target(profile: &ProfileConfig) -> Option<(StorageVendor, String)> {
    match profile {
        ProfileConfig::Acr(o) => o
            .blob_redirect
            .clone()
            .map(|t| (StorageVendor::AzureBlob, t)),
        ProfileConfig::Ecr(o) => o.blob_redirect.clone().map(|t| (StorageVendor::S3, t)),
        _ => None,
    }
}

/// Hands out loopback addresses: configured ones as given, others 127.0.0.N from N = 2,
/// skipping configured addresses and any `address:port` already taken on this machine.
struct Allocator {
    reserved: Vec<IpAddr>,
    next: u32,
}

impl Allocator {
    fn new(config: &FleetConfig) -> Self {
        Self {
            reserved: config.hosts.iter().filter_map(|h| h.address).collect(),
            next: u32::from(Ipv4Addr::new(127, 0, 0, 2)),
        }
    }

    async fn bind(
        &mut self,
        name: &str,
        hostname: &str,
        address: Option<IpAddr>,
        port: u16,
        tls: bool,
    ) -> Result<Bound, FleetError> {
        let listener = match address {
            Some(addr) => {
                let sa = SocketAddr::new(addr, port);
                TcpListener::bind(sa)
                    .await
                    .map_err(|source| FleetError::Bind {
                        hostname: hostname.to_owned(),
                        addr: sa,
                        source,
                    })?
            }
            None => self.bind_free(hostname, port).await?,
        };
        let addr = listener.local_addr().map_err(|source| FleetError::Bind {
            hostname: hostname.to_owned(),
            addr: SocketAddr::new(address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port),
            source,
        })?;
        let default_port = if tls { 443 } else { 80 };
        let scheme = if tls { "https" } else { "http" };
        let url = if addr.port() == default_port {
            format!("{scheme}://{hostname}")
        } else {
            format!("{scheme}://{hostname}:{}", addr.port())
        };
        Ok(Bound {
            listener,
            info: HostInfo {
                name: name.to_owned(),
                hostname: hostname.to_owned(),
                addr,
                url,
                profile: String::new(),
                tls,
                role: "registry".into(),
            },
        })
    }

    async fn bind_free(&mut self, hostname: &str, port: u16) -> Result<TcpListener, FleetError> {
        for _ in 0..ADDRESS_ATTEMPTS {
            let candidate = Ipv4Addr::from(self.next);
            self.next += 1;
            let last = candidate.octets()[3];
            if last == 0 || last == 255 || self.reserved.contains(&IpAddr::V4(candidate)) {
                continue;
            }
            let sa = SocketAddr::from((candidate, port));
            match TcpListener::bind(sa).await {
                Ok(l) => return Ok(l),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(FleetError::Bind {
                        hostname: hostname.to_owned(),
                        addr: sa,
                        source,
                    });
                }
            }
        }
        Err(FleetError::NoAddress {
            hostname: hostname.to_owned(),
            port,
        })
    }
}

async fn open_registry(host: &HostConfig) -> Result<Registry, FleetError> {
    let storage: Arc<dyn Storage> = match &host.storage {
        Some(dir) => Arc::new(
            DiskStorage::open(dir).map_err(|source| FleetError::Storage {
                dir: dir.clone(),
                source,
            })?,
        ),
        None => Arc::new(MemoryStorage::new()),
    };
    for seed in &host.seed {
        let err = |reason: String| FleetError::Seed {
            host: host.name.clone(),
            repository: seed.repository.clone(),
            tag: seed.tag.clone(),
            reason,
        };
        let spec = seed.image.spec().map_err(err)?;
        let image = crate::fixtures::generate(&spec).map_err(|e| err(e.to_string()))?;
        crate::server::push_image(storage.as_ref(), &seed.repository, &seed.tag, &image)
            .await
            .map_err(err)?;
    }
    let mut options = RegistryOptions::default();
    if matches!(host.profile, ProfileConfig::Ecr(_)) {
        // ECR caps list pages at 1000 (docs/profiles/ecr.md).
        options.page_cap = Some(1000);
    }
    Ok(Registry::new(storage, options))
}

/// The host's principals (secrets generated where the config gave none) and their credentials.
fn directory_of(host: &HostConfig, clock: &Clock) -> (Directory, Vec<Credential>) {
    let now = clock.now();
    let is_ecr = matches!(host.profile, ProfileConfig::Ecr(_));
    let mut principals = Vec::new();
    let mut credentials = Vec::new();
    for p in &host.principals {
        let (secret, generated) = match &p.secret {
            Some(s) => (s.clone(), false),
            None => (
                format!("{}-{}", p.name, uuid::Uuid::new_v4().simple()),
                true,
            ),
        };
        let expires_after = p.expires_after.or(is_ecr.then_some(ECR_TOKEN_LIFETIME));
        principals.push(Principal {
            name: p.name.clone(),
            kind: p.kind,
            username: p.username.clone(),
            secret: secret.clone(),
            // validated by FleetConfig::validate
            grants: p
                .grants
                .iter()
                .filter_map(|g| parse_grant(g).ok())
                .collect(),
            effective_from: p.effective_after.map(|s| now + s),
            expires_at: expires_after.map(|s| now + s),
        });
        credentials.push(Credential {
            host: host.name.clone(),
            principal: p.name.clone(),
            kind: p.kind,
            username: p.username.clone(),
            secret,
            generated,
        });
    }
    let anonymous = host
        .anonymous
        .iter()
        .filter_map(|g| parse_grant(g).ok())
        .collect();
    (
        Directory {
            principals,
            anonymous,
        },
        credentials,
    )
}

fn build_profile(
    host: &HostConfig,
    authority: &str,
    directory: Directory,
    clock: &Clock,
    journal: &Journal,
) -> Result<Arc<dyn Profile>, FleetError> {
    let key_err = |e: crate::auth::TokenError| FleetError::Key {
        host: host.name.clone(),
        reason: e.to_string(),
    };
    Ok(match &host.profile {
        ProfileConfig::Open => Arc::new(Open),
        ProfileConfig::Bearer(o) => {
            let mut o = o.clone();
            if o.service.is_empty() {
                o.service = authority.to_owned();
            }
            let issuer =
                TokenIssuer::generate(&format!("{}-token-issuer", host.name), clock.clone())
                    .map_err(key_err)?;
            Arc::new(Bearer::new(
                o,
                directory,
                Arc::new(issuer),
                journal.redactor.clone(),
            ))
        }
        ProfileConfig::Acr(o) => {
            let mut o = o.clone();
            if o.login_server.is_empty() {
                o.login_server = authority.to_owned();
            }
            // ACR's tokens say `"iss":"Azure Container Registry"` (AAD-OAuth.md).
            let issuer = TokenIssuer::generate("Azure Container Registry", clock.clone())
                .map_err(key_err)?;
            Arc::new(Acr::new(
                o,
                directory,
                Arc::new(issuer),
                journal.redactor.clone(),
            ))
        }
        ProfileConfig::Ecr(o) => {
            let mut o = o.clone();
            if o.host.is_empty() {
                o.host = authority.to_owned();
            }
            Arc::new(Ecr::new(o, directory, clock.clone(), &journal.redactor))
        }
        ProfileConfig::Gitlab(o) => {
            let issuer = TokenIssuer::generate("gitlab-issuer", clock.clone()).map_err(key_err)?;
            Arc::new(Gitlab::new(
                o.clone(),
                directory,
                Arc::new(issuer),
                &journal.redactor,
            ))
        }
    })
}
