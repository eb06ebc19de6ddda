//! The admin API (`/_regcompat/journal`, `journal.har`, `reset`, `faults`) and every fault
//! action on the wire.

use fake_registry::auth::Clock;
use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{Value, json};
use std::time::Duration;

const CONFIG: &str = r#"
[[host]]
name = "alpha"
hostname = "alpha.example.test"
profile = { kind = "bearer" }
anonymous = ["**:pull"]
[[host.seed]]
repository = "app"
tag = "1"
image = { layers = [4000] }

[[host]]
name = "beta"
hostname = "beta.example.test"
profile = { kind = "open" }
"#;

async fn start() -> (RunningFleet, tempfile::TempDir) {
    let config = FleetConfig::parse(CONFIG, "t.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        config,
        FleetOptions {
            state_dir: dir.path().to_owned(),
            clock: Clock::system(),
        },
    )
    .await
    .unwrap();
    (fleet, dir)
}

fn client(fleet: &RunningFleet, http1: bool) -> reqwest::Client {
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .no_proxy();
    if http1 {
        b = b.http1_only();
    }
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b.build().unwrap()
}

fn admin() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn add_fault(fleet: &RunningFleet, rule: Value) -> String {
    let r = admin()
        .post(format!("{}/_regcompat/faults", fleet.admin_url()))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn url(fleet: &RunningFleet, name: &str, path: &str) -> String {
    format!("{}{path}", fleet.host(name).unwrap().url)
}

#[tokio::test]
async fn journal_filters_by_registry_and_since_and_exports_har() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, false);
    c.get(url(&fleet, "alpha", "/v2/")).send().await.unwrap();
    c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    c.get(url(&fleet, "beta", "/v2/x/tags/list"))
        .send()
        .await
        .unwrap();
    let a = admin();
    let all: Value = a
        .get(format!("{}/_regcompat/journal", fleet.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["mark"], 3);
    assert_eq!(all["entries"].as_array().unwrap().len(), 3);
    let beta: Value = a
        .get(format!(
            "{}/_regcompat/journal?registry=beta&since=2",
            fleet.admin_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = beta["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["path"], "/v2/x/tags/list");
    assert_eq!(entries[0]["registry"], "beta");
    let har: Value = a
        .get(format!(
            "{}/_regcompat/journal.har?registry=alpha",
            fleet.admin_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    let har_entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har_entries.len(), 1);
    assert_eq!(
        har_entries[0]["request"]["url"],
        "https://alpha.example.test/v2/"
    );
    assert_eq!(har_entries[0]["response"]["status"], 401);
    fleet.shutdown().await;
}

#[tokio::test]
async fn reset_clears_journal_and_faults_and_refuses_storage() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, false);
    add_fault(&fleet, json!({"action": {"type": "status", "code": 500}})).await;
    let r = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let a = admin();
    let r = a
        .post(format!(
            "{}/_regcompat/reset?storage=true",
            fleet.admin_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    assert_eq!(
        fleet.journal().all().len(),
        1,
        "a refused reset resets nothing"
    );
    let r = a
        .post(format!("{}/_regcompat/reset", fleet.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(fleet.journal().all().is_empty());
    assert!(fleet.faults().list().is_empty());
    let r = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    fleet.shutdown().await;
}

#[tokio::test]
async fn faults_are_added_listed_removed_and_cleared() {
    let (fleet, _d) = start().await;
    let a = admin();
    let base = format!("{}/_regcompat/faults", fleet.admin_url());
    let id = add_fault(
        &fleet,
        json!({"id": "m503", "match": {"registry": "beta", "path": "/v2/*/manifests/*"}, "when": {"nth": 2}, "action": {"type": "status", "code": 503}}),
    )
    .await;
    assert_eq!(id, "m503");
    let other = add_fault(
        &fleet,
        json!({"action": {"type": "reset"}, "match": {"registry": "nobody"}}),
    )
    .await;
    let list: Value = a.get(&base).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], "m503");
    assert_eq!(list[0]["when"]["nth"], 2);
    assert_eq!(list[0]["seen"], 0);
    // invalid rules are refused with the reason
    for (bad, reason) in [
        (json!({"action": {"type": "explode"}}), "unknown variant"),
        (
            json!({"action": {"type": "reset"}, "when": {"probability": 2.0}}),
            "between 0 and 1",
        ),
        (
            json!({"action": {"type": "reset"}, "match": {"path_regex": "("}}),
            "path_regex",
        ),
    ] {
        let r = a.post(&base).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let e = r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(e.contains(reason), "{e}");
    }
    let r = a.delete(format!("{base}/{other}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a.delete(format!("{base}/{other}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(fleet.faults().list().len(), 1);
    let r = a.delete(&base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(fleet.faults().list().is_empty());
    fleet.shutdown().await;
}

#[tokio::test]
async fn status_fault_on_the_nth_request_with_a_spec_body_and_a_note() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, false);
    add_fault(
        &fleet,
        json!({"id": "second", "match": {"registry": "beta", "method": "GET"}, "when": {"nth": 2}, "action": {"type": "status", "code": 503, "headers": {"x-injected": "yes"}}}),
    )
    .await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                c.get(url(&fleet, "beta", "/v2/"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, [200, 503, 200]);
    let e = &fleet.journal().all()[1];
    assert_eq!(e.status, 503);
    assert_eq!(e.notes, ["fault: second status 503"]);
    // the default body is a spec error body
    add_fault(
        &fleet,
        json!({"match": {"registry": "beta"}, "action": {"type": "status", "code": 500}}),
    )
    .await;
    let r = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"][0]["code"].is_string(), "{body}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_failures_and_429_with_retry_after() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, false);
    add_fault(
        &fleet,
        json!({"match": {"token_endpoint": true}, "times": 1, "action": {"type": "too_many_requests", "retry_after": 7}}),
    )
    .await;
    // /v2/ is not a token endpoint: untouched
    let r = c.get(url(&fleet, "alpha", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let token = url(
        &fleet,
        "alpha",
        "/token?service=alpha.example.test&scope=repository:app:pull",
    );
    let r = c.get(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    // times = 1: the next token request is served
    let r = c.get(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let notes: Vec<Vec<String>> = fleet.journal().all().into_iter().map(|e| e.notes).collect();
    assert_eq!(notes[1], ["fault: fault-1 too_many_requests retry-after=7"]);
    assert!(notes[2].is_empty());
    fleet.shutdown().await;
}

#[rstest]
#[case::http1(true)]
#[case::http2(false)]
#[tokio::test]
async fn reset_closes_the_connection_without_a_response(#[case] http1: bool) {
    let (fleet, _d) = start().await;
    let c = client(&fleet, http1);
    add_fault(
        &fleet,
        json!({"match": {"registry": "beta"}, "when": {"nth": 1}, "action": {"type": "reset"}}),
    )
    .await;
    let err = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.status().is_none(), "no response at all: {err:?}");
    let e = &fleet.journal().all()[0];
    assert_eq!(e.status, 0);
    assert_eq!(e.notes, ["fault: fault-1 reset"]);
    // the next request is served
    let r = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    fleet.shutdown().await;
}

#[tokio::test]
async fn truncate_announces_the_whole_length_and_sends_less() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, true);
    add_fault(
        &fleet,
        json!({"match": {"registry": "beta", "path": "/v2/**/blobs/*"}, "action": {"type": "truncate", "bytes": 100}}),
    )
    .await;
    // seed beta with a blob through the API
    let data = vec![7u8; 5000];
    let digest = format!("sha256:{}", sha256_hex(&data));
    let r = c
        .post(url(
            &fleet,
            "beta",
            &format!("/v2/t/blobs/uploads/?digest={digest}"),
        ))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(url(&fleet, "beta", &format!("/v2/t/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "5000");
    let mut r = r;
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
    fleet.shutdown().await;
}

#[tokio::test]
async fn delay_then_serves_and_hang_sends_nothing_then_closes() {
    let (fleet, _d) = start().await;
    let c = client(&fleet, true);
    add_fault(&fleet, json!({"match": {"registry": "beta", "path": "/v2/"}, "when": {"nth": 1}, "action": {"type": "delay", "ms": 50}})).await;
    let r = c.get(url(&fleet, "beta", "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        fleet.journal().all()[0].notes,
        ["fault: fault-1 delay 50ms"]
    );

    add_fault(&fleet, json!({"match": {"registry": "beta", "path": "/v2/_catalog"}, "action": {"type": "hang", "max_ms": 300}})).await;
    // A client with a shorter timeout gives up while the registry still hangs …
    let impatient = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(fleet.ca_pem_path()).unwrap()).unwrap(),
        )
        .resolve("beta.example.test", fleet.host("beta").unwrap().addr)
        .timeout(Duration::from_millis(100))
        .no_proxy()
        .build()
        .unwrap();
    let err = impatient
        .get(url(&fleet, "beta", "/v2/_catalog"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // … and a patient one sees the connection closed with no response after max_ms.
    let err = c
        .get(url(&fleet, "beta", "/v2/_catalog"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    fleet.shutdown().await;
}

fn sha256_hex(data: &[u8]) -> String {
    fake_registry::digest::Digest::sha256(data).hex().to_owned()
}

#[tokio::test]
async fn faults_from_the_config_apply_to_their_host_only() {
    let config = FleetConfig::parse(
        r#"
[[host]]
name = "alpha"
hostname = "alpha.example.test"
profile = { kind = "open" }
[[host.faults]]
match = { path = "/v2/" }
action = { type = "status", code = 502 }
[[host]]
name = "beta"
hostname = "beta.example.test"
profile = { kind = "open" }
"#,
        "t.toml",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        config,
        FleetOptions {
            state_dir: dir.path().to_owned(),
            clock: Clock::system(),
        },
    )
    .await
    .unwrap();
    let c = client(&fleet, false);
    assert_eq!(
        c.get(url(&fleet, "alpha", "/v2/"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        c.get(url(&fleet, "beta", "/v2/"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    fleet.shutdown().await;
}
