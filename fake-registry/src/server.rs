//! Starting a registry: the embeddable builder (`FakeRegistry::builder() … .start()`) and the
//! handle it returns. The binary's `serve` uses the same path.

use crate::api::{Registry, RegistryOptions};
use crate::auth::{Clock, Directory, TokenIssuer};
use crate::fixtures::Image;
use crate::journal::{Journal, JournalLimits};
use crate::listener::ConnectionLimits;
use crate::profile::acr::{Acr, AcrOptions};
use crate::profile::bearer::{Bearer, BearerOptions};
use crate::profile::dockerhub::{Dockerhub, DockerhubOptions};
use crate::profile::ecr::{Ecr, EcrOptions};
use crate::profile::gitlab::{Gitlab, GitlabOptions};
use crate::profile::mirror::{Mirror, MirrorOptions};
use crate::profile::{Profile, open::Open};
use crate::storage::{Chunk, DiskStorage, MemoryStorage, Storage};
use crate::vhost::VirtualHost;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Entry point of the embeddable API.
pub struct FakeRegistry;

impl FakeRegistry {
    pub fn builder() -> FakeRegistryBuilder {
        FakeRegistryBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage_dir: None,
            options: RegistryOptions::default(),
            seeds: Vec::new(),
            name: "registry".into(),
            auth: ProfileChoice::Open,
            clock: Clock::system(),
            journal: None,
            journal_limits: JournalLimits::DEFAULT,
            connection_limits: ConnectionLimits::default(),
        }
    }
}

/// Which vendor profile a registry runs, with its options and principals.
pub enum ProfileChoice {
    Open,
    Bearer {
        options: BearerOptions,
        directory: Directory,
    },
    Acr {
        options: AcrOptions,
        directory: Directory,
    },
    Ecr {
        options: EcrOptions,
        directory: Directory,
    },
    Gitlab {
        options: GitlabOptions,
        directory: Directory,
    },
    Dockerhub {
        options: DockerhubOptions,
        directory: Directory,
    },
    Mirror {
        options: MirrorOptions,
        directory: Directory,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open storage directory {dir}: {source}")]
    Storage {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the token signing key: {0}")]
    Key(String),
    #[error("bad profile configuration: {0}")]
    Profile(String),
    #[error("cannot seed {repository}:{tag}: {reason}")]
    Seed {
        repository: String,
        tag: String,
        reason: String,
    },
}

struct Seed {
    repository: String,
    tag: String,
    image: Image,
}

pub struct FakeRegistryBuilder {
    listen: SocketAddr,
    storage_dir: Option<PathBuf>,
    options: RegistryOptions,
    seeds: Vec<Seed>,
    name: String,
    auth: ProfileChoice,
    clock: Clock,
    journal: Option<Arc<Journal>>,
    journal_limits: JournalLimits,
    connection_limits: ConnectionLimits,
}

impl FakeRegistryBuilder {
    /// How journals refer to this registry (default `registry`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Require Bearer tokens from a token service on this host (the distribution protocol).
    pub fn bearer(mut self, options: BearerOptions, directory: Directory) -> Self {
        self.auth = ProfileChoice::Bearer { options, directory };
        self
    }

    /// Behave like Azure Container Registry (profile `acr/1`).
    pub fn acr(mut self, options: AcrOptions, directory: Directory) -> Self {
        self.auth = ProfileChoice::Acr { options, directory };
        self
    }

    /// Behave like Amazon ECR (profile `ecr/1`); list pages are capped at 1000.
    pub fn ecr(mut self, options: EcrOptions, directory: Directory) -> Self {
        self.options.page_cap = Some(1000);
        self.auth = ProfileChoice::Ecr { options, directory };
        self
    }

    /// Behave like GitLab's container registry (profile `gitlab/1`).
    pub fn gitlab(mut self, options: GitlabOptions, directory: Directory) -> Self {
        self.auth = ProfileChoice::Gitlab { options, directory };
        self
    }

    /// Behave like Docker Hub (profile `dockerhub/1`): token service on a separate host.
    pub fn dockerhub(mut self, options: DockerhubOptions, directory: Directory) -> Self {
        self.auth = ProfileChoice::Dockerhub { options, directory };
        self
    }

    /// Be a pull-through cache of upstream registries (profile `mirror/1`).
    pub fn mirror(mut self, options: MirrorOptions, directory: Directory) -> Self {
        self.auth = ProfileChoice::Mirror { options, directory };
        self
    }

    /// Record into a shared journal (several registries of one test, one leak detector);
    /// default: a journal of this registry's own.
    pub fn journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Bounds of this registry's own journal (ignored with [`Self::journal`]);
    /// [`JournalLimits::OFF`] records nothing.
    pub fn journal_limits(mut self, limits: JournalLimits) -> Self {
        self.journal_limits = limits;
        self
    }

    /// Connection time limits (handshake, header read, idle connections, request-body rate);
    /// default [`ConnectionLimits::default`], as a fleet's listeners.
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connection_limits = limits;
        self
    }

    /// The clock tokens and credentials expire by (default: system time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Keep content on disk under `dir` (default: in memory).
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_dir = Some(dir.into());
        self
    }

