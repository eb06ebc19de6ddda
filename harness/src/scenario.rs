//! Scenario files (`scenarios/*.toml`): data, not code. A scenario declares the registries to
//! start (the fleet's `[[host]]` tables), the client-side configuration to write, the steps
//! as abstract actions, and what must be true afterwards — of each step's outcome and of the
//! journal. Every error names the file, line, column and field, with a hint.
//!
//! ```toml
//! title = "ACR: a service principal pulls with Basic credentials"
//! description = "behaviours.md §1.3: GET /oauth2/token with Basic, access_token only"
//! rules = ["credential-for-its-registry"]  # the rules of docs/verdicts.md it tests
//! sources = ["behaviours.md §1.3", "https://…"] # where the expected behaviour is documented
//! # variant_of = "acr-sp-pull"         # one matrix row with that scenario (its family):
//! #                                    # clients that cannot express it run this instead
//!
//! [[host]]                      # as in a fleet config (fake-registry/src/config.rs)
//! name = "acr"
//! hostname = "myregistry.azurecr.io"
//! [host.profile]
//! kind = "acr"
//! # [[host.principal]] … [[host.seed]] …
//!
//! [client]
//! auths = { acr = "sp-acrpull" }        # config.json `auths`: host name → principal
//! identity_tokens = { acr = "identity" } # null-GUID auth + `identitytoken` (az acr login)
//! creds_store = "regcompat"              # config.json `credsStore`
//! cred_helpers = { acr = "regcompat" }   # config.json `credHelpers` (host → helper)
//! helper_credentials = { acr = "sp" }    # what docker-credential-regcompat answers
//! helper_lookup = "osxkeychain"          # how it matches keys (default "exact")
//! auths_by_key = { "{acr}:443" = "sp" }  # an `auths` key written verbatim
//! mirrors = { acr = ["mirror"] }         # upstream host → mirror hosts ("mirror/path")
//! unreachable = ["acr"]                  # the client cannot reach these hosts
//! ecr_login_helper = true                # docker-credential-ecr-login (the harness's helper
//!                                        # under that name) on PATH, for Jib's inference
//! ecr_login_credentials = { ecr = "aws" } # what that helper holds (a store of its own)
//! empty_auths = ["ecr"]                  # `auths: { "<host>": {} }` beside a credsStore
//!
//! [[step]]
//! action = "pull"                        # login | pull | push | copy | build-from | builder-create | app-build
//! image = "{acr}/base/run:1"             # {name} = that host's hostname[:port]
//! # run_image = "{acr}/cnb/run:1"        # builder-create: the run image (`image` = build image);
//! #                                       # app-build: the builder's run image (`image` = builder)
//! # publish = false                       # builder-create, app-build: the daemon path (default: --publish)
//! # setup = true                          # login: only sets the credential up; clients
//! #                                       # without login get it as `docker login` stores it
//! expect = "success"                     # or "failure", or "any"
//!
//! [[expect]]                             # journal assertions
//! what = "the token request carried the SP's Basic credentials"
//! registry = "acr"
//! path = "/oauth2/token"
//! principal = "sp-acrpull"
//! status = 200
//! count = ">=1"                          # ">=N", "<=N", "N"
//! # also: host, method, query ("ns=*"), scheme (none|basic|bearer), grant_type
//! [[expect]]
//! what = "no credential of another registry was presented anywhere"
//! no_leaks = true
//! ```

use fake_registry::config::{ConfigError, FleetConfig, HostConfig, toml_error};
use fake_registry::fault::FaultConfig;
use fake_registry::journal::Entry;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The rules of `docs/verdicts.md` this scenario tests (their ids, e.g.
    /// `hostname-case-insensitive`); every scenario names at least one.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Where the expected behaviour is documented: seeds, upstream issues, behaviours.md §.
    #[serde(default)]
    pub sources: Vec<String>,
    /// For a `fault-tolerance` scenario: the fault it injects, when several scenarios
    /// inject the same one through different actions (`fault-503-blob` pulls; pack, which
    /// cannot pull, meets it through `builder-create`). The resilience table gives each
    /// fault kind one column. Default: the scenario's id.
    #[serde(default)]
    pub fault_kind: Option<String>,
    /// This scenario is a *variant* of another scenario of the same directory (its id): the
    /// same test met through an action the base's clients do not all have (pack cannot
    /// pull, so `fault-503-blob-builder-create` is a variant of `fault-503-blob`). A base
    /// and its variants are one *family*, one matrix row: each client runs the first member
    /// it can express — the base, else its variants in file-name order. The base must
    /// exist, must not be a variant itself and must name the same `rules` (checked by
    /// [`Scenario::load`]).
    #[serde(default)]
    pub variant_of: Option<Spanned<String>>,
    #[serde(rename = "host")]
    pub hosts: Vec<HostConfig>,
    #[serde(default)]
    pub client: ClientSetup,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default, rename = "expect")]
    pub expectations: Vec<Expectation>,
    /// Seconds each client process may run (default 120).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Set by the loader: the file stem.
    #[serde(skip)]
    pub id: String,
    /// Set by the loader: the file's path.
    #[serde(skip)]
    pub file: String,
}

