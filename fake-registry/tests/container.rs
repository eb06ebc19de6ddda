//! The fake as a container (feature `testcontainers`): the image `cargo xtask image`
//! imported, started through testcontainers on the host network, an ACR fleet by hostname;
//! `oci-client` pulls with the access token an `az acr login` identity token is exchanged
//! for (grant_type=refresh_token), and the journal, read through the admin API, shows both.
//! It needs a Docker engine with the image imported: DOCKER_HOST, or
//! REGCOMPAT_DOCKERD_API_1_41 = the socket of a dockerd that speaks API 1.41 (Debian's
//! 20.10, which `.ci/container-engine.sh` starts with `--bridge=none --iptables=false`),
//! reached through an API-version adapter: testcontainers-rs speaks 1.49 and never
//! negotiates (support/api_version.rs).

#![cfg(feature = "testcontainers")]

#[path = "support/api_version.rs"]
mod api_version;
mod support;

use fake_registry::container::{ACR_IDENTITY_TOKEN, FakeRegistryContainer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::connect_proxy::ConnectProxy;

const ACR: &str = "myregistry.azurecr.io";

#[tokio::test]
async fn an_acr_fleet_in_a_container_serves_oci_client_through_a_refresh_token() {
    use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let sockets = tempfile::tempdir().expect("a socket dir");
    let _adapter = std::env::var_os("REGCOMPAT_DOCKERD_API_1_41").map(|daemon| {
        let adapter = api_version::ApiVersionAdapter::start(
            &sockets.path().join("docker.sock"),
            std::path::Path::new(&daemon),
            b"1.49",
            b"1.41",
        );
        // SAFETY: set before testcontainers reads it, in the only test of this binary,
        // before any other thread of the test reads the environment.
        unsafe { std::env::set_var("DOCKER_HOST", adapter.url()) };
        adapter
    });
    assert!(
        std::env::var_os("DOCKER_HOST").is_some(),
        "set DOCKER_HOST (or REGCOMPAT_DOCKERD_API_1_41) to a Docker engine holding {} \
         (cargo xtask image); .ci/run does",
        fake_registry::image::image_reference()
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let began = Instant::now();
    let registry = FakeRegistryContainer::acr(ACR)
        .expect("the fleet's directory")
        .start()
        .await
        .expect("the container starts and prints its ready line");
    eprintln!("container ready after {:?}", began.elapsed());
    let acr = registry.host(ACR).expect("ACR is served").clone();
    let ca = registry.ca_pem().to_vec();

    // az acr login's identity token is an ACR refresh token: exchange it, as docker does.
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .resolve(ACR, acr.addr)
        .build()
        .expect("client");
    let token: serde_json::Value = http
        .post(format!("https://{ACR}/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("service", ACR),
            ("scope", "repository:base/run:pull"),
            ("refresh_token", ACR_IDENTITY_TOKEN),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    let access = token["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();

    // oci-client cannot override DNS: it reaches the hostnames through a CONNECT proxy.
    let routes: HashMap<String, SocketAddr> = registry
        .hosts()
        .iter()
        .map(|h| (format!("{}:443", h.hostname), h.addr))
        .collect();
    let proxy = ConnectProxy::start(routes).await;
    let client = Client::new(ClientConfig {
        https_proxy: Some(proxy.url()),
        extra_root_certificates: vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: ca,
        }],
        ..ClientConfig::default()
    });
    let pulled = client
        .pull(
            &Reference::try_from(format!("{ACR}/base/run:1")).expect("reference"),
            &RegistryAuth::Bearer(access),
            vec![
                IMAGE_LAYER_GZIP_MEDIA_TYPE,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ],
        )
        .await
        .expect("pull from the containerised ACR");
    assert_eq!(pulled.layers.len(), 1);
    eprintln!("pulled after {:?}", began.elapsed());

    let admin = registry.admin_url().expect("an admin API").to_owned();
    let journal: serde_json::Value = reqwest::get(format!("{admin}/_regcompat/journal"))
        .await
        .expect("journal")
        .json()
        .await
        .expect("journal JSON");
    let entries = journal["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["path"] == "/oauth2/token"
            && e["form"]["grant_type"] == "refresh_token"
            && e["auth"]["principal"] == "identity"
            && e["status"] == 200),
        "the refresh-token grant is in the journal: {entries:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "/v2/base/run/manifests/1"
                && e["auth"]["scheme"] == "bearer"
                && e["auth"]["principal"] == "identity"
                && e["status"] == 200),
        "the manifest was read with the exchanged token: {entries:#?}"
    );
    assert!(
        !journal.to_string().contains(ACR_IDENTITY_TOKEN),
        "the journal never holds the identity token"
    );

    // SIGTERM (the engine's stop) ends it long before the engine's 10 s kill.
    let stopping = Instant::now();
    registry
        .container()
        .stop_with_timeout(Some(10))
        .await
        .expect("stop");
    eprintln!("stopped in {:?}", stopping.elapsed());
    assert!(
        stopping.elapsed() < Duration::from_secs(9),
        "stopped on SIGTERM, not killed: {:?}",
        stopping.elapsed()
    );
}
