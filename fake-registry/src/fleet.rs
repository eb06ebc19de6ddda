//! A fleet: many virtual registries served by one process, each under its own hostname, on its
//! own loopback address and port (443 by default), over TLS with certificates from a CA
//! generated at start. One journal records every host, so a scenario can see the whole
//! conversation — the registry, its token realm on another host, a mirror and its upstream.
//!
//! Hostnames are what clients dial; the runner makes them resolve to these addresses with a
//! hosts file in the client's private mount namespace. Token realms are built from hostnames,
//! never IP literals (go-containerregistry ≥ 0.21.4 refuses loopback-IP realms).

use crate::api::{Registry, RegistryOptions};
use crate::auth::Clock;
use crate::fault::{FaultConfig, Faults};
use crate::fixtures::{Image, ImageSpec};
use crate::journal::{Journal, JournalLimits};
use crate::listener;
use crate::server::{ProfileChoice, StartError, build_profile, push_image};
use crate::storage::{DiskStorage, MemoryStorage, Storage};
use crate::tls::{CertificateAuthority, TlsError};
use crate::vhost::{Role, VirtualHost};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One registry of the fleet.
pub struct HostSpec {
    /// How journals and reports refer to it (`acr`, `mirror`).
    pub name: String,
    /// What clients dial: `myregistry.azurecr.io`.
    pub hostname: String,
    /// Loopback (or, with [`FleetOptions::private_network`], RFC 5737); `None` = the next
    /// free address from [`FleetOptions::first_address`].
    pub address: Option<IpAddr>,
    /// 443 unless said otherwise; 0 = ephemeral.
    pub port: u16,
    pub tls: bool,
    pub profile: ProfileChoice,
    pub options: RegistryOptions,
    pub storage: Option<PathBuf>,
    pub seeds: Vec<(String, String, Image)>,
    /// Seeds with a file holding the fleet's CA: generated when the fleet has made it.
    pub fleet_ca_seeds: Vec<(String, String, ImageSpec)>,
    /// Fault rules of this host (their `match.host` is set to the host's name).
    pub faults: Vec<FaultConfig>,
    /// The TLS versions the host speaks; empty: 1.3 and 1.2.
    pub tls_versions: Vec<crate::tls::TlsVersion>,
}

impl HostSpec {
    /// An open registry on `hostname`, port 443, TLS.
    pub fn new(name: &str, hostname: &str, profile: ProfileChoice) -> Self {
        Self {
            name: name.to_owned(),
            hostname: hostname.to_ascii_lowercase(),
            address: None,
            port: 443,
            tls: true,
            profile,
            options: RegistryOptions::default(),
            storage: None,
            seeds: Vec::new(),
            fleet_ca_seeds: Vec::new(),
            faults: Vec::new(),
            tls_versions: Vec::new(),
        }
    }
}

pub struct FleetOptions {
    /// Where `ca.pem` (and the CA key, mode 0600) are written.
    pub state_dir: PathBuf,
    pub clock: Clock,
    /// Addresses for hosts that do not name one are taken from here upwards (default
    /// 127.0.0.2); an address whose port is already in use is skipped.
    pub first_address: Ipv4Addr,
    /// Where the admin API listens (plain HTTP, loopback only); default `127.0.0.1:0`, an
    /// ephemeral port. `None`: no admin API.
    pub admin: Option<SocketAddr>,
    /// How much the fleet's journal keeps (entries, bytes); [`JournalLimits::DEFAULT`].
    pub journal_limits: JournalLimits,
    /// Time limits of every listener of the fleet, the admin API's included
    /// ([`listener::ConnectionLimits::default`]).
    pub connection_limits: listener::ConnectionLimits,
    /// The fleet runs on threads inside a private network namespace (no interface out, no
    /// default route — checked at start by [`crate::addresses::check_private_network`]):
    /// its hosts and its mirrors' upstreams may then use RFC 5737 addresses as well as
    /// loopback. The harness's per-cell network sets it; `serve` never does.
    pub private_network: bool,
}

impl FleetOptions {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            clock: Clock::system(),
            first_address: Ipv4Addr::new(127, 0, 0, 2),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            journal_limits: JournalLimits::DEFAULT,
            connection_limits: listener::ConnectionLimits::default(),
            private_network: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("host {name}: {reason}")]
    Host { name: String, reason: String },
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot write {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What clients need to know of one served hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// The registry's name (a realm host carries its registry's name).
    pub name: String,
    pub hostname: String,
    pub addr: SocketAddr,
    /// `https://hostname`, with `:port` when it is not the scheme's default.
    pub url: String,
    /// `acr/1`…
    pub profile: String,
    pub tls: bool,
    /// `registry` for a registry, `realm` for a profile's extra host (token service),
    /// `storage` for the host blob downloads are redirected to.
    pub role: String,
}

