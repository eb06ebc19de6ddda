//! The pull-through mirror on the wire (behaviours.md §2.3/§2.5): fetch on miss and cache,
//! `?ns=` and path-prefix layouts, the mirror's own Basic or Bearer auth, pass-through of the
//! upstream's challenge, pull-only, upstream errors as spec errors — and the leak detector
//! flagging upstream credentials or tokens presented to the mirror.
//!
//! Upstream and mirror share one journal, so the leak detector knows who owns what.

use base64::Engine as _;
use fake_registry::auth::{Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, Image, ImageSpec};
use fake_registry::journal::{Entry, Journal};
use fake_registry::profile::bearer::BearerOptions;
use fake_registry::profile::mirror::{
    Layout, MirrorAuth, MirrorOptions, OwnScheme, UpstreamOptions,
};
use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::Value;
use std::sync::Arc;

const UPSTREAM_PASS: &str = "upstream-S3cret-pass";
const MIRROR_PASS: &str = "mirror-S3cret-pass";
const ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

fn user(name: &str, username: &str, secret: &str, repos: &str, actions: &[&str]) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::User,
        username: Some(username.into()),
        secret: secret.into(),
        grants: vec![Grant {
            repositories: repos.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }],
        effective_from: None,
        expires_at: None,
    }
}

fn image() -> Image {
    let spec =
        ImageSpec::multi(Format::Oci, &["linux/amd64", "linux/arm64"], &[700, 300]).expect("spec");
    fixtures::generate(&spec).expect("fixture")
}

struct Pair {
    upstream: RunningRegistry,
    mirror: RunningRegistry,
    journal: Arc<Journal>,
    image: Image,
}

async fn pair(layout: Layout, auth: MirrorAuth, scheme: OwnScheme, upstream_pass: &str) -> Pair {
    let journal = Arc::new(Journal::default());
    let image = image();
    let upstream = FakeRegistry::builder()
        .name("upstream")
        .journal(journal.clone())
        .bearer(
            BearerOptions::new("private.test"),
            Directory {
                principals: vec![user("builder", "u", UPSTREAM_PASS, "team/**", &["pull"])],
                anonymous: vec![],
            },
        )
        .seed("team/app", "1.0", image.clone())
        .start()
        .await
        .expect("upstream");
    let options = MirrorOptions {
        layout,
        auth,
        own_scheme: scheme,
        upstreams: vec![UpstreamOptions {
            key: "private.test".into(),
            url: upstream.url(),
            username: Some("u".into()),
            password: Some(upstream_pass.into()),
        }],
        ..MirrorOptions::default()
    };
    let mirror = FakeRegistry::builder()
        .name("mirror")
        .journal(journal.clone())
        .mirror(
            options,
            Directory {
                // push rights too: refusing pushes is the mirror's doing, not a missing grant
                principals: vec![user("puller", "m", MIRROR_PASS, "**", &["pull", "push"])],
                anonymous: vec![],
            },
        )
        .start()
        .await
        .expect("mirror");
    Pair {
        upstream,
        mirror,
        journal,
        image,
    }
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

async fn get(url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url).header("Accept", ACCEPT);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("request")
}

fn of(entries: &[Entry], registry: &str) -> usize {
    entries.iter().filter(|e| e.registry == registry).count()
}

