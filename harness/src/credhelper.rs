//! The harness's docker credential helper, `docker-credential-regcompat`: the standard
//! get/store/erase/list protocol answered from a JSON file in the cell's sandbox (path
//! in `$REGCOMPAT_CREDHELPER_FILE`), so `credsStore`/`credHelpers` scenarios are real.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The variable naming the helper's store file.
pub const STORE_ENV: &str = "REGCOMPAT_CREDHELPER_FILE";
/// The store of the same binary when it runs as `docker-credential-ecr-login` (the helper
/// Jib infers for `*.amazonaws.com`): a store of its own, so "the credsStore helper has
/// nothing, the inferred helper has the token" can be set up.
pub const ECR_LOGIN_STORE_ENV: &str = "REGCOMPAT_CREDHELPER_FILE_ECR_LOGIN";

/// The store variable for a helper binary called `program` (its `argv[0]`).
pub fn store_env_for(program: &str) -> &'static str {
    let name = program.rsplit('/').next().unwrap_or(program);
    if name == "docker-credential-ecr-login" {
        ECR_LOGIN_STORE_ENV
    } else {
        STORE_ENV
    }
}
/// What docker and friends print-match on when a helper has nothing.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// One stored credential, in the protocol's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Secret")]
    pub secret: String,
}

/// The key a credential is stored under: exactly the server URL the client sent
/// (surrounding whitespace and the newline some clients add aside). How a lookup matches
/// keys is the store's [`Lookup`].
pub fn normalise(server: &str) -> String {
    server.trim().to_owned()
}

/// How a helper matches the server URL of a `get`/`erase` to its entries: native stores
/// differ, and which one a user has decides whether a client's key spelling finds the
/// credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lookup {
    /// The server URL string exactly, as docker-credential-pass, -secretservice and
    /// -wincred key their entries: a client's own key choice (`host`, `host:443`,
    /// `https://host`) shows in the cell instead of being repaired by the harness.
    #[default]
    Exact,
    /// As docker-credential-osxkeychain ≥ v0.7 (`registryurl.Parse` + keychain attributes):
    /// the URL is split into protocol (HTTPS unless the scheme is `http`), host, port and
    /// path, and an entry matches when all four are equal — `host` and `https://host` are
    /// one entry, `host:443`, `http://host` and `host/repo` are others; `list` names each
    /// entry `https://host[:port][/path]` (seed 003's `{"https://xxx…amazonaws.com":"AWS"}`).
    Osxkeychain,
}

/// The keychain attributes osxkeychain derives from a server URL: (https, host, port, path).
fn keychain_attributes(server: &str) -> Option<(bool, String, String, String)> {
    let server = server.trim();
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", server.strip_prefix("//").unwrap_or(server)),
    };
    if !matches!(scheme, "" | "http" | "https") {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => (authority, ""),
    };
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        scheme != "http",
        host.to_owned(),
        port.to_owned(),
        path.to_owned(),
    ))
}

impl Lookup {
    /// The stored key `server` designates, if any.
    fn find(self, store: &Store, server: &str) -> Option<String> {
        match self {
            Lookup::Exact => {
                let key = normalise(server);
                store.contains_key(&key).then_some(key)
            }
            Lookup::Osxkeychain => {
                let wanted = keychain_attributes(server)?;
                store
                    .keys()
                    .find(|k| keychain_attributes(k).as_ref() == Some(&wanted))
                    .cloned()
            }
        }
    }

    /// How `list` names the entry stored under `key`.
    fn listed_name(self, key: &str) -> String {
        match (self, keychain_attributes(key)) {
            (Lookup::Osxkeychain, Some((https, host, port, path))) => {
                let scheme = if https { "https" } else { "http" };
                let port = if port.is_empty() {
                    String::new()
                } else {
                    format!(":{port}")
                };
                format!("{scheme}://{host}{port}{path}")
            }
            _ => key.to_owned(),
        }
    }
}

/// The file beside a store that names its [`Lookup`] (absent = exact).
pub fn lookup_file(store: &Path) -> std::path::PathBuf {
    store.with_extension("lookup")
}