fn default_timeout() -> u64 {
    120
}

/// What the harness writes into the client's `config.json` before the first step.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSetup {
    /// Host name → principal whose username and secret go into `auths[<host>].auth`.
    #[serde(default)]
    pub auths: BTreeMap<String, Spanned<String>>,
    /// Host name → refresh-token principal: `auth` = base64(null GUID:) and `identitytoken`
    /// = the principal's secret, as `az acr login` writes it.
    #[serde(default)]
    pub identity_tokens: BTreeMap<String, Spanned<String>>,
    /// `credsStore` of config.json (`"regcompat"` = the harness's helper).
    #[serde(default)]
    pub creds_store: Option<String>,
    /// `credHelpers` of config.json: host name → helper name.
    #[serde(default)]
    pub cred_helpers: BTreeMap<String, Spanned<String>>,
    /// What the harness's helper (`docker-credential-regcompat`) holds: host name →
    /// principal whose username and secret it answers with.
    #[serde(default)]
    pub helper_credentials: BTreeMap<String, Spanned<String>>,
    /// How that helper matches a client's server URL to its entries: `exact` (default; as
    /// docker-credential-pass/secretservice/wincred) or `osxkeychain` (`host` ≡
    /// `https://host`, listed as `https://host`).
    #[serde(default)]
    pub helper_lookup: crate::credhelper::Lookup,
    /// `auths` under a key written verbatim (placeholders resolved): key → principal, e.g.
    /// `{ "{gitlab}:443" = "dev" }` is what nerdctl v2.0.0–v2.0.2 `login` writes.
    #[serde(default)]
    pub auths_by_key: BTreeMap<String, Spanned<String>>,
    /// Registry mirrors, for clients that have them (buildkitd.toml `mirrors`, containerd
    /// `hosts.toml`): upstream host name → mirror host names, each optionally followed by a
    /// path (`"mirror/proxy-private"`).
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<Spanned<String>>>,
    /// The hostnames of the mirrored upstreams (filled from `mirrors` and the hosts when the
    /// scenario is parsed): what a driver needs to tell a Docker Hub mirror from others.
    #[serde(skip)]
    pub mirrored_hostnames: Vec<String>,
    /// Hosts the client cannot reach (its hosts file sends them to a loopback address where
    /// nothing listens); the fleet itself (a mirror's upstream requests) still reaches them.
    #[serde(default)]
    pub unreachable: Vec<Spanned<String>>,
    /// Put the harness's helper on `PATH` also as `docker-credential-ecr-login` (answering
    /// from `ecr_login_credentials`), the helper Jib infers for `*.amazonaws.com`. Clients
    /// that infer no helper cannot run such a scenario (not-applicable).
    #[serde(default)]
    pub ecr_login_helper: bool,
    /// What `docker-credential-ecr-login` holds: host name → principal (its own store).
    #[serde(default)]
    pub ecr_login_credentials: BTreeMap<String, Spanned<String>>,
    /// Hosts with an empty `auths` entry (`"host": {}`), as `docker login` writes beside a
    /// `credsStore` (seed 003's config.json).
    #[serde(default)]
    pub empty_auths: Vec<Spanned<String>>,
    /// The client is given a CA that did not sign the fleet's certificates — a decoy in its
    /// CA bundle and in every driver's CA setting — as when a user's machine does not trust
    /// the registry: a client that verifies certificates refuses the registry before any
    /// request, and the cell's automatic check becomes "no request reached the registry".
    #[serde(default)]
    pub untrusted_ca: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Login,
    Pull,
    Push,
    Copy,
    /// Build a generated Dockerfile `FROM <image>` + `COPY` (no `RUN`) and, with `to`, push
    /// the result there.
    BuildFrom,
    /// Create a buildpacks builder from a build image (`image`) and a run image
    /// (`run_image`), with a generated trivial buildpack, and publish it to `to`.
    BuilderCreate,
    /// Build a generated app from source with a buildpacks builder (`image`, whose run
    /// image is `run_image`) and publish the app image to `to` (`pack build --publish`:
    /// the lifecycle in the builder fetches the run image and pushes the app itself).
    AppBuild,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Copy => "copy",
            Self::BuildFrom => "build-from",
            Self::BuilderCreate => "builder-create",
            Self::AppBuild => "app-build",
        }
    }

    /// Buildpacks' own commands (`pack builder create`, `pack build`): no other client
    /// has them.
    pub fn is_buildpacks(self) -> bool {
        matches!(self, Self::BuilderCreate | Self::AppBuild)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    Failure,
    /// Either is correct (e.g. `crane auth login` only stores credentials, `skopeo login`
    /// checks them): the steps after it decide.
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: Action,
    /// `pull`, `copy` (source), `build-from` (the base): an image reference with `{host}`
    /// placeholders.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// `push`, `copy`, `build-from` (optional), `builder-create`: the destination reference.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// `build-from`: the platforms to build (`os/arch`), for clients that build several
    /// from a multi-platform base (Jib `jib.from.platforms`); others build their default.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `builder-create`: the run image (`image` is the build image). `app-build`: the run
    /// image the builder names (`image` is the builder; pack reads the run image from it).
    #[serde(default)]
    pub run_image: Option<Spanned<String>>,
    /// `builder-create`, `app-build`: `true` (default) publishes daemonless (`--publish`);
    /// `false` takes the daemon path — images pulled by the cell's dockerd, the result
    /// kept there.
    #[serde(default)]
    pub publish: Option<bool>,
    /// `login`: the host to log in to (its name) and the principal whose credentials to use.
    #[serde(default)]
    pub registry: Option<Spanned<String>>,
    #[serde(default)]
    pub principal: Option<Spanned<String>>,
    /// `login`: use this password instead of the principal's secret (wrong-password cases).
    #[serde(default)]
    pub password: Option<String>,
    /// `login`: this login only sets the credential up — the scenario tests what follows.
    /// A client without a login command then gets the credential in `config.json` as
    /// `docker login <registry>` stores it (`auths["<host[:port]>"].auth`) and runs the
    /// other steps ([`Scenario::with_setup_logins_as_config`]); a client with one runs it.
    #[serde(default)]
    pub setup: bool,
    /// `push`: the local image to push, generated from this spec (`"docker"`/`"oci"`).
    #[serde(default)]
    pub format: Option<String>,
    /// Fault rules in force while this step runs (`[[step.fault]]`, the rules of
    /// `fake-registry/src/fault.rs`; `match.host` names a host of the scenario), added
    /// through the fleet's fault engine — as the admin API would — before the step's first
    /// command and removed after its last. A host's own `[[host.fault]]` rules last the
    /// whole cell.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<FaultConfig>>,
    pub expect: Outcome,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// What the assertion means, as the report shows it.
    pub what: String,
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// Exact path, or a glob with `*` (any characters).
    #[serde(default)]
    pub path: Option<String>,
    /// The query string (without `?`), exact or a glob with `*`; `""` = no query.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// `none`, `basic`, `bearer`.
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub grant_type: Option<String>,
    /// What the profile decided of the request's credential (the journal's `auth.verdict`):
    /// `ok`, `anonymous`, `bad-credentials`, `expired`, `insufficient-scope`…
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default = "default_count")]
    pub count: Spanned<String>,
    /// No request anywhere presented another registry's credential.
    #[serde(default)]
    pub no_leaks: bool,
}

