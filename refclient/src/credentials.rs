//! Credentials from `$DOCKER_CONFIG/config.json`, docker's way: `credHelpers[host]`, then
//! `credsStore`, then `auths` (keys normalised: scheme and path stripped, case-insensitive,
//! `host` ≡ `host:443`); an `identitytoken` entry is an OAuth2 refresh token. Last, Jib's
//! documented inference: `docker-credential-ecr-login` for `*.amazonaws.com` when on PATH.

use crate::mutant::Mutant;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The username `az acr login` writes beside an identity token.
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (config.json `identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
}

impl Credential {
    /// The credential as a Basic pair (an identity token as the null GUID's password).
    pub fn as_basic(&self) -> (String, String) {
        match self {
            Self::Basic { username, password } => (username.clone(), password.clone()),
            Self::IdentityToken(t) => (NULL_GUID.to_owned(), t.clone()),
        }
    }

    pub fn basic_header(&self) -> String {
        let (u, p) = self.as_basic();
        basic_header(&u, &p)
    }
}

pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub identitytoken: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    pub creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    pub cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}: {1}")]
    Config(String, String),
    #[error("credential helper docker-credential-{0}: {1}")]
    Helper(String, String),
}

/// How config.json keys are compared with a registry host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// Scheme and path stripped, `:443` dropped, case-insensitive (docker's normalisation).
    Normalised,
    /// Scheme and path stripped, `:443` dropped, case kept.
    CaseSensitive,
    /// Byte for byte.
    Verbatim,
}

impl KeyMatch {
    pub fn of(mutant: Mutant) -> Self {
        match mutant {
            Mutant::ExactKeyLookup => Self::Verbatim,
            Mutant::CaseSensitiveLookup => Self::CaseSensitive,
            _ => Self::Normalised,
        }
    }
}

/// A config.json key or a registry host as `host[:port]`, `:443` dropped; lowercased unless
/// `keep_case`.
pub fn normalise_key(key: &str, keep_case: bool) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or_default();
    let k = k.strip_suffix(":443").unwrap_or(k);
    if keep_case {
        k.to_owned()
    } else {
        k.to_ascii_lowercase()
    }
}

pub fn keys_match(key: &str, host: &str, how: KeyMatch) -> bool {
    match how {
        KeyMatch::Verbatim => key == host,
        KeyMatch::CaseSensitive => normalise_key(key, true) == normalise_key(host, true),
        KeyMatch::Normalised => normalise_key(key, false) == normalise_key(host, false),
    }
}

/// The value under the first key of `map` that names `host`.
pub fn find<'a, V>(map: &'a BTreeMap<String, V>, host: &str, how: KeyMatch) -> Option<&'a V> {
    // An exact key wins over a normalised one.
    map.get(host).or_else(|| {
        map.iter()
            .find(|(k, _)| keys_match(k, host, how))
            .map(|(_, v)| v)
    })
}

/// The credential an `auths` entry holds (`None` for `{}`: ask the store).
pub fn entry_credential(
    entry: &AuthEntry,
    mutant: Mutant,
) -> Result<Option<Credential>, CredentialError> {
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty())
        && mutant != Mutant::IgnoreIdentityToken
    {
        return Ok(Some(Credential::IdentityToken(token.clone())));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| CredentialError::Config("auths.auth".into(), e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let (u, p) = text.split_once(':').ok_or_else(|| {
            CredentialError::Config("auths.auth".into(), "no ':' in the decoded value".into())
        })?;
        return Ok(Some(Credential::Basic {
            username: u.to_owned(),
            password: p.to_owned(),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    Ok(None)
}

/// Where credentials come from: the config file and the helpers on `PATH`.
pub struct Keychain {
    pub config: DockerConfig,
    pub config_path: PathBuf,
    pub mutant: Mutant,
    path_dirs: Vec<PathBuf>,
    cache: BTreeMap<String, Option<Credential>>,
}

impl Keychain {
    pub fn load(mutant: Mutant) -> Result<Self, CredentialError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let config_path = dir.join("config.json");
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                CredentialError::Config(config_path.display().to_string(), e.to_string())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerConfig::default(),
            Err(e) => {
                return Err(CredentialError::Config(
                    config_path.display().to_string(),
                    e.to_string(),
                ));
            }
        };
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        Ok(Self {
            config,
            config_path,
            mutant,
            path_dirs,
            cache: BTreeMap::new(),
        })
    }

    /// The credential for a registry host (`host[:port]`), resolved once per run.
    pub fn get(&mut self, host: &str) -> Result<Option<Credential>, CredentialError> {
        if self.mutant == Mutant::Anonymous {
            return Ok(None);
        }
        if let Some(c) = self.cache.get(host) {
            return Ok(c.clone());
        }
        let c = self.resolve(host)?;
        self.cache.insert(host.to_owned(), c.clone());
        Ok(c)
    }

    fn resolve(&self, host: &str) -> Result<Option<Credential>, CredentialError> {
        let how = KeyMatch::of(self.mutant);
        let server = normalise_key(host, false);
        if self.mutant != Mutant::IgnoreCredHelpers
            && let Some(helper) = find(&self.config.cred_helpers, host, how)
        {
            return self.helper_get(helper, &server);
        }
        if self.mutant != Mutant::IgnoreCredsStore
            && let Some(store) = &self.config.creds_store
            && let Some(c) = self.helper_get(store, &server)?
        {
            return Ok(Some(c));
        }
        if let Some(entry) = find(&self.config.auths, host, how)
            && let Some(c) = entry_credential(entry, self.mutant)?
        {
            return Ok(Some(c));
        }
        if self.mutant != Mutant::NoInferredHelper
            && server
                .split(':')
                .next()
                .is_some_and(|h| h.ends_with(".amazonaws.com"))
            && self.on_path("docker-credential-ecr-login").is_some()
        {
            return self.helper_get("ecr-login", &server);
        }
        if self.mutant == Mutant::AnyCredential {
            // One credential for every host: whatever the file holds, under whatever key.
            for entry in self.config.auths.values() {
                if let Some(c) = entry_credential(entry, self.mutant)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    fn on_path(&self, name: &str) -> Option<PathBuf> {
        self.path_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// `docker-credential-<name> get` with the server on stdin; "credentials not found" = none.
    pub fn helper_get(
        &self,
        name: &str,
        server: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let bin = format!("docker-credential-{name}");
        let err = |m: String| CredentialError::Helper(name.to_owned(), m);
        let Some(path) = self.on_path(&bin) else {
            return Err(err("not found on PATH".into()));
        };
        let out = run_bounded(&path, server, Duration::from_secs(20)).map_err(err)?;
        let (code, stdout) = out;
        if code != 0 {
            if stdout
                .to_ascii_lowercase()
                .contains("credentials not found")
            {
                return Ok(None);
            }
            return Err(err(format!("exit {code}: {}", stdout.trim())));
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let a: Answer =
            serde_json::from_str(stdout.trim()).map_err(|e| err(format!("bad answer: {e}")))?;
        if a.username == "<token>" {
            return Ok(Some(Credential::IdentityToken(a.secret)));
        }
        Ok(Some(Credential::Basic {
            username: a.username,
            password: a.secret,
        }))
    }

    /// Writes `auths[registry].auth` as `docker login` does.
    pub fn store_login(
        &self,
        registry: &str,
        user: &str,
        password: &str,
    ) -> Result<(), CredentialError> {
        let err = |e: String| CredentialError::Config(self.config_path.display().to_string(), e);
        let mut doc: serde_json::Value = match std::fs::read_to_string(&self.config_path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| err(e.to_string()))?,
            Err(_) => serde_json::json!({}),
        };
        if !doc.is_object() {
            doc = serde_json::json!({});
        }
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if !doc["auths"].is_object() {
            doc["auths"] = serde_json::json!({});
        }
        doc["auths"][registry] = serde_json::json!({ "auth": auth });
        if let Some(parent) = self.config_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        std::fs::write(&self.config_path, doc.to_string()).map_err(|e| err(e.to_string()))
    }
}

/// Runs `bin get` with `input`; (exit code, stdout+stderr), killed after `limit`.
fn run_bounded(bin: &Path, input: &str, limit: Duration) -> Result<(i32, String), String> {
    let mut child = Command::new(bin)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code().unwrap_or(-1), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, usize> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), i))
            .collect()
    }

    #[test]
    fn normalised_keys_ignore_scheme_path_case_and_the_https_port() {
        let m = map(&["https://MyRegistry.AzureCR.io/v1/"]);
        assert_eq!(
            find(&m, "myregistry.azurecr.io", KeyMatch::Normalised),
            Some(&0)
        );
        let m = map(&["docker.domain.test:443"]);
        assert_eq!(
            find(&m, "docker.domain.test", KeyMatch::Normalised),
            Some(&0)
        );
        let m = map(&["docker.domain.test"]);
        assert_eq!(
            find(&m, "docker.domain.test:443", KeyMatch::Normalised),
            Some(&0)
        );
        // Other ports are other registries.
        let m = map(&["mirror.example.com:5443"]);
        assert_eq!(find(&m, "mirror.example.com", KeyMatch::Normalised), None);
        assert_eq!(
            find(&m, "mirror.example.com:5443", KeyMatch::Normalised),
            Some(&0)
        );
        let m = map(&["otherregistry.azurecr.io"]);
        assert_eq!(
            find(&m, "myregistry.azurecr.io", KeyMatch::Normalised),
            None
        );
    }

    #[test]
    fn mutants_compare_keys_their_way() {
        let upper = map(&["MYREGISTRY.AZURECR.IO"]);
        let port = map(&["docker.domain.test:443"]);
        let url = map(&["https://docker.domain.test/v1/"]);
        for (how, upper_found, port_found, url_found) in [
            (KeyMatch::of(Mutant::Correct), true, true, true),
            (KeyMatch::of(Mutant::CaseSensitiveLookup), false, true, true),
            (KeyMatch::of(Mutant::ExactKeyLookup), false, false, false),
        ] {
            assert_eq!(
                find(&upper, "myregistry.azurecr.io", how).is_some(),
                upper_found,
                "{how:?}"
            );
            assert_eq!(
                find(&port, "docker.domain.test", how).is_some(),
                port_found,
                "{how:?}"
            );
            assert_eq!(
                find(&url, "docker.domain.test", how).is_some(),
                url_found,
                "{how:?}"
            );
        }
        // Verbatim still finds the verbatim key.
        assert!(find(&port, "docker.domain.test:443", KeyMatch::Verbatim).is_some());
    }

    #[test]
    fn entries_basic_identity_token_and_empty() {
        let basic = AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode("dev:s3cret:x")),
            ..Default::default()
        };
        assert_eq!(
            entry_credential(&basic, Mutant::Correct).unwrap(),
            Some(Credential::Basic {
                username: "dev".into(),
                password: "s3cret:x".into()
            })
        );
        let token = AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode(format!("{NULL_GUID}:"))),
            identitytoken: Some("rt".into()),
            ..Default::default()
        };
        assert_eq!(
            entry_credential(&token, Mutant::Correct).unwrap(),
            Some(Credential::IdentityToken("rt".into()))
        );
        assert_eq!(
            entry_credential(&token, Mutant::IgnoreIdentityToken).unwrap(),
            Some(Credential::Basic {
                username: NULL_GUID.into(),
                password: String::new()
            })
        );
        assert_eq!(
            entry_credential(&AuthEntry::default(), Mutant::Correct).unwrap(),
            None
        );
        assert!(
            entry_credential(
                &AuthEntry {
                    auth: Some("!!".into()),
                    ..Default::default()
                },
                Mutant::Correct
            )
            .is_err()
        );
    }

    #[test]
    fn config_json_field_names() {
        let c: DockerConfig = serde_json::from_str(
            r#"{"auths":{"a":{}},"credsStore":"regcompat","credHelpers":{"b":"ecr-login"}}"#,
        )
        .unwrap();
        assert_eq!(c.creds_store.as_deref(), Some("regcompat"));
        assert_eq!(c.cred_helpers["b"], "ecr-login");
        assert!(c.auths.contains_key("a"));
    }
}
