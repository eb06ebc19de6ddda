//! A fleet on the wire: virtual hosts by hostname over TLS (HTTP/1.1 and HTTP/2) on 127.x
//! addresses and port 443, one CA, one journal, realm hosts, shutdown.

use fake_registry::auth::Clock;
use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use reqwest::{StatusCode, Version};
use serde_json::Value;

async fn start(toml: &str) -> (RunningFleet, tempfile::TempDir) {
    let config = FleetConfig::parse(toml, "test.toml").unwrap();
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

/// A client that trusts the fleet's CA and resolves every fleet hostname to its address.
fn client(fleet: &RunningFleet) -> reqwest::ClientBuilder {
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b
}

const TWO_HOSTS: &str = r#"
[[host]]
name = "alpha"
hostname = "alpha.example.test"
profile = { kind = "open" }
[[host.seed]]
repository = "app"
tag = "1"

[[host]]
name = "beta"
hostname = "beta.example.test"
profile = { kind = "open" }
"#;

#[tokio::test]
async fn https_by_hostname_on_port_443_over_http1_and_http2() {
    let (fleet, _dir) = start(TWO_HOSTS).await;
    let alpha = fleet.host("alpha").unwrap().clone();
    assert_eq!(alpha.url, "https://alpha.example.test");
    assert_eq!(
        alpha.addr.port(),
        443,
        "port 443 must bind (tests run as root)"
    );
    let ip = match alpha.addr.ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("{other}"),
    };
    assert_eq!(ip.octets()[0], 127);
    assert_ne!(
        ip.octets(),
        [127, 0, 0, 1],
        "hosts get their own 127.x address"
    );
    assert_ne!(fleet.host("beta").unwrap().addr, alpha.addr);

    let h2 = client(&fleet).build().unwrap();
    let r = h2
        .get(format!("{}/v2/app/tags/list", alpha.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_2);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["1"]));

    let h1 = client(&fleet).http1_only().build().unwrap();
    let r = h1.get(format!("{}/v2/", alpha.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_11);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let (fleet, _dir) = start(TWO_HOSTS).await;
    let alpha = fleet.host("alpha").unwrap();
    let stranger = reqwest::Client::builder()
        .resolve(&alpha.hostname, alpha.addr)
        .no_proxy()
        .build()
        .unwrap();
    let err = stranger
        .get(format!("{}/v2/", alpha.url))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // ... and the CA file is a certificate, its key private beside it
    let pem = std::fs::read_to_string(fleet.ca_pem_path()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    let key = fleet.ca_pem_path().with_file_name("ca-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    fleet.shutdown().await;
}

#[tokio::test]
async fn two_hosts_write_one_journal_with_both_names() {
    let (fleet, _dir) = start(TWO_HOSTS).await;
    let c = client(&fleet).build().unwrap();
    for name in ["alpha", "beta"] {
        let url = &fleet.host(name).unwrap().url;
        let r = c.get(format!("{url}/v2/")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let entries = fleet.journal().all();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.registry.as_str(), e.host.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("alpha", "alpha.example.test"),
            ("beta", "beta.example.test")
        ]
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn shutdown_frees_the_ports() {
    let (fleet, _dir) = start(TWO_HOSTS).await;
    let addrs: Vec<_> = fleet.hosts().iter().map(|h| h.addr).collect();
    let admin: std::net::SocketAddr = fleet
        .admin_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    fleet.shutdown().await;
    for addr in addrs.into_iter().chain([admin]) {
        std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still taken: {e}"));
    }
}

#[tokio::test]
async fn explicit_address_and_port_and_plain_http() {
    let (fleet, _dir) = start(
        r#"
[[host]]
name = "mirror"
hostname = "mirror.example.test"
address = "127.0.0.77"
port = 0
profile = { kind = "open" }
[[host]]
name = "plain"
hostname = "plain.example.test"
port = 0
tls = false
profile = { kind = "open" }
"#,
    )
    .await;
    let m = fleet.host("mirror").unwrap();
    assert_eq!(m.addr.ip().to_string(), "127.0.0.77");
    assert_ne!(m.addr.port(), 0);
    assert_eq!(
        m.url,
        format!("https://mirror.example.test:{}", m.addr.port())
    );
    let p = fleet.host("plain").unwrap();
    assert!(!p.tls);
    assert!(p.url.starts_with("http://plain.example.test:"), "{}", p.url);
    let c = client(&fleet).build().unwrap();
    for url in [&m.url, &p.url] {
        let r = c.get(format!("{url}/v2/")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn gitlab_realm_is_served_on_its_own_hostname() {
    let (fleet, _dir) = start(
        r#"
[[host]]
name = "gitlab"
hostname = "registry.gitlab.example.test"
[host.profile]
kind = "gitlab"
realm_base = "https://gitlab.example.test"
projects = [{ path = "group/project", public = true }]
[[host.principal]]
name = "dev"
username = "dev"
grants = ["group/**:pull,push"]
"#,
    )
    .await;
    let realm = fleet
        .host("gitlab.realm")
        .expect("the realm host is listed");
    assert_eq!(realm.hostname, "gitlab.example.test");
    assert_eq!(realm.role, "realm");
    assert_eq!(realm.addr.port(), 443);
    let registry = fleet.host("gitlab").unwrap();
    let c = client(&fleet).build().unwrap();
    let r = c
        .get(format!("{}/v2/group/project/tags/list", registry.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"https://gitlab.example.test/jwt/auth\""),
        "{challenge}"
    );
    let secret = &fleet
        .credentials()
        .iter()
        .find(|c| c.principal == "dev")
        .unwrap()
        .secret;
    let r = c
        .get("https://gitlab.example.test/jwt/auth?service=container_registry&scope=repository:group/project:pull")
        .basic_auth("dev", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .get(format!("{}/v2/group/project/tags/list", registry.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // authorized; the repository is empty
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // the realm host serves only the profile's endpoints
    let r = c
        .get("https://gitlab.example.test/v2/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let names: Vec<String> = fleet
        .journal()
        .all()
        .into_iter()
        .map(|e| e.registry)
        .collect();
    assert_eq!(names, ["gitlab", "gitlab.realm", "gitlab", "gitlab.realm"]);
    // the generated secret never reaches the journal
    let json = serde_json::to_string(&fleet.journal().all()).unwrap();
    assert!(!json.contains(secret.as_str()));
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_hostname_needed_twice_is_refused() {
    let config = FleetConfig::parse(
        r#"
[[host]]
name = "a"
hostname = "gitlab.example.test"
profile = { kind = "open" }
[[host]]
name = "b"
hostname = "registry.example.test"
profile = { kind = "gitlab", realm_base = "https://gitlab.example.test" }
"#,
        "t.toml",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = Fleet::start(
        config,
        FleetOptions {
            state_dir: dir.path().to_owned(),
            clock: Clock::system(),
        },
    )
    .await
    .err()
    .expect("must fail");
    assert!(
        err.to_string()
            .contains("\"gitlab.example.test\" is needed twice"),
        "{err}"
    );
}
