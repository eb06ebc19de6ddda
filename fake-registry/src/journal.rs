//! The request journal: every exchange in order, with who presented what — by principal
//! name, never by secret. It is the evidence behind every verdict, so redaction happens when
//! an entry is *recorded*: nothing secret is ever stored, exported or printed.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// Request headers worth keeping (others are noise); `authorization` is summarised, never kept.
const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "content-range",
    "range",
    "user-agent",
    "x-registry-auth",
];
/// Response headers worth keeping.
const RESPONSE_HEADERS: &[&str] = &[
    "www-authenticate",
    "location",
    "docker-content-digest",
    "content-type",
    "content-length",
    "content-range",
    "range",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "oci-subject",
];
/// Form and query keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "refresh_token",
    "access_token",
    "client_secret",
    "token",
    "code",
    // storage URL signatures (Azure SAS, S3 presigned)
    "sig",
    "X-Amz-Signature",
    "X-Amz-Credential",
];

/// What credential a request carried, described without the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthRecord {
    /// `none`, `basic`, `bearer` or the unknown scheme's name.
    pub scheme: String,
    /// The username of Basic credentials (usernames are not secrets; `AWS`, app ids…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The principal the credential belongs to, when it is one of ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// For tokens: which registry issued it (for leak detection) and its label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The outcome the profile decided: `ok`, `anonymous`, `bad-credentials`, `expired`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// One exchange.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339 time the request arrived.
    pub time: String,
    pub duration_ms: f64,
    /// The virtual registry that served it (its configured name).
    pub registry: String,
    /// The `Host` (or `:authority`) the client sent.
    pub host: String,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub request_headers: BTreeMap<String, String>,
    pub auth: AuthRecord,
    /// Decoded form fields of token requests (`grant_type`, `scope`, `service`…), redacted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub form: BTreeMap<String, String>,
    pub status: u16,
    pub response_headers: BTreeMap<String, String>,
    /// Profile remarks: "identity token used as refresh_token", "fault: reset"…
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when the request presented another registry's credential or token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<String>,
    /// Set when an injected fault shaped the exchange: the action (`status 503`, `reset`…);
    /// the note says which rule (and the seed of a probability rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// Knows every secret of a run and the label to show instead — and, for the leak detector
/// ([`crate::leak`]), which registry each secret and each token signing key belongs to.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<(String, String)>>,
    /// secret → (registry, principal)
    owners: RwLock<HashMap<String, (String, String)>>,
    /// token key id → registry whose issuer signs with it
    issuers: RwLock<HashMap<String, String>>,
}

impl Redactor {
    /// Registers a secret (a password, a token) and how to refer to it.
    pub fn add(&self, secret: &str, label: &str) {
        // Very short strings would redact innocent text; secrets are never that short here.
        if secret.len() < 4 {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !s.iter().any(|(k, _)| k == secret) {
            s.push((secret.to_owned(), label.to_owned()));
            // longest first, so a secret containing another is replaced whole
            s.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        }
    }

    /// Records that `secret` is the credential of `principal` of `registry` (and redacts it).
    pub fn claim(&self, secret: &str, registry: &str, principal: &str) {
        self.add(secret, &format!("secret of {principal}"));
        if secret.len() < 4 {
            return;
        }
        self.owners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                secret.to_owned(),
                (registry.to_owned(), principal.to_owned()),
            );
    }

    /// Records that tokens whose header says `kid` are signed by `registry`'s issuer.
    pub fn claim_issuer(&self, kid: &str, registry: &str) {
        self.issuers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kid.to_owned(), registry.to_owned());
    }

    /// `(registry, principal)` owning a secret, when it is a registered credential.
    pub fn owner_of_secret(&self, secret: &str) -> Option<(String, String)> {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(secret)
            .cloned()
    }

    /// The registry whose issuer signs with `kid`.
    pub fn owner_of_kid(&self, kid: &str) -> Option<String> {
        self.issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    /// The label of a registered secret.
    pub fn label_of(&self, secret: &str) -> Option<String> {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        secrets
            .iter()
            .find(|(k, _)| k == secret)
            .map(|(_, l)| l.clone())
    }

    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_owned();
        for (secret, label) in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &format!("[{label}]"));
            }
        }
        out
    }
}

/// The journal of one fake-registry process (all virtual registries share it).
#[derive(Debug)]
pub struct Journal {
    entries: Mutex<Vec<Entry>>,
    next: Mutex<u64>,
    /// Oldest entries are dropped past this many (a soak test must not grow without bound).
    capacity: usize,
    pub redactor: Arc<Redactor>,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_capacity(200_000)
    }
}

