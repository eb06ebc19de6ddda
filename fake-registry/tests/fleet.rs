//! A fleet over TLS: several registries by hostname on their own loopback addresses, port 443,
//! certificates from the fleet's CA, HTTP/1.1 and HTTP/2, one journal; GitLab's realm on its
//! own host; and a real client (`oci-client`) through ACR's token dance by hostname.

mod support;

use fake_registry::auth::{Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::fleet::{Fleet, FleetOptions, HostSpec, RunningFleet};
use fake_registry::profile::acr::AcrOptions;
use fake_registry::profile::gitlab::{GitlabOptions, Project};
use fake_registry::server::ProfileChoice;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use support::connect_proxy::ConnectProxy;

const ACR: &str = "myregistry.azurecr.io";
const GITLAB_REGISTRY: &str = "registry.gitlab.example.com";
const GITLAB: &str = "gitlab.example.com";
const SP_ID: &str = "11111111-2222-3333-4444-555555555555";
const SP_SECRET: &str = "fleet-sp-S3cret~value";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn directory() -> Directory {
    Directory {
        principals: vec![Principal {
            name: "sp-acrpush".into(),
            kind: PrincipalKind::ServicePrincipal,
            username: Some(SP_ID.into()),
            secret: SP_SECRET.into(),
            grants: vec![Grant {
                repositories: "**".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
            effective_from: None,
            expires_at: None,
        }],
        anonymous: vec![],
    }
}

/// A distinct /24 per test so tests in parallel never share an address.
async fn fleet(dir: &std::path::Path, net: u8) -> RunningFleet {
    let image = fixtures::generate(&ImageSpec::single(Format::Docker, &[1024])).unwrap();
    // These tests are about hostnames, realms and one journal; storage redirects (and
    // oci-client pulling through them) are tested in storage_redirect.rs.
    let mut acr_options = AcrOptions::new(ACR);
    acr_options.storage_redirect = false;
    let mut acr = HostSpec::new(
        "acr",
        ACR,
        ProfileChoice::Acr {
            options: acr_options,
            directory: directory(),
        },
    );
    acr.seeds
        .push(("base/run".into(), "1".into(), image.clone()));
    let mut gitlab_options = GitlabOptions::new(vec![Project::new("group/sub/app", true)]);
    gitlab_options.realm_host = Some(GITLAB.into());
    let mut gitlab = HostSpec::new(
        "gitlab",
        GITLAB_REGISTRY,
        ProfileChoice::Gitlab {
            options: gitlab_options,
            directory: Directory::default(),
        },
    );
    gitlab
        .seeds
        .push(("group/sub/app".into(), "latest".into(), image));
    let open = HostSpec::new("open", "registry.example.com", ProfileChoice::Open);
    let mut options = FleetOptions::new(dir);
    options.first_address = Ipv4Addr::new(127, 0, net, 2);
    Fleet::start(vec![acr, gitlab, open], options)
        .await
        .expect("fleet starts")
}

fn https_client(fleet: &RunningFleet, http2: bool) -> reqwest::Client {
    install_crypto();
    let ca = std::fs::read(fleet.ca_pem_path()).expect("ca.pem");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"));
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    if http2 {
        b = b.http2_prior_knowledge();
    } else {
        b = b.http1_only();
    }
    b.build().expect("client")
}

#[tokio::test]
async fn hosts_are_served_by_hostname_on_port_443_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), 201).await;
    let names: Vec<_> = fleet.hosts().iter().map(|h| h.hostname.as_str()).collect();
    assert_eq!(
        names,
        [ACR, GITLAB_REGISTRY, GITLAB, "registry.example.com"],
        "the GitLab realm host is served too"
    );
    for h in fleet.hosts() {
        assert_eq!(h.addr.port(), 443, "{}", h.hostname);
        assert!(h.addr.ip().is_loopback());
        assert!(!h.url.contains("127."), "URLs use hostnames: {}", h.url);
    }
    let addrs: std::collections::BTreeSet<_> = fleet.hosts().iter().map(|h| h.addr).collect();
    assert_eq!(addrs.len(), 4, "each hostname has its own address");

    for http2 in [false, true] {
        let c = https_client(&fleet, http2);
        let r = c
            .get("https://registry.example.com/v2/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let want = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(r.version(), want);
        assert_eq!(
            r.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );
        // ACR's challenge names its realm by hostname.
        let r = c.get(format!("https://{ACR}/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            format!("Bearer realm=\"https://{ACR}/oauth2/token\",service=\"{ACR}\"")
        );
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), 202).await;
    let addr = fleet.host("open").unwrap().addr;
    let c = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve("registry.example.com", addr)
        .build()
        .unwrap();
    let err = c
        .get("https://registry.example.com/v2/")
        .send()
        .await
        .expect_err("an untrusted certificate fails the handshake");
    assert!(err.is_connect(), "{err:?}");
    // The certificate is for its own hostname only: dialling another name fails too.
    let c = https_client(&fleet, false);
    let c2 = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(fleet.ca_pem_path()).unwrap()).unwrap(),
        )
        .resolve("other.example.com", addr)
        .build()
        .unwrap();
    assert!(
        c2.get("https://other.example.com/v2/")
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        c.get("https://registry.example.com/v2/")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn gitlab_realm_lives_on_the_gitlab_host_and_one_journal_sees_both() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), 203).await;
    let c = https_client(&fleet, false);
    let r = c
        .get(format!(
            "https://{GITLAB_REGISTRY}/v2/group/sub/app/manifests/latest"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"https://{GITLAB}/jwt/auth\"")),
        "{challenge}"
    );
    let r = c
        .get(format!(
            "https://{GITLAB}/jwt/auth?service=container_registry&scope=repository:group/sub/app:pull"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "anonymous pull of a public project");
    let entries = fleet.journal().since(0);
    let hosts: Vec<_> = entries
        .iter()
        .map(|e| (e.registry.as_str(), e.host.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [("gitlab", GITLAB_REGISTRY), ("gitlab", GITLAB)],
        "both hosts journaled under the registry's name"
    );
}

#[tokio::test]
async fn oci_client_pulls_and_pushes_through_acr_by_hostname() {
    use oci_client::client::{ClientConfig, Config, ImageLayer};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), 204).await;
    let routes: HashMap<String, SocketAddr> = fleet
        .hosts()
        .iter()
        .map(|h| (format!("{}:443", h.hostname), h.addr))
        .collect();
    let proxy = ConnectProxy::start(routes).await;
    let ca = std::fs::read(fleet.ca_pem_path()).unwrap();
    let client = Client::new(ClientConfig {
        https_proxy: Some(proxy.url()),
        extra_root_certificates: vec![oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Pem,
            data: ca,
        }],
        ..ClientConfig::default()
    });
    let auth = RegistryAuth::Basic(SP_ID.into(), SP_SECRET.into());

    let pulled = client
        .pull(
            &Reference::try_from(format!("{ACR}/base/run:1")).unwrap(),
            &auth,
            vec![
                IMAGE_LAYER_GZIP_MEDIA_TYPE,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ],
        )
        .await
        .expect("pull through ACR's token dance");
    assert_eq!(pulled.layers.len(), 1);

    let layer = ImageLayer::new(
        b"pushed through the fleet".to_vec(),
        IMAGE_LAYER_GZIP_MEDIA_TYPE.into(),
        None,
    );
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    client
        .push(
            &Reference::try_from(format!("{ACR}/app/pushed:1")).unwrap(),
            &[layer],
            config,
            &auth,
            None,
        )
        .await
        .expect("push through ACR");

    let entries = fleet.journal().since(0);
    let token_requests: Vec<_> = entries
        .iter()
        .filter(|e| e.path == "/oauth2/token")
        .collect();
    assert!(!token_requests.is_empty());
    assert!(
        token_requests
            .iter()
            .all(|e| e.auth.principal.as_deref() == Some("sp-acrpush") && e.status == 200),
        "{token_requests:#?}"
    );
    assert!(entries.iter().all(|e| e.host == ACR && e.leak.is_none()));
    // No secret in the journal.
    let dump = serde_json::to_string(&entries).unwrap();
    assert!(!dump.contains(SP_SECRET));
}