impl HostInfo {
    /// `hostname` or `hostname:port`, as image references and `config.json` keys want it.
    pub fn authority(&self) -> String {
        authority(&self.hostname, self.addr.port(), self.tls)
    }
}

fn authority(hostname: &str, port: u16, tls: bool) -> String {
    let default = if tls { 443 } else { 80 };
    if port == default {
        hostname.to_owned()
    } else {
        format!("{hostname}:{port}")
    }
}

pub struct Fleet;

impl Fleet {
    /// Binds every host, seeds it and serves it; returns once all accept connections.
    pub async fn start(
        hosts: Vec<HostSpec>,
        options: FleetOptions,
    ) -> Result<RunningFleet, FleetError> {
        check_unique(&hosts)?;
        let private = options.private_network;
        if private {
            crate::addresses::check_private_network().map_err(|reason| FleetError::Host {
                name: "fleet".into(),
                reason,
            })?;
        }
        std::fs::create_dir_all(&options.state_dir).map_err(|source| FleetError::State {
            path: options.state_dir.clone(),
            source,
        })?;
        let ca = CertificateAuthority::generate("regcompat fake registry CA")?;
        let ca_path = options.state_dir.join("ca.pem");
        ca.write_pem(&ca_path)?;
        ca.write_key_pem(options.state_dir.join("ca-key.pem"))?;

        let journal = Arc::new(Journal::with_limits(options.journal_limits));
        let faults = Arc::new(Faults::default());
        let mut addresses = AddressPool::new(options.first_address, &hosts, private);
        let stop = CancellationToken::new();
        let limits = options.connection_limits;
        let mut tasks = JoinSet::new();
        let mut infos = Vec::new();

        let admin_url = match options.admin {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    return Err(FleetError::Host {
                        name: "admin".into(),
                        reason: format!("address {addr} is not loopback"),
                    });
                }
                let listener = bind("admin", addr).await?;
                let addr = listener.local_addr().map_err(|e| host_err("admin", e))?;
                let app = crate::admin::router(Arc::new(crate::admin::AdminState {
                    journal: journal.clone(),
                    faults: faults.clone(),
                    addr,
                }));
                let stopped = stop.clone();
                tasks.spawn(async move {
                    let shutdown = async move { stopped.cancelled().await };
                    if let Err(e) =
                        listener::serve_with_limits(listener, None, app, shutdown, limits).await
                    {
                        tracing::error!(error = %e, "admin listener stopped");
                    }
                });
                Some(format!("http://{addr}"))
            }
            None => None,
        };

        // Bind first so that every hostname's address is known before any profile (a
        // mirror resolves its upstreams by hostname) is built.
        let mut bound = Vec::new();
        for spec in hosts {
            let listener = match spec.address {
                Some(ip) if !crate::addresses::permitted(ip, private) => {
                    return Err(FleetError::Host {
                        name: spec.name,
                        reason: format!(
                            "address {ip} is not {}",
                            crate::addresses::permitted_text(private)
                        ),
                    });
                }
                Some(ip) => bind(&spec.name, SocketAddr::new(ip, spec.port)).await?,
                None => bind_free(&mut addresses, &spec.name, spec.port).await?,
            };
            bound.push((spec, listener));
        }
        let resolve: Vec<(String, SocketAddr)> = bound
            .iter()
            .filter_map(|(s, l)| l.local_addr().ok().map(|a| (s.hostname.clone(), a)))
            .collect();
        // Mirrors are built last, so that the realm hosts of their upstreams (bound while
        // the upstreams are built) are known to them too. The sort is stable.
        bound.sort_by_key(|(s, _)| matches!(s.profile, ProfileChoice::Mirror { .. }));

        for (mut spec, listener) in bound {
            let addr = listener.local_addr().map_err(|e| host_err(&spec.name, e))?;
            if let ProfileChoice::Mirror { options: m, .. } = &mut spec.profile {
                let realms = infos.iter().map(|i: &HostInfo| (&i.hostname, &i.addr));
                for (h, a) in resolve.iter().map(|(h, a)| (h, a)).chain(realms) {
                    m.resolve.entry(h.clone()).or_insert(*a);
                }
                m.ca_pem.get_or_insert_with(|| ca_path.clone());
                m.private_network = private;
            }
            let storage: Arc<dyn Storage> = match &spec.storage {
                Some(dir) => Arc::new(
                    DiskStorage::open_with_clock(dir, options.clock.clone()).map_err(|source| {
                        StartError::Storage {
                            dir: dir.clone(),
                            source,
                        }
                    })?,
                ),
                None => Arc::new(MemoryStorage::with_clock(options.clock.clone())),
            };
            for (repository, tag, image_spec) in std::mem::take(&mut spec.fleet_ca_seeds) {
                let image =
                    crate::fixtures::generate(&image_spec.with_fleet_ca(ca.cert_pem().as_bytes()))
                        .map_err(|e| StartError::Seed {
                            repository: repository.clone(),
                            tag: tag.clone(),
                            reason: e.to_string(),
                        })?;
                spec.seeds.push((repository, tag, image));
            }
            for (repository, tag, image) in &spec.seeds {
                push_image(storage.as_ref(), repository, tag, image)
                    .await
                    .map_err(|reason| StartError::Seed {
                        repository: repository.clone(),
                        tag: tag.clone(),
                        reason,
                    })?;
            }
            for mut rule in std::mem::take(&mut spec.faults) {
                rule.matcher.host.get_or_insert_with(|| spec.name.clone());
                faults.add(rule).map_err(|e| FleetError::Host {
                    name: spec.name.clone(),
                    reason: format!("fault rule: {e}"),
                })?;
            }
            let registry = Registry::with_clock(storage, spec.options, options.clock.clone());
            let profile = build_profile(spec.profile, &spec.name, &options.clock, &journal)?;
            let scheme = if spec.tls { "https" } else { "http" };
            let url = format!(
                "{scheme}://{}",
                authority(&spec.hostname, addr.port(), spec.tls)
            );
            let extra_hosts = profile.extra_hosts();
            let profile_name = profile.name().to_owned();
            let redirect = profile.blob_redirect();
            let mut vhost = VirtualHost::new(&spec.name, &url, registry, profile, journal.clone());
            vhost.redirect = redirect.clone();
            vhost.faults = Some(faults.clone());
            let vhost = Arc::new(vhost);
            let tls = if spec.tls {
                Some(ca.issue_with_versions(
                    std::slice::from_ref(&spec.hostname),
                    &[],
                    &spec.tls_versions,
                )?)
            } else {
                None
            };
            serve(&mut tasks, listener, tls, vhost.clone(), &stop, limits);
            infos.push(HostInfo {
                name: spec.name.clone(),
                hostname: spec.hostname.clone(),
                addr,
                url,
                profile: profile_name.clone(),
                tls: spec.tls,
                role: "registry".into(),
            });
            // A profile's extra hosts (a token realm on another hostname, the storage host
            // blob downloads are redirected to) get their own address, port 443 and
            // certificate, and are served by the same registry.
            for extra in extra_hosts {
                let extra = extra.to_ascii_lowercase();
                let storage = redirect.as_ref().filter(|r| r.authority == extra);
                // A realm on the registry's own hostname is served by the registry's listener
                // (the profile names it with the registry's port); any other hostname is
                // served once.
                if extra == spec.hostname && storage.is_none() {
                    continue;
                }
                let taken = infos.iter().any(|h| h.hostname == extra)
                    || resolve.iter().any(|(h, _)| *h == extra);
                if taken {
                    let what = if storage.is_some() {
                        "storage"
                    } else {
                        "realm"
                    };
                    return Err(FleetError::Host {
                        name: spec.name.clone(),
                        reason: format!(
                            "{what} host {extra} is already served by another host; give this \
                             profile its own {what} hostname"
                        ),
                    });
                }
                let listener = bind_free(&mut addresses, &spec.name, 443).await?;
                let extra_addr = listener.local_addr().map_err(|e| host_err(&spec.name, e))?;
                let tls = ca.issue(std::slice::from_ref(&extra), &[])?;
                let (served, role) = match storage {
                    Some(r) => (
                        Arc::new(vhost.with_role(Role::Storage(r.clone()))),
                        "storage",
                    ),
                    None => (vhost.clone(), "realm"),
                };
                serve(&mut tasks, listener, Some(tls), served, &stop, limits);
                infos.push(HostInfo {
                    name: spec.name.clone(),
                    hostname: extra.clone(),
                    addr: extra_addr,
                    url: format!("https://{extra}"),
                    profile: profile_name.clone(),
                    tls: true,
                    role: role.into(),
                });
            }
        }
        Ok(RunningFleet {
            ca_path,
            hosts: infos,
            admin_url,
            faults,
            journal,
            clock: options.clock,
            stop,
            tasks,
        })
    }
}

