//! The GitLab profile on the wire (behaviours.md §3.3/§3.4): the registry's challenge, the
//! `/jwt/auth` token endpoint (GET only, `service=container_registry`, 403 / 401 / empty
//! access), GitLab's project path rules, the JWT it issues, and the nerdctl#3748 exchange.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_registry::auth::{Clock, Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::profile::Profile;
use fake_registry::profile::gitlab::{
    Gitlab, GitlabOptions, PROTECTED_PATH, PostVariant, Project, access_denied_message,
};
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{Value, json};

const PAT: &str = "glpat-x-S3cretToken";
const OUTSIDER_PAT: &str = "glpat-outsider-S3cret";
const DEPLOY: &str = "gldt-deploy-S3cret";

fn principal(
    name: &str,
    kind: PrincipalKind,
    user: &str,
    secret: &str,
    grants: &[(&str, &[&str])],
) -> Principal {
    Principal {
        name: name.into(),
        kind,
        username: Some(user.into()),
        secret: secret.into(),
        grants: grants
            .iter()
            .map(|(r, a)| Grant {
                repositories: (*r).into(),
                actions: a.iter().map(|x| (*x).to_owned()).collect(),
            })
            .collect(),
        effective_from: None,
        expires_at: None,
    }
}

fn directory() -> Directory {
    Directory {
        principals: vec![
            principal(
                "u",
                PrincipalKind::AccessToken,
                "u",
                PAT,
                &[("path/**", &["pull", "push"]), ("path", &["pull", "push"])],
            ),
            principal(
                "outsider",
                PrincipalKind::AccessToken,
                "outsider",
                OUTSIDER_PAT,
                &[],
            ),
            principal(
                "deployer",
                PrincipalKind::DeployToken,
                "gitlab+deploy-token-1",
                DEPLOY,
                &[("path/**", &["pull"])],
            ),
            principal(
                "root",
                PrincipalKind::AdminUser,
                "root",
                "root-password-S3cret",
                &[("**", &["*"]), ("registry:catalog", &["*"])],
            ),
        ],
        anonymous: vec![],
    }
}

fn projects() -> Vec<Project> {
    vec![
        Project::new("path/image", false),
        Project::new("group/public", true),
        Project::new("a/b/c/d/deep", false),
    ]
}

async fn start_with(options: GitlabOptions, clock: Clock) -> RunningRegistry {
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[300])).expect("fixture");
    FakeRegistry::builder()
        .name("gitlab")
        .clock(clock)
        .gitlab(options, directory())
        .seed("path/image", "latest", img.clone())
        .seed("group/public/app", "1.0", img.clone())
        .seed("a/b/c/d/deep/img", "1", img)
        .start()
        .await
        .expect("start")
}

async fn start() -> RunningRegistry {
    start_with(GitlabOptions::new(projects()), Clock::system()).await
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

fn hdr(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn jwt_auth(reg: &RunningRegistry, query: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}/jwt/auth?{query}", reg.url()));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("token request")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

async fn token_for(reg: &RunningRegistry, scope: &str, auth: Option<&str>) -> String {
    let r = jwt_auth(
        reg,
        &format!("service=container_registry&scope={}", urlencode(scope)),
        auth,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
        .replace('/', "%2F")
        .replace(',', "%2C")
}

#[rstest]
#[case::ping("/v2/", "", "null")]
#[case::manifest(
    "/v2/path/image/manifests/latest",
    ",scope=\"repository:path/image:pull\"",
    r#"[{"Type":"repository","Class":"","Name":"path/image","Action":"pull"}]"#
)]
#[case::catalog(
    "/v2/_catalog",
    ",scope=\"registry:catalog:*\"",
    r#"[{"Type":"registry","Class":"","Name":"catalog","Action":"*"}]"#
)]
#[tokio::test]
async fn registry_challenge_is_byte_exact(
    #[case] path: &str,
    #[case] scope: &str,
    #[case] detail: &str,
) {
    let reg = start().await;
    let r = reqwest::get(format!("{}{path}", reg.url())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate").as_deref(),
        Some(
            format!(
                "Bearer realm=\"{}/jwt/auth\",service=\"container_registry\"{scope}",
                reg.url()
            )
            .as_str()
        )
    );
    let body = r.text().await.unwrap();
    assert_eq!(
        body,
        format!(
            "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":{detail}}}]}}\n"
        )
    );
    if path == "/v2/_catalog" {
        // deckschrubber#26 observed Content-Length: 145
        assert_eq!(body.len(), 145);
    }
}