/// The lookup of the store at `path`, from [`lookup_file`].
pub fn load_lookup(path: &Path) -> Lookup {
    std::fs::read_to_string(lookup_file(path))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Record the lookup of the store at `path`.
pub fn save_lookup(path: &Path, lookup: Lookup) -> std::io::Result<()> {
    let text = serde_json::to_string(&lookup).map_err(std::io::Error::other)?;
    std::fs::write(lookup_file(path), text)
}

pub type Store = BTreeMap<String, Credential>;

pub fn load(path: &Path) -> Store {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn save(path: &Path, store: &Store) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(store).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

/// Run one helper command; returns (stdout, exit code).
pub fn handle(command: &str, input: &str, path: &Path) -> (String, i32) {
    let mut store = load(path);
    let lookup = load_lookup(path);
    match command {
        "get" => match lookup.find(&store, input).and_then(|k| store.get(&k)) {
            Some(c) => {
                let out = Credential {
                    server_url: input.trim().to_string(),
                    ..c.clone()
                };
                (serde_json::to_string(&out).unwrap_or_default(), 0)
            }
            None => (NOT_FOUND.to_string(), 1),
        },
        "store" => match serde_json::from_str::<Credential>(input) {
            Ok(c) => {
                // The same entry under another spelling is replaced, not duplicated.
                if let Some(old) = lookup.find(&store, &c.server_url) {
                    store.remove(&old);
                }
                store.insert(normalise(&c.server_url), c);
                match save(path, &store) {
                    Ok(()) => (String::new(), 0),
                    Err(e) => (e.to_string(), 1),
                }
            }
            Err(e) => (format!("invalid credential: {e}"), 1),
        },
        "erase" => {
            if let Some(key) = lookup.find(&store, input) {
                store.remove(&key);
            }
            match save(path, &store) {
                Ok(()) => (String::new(), 0),
                Err(e) => (e.to_string(), 1),
            }
        }
        "list" => {
            let list: BTreeMap<String, &str> = store
                .iter()
                .map(|(k, c)| (lookup.listed_name(k), c.username.as_str()))
                .collect();
            (serde_json::to_string(&list).unwrap_or_default(), 0)
        }
        other => (format!("unknown credential helper command `{other}`"), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_list_erase_round_trip_with_exact_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds.json");
        let (_, code) = handle(
            "store",
            r#"{"ServerURL":"myregistry.azurecr.io","Username":"u","Secret":"s"}"#,
            &p,
        );
        assert_eq!(code, 0);
        let (out, code) = handle("get", "myregistry.azurecr.io\n", &p);
        assert_eq!(code, 0);
        let c: Credential = serde_json::from_str(&out).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("u", "s"));
        assert_eq!(handle("list", "", &p).0, r#"{"myregistry.azurecr.io":"u"}"#);
        // Another spelling of the same registry is another key: the helper does not repair
        // a client's key choice.
        for other in [
            "https://myregistry.azurecr.io",
            "MYREGISTRY.AZURECR.IO",
            "myregistry.azurecr.io:443",
        ] {
            assert_eq!(handle("get", other, &p), (NOT_FOUND.into(), 1), "{other}");
        }
        handle("erase", "myregistry.azurecr.io", &p);
        assert_eq!(
            handle("get", "myregistry.azurecr.io", &p),
            (NOT_FOUND.into(), 1)
        );
    }

    #[test]
    fn osxkeychain_lookup_treats_a_bare_host_as_https_and_nothing_else_as_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds.json");
        save_lookup(&p, Lookup::Osxkeychain).unwrap();
        let stored =
            r#"{"ServerURL":"123.dkr.ecr.us-east-2.amazonaws.com","Username":"AWS","Secret":"t"}"#;
        assert_eq!(handle("store", stored, &p).1, 0);
        // seed 003: `list` shows the entry as an https URL…
        assert_eq!(
            handle("list", "", &p).0,
            r#"{"https://123.dkr.ecr.us-east-2.amazonaws.com":"AWS"}"#
        );
        // …and both spellings of it find it,
        for same in [
            "123.dkr.ecr.us-east-2.amazonaws.com",
            "https://123.dkr.ecr.us-east-2.amazonaws.com\n",
            "//123.dkr.ecr.us-east-2.amazonaws.com",
        ] {
            let (out, code) = handle("get", same, &p);
            assert_eq!(code, 0, "{same}");
            let c: Credential = serde_json::from_str(&out).unwrap();
            assert_eq!(c.secret, "t");
        }
        // while another protocol, port or path is another keychain item.
        for other in [
            "http://123.dkr.ecr.us-east-2.amazonaws.com",
            "123.dkr.ecr.us-east-2.amazonaws.com:443",
            "123.dkr.ecr.us-east-2.amazonaws.com/openjdk",
            "ftp://123.dkr.ecr.us-east-2.amazonaws.com",
        ] {
            assert_eq!(handle("get", other, &p), (NOT_FOUND.into(), 1), "{other}");
        }
        // Storing another spelling of the same item replaces it.
        let again = r#"{"ServerURL":"https://123.dkr.ecr.us-east-2.amazonaws.com","Username":"AWS","Secret":"u"}"#;
        handle("store", again, &p);
        assert_eq!(load(&p).len(), 1);
        handle("erase", "123.dkr.ecr.us-east-2.amazonaws.com", &p);
        assert!(load(&p).is_empty());
    }

    #[test]
    fn the_ecr_login_name_has_a_store_of_its_own() {
        assert_eq!(
            store_env_for("/x/bin/docker-credential-ecr-login"),
            ECR_LOGIN_STORE_ENV
        );
        assert_eq!(store_env_for("docker-credential-regcompat"), STORE_ENV);
    }
}
