//! JWT attacks against every token-issuing profile, on the wire: `alg: none`, a token signed
//! by another key, an expired token, an escalated scope (payload edited), and a token of one
//! registry replayed at another (refused, and flagged by the leak detector). A wrong `aud`
//! under the right key cannot be minted over the wire; `auth::token` tests cover it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::journal::Journal;
use fake_registry::profile::acr::AcrOptions;
use fake_registry::profile::bearer::BearerOptions;
use fake_registry::profile::dockerhub::DockerhubOptions;
use fake_registry::profile::gitlab::{GitlabOptions, Project};
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::Value;
use std::sync::Arc;

const USER: &str = "alice";
const PASS: &str = "alice-S3cret-password";
const REPO: &str = "team/app";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bearer,
    Gitlab,
    Dockerhub,
    Acr,
}

fn directory(secret: &str) -> Directory {
    Directory {
        principals: vec![Principal {
            name: USER.into(),
            kind: PrincipalKind::User,
            username: Some(USER.into()),
            secret: secret.into(),
            grants: vec![Grant {
                repositories: REPO.into(),
                actions: vec!["pull".into()],
            }],
            effective_from: None,
            expires_at: None,
        }],
        anonymous: vec![],
    }
}

async fn start(kind: Kind, name: &str, clock: &Clock, journal: &Arc<Journal>) -> RunningRegistry {
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[64])).expect("fixture");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    // every registry has its own secret: a replayed token, not a shared password, is tested
    let dir = directory(&format!("{PASS}-{name}"));
    let b = FakeRegistry::builder()
        .name(name)
        .clock(clock.clone())
        .journal(journal.clone())
        .listen(addr)
        .seed(REPO, "v1", img);
    let b = match kind {
        Kind::Bearer => b.bearer(BearerOptions::new("registry.test"), dir),
        Kind::Gitlab => b.gitlab(GitlabOptions::new(vec![Project::new(REPO, false)]), dir),
        Kind::Dockerhub => b.dockerhub(
            DockerhubOptions {
                auth_base: Some(format!("http://localhost:{}", addr.port())),
                rate_limit: None,
                ..DockerhubOptions::default()
            },
            dir,
        ),
        Kind::Acr => b.acr(AcrOptions::new("myregistry.azurecr.io"), dir),
    };
    b.start().await.expect("start")
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

/// A pull token from the registry's own token endpoint, with its own credentials.
async fn token(kind: Kind, name: &str, reg: &RunningRegistry) -> String {
    let scope = format!("repository:{REPO}:pull");
    let (url, service) = match kind {
        Kind::Bearer => (format!("{}/token", reg.url()), "registry.test"),
        Kind::Gitlab => (format!("{}/jwt/auth", reg.url()), "container_registry"),
        Kind::Dockerhub => (
            format!("http://localhost:{}/token", reg.addr().port()),
            "registry.docker.io",
        ),
        Kind::Acr => (
            format!("{}/oauth2/token", reg.url()),
            "myregistry.azurecr.io",
        ),
    };
    let r = reqwest::Client::new()
        .get(url)
        .query(&[("service", service), ("scope", scope.as_str())])
        .header("Authorization", basic(USER, &format!("{PASS}-{name}")))
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), StatusCode::OK, "{kind:?}");
    let body: Value = r.json().await.unwrap();
    body.get("token")
        .or_else(|| body.get("access_token"))
        .and_then(Value::as_str)
        .expect("token")
        .to_owned()
}

async fn pull(reg: &RunningRegistry, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v2/{REPO}/manifests/v1", reg.url()))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn forge_alg_none(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("payload");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{payload}.")
}

fn escalate(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["access"] = serde_json::json!([{"type": "repository", "name": REPO, "actions": ["pull", "push", "delete"]}]);
    claims["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap() + 86_400);
    let edited = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{}.{}", parts[0], edited, parts[2])
}

#[rstest]
#[tokio::test]
async fn forged_and_expired_tokens_are_refused(
    #[values(Kind::Bearer, Kind::Gitlab, Kind::Dockerhub, Kind::Acr)] kind: Kind,
) {
    let clock = Clock::system();
    let journal = Arc::new(Journal::default());
    let reg = start(kind, "target", &clock, &journal).await;
    let good = token(kind, "target", &reg).await;
    assert_eq!(
        pull(&reg, &good).await.status(),
        StatusCode::OK,
        "{kind:?}: the real token works"
    );

    // another instance of the same profile: same issuer name and claims, another key
    let twin = start(kind, "twin", &clock, &journal).await;
    let foreign_key = token(kind, "twin", &twin).await;

    for (attack, forged) in [
        ("alg none", forge_alg_none(&good)),
        ("scope escalation", escalate(&good)),
        ("another key", foreign_key),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let r = pull(&reg, &forged).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{kind:?}: {attack}");
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            www.contains("error=\"invalid_token\""),
            "{kind:?}: {attack}: {www}"
        );
        let e = journal.all().pop().unwrap();
        assert_ne!(e.auth.verdict.as_deref(), Some("ok"), "{kind:?}: {attack}");
    }

    clock.advance(86_400 * 2);
    let r = pull(&reg, &good).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{kind:?}: expired");
}

/// A token of one registry replayed at another: refused there, and the journal says whose
/// token it was (by registry and subject, never the token).
#[rstest]
#[case::gitlab_to_dockerhub(Kind::Gitlab, Kind::Dockerhub)]
#[case::dockerhub_to_gitlab(Kind::Dockerhub, Kind::Gitlab)]
#[case::bearer_to_acr(Kind::Bearer, Kind::Acr)]
#[case::acr_to_bearer(Kind::Acr, Kind::Bearer)]
#[case::bearer_to_bearer(Kind::Bearer, Kind::Bearer)]
#[tokio::test]
async fn cross_registry_replay_is_refused_and_flagged(#[case] from: Kind, #[case] to: Kind) {
    let clock = Clock::system();
    let journal = Arc::new(Journal::default());
    let issuer = start(from, "issuer", &clock, &journal).await;
    let victim = start(to, "victim", &clock, &journal).await;
    let stolen = token(from, "issuer", &issuer).await;
    let r = pull(&victim, &stolen).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e = journal.all().pop().unwrap();
    assert_eq!(e.registry, "victim");
    let leak = e.leak.expect("flagged");
    assert!(
        leak.starts_with("token issued by registry issuer")
            && leak.ends_with("presented to victim"),
        "{leak}"
    );
    assert!(!leak.contains(&stolen));
    // the same token at its own registry is fine and not flagged
    assert_eq!(pull(&issuer, &stolen).await.status(), StatusCode::OK);
    assert!(journal.all().pop().unwrap().leak.is_none());
}
