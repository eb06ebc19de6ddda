//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use super::{body_stream, query_pairs, require_method};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::media::{self, ManifestKind};
use crate::names::is_valid_tag;
use crate::storage::{CollectError, StoredManifest, collect};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// A manifest reference: a tag or a digest.
pub(crate) enum Reference {
    Tag(String),
    Digest(Digest),
}

pub(crate) fn parse_reference(reference: &str) -> Result<Reference> {
    if reference.contains(':') {
        return Ok(Reference::Digest(reference.parse()?));
    }
    if is_valid_tag(reference) {
        return Ok(Reference::Tag(reference.to_owned()));
    }
    Err(RegistryError::new(ErrorCode::ManifestInvalid)
        .with_message("invalid tag")
        .detail(format!("{reference:?} is neither a digest nor a tag matching [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")))
}

pub(super) async fn handle(
    reg: &super::Registry,
    name: &str,
    reference: &str,
    req: &Parts,
    body: Body,
) -> Result<Response> {
    require_method(
        &req.method,
        &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
    )?;
    let reference = parse_reference(reference)?;
    match req.method {
        Method::PUT => put(reg, name, reference, req, body).await,
        Method::DELETE => delete(reg, name, reference).await,
        _ => get(reg, name, reference, req).await,
    }
}

fn unknown(what: impl std::fmt::Display) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestUnknown)
        .detail(format!("manifest {what} is not in this repository"))
}

async fn get(
    reg: &super::Registry,
    name: &str,
    reference: Reference,
    req: &Parts,
) -> Result<Response> {
    let storage = reg.storage();
    let digest = match reference {
        Reference::Digest(d) => d,
        Reference::Tag(t) => storage
            .resolve_tag(name, &t)
            .await?
            .ok_or_else(|| unknown(format!("tag {t:?}")))?,
    };
    let manifest = storage
        .get_manifest(name, &digest)
        .await?
        .ok_or_else(|| unknown(&digest))?;
    check_accept(&req.headers, &manifest.media_type)?;

    let len = manifest.bytes.len();
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(manifest.bytes)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&manifest.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// Content negotiation as CNCF distribution does it: a client that lists media types but
/// not the stored one gets `MANIFEST_UNKNOWN` (it could not parse the document anyway).
/// No `Accept`, or a wildcard, accepts anything.
fn check_accept(headers: &HeaderMap, stored: &str) -> Result<()> {
    let accepted: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect();
    if accepted.is_empty()
        || accepted
            .iter()
            .any(|t| t == "*/*" || t == stored || t == "application/*")
    {
        return Ok(());
    }
    let what = match stored {
        media::OCI_INDEX => "OCI index found, but accept header does not support OCI indexes",
        media::OCI_MANIFEST => {
            "OCI manifest found, but accept header does not support OCI manifests"
        }
        media::DOCKER_MANIFEST_LIST => {
            "manifest list found, but accept header does not support manifest lists"
        }
        _ => "manifest found, but accept header does not support its media type",
    };
    Err(RegistryError::new(ErrorCode::ManifestUnknown)
        .with_message(what)
        .detail(format!(
            "stored media type {stored}; Accept: {}",
            accepted.join(", ")
        )))
}

async fn delete(reg: &super::Registry, name: &str, reference: Reference) -> Result<Response> {
    let storage = reg.storage();
    let deleted = match &reference {
        Reference::Digest(d) => storage.delete_manifest(name, d).await?,
        Reference::Tag(t) => storage.delete_tag(name, t).await?,
    };
    if !deleted {
        return Err(match reference {
            Reference::Digest(d) => unknown(d),
            Reference::Tag(t) => unknown(format!("tag {t:?}")),
        });
    }
    Ok(super::empty_response(StatusCode::ACCEPTED, &[]))
}

fn invalid(detail: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid).detail(detail)
}

async fn put(
    reg: &super::Registry,
    name: &str,
    reference: Reference,
    req: &Parts,
    body: Body,
) -> Result<Response> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|v| !v.is_empty());
    let q = query_pairs(req);
    let limit = reg.options().max_manifest_bytes;
    let bytes = collect(body_stream(body), limit)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge => RegistryError::new(ErrorCode::SizeInvalid)
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .detail(format!("manifests are limited to {limit} bytes")),
            CollectError::Body(why) => invalid(format!("request body could not be read: {why}")),
        })?;

    let checked = validate(reg, name, content_type.as_deref(), &bytes).await?;

    let by_digest = matches!(reference, Reference::Digest(_));
    let (digest, mut tags) = match reference {
        Reference::Digest(d) => {
            let actual = d.algorithm().digest_of(&bytes);
            if actual != d {
                return Err(RegistryError::new(ErrorCode::DigestInvalid)
                    .detail(format!("manifest body hashes to {actual}, not {d}")));
            }
            (d, Vec::new())
        }
        Reference::Tag(t) => (Digest::sha256(&bytes), vec![t]),
    };
    // `?tag=` pushes by digest and tags in one request (distribution-spec 1.1 "tag" param).
    for (k, v) in &q {
        if k == "tag" {
            if !is_valid_tag(v) {
                return Err(invalid(format!("tag parameter {v:?} is not a valid tag")));
            }
            tags.push(v.clone());
        }
    }
    let stored = StoredManifest {
        digest: digest.clone(),
        media_type: checked.media_type,
        bytes,
    };
    reg.storage().put_manifest(name, stored, &tags).await?;

    let mut headers = vec![
        ("Location", format!("/v2/{name}/manifests/{digest}")),
        ("Docker-Content-Digest", digest.to_string()),
    ];
    if let Some(subject) = checked.subject {
        headers.push(("OCI-Subject", subject.to_string()));
    }
    let mut resp = super::empty_response(StatusCode::CREATED, &headers);
    // distribution-spec (dev): one `OCI-Tag` per tag applied by `?tag=` on a push by digest.
    if by_digest {
        for tag in &tags {
            if let Ok(v) = HeaderValue::from_str(tag) {
                resp.headers_mut().append("OCI-Tag", v);
            }
        }
    }
    Ok(resp)
}

