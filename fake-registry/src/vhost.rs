//! One virtual registry: a hostname, a vendor profile in front of the core API, and the
//! journal every exchange is written to. The path of a request reads straight:
//! fault rules (may replace, delay or break the exchange) → profile (authorize or serve a
//! token endpoint) → core API, or a 307 to the storage host → journal entry.

use crate::api::Registry;
use crate::api::route::{self, Route};
use crate::auth::scope::required_scope;
use crate::error::{ErrorCode, RegistryError};
use crate::fault::{DEFAULT_HANG_MS, FaultAction, Faults, Fired, MAX_WAIT_MS, RequestFacts};
use crate::journal::{self, Entry, Journal};
use crate::listener::{AbortConnection, SlowBody};
use crate::profile::{Ctx, Profile};
use crate::redirect::BlobRedirect;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a listener of a virtual host serves.
#[derive(Clone)]
pub enum Role {
    /// The registry (and its realm hosts): `/v2/` through the profile and the core API, other
    /// paths to the profile's endpoints.
    Registry,
    /// The storage host blob downloads are redirected to (ACR's Azure Blob Storage, ECR's S3).
    Storage(Arc<BlobRedirect>),
}

pub struct VirtualHost {
    /// The configured name (`acr`, `mirror`…): how journals and reports refer to it.
    pub name: String,
    /// `https://host[:port]` as clients address it; realms are built from it.
    pub base_url: String,
    pub registry: Registry,
    pub profile: Arc<dyn Profile>,
    pub journal: Arc<Journal>,
    pub role: Role,
    /// Blob GETs answer 307 to this storage host (set by a fleet, which serves that host).
    pub redirect: Option<Arc<BlobRedirect>>,
    /// Injected faults, checked before the profile sees the request.
    pub faults: Option<Arc<Faults>>,
}

