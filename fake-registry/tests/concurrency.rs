//! 32 blob uploads at once — 16 distinct blobs, and 16 uploads of one shared blob into the
//! same repository and into different ones — over all three push styles (monolithic `POST`,
//! `POST`+`PUT`, chunked `PATCH`×3+`PUT`), on memory and on disk storage. Afterwards every
//! blob is read back (`GET`: digest recomputed over the body, `Content-Length` right) and
//! checked with `HEAD` in every repository it was pushed to, and only there.

use fake_registry::{FakeRegistry, RunningRegistry};
use reqwest::{Client, StatusCode};
use rstest::rstest;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Upper bound for the whole test, pushes and checks included.
const DEADLINE: Duration = Duration::from_secs(60);
const DISTINCT: usize = 16;
const SHARED: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Style {
    /// `POST /blobs/uploads/?digest=` with the whole body.
    Monolithic,
    /// `POST` for a session, then one `PUT ?digest=` with the whole body.
    PostPut,
    /// `POST`, three `PATCH`es with `Content-Range`, then an empty `PUT ?digest=`.
    Chunked,
}

const STYLES: [Style; 3] = [Style::Monolithic, Style::PostPut, Style::Chunked];

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Disk,
}

struct Upload {
    repo: String,
    content: Arc<Vec<u8>>,
    digest: String,
    style: Style,
}

/// Deterministic pseudo-random bytes (xorshift64*), different for every `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    for _ in 0..len.div_ceil(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `location` (relative, as this registry sends it) with `?digest=` appended.
fn with_digest(base: &str, location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{base}{location}{sep}digest={digest}")
}

/// The 32 uploads: 16 distinct blobs into one repository; one shared blob 8 times into one
/// repository and once each into 8 others. Styles rotate so every group uses all three.
fn plan() -> Vec<Upload> {
    let mut uploads = Vec::new();
    for i in 0..DISTINCT {
        let data = Arc::new(content(i as u64 + 1, 200_000 + i * 7_919));
        uploads.push(Upload {
            repo: "conc/distinct".to_owned(),
            digest: sha256(&data),
            content: data,
            style: STYLES[i % STYLES.len()],
        });
    }
    let shared = Arc::new(content(1_000, 300_001));
    let shared_digest = sha256(&shared);
    for i in 0..SHARED {
        let repo = if i < SHARED / 2 {
            "conc/same".to_owned()
        } else {
            format!("conc/r{i}")
        };
        uploads.push(Upload {
            repo,
            content: Arc::clone(&shared),
            digest: shared_digest.clone(),
            style: STYLES[i % STYLES.len()],
        });
    }
    uploads
}

async fn upload(c: &Client, base: &str, u: &Upload) -> Result<(), String> {
    let fail = |what: &str, r: &reqwest::Response| {
        format!(
            "{:?} of {} into {}: {what} answered {}",
            u.style,
            u.digest,
            u.repo,
            r.status()
        )
    };
    let send_err = |e: reqwest::Error| format!("{:?} into {}: {e}", u.style, u.repo);
    let start_url = format!("{base}/v2/{}/blobs/uploads/", u.repo);
    let closing = match u.style {
        Style::Monolithic => c
            .post(format!("{start_url}?digest={}", u.digest))
            .header("Content-Type", "application/octet-stream")
            .body(u.content.to_vec())
            .send()
            .await
            .map_err(send_err)?,
        Style::PostPut | Style::Chunked => {
            let r = c.post(&start_url).send().await.map_err(send_err)?;
            if r.status() != StatusCode::ACCEPTED {
                return Err(fail("POST", &r));
            }
            let mut location = header(&r, "location");
            let body = if let Style::Chunked = u.style {
                let len = u.content.len();
                let cuts = [0, len / 3, 2 * len / 3, len];
                for w in cuts.windows(2) {
                    let (start, end) = (w[0], w[1]);
                    let r = c
                        .patch(format!("{base}{location}"))
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("{start}-{}", end - 1))
                        .body(u.content[start..end].to_vec())
                        .send()
                        .await
                        .map_err(send_err)?;
                    if r.status() != StatusCode::ACCEPTED {
                        return Err(fail("PATCH", &r));
                    }
                    let range = header(&r, "range");
                    if range != format!("0-{}", end - 1) {
                        return Err(format!("{} PATCH: Range {range:?} after {end}", u.repo));
                    }
                    location = header(&r, "location");
                }
                Vec::new()
            } else {
                u.content.to_vec()
            };
            c.put(with_digest(base, &location, &u.digest))
                .header("Content-Type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .map_err(send_err)?
        }
    };
    if closing.status() != StatusCode::CREATED {
        return Err(fail("closing request", &closing));
    }
    if header(&closing, "docker-content-digest") != u.digest {
        return Err(format!("{}: Docker-Content-Digest differs", u.repo));
    }
    if header(&closing, "location") != format!("/v2/{}/blobs/{}", u.repo, u.digest) {
        return Err(format!(
            "{}: Location {}",
            u.repo,
            header(&closing, "location")
        ));
    }
    Ok(())
}

async fn start(backend: Backend, dir: &std::path::Path) -> RunningRegistry {
    let builder = FakeRegistry::builder();
    let builder = match backend {
        Backend::Memory => builder,
        Backend::Disk => builder.storage_dir(dir),
    };
    builder.start().await.expect("registry starts")
}

