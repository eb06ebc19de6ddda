//! OCI distribution-spec error codes and the `{"errors":[…]}` body every failure carries.
//!
//! The codes, their default messages and their HTTP statuses follow the distribution spec
//! (spec.md, "Error Codes") and CNCF distribution's `registry/api/errcode`, so clients that
//! match on message text (some do) see what a real registry sends.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The spec's error codes — exactly the table in spec.md, "Error Codes" (its `code` field
/// "MUST be one of" these). Range failures are 416 answers carrying `BLOB_UPLOAD_INVALID`
/// (uploads) or a plain-text body (blob `Range` reads), never an invented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The message CNCF distribution sends for this code.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::BlobUnknown => "blob unknown to registry",
            Self::BlobUploadInvalid => "blob upload invalid",
            Self::BlobUploadUnknown => "blob upload unknown to registry",
            Self::DigestInvalid => "provided digest did not match uploaded content",
            Self::ManifestBlobUnknown => "blob unknown to registry",
            Self::ManifestInvalid => "manifest invalid",
            Self::ManifestUnknown => "manifest unknown",
            Self::NameInvalid => "invalid repository name",
            Self::NameUnknown => "repository name not known to registry",
            Self::SizeInvalid => "provided length did not match content length",
            Self::Unauthorized => "authentication required",
            Self::Denied => "requested access to the resource is denied",
            Self::Unsupported => "The operation is unsupported.",
            Self::TooManyRequests => "too many requests",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BlobUnknown | Self::ManifestUnknown | Self::NameUnknown => StatusCode::NOT_FOUND,
            Self::BlobUploadUnknown => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Denied => StatusCode::FORBIDDEN,
            Self::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::BlobUploadInvalid
            | Self::DigestInvalid
            | Self::ManifestBlobUnknown
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::SizeInvalid => StatusCode::BAD_REQUEST,
        }
    }
}

/// One failure of a registry request: a spec code, the HTTP status to answer with (usually
/// the code's own), an optional human detail, and extra headers (e.g. `Content-Range`).
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// When set, the answer is this `text/plain` body instead of the JSON error document
    /// (what Go's `http.ServeContent`, and so distribution, sends for a bad `Range`).
    pub plain_body: Option<String>,
}

impl RegistryError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            status: code.status(),
            message: code.default_message().to_owned(),
            detail: None,
            headers: Vec::new(),
            plain_body: None,
        }
    }

    /// 416 for an upload chunk that does not fit the upload (out of order, reversed or
    /// malformed `Content-Range`): `BLOB_UPLOAD_INVALID` as the spec's table allows.
    pub fn upload_range(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BlobUploadInvalid)
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .detail(detail)
    }

    /// Answer with a `text/plain` body instead of the JSON error document.
    pub fn plain(mut self, body: impl Into<String>) -> Self {
        self.plain_body = Some(body.into());
        self
    }

    /// Adds a human-readable explanation; shown to users by most clients.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(serde_json::Value::String(detail.into()));
        self
    }

    pub fn detail_json(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON body the spec prescribes.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Entry<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a serde_json::Value>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            errors: [Entry<'a>; 1],
        }
        let body = Body {
            errors: [Entry {
                code: self.code.as_str(),
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from(r#"{"errors":[]}"#))
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )?;
        if let Some(serde_json::Value::String(d)) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

impl From<crate::storage::StorageError> for RegistryError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError as S;
        match e {
            S::UploadUnknown => RegistryError::new(ErrorCode::BlobUploadUnknown),
            S::RangeMismatch { current } => {
                // 416 with the range the registry holds, so a client can resume (spec: chunked upload).
                let range = if current == 0 {
                    "0-0".to_owned()
                } else {
                    format!("0-{}", current - 1)
                };
                let mut err = RegistryError::upload_range(format!(
                    "chunk does not start at the upload's current offset {current}"
                ));
                if let Ok(v) = HeaderValue::from_str(&range) {
                    err = err.with_header(header::RANGE, v);
                }
                err
            }
            S::LengthMismatch { expected, got } => RegistryError::new(ErrorCode::SizeInvalid)
                .detail(format!("expected {expected} bytes, received {got}")),
            S::BodyInterrupted(why) => RegistryError::new(ErrorCode::BlobUploadInvalid)
                .detail(format!("request body could not be read: {why}")),
            S::DigestMismatch { expected, actual } => RegistryError::new(ErrorCode::DigestInvalid)
                .detail(format!("expected {expected}, content hashes to {actual}")),
            S::Io(_) | S::Corrupt(_) => {
                // The registry's own fault: answer 500 with a spec body so a client prints
                // something readable, and log the cause.
                tracing::error!(error = %e, "storage failure");
                RegistryError::new(ErrorCode::Unsupported)
                    .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                    .with_message("internal storage error")
                    .detail(e.to_string())
            }
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (body, content_type) = match &self.plain_body {
            Some(text) => (text.clone(), "text/plain; charset=utf-8"),
            None => (self.body(), "application/json"),
        };
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        resp
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