impl VirtualHost {
    /// A registry host without redirects or faults.
    pub fn new(
        name: &str,
        base_url: &str,
        registry: Registry,
        profile: Arc<dyn Profile>,
        journal: Arc<Journal>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            base_url: base_url.to_owned(),
            registry,
            profile,
            journal,
            role: Role::Registry,
            redirect: None,
            faults: None,
        }
    }

    /// The same registry serving another role (its storage host).
    pub fn with_role(&self, role: Role) -> Self {
        Self {
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            registry: self.registry.clone(),
            profile: self.profile.clone(),
            journal: self.journal.clone(),
            role,
            redirect: self.redirect.clone(),
            faults: self.faults.clone(),
        }
    }

    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    pub async fn serve(&self, req: Request) -> Response {
        let started = Instant::now();
        let time = now_rfc3339();
        let (parts, body) = req.into_parts();
        // Set by the listener's body limit when the client sends the body too slowly; the
        // client then gets the listener's answer, which the journal records.
        let slow = parts.extensions.get::<SlowBody>().cloned();
        let version = parts.version;
        // Handlers that answer early (a 401, a 404 token POST, a fault) drop the body unread;
        // what they leave is drained below so HTTP/2 clients get the answer, not a reset.
        let (body, unread) = crate::drain::track(body);
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let request = RequestRecord {
            time,
            host,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: journal::request_headers(&parts.headers),
        };
        // Kept for the leak check after the request is consumed (only this header matters).
        let mut presented = http::HeaderMap::new();
        if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            presented.insert(header::AUTHORIZATION, v.clone());
        }
        let mut ctx = Ctx {
            base_url: self.base_url.clone(),
            ..Ctx::default()
        };

        let hostname = hostname_of(&request.host);
        let fired = self.faults.as_ref().and_then(|f| {
            f.pick(&RequestFacts {
                registry: &self.name,
                hostname,
                method: &request.method,
                path: &request.path,
            })
        });
        if let Some(
            hang @ Fired {
                action: FaultAction::Hang { .. },
                ..
            },
        ) = &fired
        {
            // Journaled before the wait: a client that gives up before the hang ends (the
            // point of the fault) must find its request in the journal when its cell is judged.
            ctx.notes.push(hang.note.clone());
            ctx.notes.push("no answer: held, then closed".into());
            self.journal.record(request.entry(
                &self.name,
                ctx,
                Answer {
                    duration_ms: 0.0,
                    status: 0,
                    response_headers: BTreeMap::new(),
                    leak: None,
                    fault: Some(hang.action.describe()),
                },
            ));
            return fault_response(hang).await.unwrap_or_else(abort);
        }
        let mut fault = None;
        let mut response = match &fired {
            Some(fired) => {
                ctx.notes.push(fired.note.clone());
                fault = Some(fired.action.describe());
                match fault_response(fired).await {
                    Some(r) => r,
                    None => self.dispatch(&mut ctx, parts, body).await,
                }
            }
            None => self.dispatch(&mut ctx, parts, body).await,
        };
        if let Some(Fired {
            action: FaultAction::Truncate { bytes },
            ..
        }) = &fired
        {
            response = truncate(response, *bytes);
        }
        if let Some(Fired {
            action: FaultAction::Corrupt { at },
            ..
        }) = &fired
        {
            response = corrupt(response, *at);
        }
        if response.extensions().get::<AbortConnection>().is_none() {
            unread.drain().await;
        }
        if let Some(slow) = slow.filter(SlowBody::tripped) {
            ctx.notes.push(slow.note());
            response = slow.response(version);
        }
        let aborted = response.extensions().get::<AbortConnection>().is_some();

        let leak = crate::leak::detect(&self.journal.redactor, &presented, &ctx.form, &self.name);
        let answer = Answer {
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            // 0: the connection was closed without a response
            status: if aborted {
                0
            } else {
                response.status().as_u16()
            },
            response_headers: journal::response_headers(response.headers()),
            leak,
            fault,
        };
        self.journal.record(request.entry(&self.name, ctx, answer));
        response
    }

    /// The request's normal path for this host's role.
    async fn dispatch(&self, ctx: &mut Ctx, mut parts: Parts, body: Body) -> Response {
        if let Role::Storage(storage) = &self.role {
            return storage.serve_storage(ctx, &self.registry, &parts).await;
        }
        let path = parts.uri.path().to_owned();
        let is_api = path == "/v2" || path.starts_with("/v2/");
        if !is_api {
            return match self.profile.endpoint(ctx, &parts, body).await {
                Some(r) => r,
                None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
            };
        }
        let parsed = route::parse(&path);
        let scope = parsed
            .as_ref()
            .and_then(|r| required_scope(&parts.method, r));
        let mut r = match self.profile.authorize(ctx, &parts, scope.as_ref()).await {
            Ok(()) => match self.profile.prepare(ctx, &mut parts, &self.registry).await {
                Ok(()) => 'served: {
                    if let Some(refused) = self.police_mount(ctx, &mut parts, scope.as_ref()).await
                    {
                        break 'served refused;
                    }
                    let redirected = match (&self.redirect, route::parse(parts.uri.path())) {
                        (Some(redirect), Some(Route::Blob { name, digest }))
                            if parts.method == Method::GET =>
                        {
                            redirect.redirect(&self.registry, &name, &digest).await
                        }
                        _ => None,
                    };
                    match (redirected, &self.redirect) {
                        (Some(r), Some(redirect)) => {
                            ctx.notes
                                .push(format!("blob redirected to {}", redirect.authority));
                            r
                        }
                        _ => self.registry.handle(Request::from_parts(parts, body)).await,
                    }
                }
                Err(answered) => answered,
            },
            Err(denied) => denied,
        };
        r = self.profile.finish(ctx, r).await;
        r.headers_mut().insert(
            "Docker-Distribution-Api-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        r
    }
}

