//! Cross-repository blob mounts need pull on the source (CNCF distribution adds the `from`
//! repository's pull to the request's access records). A caller without it:
//! - with a token of a profile modelled on distribution's token access controller (generic
//!   `bearer`, GitLab) gets what distribution answers: 401 `insufficient_scope` naming both
//!   scopes (`registry/auth/token/accesscontroller.go`, `Authorized`);
//! - with Basic on the data plane (ECR) or an ACR token gets the spec's fallback, an
//!   ordinary upload session (202).
//!
//! Either way the target does not get the blob, and reading it there is 404 `BLOB_UNKNOWN`.
//! A mount without `from` is a plain upload start (automatic content discovery is off by
//! default). With pull on the source the mount is 201.

use base64::Engine as _;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::acr::AcrOptions;
use fake_registry::profile::bearer::BearerOptions;
use fake_registry::profile::ecr::EcrOptions;
use fake_registry::profile::gitlab::{GitlabOptions, Project};
use fake_registry::{FakeRegistry, RegistryOptions, RunningRegistry};
use reqwest::StatusCode;
use serde_json::Value;

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";

fn principal(name: &str, username: &str, secret: &str, grants: &[(&str, &[&str])]) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::User,
        username: Some(username.into()),
        secret: secret.into(),
        grants: grants
            .iter()
            .map(|(r, a)| Grant {
                repositories: (*r).into(),
                actions: a.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect(),
        effective_from: None,
        expires_at: None,
    }
}

/// `mine` may pull and push `mine/**` only; `owner` may also pull `secret/**`.
fn directory(username_of: impl Fn(&str) -> String) -> Directory {
    Directory {
        principals: vec![
            principal(
                "mine",
                &username_of("mine"),
                "mine-S3cret",
                &[("mine/**", &["pull", "push"])],
            ),
            principal(
                "owner",
                &username_of("owner"),
                "owner-S3cret",
                &[("mine/**", &["pull", "push"]), ("secret/**", &["pull"])],
            ),
        ],
        anonymous: vec![],
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The seeded image's first layer: the secret blob.
fn secret_layer(img: &fixtures::Image) -> String {
    let manifest: Value = serde_json::from_slice(&img.manifests[0].bytes).unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_owned()
}

async fn bearer_registry() -> (RunningRegistry, String) {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[777])).unwrap();
    let reg = FakeRegistry::builder()
        .name("generic")
        .clock(Clock::system())
        .bearer(BearerOptions::new("registry.test"), directory(|n| n.into()))
        .seed("secret/app", "v1", img.clone())
        .start()
        .await
        .unwrap();
    (reg, secret_layer(&img))
}

async fn ecr_registry() -> (RunningRegistry, String) {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[777])).unwrap();
    let mut options = EcrOptions::new(ECR_HOST);
    options.repositories = vec!["mine/x".into(), "secret/app".into()];
    // ECR's user is always `AWS`; the password tells the principals apart.
    let reg = FakeRegistry::builder()
        .name("ecr")
        .clock(Clock::system())
        .ecr(options, directory(|_| "AWS".into()))
        .seed("secret/app", "v1", img.clone())
        .start()
        .await
        .unwrap();
    (reg, secret_layer(&img))
}

async fn token(reg: &RunningRegistry, who: &str, secret: &str, scopes: &[&str]) -> String {
    token_at(reg, "/token?service=registry.test", who, secret, scopes).await
}

/// A token from the profile's token endpoint (`path` with its `service`), by Basic.
async fn token_at(
    reg: &RunningRegistry,
    path: &str,
    who: &str,
    secret: &str,
    scopes: &[&str],
) -> String {
    let mut url = format!("{}{path}", reg.url());
    for s in scopes {
        url.push_str(&format!("&scope={s}"));
    }
    let r = reqwest::Client::new()
        .get(url)
        .header("Authorization", basic(who, secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().or(body["access_token"].as_str());
    format!("Bearer {}", token.unwrap())
}

async fn gitlab_registry() -> (RunningRegistry, String) {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[777])).unwrap();
    let options = GitlabOptions::new(vec![
        Project::new("mine/x", false),
        Project::new("secret/app", false),
    ]);
    let reg = FakeRegistry::builder()
        .name("gitlab")
        .clock(Clock::system())
        .gitlab(options, directory(|n| n.into()))
        .seed("secret/app", "v1", img.clone())
        .start()
        .await
        .unwrap();
    (reg, secret_layer(&img))
}

async fn acr_registry() -> (RunningRegistry, String) {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[777])).unwrap();
    let mut options = AcrOptions::new("myregistry.azurecr.io");
    options.storage_redirect = false;
    let reg = FakeRegistry::builder()
        .name("acr")
        .clock(Clock::system())
        .acr(options, directory(|n| n.into()))
        .seed("secret/app", "v1", img.clone())
        .start()
        .await
        .unwrap();
    (reg, secret_layer(&img))
}

