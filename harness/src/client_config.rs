//! The client-side configuration a scenario asks for: `$DOCKER_CONFIG/config.json`
//! (`auths`, `identitytoken`, `credsStore`, `credHelpers`) and the store the harness's
//! credential helper answers from. Keys keep the scenario's spelling after `{host}`
//! expansion: how a client normalises keys (behaviours.md §5.2) is what is under test.

use crate::credhelper::{Store, Stored};
use crate::scenario::{self, Scenario};
use base64::Engine;
use fake_registry::fleet::Credential;
use serde_json::{Map, Value, json};

/// ACR's null-GUID username for identity tokens (`az acr login` writes it; behaviours.md §1.3).
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// (username, secret) of `host/principal`.
pub fn credential<'a>(creds: &'a [Credential], reference: &str) -> Option<&'a Credential> {
    let (host, name) = reference.split_once('/')?;
    creds.iter().find(|c| c.host == host && c.principal == name)
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `config.json`, or `None` when the scenario writes none.
pub fn docker_config(
    scenario: &Scenario,
    creds: &[Credential],
    authority: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Value>, String> {
    let Some(dc) = &scenario.docker_config else {
        return Ok(None);
    };
    let mut auths = Map::new();
    for (key, a) in &dc.auths {
        let key = scenario::expand(key, authority);
        let entry = if let Some(p) = &a.principal {
            let c = credential(creds, p).ok_or_else(|| format!("no credential for {p}"))?;
            json!({ "auth": b64(&format!("{}:{}", c.username.as_deref().unwrap_or(""), c.secret)) })
        } else if let Some(t) = &a.identity_token {
            let c = credential(creds, t).ok_or_else(|| format!("no credential for {t}"))?;
            json!({ "auth": b64(&format!("{NULL_GUID}:")), "identitytoken": c.secret })
        } else {
            let u = a.username.as_deref().unwrap_or("");
            let p = a.password.as_deref().unwrap_or("");
            json!({ "auth": b64(&format!("{u}:{p}")) })
        };
        auths.insert(key, entry);
    }
    let mut config = Map::new();
    config.insert("auths".into(), Value::Object(auths));
    if let Some(store) = &dc.creds_store {
        config.insert("credsStore".into(), json!(store));
    }
    if !dc.cred_helpers.is_empty() {
        let helpers: Map<String, Value> = dc
            .cred_helpers
            .iter()
            .map(|(k, v)| (scenario::expand(k, authority), json!(v)))
            .collect();
        config.insert("credHelpers".into(), Value::Object(helpers));
    }
    Ok(Some(Value::Object(config)))
}

/// What `docker-credential-regcompat` starts with.
pub fn helper_store(
    scenario: &Scenario,
    creds: &[Credential],
    authority: &dyn Fn(&str) -> Option<String>,
) -> Result<Store, String> {
    let mut store = Store::new();
    for h in &scenario.helper {
        let server = scenario::expand(&h.server, authority);
        let stored = if let Some(p) = &h.principal {
            let c = credential(creds, p).ok_or_else(|| format!("no credential for {p}"))?;
            Stored {
                username: c.username.clone().unwrap_or_default(),
                secret: c.secret.clone(),
            }
        } else if let Some(t) = &h.identity_token {
            let c = credential(creds, t).ok_or_else(|| format!("no credential for {t}"))?;
            // docker-credential-helpers: Username "<token>" marks an identity token
            Stored {
                username: "<token>".into(),
                secret: c.secret.clone(),
            }
        } else {
            Stored {
                username: h.username.clone().unwrap_or_default(),
                secret: h.secret.clone().unwrap_or_default(),
            }
        };
        store.insert(server, stored);
    }
    Ok(store)
}
