//! The generic Bearer profile on the wire: challenges, the token endpoint (GET with Basic,
//! anonymous, OAuth2 POST password and refresh_token grants), token verification, reduced
//! scopes and insufficient_scope, expiry by the controllable clock, and journal redaction.

use base64::Engine as _;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::bearer::BearerOptions;
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use serde_json::Value;

const SECRET: &str = "pull-push-S3cret";

fn directory() -> Directory {
    Directory {
        principals: vec![
            Principal {
                name: "ci-bot".into(),
                kind: PrincipalKind::User,
                username: Some("ci".into()),
                secret: SECRET.into(),
                grants: vec![
                    Grant {
                        repositories: "team/**".into(),
                        actions: vec!["pull".into(), "push".into()],
                    },
                    Grant {
                        repositories: "readonly/*".into(),
                        actions: vec!["pull".into()],
                    },
                ],
                effective_from: None,
                expires_at: None,
            },
            Principal {
                name: "identity".into(),
                kind: PrincipalKind::RefreshToken,
                username: None,
                secret: "pre-minted-refresh-token".into(),
                grants: vec![Grant {
                    repositories: "team/**".into(),
                    actions: vec!["pull".into()],
                }],
                effective_from: None,
                expires_at: None,
            },
        ],
        anonymous: vec![Grant {
            repositories: "public/*".into(),
            actions: vec!["pull".into()],
        }],
    }
}