/// Pulls the whole image (index, every platform manifest, every blob) through the mirror.
async fn pull_all(p: &Pair, repo_path: &str, query: &str, auth: &str) {
    let base = p.mirror.url();
    let r = get(
        &format!("{base}/v2/{repo_path}/manifests/1.0{query}"),
        Some(auth),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(
        hdr(&r, "docker-content-digest"),
        Some(p.image.digest().to_string())
    );
    assert_eq!(r.bytes().await.unwrap(), p.image.top().bytes);
    for m in p.image.platform_manifests() {
        let r = get(
            &format!("{base}/v2/{repo_path}/manifests/{}{query}", m.digest),
            Some(auth),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap(), m.bytes);
    }
    for b in &p.image.blobs {
        let r = get(
            &format!("{base}/v2/{repo_path}/blobs/{}{query}", b.digest),
            Some(auth),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", b.digest);
        assert_eq!(r.bytes().await.unwrap(), b.bytes);
    }
}

#[rstest]
#[case::ns(Layout::Ns, "team/app", "?ns=private.test")]
#[case::ns_default_upstream(Layout::Ns, "team/app", "")]
#[case::path_prefix(Layout::PathPrefix, "private.test/team/app", "")]
#[tokio::test]
async fn fetches_on_miss_then_serves_from_cache(
    #[case] layout: Layout,
    #[case] repo_path: &str,
    #[case] query: &str,
) {
    let p = pair(layout, MirrorAuth::Own, OwnScheme::Basic, UPSTREAM_PASS).await;
    let auth = basic("m", MIRROR_PASS);
    pull_all(&p, repo_path, query, &auth).await;
    let first = p.journal.all();
    assert!(of(&first, "upstream") > 0);
    // the mirror did the upstream's token dance with its own upstream credentials
    let dance = first
        .iter()
        .find(|e| e.registry == "upstream" && e.path == "/token")
        .expect("token request at the upstream");
    assert_eq!(dance.auth.principal.as_deref(), Some("builder"));
    assert!(
        first
            .iter()
            .any(|e| e.registry == "upstream" && e.auth.verdict.as_deref() == Some("ok"))
    );

    // second pull: everything from the cache, the upstream is not contacted
    let mark = p.journal.mark();
    pull_all(&p, repo_path, query, &auth).await;
    let second = p.journal.since(mark);
    assert_eq!(of(&second, "upstream"), 0, "{second:#?}");
    assert!(
        second
            .iter()
            .all(|e| e.notes.iter().any(|n| n.contains("cache hit")))
    );
    // nobody presented anything that was not theirs
    assert!(p.journal.all().iter().all(|e| e.leak.is_none()));
    assert!(
        !serde_json::to_string(&p.journal.all())
            .unwrap()
            .contains(UPSTREAM_PASS)
    );
}

#[tokio::test]
async fn own_basic_challenge() {
    let p = pair(Layout::Ns, MirrorAuth::Own, OwnScheme::Basic, UPSTREAM_PASS).await;
    for auth in [None, Some(basic("m", "wrong"))] {
        let r = get(
            &format!(
                "{}/v2/team/app/manifests/1.0?ns=private.test",
                p.mirror.url()
            ),
            auth.as_deref(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            hdr(&r, "www-authenticate").as_deref(),
            Some("Basic realm=\"Registry Realm\"")
        );
        assert_eq!(
            r.text().await.unwrap(),
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":null}]}\n"
        );
    }
    assert_eq!(
        of(&p.journal.all(), "upstream"),
        0,
        "refused before any upstream request"
    );
}

#[tokio::test]
async fn own_bearer_token_service() {
    let p = pair(
        Layout::Ns,
        MirrorAuth::Own,
        OwnScheme::Bearer,
        UPSTREAM_PASS,
    )
    .await;
    let r = get(
        &format!(
            "{}/v2/team/app/manifests/1.0?ns=private.test",
            p.mirror.url()
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"{}/token\",service=\"mirror\",scope=\"repository:team/app:pull\"",
            p.mirror.url()
        )
    );
    let token: Value = reqwest::Client::new()
        .get(format!(
            "{}/token?service=mirror&scope=repository:team/app:pull",
            p.mirror.url()
        ))
        .header("Authorization", basic("m", MIRROR_PASS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    pull_all(&p, "team/app", "?ns=private.test", &bearer).await;
    assert!(p.journal.all().iter().all(|e| e.leak.is_none()));
}

/// buildkit#5939's NGINX cache: the mirror relays the upstream's challenge, the client goes
/// to the upstream's realm, and the upstream token it then presents to the mirror is a leak.
#[tokio::test]
async fn pass_through_relays_the_upstream_challenge() {
    let p = pair(
        Layout::Ns,
        MirrorAuth::PassThrough,
        OwnScheme::Basic,
        UPSTREAM_PASS,
    )
    .await;
    let manifest = format!(
        "{}/v2/team/app/manifests/1.0?ns=private.test",
        p.mirror.url()
    );
    let r = reqwest::Client::new()
        .head(&manifest)
        .header("Accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hdr(&r, "www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"{}/token\",service=\"private.test\",scope=\"repository:team/app:pull\"",
            p.upstream.url()
        )
    );
    // the body is the upstream's, byte for byte (GET shows it)
    let direct = get(
        &format!("{}/v2/team/app/manifests/1.0", p.upstream.url()),
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    let relayed = get(&manifest, None).await.text().await.unwrap();
    assert_eq!(relayed, direct);
    // the /v2/ ping is relayed too
    let r = get(&format!("{}/v2/", p.mirror.url()), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        hdr(&r, "www-authenticate")
            .unwrap()
            .contains("service=\"private.test\"")
    );

    // anonymous token from the upstream realm (buildkit found no credentials for the
    // mirror host): the private repository stays closed
    let anon: Value = get(
        &format!(
            "{}/token?service=private.test&scope=repository:team/app:pull",
            p.upstream.url()
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let r = get(
        &manifest,
        Some(&format!("Bearer {}", anon["token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        hdr(&r, "www-authenticate")
            .unwrap()
            .ends_with(",error=\"insufficient_scope\"")
    );

    // with the upstream credentials (auths["mirror:port"] workaround) it works — and the
    // journal flags the upstream's token arriving at the mirror
    let t: Value = get(
        &format!(
            "{}/token?service=private.test&scope=repository:team/app:pull",
            p.upstream.url()
        ),
        Some(&basic("u", UPSTREAM_PASS)),
    )
    .await
    .json()
    .await
    .unwrap();
    let mark = p.journal.mark();
    let r = get(
        &manifest,
        Some(&format!("Bearer {}", t["token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), p.image.top().bytes);
    let at_mirror: Vec<Entry> = p
        .journal
        .since(mark)
        .into_iter()
        .filter(|e| e.registry == "mirror")
        .collect();
    assert_eq!(
        at_mirror[0].leak.as_deref(),
        Some("token issued by registry upstream (sub builder) presented to mirror")
    );
    // the upstream saw the same token, which is its own: no leak there
    assert!(
        p.journal
            .since(mark)
            .iter()
            .filter(|e| e.registry == "upstream")
            .all(|e| e.leak.is_none())
    );
}

/// behaviours.md §2.5 (iii): upstream credentials must never reach the mirror.
#[rstest]
#[case::upstream_credentials_forwarded(
    "u",
    UPSTREAM_PASS,
    Some("credential of principal builder of registry upstream presented to mirror"),
    StatusCode::UNAUTHORIZED
)]
#[case::mirror_credentials("m", MIRROR_PASS, None, StatusCode::OK)]
#[tokio::test]
async fn leak_detector(
    #[case] user: &str,
    #[case] pass: &str,
    #[case] leak: Option<&str>,
    #[case] status: StatusCode,
) {
    let p = pair(Layout::Ns, MirrorAuth::Own, OwnScheme::Basic, UPSTREAM_PASS).await;
    let r = get(
        &format!(
            "{}/v2/team/app/manifests/1.0?ns=private.test",
            p.mirror.url()
        ),
        Some(&basic(user, pass)),
    )
    .await;
    assert_eq!(r.status(), status);
    let entries = p.journal.all();
    let first = entries.iter().find(|e| e.registry == "mirror").unwrap();
    assert_eq!(first.leak.as_deref(), leak);
    // the mirror's own upstream requests are never flagged
    assert!(
        entries
            .iter()
            .filter(|e| e.registry == "upstream")
            .all(|e| e.leak.is_none())
    );
    let text = serde_json::to_string(&entries).unwrap() + &p.journal.to_har(0).to_string();
    assert!(!text.contains(pass), "the secret itself is never recorded");
}

#[rstest]
#[case::push(
    "POST",
    "/v2/team/app/blobs/uploads/?ns=private.test",
    405,
    "UNSUPPORTED"
)]
#[case::unknown_ns("GET", "/v2/team/app/manifests/1.0?ns=other.test", 404, "NAME_UNKNOWN")]
#[case::unknown_prefix_in_ns_layout(
    "GET",
    "/v2/team/nothing/manifests/1.0?ns=private.test",
    404,
    "MANIFEST_UNKNOWN"
)]
#[case::missing_blob(
    "GET",
    "/v2/team/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000?ns=private.test",
    404,
    "BLOB_UNKNOWN"
)]
#[tokio::test]
async fn errors_are_spec_errors(
    #[case] method: &str,
    #[case] path: &str,
    #[case] status: u16,
    #[case] code: &str,
) {
    let p = pair(Layout::Ns, MirrorAuth::Own, OwnScheme::Basic, UPSTREAM_PASS).await;
    let r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", p.mirror.url()))
        .header("Authorization", basic("m", MIRROR_PASS))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["code"], code);
}

#[tokio::test]
async fn wrong_upstream_credentials_are_denied_not_unauthorized() {
    let p = pair(
        Layout::Ns,
        MirrorAuth::Own,
        OwnScheme::Basic,
        "not-the-upstream-password",
    )
    .await;
    let r = get(
        &format!(
            "{}/v2/team/app/manifests/1.0?ns=private.test",
            p.mirror.url()
        ),
        Some(&basic("m", MIRROR_PASS)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["code"],
        "DENIED"
    );
    drop(p.upstream);
}

/// regclient and containers/image send one `Accept` line per media type. The mirror must
/// forward all of them: here only the 2nd and 3rd lines allow what the upstream holds (a
/// Docker manifest list and Docker v2 manifests), and the pull succeeds byte for byte.
#[tokio::test]
async fn every_accept_line_reaches_the_upstream() {
    let journal = Arc::new(Journal::default());
    let spec =
        ImageSpec::multi(Format::Docker, &["linux/amd64", "linux/arm64"], &[400]).expect("spec");
    let image = fixtures::generate(&spec).expect("fixture");
    let upstream = FakeRegistry::builder()
        .name("upstream")
        .journal(journal.clone())
        .bearer(
            BearerOptions::new("private.test"),
            Directory {
                principals: vec![user("builder", "u", UPSTREAM_PASS, "team/**", &["pull"])],
                anonymous: vec![],
            },
        )
        .seed("team/app", "1.0", image.clone())
        .start()
        .await
        .expect("upstream");
    let mirror = FakeRegistry::builder()
        .name("mirror")
        .journal(journal.clone())
        .mirror(
            MirrorOptions {
                upstreams: vec![UpstreamOptions {
                    key: "private.test".into(),
                    url: upstream.url(),
                    username: Some("u".into()),
                    password: Some(UPSTREAM_PASS.into()),
                }],
                ..MirrorOptions::default()
            },
            Directory {
                principals: vec![user("puller", "m", MIRROR_PASS, "**", &["pull"])],
                anonymous: vec![],
            },
        )
        .start()
        .await
        .expect("mirror");
    let lines = [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ];
    let fetch = |reference: String| {
        let mut req = reqwest::Client::new()
            .get(format!(
                "{}/v2/team/app/manifests/{reference}?ns=private.test",
                mirror.url()
            ))
            .header("Authorization", basic("m", MIRROR_PASS));
        for line in lines {
            // `header` appends: three separate header lines on the wire.
            req = req.header("Accept", line);
        }
        req.send()
    };
    let list = image.top().clone();
    let child = image.manifests[0].clone();
    assert_eq!(
        list.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(
        child.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    for (reference, stored) in [
        ("1.0".to_owned(), &list),
        (child.digest.to_string(), &child),
    ] {
        let r = fetch(reference.clone()).await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{reference}");
        assert_eq!(
            hdr(&r, "content-type").as_deref(),
            Some(stored.media_type.as_str())
        );
        assert_eq!(
            hdr(&r, "docker-content-digest"),
            Some(stored.digest.to_string())
        );
        assert_eq!(r.bytes().await.unwrap(), stored.bytes, "{reference}");
    }
    // The upstream saw all three media types in the mirror's request.
    let upstream_gets: Vec<Entry> = journal
        .since(0)
        .into_iter()
        .filter(|e| e.registry == "upstream" && e.path.contains("/manifests/") && e.status == 200)
        .collect();
    assert!(!upstream_gets.is_empty());
    for e in &upstream_gets {
        let accept = serde_json::to_string(&e.request_headers).unwrap();
        for line in lines {
            assert!(accept.contains(line), "{line} missing from {accept}");
        }
    }
}

/// `ns` may name the upstream by its URL's host as well as by its key: regclient sends
/// `ns=registry-1.docker.io` where containerd sends `ns=docker.io`.
#[tokio::test]
async fn ns_names_the_upstream_by_key_or_by_its_url_host() {
    let p = pair(Layout::Ns, MirrorAuth::Own, OwnScheme::Basic, UPSTREAM_PASS).await;
    let upstream_host = p
        .upstream
        .url()
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/').to_owned())
        .unwrap();
    for ns in ["private.test", upstream_host.as_str()] {
        let url = format!("{}/v2/team/app/manifests/1.0?ns={ns}", p.mirror.url());
        let r = get(&url, Some(&basic("m", MIRROR_PASS))).await;
        assert_eq!(r.status(), StatusCode::OK, "ns={ns}");
    }
}
