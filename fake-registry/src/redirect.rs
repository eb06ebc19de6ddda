//! Blob downloads redirected to a separate storage host, as ACR (Azure Blob Storage SAS URLs)
//! and ECR (S3 presigned URLs) do. The registry answers an authorized blob `GET` with `307`
//! and a `Location` on the storage host; the storage host serves the blob to a request that
//! carries no `Authorization` header and refuses, with the vendor's XML error, one that does
//! (the client forwarded the registry's credentials across hosts).
//!
//! The query of the `Location` is signed by the fleet (HMAC-SHA256 over the path and the
//! expiry) and expires, so the storage host serves exactly the blobs the registry sent a
//! client to, for a limited time, and nothing else.
//!
//! Sources (behaviours.md §1.3 and §4.4; docs/profiles/acr.md and ecr.md list each behaviour
//! with its test): sigstore/cosign#3331 (ACR's 307 headers), distribution#3574 (the Azure
//! driver's path shape), renovate#6640 and spring-cloud-dataflow#4412 (Azure's 400
//! `InvalidAuthenticationInfo` with a BOM), Azure/acr#217 (the SAS URL without Authorization
//! works), renovate#6641 (ECR's S3 URLs carry `X-Amz-Algorithm`), catalyst/moodle-tool_objectfs
//! #303 and request/request#860 (S3's 400 `InvalidArgument` "Only one auth mechanism allowed").

use crate::api::Registry;
use crate::auth::{Clock, Presented};
use crate::digest::Digest;
use crate::journal::Redactor;
use crate::profile::Ctx;
use crate::profile::bearer::{describe, humantime_rfc3339};
use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// How long a redirect URL is valid. Neither vendor's exact lifetime is public *[unverified]*;
/// 20 minutes is long enough for any scenario and short enough to test expiry with the clock.
pub const URL_LIFETIME: i64 = 20 * 60;

/// Azure's message for a request whose `Authorization` header it cannot use.
pub const AZURE_BAD_AUTH: &str = "Authentication information is not given in the correct format. Check the value of Authorization header.";
/// S3's message for a presigned URL that also carries an `Authorization` header.
pub const S3_ONE_AUTH: &str = "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified";

/// Which storage service the storage host imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageVendor {
    /// Azure Blob Storage with SAS URLs (ACR).
    AzureBlob,
    /// S3 with presigned URLs (ECR).
    S3,
}

/// The signing half (used by the registry) and the checking half (used by the storage host)
/// of one registry's redirects.
pub struct BlobRedirect {
    pub vendor: StorageVendor,
    /// `host[:port]` of the storage host, as it appears in `Location`.
    pub authority: String,
    /// The first path segment (Azure container / S3 key prefix).
    pub container: String,
    key: [u8; 32],
    clock: Clock,
    redactor: Arc<Redactor>,
}