fn default_count() -> Spanned<String> {
    Spanned::new(0..0, ">=1".into())
}

impl Scenario {
    /// The scenario as a client without a login command meets it: each `setup` login
    /// becomes the credential `docker login <registry>` would have stored in `config.json`
    /// (`[client] auths`), and leaves the steps. Logins under test stay (the cell is then
    /// not applicable).
    pub fn with_setup_logins_as_config(mut self) -> Self {
        let (setup, steps): (Vec<Step>, Vec<Step>) = std::mem::take(&mut self.steps)
            .into_iter()
            .partition(|s| s.action == Action::Login && s.setup);
        for login in setup {
            if let (Some(registry), Some(principal)) = (login.registry, login.principal) {
                self.client.auths.insert(registry.into_inner(), principal);
            }
        }
        self.steps = steps;
        self
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: 0,
            column: 0,
            ..ConfigError::at("", &origin, 0, "", format!("cannot read the file: {e}"), "")
        })?;
        let mut s = Self::parse(&text, &origin)?;
        s.id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        s.file = origin;
        s.check_variant_of(path, &text)?;
        Ok(s)
    }

    /// A variant's base: a scenario file of the same directory, not a variant itself, with
    /// the same rules (a family tests one thing, whichever member a client runs).
    fn check_variant_of(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let Some(base) = &self.variant_of else {
            return Ok(());
        };
        let err = |message: String, hint: &str| {
            ConfigError::at(
                text,
                &self.file,
                base.span().start,
                "variant_of",
                message,
                hint,
            )
        };
        let name = base.get_ref();
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(err(
                format!("{name:?} is not a scenario id"),
                "name the base scenario by its file stem, e.g. `fault-503-blob`",
            ));
        }
        if *name == self.id {
            return Err(err(
                "a scenario is not a variant of itself".into(),
                "name the base scenario of this family",
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let base_path = dir.join(format!("{name}.toml"));
        let base_text = std::fs::read_to_string(&base_path).map_err(|e| {
            err(
                format!("no scenario {name:?} in {} ({e})", dir.display()),
                "a variant's base is a scenario file of the same directory",
            )
        })?;
        let base_scenario = Self::parse(&base_text, &base_path.display().to_string())
            .map_err(|e| err(format!("its base does not load: {e}"), ""))?;
        if let Some(grand) = &base_scenario.variant_of {
            return Err(err(
                format!("{name:?} is itself a variant (of {:?})", grand.get_ref()),
                &format!("name the family's base: variant_of = {:?}", grand.get_ref()),
            ));
        }
        let rules = |s: &Self| {
            let mut r: Vec<String> = s.rules.iter().map(|r| r.get_ref().clone()).collect();
            r.sort();
            r
        };
        if rules(self) != rules(&base_scenario) {
            return Err(err(
                format!(
                    "its rules {:?} differ from its base's {:?}",
                    rules(self),
                    rules(&base_scenario)
                ),
                "a family tests the same rules whichever member a client runs",
            ));
        }
        Ok(())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let s: Scenario = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        let err = |span: std::ops::Range<usize>, field: String, message: String, hint: &str| {
            ConfigError::at(text, origin, span.start, field, message, hint)
        };
        // The hosts are checked like a fleet config; addresses are the runner's to choose.
        let fleet = FleetConfig::from_hosts(s.hosts);
        fleet.validate_in(text, origin)?;
        for (i, h) in fleet.hosts.iter().enumerate() {
            if let Some(a) = &h.address {
                return Err(err(
                    a.span(),
                    format!("host[{i}].address"),
                    "a scenario does not choose addresses".into(),
                    "remove it: the runner gives each cell its own loopback addresses so cells \
                     can run in parallel",
                ));
            }
        }
        let names: Vec<String> = fleet
            .hosts
            .iter()
            .map(|h| h.name.get_ref().clone())
            .collect();
        let principals: Vec<String> = fleet
            .hosts
            .iter()
            .flat_map(|h| h.principals.iter().map(|p| p.name.clone()))
            .collect();
        let s = Scenario {
            hosts: fleet.hosts,
            ..s
        };
        let known_host = |v: &Spanned<String>, field: String| {
            if names.contains(v.get_ref()) {
                Ok(())
            } else {
                Err(err(
                    v.span(),
                    field,
                    format!("no host is named {:?}", v.get_ref()),
                    &format!("hosts of this scenario: {}", names.join(", ")),
                ))
            }
        };
        let known_principal = |v: &Spanned<String>, field: String| {
            if principals.contains(v.get_ref()) {
                Ok(())
            } else {
                Err(err(
                    v.span(),
                    field,
                    format!("no principal is named {:?}", v.get_ref()),
                    &format!("principals of this scenario: {}", principals.join(", ")),
                ))
            }
        };
        for (k, v) in s.client.auths.iter() {
            known_host(
                &Spanned::new(v.span(), k.clone()),
                format!("client.auths.{k}"),
            )?;
            known_principal(v, format!("client.auths.{k}"))?;
        }
        for (k, v) in s.client.identity_tokens.iter() {
            known_host(
                &Spanned::new(v.span(), k.clone()),
                format!("client.identity_tokens.{k}"),
            )?;
            known_principal(v, format!("client.identity_tokens.{k}"))?;
        }
        for (k, v) in s.client.cred_helpers.iter() {
            known_host(
                &Spanned::new(v.span(), k.clone()),
                format!("client.cred_helpers.{k}"),
            )?;
        }
        for (k, v) in s.client.helper_credentials.iter() {
            known_host(
                &Spanned::new(v.span(), k.clone()),
                format!("client.helper_credentials.{k}"),
            )?;
            known_principal(v, format!("client.helper_credentials.{k}"))?;
        }
        for (k, v) in s.client.ecr_login_credentials.iter() {
            known_host(
                &Spanned::new(v.span(), k.clone()),
                format!("client.ecr_login_credentials.{k}"),
            )?;
            known_principal(v, format!("client.ecr_login_credentials.{k}"))?;
        }
        for (i, v) in s.client.empty_auths.iter().enumerate() {
            known_host(v, format!("client.empty_auths[{i}]"))?;
        }
        for (k, v) in s.client.auths_by_key.iter() {
            for placeholder in placeholders(k) {
                known_host(
                    &Spanned::new(v.span(), placeholder),
                    format!("client.auths_by_key.{k:?}"),
                )?;
            }
            known_principal(v, format!("client.auths_by_key.{k:?}"))?;
        }
        for (k, list) in s.client.mirrors.iter() {
            for v in list {
                known_host(
                    &Spanned::new(v.span(), k.clone()),
                    format!("client.mirrors.{k}"),
                )?;
                let mirror = v.get_ref().split('/').next().unwrap_or_default();
                known_host(
                    &Spanned::new(v.span(), mirror.to_owned()),
                    format!("client.mirrors.{k}"),
                )?;
            }
        }
        for (i, v) in s.client.unreachable.iter().enumerate() {
            known_host(v, format!("client.unreachable[{i}]"))?;
        }
        for (i, step) in s.steps.iter().enumerate() {
            let need = |v: &Option<Spanned<String>>, name: &str| -> Result<(), ConfigError> {
                if v.is_none() {
                    return Err(ConfigError::at(
                        text,
                        origin,
                        step_offset(text, i),
                        format!("step[{i}].{name}"),
                        format!("action `{}` needs `{name}`", step.action.as_str()),
                        "login: registry, principal; pull: image; push: to; copy: image, to; \
                         build-from: image (and `to` to push the result); builder-create: \
                         image (the build image), run_image, to; app-build: image (the \
                         builder), run_image, to",
                    ));
                }
                Ok(())
            };
            match step.action {
                Action::Login => {
                    need(&step.registry, "registry")?;
                    need(&step.principal, "principal")?;
                }
                _ if step.setup => {
                    return Err(ConfigError::at(
                        text,
                        origin,
                        step_offset(text, i),
                        format!("step[{i}].setup"),
                        format!("`setup` is for logins, not `{}`", step.action.as_str()),
                        "`setup = true` marks a login that only sets credentials up",
                    ));
                }
                Action::Pull => need(&step.image, "image")?,
                Action::Push => need(&step.to, "to")?,
                Action::Copy => {
                    need(&step.image, "image")?;
                    need(&step.to, "to")?;
                }
                Action::BuildFrom => need(&step.image, "image")?,
                Action::BuilderCreate | Action::AppBuild => {
                    need(&step.image, "image")?;
                    need(&step.run_image, "run_image")?;
                    need(&step.to, "to")?;
                }
            }
            if let Some(r) = &step.registry {
                known_host(r, format!("step[{i}].registry"))?;
            }
            // What `docker login` stores is a credential it has checked: a setup login
            // succeeds with the principal's own secret.
            if step.setup && (step.password.is_some() || step.expect != Outcome::Success) {
                return Err(ConfigError::at(
                    text,
                    origin,
                    step_offset(text, i),
                    format!("step[{i}].setup"),
                    "a setup login expects success with the principal's secret".to_owned(),
                    "drop `password` and set `expect = \"success\"`, or drop `setup` (the \
                     login itself is then under test)",
                ));
            }
            for (n, rule) in step.faults.iter().enumerate() {
                let field = format!("step[{i}].fault[{n}]");
                if let Err(e) = rule.get_ref().validate() {
                    return Err(err(
                        rule.span(),
                        format!("{field}.{}", e.field()),
                        e.to_string(),
                        "see docs/faults.md",
                    ));
                }
                // A host's name, or a hostname the fleet serves (a realm or storage host
                // has no name of its own, so dotted names pass).
                if let Some(host) = &rule.get_ref().matcher.host
                    && !names.contains(host)
                    && !host.contains('.')
                {
                    return Err(err(
                        rule.span(),
                        format!("{field}.match.host"),
                        format!("no host is named {host:?}"),
                        &format!(
                            "hosts of this scenario: {} (or a hostname one of them serves)",
                            names.join(", ")
                        ),
                    ));
                }
            }
            if let Some(p) = &step.principal {
                known_principal(p, format!("step[{i}].principal"))?;
            }
            for (name, v) in [
                ("image", &step.image),
                ("to", &step.to),
                ("run_image", &step.run_image),
            ] {
                if let Some(v) = v {
                    for placeholder in placeholders(v.get_ref()) {
                        if !names.contains(&placeholder) {
                            return Err(err(
                                v.span(),
                                format!("step[{i}].{name}"),
                                format!("{{{placeholder}}} names no host"),
                                &format!("hosts of this scenario: {}", names.join(", ")),
                            ));
                        }
                    }
                }
            }
        }
        for (i, rule) in s.rules.iter().enumerate() {
            if !RULES.iter().any(|(id, _)| id == rule.get_ref()) {
                return Err(err(
                    rule.span(),
                    format!("rules[{i}]"),
                    format!("no rule is named {:?}", rule.get_ref()),
                    &format!(
                        "rules (docs/verdicts.md): {}",
                        RULES
                            .iter()
                            .map(|(id, _)| *id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for (i, e) in s.expectations.iter().enumerate() {
            Count::parse(e.count.get_ref()).map_err(|m| {
                err(
                    e.count.span(),
                    format!("expect[{i}].count"),
                    m,
                    "write \">=1\", \"<=2\" or \"0\"",
                )
            })?;
        }
        if s.steps.is_empty() {
            return Err(ConfigError::at(
                text,
                origin,
                0,
                "step",
                "a scenario needs at least one step",
                "add a [[step]] table",
            ));
        }
        let mut s = s;
        s.client.mirrored_hostnames = s
            .client
            .mirrors
            .keys()
            .filter_map(|name| s.hosts.iter().find(|h| h.name.get_ref() == name))
            .map(|h| h.hostname.get_ref().clone())
            .collect();
        Ok(s)
    }
}

/// The variants of the scenario file `base`: the files of its directory whose
/// `variant_of` names it, in file-name order. Only `variant_of` is read here; a file that
/// is not TOML is no variant of anything (its own load reports it).
pub fn variants_of(base: &Path) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        variant_of: Option<String>,
    }
    let id = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = base.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
        line: 0,
        column: 0,
        ..ConfigError::at(
            "",
            &dir.display().to_string(),
            0,
            "",
            format!("cannot read the scenario directory {}: {e}", dir.display()),
            "",
        )
    })?;
    let mut variants: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.as_path() != base)
        .filter(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|text| toml::from_str::<Head>(&text).ok())
                .and_then(|head| head.variant_of)
                .is_some_and(|of| of == id)
        })
        .collect();
    variants.sort();
    Ok(variants)
}

