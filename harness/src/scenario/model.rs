//! The scenario data model, as written in `scenarios/*.toml` (see `scenarios/README.md`).

use fake_registry::config::{FleetConfig, ImageConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One parsed and validated scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file stem: `acr-identity-token`.
    pub id: String,
    pub file: PathBuf,
    pub meta: Meta,
    /// The registries this scenario starts (inline `[[host]]` tables or `fleet = "…"`).
    pub fleet: FleetConfig,
    pub docker_config: Option<DockerConfigSpec>,
    pub helper: Vec<HelperEntry>,
    pub steps: Vec<Step>,
    pub expect: Expectations,
}

/// The top-level document (the `host` tables are read by the fleet's own parser).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub scenario: Meta,
    /// A fleet file, relative to the scenario file (instead of inline `[[host]]`).
    #[serde(default)]
    pub fleet: Option<String>,
    #[serde(default)]
    pub host: Vec<toml::Value>,
    #[serde(default)]
    pub docker_config: Option<DockerConfigSpec>,
    #[serde(default)]
    pub helper: Vec<HelperEntry>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Expectations,
}

fn default_timeout() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Where the expected behaviour comes from (behaviours.md section, vendor doc).
    #[serde(default)]
    pub source: String,
    /// Seconds each client step may run before its process group is killed.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

/// `$DOCKER_CONFIG/config.json` of the cell. Keys of `auths`/`credHelpers` may use
/// `{host}` templates (the authority of the fleet host named `host`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfigSpec {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthSpec>,
    /// Only `regcompat` (the harness's helper) is available in a sandbox.
    #[serde(default, rename = "credsStore")]
    pub creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    pub cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry: a principal of the fleet, literal credentials, or an identity token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// `host/principal`: writes `auth` = base64(username:secret).
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// `host/principal` of a refresh-token principal: writes what `az acr login` writes,
    /// `auth` = base64("00000000-0000-0000-0000-000000000000:") and `identitytoken`.
    #[serde(default)]
    pub identity_token: Option<String>,
}

/// What `docker-credential-regcompat get` answers for one server URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperEntry {
    /// The server URL as the client asks for it; `{host}` templates allowed.
    pub server: String,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    /// `host/principal`: answered as Username `<token>` (the helper protocol's identity token).
    #[serde(default)]
    pub identity_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Login,
    Pull,
    Push,
    BuildFrom,
    Copy,
}

impl Action {
    pub const ALL: &'static [&'static str] = &["login", "pull", "push", "build-from", "copy"];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Pull => "pull",
            Action::Push => "push",
            Action::BuildFrom => "build-from",
            Action::Copy => "copy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One abstract action; each driver turns it into its own command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: Action,
    /// pull/push/build-from: the reference, `{host}/repo:tag` or `{host}/repo@sha256:…`.
    #[serde(default)]
    pub image: Option<String>,
    /// copy: source and destination references.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// login: the fleet host to log in to.
    #[serde(default)]
    pub registry: Option<String>,
    /// login: `host/principal` whose username and secret to use …
    #[serde(default)]
    pub principal: Option<String>,
    /// … or literal credentials (a wrong password, an unknown user).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// pull: the platform to select from an index (`linux/arm64`).
    #[serde(default)]
    pub platform: Option<String>,
    /// push: the image the harness generates locally and the client pushes.
    #[serde(default)]
    pub source: Option<ImageConfig>,
    /// Seconds to move the fleet's clock forward before this step (token expiry).
    #[serde(default)]
    pub advance_clock: Option<i64>,
    #[serde(default)]
    pub expect: Outcome,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// No request presented another registry's credential (the journal's `leak`).
    #[serde(default = "yes")]
    pub no_leaks: bool,
    /// Fleet host names that must never receive an `Authorization` header.
    #[serde(default)]
    pub no_authorization_to: Vec<String>,
    #[serde(default)]
    pub journal: Vec<JournalExpect>,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            no_leaks: true,
            no_authorization_to: Vec::new(),
            journal: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// "Requests matching this were seen `count` times".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalExpect {
    /// What it proves, in words: "the token request carried Basic for sp-pull".
    pub that: String,
    #[serde(default)]
    pub request: RequestMatch,
    #[serde(default)]
    pub auth: Option<AuthMatch>,
    /// Form fields of token requests that must be present with these values.
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// A substring of one of the entry's notes.
    #[serde(default)]
    pub note: Option<String>,
    /// `">=1"` (default), `"0"`, `"==2"`, `"<=3"`, `">0"`.
    #[serde(default)]
    pub count: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatch {
    /// The fleet host name that served it.
    #[serde(default)]
    pub registry: Option<String>,
    /// `GET`, or alternatives: `GET|HEAD`.
    #[serde(default)]
    pub method: Option<String>,
    /// `*` matches any run of characters: `/v2/*/manifests/*`.
    #[serde(default)]
    pub path: Option<String>,
    /// A substring of the raw query.
    #[serde(default)]
    pub query: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthMatch {
    /// `none`, `basic`, `bearer`.
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub principal: Option<String>,
    /// The profile's verdict: `ok`, `anonymous`, `bad-credentials`, `expired`…
    #[serde(default)]
    pub verdict: Option<String>,
}

/// A parsed `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    AtLeast(usize),
    AtMost(usize),
    Exactly(usize),
}

impl Count {
    pub fn parse(text: &str) -> Result<Count, String> {
        let t = text.trim();
        let (op, n) = if let Some(n) = t.strip_prefix(">=") {
            ("ge", n)
        } else if let Some(n) = t.strip_prefix("<=") {
            ("le", n)
        } else if let Some(n) = t.strip_prefix("==") {
            ("eq", n)
        } else if let Some(n) = t.strip_prefix('>') {
            ("gt", n)
        } else {
            ("eq", t)
        };
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a count"))?;
        Ok(match op {
            "ge" => Count::AtLeast(n),
            "gt" => Count::AtLeast(n + 1),
            "le" => Count::AtMost(n),
            _ => Count::Exactly(n),
        })
    }

    pub fn holds(self, seen: usize) -> bool {
        match self {
            Count::AtLeast(n) => seen >= n,
            Count::AtMost(n) => seen <= n,
            Count::Exactly(n) => seen == n,
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::AtLeast(n) => write!(f, ">={n}"),
            Count::AtMost(n) => write!(f, "<={n}"),
            Count::Exactly(n) => write!(f, "=={n}"),
        }
    }
}
