//! Capture-driven fidelity: exchanges of the real services (ACR, ECR, GitLab, Docker Hub),
//! recorded in public sources and kept as data in `tests/captures/<profile>/*.toml`, replayed
//! against a fleet configured as the capture file says (with the recording's hostname) and
//! compared — status, the headers that matter, the body (byte for byte where the capture is
//! byte-exact). Format, normalisations and sources: `tests/captures/README.md`.
//!
//! Prints a table of exchanges per profile and how many match; fails if an exchange marked
//! `expect_match = true` differs, or one marked `false` (with its reason) starts matching
//! (the mark is then stale and must be removed).

use base64::Engine as _;
use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureFile {
    source: Source,
    fleet: FleetSetup,
    exchange: Vec<Exchange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by people, checked for presence here
struct Source {
    title: String,
    url: String,
    /// `sdk-recording`, `issue-thread`, `access-log`, `code-comment`, `vendor-doc`.
    kind: String,
    repository: Option<String>,
    path: Option<String>,
    commit: Option<String>,
    /// What was scrubbed (tokens, account ids) and how.
    scrubbed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetSetup {
    /// `acr`, `ecr`, `gitlab`, `dockerhub`: the table row.
    profile: String,
    /// A fleet configuration (`docs/fleet.md`), one `[[host]]`, on the recording's hostname.
    config: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exchange {
    id: String,
    expect_match: bool,
    /// Why the fake legitimately differs (required when `expect_match = false`).
    reason: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
    request: Request,
    response: Expected,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    method: String,
    /// Hostname the request is sent to; default: the fleet's registry.
    host: Option<String>,
    path: String,
    query: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `none` (default), `basic:<principal>`, `basic-wrong:<username>`,
    /// `bearer:<principal>:<scope>` (a token from the realm the registry's challenge names),
    /// `bearer-anonymous:<scope>` (the same without credentials).
    auth: Option<String>,
    /// Form or other body; `${secret:<principal>}` is replaced by that principal's secret.
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    status: u16,
    /// Exact values; an array for a header sent several times (in order).
    #[serde(default)]
    headers: BTreeMap<String, HeaderValue>,
    /// Normalisation: only the start of the value is fixed (opaque upload URLs).
    #[serde(default)]
    header_prefix: BTreeMap<String, String>,
    /// Normalisation: present with any value (ids, dates).
    #[serde(default)]
    headers_present: Vec<String>,
    /// Headers the real answer did not carry.
    #[serde(default)]
    headers_absent: Vec<String>,
    content_length: Option<usize>,
    /// The body byte for byte.
    body: Option<String>,
    /// The body as JSON (key order and spacing not captured); `volatile` pointers are
    /// compared for presence and type only (tokens, dates).
    body_json: Option<String>,
    #[serde(default)]
    volatile: Vec<String>,
    /// What a client printed from the body: distribution's `<code lowercased>: <message>`
    /// (`_` in the code printed as a space)
    /// of the first error (docker, containerd), when the raw body is not in the source.
    rendered: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

impl HeaderValue {
    fn values(&self) -> Vec<String> {
        match self {
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures")
}

fn capture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(captures_dir()).expect("tests/captures") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("profile dir") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e == "toml") {
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

fn load(path: &Path) -> CaptureFile {
    let text = std::fs::read_to_string(path).expect("read capture");
    let file: CaptureFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        !file.source.url.is_empty() && !file.source.title.is_empty(),
        "{}: every capture names its source",
        path.display()
    );
    if file.source.repository.is_some() || file.source.path.is_some() {
        assert!(
            file.source.repository.is_some()
                && file.source.path.is_some()
                && file.source.commit.as_deref().is_some_and(|c| c.len() == 40),
            "{}: a source in a repository names repository, path and commit",
            path.display()
        );
    }
    for x in &file.exchange {
        assert!(
            x.expect_match || x.reason.as_deref().is_some_and(|r| !r.is_empty()),
            "{} {}: expect_match = false needs a reason",
            path.display(),
            x.id
        );
        let r = &x.response;
        assert!(
            [
                r.body.is_some(),
                r.body_json.is_some(),
                r.rendered.is_some()
            ]
            .iter()
            .filter(|b| **b)
            .count()
                <= 1,
            "{} {}: one of body, body_json, rendered",
            path.display(),
            x.id
        );
        if let (Some(body), Some(len)) = (&r.body, r.content_length) {
            assert_eq!(
                body.len(),
                len,
                "{} {}: the recorded body disagrees with the recorded Content-Length",
                path.display(),
                x.id
            );
        }
    }
    file
}

/// A principal of the fleet config: (username, secret).
fn principal(config: &toml::Value, name: &str) -> (String, String) {
    let hosts = config["host"].as_array().expect("[[host]]");
    for h in hosts {
        for p in h
            .get("principal")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            if p["name"].as_str() == Some(name) {
                return (
                    p.get("username")
                        .and_then(|u| u.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    p["secret"].as_str().expect("secret").to_owned(),
                );
            }
        }
    }
    panic!("no principal {name} in the capture's fleet config")
}

fn substitute(text: &str, config: &toml::Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${secret:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "${secret:".len()..];
        let end = after.find('}').expect("closing }");
        out.push_str(&principal(config, &after[..end]).1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn client(fleet: &RunningFleet) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(fleet.ca_pem_path()).expect("ca.pem");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
        .redirect(reqwest::redirect::Policy::none())
        .http1_only();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b.build().expect("client")
}

/// A challenge parameter (`realm`, `service`) of a `Bearer` challenge.
fn challenge_param(challenge: &str, key: &str) -> Option<String> {
    let start = challenge.find(&format!("{key}=\""))? + key.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_owned())
}

/// The token dance as a client does it: the registry's challenge names realm and service;
/// GET the realm with Basic credentials of `who` (none: anonymous); `token` or `access_token`.
async fn bearer(
    c: &reqwest::Client,
    registry: &str,
    config: &toml::Value,
    who: Option<&str>,
    scope: &str,
) -> String {
    let r = c
        .get(format!("https://{registry}/v2/"))
        .send()
        .await
        .expect("ping");
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("challenge")
        .to_owned();
    let realm = challenge_param(&challenge, "realm").expect("realm");
    let service = challenge_param(&challenge, "service").expect("service");
    let mut b = c
        .get(realm)
        .query(&[("service", service.as_str()), ("scope", scope)]);
    if let Some(who) = who {
        let (user, secret) = principal(config, who);
        b = b.header("Authorization", basic(&user, &secret));
    }
    let r = b.send().await.expect("token request");
    assert!(r.status().is_success(), "token for {who:?}: {}", r.status());
    let v: serde_json::Value = r.json().await.expect("token json");
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .expect("a token")
        .to_owned()
}

async fn replay(
    c: &reqwest::Client,
    registry: &str,
    config: &toml::Value,
    req: &Request,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let host = req.host.as_deref().unwrap_or(registry);
    let mut url = format!("https://{host}{}", substitute(&req.path, config));
    if let Some(q) = &req.query {
        url.push('?');
        url.push_str(&substitute(q, config));
    }
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("method");
    let mut b = c.request(method, url);
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), substitute(v, config));
    }
    match req.auth.as_deref().unwrap_or("none") {
        "none" => {}
        a if a.starts_with("basic:") => {
            let (user, secret) = principal(config, &a["basic:".len()..]);
            b = b.header("Authorization", basic(&user, &secret));
        }
        a if a.starts_with("basic-wrong:") => {
            b = b.header(
                "Authorization",
                basic(&a["basic-wrong:".len()..], "not-the-password"),
            );
        }
        a if a.starts_with("bearer:") => {
            let (who, scope) = a["bearer:".len()..]
                .split_once(':')
                .expect("bearer:who:scope");
            let token = bearer(c, registry, config, Some(who), scope).await;
            b = b.bearer_auth(token);
        }
        a if a.starts_with("bearer-anonymous:") => {
            let scope = &a["bearer-anonymous:".len()..];
            let token = bearer(c, registry, config, None, scope).await;
            b = b.bearer_auth(token);
        }
        other => panic!("unknown auth {other}"),
    }
    if let Some(body) = &req.body {
        b = b.body(substitute(body, config));
    }
    let r = b.send().await.expect("replayed request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn header_values(h: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn blank_volatile(v: &mut serde_json::Value, pointer: &str, side: &str, diffs: &mut Vec<String>) {
    match v.pointer_mut(pointer) {
        Some(x) if x.is_string() => *x = serde_json::Value::String("<volatile>".into()),
        Some(x) => diffs.push(format!("{side} {pointer} is not a string: {x}")),
        None => diffs.push(format!("{side} has no {pointer}")),
    }
}

/// Docker's rendering of a distribution error body: `<code lowercased, `_` → space>:
/// <message>` (errcode's `ErrorCode.Error`); a token
/// server's 401 `{"details":"…"}` is `unauthorized: <details>` (distribution's
/// `registry/client/errors.go`).
fn rendered(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(details) = v.get("details").and_then(|d| d.as_str()) {
        return Some(format!("unauthorized: {details}"));
    }
    let e = v.get("errors")?.get(0)?;
    Some(format!(
        "{}: {}",
        e.get("code")?.as_str()?.to_lowercase().replace('_', " "),
        e.get("message")?.as_str()?
    ))
}

fn compare(
    want: &Expected,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let mut diffs = Vec::new();
    if status != want.status {
        diffs.push(format!("status {status}, real {}", want.status));
    }
    for (name, value) in &want.headers {
        let got = header_values(headers, name);
        if got != value.values() {
            diffs.push(format!("{name}: {got:?}, real {:?}", value.values()));
        }
    }
    for (name, prefix) in &want.header_prefix {
        let got = header_values(headers, name);
        if got.len() != 1 || !got[0].starts_with(prefix.as_str()) {
            diffs.push(format!("{name}: {got:?}, real starts with {prefix:?}"));
        }
    }
    for name in &want.headers_present {
        if headers.get(name.as_str()).is_none() {
            diffs.push(format!("{name} missing"));
        }
    }
    for name in &want.headers_absent {
        if let Some(v) = headers.get(name.as_str()) {
            diffs.push(format!("{name} sent ({v:?}), real has none"));
        }
    }
    if let Some(len) = want.content_length
        && body.len() != len
    {
        diffs.push(format!("body is {} bytes, real {len}", body.len()));
    }
    if let Some(exact) = &want.body
        && body != exact.as_bytes()
    {
        diffs.push(format!(
            "body {:?}, real {exact:?}",
            String::from_utf8_lossy(body)
        ));
    }
    if let Some(json) = &want.body_json {
        let mut real: serde_json::Value = serde_json::from_str(json).expect("capture body_json");
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(mut got) => {
                for p in &want.volatile {
                    blank_volatile(&mut real, p, "capture", &mut diffs);
                    blank_volatile(&mut got, p, "fake", &mut diffs);
                }
                if got != real {
                    diffs.push(format!("body {got}, real {real}"));
                }
            }
            Err(_) => diffs.push(format!(
                "body is not JSON: {:?}",
                String::from_utf8_lossy(body)
            )),
        }
    }
    if let Some(text) = &want.rendered {
        let got = rendered(body);
        if got.as_deref() != Some(text.as_str()) {
            diffs.push(format!("rendered {got:?}, real {text:?}"));
        }
    }
    diffs
}

#[derive(Default)]
struct Row {
    files: usize,
    exchanges: usize,
    matched: usize,
    expected_differences: usize,
}

#[tokio::test]
async fn real_captures_replayed_against_the_profiles() {
    let files = capture_files();
    assert!(!files.is_empty(), "no captures in tests/captures");
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let file = load(path);
        let config: toml::Value = toml::from_str(&file.fleet.config)
            .unwrap_or_else(|e| panic!("{}: fleet config: {e}", path.display()));
        let hosts = FleetConfig::parse(&file.fleet.config, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_hosts(fake_registry::auth::Clock::system().now())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let registry = hosts[0].hostname.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = FleetOptions::new(dir.path());
        options.first_address = Ipv4Addr::new(127, 0, 60 + u8::try_from(i).expect("<196 files"), 2);
        options.admin = None;
        let fleet = Fleet::start(hosts, options)
            .await
            .unwrap_or_else(|e| panic!("{}: fleet: {e}", path.display()));
        let c = client(&fleet);
        let row = rows.entry(file.fleet.profile.clone()).or_default();
        row.files += 1;
        let name = path
            .strip_prefix(captures_dir())
            .unwrap_or(path)
            .display()
            .to_string();
        for x in &file.exchange {
            row.exchanges += 1;
            let (status, headers, body) = replay(&c, &registry, &config, &x.request).await;
            let diffs = compare(&x.response, status, &headers, &body);
            match (diffs.is_empty(), x.expect_match) {
                (true, true) => row.matched += 1,
                (false, false) => {
                    row.expected_differences += 1;
                    println!(
                        "  expected difference {name} {}: {} — {}",
                        x.id,
                        diffs.join("; "),
                        x.reason.as_deref().unwrap_or_default()
                    );
                }
                (false, true) => failures.push(format!("{name} {}: {}", x.id, diffs.join("; "))),
                (true, false) => failures.push(format!(
                    "{name} {}: marked expect_match = false but matches now; drop the mark",
                    x.id
                )),
            }
        }
        fleet.shutdown().await;
    }
    println!(
        "\n{:<10} {:>7} {:>9} {:>7} {:>22}",
        "profile", "sources", "exchanges", "match", "expected differences"
    );
    for (profile, r) in &rows {
        println!(
            "{profile:<10} {:>7} {:>9} {:>7} {:>22}",
            r.files, r.exchanges, r.matched, r.expected_differences
        );
    }
    assert!(
        failures.is_empty(),
        "captures that differ from the fake:\n{}",
        failures.join("\n")
    );
}
