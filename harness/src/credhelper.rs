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

/// The key a credential is stored and looked up under: exactly the server URL the client
/// sent (surrounding whitespace and the newline some clients add aside), as the
/// docker-credential-pass/secretservice/wincred helpers key their entries. The helper does
/// not normalise, so a client's own key choice (`host`, `host:443`, `https://host`) shows in
/// the cell instead of being repaired by the harness.
pub fn normalise(server: &str) -> String {
    server.trim().to_owned()
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
    fn the_ecr_login_name_has_a_store_of_its_own() {
        assert_eq!(
            store_env_for("/x/bin/docker-credential-ecr-login"),
            ECR_LOGIN_STORE_ENV
        );
        assert_eq!(store_env_for("docker-credential-regcompat"), STORE_ENV);
    }
}