/// A running fleet. Dropping it stops every listener.
pub struct RunningFleet {
    ca_path: PathBuf,
    hosts: Vec<HostInfo>,
    admin_url: Option<String>,
    faults: Arc<Faults>,
    journal: Arc<Journal>,
    clock: Clock,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningFleet {
    /// The CA every host's certificate chains to (PEM), for clients to trust.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// Every hostname served, realm hosts included.
    pub fn hosts(&self) -> &[HostInfo] {
        &self.hosts
    }

    /// The registry host named `name` (not its realm hosts).
    pub fn host(&self, name: &str) -> Option<&HostInfo> {
        self.hosts
            .iter()
            .find(|h| h.name == name && h.role == "registry")
    }

    /// `http://127.0.0.1:PORT` of the admin API ([`crate::admin`]); `None` when
    /// [`FleetOptions::admin`] was `None`.
    pub fn admin_url(&self) -> Option<&str> {
        self.admin_url.as_deref()
    }

    /// The fault rules every host checks (the admin API edits the same rules).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// One journal for the whole fleet; `Entry.registry` names the host's registry.
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Stops accepting, lets requests in flight finish (bounded by the listener's grace),
    /// and waits until every listener is closed.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for RunningFleet {
    fn drop(&mut self) {
        self.stop.cancel();
        self.tasks.abort_all();
    }
}

fn serve(
    tasks: &mut JoinSet<()>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    vhost: Arc<VirtualHost>,
    stop: &CancellationToken,
    limits: listener::ConnectionLimits,
) {
    let stopped = stop.clone();
    tasks.spawn(async move {
        let shutdown = async move { stopped.cancelled().await };
        if let Err(e) =
            listener::serve_with_limits(listener, tls, vhost.router(), shutdown, limits).await
        {
            tracing::error!(error = %e, "listener stopped");
        }
    });
}

async fn bind(name: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, FleetError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| FleetError::Host {
            name: name.to_owned(),
            reason: format!("cannot listen on {addr}: {e}"),
        })
}

/// How many busy addresses are skipped before giving up.
const MAX_BUSY_ADDRESSES: usize = 1024;

/// Binds `port` on the next address of the pool that is free: an address where `port` is
/// already in use (another fleet, another service) is skipped, so two fleets of the same
/// configuration start side by side.
async fn bind_free(
    addresses: &mut AddressPool,
    name: &str,
    port: u16,
) -> Result<tokio::net::TcpListener, FleetError> {
    let mut busy = 0;
    loop {
        let addr = SocketAddr::new(addresses.next()?, port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && busy < MAX_BUSY_ADDRESSES => {
                tracing::debug!(%addr, host = name, "address in use; trying the next one");
                busy += 1;
            }
            Err(e) => {
                return Err(FleetError::Host {
                    name: name.to_owned(),
                    reason: format!("cannot listen on {addr}: {e}"),
                });
            }
        }
    }
}

fn host_err(name: &str, e: std::io::Error) -> FleetError {
    FleetError::Host {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

fn check_unique(hosts: &[HostSpec]) -> Result<(), FleetError> {
    let mut names = BTreeSet::new();
    let mut hostnames = BTreeSet::new();
    for h in hosts {
        if !names.insert(h.name.as_str()) {
            return Err(FleetError::Host {
                name: h.name.clone(),
                reason: "two hosts have this name".into(),
            });
        }
        if !hostnames.insert(h.hostname.as_str()) {
            return Err(FleetError::Host {
                name: h.name.clone(),
                reason: format!("hostname {} is served twice", h.hostname),
            });
        }
    }
    Ok(())
}

/// Hands out loopback addresses not named by any host.
struct AddressPool {
    next: u32,
    taken: BTreeSet<IpAddr>,
    private_network: bool,
}

impl AddressPool {
    fn new(first: Ipv4Addr, hosts: &[HostSpec], private_network: bool) -> Self {
        Self {
            next: u32::from(first),
            taken: hosts.iter().filter_map(|h| h.address).collect(),
            private_network,
        }
    }

    /// The next free address; an error once the permitted range (loopback, or in a private
    /// network the documentation range the pool started in) is exhausted — never an address
    /// outside it.
    fn next(&mut self) -> Result<IpAddr, FleetError> {
        loop {
            let ip = IpAddr::V4(Ipv4Addr::from(self.next));
            if !crate::addresses::permitted(ip, self.private_network) || self.next == u32::MAX {
                return Err(FleetError::Host {
                    name: "fleet".into(),
                    reason: format!(
                        "no free address left in {}",
                        crate::addresses::permitted_text(self.private_network)
                    ),
                });
            }
            self.next += 1;
            if self.taken.insert(ip) {
                return Ok(ip);
            }
        }
    }
}