impl VirtualHost {
    /// A cross-repository mount (`POST …/blobs/uploads/?mount=<digest>[&from=<repo>]`) links
    /// a blob the caller could otherwise not read, so it needs *pull* on the source as well
    /// as push on the target (CNCF distribution adds the `from` repository's pull to the
    /// request's access records). When the caller lacks it, or names no source and no
    /// repository it may pull holds the blob, `mount` and `from` are dropped and the request
    /// becomes an ordinary upload start (202), as the spec says for a mount that cannot be
    /// done. Without `from`, a blob is looked for only when automatic content discovery
    /// (`RegistryOptions::automatic_mount`) is on, and only in repositories the caller may
    /// pull; the one found becomes the `from`. A profile may answer a mount from a source
    /// the caller may not pull itself ([`Profile::refuse_mount`]: distribution's token auth
    /// answers 401 `insufficient_scope`); that answer is returned.
    async fn police_mount(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        target: Option<&crate::auth::Scope>,
    ) -> Option<Response> {
        if parts.method != Method::POST
            || !matches!(
                route::parse(parts.uri.path()),
                Some(Route::UploadStart { .. })
            )
        {
            return None;
        }
        let pairs = crate::profile::parse_urlencoded(parts.uri.query().unwrap_or(""));
        let mount = pairs
            .iter()
            .find(|(k, _)| k == "mount")
            .map(|(_, v)| v.clone())?;
        let from = pairs
            .iter()
            .find(|(k, _)| k == "from")
            .map(|(_, v)| v.clone());
        // Malformed digests and names are the core's to refuse (400), as before any mount.
        if mount.parse::<crate::digest::Digest>().is_err()
            || from
                .as_deref()
                .is_some_and(|f| crate::names::validate_repository(f).is_err())
        {
            return None;
        }
        let source = match from {
            Some(from) => {
                if self.may_pull(parts, &from).await {
                    return None;
                }
                let source = crate::auth::Scope::repository(&from, &["pull"]);
                if let Some(refused) =
                    target.and_then(|t| self.profile.refuse_mount(ctx, t, &source))
                {
                    ctx.notes.push(format!(
                        "mount of {mount} from {from} refused: the credentials hold no pull on {from} (required of a mount, as in CNCF distribution)"
                    ));
                    return Some(refused);
                }
                ctx.notes.push(format!(
                    "mount of {mount} from {from} not done: no pull access to {from}; an upload session starts instead"
                ));
                None
            }
            // Every repository is readable: the core may link the blob from wherever it is
            // stored (manifest-less repositories included, which `pullable_holder` cannot
            // list).
            None if self.registry.options().automatic_mount
                && self.profile.everything_is_public() =>
            {
                return None;
            }
            None if self.registry.options().automatic_mount => {
                let found = self.pullable_holder(parts, &mount).await;
                if found.is_none() {
                    ctx.notes.push(format!(
                        "mount of {mount} without from: no repository the caller may pull holds it; an upload session starts instead"
                    ));
                }
                found
            }
            None => {
                ctx.notes.push(format!(
                    "mount of {mount} without from: automatic content discovery is off; an upload session starts instead"
                ));
                None
            }
        };
        let mut query: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(k, _)| k != "mount" && k != "from")
            .collect();
        if let Some(source) = source {
            query.push(("mount".into(), mount));
            query.push(("from".into(), source));
        }
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect();
        let path_and_query = if encoded.is_empty() {
            parts.uri.path().to_owned()
        } else {
            format!("{}?{}", parts.uri.path(), encoded.join("&"))
        };
        let mut uri = parts.uri.clone().into_parts();
        match path_and_query.parse() {
            Ok(pq) => uri.path_and_query = Some(pq),
            Err(_) => return None,
        }
        if let Ok(rewritten) = http::Uri::from_parts(uri) {
            parts.uri = rewritten;
        }
        None
    }

    /// Whether the credentials of this request would be let through for `pull` on
    /// `repository` (the profile's own decision, on a scratch context: nothing is journaled).
    async fn may_pull(&self, parts: &Parts, repository: &str) -> bool {
        if crate::names::validate_repository(repository).is_err() {
            return false;
        }
        let scope = crate::auth::Scope::repository(repository, &["pull"]);
        let mut probe = Ctx {
            base_url: self.base_url.clone(),
            ..Ctx::default()
        };
        self.profile
            .authorize(&mut probe, parts, Some(&scope))
            .await
            .is_ok()
    }

    /// A repository holding blob `digest` that the caller may pull (bounded scan).
    async fn pullable_holder(&self, parts: &Parts, digest: &str) -> Option<String> {
        const MAX_SCANNED: usize = 1000;
        let digest: crate::digest::Digest = digest.parse().ok()?;
        let storage = self.registry.storage();
        let repositories = storage.repositories().await.ok()?;
        for repository in repositories.into_iter().take(MAX_SCANNED) {
            if matches!(storage.blob_size(&repository, &digest).await, Ok(Some(_)))
                && self.may_pull(parts, &repository).await
            {
                return Some(repository);
            }
        }
        None
    }
}

fn encode_query(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `host` without its port (`[::1]:443` → `[::1]`).
fn hostname_of(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => h,
        _ => host,
    }
}

/// The response a fault replaces the request with; `None` lets the request through (after
/// a delay, or to be truncated).
async fn fault_response(fired: &Fired) -> Option<Response> {
    match &fired.action {
        FaultAction::Status {
            code,
            body,
            headers,
        } => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = match body {
                Some(b) => Response::new(Body::from(b.clone())),
                None => {
                    let code = match status.as_u16() {
                        401 => ErrorCode::Unauthorized,
                        403 => ErrorCode::Denied,
                        404 => ErrorCode::NameUnknown,
                        429 => ErrorCode::TooManyRequests,
                        _ => ErrorCode::Unsupported,
                    };
                    RegistryError::new(code)
                        .with_status(status)
                        .with_message(format!("injected fault {}", fired.rule))
                        .into_response()
                }
            };
            *r.status_mut() = status;
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    r.headers_mut().insert(k, v);
                }
            }
            Some(r)
        }
        FaultAction::TooManyRequests { retry_after } => {
            let mut r = RegistryError::new(ErrorCode::TooManyRequests)
                .with_message(format!("injected fault {}", fired.rule))
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            Some(r)
        }
        FaultAction::Delay { ms } => {
            tokio::time::sleep(Duration::from_millis((*ms).min(MAX_WAIT_MS))).await;
            None
        }
        FaultAction::Hang { max_ms } => {
            let ms = max_ms.unwrap_or(DEFAULT_HANG_MS).min(MAX_WAIT_MS);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Some(abort())
        }
        FaultAction::Reset => Some(abort()),
        FaultAction::Truncate { .. } | FaultAction::Corrupt { .. } => None,
    }
}

