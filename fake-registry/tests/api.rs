//! Every endpoint of the distribution API, exercised over HTTP with assertions on status,
//! headers and body. Bad input has its own table in `bad_input.rs`.

use fake_registry::digest::{Algorithm, Digest};
use fake_registry::fixtures::{self, Format, ImageSpec};
use fake_registry::{FakeRegistry, RunningRegistry, media};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn registry() -> RunningRegistry {
    FakeRegistry::builder()
        .start()
        .await
        .expect("registry starts")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(data.to_vec())
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), StatusCode::CREATED);
    d
}

/// An OCI manifest over a config and one layer already in `repo`; returns its bytes.
async fn push_image_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    extra: Value,
) -> (Vec<u8>, Digest) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    let cd = push_blob(c, base, repo, config).await;
    let ld = push_blob(c, base, repo, &layer).await;
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": ld.to_string(), "size": layer.len()}],
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let bytes = serde_json::to_vec(&m).expect("json");
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", media::OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let d = Digest::sha256(&bytes);
    (bytes, d)
}

#[tokio::test]
async fn base_endpoint_announces_api_version() {
    let reg = registry().await;
    for method in [Method::GET, Method::HEAD] {
        let r = client()
            .request(method.clone(), format!("{}/v2/", reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "docker-distribution-api-version"),
            "registry/2.0"
        );
        assert_eq!(header(&r, "content-length"), "2");
        let body = r.text().await.unwrap();
        assert_eq!(body, if method == Method::GET { "{}" } else { "" });
    }
}

