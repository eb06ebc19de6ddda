//! The ACR profile on the wire (behaviours.md §1.3), byte-exact where captures exist.

use base64::Engine as _;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::acr::{
    APP_NOT_REGISTERED, AUTH_REQUIRED, AcrOptions, NULL_GUID, SP_TOKEN_AS_PASSWORD,
};
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::Value;

const LOGIN: &str = "myregistry.azurecr.io";
const SP_ID: &str = "11111111-2222-3333-4444-555555555555";
const SP_SECRET: &str = "sp-client-S3cret~value";
const PUSH_ID: &str = "66666666-2222-3333-4444-555555555555";
const PUSH_SECRET: &str = "push-sp-S3cret~value";
const RT: &str = "pre-minted-acr-refresh-token-abc";
const AAD: &str = "aad-access-token-for-alice";

fn grant(repos: &str, actions: &[&str]) -> Grant {
    Grant {
        repositories: repos.into(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn principal(
    name: &str,
    kind: PrincipalKind,
    user: Option<&str>,
    secret: &str,
    grants: Vec<Grant>,
) -> Principal {
    Principal {
        name: name.into(),
        kind,
        username: user.map(str::to_owned),
        secret: secret.into(),
        grants,
        effective_from: None,
        expires_at: None,
    }
}

fn directory(clock: &Clock, propagation: i64) -> Directory {
    let mut pusher = principal(
        "sp-acrpush",
        PrincipalKind::ServicePrincipal,
        Some(PUSH_ID),
        PUSH_SECRET,
        vec![grant("**", &["pull", "push"])],
    );
    pusher.effective_from = Some(clock.now() + propagation);
    Directory {
        principals: vec![
            principal(
                "sp-acrpull",
                PrincipalKind::ServicePrincipal,
                Some(SP_ID),
                SP_SECRET,
                vec![grant("**", &["pull"])],
            ),
            pusher,
            principal(
                "identity",
                PrincipalKind::RefreshToken,
                None,
                RT,
                vec![grant("**", &["pull"])],
            ),
            principal(
                "alice",
                PrincipalKind::User,
                Some("alice@contoso.com"),
                AAD,
                vec![grant("**", &["pull", "push"])],
            ),
        ],
        anonymous: vec![],
    }
}

async fn acr(clock: Clock, propagation: i64) -> RunningRegistry {
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[256])).expect("fixture");
    FakeRegistry::builder()
        .name("acr")
        .clock(clock.clone())
        .acr(AcrOptions::new(LOGIN), directory(&clock, propagation))
        .seed("images/test-run-image", "latest", img.clone())
        .seed("base", "latest", img)
        .start()
        .await
        .expect("start")
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

fn hdr(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(" | ")
}

async fn token_get(reg: &RunningRegistry, query: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}/oauth2/token?{query}", reg.url()));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("token request")
}

async fn token_post(reg: &RunningRegistry, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/oauth2/token", reg.url()))
        .form(form)
        .send()
        .await
        .expect("token request")
}

#[tokio::test]
async fn ping_challenge_is_byte_exact() {
    let reg = acr(Clock::system(), 0).await;
    let r = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate"),
        "Bearer realm=\"https://myregistry.azurecr.io/oauth2/token\",service=\"myregistry.azurecr.io\""
    );
    assert_eq!(hdr(&r, "content-type"), "application/json; charset=utf-8");
    assert_eq!(hdr(&r, "docker-distribution-api-version"), "registry/2.0");
    assert_eq!(
        hdr(&r, "access-control-expose-headers"),
        "Docker-Content-Digest | WWW-Authenticate | Link | X-Ms-Correlation-Request-Id"
    );
    assert_eq!(hdr(&r, "x-ms-correlation-request-id").len(), 36);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 149, "the capture's Content-Length");
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"{AUTH_REQUIRED}\",\"detail\":null}}]}}\n"
        )
    );
}

#[rstest]
#[case("/v2/base/manifests/latest", "repository:base:pull", 198)]
#[case("/v2/_catalog", "registry:catalog:*", 0)]
#[tokio::test]
async fn scoped_challenges(#[case] path: &str, #[case] scope: &str, #[case] body_len: usize) {
    let reg = acr(Clock::system(), 0).await;
    let r = reqwest::get(format!("{}{path}", reg.url())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate"),
        format!(
            "Bearer realm=\"https://{LOGIN}/oauth2/token\",service=\"{LOGIN}\",scope=\"{scope}\""
        )
    );
    let body = r.bytes().await.unwrap();
    if body_len > 0 {
        assert_eq!(body.len(), body_len, "jib#2784 capture: Total 198 bytes");
    }
    let (kind, name, action) = {
        let mut it = scope.splitn(3, ':');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    // Byte for byte, in ACR's key order `Type`, `Name`, `Action` (not sorted).
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"{AUTH_REQUIRED}\",\"detail\":[{{\"Type\":\"{kind}\",\"Name\":\"{name}\",\"Action\":\"{action}\"}}]}}]}}\n"
        )
    );
}

