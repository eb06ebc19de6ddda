//! Blob downloads redirected to a storage host (behaviours.md §1.3 ACR → Azure Blob Storage,
//! §4.4 ECR → S3): the 307, the storage host refusing a forwarded `Authorization`, serving
//! the blob without one, and refusing URLs it did not sign.

use fake_registry::auth::Clock;
use fake_registry::config::FleetConfig;
use fake_registry::digest::Digest;
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use fake_registry::redirect::{AZURE_BAD_AUTH, S3_ONE_AUTH, URL_LIFETIME};
use reqwest::StatusCode;

const SECRET: &str = "sp-secret-value-123";

async fn start(profile: &str, clock: Clock) -> (RunningFleet, tempfile::TempDir) {
    let toml = format!(
        r#"
[[host]]
name = "reg"
hostname = "reg.example.test"
profile = {profile}
[[host.principal]]
name = "puller"
username = "AWS"
secret = "{SECRET}"
grants = ["**:pull"]
[[host.seed]]
repository = "base"
tag = "1"
image = {{ layers = [3000] }}
"#
    );
    let config = FleetConfig::parse(&toml, "t.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        config,
        FleetOptions {
            state_dir: dir.path().to_owned(),
            clock,
        },
    )
    .await
    .unwrap();
    (fleet, dir)
}

fn client(fleet: &RunningFleet) -> reqwest::Client {
    let pem = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b.build().unwrap()
}

/// The seeded image's layer digest and bytes (fixtures are deterministic).
fn layer() -> (Digest, Vec<u8>) {
    let image = fixtures::generate(&ImageSpec::single(Format::Oci, &[3000])).unwrap();
    let manifest = image.top();
    let doc: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
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
        .basic_auth("AWS", Some(SECRET))
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
    let (fleet, _d) = start(
        r#"{ kind = "acr", blob_redirect = "regacct.blob.core.windows.test" }"#,
        Clock::system(),
    )
    .await;
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let url = fleet.host("reg").unwrap().url.clone();
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth("AWS", Some(SECRET))
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
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let hex = digest.hex();
    assert!(
        location.starts_with(&format!(
            "https://regacct.blob.core.windows.test/reg/docker/registry/v2/blobs/sha256/{}/{hex}/data?se=",
            &hex[..2]
        )),
        "{location}"
    );
    for part in ["&sig=", "&sp=r", "&sr=b", "&sv="] {
        assert!(location.contains(part), "{location} lacks {part}");
    }
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("<a href=\"https://regacct.blob.core.windows.test/"),
        "{body}"
    );
    // HEAD is answered by the registry itself (no capture shows ACR redirecting HEAD).
    let r = c
        .head(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth("AWS", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // a blob that is not there is not redirected
    let missing = format!("sha256:{}", "0".repeat(64));
    let r = c
        .get(format!("{url}/v2/base/blobs/{missing}"))
        .basic_auth("AWS", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Following without Authorization: the blob.
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["server"]
            .to_str()
            .unwrap()
            .starts_with("Windows-Azure-Blob/1.0")
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    fleet.shutdown().await;
}

#[tokio::test]
async fn azure_storage_refuses_a_forwarded_authorization_with_the_bom_xml() {
    let (fleet, _d) = start(
        r#"{ kind = "acr", blob_redirect = "regacct.blob.core.windows.test" }"#,
        Clock::system(),
    )
    .await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    let h1 = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(fleet.ca_pem_path()).unwrap()).unwrap(),
        )
        .resolve(
            "regacct.blob.core.windows.test",
            fleet.host("reg.storage").unwrap().addr,
        )
        .http1_only()
        .no_proxy()
        .build()
        .unwrap();
    let r = h1
        .get(&location)
        .bearer_auth("some-registry-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert_eq!(r.headers()["content-length"], "298");
    assert!(r.headers().contains_key("x-ms-request-id"));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 298);
    assert_eq!(&body[..3], b"\xEF\xBB\xBF");
    let text = std::str::from_utf8(&body[3..]).unwrap();
    assert!(
        text.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>InvalidAuthenticationInfo</Code><Message>{AZURE_BAD_AUTH}\nRequestId:"
        )),
        "{text}"
    );

    // The journal says who sent Authorization to storage: this is how scenarios assert it.
    let storage: Vec<_> = fleet
        .journal()
        .all()
        .into_iter()
        .filter(|e| e.registry == "reg.storage")
        .collect();
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].auth.scheme, "bearer");
    assert_eq!(storage[0].status, 400);
    assert_eq!(storage[0].host, "regacct.blob.core.windows.test");
    fleet.shutdown().await;
}