#[rstest]
#[case::empty(PostVariant::EmptyNotFound, None, "")]
#[case::html(
    PostVariant::Html404,
    Some("text/html; charset=utf-8"),
    "<!DOCTYPE html>"
)]
#[tokio::test]
async fn post_is_404(
    #[case] variant: PostVariant,
    #[case] content_type: Option<&str>,
    #[case] body_start: &str,
) {
    let mut options = GitlabOptions::new(projects());
    options.post_variant = variant;
    let reg = start_with(options, Clock::system()).await;
    // containerd's POST-first password grant (behaviours.md §3.4 step 1)
    let r = reqwest::Client::new()
        .post(format!("{}/jwt/auth", reg.url()))
        .form(&[
            ("scope", "repository:path/image:pull"),
            ("service", "container_registry"),
            ("client_id", "containerd-client"),
            ("grant_type", "password"),
            ("username", "u"),
            ("password", PAT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(hdr(&r, "content-type").as_deref(), content_type);
    let body = r.text().await.unwrap();
    assert!(body.starts_with(body_start), "{body}");
    if body_start.is_empty() {
        assert!(body.is_empty());
    }
    let e = reg.journal().all().pop().unwrap();
    assert_eq!(e.auth.verdict.as_deref(), Some("post-not-found"));
    assert!(!serde_json::to_string(&e).unwrap().contains(PAT));
}

#[rstest]
#[case::missing("scope=repository%3Apath%2Fimage%3Apull")]
#[case::wrong("service=registry.docker.io&scope=repository%3Apath%2Fimage%3Apull")]
#[tokio::test]
async fn service_must_be_container_registry(#[case] query: &str) {
    let reg = start().await;
    let r = jwt_auth(&reg, query, Some(&basic("u", PAT))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().is_empty());
}

#[rstest]
#[case::private("repository:path/image:pull")]
#[case::nonexistent("repository:nobody/nothing:pull")]
#[case::no_scope("")]
#[tokio::test]
async fn anonymous_without_access_is_403_denied(#[case] scope: &str) {
    let reg = start().await;
    let query = if scope.is_empty() {
        "service=container_registry".to_owned()
    } else {
        format!("service=container_registry&scope={}", urlencode(scope))
    };
    let r = jwt_auth(&reg, &query, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":[{"code":"DENIED","message":"access forbidden"}],"http_status":403}"#
    );
}

#[tokio::test]
async fn anonymous_pull_of_a_public_project() {
    let reg = start().await;
    let token = token_for(&reg, "repository:group/public/app:pull,push", None).await;
    let c = claims(&token);
    assert_eq!(c["access"][0]["actions"], json!(["pull"]));
    assert!(
        c.get("sub").is_none(),
        "anonymous tokens have no subject: {c}"
    );
    assert_eq!(c["auth_type"], Value::Null);
    let user = claims(c["user"].as_str().expect("nested user JWT"));
    assert_eq!(user["user_info"], Value::Null);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/group/public/app/manifests/1.0", reg.url()))
        .bearer_auth(&token)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_basic_credentials_get_gitlabs_401_text() {
    let reg = start().await;
    let r = jwt_auth(
        &reg,
        "service=container_registry&scope=repository%3Apath%2Fimage%3Apull",
        Some(&basic("u", "glpat-wrong")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors": [{"code": "UNAUTHORIZED", "message": access_denied_message(&reg.url())}]})
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("HTTP Basic: Access denied. ")
    );
}

#[tokio::test]
async fn member_without_access_gets_empty_access_then_insufficient_scope() {
    let reg = start().await;
    let token = token_for(
        &reg,
        "repository:path/image:pull",
        Some(&basic("outsider", OUTSIDER_PAT)),
    )
    .await;
    let c = claims(&token);
    assert_eq!(c["access"], json!([]));
    assert_eq!(c["sub"], "outsider");
    let r = reqwest::Client::new()
        .get(format!("{}/v2/path/image/manifests/latest", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"{}/jwt/auth\",service=\"container_registry\",scope=\"repository:path/image:pull\",error=\"insufficient_scope\"",
            reg.url()
        )
    );
    let token_entry = reg
        .journal()
        .all()
        .into_iter()
        .find(|e| e.path == "/jwt/auth")
        .unwrap();
    assert_eq!(token_entry.auth.verdict.as_deref(), Some("empty-access"));
}

/// `ContainerRegistry::Path`: the project is one of the three longest prefixes (≥ 2 segments).
#[rstest]
#[case::project_itself("path/image", true)]
#[case::image_below("path/image/sub", true)]
#[case::two_below("path/image/my/sub", true)]
#[case::three_below("path/image/a/b/c", false)]
#[case::deep_subgroups("a/b/c/d/deep/img", true)]
#[case::one_segment("path", false)]
#[case::unknown_project("other/image", false)]
#[tokio::test]
async fn nested_paths_follow_gitlabs_project_rules(#[case] image: &str, #[case] granted: bool) {
    let reg = start().await;
    let user = if image.starts_with("a/") { "root" } else { "u" };
    let pass = if user == "root" {
        "root-password-S3cret"
    } else {
        PAT
    };
    let token = token_for(
        &reg,
        &format!("repository:{image}:pull"),
        Some(&basic(user, pass)),
    )
    .await;
    let access = claims(&token)["access"].clone();
    assert_eq!(
        !access.as_array().unwrap().is_empty(),
        granted,
        "{image}: {access}"
    );
}

#[tokio::test]
async fn jwt_claims_are_gitlabs() {
    let clock = Clock::manual(1_750_000_000);
    let reg = start_with(GitlabOptions::new(projects()), clock.clone()).await;
    let token = token_for(
        &reg,
        "repository:path/image:pull,push",
        Some(&basic("u", PAT)),
    )
    .await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "JWT");
    // `JSONWebToken::RSAToken`: RS256 with a libtrust kid — base32 of the first 240 bits of
    // SHA-256 of the DER public key, 12 groups of 4 joined by `:`.
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().unwrap();
    let groups: Vec<&str> = kid.split(':').collect();
    assert_eq!(groups.len(), 12, "libtrust kid {kid}");
    assert!(
        groups.iter().all(|g| g.len() == 4
            && g.chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))),
        "libtrust kid {kid}"
    );
    assert_eq!(
        reg.journal().redactor.owner_of_kid(kid).as_deref(),
        Some("gitlab"),
        "the kid names this registry's key"
    );
    let c = claims(&token);
    assert_eq!(c["iss"], "gitlab-issuer");
    assert_eq!(c["aud"], "container_registry");
    assert_eq!(c["sub"], "u");
    assert_eq!(c["iat"], 1_750_000_000);
    assert_eq!(c["nbf"], 1_750_000_000 - 5);
    assert_eq!(c["exp"], 1_750_000_000 + 300);
    assert_eq!(c["auth_type"], "personal_access_token");
    assert_eq!(c["access"][0]["type"], "repository");
    assert_eq!(c["access"][0]["name"], "path/image");
    assert_eq!(c["access"][0]["actions"], json!(["pull", "push"]));
    assert_eq!(c["access"][0]["meta"]["project_path"], "path/image");
    assert!(c["access"][0]["meta"]["project_id"].is_number());
    assert!(c["access"][0]["meta"]["root_namespace_id"].is_number());
    assert!(uuid::Uuid::parse_str(c["jti"].as_str().unwrap()).is_ok());
    let user = claims(c["user"].as_str().unwrap());
    assert_eq!(user["user_info"]["username"], "u");
    assert_eq!(user["user_info"]["token_type"], "personal_access_token");

    // deploy tokens: no subject, deploy_token_id in user_info
    let token = token_for(
        &reg,
        "repository:path/image:pull",
        Some(&basic("gitlab+deploy-token-1", DEPLOY)),
    )
    .await;
    let c = claims(&token);
    assert!(c.get("sub").is_none());
    assert_eq!(c["auth_type"], "deploy_token");
    assert!(claims(c["user"].as_str().unwrap())["user_info"]["deploy_token_id"].is_number());

    // 5-minute expiry by the registry's clock
    let token = token_for(&reg, "repository:path/image:pull", Some(&basic("u", PAT))).await;
    let pull = |t: String| {
        let url = format!("{}/v2/path/image/manifests/latest", reg.url());
        async move {
            reqwest::Client::new()
                .head(url)
                .bearer_auth(t)
                .header(
                    "Accept",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(pull(token.clone()).await, StatusCode::OK);
    clock.advance(300);
    assert_eq!(pull(token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reg.journal().all().pop().unwrap().auth.verdict.as_deref(),
        Some("invalid-token")
    );
}

#[rstest]
#[case::admin("root", "root-password-S3cret", true)]
#[case::user("u", PAT, false)]
#[tokio::test]
async fn catalog_scope_is_for_admins_only(
    #[case] user: &str,
    #[case] pass: &str,
    #[case] granted: bool,
) {
    let reg = start().await;
    let token = token_for(&reg, "registry:catalog:*", Some(&basic(user, pass))).await;
    let r = reqwest::Client::new()
        .get(format!("{}/v2/_catalog", reg.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().is_success(), granted, "{}", r.status());
}

#[rstest]
#[case::all_scopes(false, 2)]
#[case::last_scope_only(true, 1)]
#[tokio::test]
async fn repeated_scopes_and_the_older_last_scope_only_mode(
    #[case] last_only: bool,
    #[case] granted: usize,
) {
    let mut options = GitlabOptions::new(projects());
    options.last_scope_only = last_only;
    let reg = start_with(options, Clock::system()).await;
    let r = jwt_auth(
        &reg,
        "service=container_registry&scope=repository%3Apath%2Fimage%3Apull&scope=repository%3Agroup%2Fpublic%2Fapp%3Apull",
        Some(&basic("u", PAT)),
    )
    .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let access = claims(&token)["access"].as_array().unwrap().len();
    assert_eq!(access, granted);
}

#[tokio::test]
async fn registry_disabled_is_404_unavailable() {
    let mut options = GitlabOptions::new(projects());
    options.registry_enabled = false;
    let reg = start_with(options, Clock::system()).await;
    let r = jwt_auth(
        &reg,
        "service=container_registry&scope=repository%3Apath%2Fimage%3Apull",
        Some(&basic("u", PAT)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":[{"code":"UNAVAILABLE","message":"registry not enabled"}],"http_status":404}"#
    );
}

/// behaviours.md §3.4: the nerdctl#3748 exchange, pull (works) and build (403).
#[tokio::test]
async fn nerdctl_3748_exchange() {
    let reg = start().await;
    let c = reqwest::Client::new();
    let manifest = format!("{}/v2/path/image/manifests/latest", reg.url());
    // 1. pull: challenge, POST 404, GET with Basic 200, HEAD with Bearer 200
    assert_eq!(
        c.head(&manifest).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = c
        .post(format!("{}/jwt/auth", reg.url()))
        .form(&[
            ("scope", "repository:path/image:pull"),
            ("service", "container_registry"),
            ("grant_type", "password"),
            ("username", "u"),
            ("password", PAT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let token = token_for(&reg, "repository:path/image:pull", Some(&basic("u", PAT))).await;
    let r = c
        .head(&manifest)
        .bearer_auth(&token)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // 2. build: buildctl misses the `host:443` credential key and asks anonymously → 403
    let r = jwt_auth(
        &reg,
        "scope=repository%3Apath%2Fimage%3Apull&service=container_registry",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let verdicts: Vec<String> = reg
        .journal()
        .all()
        .iter()
        .filter_map(|e| e.auth.verdict.clone())
        .collect();
    assert_eq!(
        verdicts,
        ["challenged", "post-not-found", "ok", "ok", "denied"]
    );
}

/// The separate-host variant: `registry.gitlab.test` challenges with `gitlab.test`'s realm, and
/// only requests addressed to `gitlab.test` reach `/jwt/auth` (routed by `Host`).
#[tokio::test]
async fn separate_realm_host() {
    let mut options = GitlabOptions::new(projects());
    options.realm_host = Some("gitlab.test".into());
    let reg = start_with(options.clone(), Clock::system()).await;
    let port = reg.addr().port();
    let client = reqwest::Client::builder()
        .resolve("gitlab.test", reg.addr())
        .resolve("registry.gitlab.test", reg.addr())
        .no_proxy()
        .build()
        .unwrap();
    let r = client
        .get(format!("http://registry.gitlab.test:{port}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hdr(&r, "www-authenticate").unwrap(),
        "Bearer realm=\"https://gitlab.test/jwt/auth\",service=\"container_registry\""
    );
    let query = "service=container_registry&scope=repository%3Apath%2Fimage%3Apull";
    let on_gitlab = client
        .get(format!("http://gitlab.test:{port}/jwt/auth?{query}"))
        .header("Authorization", basic("u", PAT))
        .send()
        .await
        .unwrap();
    assert_eq!(on_gitlab.status(), StatusCode::OK);
    let on_registry = client
        .get(format!(
            "http://registry.gitlab.test:{port}/jwt/auth?{query}"
        ))
        .header("Authorization", basic("u", PAT))
        .send()
        .await
        .unwrap();
    assert_eq!(on_registry.status(), StatusCode::NOT_FOUND);

    let issuer = std::sync::Arc::new(
        fake_registry::auth::TokenIssuer::generate("gitlab-issuer", Clock::system()).unwrap(),
    );
    let profile = Gitlab::new(
        options,
        directory(),
        issuer,
        &fake_registry::journal::Redactor::default(),
    );
    assert_eq!(profile.extra_hosts(), ["gitlab.test"]);
}

/// GitLab's container repository protection (behaviours.md §3.3 step 4): a push to a
/// protected path is 403 `DENIED` "Pushing to protected repository path forbidden"; pulls
/// and unprotected paths are unaffected; without rules (the default) nothing is protected.
#[tokio::test]
async fn push_to_a_protected_repository_path_is_forbidden() {
    let options = GitlabOptions {
        protected_paths: vec!["path/image".into()],
        ..GitlabOptions::new(projects())
    };
    let reg = start_with(options, Clock::system()).await;
    let query = format!(
        "service=container_registry&scope={}",
        urlencode("repository:path/image:pull,push")
    );
    let r = jwt_auth(&reg, &query, Some(&basic("u", PAT))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.unwrap(),
        format!(
            "{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"{PROTECTED_PATH}\"}}],\"http_status\":403}}"
        )
    );
    // Pull on the same path is fine.
    token_for(&reg, "repository:path/image:pull", Some(&basic("u", PAT))).await;

    // No rules: the same push gets a token.
    let reg = start_with(GitlabOptions::new(projects()), Clock::system()).await;
    token_for(
        &reg,
        "repository:path/image:pull,push",
        Some(&basic("u", PAT)),
    )
    .await;
}