impl std::fmt::Debug for BlobRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRedirect")
            .field("vendor", &self.vendor)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl BlobRedirect {
    pub fn new(
        vendor: StorageVendor,
        authority: &str,
        container: &str,
        clock: Clock,
        redactor: Arc<Redactor>,
    ) -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            vendor,
            authority: authority.to_owned(),
            container: container.to_owned(),
            key,
            clock,
            redactor,
        }
    }

    /// HMAC-SHA256 (RFC 2104) of `path \n expiry` under this fleet's key.
    fn sign(&self, path: &str, expiry: i64) -> [u8; 32] {
        hmac_sha256(&self.key, format!("{path}\n{expiry}").as_bytes())
    }

    /// The storage path of a blob: the Azure driver's layout, or an S3 key.
    fn path_of(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        match self.vendor {
            StorageVendor::AzureBlob => format!(
                "/{}/docker/registry/v2/blobs/{}/{}/{hex}/data",
                self.container,
                digest.algorithm().as_str(),
                &hex[..2.min(hex.len())]
            ),
            StorageVendor::S3 => {
                format!("/{}/{}-{hex}", self.container, digest.algorithm().as_str())
            }
        }
    }

    /// The `Location` for a blob, valid for [`URL_LIFETIME`].
    pub fn location(&self, digest: &Digest) -> String {
        let now = self.clock.now();
        let expiry = now + URL_LIFETIME;
        let path = self.path_of(digest);
        let sig = self.sign(&path, expiry);
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let query = match self.vendor {
            // SAS: `se` (expiry), `sig` (base64 HMAC-SHA256), `sp=r`, `sr=b`, `sv` (version).
            StorageVendor::AzureBlob => format!(
                "se={}&sig={}&sp=r&sr=b&sv=2018-03-28",
                enc(&humantime_rfc3339(expiry)),
                enc(&base64::engine::general_purpose::STANDARD.encode(sig)),
            ),
            // SigV4 presigned: the signature is hex; the expiry is X-Amz-Date + X-Amz-Expires.
            StorageVendor::S3 => {
                let date = amz_date(now);
                format!(
                    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={date}&X-Amz-Expires={URL_LIFETIME}&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
                    enc(&format!(
                        "ASIAREGCOMPATFAKEKEY/{}/us-east-1/s3/aws4_request",
                        &date[..8]
                    )),
                    hex::encode(sig),
                )
            }
        };
        format!("https://{}{path}?{query}", self.authority)
    }

    /// Checks a storage request's signed query: `Ok(digest)` or the reason it is refused.
    fn verify(&self, path: &str, query: &str) -> Result<Digest, Refusal> {
        let params = crate::profile::parse_urlencoded(query);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let (expiry, sig) = match self.vendor {
            StorageVendor::AzureBlob => {
                let se = get("se").ok_or(Refusal::BadSignature)?;
                let expiry = parse_rfc3339(se).ok_or(Refusal::BadSignature)?;
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(get("sig").unwrap_or(""))
                    .map_err(|_| Refusal::BadSignature)?;
                (expiry, sig)
            }
            StorageVendor::S3 => {
                let date =
                    parse_amz_date(get("X-Amz-Date").unwrap_or("")).ok_or(Refusal::BadSignature)?;
                let expires: i64 = get("X-Amz-Expires")
                    .and_then(|e| e.parse().ok())
                    .ok_or(Refusal::BadSignature)?;
                let sig = hex::decode(get("X-Amz-Signature").unwrap_or(""))
                    .map_err(|_| Refusal::BadSignature)?;
                (date + expires, sig)
            }
        };
        if !constant_time_eq(&self.sign(path, expiry), &sig) {
            return Err(Refusal::BadSignature);
        }
        if self.clock.now() > expiry {
            return Err(Refusal::Expired);
        }
        let digest = match self.vendor {
            StorageVendor::AzureBlob => {
                // /<container>/docker/registry/v2/blobs/<alg>/<xx>/<hex>/data
                let parts: Vec<&str> = path.split('/').collect();
                let n = parts.len();
                if n >= 4 {
                    format!("{}:{}", parts[n - 4], parts[n - 2])
                } else {
                    String::new()
                }
            }
            StorageVendor::S3 => path
                .rsplit('/')
                .next()
                .and_then(|k| k.split_once('-'))
                .map(|(a, h)| format!("{a}:{h}"))
                .unwrap_or_default(),
        };
        digest.parse().map_err(|_| Refusal::BadSignature)
    }

    /// The 307 a registry answers an authorized blob `GET` with, when the blob exists here.
    pub async fn redirect(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &str,
    ) -> Option<Response> {
        let digest: Digest = digest.parse().ok()?;
        registry
            .storage()
            .blob_size(repository, &digest)
            .await
            .ok()
            .flatten()?;
        let location = self.location(&digest);
        let mut r = match self.vendor {
            // Go's `http.Redirect` body, which ACR's (Go) registry sends with
            // `text/html; charset=utf-8` (cosign#3331 headers; body inferred).
            StorageVendor::AzureBlob => {
                let body = format!(
                    "<a href=\"{}\">Temporary Redirect</a>.\n\n",
                    location.replace('&', "&amp;")
                );
                let mut r = Response::new(Body::from(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                for exposed in [
                    "Docker-Content-Digest",
                    "WWW-Authenticate",
                    "Link",
                    "X-Ms-Correlation-Request-Id",
                ] {
                    r.headers_mut().append(
                        "Access-Control-Expose-Headers",
                        HeaderValue::from_static(exposed),
                    );
                }
                r
            }
            // ECR's redirect body is not captured anywhere public [unverified]: none is sent.
            StorageVendor::S3 => Response::new(Body::empty()),
        };
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
            h.insert("Docker-Content-Digest", v);
        }
        Some(r)
    }

    /// Serves one request to the storage host.
    pub async fn serve_storage(
        &self,
        ctx: &mut Ctx,
        registry: &Registry,
        parts: &Parts,
    ) -> Response {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        if !matches!(presented, Presented::None) {
            ctx.auth.verdict = Some("authorization-forwarded".into());
            ctx.notes
                .push("an Authorization header reached the storage host".into());
            let value = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            return self.auth_header_refused(value);
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return self.xml_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedHttpVerb",
                "The resource doesn't support specified Http Verb.",
                None,
            );
        }
        let digest = match self.verify(parts.uri.path(), parts.uri.query().unwrap_or("")) {
            Ok(d) => d,
            Err(refusal) => {
                ctx.auth.verdict = Some(refusal.verdict().into());
                return self.refused(refusal);
            }
        };
        ctx.auth.verdict = Some("signed-url".into());
        // The blob is in whichever repository holds it: storage is content-addressed.
        let repository = match registry.storage().repositories().await {
            Ok(repos) => {
                let mut found = None;
                for r in repos {
                    if matches!(registry.storage().blob_size(&r, &digest).await, Ok(Some(_))) {
                        found = Some(r);
                        break;
                    }
                }
                found
            }
            Err(_) => None,
        };
        let Some(repository) = repository else {
            return self.xml_error(
                StatusCode::NOT_FOUND,
                match self.vendor {
                    StorageVendor::AzureBlob => "BlobNotFound",
                    StorageVendor::S3 => "NoSuchKey",
                },
                match self.vendor {
                    StorageVendor::AzureBlob => "The specified blob does not exist.",
                    StorageVendor::S3 => "The specified key does not exist.",
                },
                None,
            );
        };
        // Serve through the registry's own blob handler: ranges and lengths behave the same.
        let mut builder = http::Request::builder()
            .method(parts.method.clone())
            .uri(format!("/v2/{repository}/blobs/{digest}"));
        if let Some(range) = parts.headers.get(header::RANGE) {
            builder = builder.header(header::RANGE, range.clone());
        }
        let Ok(inner) = builder.body(Body::empty()) else {
            return self.xml_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "bad internal request",
                None,
            );
        };
        let mut r = registry.handle(inner).await;
        let h = r.headers_mut();
        h.remove("Docker-Content-Digest");
        h.remove("Docker-Distribution-Api-Version");
        self.vendor_headers(h);
        r
    }

    fn vendor_headers(&self, h: &mut http::HeaderMap) {
        let id = uuid::Uuid::new_v4().to_string();
        match self.vendor {
            StorageVendor::AzureBlob => {
                h.insert(
                    header::SERVER,
                    HeaderValue::from_static("Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"),
                );
                if let Ok(v) = HeaderValue::from_str(&id) {
                    h.insert("x-ms-request-id", v);
                }
            }
            StorageVendor::S3 => {
                h.insert(header::SERVER, HeaderValue::from_static("AmazonS3"));
                if let Ok(v) = HeaderValue::from_str(&id.replace('-', "")[..16].to_uppercase()) {
                    h.insert("x-amz-request-id", v);
                }
            }
        }
    }

    /// The vendor's answer to a request that carries `Authorization`.
    fn auth_header_refused(&self, authorization: &str) -> Response {
        match self.vendor {
            StorageVendor::AzureBlob => {
                let mut r = self.xml_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidAuthenticationInfo",
                    AZURE_BAD_AUTH,
                    None,
                );
                // Azure's status line carries the message as its reason phrase (renovate#6640).
                if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(AZURE_BAD_AUTH.as_bytes()) {
                    r.extensions_mut().insert(reason);
                }
                r
            }
            // S3 echoes the header in <ArgumentValue>; the fake puts the redacted value there so
            // a client that prints the body cannot leak a secret into a report.
            StorageVendor::S3 => self.xml_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                S3_ONE_AUTH,
                Some(("Authorization", &self.redactor.redact(authorization))),
            ),
        }
    }

    fn refused(&self, refusal: Refusal) -> Response {
        match (self.vendor, refusal) {
            (StorageVendor::AzureBlob, _) => self.xml_error(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
                None,
            ),
            (StorageVendor::S3, Refusal::Expired) => self.xml_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Request has expired",
                None,
            ),
            (StorageVendor::S3, Refusal::BadSignature) => self.xml_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                None,
            ),
        }
    }

    fn xml_error(
        &self,
        status: StatusCode,
        code: &str,
        message: &str,
        argument: Option<(&str, &str)>,
    ) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = match self.vendor {
            StorageVendor::AzureBlob => azure_error_body(code, message, &request_id, &azure_time()),
            StorageVendor::S3 => {
                let arg = argument
                    .map(|(name, value)| {
                        format!(
                            "<ArgumentName>{}</ArgumentName><ArgumentValue>{}</ArgumentValue>",
                            xml_escape(name),
                            xml_escape(value)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>{arg}<RequestId>{}</RequestId><HostId>{}</HostId></Error>",
                    xml_escape(message),
                    &request_id.replace('-', "")[..16].to_uppercase(),
                    base64::engine::general_purpose::STANDARD.encode(request_id.as_bytes()),
                )
                .into_bytes()
            }
        };
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        self.vendor_headers(r.headers_mut());
        r
    }
}

