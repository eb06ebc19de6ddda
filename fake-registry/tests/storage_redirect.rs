//! Blob downloads redirected to a storage host (behaviours.md §1.3 ACR → Azure Blob Storage,
//! §4.4 ECR → S3): the 307, the storage host refusing a forwarded `Authorization` with the
//! vendor's exact XML, serving the blob without one, refusing URLs it did not sign or that
//! expired, signatures kept out of the journal, and a real client (`oci-client`) pulling
//! through the redirect.

mod support;

use fake_registry::auth::Clock;
use fake_registry::config::FleetConfig;
use fake_registry::digest::Digest;
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use fake_registry::redirect::{AZURE_BAD_AUTH, S3_ONE_AUTH, URL_LIFETIME};
use reqwest::StatusCode;
use rstest::rstest;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use support::connect_proxy::ConnectProxy;

const SECRET: &str = "storage-test-S3cret~value";
const ACR: &str = "myregistry.azurecr.io";
const AZURE: &str = "myregistry.blob.core.windows.net";
const ECR: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";
const S3: &str = "prod-us-east-2-starport-layer-bucket.s3.us-east-2.amazonaws.com";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One registry (`reg`) of `kind` on `hostname`, a puller, one seeded image; `extra` goes
/// into the profile table. A distinct /24 per test (`net`) so parallel tests never collide.
async fn start(
    kind: &str,
    hostname: &str,
    extra: &str,
    clock: Clock,
    net: u8,
) -> (RunningFleet, tempfile::TempDir) {
    let username = if kind == "ecr" { "AWS" } else { "puller-id" };
    // ECR repositories exist before anything is seeded into them.
    let repositories = if kind == "ecr" {
        "repositories = [\"base\"]"
    } else {
        ""
    };
    let toml = format!(
        r#"
[[host]]
name = "reg"
hostname = "{hostname}"
[host.profile]
kind = "{kind}"
{repositories}
{extra}
[[host.principal]]
name = "puller"
kind = "user"
username = "{username}"
secret = "{SECRET}"
grants = ["**:pull"]
[[host.seed]]
repository = "base"
tag = "1"
layers = [3000]
"#
    );
    let hosts = FleetConfig::parse(&toml, "t.toml")
        .unwrap()
        .into_hosts(clock.now())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = FleetOptions::new(dir.path());
    options.clock = clock;
    options.first_address = Ipv4Addr::new(127, 0, net, 2);
    let fleet = Fleet::start(hosts, options).await.unwrap();
    (fleet, dir)
}

fn username(fleet: &RunningFleet) -> &'static str {
    if fleet.hosts()[0].profile.starts_with("ecr") {
        "AWS"
    } else {
        "puller-id"
    }
}

fn client(fleet: &RunningFleet) -> reqwest::Client {
    install_crypto();
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .no_proxy();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b.build().unwrap()
}

/// The seeded image's layer digest and bytes (fixtures are deterministic).
fn layer() -> (Digest, Vec<u8>) {
    let image = fixtures::generate(&ImageSpec::single(Format::Oci, &[3000])).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&image.top().bytes).unwrap();
    let digest: Digest = doc["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let blob = image.blobs.iter().find(|b| b.digest == digest).unwrap();
    (digest, blob.bytes.to_vec())
}