#[tokio::test]
async fn storage_refuses_urls_it_did_not_sign_and_expired_ones() {
    let clock = Clock::manual(1_700_000_000);
    let (fleet, _d) = start(
        r#"{ kind = "acr", blob_redirect = "regacct.blob.core.windows.test" }"#,
        clock.clone(),
    )
    .await;
    let c = client(&fleet);
    let (digest, _) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    // someone else's path with this signature
    let forged = location.replace(&digest.hex()[..8], "00000000");
    let r = c.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>AuthenticationFailed</Code>")
    );
    // no signature at all
    let bare = location.split('?').next().unwrap().to_owned();
    assert_eq!(
        c.get(&bare).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // expired
    clock.advance(URL_LIFETIME + 1);
    assert_eq!(
        c.get(&location).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn ecr_blob_get_redirects_to_s3_which_refuses_a_second_auth_mechanism() {
    let clock = Clock::manual(1_700_000_000);
    let (fleet, _d) = start(
        r#"{ kind = "ecr", blob_redirect = "prod-us-east-2-starport-layer-bucket.s3.us-east-2.amazonaws.test" }"#,
        clock.clone(),
    )
    .await;
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let location = redirect_location(&fleet, &c, &digest).await;
    assert!(
        location.starts_with(
            "https://prod-us-east-2-starport-layer-bucket.s3.us-east-2.amazonaws.test/reg/sha256-"
        ),
        "{location}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "&X-Amz-Date=20231114T221320Z",
        "&X-Amz-Expires=",
        "&X-Amz-SignedHeaders=host",
        "&X-Amz-Signature=",
    ] {
        assert!(location.contains(part), "{location} lacks {part}");
    }
    // Forwarding the registry's Basic credentials: S3's 400 InvalidArgument.
    let r = c
        .get(&location)
        .basic_auth("AWS", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["server"], "AmazonS3");
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code><Message>{S3_ONE_AUTH}</Message><ArgumentName>Authorization</ArgumentName><ArgumentValue>Basic "
        )),
        "{text}"
    );
    // Without: the blob.
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    // Expired: 403 AccessDenied "Request has expired".
    clock.advance(URL_LIFETIME + 1);
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Message>Request has expired</Message>")
    );

    let schemes: Vec<(String, u16)> = fleet
        .journal()
        .all()
        .into_iter()
        .filter(|e| e.registry == "reg.storage")
        .map(|e| (e.auth.scheme, e.status))
        .collect();
    assert_eq!(
        schemes,
        [
            ("basic".to_owned(), 400),
            ("none".to_owned(), 200),
            ("none".to_owned(), 403)
        ]
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn without_blob_redirect_blobs_are_served_by_the_registry() {
    let (fleet, _d) = start(r#"{ kind = "ecr" }"#, Clock::system()).await;
    assert!(fleet.host("reg.storage").is_none());
    let c = client(&fleet);
    let (digest, bytes) = layer();
    let url = &fleet.host("reg").unwrap().url;
    let r = c
        .get(format!("{url}/v2/base/blobs/{digest}"))
        .basic_auth("AWS", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    fleet.shutdown().await;
}