/// Azure's error body: a UTF-8 BOM, the XML declaration, a newline, and the error with
/// `RequestId:` and `Time:` lines in the message (298 bytes for `InvalidAuthenticationInfo`
/// with a 36-character request id and a 28-character time).
pub fn azure_error_body(code: &str, message: &str, request_id: &str, time: &str) -> Vec<u8> {
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>{code}</Code><Message>{}\nRequestId:{request_id}\nTime:{time}</Message></Error>",
            xml_escape(message)
        )
        .as_bytes(),
    );
    body
}

/// `2026-01-01T00:00:00.1234567Z` (seven fractional digits, as Azure writes them).
fn azure_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = humantime_rfc3339(now.as_secs() as i64);
    format!(
        "{}.{:07}Z",
        base.trim_end_matches('Z'),
        now.subsec_nanos() / 100
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadSignature,
    Expired,
}

impl Refusal {
    fn verdict(self) -> &'static str {
        match self {
            Self::BadSignature => "bad-signature",
            Self::Expired => "expired-url",
        }
    }
}

/// HMAC-SHA256 as RFC 2104 defines it (a key longer than a block is hashed first).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `20260101T000000Z`
fn amz_date(unix: i64) -> String {
    humantime_rfc3339(unix).replace(['-', ':'], "")
}

fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s.get(0..4)?,
        s.get(4..6)?,
        s.get(6..8)?,
        s.get(9..11)?,
        s.get(11..13)?,
        s.get(13..15)?
    );
    parse_rfc3339(&rfc)
}

/// `YYYY-MM-DDTHH:MM:SSZ` → Unix seconds (the inverse of `humantime_rfc3339`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_error_is_298_bytes_with_a_bom() {
        let body = azure_error_body(
            "InvalidAuthenticationInfo",
            AZURE_BAD_AUTH,
            "0f3c2a4e-501e-0071-6b7e-5a1c2d000000",
            "2020-06-01T12:00:00.1234567Z",
        );
        assert_eq!(&body[..3], b"\xEF\xBB\xBF");
        assert_eq!(body.len(), 298);
        assert_eq!(azure_time().len(), 28);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"ac"));
    }

    #[test]
    fn dates_round_trip() {
        for t in [0, 951_782_400, 1_700_000_000, 1_767_225_599] {
            assert_eq!(parse_rfc3339(&humantime_rfc3339(t)), Some(t));
            assert_eq!(parse_amz_date(&amz_date(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    fn redirect(vendor: StorageVendor, clock: &Clock) -> BlobRedirect {
        BlobRedirect::new(
            vendor,
            "storage.example.test",
            "c",
            clock.clone(),
            Arc::default(),
        )
    }

    #[test]
    fn signed_urls_verify_expire_and_resist_tampering() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        for vendor in [StorageVendor::AzureBlob, StorageVendor::S3] {
            let clock = Clock::manual(1_700_000_000);
            let r = redirect(vendor, &clock);
            let url = r.location(&digest);
            let rest = url.strip_prefix("https://storage.example.test").unwrap();
            let (path, query) = rest.split_once('?').unwrap();
            assert_eq!(r.verify(path, query), Ok(digest.clone()), "{url}");
            // another blob's path with this signature
            let other = path.replace("abab", "abac");
            assert_eq!(r.verify(&other, query), Err(Refusal::BadSignature));
            // another fleet's key
            let stranger = redirect(vendor, &clock);
            assert_eq!(stranger.verify(path, query), Err(Refusal::BadSignature));
            clock.advance(URL_LIFETIME + 1);
            assert_eq!(r.verify(path, query), Err(Refusal::Expired));
        }
    }
}