async fn redirect_location(fleet: &RunningFleet, c: &reqwest::Client, digest: &Digest) -> String {
    let url = &fleet.host("reg").unwrap().url;
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth(username(fleet), Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["docker-content-digest"],
        digest.to_string().as_str()
    );
    r.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn acr_blob_get_redirects_to_a_sas_url_on_the_storage_host() {
    let (fleet, _d) = start("acr", ACR, "", Clock::system(), 210).await;
    let storage = fleet.hosts().iter().find(|h| h.role == "storage").unwrap();
    assert_eq!(storage.hostname, AZURE);
    assert_eq!(storage.addr.port(), 443);
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let url = fleet.host("reg").unwrap().url.clone();
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth("puller-id", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=utf-8",
        "cosign#3331 capture"
    );
    assert_eq!(
        r.headers()
            .get_all("access-control-expose-headers")
            .iter()
            .count(),
        4
    );
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let hex = digest.hex();
    assert!(
        location.starts_with(&format!(
            "https://{AZURE}/registry/docker/registry/v2/blobs/sha256/{}/{hex}/data?se=",
            &hex[..2]
        )),
        "{location}"
    );
    for part in ["&sig=", "&sp=r", "&sr=b", "&sv="] {
        assert!(location.contains(part), "{location} lacks {part}");
    }
    let body = r.text().await.unwrap();
    assert_eq!(
        body,
        format!(
            "<a href=\"{}\">Temporary Redirect</a>.\n\n",
            location.replace('&', "&amp;")
        )
    );
    // HEAD is answered by the registry itself (no capture shows ACR redirecting HEAD).
    let r = c
        .head(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth("puller-id", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A blob that is not there is not redirected.
    let missing = format!("sha256:{}", "0".repeat(64));
    let r = c
        .get(format!("{url}/v2/base/blobs/{missing}"))
        .basic_auth("puller-id", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Unauthenticated: challenged, never redirected.
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Following without Authorization: the blob, from "Azure".
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["server"],
        "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
    );
    assert!(r.headers().get("docker-content-digest").is_none());
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    // The journal: the redirect noted, the signature never recorded.
    let entries = fleet.journal().all();
    let sig = location
        .split("&sig=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let json = serde_json::to_string(&entries).unwrap();
    let har = fleet.journal().to_har(0).to_string();
    for text in [&json, &har] {
        assert!(!text.contains(sig), "signature leaked: {text}");
        assert!(!text.contains(SECRET));
    }
    assert!(
        entries[0]
            .notes
            .contains(&format!("blob redirected to {AZURE}"))
    );
    assert!(entries[0].response_headers["location"].contains("sig=[redacted]"));
    let served = entries.iter().find(|e| e.host == AZURE).unwrap();
    assert_eq!(served.registry, "reg");
    assert_eq!(served.auth.verdict.as_deref(), Some("signed-url"));
    fleet.shutdown().await;
}

#[rstest]
#[case::http1(false)]
#[case::http2(true)]
#[tokio::test]
async fn azure_storage_refuses_a_forwarded_authorization_with_the_bom_xml(#[case] http2: bool) {
    let net = if http2 { 212 } else { 211 };
    let (fleet, _d) = start("acr", ACR, "", Clock::system(), net).await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    install_crypto();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(fleet.ca_pem_path()).unwrap()).unwrap(),
        )
        .no_proxy();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b = if http2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    let r = b
        .build()
        .unwrap()
        .get(&location)
        .bearer_auth("some-registry-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    if !http2 {
        // Azure puts its message in the status line (renovate#6640).
        assert_eq!(
            r.status().canonical_reason(),
            Some("Bad Request"),
            "reqwest shows the canonical reason; the wire's is checked below"
        );
    }
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert_eq!(r.headers()["content-length"], "298");
    assert_eq!(
        r.headers()["server"],
        "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
    );
    let request_id = r.headers()["x-ms-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 298);
    assert_eq!(&body[..3], b"\xEF\xBB\xBF");
    let text = std::str::from_utf8(&body[3..]).unwrap();
    let prefix = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>InvalidAuthenticationInfo</Code><Message>{AZURE_BAD_AUTH}\nRequestId:"
    );
    assert!(text.starts_with(&prefix), "{text}");
    let rest = &text[prefix.len()..];
    assert_eq!(
        rest.len(),
        36 + "\nTime:".len() + 28 + "</Message></Error>".len()
    );
    assert!(rest.ends_with("Z</Message></Error>"), "{rest}");

    // The journal says who sent Authorization to storage: how scenarios assert it.
    let storage: Vec<_> = fleet
        .journal()
        .all()
        .into_iter()
        .filter(|e| e.host == AZURE)
        .collect();
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].auth.scheme, "bearer");
    assert_eq!(
        storage[0].auth.verdict.as_deref(),
        Some("authorization-forwarded")
    );
    assert_eq!(storage[0].status, 400);
    fleet.shutdown().await;
}

/// The status line of the Azure refusal, read off the wire (reqwest hides reason phrases).
#[tokio::test]
async fn azure_refusal_carries_its_message_in_the_status_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (fleet, _d) = start("acr", ACR, "", Clock::system(), 213).await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    let path = location.strip_prefix(&format!("https://{AZURE}")).unwrap();
    let storage = fleet.hosts().iter().find(|h| h.role == "storage").unwrap();
    install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(storage.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(AZURE).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {AZURE}\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(&format!("HTTP/1.1 400 {AZURE_BAD_AUTH}\r\n")),
        "{text}"
    );
    fleet.shutdown().await;
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).unwrap();
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|rest| {
            let b64: String = rest
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            rustls::pki_types::CertificateDer::from(der)
        })
        .collect()
}