#[tokio::test]
async fn blob_get_head_range_delete() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&c, &base, "a/b", &data).await;

    let r = c
        .get(format!("{base}/v2/a/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());
    assert_eq!(header(&r, "content-length"), "3000");
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let r = c
        .head(format!("{base}/v2/a/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), "3000");
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());

    for (range, start, end) in [
        ("bytes=500-1499", 500, 1500),
        ("bytes=-500", 2500, 3000),
        ("bytes=2000-5000", 2000, 3000),
    ] {
        let r = c
            .get(format!("{base}/v2/a/b/blobs/{d}"))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {}-{}/3000", start, end - 1)
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[start..end]);
    }

    // the blob is linked into a/b only
    let r = c
        .get(format!("{base}/v2/other/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = c
        .delete(format!("{base}/v2/a/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .head(format!("{base}/v2/a/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn post_then_put_upload_reports_location_range_and_uuid() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let r = c
        .post(format!("{base}/v2/repo/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").to_owned();
    let uuid = header(&r, "docker-upload-uuid").to_owned();
    assert_eq!(location, format!("/v2/repo/blobs/uploads/{uuid}"));
    assert_eq!(header(&r, "range"), "0-0");

    let data = b"post then put".to_vec();
    let d = Digest::sha256(&data);
    let r = c
        .put(format!("{base}{location}?digest={d}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/repo/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());

    // the session is gone
    let r = c.get(format!("{base}{location}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn chunked_upload_status_out_of_order_and_finish() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = c
        .post(format!("{base}/v2/repo/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let mut location = header(&r, "location").to_owned();

    for (start, end) in [(0usize, 4000usize), (4000, 8000)] {
        let r = c
            .patch(format!("{base}{location}"))
            .header("Content-Range", format!("{}-{}", start, end - 1))
            .header("Content-Type", "application/octet-stream")
            .body(data[start..end].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&r, "range"), format!("0-{}", end - 1));
        location = header(&r, "location").to_owned();
    }
    // status
    let r = c.get(format!("{base}{location}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-7999");

    // out of order: resending the first chunk is refused with the current range
    let r = c
        .patch(format!("{base}{location}"))
        .header("Content-Range", "0-3999")
        .body(data[..4000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "range"), "0-7999");

    // last chunk in the PUT
    let d = Digest::sha256(&data);
    let r = c
        .put(format!("{base}{location}?digest={d}"))
        .header("Content-Range", "8000-9999")
        .body(data[8000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = c
        .get(format!("{base}/v2/repo/blobs/{d}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let r = c
        .post(format!("{base}/v2/repo/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = header(&r, "location").to_owned();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|i| Ok(vec![i as u8; 1000])).collect();
    let r = c
        .patch(format!("{base}{location}"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-9999");
    let all: Vec<u8> = (0..10).flat_map(|i| vec![i as u8; 1000]).collect();
    let d = Digest::sha256(&all);
    let r = c
        .put(format!("{base}{location}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn cancel_upload() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let r = c
        .post(format!("{base}/v2/repo/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = header(&r, "location").to_owned();
    let r = c.delete(format!("{base}{location}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.delete(format!("{base}{location}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let d = push_blob(&c, &base, "source", b"mount me").await;

    let r = c
        .post(format!(
            "{base}/v2/target/blobs/uploads/?mount={d}&from=source"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/target/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());
    assert_eq!(
        c.head(format!("{base}/v2/target/blobs/{d}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // unknown source repository: an ordinary session instead
    let r = c
        .post(format!(
            "{base}/v2/third/blobs/uploads/?mount={d}&from=nowhere"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/third/blobs/uploads/"));

    // unknown blob: also a session
    let missing = Digest::sha256(b"never pushed");
    let r = c
        .post(format!(
            "{base}/v2/third/blobs/uploads/?mount={missing}&from=source"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // no `from`: automatic content discovery is off by default (distribution ≥ 2.8), so an
    // ordinary session
    let r = c
        .post(format!("{base}/v2/fourth/blobs/uploads/?mount={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/fourth/blobs/uploads/"));

    // with it on, the registry finds the blob's origin itself (a repository holding an image)
    let img = fake_registry::fixtures::generate(&fake_registry::fixtures::ImageSpec::single(
        fake_registry::fixtures::Format::Oci,
        &[64],
    ))
    .expect("fixture");
    let d = img.blobs[0].digest.clone();
    let reg = FakeRegistry::builder()
        .options(fake_registry::RegistryOptions {
            automatic_mount: true,
            ..Default::default()
        })
        .seed("source", "v1", img)
        .start()
        .await
        .expect("registry starts");
    let base = reg.url();
    let r = c
        .post(format!("{base}/v2/fourth/blobs/uploads/?mount={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn sha512_blobs_and_manifests() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let data = b"sha512 content".to_vec();
    let d = Algorithm::Sha512.digest_of(&data);
    let r = c
        .post(format!("{base}/v2/repo/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(format!("{base}/v2/repo/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let (bytes, _) = push_image_manifest(&c, &base, "repo", "v1", json!({})).await;
    let md = Algorithm::Sha512.digest_of(&bytes);
    let r = c
        .put(format!("{base}/v2/repo/manifests/{md}"))
        .header("Content-Type", media::OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "docker-content-digest"), md.to_string());
    let r = c
        .get(format!("{base}/v2/repo/manifests/{md}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);
}

#[tokio::test]
async fn manifest_put_get_head_delete_by_tag_and_digest() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let (bytes, d) = push_image_manifest(&c, &base, "app", "v1", json!({})).await;

    for reference in ["v1".to_owned(), d.to_string()] {
        let r = c
            .get(format!("{base}/v2/app/manifests/{reference}"))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), media::OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), d.to_string());
        assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);

        let r = c
            .head(format!("{base}/v2/app/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    }

    // delete the tag: the manifest stays reachable by digest
    let r = c
        .delete(format!("{base}/v2/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        c.get(format!("{base}/v2/app/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(format!("{base}/v2/app/manifests/{d}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // delete by digest
    let r = c
        .delete(format!("{base}/v2/app/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .get(format!("{base}/v2/app/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn content_negotiation_across_oci_and_docker() {
    let oci = fixtures::generate(
        &ImageSpec::multi(Format::Oci, &["linux/amd64", "linux/arm64"], &[100]).unwrap(),
    )
    .unwrap();
    let docker = fixtures::generate(
        &ImageSpec::multi(Format::Docker, &["linux/amd64", "linux/arm64"], &[100])
            .unwrap()
            .with_seed(1),
    )
    .unwrap();
    let reg = FakeRegistry::builder()
        .seed("multi", "oci", oci.clone())
        .seed("multi", "docker", docker.clone())
        .start()
        .await
        .unwrap();
    let (c, base) = (client(), reg.url());
    let cases = [
        (
            "oci",
            media::OCI_INDEX,
            Some(media::OCI_INDEX),
            StatusCode::OK,
        ),
        (
            "oci",
            media::OCI_INDEX,
            Some("application/vnd.oci.image.index.v1+json;q=0.9, */*;q=0.1"),
            StatusCode::OK,
        ),
        ("oci", media::OCI_INDEX, None, StatusCode::OK),
        (
            "oci",
            media::OCI_INDEX,
            Some(media::DOCKER_MANIFEST_LIST),
            StatusCode::NOT_FOUND,
        ),
        (
            "docker",
            media::DOCKER_MANIFEST_LIST,
            Some(media::DOCKER_MANIFEST_LIST),
            StatusCode::OK,
        ),
        (
            "docker",
            media::DOCKER_MANIFEST_LIST,
            Some(media::OCI_INDEX),
            StatusCode::NOT_FOUND,
        ),
        (
            "docker",
            media::DOCKER_MANIFEST_LIST,
            Some(
                "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
            ),
            StatusCode::OK,
        ),
    ];
    for (tag, stored, accept, want) in cases {
        let mut req = c.get(format!("{base}/v2/multi/manifests/{tag}"));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "{tag} with Accept {accept:?}");
        if want == StatusCode::OK {
            assert_eq!(header(&r, "content-type"), stored);
        }
    }
    // a platform manifest of the index, by digest
    let child = &oci.manifests[1];
    let r = c
        .get(format!("{base}/v2/multi/manifests/{}", child.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), media::OCI_MANIFEST);
}

#[tokio::test]
async fn manifest_with_subject_answers_oci_subject_and_shows_in_referrers() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let (subject_bytes, subject) = push_image_manifest(&c, &base, "app", "v1", json!({})).await;
    // the empty config of an artifact
    let empty = push_blob(&c, &base, "app", b"{}").await;
    let layer = push_blob(&c, &base, "app", b"signature").await;
    let artifact = |artifact_type: &str| {
        json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": media::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer.to_string(), "size": 9}],
            "subject": {"mediaType": media::OCI_MANIFEST, "digest": subject.to_string(), "size": subject_bytes.len()},
            "annotations": {"org.example.kind": artifact_type},
        })
    };
    let mut pushed = Vec::new();
    for at in [
        "application/vnd.example.sig",
        "application/vnd.example.sbom",
    ] {
        let bytes = serde_json::to_vec(&artifact(at)).unwrap();
        let d = Digest::sha256(&bytes);
        let r = c
            .put(format!("{base}/v2/app/manifests/{d}"))
            .header("Content-Type", media::OCI_MANIFEST)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), subject.to_string());
        pushed.push((at, d, bytes.len()));
    }

    let r = c
        .get(format!("{base}/v2/app/referrers/{subject}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), media::OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], media::OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (at, d, size) in &pushed {
        let e = entries
            .iter()
            .find(|e| e["digest"] == d.to_string())
            .expect("listed");
        assert_eq!(e["artifactType"], *at);
        assert_eq!(e["size"], *size);
        assert_eq!(e["mediaType"], media::OCI_MANIFEST);
        assert_eq!(e["annotations"]["org.example.kind"], *at);
    }

    let r = c
        .get(format!(
            "{base}/v2/app/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );

    // nothing refers to the layer: an empty index, still 200
    let r = c
        .get(format!("{base}/v2/app/referrers/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"], json!([]));
}

#[tokio::test]
async fn referrer_pushed_before_its_subject_is_accepted() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let empty = push_blob(&c, &base, "app", b"{}").await;
    let missing_subject = Digest::sha256(b"not pushed yet");
    let m = json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": "application/vnd.example",
        "config": {"mediaType": media::OCI_EMPTY, "digest": empty.to_string(), "size": 2}, "layers": [],
        "subject": {"mediaType": media::OCI_MANIFEST, "digest": missing_subject.to_string(), "size": 10},
    });
    let r = c
        .put(format!("{base}/v2/app/manifests/art"))
        .header("Content-Type", media::OCI_MANIFEST)
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject"), missing_subject.to_string());
}

#[tokio::test]
async fn tags_list_paginates_with_link() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let (bytes, _) = push_image_manifest(&c, &base, "paged", "t0", json!({})).await;
    for tag in ["t3", "t1", "t4", "t2"] {
        let r = c
            .put(format!("{base}/v2/paged/manifests/{tag}"))
            .header("Content-Type", media::OCI_MANIFEST)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = c
        .get(format!("{base}/v2/paged/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("link").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"name": "paged", "tags": ["t0", "t1", "t2", "t3", "t4"]})
    );

    let r = c
        .get(format!("{base}/v2/paged/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "link"),
        "</v2/paged/tags/list?n=2&last=t1>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t0", "t1"])
    );

    let r = c
        .get(format!("{base}/v2/paged/tags/list?n=2&last=t1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t2", "t3"])
    );

    let r = c
        .get(format!("{base}/v2/paged/tags/list?n=2&last=t3"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["t4"]));

    let r = c
        .get(format!("{base}/v2/paged/tags/list?n=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
}

#[tokio::test]
async fn catalog_lists_repositories_with_pagination() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    for repo in ["b/two", "a/one", "c"] {
        push_image_manifest(&c, &base, repo, "latest", json!({})).await;
    }
    // a repository with only blobs is not listed
    push_blob(&c, &base, "blobs-only", b"x").await;
    let r = c.get(format!("{base}/v2/_catalog")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"repositories": ["a/one", "b/two", "c"]})
    );
    let r = c
        .get(format!("{base}/v2/_catalog?n=1&last=a/one"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=1&last=b%2Ftwo>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["b/two"])
    );
}

#[tokio::test]
async fn push_by_digest_with_tag_parameters() {
    let reg = registry().await;
    let (c, base) = (client(), reg.url());
    let (bytes, d) = push_image_manifest(&c, &base, "app", "first", json!({})).await;
    let r = c
        .put(format!("{base}/v2/app/manifests/{d}?tag=v2&tag=stable"))
        .header("Content-Type", media::OCI_MANIFEST)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let tags: Value = c
        .get(format!("{base}/v2/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["first", "stable", "v2"]));
}

#[tokio::test]
async fn index_requires_its_children_unless_sparse_is_allowed() {
    let img = fixtures::generate(
        &ImageSpec::multi(Format::Oci, &["linux/amd64", "linux/arm64"], &[10]).unwrap(),
    )
    .unwrap();
    for sparse in [false, true] {
        let reg = FakeRegistry::builder()
            .options(fake_registry::RegistryOptions {
                allow_sparse_index: sparse,
                ..Default::default()
            })
            .start()
            .await
            .unwrap();
        let r = client()
            .put(format!("{}/v2/idx/manifests/latest", reg.url()))
            .header("Content-Type", media::OCI_INDEX)
            .body(img.top().bytes.to_vec())
            .send()
            .await
            .unwrap();
        if sparse {
            assert_eq!(r.status(), StatusCode::CREATED);
        } else {
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
            assert_eq!(
                body["errors"][0]["detail"]["missing"]
                    .as_array()
                    .unwrap()
                    .len(),
                2
            );
        }
    }
}

#[tokio::test]
async fn seeded_fixture_is_pullable_end_to_end() {
    let img = fixtures::generate(&ImageSpec::single(Format::Docker, &[4096, 100])).unwrap();
    let reg = FakeRegistry::builder()
        .seed("library/hello", "latest", img.clone())
        .start()
        .await
        .unwrap();
    let (c, base) = (client(), reg.url());
    let r = c
        .get(format!("{base}/v2/library/hello/manifests/latest"))
        .header("Accept", media::DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "docker-content-digest"),
        img.digest().to_string()
    );
    let m: Value = r.json().await.unwrap();
    let mut descriptors = vec![m["config"].clone()];
    descriptors.extend(m["layers"].as_array().unwrap().iter().cloned());
    for d in descriptors {
        let body = c
            .get(format!(
                "{base}/v2/library/hello/blobs/{}",
                d["digest"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len() as u64, d["size"].as_u64().unwrap());
        assert_eq!(
            Digest::sha256(&body).to_string(),
            d["digest"].as_str().unwrap()
        );
    }
}

/// Upload sessions expire (distribution's upload purging): one started more than the limit
/// ago is gone — `BLOB_UPLOAD_UNKNOWN`, data deleted — while a younger one stays. Time is the
/// registry's manual clock; the purge pass runs when a session is created.
#[rstest::rstest]
#[case::memory(false)]
#[case::disk(true)]
#[tokio::test]
async fn upload_sessions_expire_by_the_clock(#[case] disk: bool) {
    use fake_registry::auth::Clock;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Clock::manual(1_700_000_000);
    let mut builder = FakeRegistry::builder().clock(clock.clone());
    if disk {
        builder = builder.storage_dir(dir.path());
    }
    let reg = builder.start().await.expect("registry starts");
    let (c, base) = (client(), reg.url());
    let start = |repo: &'static str| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let r = c
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let location = header(&r, "location").to_owned();
            let r = c
                .patch(format!("{base}{location}"))
                .header("content-type", "application/octet-stream")
                .body(b"some bytes".to_vec())
                .send()
                .await
                .expect("PATCH");
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            location
        }
    };
    let status = |location: String| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let r = c
                .get(format!("{base}{location}"))
                .send()
                .await
                .expect("GET");
            let s = r.status();
            (s, r.text().await.unwrap_or_default())
        }
    };
    let old = start("exp/old").await;
    clock.advance(30 * 60);
    let young = start("exp/young").await;
    clock.advance(45 * 60);
    // `old` is 75 min old, `young` 45: the next session creation purges `old` only.
    let newest = start("exp/newest").await;
    let (s, body) = status(old.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("BLOB_UPLOAD_UNKNOWN"), "{body}");
    assert_eq!(status(young.clone()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(status(newest).await.0, StatusCode::NO_CONTENT);
    if disk {
        let sessions = std::fs::read_dir(dir.path().join("uploads"))
            .expect("uploads dir")
            .count();
        assert_eq!(sessions, 2, "the expired session's data is deleted");
    }
    // Finishing the expired session is refused too.
    let r = c
        .put(format!(
            "{base}{old}?digest={}",
            Digest::sha256(b"some bytes")
        ))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    reg.shutdown().await;
}

/// `serve --listen`'s listener applies the header-read limit (a shortened one here): a
/// connection that sends half a request line, one that sends nothing, and one idle after a
/// request are all closed by the server. Bounded waits, no timing assertion.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use fake_registry::listener::ConnectionLimits;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reg = FakeRegistry::builder()
        .connection_limits(ConnectionLimits {
            header_read: Duration::from_millis(300),
            ..ConnectionLimits::default()
        })
        .start()
        .await
        .expect("registry starts");
    // Reads until the server closes (EOF or reset); the bound only keeps a broken server
    // from hanging the test.
    async fn closed_by_server(mut s: tokio::net::TcpStream) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let read_all = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read_all)
            .await
            .expect("the server closes the connection");
        seen
    }
    let mut partial = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    partial.write_all(b"GET /v2/ HT").await.unwrap();
    let silent = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (partial, silent, idle) = tokio::join!(
        closed_by_server(partial),
        closed_by_server(silent),
        closed_by_server(idle)
    );
    assert!(silent.is_empty());
    let idle = String::from_utf8_lossy(&idle);
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    // A partial request line gets at most an error status, never a served request.
    let partial = String::from_utf8_lossy(&partial);
    assert!(
        partial.is_empty() || partial.starts_with("HTTP/1.1 408"),
        "{partial}"
    );
    assert!(
        reg.journal().all().iter().all(|e| e.path == "/v2/"),
        "only the complete request was served"
    );
    assert_eq!(reg.journal().all().len(), 1);
}