/// How long a truncated body waits, after its last bytes, before the connection is failed.
const TRUNCATE_FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// What the journal keeps of a request, taken before the request is consumed.
struct RequestRecord {
    time: String,
    host: String,
    method: String,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
}

/// What the journal keeps of the answer.
struct Answer {
    duration_ms: f64,
    /// 0: no response (the connection was closed, or held by a hang).
    status: u16,
    response_headers: BTreeMap<String, String>,
    leak: Option<String>,
    fault: Option<String>,
}

impl RequestRecord {
    /// The journal entry of this request answered so (`seq` is the journal's to set).
    fn entry(self, registry: &str, ctx: Ctx, answer: Answer) -> Entry {
        Entry {
            seq: 0,
            time: self.time,
            duration_ms: answer.duration_ms,
            registry: registry.to_owned(),
            host: self.host,
            method: self.method,
            path: self.path,
            query: self.query,
            request_headers: self.headers,
            auth: ctx.auth,
            form: ctx.form,
            status: answer.status,
            response_headers: answer.response_headers,
            notes: ctx.notes,
            leak: answer.leak,
            fault: answer.fault,
        }
    }
}

/// A response the listener turns into a closed connection (HTTP/2: a reset stream).
fn abort() -> Response {
    let mut r = Response::new(Body::empty());
    r.extensions_mut().insert(AbortConnection);
    r
}

/// The body length a response announces (`Content-Length`), else the body's exact size.
fn announced_length(parts: &http::response::Parts, body: &Body) -> Option<u64> {
    use http_body::Body as _;
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| body.size_hint().exact())
}

/// Keeps the announced length but sends only `bytes` bytes of the body (at most all but one),
/// then fails the body so the connection closes.
fn truncate(response: Response, bytes: u64) -> Response {
    use futures_util::StreamExt;
    let (mut parts, body) = response.into_parts();
    let Some(len) = announced_length(&parts, &body) else {
        return Response::from_parts(parts, body);
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let keep = bytes.min(len.saturating_sub(1));
    let stream = body.into_data_stream();
    let cut = futures_util::stream::unfold(
        (stream, keep, false),
        |(mut stream, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // Let the connection flush what was sent before failing it: hyper would drop
                // buffered bytes (even the headers) with the connection.
                tokio::time::sleep(TRUNCATE_FLUSH_PAUSE).await;
                let e = std::io::Error::other("fault: body truncated");
                return Some((Err(e), (stream, 0, true)));
            }
            match stream.next().await {
                Some(Ok(mut chunk)) => {
                    let n = (chunk.len() as u64).min(left);
                    let part = chunk.split_to(n as usize);
                    Some((Ok(part), (stream, left - n, false)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, 0, true))),
                None => None,
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(cut.boxed()))
}

/// Serves the whole body with the byte at offset `at` (default: the last) inverted, so the
/// length is right and the digest is not.
fn corrupt(response: Response, at: Option<u64>) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = response.into_parts();
    let Some(len) = announced_length(&parts, &body).filter(|l| *l > 0) else {
        return Response::from_parts(parts, body);
    };
    let target = at.unwrap_or(len - 1).min(len - 1);
    let flipped = body.into_data_stream().scan(0u64, move |offset, chunk| {
        let chunk = chunk.map(|chunk| {
            let start = *offset;
            *offset += chunk.len() as u64;
            if (start..*offset).contains(&target) {
                let mut bytes = chunk.to_vec();
                bytes[(target - start) as usize] ^= 0xff;
                bytes::Bytes::from(bytes)
            } else {
                chunk
            }
        });
        std::future::ready(Some(chunk.map_err(std::io::Error::other)))
    });
    Response::from_parts(parts, Body::from_stream(flipped.boxed()))
}

async fn handle(State(vhost): State<Arc<VirtualHost>>, req: Request) -> Response {
    vhost.serve(req).await
}

fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = crate::profile::bearer::humantime_rfc3339(now.as_secs() as i64);
    // insert milliseconds before the trailing Z
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}