#[tokio::test]
async fn shutdown_frees_the_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), 205).await;
    let addrs: Vec<SocketAddr> = fleet.hosts().iter().map(|h| h.addr).collect();
    fleet.shutdown().await;
    for a in addrs {
        std::net::TcpListener::bind(a).expect("the address is free again");
    }
}

#[tokio::test]
async fn a_non_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HostSpec::new("x", "x.example.com", ProfileChoice::Open);
    h.address = Some("192.0.2.1".parse().unwrap());
    let err = Fleet::start(vec![h], FleetOptions::new(dir.path()))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not loopback"), "{err}");
}

#[tokio::test]
async fn a_private_network_claimed_in_the_machines_namespace_is_refused() {
    // Documentation addresses are only allowed where nothing leads out; the test runs in the
    // machine's namespace, so the claim is checked and refused before anything binds.
    let dir = tempfile::tempdir().unwrap();
    let mut h = HostSpec::new("x", "x.example.com", ProfileChoice::Open);
    h.address = Some("198.51.100.2".parse().unwrap());
    let mut options = FleetOptions::new(dir.path());
    options.private_network = true;
    let err = Fleet::start(vec![h], options).await.err().expect("refused");
    assert!(err.to_string().contains("not a private network"), "{err}");
}

#[tokio::test]
async fn a_tls_1_2_only_host_refuses_tls_1_3_alone_and_serves_tls_1_2() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut h = HostSpec::new("acr", ACR, ProfileChoice::Open);
    h.tls_versions = vec![fake_registry::tls::TlsVersion::Tls12];
    let mut options = FleetOptions::new(dir.path());
    options.first_address = Ipv4Addr::new(127, 0, 206, 2);
    let fleet = Fleet::start(vec![h], options).await.expect("fleet");
    let ca = std::fs::read(fleet.ca_pem_path()).expect("ca.pem");
    let addr = fleet.host("acr").expect("host").addr;
    let client = |min: reqwest::tls::Version, max: reqwest::tls::Version| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .resolve(ACR, addr)
            .min_tls_version(min)
            .max_tls_version(max)
            .build()
            .unwrap()
    };
    use reqwest::tls::Version;
    let url = format!("https://{ACR}/v2/");
    let tls12 = client(Version::TLS_1_2, Version::TLS_1_2)
        .get(&url)
        .send()
        .await;
    assert_eq!(tls12.expect("TLS 1.2 is served").status(), 200);
    let tls13 = client(Version::TLS_1_3, Version::TLS_1_3)
        .get(&url)
        .send()
        .await;
    assert!(
        tls13.is_err(),
        "a TLS 1.3-only client must fail the handshake"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn serve_config_prints_a_ready_line_and_serves_the_fleet() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        "[[host]]\nname = \"acr\"\nhostname = \"myregistry.azurecr.io\"\naddress = \"127.0.206.2\"\nport = 0\n[host.profile]\nkind = \"acr\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-registry"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).expect(&line);
    let host = &ready["ready"]["hosts"][0];
    assert_eq!(host["hostname"], "myregistry.azurecr.io");
    let admin = ready["ready"]["admin"].as_str().unwrap_or_default();
    assert!(admin.starts_with("http://127.0.0.1:"), "{line}");
    let addr: SocketAddr = host["addr"].as_str().unwrap().parse().unwrap();
    let ca = std::fs::read(ready["ready"]["ca"].as_str().unwrap()).unwrap();
    install_crypto();
    let c = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("myregistry.azurecr.io", addr)
        .build()
        .unwrap();
    let r = c
        .get(format!("https://myregistry.azurecr.io:{}/v2/", addr.port()))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.unwrap().status(), 401);
}