#[tokio::test]
async fn storage_refuses_urls_it_did_not_sign_and_expired_ones() {
    let clock = Clock::manual(1_700_000_000);
    let (fleet, _d) = start("acr", ACR, "", clock.clone(), 214).await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    // Another blob's path with this signature.
    let forged = location.replace(&digest.hex()[..8], "00000000");
    let r = c.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>AuthenticationFailed</Code>")
    );
    // No signature at all.
    let bare = location.split('?').next().unwrap().to_owned();
    assert_eq!(
        c.get(&bare).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Still valid just before expiry, refused after.
    clock.advance(URL_LIFETIME);
    assert_eq!(
        c.get(&location).send().await.unwrap().status(),
        StatusCode::OK
    );
    clock.advance(1);
    assert_eq!(
        c.get(&location).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn ecr_blob_get_redirects_to_s3_which_refuses_a_second_auth_mechanism() {
    let clock = Clock::manual(1_700_000_000);
    let (fleet, _d) = start("ecr", ECR, "", clock.clone(), 215).await;
    assert!(
        fleet
            .hosts()
            .iter()
            .any(|h| h.hostname == S3 && h.role == "storage")
    );
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    assert!(
        location.starts_with(&format!(
            "https://{S3}/123456789012/sha256-{}?",
            digest.hex()
        )),
        "{location}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "&X-Amz-Date=20231114T221320Z",
        "&X-Amz-Expires=1200",
        "&X-Amz-SignedHeaders=host",
        "&X-Amz-Signature=",
    ] {
        assert!(location.contains(part), "{location} lacks {part}");
    }
    // Forwarding the registry's Basic credentials: S3's 400 InvalidArgument, the header's
    // value echoed redacted.
    let r = c
        .get(&location)
        .basic_auth("AWS", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["server"], "AmazonS3");
    assert_eq!(r.headers()["content-type"], "application/xml");
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code><Message>{S3_ONE_AUTH}</Message><ArgumentName>Authorization</ArgumentName><ArgumentValue>Basic "
        )),
        "{text}"
    );
    assert!(text.ends_with("</HostId></Error>"), "{text}");
    // Without: the blob.
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["server"], "AmazonS3");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    // A tampered signature: 403 SignatureDoesNotMatch.
    let tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=00");
    let r = c.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>")
    );
    // Expired: 403 AccessDenied "Request has expired".
    clock.advance(URL_LIFETIME + 1);
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>AccessDenied</Code><Message>Request has expired</Message>")
    );

    let seen: Vec<(String, u16)> = fleet
        .journal()
        .all()
        .into_iter()
        .filter(|e| e.host == S3)
        .map(|e| (e.auth.scheme, e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("basic".to_owned(), 400),
            ("none".to_owned(), 200),
            ("none".to_owned(), 403),
            ("none".to_owned(), 403)
        ]
    );
    let json = serde_json::to_string(&fleet.journal().all()).unwrap();
    assert!(!json.contains(SECRET));
    let sig = location.split("X-Amz-Signature=").nth(1).unwrap();
    assert!(!json.contains(sig), "{json}");
    fleet.shutdown().await;
}

#[rstest]
#[case::acr("acr", ACR, 216)]
#[case::ecr("ecr", ECR, 217)]
#[tokio::test]
async fn with_storage_redirect_off_blobs_are_served_by_the_registry(
    #[case] kind: &str,
    #[case] hostname: &str,
    #[case] net: u8,
) {
    let (fleet, _d) = start(
        kind,
        hostname,
        "storage_redirect = false",
        Clock::system(),
        net,
    )
    .await;
    assert!(fleet.hosts().iter().all(|h| h.role != "storage"));
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let url = &fleet.host("reg").unwrap().url;
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth(username(&fleet), Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_configured_storage_host_is_used() {
    let (fleet, _d) = start(
        "ecr",
        ECR,
        "storage_host = \"layers.s3.example.test\"",
        Clock::system(),
        218,
    )
    .await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    assert!(
        location.starts_with("https://layers.s3.example.test/"),
        "{location}"
    );
    assert_eq!(
        c.get(&location).send().await.unwrap().status(),
        StatusCode::OK
    );
    fleet.shutdown().await;
}

/// A real client follows the 307 to the storage host without the registry's credentials
/// (reqwest drops `Authorization` on a cross-host redirect) and gets the layers.
#[rstest]
#[case::acr("acr", ACR, "puller-id", 219)]
#[case::ecr("ecr", ECR, "AWS", 220)]
#[tokio::test]
async fn oci_client_pulls_through_the_storage_redirect(
    #[case] kind: &str,
    #[case] hostname: &str,
    #[case] user: &str,
    #[case] net: u8,
) {
    use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    install_crypto();
    let (fleet, _d) = start(kind, hostname, "", Clock::system(), net).await;
    let routes: HashMap<String, SocketAddr> = fleet
        .hosts()
        .iter()
        .map(|h| (format!("{}:443", h.hostname), h.addr))
        .collect();
    let proxy = ConnectProxy::start(routes).await;
    let client = Client::new(ClientConfig {
        https_proxy: Some(proxy.url()),
        extra_root_certificates: vec![Certificate {
            encoding: CertificateEncoding::Pem,
            data: std::fs::read(fleet.ca_pem_path()).unwrap(),
        }],
        ..ClientConfig::default()
    });
    let pulled = client
        .pull(
            &Reference::try_from(format!("{hostname}/base:1")).unwrap(),
            &RegistryAuth::Basic(user.into(), SECRET.into()),
            vec![IMAGE_LAYER_GZIP_MEDIA_TYPE],
        )
        .await
        .expect("pull through the redirect");
    let (_, bytes) = layer();
    assert_eq!(pulled.layers.len(), 1);
    assert_eq!(pulled.layers[0].data.to_vec(), bytes);
    let storage: Vec<_> = fleet
        .journal()
        .all()
        .into_iter()
        .filter(|e| {
            fleet
                .hosts()
                .iter()
                .any(|h| h.role == "storage" && h.hostname == e.host)
        })
        .collect();
    assert!(!storage.is_empty(), "the layer came from the storage host");
    assert!(
        storage
            .iter()
            .all(|e| e.status == 200 && e.auth.scheme == "none"),
        "{storage:#?}"
    );
    fleet.shutdown().await;
}