#[tokio::test]
async fn sp_basic_token_get_then_pull() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_get(
        &reg,
        &format!("account={SP_ID}&scope=repository:images/test-run-image:pull&service={LOGIN}"),
        Some(&basic(SP_ID, SP_SECRET)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("token").is_none(), "ACR answers access_token only");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let r = reqwest::Client::new()
        .head(format!(
            "{}/v2/images/test-run-image/manifests/latest",
            reg.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let e = reg.journal().all();
    assert_eq!(e[0].auth.principal.as_deref(), Some("sp-acrpull"));
    assert_eq!(e[1].auth.principal.as_deref(), Some("sp-acrpull"));
}

#[tokio::test]
async fn identity_token_is_a_refresh_token_grant() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_post(
        &reg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", RT),
            ("service", LOGIN),
            ("scope", "repository:images/test-run-image:pull"),
            ("client_id", "docker"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v2/images/test-run-image/manifests/latest",
            reg.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let e = &reg.journal().all()[0];
    assert_eq!(
        e.form.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        e.form.get("refresh_token").map(String::as_str),
        Some("[secret of identity]")
    );
    assert_eq!(e.auth.principal.as_deref(), Some("identity"));
}

#[tokio::test]
async fn identity_token_as_a_password_is_refused_with_acrs_message() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_get(
        &reg,
        &format!("scope=repository:base:pull&service={LOGIN}"),
        Some(&basic(SP_ID, RT)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["message"], SP_TOKEN_AS_PASSWORD);
}

#[tokio::test]
async fn null_guid_login_returns_a_refresh_token_usable_as_identity_token() {
    let reg = acr(Clock::system(), 0).await;
    // docker login: GET with Basic(null GUID, refresh token) and offline_token=true
    let r = token_get(
        &reg,
        &format!("account={NULL_GUID}&client_id=docker&offline_token=true&service={LOGIN}"),
        Some(&basic(NULL_GUID, RT)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let rt = v["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let r = token_post(
        &reg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("service", LOGIN),
            ("scope", "repository:base:pull"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = serde_json::to_string(&reg.journal().all()).unwrap();
    assert!(!text.contains(&rt), "minted refresh tokens are redacted");
    assert!(!text.contains(RT));
}

#[tokio::test]
async fn password_grant_is_400() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_post(
        &reg,
        &[
            ("grant_type", "password"),
            ("username", SP_ID),
            ("password", SP_SECRET),
            ("service", LOGIN),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reg.journal().all()[0]
            .form
            .get("password")
            .map(String::as_str),
        Some("[secret of sp-acrpull]")
    );
}

#[tokio::test]
async fn anonymous_and_wrong_basic_on_the_token_endpoint() {
    let reg = acr(Clock::system(), 0).await;
    for auth in [None, Some(basic(SP_ID, "wrong"))] {
        let r = token_get(
            &reg,
            &format!("scope=repository:base:pull&service={LOGIN}"),
            auth.as_deref(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(hdr(&r, "content-type"), "application/json; charset=utf-8");
        // behaviours.md §1.4 step 2: code then message, no `detail`.
        assert_eq!(
            r.text().await.unwrap(),
            format!(
                "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"{AUTH_REQUIRED}\"}}]}}\n"
            )
        );
    }
}

/// An app id AAD does not know (GUID-shaped, no such service principal): Azure/acr#366's
/// `unauthorized: Application not registered with AAD.`
#[tokio::test]
async fn unknown_service_principal_is_not_registered_with_aad() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_get(
        &reg,
        &format!("scope=repository:base:pull&service={LOGIN}"),
        Some(&basic("99999999-8888-7777-6666-555555555555", "whatever")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hdr(&r, "content-type"), "application/json; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"{APP_NOT_REGISTERED}\"}}]}}\n"
        )
    );
    assert_eq!(
        reg.journal().all()[0].auth.verdict.as_deref(),
        Some("unknown-application")
    );
}

/// A pre-minted identity token with `expires_at` stops working at that time.
#[tokio::test]
async fn identity_tokens_expire() {
    let clock = Clock::manual(1_700_000_000);
    let mut directory = directory(&clock, 0);
    for p in &mut directory.principals {
        if p.name == "identity" {
            p.expires_at = Some(clock.now() + 3600);
        }
    }
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[256])).expect("fixture");
    let reg = FakeRegistry::builder()
        .name("acr")
        .clock(clock.clone())
        .acr(AcrOptions::new(LOGIN), directory)
        .seed("base", "latest", img)
        .start()
        .await
        .expect("start");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", RT),
        ("service", LOGIN),
        ("scope", "repository:base:pull"),
    ];
    assert_eq!(token_post(&reg, &form).await.status(), StatusCode::OK);
    clock.advance(3600);
    let r = token_post(&reg, &form).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text().await.unwrap(),
        format!("{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"{AUTH_REQUIRED}\"}}]}}\n")
    );
    // As a null-GUID password too.
    let r = token_get(
        &reg,
        &format!("scope=repository:base:pull&service={LOGIN}"),
        Some(&basic(NULL_GUID, RT)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_on_the_data_plane() {
    let reg = acr(Clock::system(), 0).await;
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{}/v2/base/manifests/latest", reg.url()))
        .header("Authorization", basic(SP_ID, SP_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/v2/base/manifests/latest", reg.url()))
        .header("Authorization", basic(SP_ID, "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate"),
        "Basic realm=\"Azure Container Registry\""
    );
}

#[tokio::test]
async fn acrpull_cannot_push_insufficient_scope() {
    let reg = acr(Clock::system(), 0).await;
    let r = token_get(
        &reg,
        &format!("scope=repository:base:pull,push&service={LOGIN}"),
        Some(&basic(SP_ID, SP_SECRET)),
    )
    .await;
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .post(format!("{}/v2/base/blobs/uploads/", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        hdr(&r, "www-authenticate")
            .ends_with("scope=\"repository:base:pull,push\",error=\"insufficient_scope\"")
    );
}

#[tokio::test]
async fn new_role_assignment_takes_effect_after_the_propagation_delay() {
    let clock = Clock::system();
    let reg = acr(clock.clone(), 60).await;
    let push = |reg: &RunningRegistry| {
        let url = reg.url();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v2/fresh/blobs/uploads/"))
                .header("Authorization", basic(PUSH_ID, PUSH_SECRET))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(push(&reg).await, StatusCode::UNAUTHORIZED);
    clock.advance(61);
    assert_eq!(push(&reg).await, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn exchange_turns_an_aad_token_into_a_refresh_token() {
    let reg = acr(Clock::system(), 0).await;
    let r = reqwest::Client::new()
        .post(format!("{}/oauth2/exchange", reg.url()))
        .form(&[
            ("grant_type", "access_token"),
            ("service", LOGIN),
            ("tenant", "t"),
            ("access_token", AAD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rt = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // a refresh token is not an access token
    let r = reqwest::Client::new()
        .get(format!("{}/v2/base/manifests/latest", reg.url()))
        .bearer_auth(&rt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = token_post(
        &reg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("service", LOGIN),
            ("scope", "repository:base:pull"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        reg.journal()
            .all()
            .last()
            .unwrap()
            .auth
            .principal
            .as_deref(),
        Some("alice")
    );
}

/// Minted refresh tokens are recognised by shape and signing key, not stored one by one: the
/// redactor's store does not grow with the tokens a run mints, and each is still redacted.
#[test]
fn minting_many_refresh_tokens_keeps_the_redactor_bounded() {
    use fake_registry::auth::TokenIssuer;
    use fake_registry::journal::Redactor;
    use fake_registry::profile::acr::Acr;
    use std::sync::Arc;
    let clock = Clock::system();
    let redactor = Arc::new(Redactor::default());
    let issuer =
        Arc::new(TokenIssuer::generate("Azure Container Registry", clock.clone()).unwrap());
    redactor.claim_issuer(issuer.kid(), "acr");
    let dir = directory(&clock, 0);
    let acr = Acr::new(
        AcrOptions::new(LOGIN),
        dir.clone(),
        issuer,
        redactor.clone(),
    );
    let before = redactor.stored_secrets();
    let p = &dir.principals[0];
    let mut first = String::new();
    let mut last = String::new();
    for i in 0..50_000 {
        let t = acr.mint_refresh_token(p).expect("mint");
        if i == 0 {
            first = t.clone();
        }
        last = t;
    }
    assert_eq!(redactor.stored_secrets(), before);
    for t in [&first, &last] {
        let out = redactor.redact(&format!("q=1&x={t}&y=2"));
        assert!(!out.contains(t.as_str()));
        assert!(out.contains("[token issued by acr (sub "), "{out}");
    }
}
