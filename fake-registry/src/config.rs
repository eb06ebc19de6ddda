//! The fleet configuration: one TOML file declares every virtual registry of a run — its
//! hostname and address, vendor profile, principals and grants, seeded images and faults.
//!
//! ```toml
//! [[host]]
//! name = "acr"                          # how journals and reports refer to it: [a-z0-9_-]
//! hostname = "myregistry.azurecr.io"    # a DNS name, lowercase, never an IP literal
//! # address = "127.0.0.2"               # loopback only; default: the fleet picks 127.0.0.N
//! # port = 443                          # default 443; 0 = ephemeral
//! # tls = true                          # default true (certificate from the fleet's CA)
//! # storage = "/var/tmp/acr"            # default: in memory
//! # anonymous = ["public/**:pull"]      # what clients without credentials may do
//! [host.profile]
//! kind = "acr"                          # open | bearer | acr | ecr | gitlab
//! blob_redirect = "myregistry.blob.core.windows.net"
//! [[host.principal]]
//! name = "sp-pull"
//! kind = "service-principal"            # user | service-principal | admin-user | …
//! username = "11111111-2222-3333-4444-555555555555"
//! # secret = "…"                        # or `password`; generated when absent
//! grants = ["**:pull", "team/app:pull,push"]
//! [[host.seed]]
//! repository = "base"
//! tag = "1"
//! image = { format = "docker", platforms = ["linux/amd64", "linux/arm64"], layers = [1024] }
//! [[host.faults]]
//! match = { path = "/v2/*/manifests/*" }
//! when = { nth = 1 }
//! action = { type = "status", code = 503 }
//! ```
//!
//! Durations (token lifetimes, `effective_after`, `expires_after`) are whole **seconds**.
//!
//! Errors name the file, the line and column, the dotted field path and a fix:
//! `fleet.toml:7:8: field `host[0].profile.kind`: unknown profile kind "azure"` followed by
//! `  hint: use one of: open, bearer, acr, ecr, gitlab`. Syntax and type errors come from the
//! `toml` crate with its byte spans; semantic checks (duplicates, non-loopback addresses,
//! grant syntax…) run after parsing and point at the offending value through an index of
//! every key's span.

use crate::auth::{Grant, PrincipalKind};
use crate::fault::FaultConfig;
use crate::fixtures::{Format, ImageSpec, Platform};
use crate::profile::acr::AcrOptions;
use crate::profile::bearer::BearerOptions;
use crate::profile::ecr::EcrOptions;
use crate::profile::gitlab::GitlabOptions;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The largest layer a seed may ask for (seeds are generated in memory).
pub const MAX_SEED_LAYER: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostConfig>,
}

fn default_port() -> u16 {
    443
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Logical name used in journals and reports: `acr`.
    pub name: String,
    /// `myregistry.azurecr.io`.
    pub hostname: String,
    /// Loopback only; `None` = the fleet picks a free 127.0.0.N.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// 443 by default; 0 = ephemeral.
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "yes")]
    pub tls: bool,
    pub profile: ProfileConfig,
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalConfig>,
    /// Grants for clients without credentials (`"public/**:pull"`).
    #[serde(default)]
    pub anonymous: Vec<String>,
    #[serde(default)]
    pub seed: Vec<SeedConfig>,
    #[serde(default)]
    pub storage: Option<PathBuf>,
    #[serde(default)]
    pub faults: Vec<FaultConfig>,
}

impl HostConfig {
    /// `hostname` or `hostname:port` when the port is not the scheme's default.
    pub fn authority(&self, port: u16) -> String {
        let default = if self.tls { 443 } else { 80 };
        if port == default {
            self.hostname.clone()
        } else {
            format!("{}:{port}", self.hostname)
        }
    }
}

/// The vendor profile of a host and its options (each option struct documents its fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProfileConfig {
    Open,
    Bearer(BearerOptions),
    Acr(AcrOptions),
    Ecr(EcrOptions),
    Gitlab(GitlabOptions),
}

impl ProfileConfig {
    /// Every `kind` this build knows, for error hints.
    pub const KINDS: &'static [&'static str] = &["open", "bearer", "acr", "ecr", "gitlab"];

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Bearer(_) => "bearer",
            Self::Acr(_) => "acr",
            Self::Ecr(_) => "ecr",
            Self::Gitlab(_) => "gitlab",
        }
    }
}