async fn start(clock: Clock) -> RunningRegistry {
    let img = fixtures::generate(&ImageSpec::single(Format::Oci, &[512])).expect("fixture");
    FakeRegistry::builder()
        .name("generic")
        .clock(clock)
        .bearer(BearerOptions::new("registry.test"), directory())
        .seed("team/app", "v1", img.clone())
        .seed("public/hello", "latest", img.clone())
        .seed("readonly/base", "1", img)
        .start()
        .await
        .expect("start")
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn www(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn token_get(reg: &RunningRegistry, scope: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{}/token", reg.url()))
        .query(&[("service", "registry.test"), ("scope", scope)]);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("token request")
}

#[tokio::test]
async fn challenge_names_realm_service_and_scope() {
    let reg = start(Clock::system()).await;
    let r = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&r),
        format!(
            "Bearer realm=\"{}/token\",service=\"registry.test\"",
            reg.url()
        )
    );
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let r = reqwest::get(format!("{}/v2/team/app/manifests/v1", reg.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&r),
        format!(
            "Bearer realm=\"{}/token\",service=\"registry.test\",scope=\"repository:team/app:pull\"",
            reg.url()
        )
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(body["errors"][0]["detail"][0]["Name"], "team/app");
}

#[tokio::test]
async fn get_with_basic_then_pull_with_the_token() {
    let reg = start(Clock::system()).await;
    let r = token_get(&reg, "repository:team/app:pull", Some(&basic("ci", SECRET))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));

    let r = reqwest::Client::new()
        .get(format!("{}/v2/team/app/manifests/v1", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let entries = reg.journal().all();
    let token_req = entries
        .iter()
        .find(|e| e.path == "/token")
        .expect("journaled");
    assert_eq!(token_req.auth.principal.as_deref(), Some("ci-bot"));
    assert_eq!(token_req.auth.scheme, "basic");
    let pull = entries
        .iter()
        .find(|e| e.path.ends_with("/manifests/v1"))
        .expect("journaled");
    assert_eq!(pull.auth.scheme, "bearer");
    assert_eq!(pull.auth.principal.as_deref(), Some("ci-bot"));
    assert_eq!(pull.auth.verdict.as_deref(), Some("ok"));
}

#[tokio::test]
async fn wrong_password_is_401_with_basic_challenge() {
    let reg = start(Clock::system()).await;
    let r = token_get(&reg, "repository:team/app:pull", Some(&basic("ci", "nope"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&r).starts_with("Basic realm="));
    let e = reg.journal().all().pop().unwrap();
    assert_eq!(e.auth.verdict.as_deref(), Some("bad-credentials"));
}

#[tokio::test]
async fn anonymous_token_pulls_public_but_not_private() {
    let reg = start(Clock::system()).await;
    let c = reqwest::Client::new();
    for (repo, scope, want) in [
        (
            "public/hello",
            "repository:public/hello:pull",
            StatusCode::OK,
        ),
        (
            "team/app",
            "repository:team/app:pull",
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let body: Value = token_get(&reg, scope, None).await.json().await.unwrap();
        let tag = if repo == "team/app" { "v1" } else { "latest" };
        let r = c
            .get(format!("{}/v2/{repo}/manifests/{tag}", reg.url()))
            .bearer_auth(body["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{repo}");
        if want == StatusCode::UNAUTHORIZED {
            assert!(
                www(&r).ends_with(",error=\"insufficient_scope\""),
                "{}",
                www(&r)
            );
        }
    }
}

#[tokio::test]
async fn reduced_scope_and_insufficient_scope_on_push() {
    let reg = start(Clock::system()).await;
    let r = token_get(
        &reg,
        "repository:readonly/base:pull,push",
        Some(&basic("ci", SECRET)),
    )
    .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // the token carries pull only (reduced scope): starting an upload is refused
    let r = reqwest::Client::new()
        .post(format!("{}/v2/readonly/base/blobs/uploads/", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&r),
        format!(
            "Bearer realm=\"{}/token\",service=\"registry.test\",scope=\"repository:readonly/base:pull,push\",error=\"insufficient_scope\"",
            reg.url()
        )
    );
}

#[tokio::test]
async fn post_password_grant_with_offline_token_then_refresh() {
    let reg = start(Clock::system()).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/token", reg.url()))
        .form(&[
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", SECRET),
            ("service", "registry.test"),
            ("scope", "repository:team/app:pull"),
            ("client_id", "regcompat-test"),
            ("access_type", "offline"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("offline token")
        .to_owned();

    let r = c
        .post(format!("{}/token", reg.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("service", "registry.test"),
            (
                "scope",
                "repository:team/app:pull repository:team/other:pull",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // a pre-minted refresh token (an identity token) works the same way
    let r = c
        .post(format!("{}/token", reg.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "pre-minted-refresh-token"),
            ("service", "registry.test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = c
        .post(format!("{}/token", reg.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "forged"),
            ("service", "registry.test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // nothing secret in the journal, in any form
    let text =
        serde_json::to_string(&reg.journal().all()).unwrap() + &reg.journal().to_har(0).to_string();
    for secret in [SECRET, refresh.as_str(), "pre-minted-refresh-token"] {
        assert!(!text.contains(secret), "journal leaks {secret}");
    }
    let entries = reg.journal().all();
    let grants: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.form.get("grant_type").map(String::as_str))
        .collect();
    assert_eq!(
        grants,
        [
            "password",
            "refresh_token",
            "refresh_token",
            "refresh_token"
        ]
    );
}

#[tokio::test]
async fn expired_token_is_refused_by_the_clock() {
    let clock = Clock::system();
    let reg = start(clock.clone()).await;
    let r = token_get(&reg, "repository:team/app:pull", Some(&basic("ci", SECRET))).await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(301);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/team/app/manifests/v1", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&r).ends_with(",error=\"invalid_token\""));
    assert_eq!(
        reg.journal().all().pop().unwrap().auth.verdict.as_deref(),
        Some("expired-token")
    );
}

#[tokio::test]
async fn token_of_another_registry_is_refused() {
    let a = start(Clock::system()).await;
    let b = start(Clock::system()).await;
    let r = token_get(&a, "repository:team/app:pull", Some(&basic("ci", SECRET))).await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!("{}/v2/team/app/manifests/v1", b.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.journal().all().pop().unwrap().auth.verdict.as_deref(),
        Some("foreign-token")
    );
}

#[tokio::test]
async fn unknown_service_and_grant_type_are_400() {
    let reg = start(Clock::system()).await;
    let r = reqwest::Client::new()
        .get(format!(
            "{}/token?service=other&scope=repository:team/app:pull",
            reg.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = reqwest::Client::new()
        .post(format!("{}/token", reg.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("service", "registry.test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

/// Issued tokens are recognised wherever a client puts them (a query parameter, another
/// header); `X-Registry-Auth` keeps only its non-secret fields; an `Authorization` value
/// without a scheme is never stored.
#[tokio::test]
async fn issued_tokens_and_registry_auth_never_reach_the_journal() {
    let reg = start(Clock::system()).await;
    let c = reqwest::Client::new();
    let r = token_get(&reg, "repository:team/app:pull", Some(&basic("ci", SECRET))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().expect("token").to_owned();
    let xra_password = "xra-Passw0rd-not-registered";
    let xra = base64::engine::general_purpose::URL_SAFE.encode(
        serde_json::json!({"username": "ci", "password": xra_password, "serveraddress": "registry.test"})
            .to_string(),
    );
    let r = c
        .get(format!(
            "{}/v2/team/app/tags/list?n=5&hint={token}",
            reg.url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("x-registry-auth", &xra)
        .header("user-agent", format!("client/1.0 (token {token})"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let schemeless = "NoSchemeS3cretValue-123";
    let r = c
        .get(format!("{}/v2/team/app/tags/list", reg.url()))
        .header("authorization", schemeless)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(format!("{}/v2/team/app/tags/list", reg.url()))
        .header("authorization", format!("{schemeless} extra"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let entries = reg.journal().all();
    let json = serde_json::to_string(&entries).unwrap();
    let har = reg.journal().to_har(0).to_string();
    for text in [&json, &har] {
        for secret in [
            token.as_str(),
            xra_password,
            xra.as_str(),
            schemeless,
            SECRET,
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let tagged = entries
        .iter()
        .find(|e| e.request_headers.contains_key("x-registry-auth"))
        .expect("journaled");
    assert_eq!(
        tagged.request_headers["x-registry-auth"],
        "[X-Registry-Auth password=[redacted] serveraddress=registry.test username=ci]"
    );
    assert!(
        tagged
            .query
            .as_deref()
            .is_some_and(|q| q.contains("hint=[token issued by generic (sub ci-bot)]")),
        "{:?}",
        tagged.query
    );
    let schemes: Vec<&str> = entries.iter().map(|e| e.auth.scheme.as_str()).collect();
    assert!(schemes.contains(&"(no scheme)"), "{schemes:?}");
    assert!(schemes.contains(&"(unknown scheme)"), "{schemes:?}");
}
