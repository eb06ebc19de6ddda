//! The storage contract, checked against both backends (and, for disk, across a reopen).

use super::*;
use crate::digest::Digest;
use rstest::rstest;

enum Backend {
    Memory,
    Disk,
}

struct Subject {
    storage: Box<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
}

fn open(backend: Backend) -> Subject {
    match backend {
        Backend::Memory => Subject {
            storage: Box::new(MemoryStorage::new()),
            _dir: None,
        },
        Backend::Disk => {
            let dir = tempfile::tempdir().expect("tempdir");
            Subject {
                storage: Box::new(DiskStorage::open(dir.path()).expect("open")),
                _dir: Some(dir),
            }
        }
    }
}

fn chunk(data: &[u8], offset: Option<u64>, len: Option<u64>) -> Chunk {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Chunk {
        body: Box::pin(futures_util::stream::iter(pieces)),
        expected_offset: offset,
        expected_len: len,
    }
}

async fn read_all(s: &dyn Storage, repo: &str, d: &Digest, range: Range<u64>) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut stream = s
        .read_blob(repo, d, range)
        .await
        .expect("read")
        .expect("exists");
    let mut out = Vec::new();
    while let Some(c) = stream.next().await {
        out.extend_from_slice(&c.expect("chunk"));
    }
    out
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test]
async fn upload_lifecycle(#[case] backend: Backend) {
    let sub = open(backend);
    let s = sub.storage.as_ref();
    let id = s.create_upload("repo").await.unwrap();
    assert_eq!(
        s.upload_info(&id).await.unwrap(),
        Some(UploadInfo {
            repository: "repo".into(),
            size: 0
        })
    );
    assert_eq!(
        s.append_upload(&id, chunk(b"hello ", Some(0), Some(6)))
            .await
            .unwrap(),
        6
    );
    // wrong offset: refused, nothing appended
    let err = s
        .append_upload(&id, chunk(b"xx", Some(0), None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::RangeMismatch { current: 6 }),
        "{err:?}"
    );
    // length disagreeing with the declaration: refused, rolled back
    let err = s
        .append_upload(&id, chunk(b"world!!", None, Some(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::LengthMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(s.upload_info(&id).await.unwrap().unwrap().size, 6);
    assert_eq!(
        s.append_upload(&id, chunk(b"world", None, None))
            .await
            .unwrap(),
        11
    );

    let d = Digest::sha256(b"hello world");
    assert_eq!(s.commit_upload(&id, &d).await.unwrap(), 11);
    assert_eq!(s.upload_info(&id).await.unwrap(), None);
    assert_eq!(s.blob_size("repo", &d).await.unwrap(), Some(11));
    assert_eq!(s.blob_size("other", &d).await.unwrap(), None);
    assert!(s.blob_exists(&d).await.unwrap());
    assert_eq!(read_all(s, "repo", &d, 0..11).await, b"hello world");
    assert_eq!(read_all(s, "repo", &d, 6..11).await, b"world");
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test]
async fn digest_mismatch_ends_the_session_and_stores_nothing(#[case] backend: Backend) {
    let sub = open(backend);
    let s = sub.storage.as_ref();
    let id = s.create_upload("repo").await.unwrap();
    s.append_upload(&id, chunk(b"abc", None, None))
        .await
        .unwrap();
    let wrong = Digest::sha256(b"abd");
    let err = s.commit_upload(&id, &wrong).await.unwrap_err();
    assert!(matches!(err, StorageError::DigestMismatch { .. }));
    assert!(!s.blob_exists(&wrong).await.unwrap());
    assert!(!s.blob_exists(&Digest::sha256(b"abc")).await.unwrap());
    assert_eq!(s.upload_info(&id).await.unwrap(), None);
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test]
async fn link_unlink_and_cancel(#[case] backend: Backend) {
    let sub = open(backend);
    let s = sub.storage.as_ref();
    let d = Digest::sha256(b"x");
    assert!(!s.link_blob("a", &d).await.unwrap(), "nothing to link yet");
    let id = s.create_upload("a").await.unwrap();
    s.append_upload(&id, chunk(b"x", None, Some(1)))
        .await
        .unwrap();
    s.commit_upload(&id, &d).await.unwrap();
    assert!(s.link_blob("b", &d).await.unwrap());
    assert_eq!(s.blob_size("b", &d).await.unwrap(), Some(1));
    assert!(s.unlink_blob("a", &d).await.unwrap());
    assert!(!s.unlink_blob("a", &d).await.unwrap());
    assert_eq!(s.blob_size("a", &d).await.unwrap(), None);
    assert_eq!(s.blob_size("b", &d).await.unwrap(), Some(1));

    let id = s.create_upload("a").await.unwrap();
    assert!(s.cancel_upload(&id).await.unwrap());
    assert!(!s.cancel_upload(&id).await.unwrap());
    assert!(matches!(
        s.append_upload(&id, chunk(b"y", None, None)).await,
        Err(StorageError::UploadUnknown)
    ));
    assert!(!s.cancel_upload("../../etc").await.unwrap());
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test]
async fn manifests_and_tags(#[case] backend: Backend) {
    let sub = open(backend);
    let s = sub.storage.as_ref();
    assert_eq!(s.list_tags("app").await.unwrap(), None);
    let bytes = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let m = StoredManifest {
        digest: Digest::sha256(&bytes),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes,
    };
    s.put_manifest("app", m.clone(), &["v1".into(), "latest".into()])
        .await
        .unwrap();
    assert_eq!(
        s.list_tags("app").await.unwrap(),
        Some(vec!["latest".into(), "v1".into()])
    );
    assert_eq!(
        s.resolve_tag("app", "v1").await.unwrap(),
        Some(m.digest.clone())
    );
    assert_eq!(
        s.get_manifest("app", &m.digest).await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(s.get_manifest("other", &m.digest).await.unwrap(), None);
    assert_eq!(s.list_manifests("app").await.unwrap(), vec![m.clone()]);
    assert_eq!(s.repositories().await.unwrap(), vec!["app".to_owned()]);

    assert!(s.delete_tag("app", "latest").await.unwrap());
    assert!(!s.delete_tag("app", "latest").await.unwrap());
    assert_eq!(s.list_tags("app").await.unwrap(), Some(vec!["v1".into()]));
    assert!(s.delete_manifest("app", &m.digest).await.unwrap());
    assert_eq!(
        s.resolve_tag("app", "v1").await.unwrap(),
        None,
        "tags of a deleted manifest go too"
    );
    assert!(!s.delete_manifest("app", &m.digest).await.unwrap());
}

#[tokio::test]
async fn disk_storage_survives_reopen_with_sessions_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = Digest::sha256(b"persisted");
    let bytes = Bytes::from_static(b"{}");
    let m = StoredManifest {
        digest: Digest::sha256(&bytes),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        bytes,
    };
    let session = {
        let s = DiskStorage::open(dir.path()).unwrap();
        let id = s.create_upload("nested/repo").await.unwrap();
        s.append_upload(&id, chunk(b"persisted", None, None))
            .await
            .unwrap();
        s.commit_upload(&id, &d).await.unwrap();
        s.put_manifest("nested/repo", m.clone(), &["t".into()])
            .await
            .unwrap();
        let open_session = s.create_upload("nested/repo").await.unwrap();
        s.append_upload(&open_session, chunk(b"half", None, None))
            .await
            .unwrap();
        open_session
    };
    let s = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(s.blob_size("nested/repo", &d).await.unwrap(), Some(9));
    assert_eq!(
        s.resolve_tag("nested/repo", "t").await.unwrap(),
        Some(m.digest.clone())
    );
    assert_eq!(
        s.repositories().await.unwrap(),
        vec!["nested/repo".to_owned()]
    );
    // the unfinished session can be resumed
    assert_eq!(s.upload_info(&session).await.unwrap().unwrap().size, 4);
    s.append_upload(&session, chunk(b" done", Some(4), None))
        .await
        .unwrap();
    s.commit_upload(&session, &Digest::sha256(b"half done"))
        .await
        .unwrap();
}

/// A manifest with a subject, as referrers are.
fn referrer(subject: &Digest, n: u32) -> StoredManifest {
    let bytes = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": format!("application/x.test.{n}"),
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 1},
    })
    .to_string();
    StoredManifest {
        digest: Digest::sha256(bytes.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: Bytes::from(bytes),
    }
}

#[rstest]
#[case::memory(Backend::Memory)]
#[case::disk(Backend::Disk)]
#[tokio::test]
async fn referrers_come_from_an_index_kept_on_put_and_delete(#[case] backend: Backend) {
    let subject = Digest::sha256(b"the subject");
    let other = Digest::sha256(b"another subject");
    let s = open(backend);
    let s = s.storage.as_ref();
    let (a, b, c) = (
        referrer(&subject, 1),
        referrer(&subject, 2),
        referrer(&other, 3),
    );
    for m in [&a, &b, &c] {
        s.put_manifest("app", m.clone(), &[]).await.unwrap();
    }
    let digests = |v: Vec<Referrer>| v.into_iter().map(|r| r.digest).collect::<Vec<_>>();
    let mut want = vec![a.digest.clone(), b.digest.clone()];
    want.sort();
    assert_eq!(digests(s.referrers("app", &subject).await.unwrap()), want);
    let got = s.referrers("app", &other).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].artifact_type.as_deref(),
        Some("application/x.test.3")
    );
    assert_eq!(got[0].size, c.bytes.len() as u64);
    // Kept up to date: a put after the first query, a delete.
    let d = referrer(&subject, 4);
    s.put_manifest("app", d.clone(), &[]).await.unwrap();
    assert!(s.delete_manifest("app", &a.digest).await.unwrap());
    let mut want = vec![b.digest.clone(), d.digest.clone()];
    want.sort();
    assert_eq!(digests(s.referrers("app", &subject).await.unwrap()), want);
    assert!(s.referrers("elsewhere", &subject).await.unwrap().is_empty());
}

/// Queries parse nothing: each manifest is parsed once, however often referrers are asked.
#[tokio::test]
async fn referrer_queries_parse_no_manifest() {
    let subject = Digest::sha256(b"the subject");
    let memory = MemoryStorage::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskStorage::open(dir.path()).unwrap();
    for n in 0..5 {
        let m = referrer(&subject, n);
        memory.put_manifest("app", m.clone(), &[]).await.unwrap();
        disk.put_manifest("app", m, &[]).await.unwrap();
    }
    for _ in 0..20 {
        assert_eq!(memory.referrers("app", &subject).await.unwrap().len(), 5);
        assert_eq!(disk.referrers("app", &subject).await.unwrap().len(), 5);
    }
    assert_eq!(memory.referrer_parses("app"), 5);
    assert_eq!(disk.referrer_parses("app").await, 5);
    // A re-put of the same content (a new tag) parses nothing either.
    let m = referrer(&subject, 0);
    memory
        .put_manifest("app", m.clone(), &["t".into()])
        .await
        .unwrap();
    disk.put_manifest("app", m, &["t".into()]).await.unwrap();
    assert_eq!(memory.referrer_parses("app"), 5);
    assert_eq!(disk.referrer_parses("app").await, 5);
}