fn user_kind() -> PrincipalKind {
    PrincipalKind::User
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// How journals and reports refer to it.
    pub name: String,
    #[serde(default = "user_kind")]
    pub kind: PrincipalKind,
    #[serde(default)]
    pub username: Option<String>,
    /// The password, token or refresh token; generated (and printed in the ready line) when
    /// absent.
    #[serde(default, alias = "password")]
    pub secret: Option<String>,
    /// `"<repository glob>:<action>[,<action>…]"`, e.g. `"team/**:pull,push"`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Seconds after start before the grants apply (ACR's role propagation).
    #[serde(default)]
    pub effective_after: Option<i64>,
    /// Seconds after start when the credential expires (ECR: 43200).
    #[serde(default)]
    pub expires_after: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConfig {
    pub repository: String,
    pub tag: String,
    #[serde(default)]
    pub image: ImageConfig,
}

fn default_platforms() -> Vec<String> {
    vec!["linux/amd64".into()]
}

fn default_layers() -> Vec<usize> {
    vec![1024]
}

/// A generated image (see [`crate::fixtures`]): one platform → a plain manifest; several (or
/// `index = true`) → an OCI index (`format = "oci"`) or a Docker manifest list (`"docker"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(default = "default_format")]
    pub format: Format,
    #[serde(default = "default_platforms")]
    pub platforms: Vec<String>,
    /// Size in bytes of each layer's file.
    #[serde(default = "default_layers")]
    pub layers: Vec<usize>,
    #[serde(default)]
    pub index: bool,
    #[serde(default)]
    pub seed: u64,
}

fn default_format() -> Format {
    Format::Oci
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            format: Format::Oci,
            platforms: default_platforms(),
            layers: default_layers(),
            index: false,
            seed: 0,
        }
    }
}

impl ImageConfig {
    pub fn spec(&self) -> Result<ImageSpec, String> {
        let platforms = self
            .platforms
            .iter()
            .map(|p| Platform::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ImageSpec {
            format: self.format,
            force_index: self.index || platforms.len() > 1,
            platforms,
            layer_sizes: self.layers.clone(),
            seed: self.seed,
        })
    }
}

/// `"<repository glob>:<action>[,<action>…]"` → a [`Grant`].
pub fn parse_grant(text: &str) -> Result<Grant, String> {
    let Some((repos, actions)) = text.rsplit_once(':') else {
        return Err(format!("grant {text:?} has no `:<actions>`"));
    };
    // `registry:catalog:*` names the catalog pseudo-repository, as the scope grammar does.
    if repos.is_empty() {
        return Err(format!("grant {text:?} names no repository"));
    }
    let actions: Vec<String> = actions.split(',').map(|a| a.trim().to_owned()).collect();
    for a in &actions {
        if !["pull", "push", "delete", "*"].contains(&a.as_str()) {
            return Err(format!(
                "grant {text:?}: unknown action {a:?} (pull, push, delete or *)"
            ));
        }
    }
    Ok(Grant {
        repositories: repos.to_owned(),
        actions,
    })
}

/// A configuration error, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or whatever the text came from).
    pub origin: String,
    /// 1-based; 0 when the error is not about a place in the text (an unreadable file).
    pub line: usize,
    pub col: usize,
    /// Dotted path of the field: `host[1].profile.kind` (empty for syntax errors).
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        write!(f, ": ")?;
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

