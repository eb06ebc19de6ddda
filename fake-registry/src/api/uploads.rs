//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount) and
//! `GET`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<id>`.

use super::{
    body_stream, content_length, empty_response, query_pairs, query_param, require_method,
};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::storage::{Chunk, StorageError};
use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};

pub(super) async fn start(
    reg: &super::Registry,
    name: &str,
    req: &Parts,
    body: Body,
) -> Result<Response> {
    require_method(&req.method, &[Method::POST])?;
    let q = query_pairs(req);
    let storage = reg.storage();

    if let Some(mount) = query_param(&q, "mount") {
        let digest: Digest = mount.parse()?;
        let mounted = match query_param(&q, "from") {
            Some(from) => {
                crate::names::validate_repository(&from)?;
                storage.blob_size(&from, &digest).await?.is_some()
                    && storage.link_blob(name, &digest).await?
            }
            None => reg.options().automatic_mount && storage.link_blob(name, &digest).await?,
        };
        if mounted {
            return Ok(created(name, &digest));
        }
        // Spec: when the mount cannot be done, fall back to an ordinary upload session.
    }

    // New sessions are when old ones are purged (as distribution's purge runs on a timer).
    reg.purge_expired_uploads().await;
    let declared_len = content_length(&req.headers)?;
    if let Some(d) = query_param(&q, "digest") {
        // Monolithic upload: the whole blob in this one request.
        let digest: Digest = d.parse()?;
        let id = storage.create_upload(name).await?;
        let chunk = Chunk {
            body: body_stream(body),
            expected_offset: None,
            expected_len: declared_len,
        };
        let outcome = storage.finish_upload(&id, chunk, &digest).await;
        if outcome.is_err() {
            let _ = storage.cancel_upload(&id).await;
        }
        outcome?;
        return Ok(created(name, &digest));
    }

    if declared_len.is_some_and(|l| l > 0) {
        return Err(RegistryError::new(ErrorCode::BlobUploadInvalid).detail(
            "a POST with a body must name its digest (?digest=…) for a monolithic upload",
        ));
    }
    let id = storage.create_upload(name).await?;
    Ok(session_response(reg, StatusCode::ACCEPTED, name, &id, 0))
}

pub(super) async fn session(
    reg: &super::Registry,
    name: &str,
    id: &str,
    req: &Parts,
    body: Body,
) -> Result<Response> {
    require_method(
        &req.method,
        &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
    )?;
    let storage = reg.storage();
    let info = storage
        .upload_info(id)
        .await?
        .filter(|i| i.repository == name)
        .ok_or_else(|| unknown_upload(id))?;

    match req.method {
        Method::GET => Ok(session_response(
            reg,
            StatusCode::NO_CONTENT,
            name,
            id,
            info.size,
        )),
        Method::DELETE => {
            storage.cancel_upload(id).await?;
            Ok(empty_response(StatusCode::NO_CONTENT, &[]))
        }
        Method::PATCH => {
            let chunk = chunk_of(req, body)?;
            let size = storage
                .append_upload(id, chunk)
                .await
                .map_err(|e| upload_error(e, id))?;
            Ok(session_response(reg, StatusCode::ACCEPTED, name, id, size))
        }
        _ => {
            // PUT ?digest=…, optionally with a last chunk.
            let q = query_pairs(req);
            let digest: Digest = query_param(&q, "digest")
                .ok_or_else(|| {
                    RegistryError::new(ErrorCode::DigestInvalid)
                        .with_message("invalid digest")
                        .detail("closing an upload needs ?digest=<algorithm>:<hex>")
                })?
                .parse()?;
            let chunk = chunk_of(req, body)?;
            // Append and commit under one hold of the session: of concurrent final PUTs one
            // wins, the others get BLOB_UPLOAD_UNKNOWN.
            storage
                .finish_upload(id, chunk, &digest)
                .await
                .map_err(|e| upload_error(e, id))?;
            Ok(created(name, &digest))
        }
    }
}

/// The body of a PATCH or PUT, with what `Content-Range`/`Content-Length` say of it.
fn chunk_of(req: &Parts, body: Body) -> Result<Chunk> {
    let (expected_offset, expected_len) = chunk_bounds(&req.headers)?;
    Ok(Chunk {
        expected_offset,
        expected_len,
        body: body_stream(body),
    })
}

/// The offset and length a chunk's `Content-Range`/`Content-Length` declare, checked for
/// agreement.
pub(crate) fn chunk_bounds(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>)> {
    let declared_len = content_length(headers)?;
    let range = content_range(headers)?;
    // `end - start + 1` overflows for `0-18446744073709551615`; such a range cannot be
    // satisfied by any body, so it is a 416 like any other range that does not fit.
    let range_len = match range {
        Some((start, end)) => Some((end - start).checked_add(1).ok_or_else(|| {
            RegistryError::upload_range(format!(
                "Content-Range {start}-{end} is longer than any upload"
            ))
        })?),
        None => None,
    };
    if let (Some(range_len), Some((start, end)), Some(len)) = (range_len, range, declared_len)
        && range_len != len
    {
        return Err(RegistryError::new(ErrorCode::SizeInvalid).detail(format!(
            "Content-Range {start}-{end} is {range_len} bytes but Content-Length is {len}"
        )));
    }
    Ok((range.map(|(s, _)| s), range_len.or(declared_len)))
}

/// `Content-Range: <start>-<end>` (the spec's form; `bytes <start>-<end>/<total>` is
/// accepted too, as some clients send it).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    let invalid = || {
        RegistryError::upload_range(format!(
            "Content-Range {text:?} is not of the form <start>-<end> with start <= end"
        ))
    };
    let spec = text
        .strip_prefix("bytes=")
        .or_else(|| text.strip_prefix("bytes "))
        .unwrap_or(text);
    let spec = spec.split('/').next().unwrap_or(spec);
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let a: u64 = a.trim().parse().map_err(|_| invalid())?;
    let b: u64 = b.trim().parse().map_err(|_| invalid())?;
    if b < a {
        return Err(invalid());
    }
    Ok(Some((a, b)))
}

fn upload_error(e: StorageError, id: &str) -> RegistryError {
    match e {
        StorageError::UploadUnknown => unknown_upload(id),
        other => other.into(),
    }
}

fn unknown_upload(id: &str) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUploadUnknown)
        .detail(format!("no upload session {id:?} in this repository"))
}

fn created(name: &str, digest: &Digest) -> Response {
    empty_response(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

fn session_response(
    reg: &super::Registry,
    status: StatusCode,
    name: &str,
    id: &str,
    size: u64,
) -> Response {
    // Range is inclusive; an empty session reports 0-0 as distribution does.
    let end = size.saturating_sub(1);
    let mut headers = vec![
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", format!("0-{end}")),
        ("Docker-Upload-UUID", id.to_owned()),
    ];
    if let Some(min) = reg.options().chunk_min_length {
        headers.push(("OCI-Chunk-Min-Length", min.to_string()));
    }
    empty_response(status, &headers)
}
