//! The OCI Distribution HTTP API over a [`Storage`]: one handler module per endpoint family
//! (the shape of CNCF distribution's `registry/handlers`).

mod blobs;
mod listing;
mod manifests;
mod referrers;
pub mod route;
mod uploads;

// Pure parsers of request parts, for `crate::fuzzing`.
pub(crate) use manifests::{Reference, parse_reference, shape};
pub(crate) use uploads::chunk_bounds;

use crate::auth::Clock;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::names;
use crate::storage::{ByteStream, Storage};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use route::Route;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// How long an upload session lives by default (distribution purges after a week; a test
/// registry keeps less).
pub const DEFAULT_UPLOAD_EXPIRY_SECS: i64 = 3600;
/// Longest time between purge passes (they run when a session is created).
const MAX_PURGE_INTERVAL_SECS: i64 = 60;

/// Behaviour switches of the core registry (vendor profiles add their own on top).
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Largest manifest accepted; the spec asks registries to accept at least 4 MiB.
    pub max_manifest_bytes: usize,
    /// Advertised as `OCI-Chunk-Min-Length` on upload sessions, when set.
    pub chunk_min_length: Option<u64>,
    /// Sparse content: accept an index whose child manifests, or an image manifest whose
    /// blobs, are not in the repository (olareg's `--api-sparse-image --api-sparse-index`).
    pub allow_sparse_index: bool,
    /// Automatic content discovery: `POST ?mount=<digest>` without `from` mounts the blob
    /// from a repository that holds it (spec 1.1). Off by default, as in CNCF distribution
    /// ≥ 2.8; a virtual host only mounts from a repository the caller may pull.
    pub automatic_mount: bool,
    /// Cap on `n` for tag and catalog pages (ECR caps at 1000), `None` = no cap.
    pub page_cap: Option<usize>,
    /// Upload sessions older than this many seconds are purged (distribution's upload
    /// purging; default one hour); `None` keeps them forever.
    pub upload_expiry_secs: Option<i64>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 * 1024 * 1024,
            chunk_min_length: None,
            allow_sparse_index: false,
            automatic_mount: false,
            page_cap: None,
            upload_expiry_secs: Some(DEFAULT_UPLOAD_EXPIRY_SECS),
        }
    }
}

/// The registry: storage plus options. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    options: RegistryOptions,
    /// The clock upload expiry goes by (the storage's, so session ages agree).
    clock: Clock,
    /// Clock time before which no purge pass runs again.
    next_purge: AtomicI64,
}

impl Registry {
    pub fn new(storage: Arc<dyn Storage>, options: RegistryOptions) -> Self {
        Self::with_clock(storage, options, Clock::system())
    }

    /// A registry whose upload expiry goes by `clock` (give the storage the same clock).
    pub fn with_clock(storage: Arc<dyn Storage>, options: RegistryOptions, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                options,
                clock,
                next_purge: AtomicI64::new(i64::MIN),
            }),
        }
    }

    /// Purges expired upload sessions, at most once per interval (a fraction of the expiry,
    /// at most a minute). Called when a session is created; failures are logged only.
    pub async fn purge_expired_uploads(&self) {
        let Some(expiry) = self.inner.options.upload_expiry_secs else {
            return;
        };
        let now = self.inner.clock.now();
        let due = self.inner.next_purge.load(Ordering::SeqCst);
        let interval = (expiry / 4).clamp(1, MAX_PURGE_INTERVAL_SECS);
        if now < due
            || self
                .inner
                .next_purge
                .compare_exchange(due, now + interval, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        match self.inner.storage.purge_uploads(expiry).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired upload sessions purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired upload sessions failed"),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// The axum router serving the whole `/v2/` API.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(dispatch)
            .with_state(self.clone())
            .layer(axum::middleware::map_response(api_version_header))
    }

    /// Serves one request (the router's only handler; also callable directly by a
    /// front end that has done its own routing, such as an auth layer).
    pub async fn handle(&self, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let route = route::parse(parts.uri.path());
        let Some(route) = route else {
            return RegistryError::new(ErrorCode::Unsupported)
                .with_status(StatusCode::NOT_FOUND)
                .with_message("not found")
                .detail(format!(
                    "{} is not an endpoint of the distribution API",
                    parts.uri.path()
                ))
                .into_response();
        };
        let result = match route {
            Route::Base => base(&parts),
            Route::Catalog => listing::catalog(self, &parts).await,
            Route::Tags { name } => with_name(&name, || listing::tags(self, &name, &parts)).await,
            Route::Manifest { name, reference } => {
                with_name(&name, || {
                    manifests::handle(self, &name, &reference, &parts, body)
                })
                .await
            }
            Route::Blob { name, digest } => {
                with_name(&name, || blobs::handle(self, &name, &digest, &parts)).await
            }
            Route::UploadStart { name } => {
                with_name(&name, || uploads::start(self, &name, &parts, body)).await
            }
            Route::Upload { name, id } => {
                with_name(&name, || uploads::session(self, &name, &id, &parts, body)).await
            }
            Route::Referrers { name, digest } => {
                with_name(&name, || referrers::list(self, &name, &digest, &parts)).await
            }
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }
}

async fn dispatch(State(registry): State<Registry>, req: Request) -> Response {
    registry.handle(req).await
}

async fn with_name<F, Fut>(name: &str, f: F) -> Result<Response>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Response>>,
{
    names::validate_repository(name)?;
    f().await
}

async fn api_version_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "Docker-Distribution-Api-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn base(req: &Parts) -> Result<Response> {
    require_method(&req.method, &[Method::GET, Method::HEAD])?;
    Ok(json_response(
        StatusCode::OK,
        "application/json",
        b"{}".to_vec(),
        &req.method,
    ))
}

/// 405 `UNSUPPORTED` unless the method is one of `allowed`.
fn require_method(method: &Method, allowed: &[Method]) -> Result<()> {
    if allowed.contains(method) {
        return Ok(());
    }
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut err = RegistryError::new(ErrorCode::Unsupported)
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .detail(format!(
            "method {method} is not allowed here; allowed: {}",
            allow.join(", ")
        ));
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        err = err.with_header(header::ALLOW, v);
    }
    Err(err)
}

/// A response with a fixed body and explicit `Content-Length` (kept on `HEAD`, body dropped).
fn json_response(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
    method: &Method,
) -> Response {
    let len = body.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// An empty response with `Content-Length: 0` and the given headers.
fn empty_response(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    resp
}

/// The request body as a stream of chunks.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// `Content-Length`, when present and well-formed.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                RegistryError::new(ErrorCode::SizeInvalid).detail("Content-Length is not a number")
            }),
    }
}

/// Query parameters, decoded, in order (repeats kept: `?tag=a&tag=b`).
fn query_pairs(req: &Parts) -> Vec<(String, String)> {
    req.uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode_query(k), decode_query(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode_query(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}