impl FleetConfig {
    /// Reads and checks a fleet file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 0,
            col: 0,
            field: String::new(),
            message: format!("cannot read the file: {e}"),
            hint: "check the path given to --config".into(),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses and checks fleet TOML; `origin` names the text in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let located = Locator { text, origin };
        let doc = toml::de::DeTable::parse(text).map_err(|e| located.toml_error(&e, None))?;
        let mut index = PathIndex::default();
        index.table("", doc.get_ref());
        // Profiles first, one at a time: an internally tagged enum would lose the spans of
        // the fields inside it.
        if let Some(hosts) = doc
            .get_ref()
            .get("host")
            .and_then(|h| h.get_ref().as_array())
        {
            for (i, host) in hosts.iter().enumerate() {
                if let Some(profile) = host.get_ref().as_table().and_then(|t| t.get("profile")) {
                    check_profile(profile, &format!("host[{i}].profile"), &located, &index)?;
                }
            }
        }
        let config = FleetConfig::deserialize(doc.into_deserializer())
            .map_err(|e| located.toml_error(&e, Some(&index)))?;
        config
            .validate()
            .map_err(|(field, message, hint)| located.at_field(&index, &field, message, hint))?;
        Ok(config)
    }

    /// Checks what the types cannot say. On failure: (dotted field path, message, hint).
    pub fn validate(&self) -> Result<(), (String, String, String)> {
        let err = |field: String, message: String, hint: &str| Err((field, message, hint.into()));
        let mut names = HashSet::new();
        let mut hostnames = HashSet::new();
        let mut endpoints = HashSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let at = |f: &str| format!("host[{i}].{f}");
            if !is_valid_name(&h.name) {
                return err(
                    at("name"),
                    format!("{:?} is not a valid host name for journals", h.name),
                    "use lowercase letters, digits, `-` and `_` (e.g. \"acr\", \"gitlab-mirror\")",
                );
            }
            if !names.insert(h.name.as_str()) {
                return err(
                    at("name"),
                    format!("the name {:?} is used by an earlier host", h.name),
                    "give every [[host]] its own name",
                );
            }
            if h.hostname.parse::<IpAddr>().is_ok() {
                return err(
                    at("hostname"),
                    format!("{:?} is an IP address", h.hostname),
                    "use a DNS name (e.g. \"registry.example.test\"): token realms are always hostnames, and the fleet maps names to loopback addresses itself",
                );
            }
            if !is_valid_dns_name(&h.hostname) {
                return err(
                    at("hostname"),
                    format!("{:?} is not a valid DNS name", h.hostname),
                    "write a lowercase name of dot-separated labels, without scheme or port (put the port in `port`)",
                );
            }
            if !hostnames.insert(h.hostname.as_str()) {
                return err(
                    at("hostname"),
                    format!("the hostname {:?} is served by an earlier host", h.hostname),
                    "every [[host]] needs its own hostname",
                );
            }
            if let Some(addr) = h.address {
                if !addr.is_loopback() {
                    return err(
                        at("address"),
                        format!("{addr} is not a loopback address"),
                        "use an address in 127.0.0.0/8 (or ::1), or leave `address` out to let the fleet pick one",
                    );
                }
                if h.port != 0 && !endpoints.insert((addr, h.port)) {
                    return err(
                        at("port"),
                        format!("{addr}:{} is used by an earlier host", h.port),
                        "give this host another address or port",
                    );
                }
            }
            if let Some(f) = check_profile_values(&h.profile) {
                return err(at(&format!("profile.{}", f.0)), f.1, &f.2);
            }
            for (g, grant) in h.anonymous.iter().enumerate() {
                if let Err(m) = parse_grant(grant) {
                    return err(at(&format!("anonymous[{g}]")), m, GRANT_HINT);
                }
            }
            let mut principal_names = HashSet::new();
            for (p, pr) in h.principals.iter().enumerate() {
                let pat = |f: &str| at(&format!("principal[{p}].{f}"));
                if pr.name.is_empty() || !principal_names.insert(pr.name.as_str()) {
                    return err(
                        pat("name"),
                        format!("the principal name {:?} is empty or used twice", pr.name),
                        "give every principal of a host its own name",
                    );
                }
                if pr.kind != PrincipalKind::RefreshToken && pr.username.is_none() {
                    return err(
                        pat("username"),
                        format!("principal {:?} has no username", pr.name),
                        "add `username = \"…\"` (only kind = \"refresh-token\" principals have none)",
                    );
                }
                if pr.secret.as_deref().is_some_and(|s| s.len() < 4) {
                    return err(
                        pat("secret"),
                        "the secret is shorter than 4 characters".into(),
                        "use a longer secret (short ones cannot be redacted reliably), or leave it out to have one generated",
                    );
                }
                for (g, grant) in pr.grants.iter().enumerate() {
                    if let Err(m) = parse_grant(grant) {
                        return err(pat(&format!("grants[{g}]")), m, GRANT_HINT);
                    }
                }
            }
            for (s, seed) in h.seed.iter().enumerate() {
                let sat = |f: &str| at(&format!("seed[{s}].{f}"));
                if let Err(e) = crate::names::validate_repository(&seed.repository) {
                    return err(
                        sat("repository"),
                        e.to_string(),
                        "use a lowercase repository path such as \"team/app\"",
                    );
                }
                if !crate::names::is_valid_tag(&seed.tag) {
                    return err(
                        sat("tag"),
                        format!("{:?} is not a valid tag", seed.tag),
                        "tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
                    );
                }
                if let Err(m) = seed.image.spec() {
                    return err(
                        sat("image.platforms"),
                        m,
                        "write platforms as \"os/arch\" or \"os/arch/variant\"",
                    );
                }
                if seed.image.platforms.is_empty() {
                    return err(
                        sat("image.platforms"),
                        "no platform".into(),
                        "list at least one platform, e.g. [\"linux/amd64\"]",
                    );
                }
                if let Some(big) = seed.image.layers.iter().find(|l| **l > MAX_SEED_LAYER) {
                    return err(
                        sat("image.layers"),
                        format!("a layer of {big} bytes is over the {MAX_SEED_LAYER}-byte limit"),
                        "seed smaller layers; the content is random and generated in memory",
                    );
                }
            }
            for (f, fault) in h.faults.iter().enumerate() {
                if let Err(e) = fault.validate() {
                    return err(
                        at(&format!("faults[{f}]")),
                        e.to_string(),
                        "see the fault rule syntax in fake-registry/src/fault.rs",
                    );
                }
                if fault
                    .matcher
                    .registry
                    .as_deref()
                    .is_some_and(|r| r != h.name)
                {
                    return err(
                        at(&format!("faults[{f}].match.registry")),
                        "a host's fault names another registry".into(),
                        "leave `registry` out: faults under a [[host]] apply to that host",
                    );
                }
            }
        }
        Ok(())
    }
}