/// The verdict rules a scenario may name (`rules = [...]`), as `docs/verdicts.md` states them:
/// a cell passes when the client does what its user intends, judged by the standards the
/// client claims to follow and the registry's documented behaviour — never by one client's
/// implementation.
pub const RULES: &[(&str, &str)] = &[
    (
        "spec-conformance",
        "the client speaks the distribution spec and the token-auth spec it claims: pulls and \
         pushes what the user names, verifies what it fetches",
    ),
    (
        "registry-documented-auth",
        "the client completes the registry's documented auth flow (ACR refresh-token and \
         Basic token grants, ECR Basic, GitLab /jwt/auth, Docker Hub's auth host)",
    ),
    (
        "credential-for-its-registry",
        "a credential stored for the registry that serves the image is meant for it and is \
         used (config.json auths, identity tokens, credsStore, credHelpers)",
    ),
    (
        "hostname-case-insensitive",
        "registry hostnames compare case-insensitively (DNS, RFC 4343)",
    ),
    (
        "default-port-equivalence",
        "`host` and `host:443` are the same https origin (RFC 3986 §6.2.3)",
    ),
    (
        "credential-stays-with-its-host",
        "a credential is never presented to another host: mirror, another registry's realm, \
         storage host",
    ),
    (
        "clean-failure",
        "a wrong, missing, expired or insufficient credential is a clean failure: non-zero \
         exit with the registry's message, no hang, no success",
    ),
    (
        "mirror-semantics",
        "a configured mirror is tried for the upstream's images, with the mirror's own \
         credentials, and the upstream's name is carried (containerd `?ns=`, path prefix)",
    ),
    (
        "tls-verification",
        "the client verifies the registry's certificate against the roots it is given \
         (RFC 5280, RFC 6125): an untrusted registry is a clean failure before any request, \
         never a silent success",
    ),
    (
        "fault-tolerance",
        "under a transient or persistent registry fault the client either succeeds with the \
         right content or fails on its own: no success without the faulted content received \
         intact, no unbounded retry, no retry sooner than Retry-After asks, and a hung \
         endpoint given up on before the cell's timeout",
    ),
];

