//! The Docker Hub profile on the wire: the registry's challenge naming a separate token host,
//! anonymous tokens, `library/` defaulting, the `details` 401 of the token service, and the
//! pull rate limit (headers, 429 `TOOMANYREQUESTS`, HEAD not counted).
//!
//! The token host is reached as `localhost:PORT` and the registry as `127.0.0.1:PORT` (two
//! names for one loopback listener), so `Host` routing is exercised without DNS.

use base64::Engine as _;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::dockerhub::{
    ANONYMOUS_PULL_LIMIT, DockerhubOptions, PULL_LIMIT, RateLimit,
};
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{Value, json};

const PASS: &str = "dckr_pat_S3cret-value";
const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn directory() -> Directory {
    Directory {
        principals: vec![Principal {
            name: "hubuser".into(),
            kind: PrincipalKind::User,
            username: Some("hubuser".into()),
            secret: PASS.into(),
            grants: vec![Grant {
                repositories: "**".into(),
                actions: vec!["pull".into()],
            }],
            effective_from: None,
            expires_at: None,
        }],
        anonymous: vec![Grant {
            repositories: "library/*".into(),
            actions: vec!["pull".into()],
        }],
    }
}

/// Starts Hub with its token host at `http://localhost:<port>`: the port is only known after
/// binding, so the listener is bound first and handed to the builder by address.
async fn start(rate_limit: Option<RateLimit>, clock: Clock) -> RunningRegistry {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let options = DockerhubOptions {
        auth_base: Some(format!("http://localhost:{}", addr.port())),
        rate_limit,
        ..DockerhubOptions::default()
    };
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[128])).expect("fixture");
    FakeRegistry::builder()
        .name("dockerhub")
        .clock(clock)
        .listen(addr)
        .dockerhub(options, directory())
        .seed("library/alpine", "3.20", img.clone())
        .seed("someone/private", "1", img)
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

fn auth_url(reg: &RunningRegistry) -> String {
    format!("http://localhost:{}", reg.addr().port())
}

async fn token(reg: &RunningRegistry, scope: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{}/token", auth_url(reg)))
        .query(&[("service", "registry.docker.io"), ("scope", scope)]);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("token")
}

async fn token_text(reg: &RunningRegistry, scope: &str, auth: Option<&str>) -> String {
    let r = token(reg, scope, auth).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn manifest(
    reg: &RunningRegistry,
    method: reqwest::Method,
    repo: &str,
    tag: &str,
    token: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}/v2/{repo}/manifests/{tag}", reg.url()))
        .bearer_auth(token)
        .header("Accept", ACCEPT)
        .send()
        .await
        .unwrap()
}

fn hdr(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn access(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["access"].clone()
}

#[rstest]
#[case::ping("/v2/", "", "null")]
#[case::library(
    "/v2/library/ubuntu/manifests/latest",
    ",scope=\"repository:library/ubuntu:pull\"",
    r#"[{"Type":"repository","Class":"","Name":"library/ubuntu","Action":"pull"}]"#
)]
#[tokio::test]
async fn challenge_names_the_separate_token_host(
    #[case] path: &str,
    #[case] scope: &str,
    #[case] detail: &str,
) {
    let reg = start(None, Clock::system()).await;
    let r = reqwest::get(format!("{}{path}", reg.url())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"{}/token\",service=\"registry.docker.io\"{scope}",
            auth_url(&reg)
        )
    );
    assert_eq!(
        hdr(&r, "content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    let body = r.text().await.unwrap();
    assert_eq!(
        body,
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":{detail}}}]}}\n"
        )
    );
    if path.contains("ubuntu") {
        assert_eq!(
            body.len(),
            157,
            "distribution#2624 capture: Content-Length 157"
        );
    }
}

#[tokio::test]
async fn token_service_lives_only_on_the_auth_host() {
    let reg = start(None, Clock::system()).await;
    let on_registry = reqwest::get(format!(
        "{}/token?service=registry.docker.io&scope=repository:library/alpine:pull",
        reg.url()
    ))
    .await
    .unwrap();
    assert_eq!(on_registry.status(), StatusCode::NOT_FOUND);
    let on_auth = token(&reg, "repository:library/alpine:pull", None).await;
    assert_eq!(on_auth.status(), StatusCode::OK);
    let body: Value = on_auth.json().await.unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
}

