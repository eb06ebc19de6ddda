//! `docker-credential-regcompat`: a credential helper speaking the standard protocol
//! (docker-credential-helpers: `get`, `store`, `erase`, `list`, request on stdin, JSON on
//! stdout) that answers from a JSON file in the cell's sandbox, so `credsStore` and
//! `credHelpers` scenarios exercise the clients' real helper code paths.
//!
//! The file (`$REGCOMPAT_HELPER_FILE`) maps a server URL to `{"Username","Secret"}`;
//! lookups are exact, as the helpers that store by key are (clients normalise the key
//! before asking, and the log shows what they asked for). Every call is appended to
//! `$REGCOMPAT_HELPER_LOG` (never the secret) as evidence.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

pub const FILE_VAR: &str = "REGCOMPAT_HELPER_FILE";
pub const LOG_VAR: &str = "REGCOMPAT_HELPER_LOG";
/// The binary name clients look up: `docker-credential-` + the `credsStore` value.
pub const BINARY: &str = "docker-credential-regcompat";
/// The protocol's "not found" message (credentials.NewErrCredentialsNotFound).
pub const NOT_FOUND: &str = "credentials not found in native keychain";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Secret")]
    pub secret: String,
}

/// The helper's store: server URL → credentials.
pub type Store = BTreeMap<String, Stored>;

#[derive(Serialize, Deserialize)]
struct Credentials {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs the helper: `args` = the operation, `input` = stdin. Returns (stdout, exit code).
pub fn run(op: &str, input: &str, file: &Path, log: Option<&Path>) -> (String, i32) {
    let mut store: Store = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let server = input.trim().to_owned();
    let (out, code, note) = match op {
        "get" => match store.get(&server) {
            Some(c) => {
                let reply = Credentials {
                    server_url: server.clone(),
                    username: c.username.clone(),
                    secret: c.secret.clone(),
                };
                let json = serde_json::to_string(&reply).unwrap_or_default();
                (
                    json,
                    0,
                    format!("get {server:?} -> found (username {:?})", c.username),
                )
            }
            None => (
                NOT_FOUND.to_owned(),
                1,
                format!("get {server:?} -> not found"),
            ),
        },
        "store" => match serde_json::from_str::<Credentials>(input) {
            Ok(c) => {
                let note = format!("store {:?} (username {:?})", c.server_url, c.username);
                store.insert(
                    c.server_url,
                    Stored {
                        username: c.username,
                        secret: c.secret,
                    },
                );
                match save(file, &store) {
                    Ok(()) => (String::new(), 0, note),
                    Err(e) => (format!("cannot save: {e}"), 1, note),
                }
            }
            Err(e) => (
                format!("bad store request: {e}"),
                1,
                "store: bad request".into(),
            ),
        },
        "erase" => {
            let existed = store.remove(&server).is_some();
            let saved = save(file, &store);
            let note = format!("erase {server:?} (existed: {existed})");
            match saved {
                Ok(()) => (String::new(), 0, note),
                Err(e) => (format!("cannot save: {e}"), 1, note),
            }
        }
        "list" => {
            let list: BTreeMap<&String, &String> =
                store.iter().map(|(k, v)| (k, &v.username)).collect();
            (
                serde_json::to_string(&list).unwrap_or_default(),
                0,
                "list".into(),
            )
        }
        other => (
            format!("unknown operation {other:?}: use get, store, erase or list"),
            1,
            format!("unknown operation {other:?}"),
        ),
    };
    if let Some(log) = log
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(f, "{note}");
    }
    (out, code)
}

fn save(file: &Path, store: &Store) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(store).map_err(std::io::Error::other)?;
    std::fs::write(file, text)
}

/// The binary's `main`: reads the operation from argv and the request from stdin.
pub fn main_with_env() -> i32 {
    let op = std::env::args().nth(1).unwrap_or_default();
    let Some(file) = std::env::var_os(FILE_VAR) else {
        eprintln!(
            "{BINARY}: {FILE_VAR} is not set (this helper only runs inside a regcompat sandbox)"
        );
        return 1;
    };
    let log = std::env::var_os(LOG_VAR);
    let mut input = String::new();
    // bounded: requests are a server URL or one small JSON object
    let _ = std::io::stdin().take(64 * 1024).read_to_string(&mut input);
    let (out, code) = run(&op, &input, Path::new(&file), log.as_deref().map(Path::new));
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.write_all(b"\n");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_store_erase_list_follow_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("helper.json");
        let log = dir.path().join("helper.log");
        let (out, code) = run("get", "reg.test\n", &file, Some(&log));
        assert_eq!((out.as_str(), code), (NOT_FOUND, 1));
        let (_, code) = run(
            "store",
            r#"{"ServerURL":"reg.test","Username":"u","Secret":"s3cret"}"#,
            &file,
            Some(&log),
        );
        assert_eq!(code, 0);
        let (out, code) = run("get", "reg.test", &file, Some(&log));
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Username"], "u");
        assert_eq!(v["Secret"], "s3cret");
        assert_eq!(v["ServerURL"], "reg.test");
        assert_eq!(run("list", "", &file, None).0, r#"{"reg.test":"u"}"#);
        assert_eq!(run("erase", "reg.test", &file, None).1, 0);
        assert_eq!(run("get", "reg.test", &file, None).1, 1);
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("get \"reg.test\" -> found"));
        assert!(!logged.contains("s3cret"));
    }
}
