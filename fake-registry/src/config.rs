//! The fleet's TOML configuration: registries, profiles, principals, grants and seeded
//! images in one file (`docs/fleet.md` documents every field; `examples/*.toml` are started
//! by a test). Every error names the file, the line and column, the field, and a hint, e.g.:
//!
//! ```text
//! fleet.toml:7:11: field `host[0].address`: 10.0.0.1 is not a loopback address
//!   hint: use an address in 127.0.0.0/8 (or leave it out and one is allocated)
//! ```
//!
//! ```toml
//! # address_base = "127.0.0.2"         # first address handed out; busy ones are skipped
//! [[host]]
//! name = "acr"
//! hostname = "myregistry.azurecr.io"
//! # address = "127.0.0.2"  port = 443  tls = true  storage = "/var/tmp/acr"
//! # tls_versions = ["1.2"]             # a TLS 1.2-only endpoint (default: 1.3 and 1.2)
//! anonymous = []                       # grants without credentials: ["public/**:pull"]
//! [host.profile]
//! kind = "acr"                          # open | bearer | acr | ecr | gitlab | dockerhub | mirror
//! # … and that profile's options, e.g. access_token_lifetime = 4500
//! # storage_redirect = true            # acr, ecr: blob GETs → 307 to the storage host
//! [[host.principal]]
//! name = "sp-acrpush"
//! kind = "service-principal"            # user | service-principal | admin-user | deploy-token | job-token | access-token | refresh-token
//! username = "11111111-2222-3333-4444-555555555555"
//! secret = "…"
//! grants = ["**:pull,push"]             # repository glob : actions
//! [[host.seed]]
//! repository = "base/run"
//! tag = "1"
//! format = "docker"                     # oci | docker
//! platforms = ["linux/amd64", "linux/arm64"]
//! layers = [4096]
//! labels = { "io.buildpacks.stack.id" = "io.regcompat.stack" }   # image config labels
//! env = ["CNB_USER_ID=1000", "CNB_GROUP_ID=1000"]               # image config env after PATH
//! files = [                             # one more layer, for an image a client runs
//!   { path = "bin/busybox", from = "/bin/busybox", mode = 0o755 },  # a file of this machine
//!   { path = "bin/sh", link = "busybox" },
//!   { path = "tmp", dir = true, mode = 0o1777 },
//!   { path = "etc/passwd", text = "root:x:0:0::/root:/bin/sh\n" },
//!   { path = "etc/ssl/certs/ca-certificates.crt", fleet_ca = true },  # the fleet's CA
//! ]
//! [[host.fault]]                        # see docs/faults.md; match.host is this host
//! match = { method = "GET", path = "/v2/**/manifests/*" }
//! when = { nth = 2 }                    # or probability = 0.1, seed = 7
//! action = { type = "status", code = 503 }
//! ```

