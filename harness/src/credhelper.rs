//! The harness's docker credential helper, `docker-credential-regcompat`: the standard
//! get/store/erase/list protocol answered from a JSON file in the cell's sandbox (path
//! in `$REGCOMPAT_CREDHELPER_FILE`), so `credsStore`/`credHelpers` scenarios are real.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The variable naming the helper's store file.
pub const STORE_ENV: &str = "REGCOMPAT_CREDHELPER_FILE";
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

/// The key clients use is a hostname, a URL (`https://host/v1/`) or `host:port`; all map
/// to the bare `host[:port]` (docker's credential-key normalisation).
pub fn normalise(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or("").to_ascii_lowercase()
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
    match command {
        "get" => match store.get(&normalise(input)) {
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
                store.insert(normalise(&c.server_url), c);
                match save(path, &store) {
                    Ok(()) => (String::new(), 0),
                    Err(e) => (e.to_string(), 1),
                }
            }
            Err(e) => (format!("invalid credential: {e}"), 1),
        },
        "erase" => {
            store.remove(&normalise(input));
            match save(path, &store) {
                Ok(()) => (String::new(), 0),
                Err(e) => (e.to_string(), 1),
            }
        }
        "list" => {
            let list: BTreeMap<&str, &str> = store
                .iter()
                .map(|(k, c)| (k.as_str(), c.username.as_str()))
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
    fn store_get_list_erase_round_trip_with_normalised_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds.json");
        let (_, code) = handle(
            "store",
            r#"{"ServerURL":"https://MyRegistry.azurecr.io/v1/","Username":"u","Secret":"s"}"#,
            &p,
        );
        assert_eq!(code, 0);
        let (out, code) = handle("get", "myregistry.azurecr.io", &p);
        assert_eq!(code, 0);
        let c: Credential = serde_json::from_str(&out).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("u", "s"));
        assert_eq!(handle("list", "", &p).0, r#"{"myregistry.azurecr.io":"u"}"#);
        handle("erase", "myregistry.azurecr.io", &p);
        assert_eq!(
            handle("get", "myregistry.azurecr.io", &p),
            (NOT_FOUND.into(), 1)
        );
    }
}
