//! The admin API (journal as JSON and HAR, reset, fault rules) and injected faults on the
//! wire: status with a body, 429 with Retry-After, token-endpoint failures, connection reset
//! (HTTP/1.1 and HTTP/2), a truncated body, delay and hang; rules from the TOML config; and
//! no configured secret in any export.

use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::time::Duration;

const SECRET: &str = "admin-test-S3cret~value";
const ACR: &str = "myregistry.azurecr.io";
const BETA: &str = "beta.example.test";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn start_with(net: u8, beta_extra: &str) -> (RunningFleet, tempfile::TempDir) {
    let toml = format!(
        r#"
[[host]]
name = "acr"
hostname = "{ACR}"
[host.profile]
kind = "acr"
storage_redirect = false
[[host.principal]]
name = "sp"
kind = "service-principal"
username = "sp-id"
secret = "{SECRET}"
grants = ["**:pull,push"]
[[host.seed]]
repository = "base"
tag = "1"

[[host]]
name = "beta"
hostname = "{BETA}"
[host.profile]
kind = "open"
{beta_extra}
"#
    );
    let hosts = FleetConfig::parse(&toml, "t.toml")
        .unwrap()
        .into_hosts(0)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = FleetOptions::new(dir.path());
    options.first_address = Ipv4Addr::new(127, 0, net, 2);
    let fleet = Fleet::start(hosts, options).await.unwrap();
    (fleet, dir)
}

async fn start(net: u8) -> (RunningFleet, tempfile::TempDir) {
    start_with(net, "").await
}

fn client(fleet: &RunningFleet, http1: bool) -> reqwest::Client {
    install_crypto();
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b = if http1 {
        b.http1_only()
    } else {
        b.http2_prior_knowledge()
    };
    b.build().unwrap()
}

fn admin() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn admin_url(fleet: &RunningFleet, path: &str) -> String {
    format!("{}{path}", fleet.admin_url().unwrap())
}