/// Whether an expectation's `host` names the host a request was sent to: hostnames compare
/// case-insensitively, and a `host` without a port matches any port (`host` ≡ `host:443`).
fn same_host(want: &str, sent: &str) -> bool {
    let sent_name = match sent.rsplit_once(':') {
        Some((name, port)) if !want.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => sent,
    };
    want.eq_ignore_ascii_case(sent_name)
}

/// `{acr}` placeholders of a reference.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push(rest[start + 1..start + end].to_owned());
        rest = &rest[start + end + 1..];
    }
    out
}

/// Byte offset of the `index`th `[[step]]` header.
fn step_offset(text: &str, index: usize) -> usize {
    text.match_indices("[[step]]")
        .nth(index)
        .map_or(0, |(i, _)| i)
}

/// How many matching journal entries an expectation wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    AtLeast(usize),
    AtMost(usize),
    Exactly(usize),
}

impl Count {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("count {text:?} is not a number with >=, <= or nothing"))
        };
        if let Some(n) = t.strip_prefix(">=") {
            Ok(Self::AtLeast(num(n)?))
        } else if let Some(n) = t.strip_prefix("<=") {
            Ok(Self::AtMost(num(n)?))
        } else {
            Ok(Self::Exactly(num(t.trim_start_matches("=="))?))
        }
    }

    pub fn holds(self, n: usize) -> bool {
        match self {
            Self::AtLeast(m) => n >= m,
            Self::AtMost(m) => n <= m,
            Self::Exactly(m) => n == m,
        }
    }
}