impl Journal {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            next: Mutex::new(1),
            capacity,
            redactor: Arc::default(),
        }
    }

    /// Records an entry; every string in it is redacted first.
    pub fn record(&self, mut e: Entry) -> u64 {
        let r = &self.redactor;
        e.path = r.redact(&e.path);
        e.query = e.query.map(|q| redact_pairs(&q, r));
        for v in e
            .request_headers
            .values_mut()
            .chain(e.response_headers.values_mut())
        {
            *v = r.redact(v);
        }
        // A redirect's Location may carry a signed URL: its signature is a credential.
        if let Some(location) = e.response_headers.get_mut("location")
            && let Some((base, query)) = location.split_once('?')
        {
            *location = format!("{base}?{}", redact_pairs(query, r));
        }
        for (k, v) in e.form.iter_mut() {
            *v = if SECRET_KEYS.contains(&k.as_str()) {
                // Say *which* secret it was when it is one of ours; drop it either way.
                format!("[{}]", r.label_of(v).unwrap_or_else(|| "redacted".into()))
            } else {
                r.redact(v)
            };
        }
        for n in e.notes.iter_mut() {
            *n = r.redact(n);
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        e.seq = *next;
        *next += 1;
        let seq = e.seq;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            let excess = entries.len() + 1 - self.capacity;
            entries.drain(..excess);
        }
        entries.push(e);
        seq
    }

    /// Entries with `seq` greater than `after` (0 for all).
    pub fn since(&self, after: u64) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Entry> {
        self.since(0)
    }

    /// The sequence number the next entry will get: a marker to query "what happened since".
    pub fn mark(&self) -> u64 {
        *self.next.lock().unwrap_or_else(|p| p.into_inner()) - 1
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// HTTP Archive 1.2 export (what browsers and proxies read), from the redacted entries.
    pub fn to_har(&self, after: u64) -> serde_json::Value {
        har_of(self.since(after))
    }
}

/// HTTP Archive 1.2 of (already redacted) entries.
pub fn har_of(entries: Vec<Entry>) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e| {
                let headers = |m: &BTreeMap<String, String>| -> Vec<serde_json::Value> {
                    m.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect()
                };
                let query = e.query.clone().unwrap_or_default();
                serde_json::json!({
                    "startedDateTime": e.time,
                    "time": e.duration_ms,
                    "request": {
                        "method": e.method,
                        "url": format!("https://{}{}{}", e.host, e.path, if query.is_empty() { String::new() } else { format!("?{query}") }),
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&e.request_headers),
                        "queryString": [],
                        "cookies": [],
                        "headersSize": -1,
                        "bodySize": -1,
                    },
                    "response": {
                        "status": e.status,
                        "statusText": "",
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&e.response_headers),
                        "cookies": [],
                        "content": {"size": -1, "mimeType": e.response_headers.get("content-type").cloned().unwrap_or_default()},
                        "redirectURL": e.response_headers.get("location").cloned().unwrap_or_default(),
                        "headersSize": -1,
                        "bodySize": -1,
                    },
                    "cache": {},
                    "timings": {"send": 0, "wait": e.duration_ms, "receive": 0},
                    "comment": serde_json::to_string(&serde_json::json!({"registry": e.registry, "auth": e.auth, "form": e.form, "notes": e.notes, "leak": e.leak, "fault": e.fault})).unwrap_or_default(),
                })
            })
            .collect();
    serde_json::json!({"log": {"version": "1.2", "creator": {"name": "regcompat fake-registry", "version": env!("CARGO_PKG_VERSION")}, "entries": entries}})
}

/// Keeps the headers of `names` from a header map, as text.
pub fn select_headers(headers: &http::HeaderMap, names: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in names {
        let values: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            out.insert((*name).to_owned(), values.join(", "));
        }
    }
    out
}

pub fn request_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    select_headers(headers, REQUEST_HEADERS)
}

pub fn response_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    select_headers(headers, RESPONSE_HEADERS)
}

/// Redacts a query string: secret keys lose their values, everything else passes the
/// redactor.
fn redact_pairs(query: &str, r: &Redactor) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=[redacted]"),
            _ => r.redact(pair),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            seq: 0,
            time: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1.0,
            registry: "acr".into(),
            host: "myregistry.azurecr.io".into(),
            method: "POST".into(),
            path: path.into(),
            query: Some("scope=repository:a:pull&refresh_token=rt-SECRET-123&service=x".into()),
            request_headers: BTreeMap::from([("user-agent".into(), "ua rt-SECRET-123".into())]),
            auth: AuthRecord::default(),
            form: BTreeMap::from([
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "rt-SECRET-123".into()),
                ("password".into(), "unknown-pass".into()),
            ]),
            status: 200,
            response_headers: BTreeMap::new(),
            notes: vec!["saw rt-SECRET-123".into()],
            leak: None,
            fault: None,
        }
    }

    #[test]
    fn no_secret_survives_recording_or_export() {
        let j = Journal::default();
        j.redactor.add("rt-SECRET-123", "refresh token of sp");
        j.record(entry("/oauth2/token/rt-SECRET-123"));
        let json = serde_json::to_string(&j.all()).unwrap();
        let har = j.to_har(0).to_string();
        for text in [&json, &har] {
            assert!(!text.contains("rt-SECRET-123"), "{text}");
            assert!(
                !text.contains("unknown-pass"),
                "an unregistered password is still dropped: {text}"
            );
        }
        assert!(json.contains("refresh token of sp"));
        assert!(json.contains("\"grant_type\":\"refresh_token\""));
    }

    #[test]
    fn sequence_marks_and_capacity() {
        let j = Journal::with_capacity(3);
        let before = j.mark();
        for i in 0..5 {
            j.record(entry(&format!("/v2/{i}")));
        }
        let all = j.all();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].seq, before + 3);
        assert_eq!(j.since(before + 4).len(), 1);
    }
}