const GRANT_HINT: &str = "write grants as \"<repository glob>:<actions>\", e.g. \"team/**:pull,push\" (`*` within a segment, `**` across)";

/// Option values the profile structs accept by type but not by meaning.
fn check_profile_values(p: &ProfileConfig) -> Option<(String, String, String)> {
    let url_host = |field: &str, url: &Option<String>| -> Option<(String, String, String)> {
        let url = url.as_ref()?;
        match crate::profile::url_authority(url) {
            Some(a) if authority_is_dns(&a) => None,
            _ => Some((
                field.into(),
                format!("{url:?} is not an https URL on a DNS name"),
                "write \"https://<hostname>[:port]…\"; realms are never IP literals".into(),
            )),
        }
    };
    let storage = |r: &Option<String>| -> Option<(String, String, String)> {
        let r = r.as_ref()?;
        (!authority_is_dns(r)).then(|| {
            (
                "blob_redirect".into(),
                format!("{r:?} is not a hostname[:port]"),
                "name the storage host without scheme, e.g. \"myregistry.blob.core.windows.net\""
                    .into(),
            )
        })
    };
    match p {
        ProfileConfig::Bearer(o) => url_host("realm", &o.realm),
        ProfileConfig::Gitlab(o) => url_host("realm_base", &o.realm_base),
        ProfileConfig::Acr(o) => storage(&o.blob_redirect),
        ProfileConfig::Ecr(o) => storage(&o.blob_redirect),
        ProfileConfig::Open => None,
    }
}