async fn run(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(backend, dir.path()).await;
    let base = reg.url();
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let uploads: Vec<Arc<Upload>> = plan().into_iter().map(Arc::new).collect();
    assert_eq!(uploads.len(), DISTINCT + SHARED);

    // All 32 start together.
    let barrier = Arc::new(Barrier::new(uploads.len()));
    let mut set = JoinSet::new();
    for u in &uploads {
        let (c, base, u, barrier) = (c.clone(), base.clone(), Arc::clone(u), Arc::clone(&barrier));
        set.spawn(async move {
            barrier.wait().await;
            upload(&c, &base, &u).await
        });
    }
    let mut failures = Vec::new();
    for _ in 0..uploads.len() {
        match set.join_next().await {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => failures.push(e),
            Some(Err(e)) => failures.push(format!("upload task failed: {e}")),
            None => failures.push("fewer tasks than uploads".to_owned()),
        }
    }
    assert!(failures.is_empty(), "{backend:?}: {failures:#?}");

    // Every (repository, blob) pushed, checked once.
    let mut pushed: BTreeMap<(String, String), Arc<Vec<u8>>> = BTreeMap::new();
    for u in &uploads {
        pushed.insert((u.repo.clone(), u.digest.clone()), Arc::clone(&u.content));
    }
    assert_eq!(
        pushed.len(),
        DISTINCT + 1 + SHARED / 2,
        "distinct (repo, blob) pairs"
    );
    for ((repo, digest), data) in &pushed {
        let url = format!("{base}/v2/{repo}/blobs/{digest}");
        let r = c.get(&url).send().await.expect("GET blob");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{backend:?} GET {repo} {digest}"
        );
        assert_eq!(
            header(&r, "content-length"),
            data.len().to_string(),
            "{backend:?} GET {repo}: Content-Length"
        );
        assert_eq!(header(&r, "docker-content-digest"), *digest);
        let body = r.bytes().await.expect("blob body");
        assert_eq!(body.len(), data.len(), "{backend:?} {repo}: body length");
        assert_eq!(sha256(&body), *digest, "{backend:?} {repo}: body digest");

        let r = c.head(&url).send().await.expect("HEAD blob");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{backend:?} HEAD {repo} {digest}"
        );
        assert_eq!(header(&r, "content-length"), data.len().to_string());
        assert_eq!(header(&r, "docker-content-digest"), *digest);
    }

    // Linked only where pushed: a distinct blob is not in the shared blob's repositories,
    // the shared blob is not in the distinct blobs' repository.
    let shared = &uploads[DISTINCT].digest;
    let first_distinct = &uploads[0].digest;
    for (repo, digest) in [
        ("conc/distinct", shared),
        ("conc/same", first_distinct),
        ("conc/r15", first_distinct),
        ("conc/nowhere", shared),
    ] {
        let r = c
            .head(format!("{base}/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("HEAD blob");
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "{backend:?} {repo} {digest}"
        );
    }
    let r = c.get(format!("{base}/v2/")).send().await.expect("GET /v2/");
    assert_eq!(r.status(), StatusCode::OK);
    reg.shutdown().await;
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uploads_all_land(#[case] backend: Backend) {
    tokio::time::timeout(DEADLINE, run(backend))
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: 32 uploads and checks exceeded {DEADLINE:?}"));
}

const RACERS: usize = 8;
const ROUNDS: u64 = 20;

/// 8 final `PUT`s of one session at once, 20 rounds: exactly one stores the blob (201), the
/// others get `BLOB_UPLOAD_UNKNOWN`, and the blob reads back whole.
async fn racing_final_puts(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(backend, dir.path()).await;
    let base = reg.url();
    // No pooled connections: a loser's connection is closed by the server after its 404
    // (its body was never read), and reusing it would race that close.
    let c = Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for round in 0..ROUNDS {
        let data = Arc::new(content(1_000 + round, 64 * 1024 + round as usize));
        let digest = sha256(&data);
        let r = c
            .post(format!("{base}/v2/race/app/blobs/uploads/"))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let url = with_digest(&base, &header(&r, "location"), &digest);
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            let (c, url, data, barrier) = (c.clone(), url.clone(), data.clone(), barrier.clone());
            set.spawn(async move {
                barrier.wait().await;
                let r = c
                    .put(&url)
                    .header("content-type", "application/octet-stream")
                    .body(data.to_vec())
                    .send()
                    .await
                    .expect("PUT");
                let status = r.status();
                (status, r.text().await.unwrap_or_default())
            });
        }
        let mut created = 0;
        while let Some(joined) = set.join_next().await {
            let (status, body) = joined.expect("task");
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::NOT_FOUND => assert!(
                    body.contains("BLOB_UPLOAD_UNKNOWN"),
                    "{backend:?} round {round}: {body}"
                ),
                other => panic!("{backend:?} round {round}: {other} {body}"),
            }
        }
        assert_eq!(created, 1, "{backend:?} round {round}: one 201");
        let r = c
            .get(format!("{base}/v2/race/app/blobs/{digest}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{backend:?} round {round}");
        let body = r.bytes().await.expect("body");
        assert_eq!(sha256(&body), digest, "{backend:?} round {round}");
    }
    reg.shutdown().await;
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_final_puts_store_the_blob_once(#[case] backend: Backend) {
    tokio::time::timeout(DEADLINE, racing_final_puts(backend))
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: racing PUTs exceeded {DEADLINE:?}"));
}
