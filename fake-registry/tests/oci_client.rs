//! A real client against every profile: the `oci-client` crate (rustls, no native-tls) pulls
//! a seeded image and pushes a new one through bearer, GitLab, Docker Hub, ECR and the
//! mirror, doing each profile's auth dance itself. Plain HTTP on loopback; token realms on
//! the registry's own `127.0.0.1:PORT`, except Docker Hub's at `localhost:PORT`.
//! (ACR is left out: its realm is always `https://<login server>`, unreachable without the
//! fleet's name mapping.)

use fake_registry::auth::{Directory, Grant, Principal, PrincipalKind};
use fake_registry::fixtures::{self, Format, Image, ImageSpec};
use fake_registry::journal::Journal;
use fake_registry::profile::bearer::BearerOptions;
use fake_registry::profile::dockerhub::DockerhubOptions;
use fake_registry::profile::ecr::EcrOptions;
use fake_registry::profile::gitlab::{GitlabOptions, Project};
use fake_registry::profile::mirror::{Layout, MirrorOptions, UpstreamOptions};
use fake_registry::{FakeRegistry, FakeRegistryBuilder, RunningRegistry};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rstest::rstest;
use std::sync::Arc;

const USER: &str = "ci";
const PASS: &str = "ci-S3cret-password";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bearer,
    Gitlab,
    Dockerhub,
    Ecr,
}

fn install_crypto() {
    // oci-client runs reqwest 0.13 with `rustls-no-provider`: the process picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client() -> Client {
    install_crypto();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
}

fn directory(username: &str, grants: &[(&str, &[&str])]) -> Directory {
    Directory {
        principals: vec![Principal {
            name: USER.into(),
            kind: PrincipalKind::User,
            username: Some(username.into()),
            secret: PASS.into(),
            grants: grants
                .iter()
                .map(|(r, a)| Grant {
                    repositories: (*r).into(),
                    actions: a.iter().map(|x| (*x).to_owned()).collect(),
                })
                .collect(),
            effective_from: None,
            expires_at: None,
        }],
        anonymous: vec![],
    }
}

fn image() -> Image {
    fixtures::generate(&ImageSpec::single(Format::Oci, &[2048, 512]).with_seed(7)).expect("fixture")
}

fn free_addr() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    probe.local_addr().expect("addr")
}

/// (builder, seeded repository, repository to push to, username)
fn profile(
    kind: Kind,
    addr: std::net::SocketAddr,
) -> (
    FakeRegistryBuilder,
    &'static str,
    &'static str,
    &'static str,
) {
    let rw: &[&str] = &["pull", "push"];
    let b = FakeRegistry::builder().name("target").listen(addr);
    match kind {
        Kind::Bearer => (
            b.bearer(
                BearerOptions::new("registry.test"),
                directory(USER, &[("team/**", rw)]),
            ),
            "team/app",
            "team/pushed",
            USER,
        ),
        Kind::Gitlab => (
            b.gitlab(
                GitlabOptions::new(vec![Project::new("group/project", false)]),
                directory(USER, &[("group/project/**", rw), ("group/project", rw)]),
            ),
            "group/project/app",
            "group/project/pushed",
            USER,
        ),
        Kind::Dockerhub => (
            b.dockerhub(
                DockerhubOptions {
                    auth_base: Some(format!("http://localhost:{}", addr.port())),
                    ..DockerhubOptions::default()
                },
                directory(USER, &[("**", rw)]),
            ),
            "library/alpine",
            "ci/pushed",
            USER,
        ),
        Kind::Ecr => (
            b.ecr(
                EcrOptions {
                    repositories: vec!["team/pushed".into()],
                    ..EcrOptions::new("123456789012.dkr.ecr.us-east-2.amazonaws.com")
                },
                directory("AWS", &[("**", rw)]),
            ),
            "team/app",
            "team/pushed",
            "AWS",
        ),
    }
}

async fn pull_and_check(client: &Client, reference: &str, auth: &RegistryAuth, img: &Image) {
    let reference: Reference = reference.parse().expect("reference");
    let pulled = client
        .pull(&reference, auth, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE])
        .await
        .expect("pull");
    assert_eq!(
        pulled.digest.as_deref(),
        Some(img.digest().to_string().as_str())
    );
    let layer_blobs: Vec<&[u8]> = img
        .blobs
        .iter()
        .filter(|b| b.media_type == IMAGE_LAYER_GZIP_MEDIA_TYPE)
        .map(|b| b.bytes.as_ref())
        .collect();
    let pulled_layers: Vec<&[u8]> = pulled.layers.iter().map(|l| l.data.as_ref()).collect();
    assert_eq!(pulled_layers, layer_blobs);
}