/// `hostname[:port]` with a DNS hostname.
pub fn authority_is_dns(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0))
        && host.parse::<IpAddr>().is_err()
        && is_valid_dns_name(host)
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Lowercase LDH labels separated by dots.
pub fn is_valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Deserializes one `profile` table by itself, so errors keep their exact spans.
fn check_profile(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    located: &Locator<'_>,
    index: &PathIndex,
) -> Result<(), ConfigError> {
    let kinds = ProfileConfig::KINDS.join(", ");
    let Some(table) = value.get_ref().as_table() else {
        return Err(located.at_span(
            value.span(),
            path,
            "the profile must be a table".into(),
            format!("write `[host.profile]` with `kind = ` one of: {kinds}"),
        ));
    };
    let Some(kind) = table.get("kind") else {
        return Err(located.at_span(
            value.span(),
            &format!("{path}.kind"),
            "missing field `kind`".into(),
            format!("add `kind = \"…\"` with one of: {kinds}"),
        ));
    };
    let Some(kind_name) = kind.get_ref().as_str() else {
        return Err(located.at_span(
            kind.span(),
            &format!("{path}.kind"),
            "`kind` must be a string".into(),
            format!("use one of: {kinds}"),
        ));
    };
    let rest: toml::de::DeTable<'_> = table
        .iter()
        .filter(|(k, _)| k.get_ref() != "kind")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rest = toml::Spanned::new(value.span(), toml::de::DeValue::Table(rest));
    let de = rest.into_deserializer();
    match kind_name {
        "open" => match table.keys().find(|k| k.get_ref() != "kind") {
            Some(k) => Err(located.at_span(
                k.span(),
                &format!("{path}.{}", k.get_ref()),
                format!(
                    "unknown field `{}`: the open profile has no options",
                    k.get_ref()
                ),
                "remove it".into(),
            )),
            None => Ok(()),
        },
        "bearer" => BearerOptions::deserialize(de)
            .map(drop)
            .map_err(|e| located.toml_error(&e, Some(index))),
        "acr" => AcrOptions::deserialize(de)
            .map(drop)
            .map_err(|e| located.toml_error(&e, Some(index))),
        "ecr" => EcrOptions::deserialize(de)
            .map(drop)
            .map_err(|e| located.toml_error(&e, Some(index))),
        "gitlab" => GitlabOptions::deserialize(de)
            .map(drop)
            .map_err(|e| located.toml_error(&e, Some(index))),
        other => Err(located.at_span(
            kind.span(),
            &format!("{path}.kind"),
            format!("unknown profile kind {other:?}"),
            format!("use one of: {kinds}"),
        )),
    }
}

/// Every key and value of the document with its span and dotted path.
#[derive(Debug, Default)]
struct PathIndex {
    /// (span, path, is_key)
    spans: Vec<(Range<usize>, String, bool)>,
    /// path → value span
    values: BTreeMap<String, Range<usize>>,
}

