//! In-memory storage: the default. Uploads keep their chunks as a list (no quadratic
//! re-allocation, the bug distribution 2.8's inmemory driver has) and are joined once,
//! at commit.

use super::{
    ByteStream, Chunk, Referrer, ReferrersIndex, Result, Storage, StorageError, StoredManifest,
    UploadInfo,
};
use crate::auth::Clock;
use crate::digest::Digest;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Default)]
pub struct MemoryStorage {
    state: RwLock<State>,
    uploads: Mutex<HashMap<String, Session>>,
    /// When sessions start, for expiry.
    clock: Clock,
}

struct Session {
    /// Unix seconds (by `clock`) the session started.
    started: i64,
    upload: Arc<tokio::sync::Mutex<Upload>>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<Digest, Bytes>,
    repositories: BTreeMap<String, Repository>,
}

#[derive(Default)]
struct Repository {
    blobs: HashSet<Digest>,
    manifests: HashMap<Digest, StoredManifest>,
    tags: BTreeMap<String, Digest>,
    referrers: ReferrersIndex,
}

struct Upload {
    repository: String,
    chunks: Vec<Bytes>,
    size: u64,
    /// Set when the session ended while a request still held it.
    closed: bool,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions start (and expire) by `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means another request panicked mid-update of plain maps;
        // the maps themselves are still consistent enough for a test registry.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn upload(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Upload>>> {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|s| s.upload.clone())
    }

    /// Commits a session whose lock the caller holds.
    fn commit_locked(&self, id: &str, u: &mut Upload, digest: &Digest) -> Result<u64> {
        if u.closed {
            return Err(StorageError::UploadUnknown);
        }
        u.closed = true;
        self.end_upload(id);
        let mut hasher = digest.algorithm().hasher();
        for c in &u.chunks {
            hasher.update(c);
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let mut joined = BytesMut::with_capacity(u.size as usize);
        for c in u.chunks.drain(..) {
            joined.extend_from_slice(&c);
        }
        let size = u.size;
        let mut state = self.write();
        state
            .blobs
            .entry(digest.clone())
            .or_insert_with(|| joined.freeze());
        state
            .repositories
            .entry(u.repository.clone())
            .or_default()
            .blobs
            .insert(digest.clone());
        Ok(size)
    }

    /// How many manifests `repository`'s referrers index parsed (tests).
    #[cfg(test)]
    pub(crate) fn referrer_parses(&self, repository: &str) -> u64 {
        self.read()
            .repositories
            .get(repository)
            .map_or(0, |r| r.referrers.parsed())
    }

    fn end_upload(&self, id: &str) {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// Appends a chunk to a session whose lock the caller holds; all or nothing.
async fn append_locked(u: &mut Upload, mut chunk: Chunk) -> Result<u64> {
    if u.closed {
        return Err(StorageError::UploadUnknown);
    }
    if let Some(offset) = chunk.expected_offset
        && offset != u.size
    {
        return Err(StorageError::RangeMismatch { current: u.size });
    }
    let mut received = Vec::new();
    let mut len = 0u64;
    while let Some(piece) = chunk.body.next().await {
        let piece = piece.map_err(|e| StorageError::BodyInterrupted(e.to_string()))?;
        len += piece.len() as u64;
        if chunk.expected_len.is_some_and(|l| len > l) {
            return Err(StorageError::LengthMismatch {
                expected: chunk.expected_len.unwrap_or_default(),
                got: len,
            });
        }
        received.push(piece);
    }
    if let Some(expected) = chunk.expected_len
        && expected != len
    {
        return Err(StorageError::LengthMismatch { expected, got: len });
    }
    u.chunks.extend(received);
    u.size += len;
    Ok(u.size)
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>> {
        let state = self.read();
        let linked = state
            .repositories
            .get(repository)
            .is_some_and(|r| r.blobs.contains(digest));
        Ok(linked
            .then(|| state.blobs.get(digest).map(|b| b.len() as u64))
            .flatten())
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.read().blobs.contains_key(digest))
    }

    async fn read_blob(
        &self,
        repository: &str,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>> {
        let state = self.read();
        if !state
            .repositories
            .get(repository)
            .is_some_and(|r| r.blobs.contains(digest))
        {
            return Ok(None);
        }
        let Some(blob) = state.blobs.get(digest) else {
            return Ok(None);
        };
        let (start, end) = (range.start as usize, range.end as usize);
        if start > end || end > blob.len() {
            return Err(StorageError::Corrupt(format!(
                "range {range:?} outside blob {digest}"
            )));
        }
        // Bytes::slice shares the allocation; the response streams it in 64 KiB pieces.
        let slice = blob.slice(start..end);
        let pieces: Vec<std::io::Result<Bytes>> = (0..slice.len())
            .step_by(64 * 1024)
            .map(|o| Ok(slice.slice(o..(o + 64 * 1024).min(slice.len()))))
            .collect();
        Ok(Some(Box::pin(futures_util::stream::iter(pieces))))
    }

    async fn link_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let mut state = self.write();
        if !state.blobs.contains_key(digest) {
            return Ok(false);
        }
        state
            .repositories
            .entry(repository.to_owned())
            .or_default()
            .blobs
            .insert(digest.clone());
        Ok(true)
    }

    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        Ok(self
            .write()
            .repositories
            .get_mut(repository)
            .is_some_and(|r| r.blobs.remove(digest)))
    }

    async fn create_upload(&self, repository: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let upload = Upload {
            repository: repository.to_owned(),
            chunks: Vec::new(),
            size: 0,
            closed: false,
        };
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Session {
                    started: self.clock.now(),
                    upload: Arc::new(tokio::sync::Mutex::new(upload)),
                },
            );
        Ok(id)
    }

    async fn upload_info(&self, id: &str) -> Result<Option<UploadInfo>> {
        let Some(upload) = self.upload(id) else {
            return Ok(None);
        };
        let u = upload.lock().await;
        Ok((!u.closed).then(|| UploadInfo {
            repository: u.repository.clone(),
            size: u.size,
        }))
    }

    async fn append_upload(&self, id: &str, chunk: Chunk) -> Result<u64> {
        let upload = self.upload(id).ok_or(StorageError::UploadUnknown)?;
        // Holding the session lock for the whole body serialises concurrent PATCHes.
        let mut u = upload.lock().await;
        append_locked(&mut u, chunk).await
    }

    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<u64> {
        let upload = self.upload(id).ok_or(StorageError::UploadUnknown)?;
        let mut u = upload.lock().await;
        self.commit_locked(id, &mut u, digest)
    }

    async fn finish_upload(&self, id: &str, chunk: Chunk, digest: &Digest) -> Result<u64> {
        let upload = self.upload(id).ok_or(StorageError::UploadUnknown)?;
        let mut u = upload.lock().await;
        append_locked(&mut u, chunk).await?;
        self.commit_locked(id, &mut u, digest)
    }

    async fn cancel_upload(&self, id: &str) -> Result<bool> {
        let Some(upload) = self.upload(id) else {
            return Ok(false);
        };
        let mut u = upload.lock().await;
        let was_open = !u.closed;
        u.closed = true;
        self.end_upload(id);
        Ok(was_open)
    }

    async fn purge_uploads(&self, max_age_secs: i64) -> Result<usize> {
        let cutoff = self.clock.now() - max_age_secs;
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let mut purged = 0;
        uploads.retain(|_, s| {
            if s.started >= cutoff {
                return true;
            }
            // A session a request holds is busy: left for the next pass.
            let Ok(mut u) = s.upload.try_lock() else {
                return true;
            };
            u.closed = true;
            u.chunks.clear();
            purged += 1;
            false
        });
        Ok(purged)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        manifest: StoredManifest,
        tags: &[String],
    ) -> Result<()> {
        let mut state = self.write();
        let repo = state.repositories.entry(repository.to_owned()).or_default();
        for tag in tags {
            repo.tags.insert(tag.clone(), manifest.digest.clone());
        }
        repo.referrers.insert(&manifest);
        repo.manifests.insert(manifest.digest.clone(), manifest);
        Ok(())
    }

    async fn get_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        Ok(self
            .read()
            .repositories
            .get(repository)
            .and_then(|r| r.manifests.get(digest).cloned()))
    }

    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>> {
        Ok(self
            .read()
            .repositories
            .get(repository)
            .and_then(|r| r.tags.get(tag).cloned()))
    }

    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let mut state = self.write();
        let Some(repo) = state.repositories.get_mut(repository) else {
            return Ok(false);
        };
        if repo.manifests.remove(digest).is_none() {
            return Ok(false);
        }
        repo.referrers.remove(digest);
        repo.tags.retain(|_, d| d != digest);
        Ok(true)
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool> {
        Ok(self
            .write()
            .repositories
            .get_mut(repository)
            .is_some_and(|r| r.tags.remove(tag).is_some()))
    }

    async fn list_tags(&self, repository: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .read()
            .repositories
            .get(repository)
            .map(|r| r.tags.keys().cloned().collect()))
    }

    async fn list_manifests(&self, repository: &str) -> Result<Vec<StoredManifest>> {
        Ok(self
            .read()
            .repositories
            .get(repository)
            .map(|r| r.manifests.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        Ok(self
            .read()
            .repositories
            .get(repository)
            .map(|r| r.referrers.referrers(subject))
            .unwrap_or_default())
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        Ok(self
            .read()
            .repositories
            .iter()
            .filter(|(_, r)| !r.manifests.is_empty())
            .map(|(n, _)| n.clone())
            .collect())
    }
}