#[test]
fn serve_config_names_the_file_line_and_field_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[host]]\nname = \"a\"\nhostname = \"a.example.com\"\n[host.profile]\nkind = \"quay\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fake-registry"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5:8: field `host[0].profile.kind`: unknown variant `quay`",
            config.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `kind` is one of"), "{stderr}");
}

/// A seed with a `fleet_ca` file (a buildpacks build image that must trust the fleet) is
/// generated once the fleet has made its CA: the layer served holds that CA's PEM.
#[tokio::test]
async fn a_seed_file_holds_the_fleet_ca_it_was_started_with() {
    use fake_registry::fixtures::{FileContent, FileSpec};
    let dir = tempfile::tempdir().unwrap();
    let mut open = HostSpec::new("open", "registry.example.com", ProfileChoice::Open);
    open.fleet_ca_seeds.push((
        "cnb/build".into(),
        "1".into(),
        ImageSpec::single(Format::Docker, &[16]).with_files(vec![FileSpec {
            path: "etc/ssl/certs/ca-certificates.crt".into(),
            content: FileContent::FleetCa,
            mode: 0o644,
        }]),
    ));
    let mut options = FleetOptions::new(dir.path());
    options.first_address = Ipv4Addr::new(127, 0, 207, 2);
    let fleet = Fleet::start(vec![open], options)
        .await
        .expect("fleet starts");
    let client = https_client(&fleet, false);
    let base = "https://registry.example.com/v2/cnb/build";
    let manifest: serde_json::Value = client
        .get(format!("{base}/manifests/1"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .expect("a files layer");
    let gz = client
        .get(format!("{base}/blobs/{top}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_ref()), &mut tar).unwrap();
    let ca = std::fs::read(fleet.ca_pem_path()).unwrap();
    assert!(
        tar.windows(ca.len()).any(|w| w == ca.as_slice()),
        "the layer holds the fleet's ca.pem"
    );
    fleet.shutdown().await;
}