impl PathIndex {
    fn table(&mut self, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            self.spans.push((k.span(), path.clone(), true));
            self.value(&path, v);
        }
    }

    fn value(&mut self, path: &str, v: &toml::Spanned<toml::de::DeValue<'_>>) {
        self.spans.push((v.span(), path.to_owned(), false));
        self.values.insert(path.to_owned(), v.span());
        match v.get_ref() {
            toml::de::DeValue::Table(t) => self.table(path, t),
            toml::de::DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.value(&format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
    }

    /// The innermost path whose key or value span holds `span`.
    fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        self.spans
            .iter()
            .filter(|(s, _, _)| {
                s.start <= span.start && span.end <= s.end.max(s.start + 1) && s.start < s.end
            })
            .min_by_key(|(s, p, is_key)| (s.end - s.start, usize::MAX - p.len(), !is_key))
            .map(|(_, p, _)| p.as_str())
    }

    /// The span of `path`, or of its nearest ancestor that has one.
    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut p = path;
        loop {
            if let Some(s) = self.values.get(p) {
                return Some(s.clone());
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

struct Locator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn at_span(
        &self,
        span: Range<usize>,
        field: &str,
        message: String,
        hint: String,
    ) -> ConfigError {
        let (line, col) = self.line_col(span.start);
        ConfigError {
            origin: self.origin.to_owned(),
            line,
            col,
            field: field.to_owned(),
            message,
            hint,
        }
    }

    fn at_field(
        &self,
        index: &PathIndex,
        field: &str,
        message: String,
        hint: String,
    ) -> ConfigError {
        let span = index.span_of(field).unwrap_or(0..0);
        self.at_span(span, field, message, hint)
    }

    /// A `toml` error: its span, the field there, and a hint from the message.
    fn toml_error(&self, e: &toml::de::Error, index: Option<&PathIndex>) -> ConfigError {
        let message = e.message().trim().to_owned();
        let span = e.span().unwrap_or(0..0);
        let Some(index) = index else {
            return self.at_span(
                span,
                "",
                message,
                "fix the TOML syntax at this place".into(),
            );
        };
        let mut field = index.path_at(&span).unwrap_or("").to_owned();
        let mut span = span;
        if let Some(missing) = between(&message, "missing field `", "`") {
            // the span is the table's; name the field that is missing from it
            field = join(&field, missing);
        } else if let Some(unknown) = between(&message, "unknown field `", "`")
            && !field.ends_with(&format!(".{unknown}"))
            && field != unknown
        {
            let candidate = join(&field, unknown);
            if let Some(s) = index.values.get(&candidate) {
                span = s.clone();
                field = candidate;
            }
        }
        let hint = hint_for(&message);
        self.at_span(span, &field, message, hint)
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A fix suggested from serde's message.
fn hint_for(message: &str) -> String {
    if let Some(field) = between(message, "missing field `", "`") {
        return format!("add `{field} = …` to this table");
    }
    if let Some(field) = between(message, "unknown field `", "`") {
        let expected = message
            .split_once("expected one of ")
            .or_else(|| message.split_once("expected "))
            .map(|(_, e)| e.replace('`', ""))
            .unwrap_or_default();
        return if expected.is_empty() {
            format!("remove `{field}`: this table takes no fields")
        } else {
            format!("remove `{field}` or use one of: {expected}")
        };
    }
    if let Some(variant) = between(message, "unknown variant `", "`") {
        let expected = message
            .split_once("expected one of ")
            .or_else(|| message.split_once("expected "))
            .map(|(_, e)| e.replace('`', ""))
            .unwrap_or_default();
        return format!("replace `{variant}` with one of: {expected}");
    }
    if (message.starts_with("invalid type") || message.starts_with("invalid value"))
        && let Some((_, expected)) = message.split_once("expected ")
    {
        let expected = match expected.trim() {
            "i64" | "u64" | "usize" => "a whole number (durations are seconds)",
            "u16" => "a whole number from 0 to 65535",
            "u8" => "a whole number from 0 to 255",
            other => other,
        };
        return format!("write {expected} here");
    }
    if message.contains("duplicate") {
        return "keep only one of the two".into();
    }
    "see the fleet config reference in fake-registry/src/config.rs".into()
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
blob_redirect = "myregistry.blob.core.windows.net"
[[host.principal]]
name = "sp"
kind = "service-principal"
username = "app-id"
grants = ["**:pull", "team/app:pull,push"]
[[host.seed]]
repository = "base"
tag = "1"
image = { format = "docker", platforms = ["linux/amd64", "linux/arm64"], layers = [10] }

[[host]]
name = "gitlab"
hostname = "registry.gitlab.example.com"
address = "127.0.0.9"
port = 5443
profile = { kind = "gitlab", realm_base = "https://gitlab.example.com", projects = [{ path = "group/project", public = true }] }
[[host.faults]]
match = { method = "GET", path = "/v2/**" }
when = { nth = 2 }
action = { type = "status", code = 503 }
"#;

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = FleetConfig::parse(GOOD, "fleet.toml").unwrap();
        assert_eq!(c.hosts.len(), 2);
        let acr = &c.hosts[0];
        assert_eq!((acr.port, acr.tls, acr.address), (443, true, None));
        match &acr.profile {
            ProfileConfig::Acr(o) => {
                assert_eq!(
                    o.blob_redirect.as_deref(),
                    Some("myregistry.blob.core.windows.net")
                );
                assert_eq!(o.access_token_lifetime, 4500);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(acr.principals[0].kind, PrincipalKind::ServicePrincipal);
        assert!(acr.seed[0].image.spec().unwrap().force_index);
        let gl = &c.hosts[1];
        assert_eq!(gl.authority(gl.port), "registry.gitlab.example.com:5443");
        assert!(matches!(&gl.profile, ProfileConfig::Gitlab(o) if o.projects[0].public));
        assert_eq!(gl.faults[0].when.nth, Some(2));
    }

    /// Each case: a broken config, the line and field the error must name, and a piece of
    /// the hint.
    #[rstest]
    // 1 syntax error
    #[case("[[host]\nname = \"a\"\n", 1, "", "TOML syntax")]
    // 2 unknown top-level key
    #[case("hosts = []\n", 1, "hosts", "use one of: host")]
    // 3 unknown profile kind
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\n[host.profile]\nkind = \"azure\"\n",
        5,
        "host[0].profile.kind",
        "open, bearer, acr, ecr, gitlab"
    )]
    // 4 missing profile kind
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\n[host.profile]\nlogin_server = \"x\"\n",
        4,
        "host[0].profile.kind",
        "add `kind"
    )]
    // 5 unknown field inside a profile
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\n[host.profile]\nkind = \"acr\"\n\nlogin_servr = \"x\"\n",
        7,
        "host[0].profile.login_servr",
        "login_server"
    )]
    // 6 wrong type inside a profile
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\n[host.profile]\nkind = \"bearer\"\nlifetime = \"5m\"\n",
        6,
        "host[0].profile.lifetime",
        "write"
    )]
    // 7 missing hostname
    #[case(
        "[[host]]\nname = \"a\"\nprofile = { kind = \"open\" }\n",
        1,
        "host[0].hostname",
        "add `hostname"
    )]
    // 8 non-loopback address
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\naddress = \"10.0.0.1\"\nprofile = { kind = \"open\" }\n",
        4,
        "host[0].address",
        "127.0.0.0/8"
    )]
    // 9 duplicate hostname
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host]]\nname = \"b\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n",
        7,
        "host[1].hostname",
        "own hostname"
    )]
    // 10 duplicate name
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host]]\nname = \"a\"\nhostname = \"b.test\"\nprofile = { kind = \"open\" }\n",
        6,
        "host[1].name",
        "own name"
    )]
    // 11 bad grant syntax
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host.principal]]\nname = \"u\"\nusername = \"u\"\ngrants = [\"**:pull\", \"team/app\"]\n",
        8,
        "host[0].principal[0].grants[1]",
        "<repository glob>:<actions>"
    )]
    // 12 unknown action in a grant
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host.principal]]\nname = \"u\"\nusername = \"u\"\ngrants = [\"**:pul\"]\n",
        8,
        "host[0].principal[0].grants[0]",
        "team/**:pull,push"
    )]
    // 13 IP literal as hostname
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"127.0.0.1\"\nprofile = { kind = \"open\" }\n",
        3,
        "host[0].hostname",
        "DNS name"
    )]
    // 14 port out of range
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nport = 70000\nprofile = { kind = \"open\" }\n",
        4,
        "host[0].port",
        "write"
    )]
    // 15 unknown principal kind
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host.principal]]\nname = \"u\"\nkind = \"robot\"\nusername = \"u\"\n",
        7,
        "host[0].principal[0].kind",
        "service-principal"
    )]
    // 16 realm on an IP literal
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\n[host.profile]\nkind = \"gitlab\"\nrealm_base = \"https://127.0.0.1\"\n",
        6,
        "host[0].profile.realm_base",
        "never IP literals"
    )]
    // 17 bad fault action
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host.faults]]\naction = { type = \"explode\" }\n",
        6,
        "host[0].faults[0].action.type",
        "status"
    )]
    // 18 open profile with options
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\", realm = \"x\" }\n",
        4,
        "host[0].profile.realm",
        "remove it"
    )]
    // 19 bad seed platform
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\nprofile = { kind = \"open\" }\n[[host.seed]]\nrepository = \"x\"\ntag = \"1\"\nimage = { platforms = [\"linux\"] }\n",
        8,
        "host[0].seed[0].image.platforms",
        "os/arch"
    )]
    // 20 uppercase hostname
    #[case(
        "[[host]]\nname = \"a\"\nhostname = \"MyRegistry.azurecr.io\"\nprofile = { kind = \"open\" }\n",
        3,
        "host[0].hostname",
        "lowercase"
    )]
    fn malformed_configs_name_line_and_field(
        #[case] text: &str,
        #[case] line: usize,
        #[case] field: &str,
        #[case] hint: &str,
    ) {
        let e = FleetConfig::parse(text, "fleet.toml").unwrap_err();
        let shown = e.to_string();
        assert_eq!((e.line, e.field.as_str()), (line, field), "{shown}");
        assert!(shown.starts_with(&format!("fleet.toml:{line}:")), "{shown}");
        if !field.is_empty() {
            assert!(shown.contains(&format!("field `{field}`")), "{shown}");
        }
        assert!(e.hint.contains(hint), "hint {:?} lacks {hint:?}", e.hint);
    }

    #[rstest]
    #[case("**:pull", "**", &["pull"])]
    #[case("team/app:pull,push", "team/app", &["pull", "push"])]
    #[case("registry:catalog:*", "registry:catalog", &["*"])]
    fn grants_parse(#[case] text: &str, #[case] repos: &str, #[case] actions: &[&str]) {
        let g = parse_grant(text).unwrap();
        assert_eq!(g.repositories, repos);
        assert_eq!(g.actions, actions);
    }

    #[test]
    fn an_unreadable_file_says_so() {
        let e = FleetConfig::load(Path::new("/nonexistent/fleet.toml")).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/fleet.toml: cannot read"),
            "{e}"
        );
    }
}