    pub fn options(mut self, options: RegistryOptions) -> Self {
        self.options = options;
        self
    }

    /// Pushes a generated image (see [`crate::fixtures`]) as `repository:tag` before serving.
    pub fn seed(mut self, repository: &str, tag: &str, image: Image) -> Self {
        self.seeds.push(Seed {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            image,
        });
        self
    }

    /// Binds, seeds and starts serving; returns once connections are accepted.
    pub async fn start(self) -> Result<RunningRegistry, StartError> {
        let storage: Arc<dyn Storage> = match &self.storage_dir {
            Some(dir) => Arc::new(
                DiskStorage::open_with_clock(dir, self.clock.clone()).map_err(|source| {
                    StartError::Storage {
                        dir: dir.clone(),
                        source,
                    }
                })?,
            ),
            None => Arc::new(MemoryStorage::with_clock(self.clock.clone())),
        };
        for seed in &self.seeds {
            push_image(storage.as_ref(), &seed.repository, &seed.tag, &seed.image)
                .await
                .map_err(|reason| StartError::Seed {
                    repository: seed.repository.clone(),
                    tag: seed.tag.clone(),
                    reason,
                })?;
        }
        let registry = Registry::with_clock(storage, self.options, self.clock.clone());
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.listen,
            source,
        })?;
        let journal = self
            .journal
            .unwrap_or_else(|| Arc::new(Journal::with_limits(self.journal_limits)));
        let profile = build_profile(self.auth, &self.name, &self.clock, &journal)?;
        // One address, no storage host: this registry never redirects blob downloads (a
        // fleet does, for ACR and ECR).
        let vhost = Arc::new(VirtualHost::new(
            &self.name,
            &format!("http://{addr}"),
            registry.clone(),
            profile,
            journal.clone(),
        ));
        let (tx, rx) = oneshot::channel::<()>();
        let app = vhost.router();
        // The same accept loop as a fleet's: handshake, header-read and idle limits included.
        let limits = self.connection_limits;
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) =
                crate::listener::serve_with_limits(listener, None, app, shutdown, limits).await
            {
                tracing::error!(error = %e, "server stopped");
            }
        });
        Ok(RunningRegistry {
            addr,
            registry,
            journal,
            clock: self.clock,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// Builds the profile of a registry named `name`: its token issuer (if it issues tokens), its
/// credentials registered with the journal's redactor and the leak detector.
pub(crate) fn build_profile(
    choice: ProfileChoice,
    name: &str,
    clock: &Clock,
    journal: &Journal,
) -> Result<Arc<dyn Profile>, StartError> {
    let redactor = journal.redactor.clone();
    let issuer = |name: &str| {
        TokenIssuer::generate(name, clock.clone())
            .map(Arc::new)
            .map_err(|e| StartError::Key(e.to_string()))
    };
    // Ownership of credentials and signing keys, for the leak detector.
    let register = |directory: &Directory, issuer: Option<&TokenIssuer>| {
        crate::leak::register(&redactor, name, directory, issuer);
    };
    let profile: Arc<dyn Profile> = match choice {
        ProfileChoice::Open => Arc::new(Open),
        ProfileChoice::Bearer { options, directory } => {
            let issuer = issuer(&format!("{}-token-issuer", name))?;
            register(&directory, Some(&issuer));
            Arc::new(Bearer::new(options, directory, issuer, redactor.clone()))
        }
        ProfileChoice::Acr { options, directory } => {
            // ACR's tokens say `"iss":"Azure Container Registry"` (AAD-OAuth.md).
            let issuer = issuer("Azure Container Registry")?;
            register(&directory, Some(&issuer));
            Arc::new(Acr::new(options, directory, issuer, redactor.clone()))
        }
        ProfileChoice::Ecr { options, directory } => {
            register(&directory, None);
            Arc::new(Ecr::new(
                options,
                directory,
                clock.clone(),
                redactor.clone(),
            ))
        }
        ProfileChoice::Gitlab { options, directory } => {
            // GitLab signs RS256 with a libtrust `kid` (`JSONWebToken::RSAToken`).
            let issuer = TokenIssuer::generate_rs256(&options.issuer, clock.clone())
                .map(Arc::new)
                .map_err(|e| StartError::Key(e.to_string()))?;
            register(&directory, Some(&issuer));
            Arc::new(Gitlab::new(options, directory, issuer, &redactor))
        }
        ProfileChoice::Dockerhub { options, directory } => {
            // Hub tokens say `"iss":"auth.docker.io"` (StackOverflow 39641186 capture).
            let issuer = issuer(&options.auth_host)?;
            register(&directory, Some(&issuer));
            Arc::new(Dockerhub::new(options, directory, issuer, redactor.clone()))
        }
        ProfileChoice::Mirror { options, directory } => {
            let issuer = issuer(&format!("{}-token-issuer", name))?;
            register(&directory, Some(&issuer));
            Arc::new(
                Mirror::new(options, directory, issuer, redactor.clone())
                    .map_err(|e| StartError::Profile(e.to_string()))?,
            )
        }
    };
    Ok(profile)
}

/// A running registry. Dropping it stops the server.
pub struct RunningRegistry {
    addr: SocketAddr,
    registry: Registry,
    journal: Arc<Journal>,
    clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningRegistry {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every exchange so far, secrets redacted.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The clock tokens expire by; `advance` it to expire them.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Stores an image through the same storage operations a push uses (uploads are verified).
pub async fn push_image(
    storage: &dyn Storage,
    repository: &str,
    tag: &str,
    image: &Image,
) -> Result<(), String> {
    crate::names::validate_repository(repository).map_err(|e| e.to_string())?;
    if !crate::names::is_valid_tag(tag) {
        return Err(format!("{tag:?} is not a valid tag"));
    }
    for blob in &image.blobs {
        if storage
            .blob_size(repository, &blob.digest)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            continue;
        }
        let id = storage
            .create_upload(repository)
            .await
            .map_err(|e| e.to_string())?;
        let data = blob.bytes.clone();
        let chunk = Chunk {
            expected_len: Some(data.len() as u64),
            expected_offset: Some(0),
            body: Box::pin(futures_util::stream::iter([Ok(data)])),
        };
        storage
            .append_upload(&id, chunk)
            .await
            .map_err(|e| e.to_string())?;
        storage
            .commit_upload(&id, &blob.digest)
            .await
            .map_err(|e| e.to_string())?;
    }
    let last = image.manifests.len().saturating_sub(1);
    for (i, m) in image.manifests.iter().enumerate() {
        let tags = if i == last {
            vec![tag.to_owned()]
        } else {
            Vec::new()
        };
        storage
            .put_manifest(repository, m.clone(), &tags)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