use crate::auth::{Directory, Grant, Principal, PrincipalKind};
use crate::fault::FaultConfig;
use crate::fixtures::{self, Format, ImageSpec, Platform};
use crate::fleet::HostSpec;
use crate::profile::acr::AcrOptions;
use crate::profile::bearer::BearerOptions;
use crate::profile::dockerhub::DockerhubOptions;
use crate::profile::ecr::EcrOptions;
use crate::profile::gitlab::GitlabOptions;
use crate::profile::mirror::MirrorOptions;
use crate::server::ProfileChoice;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Profile kinds a `[host.profile]` may name.
pub const PROFILE_KINDS: &[&str] = &[
    "open",
    "bearer",
    "acr",
    "ecr",
    "gitlab",
    "dockerhub",
    "mirror",
];

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field (`host[1].profile.kind`), when known.
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: the error is about the file as a whole (it cannot be read); no position.
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error at byte `offset` of `text` (line and column computed from it).
    pub fn at(
        text: &str,
        origin: &str,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(text, offset);
        Self {
            origin: origin.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The first loopback address handed to hosts that name none (default 127.0.0.2);
    /// `serve --address-base` overrides it. Addresses already in use are skipped.
    #[serde(default)]
    pub address_base: Option<Spanned<String>>,
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub name: Spanned<String>,
    pub hostname: Spanned<String>,
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_true")]
    pub tls: bool,
    /// The TLS versions the host speaks (`["1.2"]`: a TLS 1.2-only endpoint); default both.
    #[serde(default)]
    pub tls_versions: Vec<crate::tls::TlsVersion>,
    #[serde(default)]
    pub storage: Option<PathBuf>,
    pub profile: Spanned<ProfileConfig>,
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalConfig>,
    #[serde(default)]
    pub anonymous: Vec<Spanned<String>>,
    #[serde(default, rename = "seed")]
    pub seeds: Vec<SeedConfig>,
    /// Fault rules of this host (see [`crate::fault`]); `match.host` defaults to this host.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Spanned<FaultConfig>>,
}

fn default_port() -> u16 {
    443
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProfileConfig {
    Open {},
    Bearer(BearerOptions),
    Acr(AcrOptions),
    Ecr(EcrOptions),
    Gitlab(GitlabOptions),
    Dockerhub(DockerhubOptions),
    Mirror(MirrorOptions),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub name: String,
    pub kind: PrincipalKind,
    #[serde(default)]
    pub username: Option<String>,
    pub secret: String,
    #[serde(default)]
    pub grants: Vec<Spanned<String>>,
    /// Seconds after start before the grants apply (ACR's permission propagation).
    #[serde(default)]
    pub effective_after: Option<i64>,
    /// Seconds after start when the credential expires (ECR's 12-hour tokens).
    #[serde(default)]
    pub expires_after: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConfig {
    pub repository: Spanned<String>,
    pub tag: String,
    #[serde(default = "default_format")]
    pub format: Spanned<String>,
    #[serde(default)]
    pub platforms: Vec<Spanned<String>>,
    /// Layer sizes in bytes; all seeded images together are bounded by [`MAX_SEED_BYTES`].
    #[serde(default = "default_layers")]
    pub layers: Spanned<Vec<usize>>,
    #[serde(default)]
    pub seed: u64,
    /// Image config labels, e.g. `{ "io.buildpacks.stack.id" = "io.regcompat.stack" }`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Image config env entries after `PATH`, e.g. `["CNB_USER_ID=1000"]`.
    #[serde(default)]
    pub env: Vec<String>,
    /// The files of one more layer, for an image a client runs (a buildpacks build image
    /// needs a shell and must trust the fleet's CA).
    #[serde(default)]
    pub files: Vec<Spanned<SeedFileConfig>>,
}

/// One file of a seed's file layer: exactly one of `from`, `text`, `link`, `dir`,
/// `fleet_ca`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFileConfig {
    /// Relative to the image's root: `bin/sh`.
    pub path: String,
    /// A file of this machine, copied in when the configuration is read.
    #[serde(default)]
    pub from: Option<PathBuf>,
    #[serde(default)]
    pub text: Option<String>,
    /// A symbolic link to this target.
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub dir: bool,
    /// The fleet's CA certificate (PEM): what a client in the image must trust.
    #[serde(default)]
    pub fleet_ca: bool,
    /// Permission bits; default 0o644 (files), 0o755 (directories), 0o777 (links).
    #[serde(default)]
    pub mode: Option<u32>,
}

/// The largest file a seed may copy from this machine (busybox is about 2 MB).
pub const MAX_SEED_FILE_BYTES: u64 = 64 << 20;

impl SeedFileConfig {
    /// The layer entry (reading `from`), or what is wrong with the entry.
    fn to_file_spec(&self) -> Result<fixtures::FileSpec, (&'static str, String)> {
        use fixtures::FileContent;
        let kinds = [
            self.from.is_some(),
            self.text.is_some(),
            self.link.is_some(),
            self.dir,
            self.fleet_ca,
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err((
                "path",
                format!(
                    "file {:?} needs exactly one of from, text, link, dir = true, fleet_ca = true",
                    self.path
                ),
            ));
        }
        let path = self.path.trim_start_matches('/');
        if path.is_empty() || path.split('/').any(|c| c == "..") {
            return Err((
                "path",
                format!("{:?} is not a path inside the image", self.path),
            ));
        }
        let (content, mode) = if let Some(from) = &self.from {
            // Only a regular file of bounded size: `/dev/zero` would never end.
            match std::fs::metadata(from) {
                Ok(m) if !m.is_file() => {
                    return Err(("from", format!("{} is not a regular file", from.display())));
                }
                Ok(m) if m.len() > MAX_SEED_FILE_BYTES => {
                    return Err((
                        "from",
                        format!(
                            "{} holds {} bytes; a seed file may hold {MAX_SEED_FILE_BYTES}",
                            from.display(),
                            m.len()
                        ),
                    ));
                }
                _ => {}
            }
            let bytes = std::fs::read(from).map_err(|e| {
                let reason = e.to_string();
                let reason = reason
                    .split_once(" (os error")
                    .map_or(reason.as_str(), |(r, _)| r)
                    .to_owned();
                ("from", format!("cannot read {}: {reason}", from.display()))
            })?;
            (FileContent::Bytes(bytes.into()), 0o644)
        } else if let Some(text) = &self.text {
            (FileContent::Bytes(text.clone().into_bytes().into()), 0o644)
        } else if let Some(target) = &self.link {
            (FileContent::Symlink(target.clone()), 0o777)
        } else if self.dir {
            (FileContent::Dir, 0o755)
        } else {
            (FileContent::FleetCa, 0o644)
        };
        Ok(fixtures::FileSpec {
            path: path.to_owned(),
            content,
            mode: self.mode.unwrap_or(mode),
        })
    }
}

fn default_format() -> Spanned<String> {
    Spanned::new(0..0, "oci".into())
}

fn default_layers() -> Spanned<Vec<usize>> {
    Spanned::new(0..0, vec![1024])
}

/// The most layer bytes a fleet's seeded images may hold together (each platform of a
/// multi-platform seed counts): seeds are generated in memory when the fleet starts, and an
/// unbounded `layers = [4000000000]` ran the process out of memory (found by fuzzing,
/// docs/fuzzing.md).
pub const MAX_SEED_BYTES: usize = 256 << 20;

impl FleetConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            // `No such file or directory (os error 2)` → `No such file or directory`
            let reason = e.to_string();
            let reason = reason
                .split_once(" (os error")
                .map_or(reason.as_str(), |(r, _)| r);
            ConfigError {
                origin: origin.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read {origin}: {reason}"),
                hint: String::new(),
            }
        })?;
        Self::parse(&text, &origin)
    }

    /// A fleet of `hosts` (parsed as part of another file, such as a scenario).
    pub fn from_hosts(hosts: Vec<HostConfig>) -> Self {
        Self {
            address_base: None,
            hosts,
        }
    }

    /// `address_base`, once validated.
    pub fn address_base(&self) -> Option<std::net::Ipv4Addr> {
        self.address_base.as_ref()?.get_ref().parse().ok()
    }

    /// Parses and validates; `origin` names the text in errors (a path).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: FleetConfig = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        config.validate_in(text, origin)?;
        Ok(config)
    }

    /// Checks hosts that were parsed as part of a larger file (a scenario) from `text`.
    pub fn validate_in(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        self.validate(text, &|span, field, message, hint| {
            ConfigError::at(text, origin, span.start, field, message, hint)
        })
    }

    fn validate(
        &self,
        text: &str,
        at: &dyn Fn(Range<usize>, String, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if let Some(base) = &self.address_base {
            match base.get_ref().parse::<std::net::Ipv4Addr>() {
                Ok(ip) if ip.is_loopback() => {}
                _ => {
                    return Err(at(
                        base.span(),
                        "address_base".into(),
                        format!("{:?} is not an IPv4 loopback address", base.get_ref()),
                        "write it like \"127.0.5.2\" (in 127.0.0.0/8)".into(),
                    ));
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut hostnames = std::collections::BTreeSet::new();
        let mut seeded: usize = 0;
        for (i, h) in self.hosts.iter().enumerate() {
            if !names.insert(h.name.get_ref().as_str()) {
                return Err(at(
                    h.name.span(),
                    format!("host[{i}].name"),
                    format!("another host is already named {:?}", h.name.get_ref()),
                    "give every host a unique name".into(),
                ));
            }
            let hostname = h.hostname.get_ref().to_ascii_lowercase();
            if hostname.parse::<IpAddr>().is_ok() || !is_hostname(&hostname) {
                return Err(at(
                    h.hostname.span(),
                    format!("host[{i}].hostname"),
                    format!("{hostname:?} is not a DNS hostname"),
                    "use a name such as myregistry.azurecr.io: realms and certificates are \
                     built from it, never from an IP literal"
                        .into(),
                ));
            }
            if !hostnames.insert(hostname.clone()) {
                return Err(at(
                    h.hostname.span(),
                    format!("host[{i}].hostname"),
                    format!("{hostname} is already served by another host"),
                    "each hostname is served once".into(),
                ));
            }
            if let Some(a) = &h.address {
                match a.get_ref().parse::<IpAddr>() {
                    Ok(ip) if ip.is_loopback() => {}
                    Ok(ip) => {
                        return Err(at(
                            a.span(),
                            format!("host[{i}].address"),
                            format!("{ip} is not a loopback address"),
                            "use an address in 127.0.0.0/8 (or leave it out and one is \
                             allocated)"
                                .into(),
                        ));
                    }
                    Err(_) => {
                        return Err(at(
                            a.span(),
                            format!("host[{i}].address"),
                            format!("{:?} is not an IP address", a.get_ref()),
                            "write it like \"127.0.0.2\"".into(),
                        ));
                    }
                }
            }
            for (j, p) in h.principals.iter().enumerate() {
                for (k, g) in p.grants.iter().enumerate() {
                    parse_grant(g.get_ref()).map_err(|m| {
                        at(
                            g.span(),
                            format!("host[{i}].principal[{j}].grants[{k}]"),
                            m,
                            GRANT_HINT.into(),
                        )
                    })?;
                }
            }
            for (k, g) in h.anonymous.iter().enumerate() {
                parse_grant(g.get_ref()).map_err(|m| {
                    at(
                        g.span(),
                        format!("host[{i}].anonymous[{k}]"),
                        m,
                        GRANT_HINT.into(),
                    )
                })?;
            }
            for (j, f) in h.faults.iter().enumerate() {
                f.get_ref().validate().map_err(|e| {
                    let span = f.span();
                    let key = e.field().rsplit('.').next().unwrap_or("");
                    let start = key_offset(table_text(text, span.start), key)
                        .map_or(span.start, |o| span.start + o);
                    at(
                        start..start,
                        format!("host[{i}].fault[{j}].{}", e.field()),
                        e.to_string(),
                        "see the rule format in fake-registry/src/fault.rs or docs/faults.md"
                            .into(),
                    )
                })?;
            }
            for (j, s) in h.seeds.iter().enumerate() {
                if !matches!(s.format.get_ref().as_str(), "oci" | "docker") {
                    return Err(at(
                        s.format.span(),
                        format!("host[{i}].seed[{j}].format"),
                        format!("unknown image format {:?}", s.format.get_ref()),
                        "use \"oci\" or \"docker\"".into(),
                    ));
                }
                let bytes = s
                    .layers
                    .get_ref()
                    .iter()
                    .try_fold(0usize, |a, &l| a.checked_add(l))
                    .and_then(|b| b.checked_mul(s.platforms.len().max(1)))
                    .and_then(|b| seeded.checked_add(b))
                    .filter(|&total| total <= MAX_SEED_BYTES);
                match bytes {
                    Some(total) => seeded = total,
                    None => {
                        return Err(at(
                            s.layers.span(),
                            format!("host[{i}].seed[{j}].layers"),
                            format!(
                                "seeded images would hold more than {MAX_SEED_BYTES} bytes of \
                                 layers (every platform counts)"
                            ),
                            "seeds are generated in memory: use small layers, e.g. [4096]".into(),
                        ));
                    }
                }
                for (k, f) in s.files.iter().enumerate() {
                    f.get_ref().to_file_spec().map_err(|(field, message)| {
                        at(
                            f.span(),
                            format!("host[{i}].seed[{j}].files[{k}].{field}"),
                            message,
                            "e.g. { path = \"bin/sh\", link = \"busybox\" } or \
                             { path = \"etc/ssl/certs/ca-certificates.crt\", fleet_ca = true }"
                                .into(),
                        )
                    })?;
                }
                for (k, p) in s.platforms.iter().enumerate() {
                    Platform::parse(p.get_ref()).map_err(|m| {
                        at(
                            p.span(),
                            format!("host[{i}].seed[{j}].platforms[{k}]"),
                            m,
                            "write os/architecture[/variant], e.g. \"linux/arm64/v8\"".into(),
                        )
                    })?;
                }
                seed_fits_profile(h.profile.get_ref(), s.repository.get_ref()).map_err(
                    |(message, hint)| {
                        at(
                            s.repository.span(),
                            format!("host[{i}].seed[{j}].repository"),
                            message,
                            hint,
                        )
                    },
                )?;
            }
        }
        self.validate_served_hostnames(text, at)?;
        self.validate_mirrors(text, at)?;
        Ok(())
    }

    /// Every hostname is served once: a registry's hostname, a realm host (GitLab's
    /// `realm_host`, Docker Hub's `auth_host`) and a storage host (ACR's, ECR's) may not
    /// coincide — except a GitLab realm on the registry's own hostname, which the registry's
    /// listener serves.
    fn validate_served_hostnames(
        &self,
        text: &str,
        at: &dyn Fn(Range<usize>, String, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        // hostname → (host index, what it is there)
        let mut served: std::collections::BTreeMap<String, (usize, &'static str)> =
            Default::default();
        for (i, h) in self.hosts.iter().enumerate() {
            served
                .entry(h.hostname.get_ref().to_ascii_lowercase())
                .or_insert((i, "registry"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let own = h.hostname.get_ref().to_ascii_lowercase();
            for extra in extra_hostnames(h.profile.get_ref(), &own) {
                let span = h.profile.span();
                let table = table_text(text, span.start);
                let start = key_offset(table, extra.key).map_or(span.start, |o| span.start + o);
                let field = format!("host[{i}].profile.{}", extra.key);
                let what = if extra.written {
                    format!("{} {}", extra.role, extra.hostname)
                } else {
                    format!("the default {} {}", extra.role, extra.hostname)
                };
                if extra.role == "realm host" && extra.hostname == own {
                    if extra.own_host_ok {
                        continue;
                    }
                    return Err(at(
                        start..start,
                        field,
                        format!("{what} is this registry's own hostname"),
                        "give the realm its own hostname".into(),
                    ));
                }
                if let Some((j, role)) = served.get(&extra.hostname) {
                    let other = self.hosts[*j].name.get_ref();
                    let whose = if *j == i {
                        "this host".to_owned()
                    } else {
                        format!("host[{j}] ({other:?})")
                    };
                    return Err(at(
                        start..start,
                        field,
                        format!("{what} is already served as the {role} of {whose}"),
                        format!(
                            "each hostname is served once: set `{}` to another hostname{}",
                            extra.key,
                            if *role == "registry" {
                                " (a realm may be the registry's own hostname only for GitLab)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                served.insert(
                    extra.hostname.clone(),
                    (
                        i,
                        if extra.role == "realm host" {
                            "realm host"
                        } else {
                            "storage host"
                        },
                    ),
                );
            }
        }
        Ok(())
    }

    /// A mirror names upstreams, each served by this fleet (or on loopback), on the port
    /// and scheme that host is served with; `resolve` maps only to loopback.
    fn validate_mirrors(
        &self,
        text: &str,
        at: &dyn Fn(Range<usize>, String, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let mut fleet_hosts: std::collections::BTreeMap<String, Option<(u16, bool)>> =
            Default::default();
        for h in &self.hosts {
            let own = h.hostname.get_ref().to_ascii_lowercase();
            for extra in extra_hostnames(h.profile.get_ref(), &own) {
                fleet_hosts
                    .entry(extra.hostname)
                    .or_insert(Some((443, true)));
            }
            fleet_hosts.insert(own, (h.port != 0).then_some((h.port, h.tls)));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let ProfileConfig::Mirror(m) = h.profile.get_ref() else {
                continue;
            };
            let span = h.profile.span();
            let table = table_text(text, span.start);
            let key_at = |key: &str| {
                let start = key_offset(table, key).map_or(span.start, |o| span.start + o);
                start..start
            };
            if m.upstreams.is_empty() {
                return Err(at(
                    key_at("upstreams"),
                    format!("host[{i}].profile.upstreams"),
                    "a mirror needs at least one upstream".into(),
                    "add `upstreams = [{ key = \"docker.io\", url = \"https://<a registry \
                     of this fleet>\" }]`"
                        .into(),
                ));
            }
            for (host, addr) in &m.resolve {
                if !addr.ip().is_loopback() {
                    return Err(at(
                        key_at("resolve"),
                        format!("host[{i}].profile.resolve"),
                        format!("{host} → {addr} is not a loopback address"),
                        "upstream traffic stays on loopback: map hosts into 127.0.0.0/8".into(),
                    ));
                }
            }
            for (k, up) in m.upstreams.iter().enumerate() {
                let quoted = format!("\"{}\"", up.url);
                let location = match table.find(&quoted) {
                    Some(o) => span.start + o..span.start + o,
                    None => key_at("upstreams"),
                };
                let field = format!("host[{i}].profile.upstreams[{k}].url");
                let problem = upstream_problem(&up.url, &fleet_hosts, &m.resolve);
                if let Some((message, hint)) = problem {
                    return Err(at(location, field, message, hint));
                }
            }
        }
        Ok(())
    }

    /// The fleet's hosts, ready for [`crate::fleet::Fleet::start`]; `now` is the Unix time
    /// principals' relative times count from.
    pub fn into_hosts(self, now: i64) -> Result<Vec<HostSpec>, String> {
        self.hosts.into_iter().map(|h| h.into_spec(now)).collect()
    }
}

/// A hostname a profile serves besides the registry's own.
struct ExtraHostname {
    hostname: String,
    /// `realm host` or `storage host`
    role: &'static str,
    /// The profile option that names it.
    key: &'static str,
    /// Written in the file (not derived from a default).
    written: bool,
    /// May be the registry's own hostname (then served once, by the registry's listener).
    own_host_ok: bool,
}

/// The realm and storage hostnames a profile adds to the fleet (as the fleet will serve
/// them: `Profile::extra_hosts`), for a registry served as `own`.
fn extra_hostnames(profile: &ProfileConfig, own: &str) -> Vec<ExtraHostname> {
    match profile {
        ProfileConfig::Acr(o) if o.storage_redirect => {
            let mut o = o.clone();
            if o.login_server.is_empty() {
                o.login_server = own.to_owned();
            }
            vec![ExtraHostname {
                hostname: o.storage_hostname(),
                role: "storage host",
                key: "storage_host",
                written: !o.storage_host.is_empty(),
                own_host_ok: false,
            }]
        }
        ProfileConfig::Ecr(o) if o.storage_redirect => {
            let mut o = o.clone();
            if o.host.is_empty() {
                o.host = own.to_owned();
            }
            vec![ExtraHostname {
                hostname: o.storage_hostname(),
                role: "storage host",
                key: "storage_host",
                written: !o.storage_host.is_empty(),
                own_host_ok: false,
            }]
        }
        ProfileConfig::Gitlab(o) => o
            .realm_host
            .iter()
            .map(|h| ExtraHostname {
                hostname: h.to_ascii_lowercase(),
                role: "realm host",
                key: "realm_host",
                written: true,
                own_host_ok: true,
            })
            .collect(),
        ProfileConfig::Dockerhub(o) => vec![ExtraHostname {
            hostname: o.auth_host.to_ascii_lowercase(),
            role: "realm host",
            key: "auth_host",
            written: true,
            own_host_ok: false,
        }],
        _ => Vec::new(),
    }
}

/// Why a seeded repository cannot exist on this profile: an ECR repository must be listed
/// (ECR does not create repositories), a GitLab image must belong to a project.
fn seed_fits_profile(profile: &ProfileConfig, repository: &str) -> Result<(), (String, String)> {
    match profile {
        ProfileConfig::Ecr(o)
            if !o.any_repository && !o.repositories.iter().any(|r| r == repository) =>
        {
            Err((
                format!(
                    "ECR repository {repository:?} does not exist: it is not in the profile's `repositories`"
                ),
                format!(
                    "add \"{repository}\" to `repositories` in [host.profile] (ECR repositories exist before anything is pushed), or set `any_repository = true`"
                ),
            ))
        }
        ProfileConfig::Gitlab(o) if o.project_of(repository).is_none() => Err((
            format!("{repository:?} belongs to no GitLab project of the profile's `projects`"),
            "add a project whose path is the repository or a prefix of it at most two levels \
             up, e.g. projects = [{ path = \"group/app\" }]"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// What is wrong with a mirror's upstream URL, if anything: (message, hint).
fn upstream_problem(
    url: &str,
    fleet_hosts: &std::collections::BTreeMap<String, Option<(u16, bool)>>,
    resolve: &std::collections::BTreeMap<String, std::net::SocketAddr>,
) -> Option<(String, String)> {
    let hint_url = "write the URL of a registry of this fleet, e.g. \"https://registry.example.com\" \
                    (with `:port` when it is not 443)";
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            return Some((
                format!("upstream {url:?} is not an http(s) URL"),
                hint_url.into(),
            ));
        }
    };
    let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return (!ip.is_loopback()).then(|| {
            (
                format!("upstream {url:?} is not on loopback"),
                "upstream traffic stays on loopback".into(),
            )
        });
    }
    if host == "localhost" || resolve.keys().any(|k| k.eq_ignore_ascii_case(&host)) {
        return None;
    }
    let Some(served) = fleet_hosts.get(&host) else {
        return Some((
            format!("upstream {url:?}: {host} is not a host of this fleet"),
            format!("{hint_url}; or map {host} to a loopback address in the mirror's `resolve`"),
        ));
    };
    let (port, tls) = (*served)?;
    let scheme = if tls { "https" } else { "http" };
    if parsed.scheme() != scheme || parsed.port_or_known_default() != Some(port) {
        let authority = if port == if tls { 443 } else { 80 } {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        return Some((
            format!("upstream {url:?}: {host} is served on {scheme}://{authority}"),
            format!("write \"{scheme}://{authority}\""),
        ));
    }
    None
}

const GRANT_HINT: &str = "write `<repository glob>:<actions>`, e.g. \"team/*:pull,push\" \
                          (`*` within a path segment, `**` across segments)";

/// `repo/glob:pull,push` → a grant.
pub fn parse_grant(text: &str) -> Result<Grant, String> {
    let (repos, actions) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("grant {text:?} has no `:` before its actions"))?;
    let actions: Vec<String> = actions.split(',').map(|a| a.trim().to_owned()).collect();
    if repos.is_empty() {
        return Err(format!("grant {text:?} names no repositories"));
    }
    for a in &actions {
        if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
            return Err(format!(
                "unknown action {a:?} in grant {text:?} (pull, push, delete or *)"
            ));
        }
    }
    Ok(Grant {
        repositories: repos.to_owned(),
        actions,
    })
}

impl HostConfig {
    fn into_spec(self, now: i64) -> Result<HostSpec, String> {
        let hostname = self.hostname.into_inner().to_ascii_lowercase();
        let directory = Directory {
            principals: self
                .principals
                .into_iter()
                .map(|p| {
                    Ok(Principal {
                        name: p.name,
                        kind: p.kind,
                        username: p.username,
                        secret: p.secret,
                        grants: p
                            .grants
                            .iter()
                            .map(|g| parse_grant(g.get_ref()))
                            .collect::<Result<_, _>>()?,
                        effective_from: p.effective_after.map(|s| now + s),
                        expires_at: p.expires_after.map(|s| now + s),
                    })
                })
                .collect::<Result<_, String>>()?,
            anonymous: self
                .anonymous
                .iter()
                .map(|g| parse_grant(g.get_ref()))
                .collect::<Result<_, _>>()?,
        };
        let mut options = crate::api::RegistryOptions::default();
        let profile = match self.profile.into_inner() {
            ProfileConfig::Open {} => ProfileChoice::Open,
            ProfileConfig::Bearer(options) => ProfileChoice::Bearer { options, directory },
            ProfileConfig::Acr(mut o) => {
                if o.login_server.is_empty() {
                    o.login_server = hostname.clone();
                }
                ProfileChoice::Acr {
                    options: o,
                    directory,
                }
            }
            ProfileConfig::Ecr(mut o) => {
                if o.host.is_empty() {
                    o.host = hostname.clone();
                }
                options.page_cap = Some(1000);
                ProfileChoice::Ecr {
                    options: o,
                    directory,
                }
            }
            ProfileConfig::Gitlab(options) => ProfileChoice::Gitlab { options, directory },
            ProfileConfig::Dockerhub(options) => ProfileChoice::Dockerhub { options, directory },
            ProfileConfig::Mirror(options) => ProfileChoice::Mirror { options, directory },
        };
        let mut seeds = Vec::new();
        let mut fleet_ca_seeds = Vec::new();
        for s in self.seeds {
            let format = match s.format.get_ref().as_str() {
                "docker" => Format::Docker,
                _ => Format::Oci,
            };
            let spec = if s.platforms.len() > 1 {
                let platforms: Vec<&str> =
                    s.platforms.iter().map(|p| p.get_ref().as_str()).collect();
                ImageSpec::multi(format, &platforms, s.layers.get_ref())?
            } else {
                let mut spec = ImageSpec::single(format, s.layers.get_ref());
                if let Some(p) = s.platforms.first() {
                    spec.platforms = vec![Platform::parse(p.get_ref())?];
                }
                spec
            };
            let files = s
                .files
                .iter()
                .map(|f| f.get_ref().to_file_spec().map_err(|(_, m)| m))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = spec
                .with_seed(s.seed)
                .with_config(s.labels, s.env)
                .with_files(files);
            if spec.needs_fleet_ca() {
                fleet_ca_seeds.push((s.repository.into_inner(), s.tag, spec));
                continue;
            }
            let image = fixtures::generate(&spec).map_err(|e| e.to_string())?;
            seeds.push((s.repository.into_inner(), s.tag, image));
        }
        let mut spec = HostSpec::new(self.name.get_ref(), &hostname, profile);
        spec.address = self.address.and_then(|a| a.get_ref().parse().ok());
        spec.port = self.port;
        spec.tls = self.tls;
        spec.tls_versions = self.tls_versions;
        spec.storage = self.storage;
        spec.options = options;
        spec.seeds = seeds;
        spec.fleet_ca_seeds = fleet_ca_seeds;
        spec.faults = self.faults.into_iter().map(Spanned::into_inner).collect();
        Ok(spec)
    }
}

/// The text of the table starting at `start`: up to the next table header.
fn table_text(text: &str, start: usize) -> &str {
    let rest = text.get(start..).unwrap_or("");
    let body = rest.find('\n').map_or(0, |i| i + 1);
    let end = rest
        .get(body..)
        .and_then(|r| r.find("\n["))
        .map_or(rest.len(), |i| body + i);
    rest.get(..end).unwrap_or(rest)
}

/// Where `key = …` starts in `table` (the text of one TOML table or inline table).
fn key_offset(table: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    table.match_indices(key).map(|(i, _)| i).find(|&i| {
        let before = table[..i].chars().next_back();
        let after = table[i + key.len()..].trim_start();
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            && (after.starts_with('=') || after.starts_with('.'))
    })
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A `toml` parse error of `text`, located like every config error (line, column, field,
/// hint), for other TOML files of the project (scenarios) to report the same way.
pub fn toml_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message();
    ConfigError::at(
        text,
        origin,
        e.span().map_or(0, |s| s.start),
        field_of(text, e.span()),
        message,
        hint_for(message),
    )
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, rest)| rest)
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The dotted path of the key at `span`: the enclosing `[table]`/`[[array]]` header (with
/// the index of array tables) and the key on that line, when there is one.
fn field_of(text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    // A span over the whole document (a missing top-level field) names no table.
    if span.start == 0 && (span.end == 0 || span.end >= text.trim_end().len()) {
        return String::new();
    }
    let start = span.start.min(text.len());
    // When the span starts on a table header (`[host.profile]`), that header is the field.
    let line_end = text
        .get(start..)
        .and_then(|r| r.find('\n'))
        .map_or(text.len(), |i| start + i);
    let on_header = text
        .get(..line_end)
        .and_then(|t| t.rsplit('\n').next())
        .is_some_and(|l| l.trim_start().starts_with('['));
    let before = text
        .get(..if on_header { line_end } else { start })
        .unwrap_or("");
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut parents: Vec<(String, usize)> = Vec::new();
    for line in before.lines() {
        let l = line.trim();
        if l.matches('[').count() > 2 || l.matches(']').count() > 2 {
            continue;
        }
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            *n += 1;
            // A new element of an outer array resets its nested arrays' counts.
            counts.retain(|k, _| !k.starts_with(&format!("{name}.")));
            parents.retain(|(k, _)| *k != name && !k.starts_with(&format!("{name}.")));
            parents.push((name.clone(), counts[&name] - 1));
            table = indexed(&name, &parents);
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && !name.contains('[')
            && !name.contains(']')
        {
            table = indexed(name.trim(), &parents);
        }
    }
    if on_header {
        return table;
    }
    let line = text.get(start..).unwrap_or("").lines().next().unwrap_or("");
    let line_start = before.rsplit_once('\n').map_or(before, |(_, r)| r);
    let whole = format!("{line_start}{line}");
    let key = whole
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .unwrap_or("");
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// `host.principal` with parents [("host",1),("host.principal",0)] → `host[1].principal[0]`.
fn indexed(name: &str, parents: &[(String, usize)]) -> String {
    let mut out = String::new();
    let mut prefix = String::new();
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            prefix.push('.');
            out.push('.');
        }
        prefix.push_str(part);
        out.push_str(part);
        if let Some((_, n)) = parents.iter().find(|(k, _)| *k == prefix) {
            out.push_str(&format!("[{n}]"));
        }
    }
    out
}

fn hint_for(message: &str) -> String {
    if message.contains("unknown variant") && message.contains("expected one of `open`") {
        return format!("`kind` is one of: {}", PROFILE_KINDS.join(", "));
    }
    if message.contains("missing field `kind`") {
        return format!(
            "add `kind = \"…\"` to the profile table: {}",
            PROFILE_KINDS.join(", ")
        );
    }
    if message.contains("unknown field") {
        return "remove or rename the field; the message lists the valid ones".into();
    }
    if message.contains("missing field") {
        return "add the field; docs/fleet.md lists every field".into();
    }
    if message.contains("unknown variant") {
        return "use one of the values the message lists".into();
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = r#"
[[host]]
name = "acr"
hostname = "myregistry.azurecr.io"
[host.profile]
kind = "acr"
[[host.principal]]
name = "sp"
kind = "service-principal"
username = "app-id"
secret = "s3cret"
grants = ["**:pull,push"]
[[host.seed]]
repository = "base/run"
tag = "1"
format = "docker"
platforms = ["linux/amd64", "linux/arm64"]

[[host]]
name = "open"
hostname = "registry.example.com"
address = "127.0.0.9"
port = 5443
[host.profile]
kind = "open"
"#;

    #[test]
    fn seed_labels_and_env_reach_the_image_config() {
        let text = "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"cnb/build\"\ntag = \"1\"\nlabels = { \"io.buildpacks.stack.id\" = \"s\" }\nenv = [\"CNB_USER_ID=1000\"]\n";
        let hosts = FleetConfig::parse(text, "fleet.toml")
            .unwrap()
            .into_hosts(0)
            .unwrap();
        let image = &hosts[0].seeds[0].2;
        let config = image
            .blobs
            .iter()
            .find(|b| b.media_type.contains("config"))
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&config.bytes).unwrap();
        assert_eq!(config["config"]["Labels"]["io.buildpacks.stack.id"], "s");
        assert_eq!(config["config"]["Env"][1], "CNB_USER_ID=1000");
    }

    #[test]
    fn seed_files_are_checked_where_they_are_written_and_wait_for_the_fleet_ca() {
        let config = |files: &str| {
            format!(
                "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"cnb/build\"\ntag = \"1\"\nfiles = [\n  {files},\n]\n"
            )
        };
        for (files, message) in [
            ("{ path = \"bin/sh\" }", "exactly one of"),
            (
                "{ path = \"bin/sh\", link = \"x\", dir = true }",
                "exactly one of",
            ),
            ("{ path = \"../etc/x\", text = \"x\" }", "not a path inside"),
            (
                "{ path = \"x\", from = \"/nonexistent/busybox\" }",
                "cannot read /nonexistent/busybox",
            ),
            (
                "{ path = \"x\", from = \"/dev/zero\" }",
                "not a regular file",
            ),
        ] {
            let e = FleetConfig::parse(&config(files), "fleet.toml").unwrap_err();
            assert!(
                e.field.starts_with("host[0].seed[0].files[0]."),
                "{files}: {e}"
            );
            assert!(e.message.contains(message), "{files}: {e}");
            assert_eq!(e.line, 10, "{files}: {e}");
        }
        let hosts = FleetConfig::parse(
            &config(
                "{ path = \"etc/passwd\", text = \"root:x:0:0::/:/bin/sh\" }, \
                 { path = \"etc/ssl/certs/ca-certificates.crt\", fleet_ca = true }",
            ),
            "fleet.toml",
        )
        .unwrap()
        .into_hosts(0)
        .unwrap();
        assert!(
            hosts[0].seeds.is_empty(),
            "generated only once the CA exists"
        );
        let (repository, _, spec) = &hosts[0].fleet_ca_seeds[0];
        assert_eq!(repository, "cnb/build");
        assert_eq!(spec.files.len(), 2);
        assert!(spec.needs_fleet_ca());
    }

    /// Fuzzing (docs/fuzzing.md, target `fleet_config`): `layers = [4000000000]` passed
    /// validation and ran `into_hosts` out of memory generating the seed.
    #[test]
    fn oversized_seed_layers_are_refused_before_anything_is_generated() {
        let config = |layers: &str, platforms: &str| {
            format!(
                "[[host]]\nname = \"reg\"\nhostname = \"registry.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"group/app\"\ntag = \"v1\"\nplatforms = {platforms}\nlayers = {layers}\n"
            )
        };
        for (layers, platforms) in [
            ("[4000000000]", "[]"),
            ("[18446744073709551615, 1]", "[]"),
            (
                "[134217728]",
                "[\"linux/amd64\", \"linux/arm64\", \"linux/s390x\"]",
            ),
        ] {
            let text = config(layers, platforms);
            let e = FleetConfig::parse(&text, "fleet.toml").unwrap_err();
            assert_eq!(
                e.field, "host[0].seed[0].layers",
                "{layers} {platforms}: {e}"
            );
            assert_eq!(e.line, 10, "{e}");
        }
        let ok = config("[4096]", "[\"linux/amd64\", \"linux/arm64\"]");
        assert!(
            FleetConfig::parse(&ok, "fleet.toml")
                .unwrap()
                .into_hosts(0)
                .is_ok()
        );
    }

    #[test]
    fn a_good_config_becomes_host_specs() {
        let c = FleetConfig::parse(GOOD, "fleet.toml").unwrap();
        let hosts = c.into_hosts(1000).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].hostname, "myregistry.azurecr.io");
        assert_eq!(hosts[0].port, 443);
        assert!(hosts[0].tls);
        assert_eq!(hosts[0].seeds.len(), 1);
        assert_eq!(hosts[0].seeds[0].2.platform_manifests().len(), 2);
        match &hosts[0].profile {
            ProfileChoice::Acr { options, directory } => {
                assert_eq!(options.login_server, "myregistry.azurecr.io");
                assert_eq!(directory.principals[0].grants[0].repositories, "**");
            }
            _ => panic!("acr expected"),
        }
        assert_eq!(hosts[1].address, Some("127.0.0.9".parse().unwrap()));
        assert_eq!(hosts[1].port, 5443);
    }

    #[rstest]
    #[case::unknown_profile_kind(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"quay\"\n",
        5,
        "host[0].profile.kind",
        "unknown variant `quay`"
    )]
    #[case::missing_kind(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nservice = \"x\"\n",
        4,
        "host[0].profile",
        "missing field `kind`"
    )]
    #[case::unknown_host_field(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\nportt = 5\n[host.profile]\nkind = \"open\"\n",
        4,
        "host[0].portt",
        "unknown field `portt`"
    )]
    #[case::missing_hostname(
        "[[host]]\nname = \"a\"\n[host.profile]\nkind = \"open\"\n",
        1,
        "host[0]",
        "missing field `hostname`"
    )]
    #[case::port_not_a_number(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\nport = \"443\"\n[host.profile]\nkind = \"open\"\n",
        4,
        "host[0].port",
        "invalid type"
    )]
    #[case::port_too_large(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\nport = 70000\n[host.profile]\nkind = \"open\"\n",
        4,
        "host[0].port",
        ""
    )]
    #[case::non_loopback_address(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\naddress = \"10.0.0.1\"\n[host.profile]\nkind = \"open\"\n",
        4,
        "host[0].address",
        "not a loopback address"
    )]
    #[case::address_not_ip(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\naddress = \"localhost\"\n[host.profile]\nkind = \"open\"\n",
        4,
        "host[0].address",
        "not an IP address"
    )]
    #[case::ip_literal_hostname(
        "[[host]]\nname = \"a\"\nhostname = \"127.0.0.1\"\n[host.profile]\nkind = \"open\"\n",
        3,
        "host[0].hostname",
        "not a DNS hostname"
    )]
    #[case::duplicate_name(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host]]\nname = \"a\"\nhostname = \"b.example.com\"\n[host.profile]\nkind = \"open\"\n",
        7,
        "host[1].name",
        "already named"
    )]
    #[case::duplicate_hostname(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host]]\nname = \"b\"\nhostname = \"A.example.com\"\n[host.profile]\nkind = \"open\"\n",
        8,
        "host[1].hostname",
        "already served"
    )]
    #[case::bad_grant(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.principal]]\nname = \"u\"\nkind = \"user\"\nsecret = \"p\"\ngrants = [\"app:pull,fly\"]\n",
        10,
        "host[0].principal[0].grants[0]",
        "unknown action \"fly\""
    )]
    #[case::bad_principal_kind(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.principal]]\nname = \"u\"\nkind = \"robot\"\nsecret = \"p\"\n",
        8,
        "host[0].principal[0].kind",
        "unknown variant `robot`"
    )]
    #[case::bad_seed_format(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"r\"\ntag = \"t\"\nformat = \"schema1\"\n",
        9,
        "host[0].seed[0].format",
        "unknown image format"
    )]
    #[case::bad_platform(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"r\"\ntag = \"t\"\nplatforms = [\"linux\"]\n",
        9,
        "host[0].seed[0].platforms[0]",
        ""
    )]
    #[case::second_host_bad_field(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host]]\nname = \"b\"\nhostname = \"b.example.com\"\ntsl = false\n[host.profile]\nkind = \"open\"\n",
        9,
        "host[1].tsl",
        "unknown field `tsl`"
    )]
    #[case::fault_probability_out_of_range(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.fault]]\nmatch = { path = \"/v2/\" }\nwhen = { probability = 1.5 }\naction = { type = \"reset\" }\n",
        8,
        "host[0].fault[0].when.probability",
        "between 0 and 1"
    )]
    #[case::fault_bad_status(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.fault]]\naction = { type = \"status\", code = 700 }\n",
        7,
        "host[0].fault[0].action.code",
        "not an HTTP status"
    )]
    #[case::fault_unknown_action(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.fault]]\naction = { type = \"explode\" }\n",
        7,
        "host[0].fault[0].action",
        "unknown variant `explode`"
    )]
    #[case::fault_unknown_field(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.fault]]\nwhen = { nth = 1 }\nthen = 1\naction = { type = \"reset\" }\n",
        8,
        "host[0].fault[0].then",
        "unknown field `then`"
    )]
    #[case::fault_nth_zero_on_second_host(
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n[[host]]\nname = \"b\"\nhostname = \"b.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.fault]]\naction = { type = \"reset\" }\n[[host.fault]]\nwhen = { nth = 0 }\naction = { type = \"reset\" }\n",
        14,
        "host[1].fault[1].when.nth",
        "counts from 1"
    )]
    #[case::storage_redirect_not_bool(
        "[[host]]\nname = \"a\"\nhostname = \"a.azurecr.io\"\n[host.profile]\nkind = \"acr\"\nstorage_redirect = \"yes\"\n",
        4,
        "host[0].profile",
        "expected a boolean"
    )]
    #[case::not_toml("[[host]\nname = \"a\"\n", 1, "", "")]
    #[case::address_base_not_loopback(
        "address_base = \"10.0.0.2\"\n[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"open\"\n",
        1,
        "address_base",
        "not an IPv4 loopback address"
    )]
    #[case::mirror_without_upstream(
        "[[host]]\nname = \"m\"\nhostname = \"m.example.com\"\n[host.profile]\nkind = \"mirror\"\nlayout = \"ns\"\n",
        4,
        "host[0].profile.upstreams",
        "at least one upstream"
    )]
    #[case::mirror_upstream_outside_the_fleet(
        "[[host]]\nname = \"m\"\nhostname = \"m.example.com\"\n[host.profile]\nkind = \"mirror\"\nupstreams = [{ key = \"x\", url = \"https://elsewhere.example\" }]\n",
        6,
        "host[0].profile.upstreams[0].url",
        "elsewhere.example is not a host of this fleet"
    )]
    #[case::mirror_upstream_on_the_wrong_port(
        "[[host]]\nname = \"g\"\nhostname = \"g.example.com\"\nport = 5443\n[host.profile]\nkind = \"open\"\n[[host]]\nname = \"m\"\nhostname = \"m.example.com\"\n[host.profile]\nkind = \"mirror\"\nupstreams = [{ key = \"g\", url = \"https://g.example.com\" }]\n",
        12,
        "host[1].profile.upstreams[0].url",
        "g.example.com is served on https://g.example.com:5443"
    )]
    #[case::mirror_resolve_outside_loopback(
        "[[host]]\nname = \"m\"\nhostname = \"m.example.com\"\n[host.profile]\nkind = \"mirror\"\nupstreams = [{ key = \"x\", url = \"https://x.example\" }]\nresolve = { \"x.example\" = \"10.0.0.1:443\" }\n",
        7,
        "host[0].profile.resolve",
        "not a loopback address"
    )]
    #[case::registry_is_another_hosts_realm(
        "[[host]]\nname = \"g\"\nhostname = \"registry.g.example.com\"\n[host.profile]\nkind = \"gitlab\"\nrealm_host = \"b.example.com\"\n[[host]]\nname = \"b\"\nhostname = \"b.example.com\"\n[host.profile]\nkind = \"open\"\n",
        6,
        "host[0].profile.realm_host",
        "realm host b.example.com is already served as the registry of host[1] (\"b\")"
    )]
    #[case::two_hosts_one_realm(
        "[[host]]\nname = \"g\"\nhostname = \"r1.example.com\"\n[host.profile]\nkind = \"gitlab\"\nrealm_host = \"gitlab.example.com\"\n[[host]]\nname = \"h\"\nhostname = \"r2.example.com\"\n[host.profile]\nkind = \"gitlab\"\nrealm_host = \"gitlab.example.com\"\n",
        12,
        "host[1].profile.realm_host",
        "already served as the realm host of host[0] (\"g\")"
    )]
    #[case::storage_host_is_a_registry(
        "[[host]]\nname = \"acr\"\nhostname = \"a.azurecr.io\"\n[host.profile]\nkind = \"acr\"\nstorage_host = \"b.example.com\"\n[[host]]\nname = \"b\"\nhostname = \"b.example.com\"\n[host.profile]\nkind = \"open\"\n",
        6,
        "host[0].profile.storage_host",
        "storage host b.example.com is already served as the registry of host[1]"
    )]
    #[case::default_storage_hosts_clash(
        "[[host]]\nname = \"a\"\nhostname = \"myregistry.azurecr.io\"\n[host.profile]\nkind = \"acr\"\n[[host]]\nname = \"b\"\nhostname = \"myregistry.azurecr.cn\"\n[host.profile]\nkind = \"acr\"\n",
        9,
        "host[1].profile.storage_host",
        "the default storage host myregistry.blob.core.windows.net is already served as the storage host of host[0]"
    )]
    #[case::dockerhub_auth_on_its_own_host(
        "[[host]]\nname = \"hub\"\nhostname = \"registry-1.docker.io\"\n[host.profile]\nkind = \"dockerhub\"\nauth_host = \"registry-1.docker.io\"\n",
        6,
        "host[0].profile.auth_host",
        "this registry's own hostname"
    )]
    #[case::ecr_seed_outside_repositories(
        "[[host]]\nname = \"ecr\"\nhostname = \"1.dkr.ecr.us-east-2.amazonaws.com\"\n[host.profile]\nkind = \"ecr\"\nrepositories = [\"app\"]\n[[host.seed]]\nrepository = \"openjdk\"\ntag = \"17\"\n",
        8,
        "host[0].seed[0].repository",
        "ECR repository \"openjdk\" does not exist"
    )]
    #[case::gitlab_seed_outside_projects(
        "[[host]]\nname = \"g\"\nhostname = \"g.example.com\"\n[host.profile]\nkind = \"gitlab\"\nprojects = [{ path = \"team/app\" }]\n[[host.seed]]\nrepository = \"team/app/image\"\ntag = \"1\"\n[[host.seed]]\nrepository = \"other/app\"\ntag = \"1\"\n",
        11,
        "host[0].seed[1].repository",
        "\"other/app\" belongs to no GitLab project"
    )]
    fn malformed_configs_name_line_and_field(
        #[case] text: &str,
        #[case] line: usize,
        #[case] field: &str,
        #[case] message: &str,
    ) {
        let e = FleetConfig::parse(text, "fleet.toml").expect_err("refused");
        let shown = e.to_string();
        assert!(shown.starts_with("fleet.toml:"), "{shown}");
        assert_eq!(e.line, line, "{shown}");
        assert_eq!(e.field, field, "{shown}");
        assert!(e.message.contains(message), "{shown}");
    }

    #[test]
    fn unknown_profile_kind_hints_the_valid_ones() {
        let e = FleetConfig::parse(
            "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"quay\"\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.hint.contains("gitlab, dockerhub, mirror"), "{e}");
    }

    #[test]
    fn a_gitlab_realm_on_its_own_hostname_and_listed_seeds_are_accepted() {
        let text = "[[host]]\nname = \"g\"\nhostname = \"gitlab.example.com\"\nport = 5050\n[host.profile]\nkind = \"gitlab\"\nrealm_host = \"gitlab.example.com\"\nprojects = [{ path = \"team/app\" }]\n[[host.seed]]\nrepository = \"team/app\"\ntag = \"1\"\n[[host]]\nname = \"e\"\nhostname = \"1.dkr.ecr.us-east-2.amazonaws.com\"\n[host.profile]\nkind = \"ecr\"\nany_repository = true\n[[host.seed]]\nrepository = \"anything\"\ntag = \"1\"\n[[host]]\nname = \"m\"\nhostname = \"mirror.example.com\"\n[host.profile]\nkind = \"mirror\"\nupstreams = [{ key = \"g\", url = \"https://gitlab.example.com:5050\" }, { key = \"l\", url = \"http://127.0.0.1:5000\" }]\n";
        let c = FleetConfig::parse(text, "f.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.into_hosts(0).unwrap().len(), 3);
    }

    #[test]
    fn address_base_is_read() {
        let c = FleetConfig::parse("address_base = \"127.0.7.2\"\n", "f.toml").unwrap();
        assert_eq!(
            c.address_base(),
            Some(std::net::Ipv4Addr::new(127, 0, 7, 2))
        );
    }

    #[test]
    fn an_unreadable_file_has_no_position() {
        let e = FleetConfig::load(Path::new("/nonexistent/fleet.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read /nonexistent/fleet.toml: No such file or directory"
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