/// distribution's answer to a mount whose token lacks pull on `from`: 401, the challenge
/// naming both scopes with `insufficient_scope`, the access records in the body.
async fn assert_insufficient_scope(r: reqwest::Response, realm: &str, service: &str, target: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "www-authenticate"),
        format!(
            "Bearer realm=\"{realm}\",service=\"{service}\",scope=\"repository:{target}:pull,push repository:secret/app:pull\",error=\"insufficient_scope\""
        )
    );
    assert!(r.headers().get("location").is_none());
    let item = |name: &str, action: &str| {
        format!(
            "{{\"Type\":\"repository\",\"Class\":\"\",\"Name\":\"{name}\",\"Action\":\"{action}\"}}"
        )
    };
    assert_eq!(
        r.text().await.unwrap(),
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{},{},{}]}}]}}\n",
            item(target, "pull"),
            item(target, "push"),
            item("secret/app", "pull")
        )
    );
}

/// HEAD and GET of the blob in `target` find nothing.
async fn assert_not_readable(reg: &RunningRegistry, auth: &str, target: &str, digest: &str) {
    assert_not_readable_as(reg, auth, target, digest, false).await;
}

/// `acr`: the registry answers with ACR's error shape (tests/captures/acr).
async fn assert_not_readable_as(
    reg: &RunningRegistry,
    auth: &str,
    target: &str,
    digest: &str,
    acr: bool,
) {
    let r = reqwest::Client::new()
        .head(format!("{}/v2/{target}/blobs/{digest}", reg.url()))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_blob_unknown_as(reg, auth, target, digest, acr).await;
}

/// POST a mount; returns the response.
async fn mount(
    reg: &RunningRegistry,
    auth: &str,
    target: &str,
    digest: &str,
    from: Option<&str>,
) -> reqwest::Response {
    let from = from.map(|f| format!("&from={f}")).unwrap_or_default();
    reqwest::Client::new()
        .post(format!(
            "{}/v2/{target}/blobs/uploads/?mount={digest}{from}",
            reg.url()
        ))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// 202, an ordinary upload session: `Location` of a session, `Range: 0-0`, an id, no body.
async fn assert_plain_upload_start(r: reqwest::Response, target: &str) {
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").to_owned();
    let id = header(&r, "docker-upload-uuid").to_owned();
    assert!(!id.is_empty());
    assert_eq!(location, format!("/v2/{target}/blobs/uploads/{id}"));
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(header(&r, "content-length"), "0");
    assert!(r.headers().get("docker-content-digest").is_none());
    assert_eq!(r.bytes().await.unwrap().len(), 0);
}

/// The blob is not in `target`: 404 `BLOB_UNKNOWN`, byte for byte.
async fn assert_blob_unknown(reg: &RunningRegistry, auth: &str, target: &str, digest: &str) {
    assert_blob_unknown_as(reg, auth, target, digest, false).await;
}

/// As [`assert_blob_unknown`]; `acr`: ACR's 74-byte body (no `detail`, `charset=utf-8`, a
/// trailing newline), as recorded in `tests/captures/acr/azure-sdk-js-delete-nonexistent-blob.toml`.
async fn assert_blob_unknown_as(
    reg: &RunningRegistry,
    auth: &str,
    target: &str,
    digest: &str,
    acr: bool,
) {
    let r = reqwest::Client::new()
        .get(format!("{}/v2/{target}/blobs/{digest}", reg.url()))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    if acr {
        assert_eq!(
            header(&r, "content-type"),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            r.text().await.unwrap(),
            "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\"}]}\n"
        );
        return;
    }
    assert_eq!(header(&r, "content-type"), "application/json");
    let expected = format!(
        "{{\"errors\":[{{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\",\"detail\":{{\"digest\":\"{digest}\"}}}}]}}"
    );
    assert_eq!(r.text().await.unwrap(), expected);
}

async fn assert_mounted(reg: &RunningRegistry, auth: &str, target: &str, digest: &str) {
    let r = mount(reg, auth, target, digest, Some("secret/app")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/{target}/blobs/{digest}")
    );
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "content-length"), "0");
    let r = reqwest::Client::new()
        .get(format!("{}/v2/{target}/blobs/{digest}", reg.url()))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-content-digest"), digest);
}

#[tokio::test]
async fn bearer_token_for_the_target_only_cannot_mount_a_secret_blob() {
    let (reg, d) = bearer_registry().await;
    // The token server drops the secret scope: the token holds mine/z only.
    let mine = token(
        &reg,
        "mine",
        "mine-S3cret",
        &["repository:mine/z:pull,push", "repository:secret/app:pull"],
    )
    .await;
    let realm = format!("{}/token", reg.url());
    assert_insufficient_scope(
        mount(&reg, &mine, "mine/z", &d, Some("secret/app")).await,
        &realm,
        "registry.test",
        "mine/z",
    )
    .await;
    assert_not_readable(&reg, &mine, "mine/z", &d).await;
    // No `from`: no access record for a source; automatic content discovery is off.
    assert_plain_upload_start(mount(&reg, &mine, "mine/z", &d, None).await, "mine/z").await;
    assert_not_readable(&reg, &mine, "mine/z", &d).await;

    // The journal says why the mount was refused, and the auth decision.
    let entries = reg.journal().since(0);
    let refused = entries
        .iter()
        .find(|e| e.status == 401 && e.method == "POST")
        .expect("the refused mount is journaled");
    assert_eq!(refused.auth.verdict.as_deref(), Some("insufficient-scope"));
    assert!(
        refused
            .notes
            .iter()
            .any(|n| n.contains("no pull on secret/app")),
        "{:?}",
        refused.notes
    );

    // With pull on the source, the mount is done.
    let owner = token(
        &reg,
        "owner",
        "owner-S3cret",
        &["repository:mine/z:pull,push", "repository:secret/app:pull"],
    )
    .await;
    assert_mounted(&reg, &owner, "mine/z", &d).await;
}

