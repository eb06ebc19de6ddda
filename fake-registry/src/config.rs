//! The fleet's TOML configuration: registries, profiles, principals, grants and seeded
//! images in one file. Every error names the file, the line and column, the field, and a
//! hint, e.g.:
//!
//! ```text
//! fleet.toml:7:11: field `host[0].address`: 10.0.0.1 is not a loopback address
//!   hint: use an address in 127.0.0.0/8 (or leave it out and one is allocated)
//! ```
//!
//! ```toml
//! [[host]]
//! name = "acr"
//! hostname = "myregistry.azurecr.io"
//! # address = "127.0.0.2"  port = 443  tls = true  storage = "/var/tmp/acr"
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
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
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
    pub repository: String,
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
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: 0,
            column: 0,
            ..ConfigError::at("", &origin, 0, "", format!("cannot read the file: {e}"), "")
        })?;
        Self::parse(&text, &origin)
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
            let spec = spec.with_seed(s.seed).with_config(s.labels, s.env);
            let image = fixtures::generate(&spec).map_err(|e| e.to_string())?;
            seeds.push((s.repository, s.tag, image));
        }
        let mut spec = HostSpec::new(self.name.get_ref(), &hostname, profile);
        spec.address = self.address.and_then(|a| a.get_ref().parse().ok());
        spec.port = self.port;
        spec.tls = self.tls;
        spec.storage = self.storage;
        spec.options = options;
        spec.seeds = seeds;
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
        return "add the field; see the example at the top of fake-registry/src/config.rs".into();
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

    /// Fuzzing (docs/fuzzing.md, target `fleet_config`): `layers = [4000000000]` passed
    /// validation and ran `into_hosts` out of memory generating the seed.
    #[test]
    fn oversized_seed_layers_are_refused_before_anything_is_generated() {
        let config = |layers: &str, platforms: &str| {
            format!(
                "[[host]]\nname = \"gl\"\nhostname = \"registry.gitlab.example\"\n[host.profile]\nkind = \"gitlab\"\n[[host.seed]]\nrepository = \"group/app\"\ntag = \"v1\"\nplatforms = {platforms}\nlayers = {layers}\n"
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
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
