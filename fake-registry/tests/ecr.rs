//! The ECR profile on the wire (behaviours.md §4.4).

use base64::Engine as _;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::ecr::{EXPIRED, EcrOptions};
use fake_registry::{FakeRegistry, RunningRegistry, media};
use reqwest::StatusCode;
use serde_json::Value;

const HOST: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";
const PASSWORD: &str = "eyJwYXlsb2FkIjoiZmFrZS1lY3ItcGFzc3dvcmQifQ==";

async fn ecr(clock: Clock) -> (RunningRegistry, fixtures::Image) {
    let index = fixtures::generate(
        &ImageSpec::multi(Format::Docker, &["linux/amd64", "linux/arm64"], &[300]).unwrap(),
    )
    .unwrap();
    let mut options = EcrOptions::new(HOST);
    options.repositories = vec!["openjdk".into(), "app".into()];
    let directory = Directory {
        principals: vec![Principal {
            name: "aws-token".into(),
            kind: PrincipalKind::AccessToken,
            username: Some("AWS".into()),
            secret: PASSWORD.into(),
            grants: vec![Grant {
                repositories: "**".into(),
                actions: vec!["*".into()],
            }],
            effective_from: None,
            expires_at: Some(clock.now() + 12 * 3600),
        }],
        anonymous: vec![],
    };
    let reg = FakeRegistry::builder()
        .name("ecr")
        .clock(clock)
        .ecr(options, directory)
        .seed("openjdk", "17", index.clone())
        .start()
        .await
        .unwrap();
    (reg, index)
}

fn aws() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{PASSWORD}"))
    )
}

#[tokio::test]
async fn unauthenticated_requests_get_ecrs_basic_challenge() {
    let (reg, _) = ecr(Clock::system()).await;
    for path in [
        "/v2/",
        "/v2/openjdk/manifests/17",
        "/v2/openjdk/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let r = reqwest::get(format!("{}{path}", reg.url())).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            format!("Basic realm=\"https://{HOST}/\",service=\"ecr.amazonaws.com\"").as_str()
        );
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "Not Authorized\n");
    }
}

#[tokio::test]
async fn the_realm_is_not_a_token_service() {
    let (reg, _) = ecr(Clock::system()).await;
    let r = reqwest::Client::new()
        .get(format!("{}/", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aws_basic_pulls_tag_and_digest_of_a_manifest_list() {
    let (reg, index) = ecr(Clock::system()).await;
    let c = reqwest::Client::new();
    for reference in ["17".to_owned(), index.digest().to_string()] {
        let r = c
            .get(format!("{}/v2/openjdk/manifests/{reference}", reg.url()))
            .header("Authorization", aws())
            .header("Accept", media::DOCKER_MANIFEST_LIST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{reference}");
        assert_eq!(
            r.headers()["docker-content-digest"],
            index.digest().to_string().as_str()
        );
    }
    let e = reg.journal().all();
    assert!(
        e.iter()
            .all(|e| e.auth.principal.as_deref() == Some("aws-token"))
    );
    assert!(!serde_json::to_string(&e).unwrap().contains(PASSWORD));
}

#[tokio::test]
async fn expired_token_is_403_denied() {
    let clock = Clock::system();
    let (reg, _) = ecr(clock.clone()).await;
    clock.advance(12 * 3600);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/openjdk/manifests/17", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED");
    assert_eq!(v["errors"][0]["message"], EXPIRED);
}

#[tokio::test]
async fn push_to_a_missing_repository_is_name_unknown() {
    let (reg, _) = ecr(Clock::system()).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/v2/not-created/blobs/uploads/", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "NAME_UNKNOWN");
    assert_eq!(
        v["errors"][0]["message"],
        "The repository with name 'not-created' does not exist in the registry with id '123456789012'"
    );
    let r = c
        .post(format!("{}/v2/app/blobs/uploads/", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn tag_lists_are_capped_at_1000_per_page() {
    let (reg, index) = ecr(Clock::system()).await;
    let c = reqwest::Client::new();
    let child = &index.manifests[0];
    for i in 0..1001 {
        let r = c
            .put(format!("{}/v2/openjdk/manifests/t{i:04}", reg.url()))
            .header("Authorization", aws())
            .header("Content-Type", child.media_type.as_str())
            .body(child.bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = c
        .get(format!("{}/v2/openjdk/tags/list?n=5000", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tags"].as_array().unwrap().len(), 1000);
}

/// A registry with ECR's defaults: no listed repositories, principals without `expires_at`.
async fn ecr_defaults(clock: Clock, options: EcrOptions) -> RunningRegistry {
    let index = fixtures::generate(&ImageSpec::single(Format::Docker, &[300])).unwrap();
    let directory = Directory {
        principals: vec![Principal {
            name: "aws-token".into(),
            kind: PrincipalKind::AccessToken,
            username: Some("AWS".into()),
            secret: PASSWORD.into(),
            grants: vec![Grant {
                repositories: "**".into(),
                actions: vec!["*".into()],
            }],
            effective_from: None,
            expires_at: None,
        }],
        anonymous: vec![],
    };
    FakeRegistry::builder()
        .name("ecr")
        .clock(clock)
        .ecr(options, directory)
        .seed("openjdk", "17", index)
        .start()
        .await
        .unwrap()
}

async fn start_upload(reg: &RunningRegistry, repository: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v2/{repository}/blobs/uploads/", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn by_default_a_never_created_repository_refuses_pushes() {
    let reg = ecr_defaults(Clock::system(), EcrOptions::new(HOST)).await;
    let r = start_upload(&reg, "never-created").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.unwrap(),
        "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"The repository with name 'never-created' does not exist in the registry with id '123456789012'\"}]}"
    );
    // A repository holding an image exists.
    assert_eq!(
        start_upload(&reg, "openjdk").await.status(),
        StatusCode::ACCEPTED
    );

    // The departure: every repository exists.
    let reg = ecr_defaults(
        Clock::system(),
        EcrOptions {
            any_repository: true,
            ..EcrOptions::new(HOST)
        },
    )
    .await;
    assert_eq!(
        start_upload(&reg, "never-created").await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn by_default_credentials_expire_after_12_hours() {
    let clock = Clock::manual(1_700_000_000);
    let reg = ecr_defaults(clock.clone(), EcrOptions::new(HOST)).await;
    let get = || {
        reqwest::Client::new()
            .get(format!("{}/v2/openjdk/manifests/17", reg.url()))
            .header("Authorization", aws())
            .send()
    };
    clock.advance(12 * 3600 - 1);
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    clock.advance(1);
    let r = get().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.unwrap(),
        format!("{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"{EXPIRED}\"}}]}}")
    );

    // The departure: credentials that never expire.
    let clock = Clock::manual(1_700_000_000);
    let reg = ecr_defaults(
        clock.clone(),
        EcrOptions {
            token_lifetime: None,
            ..EcrOptions::new(HOST)
        },
    )
    .await;
    clock.advance(10 * 365 * 24 * 3600);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/openjdk/manifests/17", reg.url()))
        .header("Authorization", aws())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