#[tokio::test]
async fn basic_principal_granted_mine_only_cannot_mount_a_secret_blob() {
    let (reg, d) = ecr_registry().await;
    let mine = basic("AWS", "mine-S3cret");
    assert_plain_upload_start(
        mount(&reg, &mine, "mine/x", &d, Some("secret/app")).await,
        "mine/x",
    )
    .await;
    assert_blob_unknown(&reg, &mine, "mine/x", &d).await;
    assert_plain_upload_start(mount(&reg, &mine, "mine/x", &d, None).await, "mine/x").await;
    assert_blob_unknown(&reg, &mine, "mine/x", &d).await;
    // The secret repository itself stays closed to `mine`.
    let r = reqwest::Client::new()
        .get(format!("{}/v2/secret/app/blobs/{d}", reg.url()))
        .header("Authorization", &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let owner = basic("AWS", "owner-S3cret");
    assert_mounted(&reg, &owner, "mine/x", &d).await;
}

#[tokio::test]
async fn automatic_content_discovery_mounts_only_from_pullable_repositories() {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[777])).unwrap();
    let d = secret_layer(&img);
    let reg = FakeRegistry::builder()
        .name("generic")
        .clock(Clock::system())
        .options(RegistryOptions {
            automatic_mount: true,
            ..RegistryOptions::default()
        })
        .bearer(BearerOptions::new("registry.test"), directory(|n| n.into()))
        .seed("secret/app", "v1", img)
        .start()
        .await
        .unwrap();
    let scopes = ["repository:mine/z:pull,push", "repository:secret/app:pull"];
    let mine = token(&reg, "mine", "mine-S3cret", &scopes).await;
    assert_plain_upload_start(mount(&reg, &mine, "mine/z", &d, None).await, "mine/z").await;
    assert_blob_unknown(&reg, &mine, "mine/z", &d).await;

    let owner = token(&reg, "owner", "owner-S3cret", &scopes).await;
    let r = mount(&reg, &owner, "mine/z", &d, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/mine/z/blobs/{d}"));
}

#[tokio::test]
async fn gitlab_token_for_the_target_only_cannot_mount_a_secret_blob() {
    let (reg, d) = gitlab_registry().await;
    let path = "/jwt/auth?service=container_registry";
    let scopes = ["repository:mine/x:pull,push", "repository:secret/app:pull"];
    let mine = token_at(&reg, path, "mine", "mine-S3cret", &scopes).await;
    let realm = format!("{}/jwt/auth", reg.url());
    assert_insufficient_scope(
        mount(&reg, &mine, "mine/x", &d, Some("secret/app")).await,
        &realm,
        "container_registry",
        "mine/x",
    )
    .await;
    assert_not_readable(&reg, &mine, "mine/x", &d).await;
    assert_plain_upload_start(mount(&reg, &mine, "mine/x", &d, None).await, "mine/x").await;
    assert_not_readable(&reg, &mine, "mine/x", &d).await;

    let owner = token_at(&reg, path, "owner", "owner-S3cret", &scopes).await;
    assert_mounted(&reg, &owner, "mine/x", &d).await;
}

#[tokio::test]
async fn acr_token_for_the_target_only_gets_an_upload_session_not_the_blob() {
    let (reg, d) = acr_registry().await;
    let path = "/oauth2/token?service=myregistry.azurecr.io";
    let scopes = ["repository:mine/x:pull,push", "repository:secret/app:pull"];
    let mine = token_at(&reg, path, "mine", "mine-S3cret", &scopes).await;
    // ACR's answer is not public: the spec's fallback (202, a plain upload session).
    assert_plain_upload_start(
        mount(&reg, &mine, "mine/x", &d, Some("secret/app")).await,
        "mine/x",
    )
    .await;
    assert_not_readable_as(&reg, &mine, "mine/x", &d, true).await;
    assert_plain_upload_start(mount(&reg, &mine, "mine/x", &d, None).await, "mine/x").await;
    assert_not_readable_as(&reg, &mine, "mine/x", &d, true).await;
    let notes: Vec<String> = reg
        .journal()
        .since(0)
        .iter()
        .flat_map(|e| e.notes.clone())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no pull access to secret/app")),
        "{notes:?}"
    );

    let owner = token_at(&reg, path, "owner", "owner-S3cret", &scopes).await;
    assert_mounted(&reg, &owner, "mine/x", &d).await;
}