async fn push_and_pull_back(client: &Client, reference: &str, auth: &RegistryAuth) {
    let reference: Reference = reference.parse().expect("reference");
    let layers = vec![ImageLayer::oci_v1_gzip(
        b"pushed by oci-client".to_vec(),
        None,
    )];
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    client
        .push(&reference, &layers, config, auth, None)
        .await
        .expect("push");
    let pulled = client
        .pull(&reference, auth, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE])
        .await
        .expect("pull back");
    assert_eq!(pulled.layers[0].data.as_ref(), b"pushed by oci-client");
}

#[rstest]
#[tokio::test]
async fn pull_and_push_through_each_profile(
    #[values(Kind::Bearer, Kind::Gitlab, Kind::Dockerhub, Kind::Ecr)] kind: Kind,
) {
    let addr = free_addr();
    let img = image();
    let (builder, seeded, pushed, username) = profile(kind, addr);
    let reg = builder
        .seed(seeded, "1.0", img.clone())
        .start()
        .await
        .expect("start");
    let auth = RegistryAuth::Basic(username.into(), PASS.into());
    let c = client();
    pull_and_check(&c, &format!("{}/{seeded}:1.0", reg.host()), &auth, &img).await;
    push_and_pull_back(&c, &format!("{}/{pushed}:v1", reg.host()), &auth).await;

    // the journal shows the profile's own dance and no failure after it
    let entries = reg.journal().all();
    assert!(
        entries.iter().any(|e| e.status == 401),
        "{kind:?}: challenged first"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.method == "PUT" && e.path.ends_with("/manifests/v1") && e.status == 201)
    );
    assert!(entries.iter().all(|e| e.leak.is_none()));
    assert!(!serde_json::to_string(&entries).unwrap().contains(PASS));
}

#[tokio::test]
async fn wrong_password_fails_the_pull() {
    let addr = free_addr();
    let (builder, seeded, _, _) = profile(Kind::Gitlab, addr);
    let reg: RunningRegistry = builder
        .seed(seeded, "1.0", image())
        .start()
        .await
        .expect("start");
    let reference: Reference = format!("{}/{seeded}:1.0", reg.host()).parse().unwrap();
    let err = client()
        .pull(
            &reference,
            &RegistryAuth::Basic(USER.into(), "wrong".into()),
            vec![IMAGE_LAYER_GZIP_MEDIA_TYPE],
        )
        .await;
    assert!(err.is_err());
    assert!(
        reg.journal()
            .all()
            .iter()
            .any(|e| e.auth.verdict.as_deref() == Some("bad-credentials"))
    );
}

/// The mirror as a real client sees it: pulls through (path-prefix layout, the client knows
/// nothing of `ns`), and pushes are refused.
#[tokio::test]
async fn pull_through_the_mirror_and_push_refused() {
    let journal = Arc::new(Journal::default());
    let img = image();
    let upstream = FakeRegistry::builder()
        .name("upstream")
        .journal(journal.clone())
        .bearer(
            BearerOptions::new("private.test"),
            directory("builder", &[("team/**", &["pull"])]),
        )
        .seed("team/app", "1.0", img.clone())
        .start()
        .await
        .expect("upstream");
    let mirror = FakeRegistry::builder()
        .name("mirror")
        .journal(journal.clone())
        .mirror(
            MirrorOptions {
                layout: Layout::PathPrefix,
                upstreams: vec![UpstreamOptions {
                    key: "private".into(),
                    url: upstream.url(),
                    username: Some("builder".into()),
                    password: Some(PASS.into()),
                }],
                ..MirrorOptions::default()
            },
            directory("m", &[("**", &["pull", "push"])]),
        )
        .start()
        .await
        .expect("mirror");
    let auth = RegistryAuth::Basic("m".into(), PASS.into());
    let c = client();
    pull_and_check(
        &c,
        &format!("{}/private/team/app:1.0", mirror.host()),
        &auth,
        &img,
    )
    .await;
    let reference: Reference = format!("{}/private/team/pushed:1", mirror.host())
        .parse()
        .unwrap();
    let pushed = c
        .push(
            &reference,
            &[ImageLayer::oci_v1_gzip(b"x".to_vec(), None)],
            Config::oci_v1(b"{}".to_vec(), None),
            &auth,
            None,
        )
        .await;
    assert!(pushed.is_err(), "a pull-through cache refuses pushes");
    assert!(
        journal
            .all()
            .iter()
            .any(|e| e.registry == "mirror" && e.status == 405)
    );
    assert!(
        journal
            .all()
            .iter()
            .any(|e| e.registry == "upstream" && e.auth.principal.as_deref() == Some(USER))
    );
}