async fn add_fault(fleet: &RunningFleet, rule: Value) -> String {
    let r = admin()
        .post(admin_url(fleet, "/_regcompat/faults"))
        .header("content-type", "application/json")
        .body(rule.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

fn url(host: &str, path: &str) -> String {
    format!("https://{host}{path}")
}

#[tokio::test]
async fn admin_listens_on_loopback_plain_http_apart_from_the_registries() {
    let (fleet, _d) = start(221).await;
    let admin_url = fleet.admin_url().unwrap();
    assert!(admin_url.starts_with("http://127.0.0.1:"), "{admin_url}");
    assert!(
        fleet
            .hosts()
            .iter()
            .all(|h| !admin_url.ends_with(&format!(":{}", h.addr.port()))
                || h.addr.ip().to_string() != "127.0.0.1")
    );
    let r = admin()
        .get(format!("{admin_url}/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The registries do not serve the admin paths.
    let r = client(&fleet, true)
        .get(url(BETA, "/_regcompat/journal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    fleet.shutdown().await;
}

#[tokio::test]
async fn journal_exports_json_and_har_without_any_secret() {
    let (fleet, _d) = start(222).await;
    let c = client(&fleet, true);
    // The secret travels in Basic auth, in a token request, and in a query.
    let r = c
        .get(url(ACR, "/v2/base/manifests/1"))
        .basic_auth("sp-id", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(url(
            ACR,
            &format!("/oauth2/token?service={ACR}&scope=repository:base:pull&password={SECRET}"),
        ))
        .basic_auth("sp-id", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(url(ACR, "/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&service={ACR}&username=sp-id&password={SECRET}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    c.get(url(BETA, "/v2/")).send().await.unwrap();

    let r = admin()
        .get(admin_url(&fleet, "/_regcompat/journal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let json = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mark"], 4);
    assert_eq!(v["entries"].as_array().unwrap().len(), 4);
    assert_eq!(v["entries"][0]["auth"]["principal"], "sp");

    let har = admin()
        .get(admin_url(&fleet, "/_regcompat/journal?format=har"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let h: Value = serde_json::from_str(&har).unwrap();
    assert_eq!(h["log"]["version"], "1.2");
    let entries = h["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["request"]["method"], "GET");
    assert_eq!(
        entries[0]["request"]["url"],
        format!("https://{ACR}/v2/base/manifests/1")
    );
    assert_eq!(entries[0]["response"]["status"], 200);

    for text in [&json, &har] {
        assert!(!text.contains(SECRET), "a secret in an export: {text}");
    }

    // Filters: since and registry.
    let v: Value = admin()
        .get(admin_url(
            &fleet,
            "/_regcompat/journal?since=2&registry=beta",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hosts: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, [BETA]);
    let r = admin()
        .get(admin_url(&fleet, "/_regcompat/journal?format=xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    fleet.shutdown().await;
}

#[tokio::test]
async fn faults_are_added_listed_removed_cleared_and_reset() {
    let (fleet, _d) = start(223).await;
    let a = admin();
    let id = add_fault(
        &fleet,
        json!({"match": {"host": "beta", "path": "/v2/"}, "action": {"type": "status", "code": 503}}),
    )
    .await;
    assert_eq!(id, "fault-1");
    let named = add_fault(
        &fleet,
        json!({"id": "slow", "match": {"path": "/v2/**"}, "when": {"probability": 0.25, "seed": 7}, "action": {"type": "delay", "ms": 1}}),
    )
    .await;
    assert_eq!(named, "slow");
    let list: Value = a
        .get(admin_url(&fleet, "/_regcompat/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["seed"], 7);
    assert_eq!(list[0]["seen"], 0);

    // Invalid rules are refused with the reason.
    for (rule, reason) in [
        (
            json!({"action": {"type": "status", "code": 700}}),
            "not an HTTP status",
        ),
        (
            json!({"when": {"nth": 0}, "action": {"type": "reset"}}),
            "counts from 1",
        ),
        (json!({"action": {"type": "explode"}}), "unknown variant"),
        (
            json!({"id": "slow", "action": {"type": "reset"}}),
            "already exists",
        ),
        (
            json!({"action": {"type": "hang", "max_ms": 10_000_000}}),
            "at most",
        ),
    ] {
        let r = a
            .post(admin_url(&fleet, "/_regcompat/faults"))
            .header("content-type", "application/json")
            .body(rule.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{rule}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().contains(reason), "{e}");
    }

    let r = a
        .delete(admin_url(&fleet, "/_regcompat/faults/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a
        .delete(admin_url(&fleet, "/_regcompat/faults/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let c = client(&fleet, true);
    assert_eq!(
        c.get(url(BETA, "/v2/")).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Reset: journal and faults gone.
    let r = a
        .post(admin_url(&fleet, "/_regcompat/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(fleet.journal().all().is_empty());
    assert!(fleet.faults().list().is_empty());
    assert_eq!(
        c.get(url(BETA, "/v2/")).send().await.unwrap().status(),
        StatusCode::OK
    );

    add_fault(&fleet, json!({"action": {"type": "reset"}})).await;
    let r = a
        .delete(admin_url(&fleet, "/_regcompat/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(fleet.faults().list().is_empty());
    fleet.shutdown().await;
}

#[tokio::test]
async fn status_fault_on_the_nth_request_with_body_headers_and_a_marker() {
    let (fleet, _d) = start(224).await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"host": BETA, "method": "get", "path": "/v2/*/manifests/*"}, "when": {"nth": 2},
               "action": {"type": "status", "code": 502, "body": "bad gateway\n", "headers": {"x-fault": "yes"}}}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c.get(url(BETA, "/v2/a/manifests/x")).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::BAD_GATEWAY {
            assert_eq!(r.headers()["x-fault"], "yes");
            assert_eq!(r.bytes().await.unwrap().as_ref(), b"bad gateway\n");
        }
    }
    // 404: the manifest does not exist; the second one is the fault.
    assert_eq!(statuses, [404, 502, 404]);
    // The other host and other methods are not counted.
    assert_eq!(
        c.head(url(BETA, "/v2/a/manifests/x"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let entries = fleet.journal().all();
    assert_eq!(entries[1].fault.as_deref(), Some("status 502"));
    assert_eq!(entries[1].notes, ["fault: fault-1 status 502"]);
    assert!(entries[0].fault.is_none() && entries[2].fault.is_none());
    // Without a body: a spec error body.
    add_fault(
        &fleet,
        json!({"match": {"path": "/v2/"}, "action": {"type": "status", "code": 500}}),
    )
    .await;
    let r = c.get(url(BETA, "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
    assert_eq!(v["errors"][0]["message"], "injected fault fault-2");
    fleet.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_failures_and_429_with_retry_after() {
    let (fleet, _d) = start(225).await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"path": "/oauth2/token"}, "when": {"nth": 1}, "action": {"type": "status", "code": 503}}),
    )
    .await;
    let token = |c: &reqwest::Client| {
        c.get(url(
            ACR,
            &format!("/oauth2/token?service={ACR}&scope=repository:base:pull"),
        ))
        .basic_auth("sp-id", Some(SECRET))
        .send()
    };
    assert_eq!(
        token(&c).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        token(&c).await.unwrap().status(),
        StatusCode::OK,
        "nth fires once"
    );

    add_fault(
        &fleet,
        json!({"match": {"token_endpoint": false}, "action": {"type": "too_many_requests", "retry_after": 7}}),
    )
    .await;
    let r = c.get(url(BETA, "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    let last = fleet.journal().all().pop().unwrap();
    assert_eq!(
        last.fault.as_deref(),
        Some("too_many_requests retry-after=7")
    );
    assert_eq!(last.response_headers["retry-after"], "7");
    // token endpoints are not /v2: not matched by that rule
    assert_eq!(token(&c).await.unwrap().status(), StatusCode::OK);
    fleet.shutdown().await;
}

#[rstest]
#[case::http1(true, 226)]
#[case::http2(false, 227)]
#[tokio::test]
async fn reset_closes_the_connection_without_a_response(#[case] http1: bool, #[case] net: u8) {
    let (fleet, _d) = start(net).await;
    let c = client(&fleet, http1);
    add_fault(
        &fleet,
        json!({"match": {"host": "beta"}, "when": {"nth": 1}, "action": {"type": "reset"}}),
    )
    .await;
    let err = c.get(url(BETA, "/v2/")).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.status().is_none(), "no response at all: {err:?}");
    let e = &fleet.journal().all()[0];
    assert_eq!(e.status, 0);
    assert_eq!(e.fault.as_deref(), Some("reset"));
    assert_eq!(e.notes, ["fault: fault-1 reset"]);
    // The next request is served.
    let c = client(&fleet, http1);
    let r = c.get(url(BETA, "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    fleet.shutdown().await;
}

#[tokio::test]
async fn truncate_announces_the_whole_length_and_sends_less() {
    let (fleet, _d) = start(228).await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"host": "beta", "method": "GET", "path": "/v2/**/blobs/*"}, "action": {"type": "truncate", "bytes": 100}}),
    )
    .await;
    let data = vec![7u8; 5000];
    let digest = fake_registry::digest::Digest::sha256(&data);
    let r = c
        .post(url(BETA, &format!("/v2/t/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut r = c
        .get(url(BETA, &format!("/v2/t/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "5000");
    let mut received = Vec::new();
    let err = loop {
        match r.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the body ended cleanly after {} bytes", received.len()),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert_eq!(received, data[..100]);
    let last = fleet.journal().all().pop().unwrap();
    assert_eq!(last.notes, ["fault: fault-1 truncate 100"]);
    assert_eq!(last.fault.as_deref(), Some("truncate 100"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn corrupt_sends_the_whole_length_with_one_byte_inverted() {
    let (fleet, _d) = start(233).await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"host": "beta", "method": "GET", "path": "/v2/**/blobs/*"}, "when": {"nth": 1}, "action": {"type": "corrupt", "at": 4000}}),
    )
    .await;
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let digest = fake_registry::digest::Digest::sha256(&data);
    let r = c
        .post(url(BETA, &format!("/v2/t/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let get = || c.get(url(BETA, &format!("/v2/t/blobs/{digest}"))).send();
    let r = get().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "5000");
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), 5000);
    let differ: Vec<usize> = (0..5000).filter(|i| got[*i] != data[*i]).collect();
    assert_eq!(differ, [4000]);
    assert_eq!(got[4000], !data[4000]);
    assert_ne!(fake_registry::digest::Digest::sha256(&got), digest);
    // `nth = 1` fired once: the retry gets the real bytes.
    assert_eq!(get().await.unwrap().bytes().await.unwrap(), data);
    let entries = fleet.journal().all();
    let corrupted = &entries[entries.len() - 2];
    assert_eq!(corrupted.fault.as_deref(), Some("corrupt byte 4000"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn delay_then_serves_and_hang_sends_nothing_then_closes() {
    let (fleet, _d) = start(229).await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"host": "beta", "path": "/v2/"}, "when": {"nth": 1}, "action": {"type": "delay", "ms": 200}}),
    )
    .await;
    let started = std::time::Instant::now();
    let r = c.get(url(BETA, "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        fleet.journal().all()[0].notes,
        ["fault: fault-1 delay 200ms"]
    );

    add_fault(
        &fleet,
        json!({"match": {"host": "beta", "path": "/v2/_catalog"}, "action": {"type": "hang", "max_ms": 400}}),
    )
    .await;
    // A client with a shorter timeout gives up while the registry still hangs …
    let impatient = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(fleet.ca_pem_path()).unwrap()).unwrap(),
        )
        .resolve(BETA, fleet.host("beta").unwrap().addr)
        .timeout(Duration::from_millis(100))
        .no_proxy()
        .build()
        .unwrap();
    let err = impatient
        .get(url(BETA, "/v2/_catalog"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // … and finds its request in the journal at once, though the hang has not ended …
    let held = fleet
        .journal()
        .all()
        .into_iter()
        .rfind(|e| e.path == "/v2/_catalog")
        .expect("a held request is journaled when the hang starts");
    assert_eq!(
        (held.status, held.fault.as_deref()),
        (0, Some("hang 400ms"))
    );
    // … and a patient one sees the connection closed with no response after max_ms.
    let started = std::time::Instant::now();
    let err = c.get(url(BETA, "/v2/_catalog")).send().await.unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    fleet.shutdown().await;
}

#[tokio::test]
async fn probability_rules_replay_with_their_seed() {
    let (fleet, _d) = start(230).await;
    let c = client(&fleet, true);
    let rule = json!({"match": {"host": "beta", "path": "/v2/"}, "when": {"probability": 0.5, "seed": 42}, "action": {"type": "status", "code": 503}});
    let mut runs = Vec::new();
    for _ in 0..2 {
        fleet.faults().clear();
        add_fault(&fleet, rule.clone()).await;
        let mut run = Vec::new();
        for _ in 0..16 {
            run.push(
                c.get(url(BETA, "/v2/"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        runs.push(run);
    }
    assert_eq!(runs[0], runs[1], "same seed, same decisions");
    assert!(
        runs[0].contains(&503) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
    let noted = fleet
        .journal()
        .all()
        .into_iter()
        .find(|e| e.fault.is_some())
        .unwrap();
    assert!(noted.notes[0].ends_with("(seed 42)"), "{:?}", noted.notes);
    fleet.shutdown().await;
}

#[tokio::test]
async fn faults_from_the_config_apply_to_their_host_only() {
    let (fleet, _d) = start_with(
        231,
        r#"[[host.fault]]
match = { path = "/v2/" }
action = { type = "status", code = 418 }
"#,
    )
    .await;
    let c = client(&fleet, true);
    assert_eq!(
        c.get(url(BETA, "/v2/"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        418
    );
    // ACR's /v2/ is not faulted (its usual challenge).
    assert_eq!(
        c.get(url(ACR, "/v2/")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let list = fleet.faults().list();
    assert_eq!(list[0].config.matcher.host.as_deref(), Some("beta"));
    fleet.shutdown().await;
}

/// DNS rebinding and cross-origin writes: a `Host` that is not the admin listener's own gets
/// 403 (the journal stays unreachable), a write from another `Origin` gets 403, a `POST` body
/// that is not `application/json` gets 415 — and none of them changed anything.
#[tokio::test]
async fn admin_refuses_foreign_hosts_cross_origin_writes_and_non_json_bodies() {
    let (fleet, _d) = start(232).await;
    let a = admin();
    let base = fleet.admin_url().unwrap();
    let port = base.rsplit(':').next().unwrap().to_owned();
    add_fault(&fleet, json!({"id": "kept", "action": {"type": "reset"}})).await;

    // Host checks: rebinding names are refused, the listener's own names answer.
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
        String::new(),
    ] {
        let r = a
            .get(format!("{base}/_regcompat/journal"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "Host {host:?}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("\"entries\""), "{body}");
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let r = a
            .get(format!("{base}/_regcompat/journal"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "Host {host:?}");
    }

    // Cross-origin writes, even well-formed ones, are refused.
    for (method, path) in [
        (reqwest::Method::POST, "/_regcompat/reset"),
        (reqwest::Method::POST, "/_regcompat/faults"),
        (reqwest::Method::DELETE, "/_regcompat/faults"),
    ] {
        let r = a
            .request(method.clone(), format!("{base}{path}"))
            .header("origin", "http://attacker.example")
            .header("content-type", "application/json")
            .body(json!({"action": {"type": "reset"}}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    // The form a cross-origin page can send without a preflight: text/plain.
    for path in ["/_regcompat/reset", "/_regcompat/faults"] {
        let r = a
            .post(format!("{base}{path}"))
            .header("content-type", "text/plain")
            .body(json!({"action": {"type": "reset"}}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        let r = a
            .post(format!("{base}{path}"))
            .body(json!({"action": {"type": "reset"}}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
    let ids: Vec<String> = fleet.faults().list().iter().map(|f| f.id.clone()).collect();
    assert_eq!(ids, vec!["kept".to_owned()], "nothing was changed");

    // The admin's own origin may write.
    let r = a
        .post(format!("{base}/_regcompat/reset"))
        .header("origin", base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(fleet.faults().list().is_empty());
}