#[rstest]
#[case::library_prefixed("library/alpine", "3.20", json!([{"type": "repository", "name": "library/alpine", "actions": ["pull"]}]), StatusCode::OK)]
#[case::unprefixed_scope("alpine", "3.20", json!([]), StatusCode::UNAUTHORIZED)]
#[case::private_anonymous("someone/private", "1", json!([]), StatusCode::UNAUTHORIZED)]
#[tokio::test]
async fn anonymous_tokens(
    #[case] repo: &str,
    #[case] tag: &str,
    #[case] want_access: Value,
    #[case] want: StatusCode,
) {
    let reg = start(None, Clock::system()).await;
    let t = token_text(&reg, &format!("repository:{repo}:pull"), None).await;
    assert_eq!(access(&t), want_access);
    let r = manifest(&reg, reqwest::Method::GET, repo, tag, &t).await;
    assert_eq!(r.status(), want);
}

/// `/v2/alpine/…` is `library/alpine` on the registry; the token must carry `library/alpine`.
#[tokio::test]
async fn library_defaulting_on_the_registry() {
    let reg = start(None, Clock::system()).await;
    let r = reqwest::get(format!("{}/v2/alpine/manifests/3.20", reg.url()))
        .await
        .unwrap();
    assert!(
        hdr(&r, "www-authenticate")
            .unwrap()
            .ends_with(",scope=\"repository:library/alpine:pull\"")
    );
    let t = token_text(&reg, "repository:library/alpine:pull", None).await;
    for repo in ["alpine", "library/alpine"] {
        let r = manifest(&reg, reqwest::Method::GET, repo, "3.20", &t).await;
        assert_eq!(r.status(), StatusCode::OK, "{repo}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/v2/alpine/tags/list", reg.url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["3.20"]));
    assert!(
        reg.journal()
            .all()
            .iter()
            .any(|e| e.notes.iter().any(|n| n.contains("library/ defaulting")))
    );
}

#[tokio::test]
async fn bad_credentials_get_the_details_body() {
    let reg = start(None, Clock::system()).await;
    let r = token(
        &reg,
        "repository:library/alpine:pull",
        Some(&basic("hubuser", "wrong")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"details":"incorrect username or password"}"#
    );
    let t = token_text(
        &reg,
        "repository:someone/private:pull",
        Some(&basic("hubuser", PASS)),
    )
    .await;
    assert_eq!(
        manifest(&reg, reqwest::Method::GET, "someone/private", "1", &t)
            .await
            .status(),
        StatusCode::OK
    );
}

#[rstest]
#[case::anonymous(None, 3, ANONYMOUS_PULL_LIMIT)]
#[case::authenticated(Some(("hubuser", PASS)), 4, PULL_LIMIT)]
#[tokio::test]
async fn pull_rate_limit(
    #[case] who: Option<(&str, &str)>,
    #[case] limit: u32,
    #[case] message: &str,
) {
    let clock = Clock::manual(1_760_000_000);
    let limits = RateLimit {
        anonymous: 3,
        authenticated: 4,
        window: 21_600,
        retry_after: Some(3600),
    };
    let reg = start(Some(limits), clock.clone()).await;
    let auth = who.map(|(u, p)| basic(u, p));
    let t = token_text(&reg, "repository:library/alpine:pull", auth.as_deref()).await;
    // HEAD is not counted but reports the headers
    let r = manifest(&reg, reqwest::Method::HEAD, "library/alpine", "3.20", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hdr(&r, "ratelimit-limit"), Some(format!("{limit};w=21600")));
    assert_eq!(
        hdr(&r, "ratelimit-remaining"),
        Some(format!("{limit};w=21600"))
    );
    for used in 1..=limit {
        let r = manifest(&reg, reqwest::Method::GET, "library/alpine", "3.20", &t).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            hdr(&r, "ratelimit-remaining"),
            Some(format!("{};w=21600", limit - used))
        );
    }
    let r = manifest(&reg, reqwest::Method::GET, "library/alpine", "3.20", &t).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hdr(&r, "retry-after").as_deref(), Some("3600"));
    assert_eq!(hdr(&r, "ratelimit-remaining"), Some("0;w=21600".into()));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]})
    );
    let entry = reg.journal().all().pop().unwrap();
    assert_eq!(entry.status, 429);
    assert_eq!(
        entry
            .response_headers
            .get("retry-after")
            .map(String::as_str),
        Some("3600")
    );
    // the window passes
    clock.advance(21_600);
    let t = token_text(&reg, "repository:library/alpine:pull", auth.as_deref()).await;
    assert_eq!(
        manifest(&reg, reqwest::Method::GET, "library/alpine", "3.20", &t)
            .await
            .status(),
        StatusCode::OK
    );
}
