//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with single byte ranges.

use super::{empty_response, require_method};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};

pub(super) async fn handle(
    reg: &super::Registry,
    name: &str,
    digest: &str,
    req: &Parts,
) -> Result<Response> {
    require_method(&req.method, &[Method::GET, Method::HEAD, Method::DELETE])?;
    let digest: Digest = digest.parse()?;
    let storage = reg.storage();
    if req.method == Method::DELETE {
        return if storage.unlink_blob(name, &digest).await? {
            Ok(empty_response(
                StatusCode::ACCEPTED,
                &[("Docker-Content-Digest", digest.to_string())],
            ))
        } else {
            Err(unknown(&digest))
        };
    }
    let size = storage
        .blob_size(name, &digest)
        .await?
        .ok_or_else(|| unknown(&digest))?;
    let range = match req.headers.get(header::RANGE) {
        Some(v) => parse_range(v.to_str().unwrap_or(""), size)?,
        None => None,
    };
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size),
    };
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        let stream = storage
            .read_blob(name, &digest, start..end)
            .await?
            .ok_or_else(|| unknown(&digest))?;
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v.clone());
        // Digests never change content: strong validator, cacheable forever.
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, etag);
        }
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", start, end - 1, size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

fn unknown(digest: &Digest) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUnknown)
        .detail_json(serde_json::json!({ "digest": digest.to_string() }))
}

/// Parses a single `bytes=` range against a blob of `size` bytes, returning the half-open
/// byte interval to send. `Ok(None)` means "ignore the header and send everything" (RFC 9110
/// lets a server ignore ranges it does not support, e.g. several ranges at once).
/// Unsatisfiable ranges are 416 with `Content-Range: bytes */size`.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let unsatisfiable = || {
        let mut e = RegistryError::new(ErrorCode::BlobUnknown)
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .plain(format!(
                "invalid range: range {value:?} cannot be satisfied by a blob of {size} bytes\n"
            ));
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            e = e.with_header(header::CONTENT_RANGE, v);
        }
        e
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Err(unsatisfiable());
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-N`: the last N bytes
        (true, false) => {
            let n = num(last)?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            Ok(Some((size.saturating_sub(n), size)))
        }
        // `A-`: from A to the end
        (false, true) => {
            let a = num(first)?;
            if a >= size {
                return Err(unsatisfiable());
            }
            Ok(Some((a, size)))
        }
        // `A-B`: inclusive, B clamped to the end
        (false, false) => {
            let (a, b) = (num(first)?, num(last)?);
            if b < a || a >= size {
                return Err(unsatisfiable());
            }
            Ok(Some((a, b.min(size - 1) + 1)))
        }
        (true, true) => Err(unsatisfiable()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;
    use rstest::rstest;

    #[rstest]
    #[case("bytes=500-1499", 3000, Some((500, 1500)))]
    #[case("bytes=500-", 3000, Some((500, 3000)))]
    #[case("bytes=-500", 3000, Some((2500, 3000)))]
    #[case("bytes=-5000", 3000, Some((0, 3000)))]
    #[case("bytes=2000-5000", 3000, Some((2000, 3000)))]
    #[case("bytes=0-0", 1, Some((0, 1)))]
    #[case("items=0-1", 3000, None)]
    #[case("bytes=0-1,5-6", 3000, None)]
    fn satisfiable(#[case] v: &str, #[case] size: u64, #[case] want: Option<(u64, u64)>) {
        assert_eq!(parse_range(v, size).unwrap(), want);
    }

    #[rstest]
    #[case("bytes=500-0", 3000)]
    #[case("bytes=5000-10000", 3000)]
    #[case("bytes=3000-", 3000)]
    #[case("bytes=-0", 3000)]
    #[case("bytes=-", 3000)]
    #[case("bytes=a-b", 3000)]
    #[case("bytes=0-", 0)]
    fn unsatisfiable(#[case] v: &str, #[case] size: u64) {
        let err = parse_range(v, size).unwrap_err();
        assert_eq!(err.status.as_u16(), 416);
        assert!(
            err.headers
                .iter()
                .any(|(n, v)| n == "content-range" && v == &format!("bytes */{size}"))
        );
    }
}
