//! A stop-gap [`FleetLauncher`] until `fake_registry::fleet` (branch `fleet2`) lands:
//! serves the scenario's `open`-profile hosts over TLS on the cell's loopback
//! addresses, with a per-cell CA. Scenarios whose hosts use any other profile are
//! refused with a reason (the cell becomes `error`, never `pass`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::journal::Journal;
use fake_registry::profile::open::Open;
use fake_registry::storage::MemoryStorage;
use fake_registry::tls::CertificateAuthority;
use fake_registry::vhost::VirtualHost;
use fake_registry::{Registry, RegistryOptions};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::runner::{CellFleet, FleetHost, FleetLauncher, cell_address};
use crate::scenario::Scenario;

pub struct InterimLauncher {
    rt: tokio::runtime::Runtime,
}

impl InterimLauncher {
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Self { rt })
    }
}

struct Running {
    hosts: Vec<FleetHost>,
    ca_pem: String,
    journal: Arc<Journal>,
    stops: Vec<oneshot::Sender<()>>,
}

impl CellFleet for Running {
    fn hosts(&self) -> Vec<FleetHost> {
        self.hosts.clone()
    }
    fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }
    fn journal(&self) -> Vec<Value> {
        self.journal
            .all()
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    }
    fn shutdown(self: Box<Self>) {
        for s in self.stops {
            let _ = s.send(());
        }
    }
}

fn seed_spec(seed: &toml::Table) -> Result<(String, String, ImageSpec), String> {
    let s = |k: &str| seed.get(k).and_then(|v| v.as_str()).map(String::from);
    let repository = s("repository").ok_or("seed without repository")?;
    let tag = s("tag").ok_or("seed without tag")?;
    let sizes: Vec<usize> = seed
        .get("layer_sizes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_integer())
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_else(|| vec![1024]);
    let spec = match s("image").as_deref().unwrap_or("single") {
        "single" => ImageSpec::single(Format::Oci, &sizes),
        "oci-index" => ImageSpec::multi(Format::Oci, &["linux/amd64", "linux/arm64"], &sizes)?,
        "docker-list" => ImageSpec::multi(Format::Docker, &["linux/amd64", "linux/arm64"], &sizes)?,
        other => return Err(format!("unknown seed image `{other}`")),
    };
    Ok((repository, tag, spec))
}

impl FleetLauncher for InterimLauncher {
    fn start(
        &self,
        scenario: &Scenario,
        index: usize,
        _dir: &Path,
    ) -> Result<Box<dyn CellFleet>, String> {
        if scenario.host.is_empty() {
            return Err("fleet files need fake_registry::fleet (not merged yet)".into());
        }
        let ca = CertificateAuthority::generate(&format!("regcompat cell {index} CA"))
            .map_err(|e| e.to_string())?;
        let journal = Arc::new(Journal::default());
        let mut hosts = Vec::new();
        let mut stops = Vec::new();
        for (h, table) in scenario.host.iter().enumerate() {
            let get = |k: &str| table.get(k).and_then(|v| v.as_str()).map(String::from);
            let name = get("name").ok_or("host without name")?;
            let hostname = get("hostname").ok_or("host without hostname")?;
            let kind = table
                .get("profile")
                .and_then(|p| p.get("kind"))
                .and_then(|k| k.as_str())
                .unwrap_or("");
            if kind != "open" {
                return Err(format!(
                    "profile `{kind}` of host `{name}` needs fake_registry::fleet (not merged yet)"
                ));
            }
            let addr = cell_address(index, h).ok_or("too many cells for the address plan")?;
            let tls = ca
                .issue(std::slice::from_ref(&hostname), &[])
                .map_err(|e| e.to_string())?;
            let storage = Arc::new(MemoryStorage::new());
            let seeds: Vec<toml::Table> = table
                .get("seed")
                .and_then(|s| s.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_table().cloned()).collect())
                .unwrap_or_default();
            let (tx, rx) = oneshot::channel::<()>();
            let journal2 = journal.clone();
            let host_name = name.clone();
            let base_url = format!("https://{hostname}");
            let bound: Result<SocketAddr, String> = self.rt.block_on(async move {
                for seed in &seeds {
                    let (repo, tag, spec) = seed_spec(seed)?;
                    let image = fixtures::generate(&spec).map_err(|e| e.to_string())?;
                    fake_registry::server::push_image(storage.as_ref(), &repo, &tag, &image)
                        .await?;
                }
                let registry = Registry::new(storage, RegistryOptions::default());
                let vhost = Arc::new(VirtualHost {
                    name: host_name,
                    base_url,
                    registry,
                    profile: Arc::new(Open),
                    journal: journal2,
                });
                let listener = tokio::net::TcpListener::bind(SocketAddr::new(addr, 443))
                    .await
                    .map_err(|e| format!("bind {addr}:443: {e}"))?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                tokio::spawn(fake_registry::listener::serve(
                    listener,
                    Some(tls),
                    vhost.router(),
                    async {
                        let _ = rx.await;
                    },
                ));
                Ok(local)
            });
            let bound = bound?;
            stops.push(tx);
            hosts.push(FleetHost {
                name,
                authority: hostname.clone(),
                hostname,
                addr: bound.ip(),
            });
        }
        Ok(Box::new(Running {
            hosts,
            ca_pem: ca.cert_pem(),
            journal,
            stops,
        }))
    }
}
