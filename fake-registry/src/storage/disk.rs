//! On-disk storage (`--storage DIR`). Survives restarts; a `kill -9` loses nothing that was
//! acknowledged, because every write a response depends on is fsynced before the response:
//! data is written to a temporary name, synced, renamed into place, and the directory synced.
//!
//! Layout (names cannot collide: repository components never start with `_`):
//! ```text
//! DIR/blobs/<alg>/<hex>                          content (blobs and manifests)
//! DIR/repositories/<name>/_layers/<alg>/<hex>    empty: blob linked into the repository
//! DIR/repositories/<name>/_manifests/<alg>/<hex> the manifest's media type
//! DIR/repositories/<name>/_tags/<tag>            the digest the tag points at
//! DIR/uploads/<uuid>/{repository,data,started}   an upload session (started: unix seconds)
//! DIR/tmp/                                       staging for atomic writes
//! ```

use super::{
    ByteStream, Chunk, Referrer, ReferrersIndex, Result, Storage, StorageError, StoredManifest,
    UploadInfo,
};
use crate::auth::Clock;
use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::{Read, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub struct DiskStorage {
    root: PathBuf,
    /// One lock per upload session, so concurrent requests on a session serialise.
    upload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When sessions start (written to their `started` file), for expiry.
    clock: Clock,
    /// Referrers indexes of the repositories queried so far: built from disk on the first
    /// query, then kept up to date by this process's manifest puts and deletes.
    referrers: tokio::sync::Mutex<HashMap<String, ReferrersIndex>>,
}

impl DiskStorage {
    /// Opens (creating if needed) a storage directory. Sessions left by a previous process
    /// are kept: a client may resume them.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Self::open_with_clock(root, Clock::system())
    }

    /// [`Self::open`], sessions starting (and expiring) by `clock`.
    pub fn open_with_clock(root: impl Into<PathBuf>, clock: Clock) -> std::io::Result<Self> {
        let root = root.into();
        for sub in ["blobs", "repositories", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // Leftover staging files are writes that were never acknowledged.
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Self {
            root,
            upload_locks: Mutex::new(HashMap::new()),
            clock,
            referrers: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn repo_path(&self, repository: &str) -> PathBuf {
        // The API layer validated the name against the spec grammar: no `..`, no leading `/`.
        self.root.join("repositories").join(repository)
    }

    fn link_path(&self, repository: &str, kind: &str, d: &Digest) -> PathBuf {
        self.repo_path(repository)
            .join(kind)
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn upload_dir(&self, id: &str) -> Option<PathBuf> {
        // Only ids this storage made (uuid text) name a directory: no path tricks.
        let ok = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| self.root.join("uploads").join(id))
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.upload_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    /// How many manifests `repository`'s referrers index parsed (tests).
    #[cfg(test)]
    pub(crate) async fn referrer_parses(&self, repository: &str) -> u64 {
        self.referrers
            .lock()
            .await
            .get(repository)
            .map_or(0, ReferrersIndex::parsed)
    }

    fn forget_upload_lock(&self, id: &str) {
        self.upload_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Verifies and stores the session in `dir`, whose lock the caller holds.
    async fn commit_held(&self, dir: PathBuf, digest: &Digest) -> Result<u64> {
        let blob = self.blob_path(digest);
        let digest = digest.clone();
        let this_root = self.root.clone();
        self.blocking(move |root| {
            let Some(repo) = read_opt(&dir.join("repository"))? else {
                return Err(StorageError::UploadUnknown);
            };
            let repository = String::from_utf8_lossy(&repo).into_owned();
            let data = dir.join("data");
            let mut f = std::fs::File::open(&data)?;
            let mut hasher = digest.algorithm().hasher();
            let mut buf = vec![0u8; 1024 * 1024];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                hasher.update(&buf[..n]);
            }
            let actual = hasher.finish();
            if actual != digest {
                std::fs::remove_dir_all(&dir)?;
                return Err(StorageError::DigestMismatch {
                    expected: digest,
                    actual,
                });
            }
            if blob.exists() {
                std::fs::remove_file(&data)?;
            } else {
                rename_durable(&data, &blob)?;
            }
            let link = this_root
                .join("repositories")
                .join(&repository)
                .join("_layers")
                .join(digest.algorithm().as_str())
                .join(digest.hex());
            write_atomic(root, &link, b"")?;
            std::fs::remove_dir_all(&dir)?;
            sync_dir(&root.join("uploads"))?;
            Ok(size)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| StorageError::Corrupt(format!("storage task failed: {e}")))?
    }
}

/// Appends a chunk to the session in `dir`, whose lock the caller holds; all or nothing.
async fn append_held(dir: &Path, mut chunk: Chunk) -> Result<u64> {
    let data = dir.join("data");
    let mut file = match tokio::fs::OpenOptions::new().append(true).open(&data).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::UploadUnknown);
        }
        Err(e) => return Err(e.into()),
    };
    let start = file.metadata().await?.len();
    if let Some(offset) = chunk.expected_offset
        && offset != start
    {
        return Err(StorageError::RangeMismatch { current: start });
    }
    let outcome: Result<u64> = async {
        let mut len = 0u64;
        while let Some(piece) = chunk.body.next().await {
            let piece = piece.map_err(|e| StorageError::BodyInterrupted(e.to_string()))?;
            len += piece.len() as u64;
            if let Some(expected) = chunk.expected_len
                && len > expected
            {
                return Err(StorageError::LengthMismatch { expected, got: len });
            }
            // Memory per upload is one piece of the body, whatever the blob's size.
            file.write_all(&piece).await?;
        }
        if let Some(expected) = chunk.expected_len
            && expected != len
        {
            return Err(StorageError::LengthMismatch { expected, got: len });
        }
        file.flush().await?;
        // Acknowledged bytes must survive a crash.
        file.sync_data().await?;
        Ok(start + len)
    }
    .await;
    if outcome.is_err() {
        // All or nothing: drop the partial chunk.
        file.set_len(start).await?;
        file.sync_data().await?;
    }
    outcome
}

/// Writes `data` to `dest` atomically and durably.
fn write_atomic(root: &Path, dest: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = root.join("tmp").join(uuid::Uuid::new_v4().to_string());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    rename_durable(&tmp, dest)
}

/// Renames into place (creating parents) and syncs the directories involved.
fn rename_durable(from: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("destination has no parent"))?;
    create_dirs_durable(parent)?;
    std::fs::rename(from, dest)?;
    sync_dir(parent)
}

fn create_dirs_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn remove_if_exists(p: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_opt(p: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(p) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn list_dir(p: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut out = Vec::new();
            for e in rd {
                out.push(e?.file_name().to_string_lossy().into_owned());
            }
            out.sort();
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// When a session started: its `started` file, or (sessions of older versions) the
/// modification time of its `repository` file. `None` if the session is gone.
fn session_started(dir: &Path) -> std::io::Result<Option<i64>> {
    if let Some(text) = read_opt(&dir.join("started"))?
        && let Some(t) = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    {
        return Ok(Some(t));
    }
    match std::fs::metadata(dir.join("repository")) {
        Ok(m) => Ok(Some(
            m.modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_digest(text: &[u8], what: &Path) -> Result<Digest> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| StorageError::Corrupt(format!("{} does not hold a digest", what.display())))
}

#[async_trait]
impl Storage for DiskStorage {
    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>> {
        if !self.link_path(repository, "_layers", digest).exists() {
            return Ok(None);
        }
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.blob_path(digest)).await?)
    }

    async fn read_blob(
        &self,
        repository: &str,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>> {
        if !self.link_path(repository, "_layers", digest).exists() {
            return Ok(None);
        }
        let mut file = match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        file.seek(SeekFrom::Start(range.start)).await?;
        let limited = tokio::io::AsyncReadExt::take(file, range.end - range.start);
        Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            limited,
            64 * 1024,
        ))))
    }

    async fn link_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let blob = self.blob_path(digest);
        let link = self.link_path(repository, "_layers", digest);
        self.blocking(move |root| {
            if !blob.exists() {
                return Ok(false);
            }
            write_atomic(root, &link, b"")?;
            Ok(true)
        })
        .await
    }

    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let link = self.link_path(repository, "_layers", digest);
        self.blocking(move |_| Ok(remove_if_exists(&link)?)).await
    }

    async fn create_upload(&self, repository: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.root.join("uploads").join(&id);
        let repository = repository.to_owned();
        let started = self.clock.now();
        self.blocking(move |root| {
            // Stage the whole session directory, then rename it in: a session exists
            // completely or not at all.
            let staging = root
                .join("tmp")
                .join(format!("upload-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&staging)?;
            let mut f = std::fs::File::create(staging.join("repository"))?;
            f.write_all(repository.as_bytes())?;
            f.sync_all()?;
            std::fs::File::create(staging.join("data"))?.sync_all()?;
            let mut f = std::fs::File::create(staging.join("started"))?;
            f.write_all(started.to_string().as_bytes())?;
            f.sync_all()?;
            sync_dir(&staging)?;
            rename_durable(&staging, &dir)?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    async fn upload_info(&self, id: &str) -> Result<Option<UploadInfo>> {
        let Some(dir) = self.upload_dir(id) else {
            return Ok(None);
        };
        let lock = self.upload_lock(id);
        let _held = lock.lock().await;
        self.blocking(move |_| {
            let Some(repo) = read_opt(&dir.join("repository"))? else {
                return Ok(None);
            };
            let size = std::fs::metadata(dir.join("data"))?.len();
            Ok(Some(UploadInfo {
                repository: String::from_utf8_lossy(&repo).into_owned(),
                size,
            }))
        })
        .await
    }

    async fn append_upload(&self, id: &str, chunk: Chunk) -> Result<u64> {
        let dir = self.upload_dir(id).ok_or(StorageError::UploadUnknown)?;
        let lock = self.upload_lock(id);
        let _held = lock.lock().await;
        append_held(&dir, chunk).await
    }

    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<u64> {
        let dir = self.upload_dir(id).ok_or(StorageError::UploadUnknown)?;
        let lock = self.upload_lock(id);
        let _held = lock.lock().await;
        let result = self.commit_held(dir, digest).await;
        self.forget_upload_lock(id);
        result
    }

    async fn finish_upload(&self, id: &str, chunk: Chunk, digest: &Digest) -> Result<u64> {
        let dir = self.upload_dir(id).ok_or(StorageError::UploadUnknown)?;
        let lock = self.upload_lock(id);
        // One hold for the append and the commit: a concurrent final PUT waits here, then
        // finds the session gone.
        let _held = lock.lock().await;
        append_held(&dir, chunk).await?;
        let result = self.commit_held(dir, digest).await;
        self.forget_upload_lock(id);
        result
    }

    async fn cancel_upload(&self, id: &str) -> Result<bool> {
        let Some(dir) = self.upload_dir(id) else {
            return Ok(false);
        };
        let lock = self.upload_lock(id);
        let _held = lock.lock().await;
        let removed = self
            .blocking(move |_| match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            })
            .await;
        self.forget_upload_lock(id);
        removed
    }

    async fn purge_uploads(&self, max_age_secs: i64) -> Result<usize> {
        let cutoff = self.clock.now() - max_age_secs;
        let uploads = self.root.join("uploads");
        let ids = self.blocking(move |_| Ok(list_dir(&uploads)?)).await?;
        let mut purged = 0;
        for id in ids {
            let Some(dir) = self.upload_dir(&id) else {
                continue;
            };
            let lock = self.upload_lock(&id);
            // A session a request holds is busy: left for the next pass.
            let Ok(_held) = lock.try_lock() else {
                continue;
            };
            let removed = self
                .blocking(move |root| {
                    let Some(started) = session_started(&dir)? else {
                        return Ok(false);
                    };
                    if started >= cutoff {
                        return Ok(false);
                    }
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                        Err(e) => return Err(e.into()),
                    }
                    sync_dir(&root.join("uploads"))?;
                    Ok(true)
                })
                .await?;
            if removed {
                purged += 1;
                self.forget_upload_lock(&id);
            }
        }
        Ok(purged)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        manifest: StoredManifest,
        tags: &[String],
    ) -> Result<()> {
        let blob = self.blob_path(&manifest.digest);
        let link = self.link_path(repository, "_manifests", &manifest.digest);
        let tags_dir = self.repo_path(repository).join("_tags");
        let tags = tags.to_vec();
        let indexed = manifest.clone();
        self.blocking(move |root| {
            if !blob.exists() {
                write_atomic(root, &blob, &manifest.bytes)?;
            }
            write_atomic(root, &link, manifest.media_type.as_bytes())?;
            for tag in tags {
                write_atomic(
                    root,
                    &tags_dir.join(tag),
                    manifest.digest.to_string().as_bytes(),
                )?;
            }
            Ok(())
        })
        .await?;
        if let Some(index) = self.referrers.lock().await.get_mut(repository) {
            index.insert(&indexed);
        }
        Ok(())
    }

    async fn get_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let blob = self.blob_path(digest);
        let link = self.link_path(repository, "_manifests", digest);
        let digest = digest.clone();
        self.blocking(move |_| {
            let Some(media_type) = read_opt(&link)? else {
                return Ok(None);
            };
            let Some(bytes) = read_opt(&blob)? else {
                return Err(StorageError::Corrupt(format!(
                    "manifest {digest} is linked but has no content"
                )));
            };
            Ok(Some(StoredManifest {
                digest,
                media_type: String::from_utf8_lossy(&media_type).into_owned(),
                bytes: Bytes::from(bytes),
            }))
        })
        .await
    }

    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>> {
        let path = self.repo_path(repository).join("_tags").join(tag);
        self.blocking(move |_| match read_opt(&path)? {
            Some(text) => Ok(Some(parse_digest(&text, &path)?)),
            None => Ok(None),
        })
        .await
    }

    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let link = self.link_path(repository, "_manifests", digest);
        let tags_dir = self.repo_path(repository).join("_tags");
        let removed = digest.clone();
        let digest = digest.clone();
        let deleted = self
            .blocking(move |_| {
                if !remove_if_exists(&link)? {
                    return Ok(false);
                }
                for tag in list_dir(&tags_dir)? {
                    let path = tags_dir.join(&tag);
                    if let Some(text) = read_opt(&path)?
                        && parse_digest(&text, &path)? == digest
                    {
                        remove_if_exists(&path)?;
                    }
                }
                Ok(true)
            })
            .await?;
        if deleted && let Some(index) = self.referrers.lock().await.get_mut(repository) {
            index.remove(&removed);
        }
        Ok(deleted)
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool> {
        let path = self.repo_path(repository).join("_tags").join(tag);
        self.blocking(move |_| Ok(remove_if_exists(&path)?)).await
    }

    async fn list_tags(&self, repository: &str) -> Result<Option<Vec<String>>> {
        let repo = self.repo_path(repository);
        self.blocking(move |_| {
            if !repo.join("_manifests").is_dir() && !repo.join("_layers").is_dir() {
                return Ok(None);
            }
            Ok(Some(list_dir(&repo.join("_tags"))?))
        })
        .await
    }

    async fn list_manifests(&self, repository: &str) -> Result<Vec<StoredManifest>> {
        let dir = self.repo_path(repository).join("_manifests");
        let mut digests = Vec::new();
        for alg in ["sha256", "sha512"] {
            let alg_dir = dir.join(alg);
            let names = self.blocking(move |_| Ok(list_dir(&alg_dir)?)).await?;
            for hex in names {
                let text = format!("{alg}:{hex}");
                digests.push(parse_digest(text.as_bytes(), &dir)?);
            }
        }
        let mut out = Vec::new();
        for d in digests {
            if let Some(m) = self.get_manifest(repository, &d).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        // Held while a first query builds the index, so a put or delete meanwhile waits
        // and then updates the built index.
        let mut indexes = self.referrers.lock().await;
        if !indexes.contains_key(repository) {
            let mut index = ReferrersIndex::default();
            for m in self.list_manifests(repository).await? {
                index.insert(&m);
            }
            indexes.insert(repository.to_owned(), index);
        }
        Ok(indexes
            .get(repository)
            .map(|i| i.referrers(subject))
            .unwrap_or_default())
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        self.blocking(|root| {
            let mut out = Vec::new();
            let mut stack = vec![(root.join("repositories"), String::new())];
            while let Some((dir, name)) = stack.pop() {
                for child in list_dir(&dir)? {
                    if child.starts_with('_') {
                        continue;
                    }
                    let child_name = if name.is_empty() {
                        child.clone()
                    } else {
                        format!("{name}/{child}")
                    };
                    let path = dir.join(&child);
                    if !list_dir(&path.join("_manifests").join("sha256"))?.is_empty()
                        || !list_dir(&path.join("_manifests").join("sha512"))?.is_empty()
                    {
                        out.push(child_name.clone());
                    }
                    if path.is_dir() {
                        stack.push((path, child_name));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}
