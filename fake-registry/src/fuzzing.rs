//! Entry points for the cargo-fuzz targets in `fuzz/` (see `docs/fuzzing.md`): narrow
//! wrappers over the request parsers that are private to their modules. Not an API; nothing
//! here opens a socket or touches storage.

use crate::api;
use crate::digest::Digest;
use crate::error::RegistryError;
use crate::media::ManifestKind;
use http::{HeaderMap, HeaderValue, header};

/// A manifest reference as `PUT`/`GET`/`DELETE /v2/<name>/manifests/<reference>` reads it.
#[derive(Debug)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Parses the `<reference>` of a manifest route.
pub fn reference(text: &str) -> Result<Reference, RegistryError> {
    Ok(match api::parse_reference(text)? {
        api::Reference::Tag(t) => Reference::Tag(t),
        api::Reference::Digest(d) => Reference::Digest(d),
    })
}

/// What the manifest `PUT` handler reads from a pushed body before it asks storage.
#[derive(Debug)]
pub struct ManifestShape {
    pub media_type: String,
    pub kind: ManifestKind,
    pub blobs: Vec<Digest>,
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// Parses a pushed manifest (`content_type` as the `Content-Type` header's media type).
pub fn manifest(
    content_type: Option<&str>,
    bytes: &[u8],
    sparse: bool,
) -> Result<ManifestShape, RegistryError> {
    let s = api::shape(content_type, bytes, sparse)?;
    Ok(ManifestShape {
        media_type: s.media_type,
        kind: s.kind,
        blobs: s.blobs,
        children: s.children,
        subject: s.subject,
    })
}

/// The offset and length an upload chunk declares.
#[derive(Debug)]
pub struct ChunkBounds {
    pub offset: Option<u64>,
    pub len: Option<u64>,
}

/// The offset and length an upload chunk declares through `Content-Range` and
/// `Content-Length` (raw header values); `None` when a value is not a valid header value at
/// all (HTTP would not deliver it).
pub fn chunk_bounds(
    content_range: Option<&[u8]>,
    content_length: Option<&[u8]>,
) -> Option<Result<ChunkBounds, RegistryError>> {
    let mut headers = HeaderMap::new();
    if let Some(v) = content_range {
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_bytes(v).ok()?);
    }
    if let Some(v) = content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_bytes(v).ok()?);
    }
    Some(api::chunk_bounds(&headers).map(|(offset, len)| ChunkBounds { offset, len }))
}
