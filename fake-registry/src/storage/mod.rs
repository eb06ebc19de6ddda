//! Where the registry keeps blobs, upload sessions, manifests and tags.
//!
//! One trait, two backends: [`MemoryStorage`] (the default: fast, gone on exit) and
//! [`DiskStorage`] (`--storage DIR`: survives restarts; everything acknowledged to a client
//! is fsynced first). The trait is deliberately dumb — validation, content negotiation,
//! referrers and pagination live in the API layer, so both backends behave identically.
//!
//! Blobs are content-addressed once per registry and *linked* into repositories, like CNCF
//! distribution: a blob is visible in a repository only after it was pushed or mounted there.

mod disk;
mod memory;

pub use disk::DiskStorage;
pub use memory::MemoryStorage;

use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::pin::Pin;

/// A request or response body, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("upload session unknown")]
    UploadUnknown,
    #[error("chunk does not start at the current offset {current}")]
    RangeMismatch { current: u64 },
    #[error("expected {expected} bytes, got {got}")]
    LengthMismatch { expected: u64, got: u64 },
    #[error("request body interrupted: {0}")]
    BodyInterrupted(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The state of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub repository: String,
    /// Bytes received and acknowledged so far.
    pub size: u64,
}

/// A chunk to append to an upload, with what the client claimed about it.
pub struct Chunk {
    pub body: ByteStream,
    /// The offset the chunk must start at (from `Content-Range`), if the client said.
    pub expected_offset: Option<u64>,
    /// The chunk's length (from `Content-Length` or `Content-Range`), if the client said.
    pub expected_len: Option<u64>,
}

/// A manifest as stored: its exact bytes (the digest is over them) and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    // --- blobs -------------------------------------------------------------------------
    /// Size of a blob linked into `repository`, or `None` if it is not there.
    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>>;
    /// Whether the blob's content exists anywhere in the registry.
    async fn blob_exists(&self, digest: &Digest) -> Result<bool>;
    /// The bytes of `range` of a blob linked into `repository` (the caller has checked the
    /// range against the size).
    async fn read_blob(
        &self,
        repository: &str,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>>;
    /// Links existing content into `repository` (a cross-repository mount). `false` if the
    /// content does not exist.
    async fn link_blob(&self, repository: &str, digest: &Digest) -> Result<bool>;
    /// Removes a blob from `repository`. `false` if it was not there.
    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool>;

    // --- uploads -----------------------------------------------------------------------
    async fn create_upload(&self, repository: &str) -> Result<String>;
    async fn upload_info(&self, id: &str) -> Result<Option<UploadInfo>>;
    /// Appends a chunk; all or nothing: on any error the session keeps its previous size.
    /// Returns the new size.
    async fn append_upload(&self, id: &str, chunk: Chunk) -> Result<u64>;
    /// Verifies the content against `digest`; on success stores the blob, links it into the
    /// session's repository and ends the session. On a mismatch the session ends too.
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<u64>;
    /// A final `PUT`: appends `chunk` and commits against `digest` under *one* hold of the
    /// session, so concurrent final requests cannot interleave. The first to hold the session
    /// ends it; the others find it gone ([`StorageError::UploadUnknown`]). An append error
    /// leaves the session as it was; a digest mismatch ends it (as `commit_upload`).
    async fn finish_upload(&self, id: &str, chunk: Chunk, digest: &Digest) -> Result<u64>;
    async fn cancel_upload(&self, id: &str) -> Result<bool>;
    /// Ends every session started more than `max_age_secs` ago (by the storage's clock) and
    /// deletes its data, like distribution's upload purging. Sessions a request holds right
    /// now are left for the next pass. Returns how many were purged.
    async fn purge_uploads(&self, max_age_secs: i64) -> Result<usize>;

    // --- manifests and tags ------------------------------------------------------------
    /// Stores a manifest and points each of `tags` at it.
    async fn put_manifest(
        &self,
        repository: &str,
        manifest: StoredManifest,
        tags: &[String],
    ) -> Result<()>;
    async fn get_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>>;
    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>>;
    /// Deletes a manifest and every tag pointing at it. `false` if it was not there.
    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool>;
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool>;
    /// Tags of a repository, sorted; `None` if the repository does not exist at all.
    async fn list_tags(&self, repository: &str) -> Result<Option<Vec<String>>>;
    /// Every manifest of a repository.
    async fn list_manifests(&self, repository: &str) -> Result<Vec<StoredManifest>>;
    /// The manifests of `repository` whose `subject` is `subject` (the referrers API), from
    /// an index maintained on manifest put and delete: no manifest is parsed per query.
    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Referrer>>;
    /// Repositories holding at least one manifest, sorted.
    async fn repositories(&self) -> Result<Vec<String>>;
}

/// A manifest as the referrers API lists it: its descriptor fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// `artifactType`, else the config's media type (the spec's rule).
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Value>,
}

/// The referrers of one repository: subject → referrers, kept up to date on manifest put and
/// delete. Each manifest is parsed once, when it is added.
#[derive(Debug, Default)]
pub struct ReferrersIndex {
    by_subject: HashMap<Digest, BTreeMap<Digest, Referrer>>,
    /// Every manifest the index has seen → its subject, if it has one.
    seen: HashMap<Digest, Option<Digest>>,
    /// How many manifests were parsed (a test counter: queries parse nothing).
    parsed: u64,
}

impl ReferrersIndex {
    /// Adds a manifest (once: the same digest is the same content).
    pub fn insert(&mut self, m: &StoredManifest) {
        if self.seen.contains_key(&m.digest) {
            return;
        }
        self.parsed += 1;
        let subject = referrer_of(m).map(|(subject, referrer)| {
            self.by_subject
                .entry(subject.clone())
                .or_default()
                .insert(m.digest.clone(), referrer);
            subject
        });
        self.seen.insert(m.digest.clone(), subject);
    }

    pub fn remove(&mut self, digest: &Digest) {
        if let Some(Some(subject)) = self.seen.remove(digest)
            && let Some(referrers) = self.by_subject.get_mut(&subject)
        {
            referrers.remove(digest);
            if referrers.is_empty() {
                self.by_subject.remove(&subject);
            }
        }
    }

    /// The referrers of `subject`, by digest.
    pub fn referrers(&self, subject: &Digest) -> Vec<Referrer> {
        self.by_subject
            .get(subject)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many manifests this index parsed.
    pub fn parsed(&self) -> u64 {
        self.parsed
    }
}

/// The subject of a manifest and its referrer descriptor, when it has a subject.
fn referrer_of(m: &StoredManifest) -> Option<(Digest, Referrer)> {
    use serde_json::Value;
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&m.bytes) else {
        return None;
    };
    let subject: Digest = doc
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str)?
        .parse()
        .ok()?;
    let artifact_type = doc
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| {
            doc.get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned);
    let referrer = Referrer {
        digest: m.digest.clone(),
        media_type: m.media_type.clone(),
        size: m.bytes.len() as u64,
        artifact_type,
        annotations: doc.get("annotations").filter(|a| a.is_object()).cloned(),
    };
    Some((subject, referrer))
}

/// Reads a whole stream into memory — only for manifests, which are size-capped.
pub async fn collect(
    mut body: ByteStream,
    limit: usize,
) -> std::result::Result<Bytes, CollectError> {
    use futures_util::StreamExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CollectError::Body(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(CollectError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("body exceeds the limit")]
    TooLarge,
    #[error("body interrupted: {0}")]
    Body(String),
}

#[cfg(test)]
mod contract_tests;