struct Checked {
    media_type: String,
    subject: Option<Digest>,
}

/// What a pushed manifest is and what it references, from its bytes alone (no storage):
/// the part of [`validate`] a fuzzer can reach.
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) media_type: String,
    pub(crate) kind: ManifestKind,
    /// Blobs (config and layers) that must be in the repository, unless sparse.
    pub(crate) blobs: Vec<Digest>,
    /// Child manifests (of an index) that must be in the repository, unless sparse.
    pub(crate) children: Vec<Digest>,
    pub(crate) subject: Option<Digest>,
}

/// Parses a pushed manifest: JSON, a known media type consistent with the body, the schema
/// of its kind (via `oci-spec`), and the digests it references. `sparse` skips collecting
/// referenced digests (`RegistryOptions::allow_sparse_index`).
pub(crate) fn shape(content_type: Option<&str>, bytes: &[u8], sparse: bool) -> Result<Shape> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("manifest must be a JSON object"))?;
    let body_type = match obj.get("mediaType") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("mediaType must be a string")),
    };
    let media_type = match (content_type, body_type) {
        (Some(ct), Some(bt)) if ct != bt => {
            return Err(invalid(format!(
                "Content-Type {ct} does not match the manifest's mediaType {bt}"
            )));
        }
        (Some(ct), _) => ct,
        (None, Some(bt)) => bt,
        (None, None) => {
            return Err(invalid(
                "no Content-Type header and no mediaType in the manifest",
            ));
        }
    };
    let schema_version = obj.get("schemaVersion").and_then(serde_json::Value::as_u64);
    let kind = match manifest_kind_or_schema1(media_type, schema_version) {
        Some(k) => k,
        None => {
            return Err(invalid(format!(
                "unsupported manifest media type {media_type:?}; expected one of {}, {}, {}, {}",
                media::OCI_MANIFEST,
                media::OCI_INDEX,
                media::DOCKER_MANIFEST,
                media::DOCKER_MANIFEST_LIST
            )));
        }
    };
    if kind == ManifestKind::Schema1 {
        return Err(RegistryError::new(ErrorCode::Unsupported)
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_message("Docker image manifest schema 1 is not supported")
            .detail("schema 1 manifests are deprecated; push an OCI manifest or a Docker schema 2 manifest"));
    }
    if schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let subject = match kind {
        ManifestKind::Image => {
            let m: oci_spec::image::ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("not a valid image manifest: {e}")))?;
            let mut descriptors = vec![m.config()];
            descriptors.extend(m.layers().iter());
            for d in descriptors.into_iter().filter(|_| !sparse) {
                let media_type = d.media_type().to_string();
                if media::is_non_distributable(&media_type)
                    || d.urls().as_ref().is_some_and(|u| !u.is_empty())
                {
                    continue;
                }
                blobs.push(descriptor_digest(d)?);
            }
            m.subject().as_ref().map(descriptor_digest).transpose()?
        }
        ManifestKind::Index => {
            let idx: oci_spec::image::ImageIndex = serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("not a valid image index: {e}")))?;
            if !sparse {
                for d in idx.manifests() {
                    children.push(descriptor_digest(d)?);
                }
            }
            idx.subject().as_ref().map(descriptor_digest).transpose()?
        }
        ManifestKind::Schema1 => None,
    };
    Ok(Shape {
        media_type: media_type.to_owned(),
        kind,
        blobs,
        children,
        subject,
    })
}

/// Validates a pushed manifest: its [`shape`], and every referenced blob or child manifest
/// present in the repository. The subject may be missing (spec: referrers before their
/// subject).
async fn validate(
    reg: &super::Registry,
    name: &str,
    content_type: Option<&str>,
    bytes: &Bytes,
) -> Result<Checked> {
    let shape = shape(content_type, bytes, reg.options().allow_sparse_index)?;
    let storage = reg.storage();
    let mut missing: Vec<String> = Vec::new();
    for digest in &shape.blobs {
        if storage.blob_size(name, digest).await?.is_none() {
            missing.push(digest.to_string());
        }
    }
    for digest in &shape.children {
        if storage.get_manifest(name, digest).await?.is_none() {
            missing.push(digest.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(RegistryError::new(ErrorCode::ManifestBlobUnknown)
            .detail_json(serde_json::json!({ "missing": missing })));
    }
    Ok(Checked {
        media_type: shape.media_type,
        subject: shape.subject,
    })
}

fn manifest_kind_or_schema1(media_type: &str, schema_version: Option<u64>) -> Option<ManifestKind> {
    if schema_version == Some(1) {
        return Some(ManifestKind::Schema1);
    }
    media::manifest_kind(media_type)
}

fn descriptor_digest(d: &oci_spec::image::Descriptor) -> Result<Digest> {
    let text = d.digest().to_string();
    text.parse::<Digest>()
        .map_err(|e| invalid(format!("descriptor digest {text:?}: {e}")))
}
