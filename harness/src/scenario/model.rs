//! The scenario data model, as written in TOML.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Set from the file stem by the loader, never written in the file.
    #[serde(skip)]
    pub id: String,
    /// Set by the loader: the file the scenario came from.
    #[serde(skip)]
    pub file: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// A fleet config file (fake-registry format), relative to the scenario file.
    #[serde(default)]
    pub fleet: Option<Spanned<String>>,
    /// Inline fleet hosts (fake-registry `[[host]]` tables), passed through verbatim to
    /// the fleet parser so its own errors (with field names) apply.
    #[serde(default)]
    pub host: Vec<toml::Table>,
    /// What the client side is configured with before the first step.
    #[serde(default)]
    pub client: ClientConfig,
    /// The steps, in order; a step that does not meet its `expect` stops the cell.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Expect,
    /// Per-cell timeout for each step, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    120
}

/// Client-side configuration, written into the cell's sandbox for every client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Entries of docker `config.json` `auths` (written before the steps, no `login`).
    #[serde(default)]
    pub auth: Vec<AuthEntry>,
    /// `credsStore`: the harness helper is `regcompat` (`docker-credential-regcompat`).
    #[serde(default)]
    pub creds_store: Option<String>,
    /// `credHelpers`: host (or `{name}` placeholder) → helper suffix.
    #[serde(default)]
    pub cred_helpers: BTreeMap<String, String>,
    /// Credentials the harness helper answers with (host → username/secret).
    #[serde(default)]
    pub helper_credentials: Vec<AuthEntry>,
}

/// A credential for one registry host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEntry {
    /// `{acr}` (a fleet host name in braces) or a literal hostname.
    pub host: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Written as `identitytoken` (ACR refresh-token flow).
    #[serde(default)]
    pub identitytoken: Option<String>,
}

/// The abstract actions a client driver may implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Login,
    Pull,
    Push,
    BuildFrom,
    Copy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Pull => "pull",
            Self::Push => "push",
            Self::BuildFrom => "build-from",
            Self::Copy => "copy",
        }
    }
}

/// Expected outcome of a step.
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
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// One abstract step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: Spanned<Action>,
    /// `login`: the registry (`{acr}`); other actions: an image reference with host
    /// placeholders, `{acr}/team/app:1.0`.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// `copy`: the destination reference.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// `login`: credentials.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub expect: Outcome,
}

/// Expectations on the registry side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// No journal entry carries `leak` (a credential presented to the wrong registry).
    #[serde(default)]
    pub no_leaks: bool,
    /// No request to this fleet host name carried an `Authorization` header.
    #[serde(default)]
    pub no_authorization_to: Vec<String>,
    #[serde(default)]
    pub journal: Vec<JournalExpect>,
}

/// "Requests matching `request`, `auth` and `form` occurred `count` times."
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalExpect {
    /// Human-readable; defaults to a rendering of the match.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub request: RequestMatch,
    /// Fields of `auth` (`scheme`, `username`, `principal`, `token`, `verdict`).
    #[serde(default)]
    pub auth: BTreeMap<String, String>,
    /// Fields of the decoded token form (`grant_type`, `scope`, `service`).
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// `">=1"`, `"0"`, `"==2"`, `"<=3"`; default `">=1"`.
    #[serde(default)]
    pub count: Count,
}

/// Request-line match; `path` may end in `*` for a prefix match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatch {
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

/// A count constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Count {
    AtLeast(usize),
    AtMost(usize),
    Exactly(usize),
}

impl Default for Count {
    fn default() -> Self {
        Count::AtLeast(1)
    }
}

impl Count {
    pub fn holds(self, n: usize) -> bool {
        match self {
            Count::AtLeast(k) => n >= k,
            Count::AtMost(k) => n <= k,
            Count::Exactly(k) => n == k,
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::AtLeast(k) => write!(f, ">={k}"),
            Count::AtMost(k) => write!(f, "<={k}"),
            Count::Exactly(k) => write!(f, "=={k}"),
        }
    }
}

impl TryFrom<String> for Count {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let (ctor, rest): (fn(usize) -> Count, &str) = if let Some(r) = t.strip_prefix(">=") {
            (Count::AtLeast, r)
        } else if let Some(r) = t.strip_prefix("<=") {
            (Count::AtMost, r)
        } else if let Some(r) = t.strip_prefix("==") {
            (Count::Exactly, r)
        } else {
            (Count::Exactly, t)
        };
        rest.trim().parse::<usize>().map(ctor).map_err(|_| {
            format!("invalid count `{s}`: expected `N`, `==N`, `>=N` or `<=N` (N a number)")
        })
    }
}