/// A query string with its percent-escapes decoded: `scope=repository%3Aa%3Apull` and
/// `scope=repository:a:pull` are the same query (RFC 3986 §2.1; clients differ in what they
/// escape), so an expectation compares them decoded.
fn query_decoded(query: &str) -> String {
    percent_encoding::percent_decode_str(query)
        .decode_utf8_lossy()
        .into_owned()
}

impl Expectation {
    /// Whether `e` is one of the requests this expectation counts.
    pub fn matches(&self, e: &Entry) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_ref().is_none_or(|w| w == got);
        eq(&self.registry, &e.registry)
            && self.host.as_ref().is_none_or(|w| same_host(w, &e.host))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&e.method))
            && self.path.as_ref().is_none_or(|p| glob(p, &e.path))
            && self.query.as_ref().is_none_or(|q| {
                glob(
                    &query_decoded(q),
                    &query_decoded(e.query.as_deref().unwrap_or_default()),
                )
            })
            && self.status.is_none_or(|s| s == e.status)
            && eq(&self.scheme, &e.auth.scheme)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| e.auth.principal.as_deref() == Some(p))
            && self
                .grant_type
                .as_ref()
                .is_none_or(|g| e.form.get("grant_type") == Some(g))
            && self
                .auth
                .as_ref()
                .is_none_or(|a| e.auth.verdict.as_deref() == Some(a))
    }
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}
