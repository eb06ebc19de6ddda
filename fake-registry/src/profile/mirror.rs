//! A pull-through cache / registry mirror (profile `mirror/1`): proxies one or more upstream
//! registries, fetching manifests and blobs on a miss and keeping them in its own storage.
//!
//! Layouts (behaviours.md §2.2–2.3):
//! - `ns`: containerd and buildkit send `/v2/<repo>/…?ns=<upstream host>`; the `ns` value
//!   picks the upstream by its key or its URL's host (no `ns`: the first upstream). Cached
//!   under `<key>/<repo>`.
//! - `path-prefix`: `/v2/<prefix>/<repo>/…` (a Harbor proxy project, buildkit's
//!   `mirror.host/prefix` form); the prefix picks the upstream, `<repo>` is the upstream name.
//!
//! Auth modes:
//! - `own`: the mirror is an independent registry with its own principals, Basic or Bearer
//!   (its own token service on `/token`); it fetches from the upstream with the upstream
//!   credentials it is configured with, doing the upstream's token dance itself.
//! - `pass-through`: the mirror relays the client's `Authorization` to the upstream and the
//!   upstream's 401/403 (status, `WWW-Authenticate`, body) back, like the NGINX cache of
//!   buildkit#5939: the client is sent to the *upstream's* realm.
//!
//! A mirror is pull-only: writes answer 405 `UNSUPPORTED` (distribution configuration docs, `proxy`:
//! "Pushing to a registry configured as a pull-through cache is unsupported").
//!
//! Network rule: upstream traffic goes only to loopback. Every upstream and realm hostname
//! must be mapped to a loopback address in `resolve` (no DNS is ever asked), IP literals must
//! be loopback, redirects are followed only to allowed hosts, and every request is bounded by
//! `timeout_secs`.

use super::bearer::{Bearer, BearerOptions, describe, unauthorized_body};
use super::{Ctx, Profile};
use crate::api::Registry;
use crate::api::route::{self, Route};
use crate::auth::{Directory, Presented, Scope, TokenIssuer};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError};
use crate::journal::Redactor;
use crate::storage::{Chunk, StoredManifest};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    #[default]
    Ns,
    PathPrefix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorAuth {
    /// The mirror's own principals (see [`OwnScheme`]).
    #[default]
    Own,
    /// Relay the client's credentials to the upstream and its challenges back.
    PassThrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnScheme {
    /// `WWW-Authenticate: Basic realm="…"` on `/v2/` (distribution's htpasswd).
    #[default]
    Basic,
    /// A token service on the mirror's own host (`/token`).
    Bearer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOptions {
    /// The `ns` value (`docker.io`, `private.test`) or the path prefix (`dockerhub`).
    pub key: String,
    /// `https://private.test` or `http://127.0.0.1:5000`, no trailing slash.
    pub url: String,
    /// The mirror's own credentials at the upstream (`own` mode).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorOptions {
    pub layout: Layout,
    pub auth: MirrorAuth,
    pub own_scheme: OwnScheme,
    /// The realm of the Basic challenge (distribution's example config: `Registry Realm`).
    pub basic_realm: String,
    /// The `service` of the own Bearer token service.
    pub service: String,
    pub upstreams: Vec<UpstreamOptions>,
    /// Hostname → loopback address for every upstream and token-realm host.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// A PEM root CA to trust for HTTPS upstreams (the fleet's `ca.pem`).
    pub ca_pem: Option<PathBuf>,
    /// Bound on each upstream request, body included.
    pub timeout_secs: u64,
    /// The fleet runs in a private network ([`crate::fleet::FleetOptions::private_network`]):
    /// `resolve` entries and literal upstream addresses may be RFC 5737 addresses too. Set
    /// by the fleet, never by a configuration file.
    #[serde(skip)]
    pub private_network: bool,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        Self {
            layout: Layout::Ns,
            auth: MirrorAuth::Own,
            own_scheme: OwnScheme::Basic,
            basic_realm: "Registry Realm".into(),
            service: "mirror".into(),
            upstreams: Vec::new(),
            resolve: BTreeMap::new(),
            ca_pem: None,
            timeout_secs: 30,
            private_network: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror has no upstream")]
    NoUpstream,
    #[error("resolve entry {host} → {addr} is not {allowed}")]
    NotLoopback {
        host: String,
        addr: SocketAddr,
        allowed: &'static str,
    },
    #[error(
        "upstream URL {0:?} is not an http(s) URL on loopback or on a host mapped in `resolve`"
    )]
    UpstreamUrl(String),
    #[error("cannot read the CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
}

/// Hosts the mirror may contact: loopback literals (and documentation addresses in a
/// private network), `localhost`, and the `resolve` keys.
#[derive(Debug, Clone)]
struct Allowed(HashSet<String>, bool);

impl Allowed {
    fn permits(&self, url: &reqwest::Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => crate::addresses::permitted(ip, self.1),
            Err(_) => {
                host.eq_ignore_ascii_case("localhost")
                    || self.0.contains(&host.to_ascii_lowercase())
            }
        }
    }
}

pub struct Mirror {
    options: MirrorOptions,
    directory: Directory,
    bearer: Bearer,
    client: reqwest::Client,
    allowed: Allowed,
    /// (upstream key, scope) → (token, expires at): the upstream tokens the mirror holds.
    tokens: Mutex<HashMap<(String, String), (String, i64)>>,
    clock: crate::auth::Clock,
}

/// Upper bound on cached upstream tokens (the cache is cleared past it).
const TOKEN_CACHE_CAP: usize = 1024;
/// Largest manifest fetched from an upstream (the spec's 4 MiB minimum).
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Every `Accept` value the client sent, joined into one list (RFC 9110 §5.3: repeated
/// lines are one comma-separated list). regclient and containers/image send one line per
/// media type; forwarding only the first would hide the others from the upstream's content
/// negotiation. No `Accept` at all: every manifest type.
fn forwarded_accept(headers: &http::HeaderMap) -> HeaderValue {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return HeaderValue::from_static(ACCEPT_ALL_MANIFESTS);
    }
    HeaderValue::from_str(&values.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static(ACCEPT_ALL_MANIFESTS))
}

const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, */*";

impl Mirror {
    pub fn new(
        options: MirrorOptions,
        directory: Directory,
        issuer: Arc<TokenIssuer>,
        redactor: Arc<Redactor>,
    ) -> Result<Self, MirrorError> {
        if options.upstreams.is_empty() {
            return Err(MirrorError::NoUpstream);
        }
        for (host, addr) in &options.resolve {
            if !crate::addresses::permitted(addr.ip(), options.private_network) {
                return Err(MirrorError::NotLoopback {
                    host: host.clone(),
                    addr: *addr,
                    allowed: crate::addresses::permitted_text(options.private_network),
                });
            }
        }
        let allowed = Allowed(
            options
                .resolve
                .keys()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            options.private_network,
        );
        for up in &options.upstreams {
            let ok = reqwest::Url::parse(&up.url)
                .map(|u| allowed.permits(&u))
                .unwrap_or(false);
            if !ok {
                return Err(MirrorError::UpstreamUrl(up.url.clone()));
            }
            if let Some(p) = &up.password {
                redactor.add(p, &format!("upstream secret for {}", up.key));
            }
        }
        let client = build_client(&options, &allowed)?;
        let clock = issuer.clock().clone();
        let bearer = Bearer::new(
            BearerOptions::new(&options.service),
            directory.clone(),
            issuer,
            redactor,
        );
        Ok(Self {
            options,
            directory,
            bearer,
            client,
            allowed,
            tokens: Mutex::new(HashMap::new()),
            clock,
        })
    }

    /// The upstream a request goes to, its repository name there, and the local name the
    /// content is cached under.
    fn locate(&self, name: &str, parts: &Parts) -> Result<Located<'_>, RegistryError> {
        match self.options.layout {
            Layout::Ns => {
                let ns = query_value(parts, "ns");
                let upstreams = &self.options.upstreams;
                // `ns` names an upstream by its key or its URL's host: containerd sends
                // ns=docker.io for Docker Hub, regclient ns=registry-1.docker.io.
                let up = match &ns {
                    Some(ns) => upstreams
                        .iter()
                        .find(|u| u.key.eq_ignore_ascii_case(ns) || url_host_is(&u.url, ns)),
                    None => upstreams.first(),
                }
                .ok_or_else(|| {
                    RegistryError::new(ErrorCode::NameUnknown).detail(format!(
                        "no upstream for ns={}",
                        ns.as_deref().unwrap_or("")
                    ))
                })?;
                Ok(Located {
                    upstream: up,
                    remote: name.to_owned(),
                    local: format!("{}/{name}", local_component(&up.key)),
                })
            }
            Layout::PathPrefix => {
                let (prefix, rest) = name.split_once('/').unwrap_or((name, ""));
                let up = self
                    .options
                    .upstreams
                    .iter()
                    .find(|u| u.key == prefix && !rest.is_empty())
                    .ok_or_else(|| {
                        RegistryError::new(ErrorCode::NameUnknown)
                            .detail(format!("no upstream for path prefix {prefix:?}"))
                    })?;
                Ok(Located {
                    upstream: up,
                    remote: rest.to_owned(),
                    local: name.to_owned(),
                })
            }
        }
    }

    fn pass_through(&self) -> bool {
        self.options.auth == MirrorAuth::PassThrough
    }

    /// One upstream request. `own` mode: the mirror's credentials, with the upstream's token
    /// dance done at most once; `pass-through`: the client's `Authorization` as it came.
    async fn upstream(
        &self,
        ctx: &mut Ctx,
        up: &UpstreamOptions,
        call: Call<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        let Call {
            method,
            path,
            accept,
            client_auth,
            scope,
        } = call;
        let url = format!("{}{path}", up.url.trim_end_matches('/'));
        let send = |auth: Option<String>| {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a.clone());
            }
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            req.send()
        };
        if self.pass_through() {
            let auth = client_auth.and_then(|v| v.to_str().ok()).map(str::to_owned);
            return send(auth).await.map_err(|e| unavailable(&up.key, &e));
        }
        let cache_key = (up.key.clone(), scope.to_string());
        let cached = self.cached_token(&cache_key);
        let first = send(cached.map(|t| format!("Bearer {t}")))
            .await
            .map_err(|e| unavailable(&up.key, &e))?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let basic = match (&up.username, &up.password) {
            (Some(u), Some(p)) => Some(basic_header(u, p)),
            _ => None,
        };
        let auth = if challenge.to_ascii_lowercase().starts_with("bearer ") {
            let params = parse_challenge(&challenge);
            let token = self
                .fetch_token(ctx, up, &params, scope, basic.as_deref())
                .await?;
            self.store_token(cache_key, &token.0, token.1);
            format!("Bearer {}", token.0)
        } else if let Some(b) = basic {
            b
        } else {
            return Ok(first);
        };
        send(Some(auth)).await.map_err(|e| unavailable(&up.key, &e))
    }

    /// The upstream's token dance: `GET realm?service=…&scope=…`, Basic when the mirror has
    /// upstream credentials, anonymous otherwise.
    async fn fetch_token(
        &self,
        ctx: &mut Ctx,
        up: &UpstreamOptions,
        params: &HashMap<String, String>,
        scope: &Scope,
        basic: Option<&str>,
    ) -> Result<(String, i64), RegistryError> {
        let realm = params.get("realm").cloned().unwrap_or_default();
        let url = reqwest::Url::parse(&realm)
            .ok()
            .filter(|u| self.allowed.permits(u))
            .ok_or_else(|| {
                RegistryError::new(ErrorCode::Denied)
                    .with_status(StatusCode::BAD_GATEWAY)
                    .detail(format!(
                        "upstream {} names realm {realm:?}, which is not on loopback",
                        up.key
                    ))
            })?;
        let scope_text = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| scope.to_string());
        let mut req = self.client.get(url).query(&[
            (
                "service",
                params.get("service").cloned().unwrap_or_default(),
            ),
            ("scope", scope_text),
        ]);
        if let Some(b) = basic {
            req = req.header(header::AUTHORIZATION, b);
        }
        let r = req.send().await.map_err(|e| unavailable(&up.key, &e))?;
        let status = r.status();
        ctx.notes.push(format!(
            "upstream {} token request: {} ({})",
            up.key,
            status.as_u16(),
            if basic.is_some() {
                "basic"
            } else {
                "anonymous"
            }
        ));
        if !status.is_success() {
            return Err(RegistryError::new(ErrorCode::Denied).detail(format!(
                "upstream {} refused the mirror's token request with {status}",
                up.key
            )));
        }
        let body: serde_json::Value = r.json().await.map_err(|e| unavailable(&up.key, &e))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                RegistryError::new(ErrorCode::Denied)
                    .with_status(StatusCode::BAD_GATEWAY)
                    .detail(format!("upstream {} token response has no token", up.key))
            })?
            .to_owned();
        // 60 s is the minimum lifetime clients assume (token spec, behaviours.md §5.3).
        let lifetime = body
            .get("expires_in")
            .and_then(|v| v.as_i64())
            .unwrap_or(60);
        Ok((token, self.clock.now() + lifetime - 5))
    }

    fn cached_token(&self, key: &(String, String)) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(key)
            .filter(|(_, exp)| *exp > self.clock.now())
            .map(|(t, _)| t.clone())
    }

    fn store_token(&self, key: (String, String), token: &str, expires_at: i64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= TOKEN_CACHE_CAP {
            tokens.clear();
        }
        tokens.insert(key, (token.to_owned(), expires_at));
    }

    /// Pass-through: an upstream 401/403 goes back to the client as it came.
    fn relay_refusal(ctx: &mut Ctx, up: &UpstreamOptions, r: &reqwest::Response) -> bool {
        let refused = matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if refused {
            ctx.auth.verdict = Some("upstream-refused".into());
            ctx.notes.push(format!(
                "pass-through: relayed upstream {} {}",
                up.key,
                r.status().as_u16()
            ));
        }
        refused
    }

    async fn fill_manifest(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        registry: &Registry,
        at: &Located<'_>,
        reference: &str,
        client_auth: Option<&HeaderValue>,
    ) -> Result<(), Response> {
        let storage = registry.storage();
        let digest: Option<Digest> = reference.parse().ok();
        let cached = match &digest {
            Some(d) => storage
                .get_manifest(&at.local, d)
                .await
                .map(|m| m.is_some()),
            None => storage
                .resolve_tag(&at.local, reference)
                .await
                .map(|m| m.is_some()),
        }
        .map_err(internal)?;
        let scope = Scope::repository(&at.remote, &["pull"]);
        let path = format!("/v2/{}/manifests/{reference}", at.remote);
        if cached && !self.pass_through() {
            ctx.notes.push("mirror: cache hit".into());
            return Ok(());
        }
        let accept = forwarded_accept(&parts.headers);
        let method = if cached { Method::HEAD } else { Method::GET };
        let r = self
            .upstream(
                ctx,
                at.upstream,
                Call {
                    method,
                    path: &path,
                    accept: Some(&accept),
                    client_auth,
                    scope: &scope,
                },
            )
            .await
            .map_err(IntoResponse::into_response)?;
        if self.pass_through() && Self::relay_refusal(ctx, at.upstream, &r) {
            return Err(relay(r).await);
        }
        if !r.status().is_success() {
            return Err(upstream_failure(
                at.upstream,
                r.status(),
                ErrorCode::ManifestUnknown,
            ));
        }
        if cached {
            ctx.notes
                .push("mirror: cache hit (upstream authorized)".into());
            return Ok(());
        }
        let media_type = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_owned();
        let bytes = read_capped(r, MAX_MANIFEST_BYTES, &at.upstream.key).await?;
        let actual = Digest::sha256(&bytes);
        if digest.as_ref().is_some_and(|d| d != &actual) {
            return Err(RegistryError::new(ErrorCode::ManifestUnknown)
                .with_status(StatusCode::BAD_GATEWAY)
                .detail(format!(
                    "upstream {} sent a manifest whose digest is {actual}, not {reference}",
                    at.upstream.key
                ))
                .into_response());
        }
        let tags: Vec<String> = if digest.is_none() {
            vec![reference.to_owned()]
        } else {
            Vec::new()
        };
        storage
            .put_manifest(
                &at.local,
                StoredManifest {
                    digest: actual.clone(),
                    media_type,
                    bytes,
                },
                &tags,
            )
            .await
            .map_err(internal)?;
        ctx.notes.push(format!(
            "mirror: fetched manifest {reference} ({actual}) from upstream {}",
            at.upstream.key
        ));
        Ok(())
    }

    async fn fill_blob(
        &self,
        ctx: &mut Ctx,
        registry: &Registry,
        at: &Located<'_>,
        digest_text: &str,
        client_auth: Option<&HeaderValue>,
    ) -> Result<(), Response> {
        let Ok(digest) = digest_text.parse::<Digest>() else {
            // the core API answers DIGEST_INVALID
            return Ok(());
        };
        let storage = registry.storage();
        let cached = storage
            .blob_size(&at.local, &digest)
            .await
            .map_err(internal)?
            .is_some();
        if cached && !self.pass_through() {
            ctx.notes.push("mirror: cache hit".into());
            return Ok(());
        }
        let scope = Scope::repository(&at.remote, &["pull"]);
        let path = format!("/v2/{}/blobs/{digest}", at.remote);
        let method = if cached { Method::HEAD } else { Method::GET };
        let r = self
            .upstream(
                ctx,
                at.upstream,
                Call {
                    method,
                    path: &path,
                    accept: None,
                    client_auth,
                    scope: &scope,
                },
            )
            .await
            .map_err(IntoResponse::into_response)?;
        if self.pass_through() && Self::relay_refusal(ctx, at.upstream, &r) {
            return Err(relay(r).await);
        }
        if !r.status().is_success() {
            return Err(upstream_failure(
                at.upstream,
                r.status(),
                ErrorCode::BlobUnknown,
            ));
        }
        if cached {
            return Ok(());
        }
        // Content already in the registry (another repository): link it instead.
        if storage
            .link_blob(&at.local, &digest)
            .await
            .map_err(internal)?
        {
            ctx.notes.push("mirror: linked existing content".into());
            return Ok(());
        }
        let expected_len = r.content_length();
        let id = storage.create_upload(&at.local).await.map_err(internal)?;
        let body = Box::pin(r.bytes_stream().map_err(std::io::Error::other));
        let chunk = Chunk {
            body,
            expected_offset: Some(0),
            expected_len,
        };
        let stored = async {
            storage.append_upload(&id, chunk).await?;
            storage.commit_upload(&id, &digest).await
        }
        .await;
        match stored {
            Ok(size) => {
                ctx.notes.push(format!(
                    "mirror: fetched blob {digest} ({size} bytes) from upstream {}",
                    at.upstream.key
                ));
                Ok(())
            }
            Err(e) => {
                let _ = storage.cancel_upload(&id).await;
                Err(RegistryError::new(ErrorCode::BlobUnknown)
                    .with_status(StatusCode::BAD_GATEWAY)
                    .detail(format!(
                        "blob from upstream {} not stored: {e}",
                        at.upstream.key
                    ))
                    .into_response())
            }
        }
    }

    /// Tag lists are proxied (not cached): the upstream's answer, or its refusal.
    async fn proxy_tags(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        at: &Located<'_>,
        client_auth: Option<&HeaderValue>,
    ) -> Response {
        let scope = Scope::repository(&at.remote, &["pull"]);
        let mut path = format!("/v2/{}/tags/list", at.remote);
        let passed: Vec<String> = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| p.starts_with("n=") || p.starts_with("last="))
            .map(str::to_owned)
            .collect();
        if !passed.is_empty() {
            path = format!("{path}?{}", passed.join("&"));
        }
        match self
            .upstream(
                ctx,
                at.upstream,
                Call {
                    method: Method::GET,
                    path: &path,
                    accept: None,
                    client_auth,
                    scope: &scope,
                },
            )
            .await
        {
            Ok(r) if r.status().is_success() => relay(r).await,
            Ok(r) if self.pass_through() && Self::relay_refusal(ctx, at.upstream, &r) => {
                relay(r).await
            }
            Ok(r) => upstream_failure(at.upstream, r.status(), ErrorCode::NameUnknown),
            Err(e) => e.into_response(),
        }
    }

    // Same shape as `Profile::authorize`, which it implements for the Basic scheme.
    #[allow(clippy::result_large_err)]
    fn authorize_basic(
        &self,
        ctx: &mut Ctx,
        presented: &Presented,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let principal = match presented {
            Presented::Basic { username, password } => self
                .directory
                .basic(username, password)
                .filter(|p| !p.expired(&self.clock)),
            _ => None,
        };
        // A mirror run without authentication for some repositories (distribution's proxy
        // with no `auth` section, the usual Docker Hub mirror): the host's `anonymous`
        // grants serve a request that presents nothing.
        if principal.is_none()
            && matches!(presented, Presented::None)
            && self.directory.has_anonymous()
            && scope.is_none_or(|s| self.directory.anonymous_allowed(s).len() == s.actions.len())
        {
            ctx.auth.verdict = Some("anonymous".into());
            return Ok(());
        }
        let Some(p) = principal else {
            ctx.auth.verdict = Some(
                if matches!(presented, Presented::Basic { .. }) {
                    "bad-credentials"
                } else {
                    "challenged"
                }
                .into(),
            );
            let mut r = Response::new(Body::from(unauthorized_body(None)));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("Basic realm=\"{}\"", self.options.basic_realm))
            {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return Err(r);
        };
        ctx.auth.principal = Some(p.name.clone());
        if let Some(s) = scope
            && p.allowed(s, &self.clock).len() < s.actions.len()
        {
            ctx.auth.verdict = Some("denied".into());
            return Err(RegistryError::new(ErrorCode::Denied).into_response());
        }
        ctx.auth.verdict = Some("ok".into());
        Ok(())
    }
}

/// One request to an upstream.
struct Call<'a> {
    method: Method,
    /// Path and query at the upstream (`/v2/<repo>/manifests/<ref>`).
    path: &'a str,
    accept: Option<&'a HeaderValue>,
    /// The client's `Authorization`, relayed in pass-through mode only.
    client_auth: Option<&'a HeaderValue>,
    /// What the request needs (the key of the mirror's upstream token cache).
    scope: &'a Scope,
}

struct Located<'a> {
    upstream: &'a UpstreamOptions,
    /// The repository name at the upstream.
    remote: String,
    /// The repository name in the mirror's storage.
    local: String,
}

fn build_client(
    options: &MirrorOptions,
    allowed: &Allowed,
) -> Result<reqwest::Client, MirrorError> {
    let policy_allowed = allowed.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if policy_allowed.permits(attempt.url()) {
            attempt.follow()
        } else {
            attempt.error("redirect leaves loopback")
        }
    });
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .redirect(policy)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(options.timeout_secs.max(1)))
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    for (host, addr) in &options.resolve {
        builder = builder.resolve(host, *addr);
    }
    if let Some(path) = &options.ca_pem {
        let pem = std::fs::read(path).map_err(|e| MirrorError::Ca {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| MirrorError::Ca {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| MirrorError::Client(e.to_string()))
}

/// `docker.io` → `docker.io`; `private.test:5000` → `private.test-5000` (a valid component).
fn local_component(key: &str) -> String {
    key.to_ascii_lowercase().replace(':', "-")
}

fn query_value(parts: &Parts, key: &str) -> Option<String> {
    super::parse_urlencoded(parts.uri.query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn basic_header(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn parse_challenge(value: &str) -> HashMap<String, String> {
    let rest = value.split_once(' ').map_or("", |(_, r)| r);
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    // bounded by the header's length: every iteration consumes at least one char
    while chars.peek().is_some() {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => {
                        val.push(c);
                        escaped = false;
                    }
                }
            }
        } else {
            val = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        if !key.is_empty() {
            out.insert(key.trim().to_ascii_lowercase(), val);
        }
    }
    out
}

fn unavailable(key: &str, e: &reqwest::Error) -> RegistryError {
    RegistryError::new(ErrorCode::NameUnknown)
        .with_status(StatusCode::BAD_GATEWAY)
        .with_message("upstream unavailable")
        .detail(format!("upstream {key}: {e}"))
}

fn internal(e: crate::storage::StorageError) -> Response {
    RegistryError::new(ErrorCode::Unsupported)
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .with_message("storage failure")
        .detail(e.to_string())
        .into_response()
}

/// An upstream answer that is not content: 404 → the route's `*_UNKNOWN`, 429 → 429 with the
/// upstream's `Retry-After`, a refusal → `DENIED`, anything else → 502.
fn upstream_failure(up: &UpstreamOptions, status: StatusCode, unknown: ErrorCode) -> Response {
    let detail = format!("upstream {} answered {status}", up.key);
    match status {
        StatusCode::NOT_FOUND => RegistryError::new(unknown).detail(detail),
        StatusCode::TOO_MANY_REQUESTS => {
            RegistryError::new(ErrorCode::TooManyRequests).detail(detail)
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::new(ErrorCode::Denied)
            .with_message("upstream refused the mirror's credentials")
            .detail(detail),
        _ => RegistryError::new(unknown)
            .with_status(StatusCode::BAD_GATEWAY)
            .with_message("upstream failure")
            .detail(detail),
    }
    .into_response()
}

async fn read_capped(r: reqwest::Response, cap: usize, key: &str) -> Result<Bytes, Response> {
    if r.content_length().is_some_and(|n| n > cap as u64) {
        return Err(RegistryError::new(ErrorCode::ManifestInvalid)
            .with_status(StatusCode::BAD_GATEWAY)
            .detail(format!("upstream {key} manifest exceeds {cap} bytes"))
            .into_response());
    }
    let body = Box::pin(r.bytes_stream().map_err(std::io::Error::other));
    crate::storage::collect(body, cap).await.map_err(|e| {
        RegistryError::new(ErrorCode::ManifestUnknown)
            .with_status(StatusCode::BAD_GATEWAY)
            .detail(format!("upstream {key} manifest: {e}"))
            .into_response()
    })
}

/// The upstream's response as the mirror's: status, the headers clients act on, body.
async fn relay(r: reqwest::Response) -> Response {
    let status = r.status();
    let mut headers = http::HeaderMap::new();
    for name in [
        header::WWW_AUTHENTICATE,
        header::CONTENT_TYPE,
        header::RETRY_AFTER,
        header::LINK,
    ] {
        for v in r.headers().get_all(&name) {
            headers.append(name.clone(), v.clone());
        }
    }
    let body = r.bytes().await.unwrap_or_default();
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn route_name(route: &Route) -> Option<&str> {
    match route {
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => Some(name),
        Route::Base | Route::Catalog => None,
    }
}

#[async_trait]
impl Profile for Mirror {
    fn name(&self) -> &str {
        "mirror/1"
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Option<Response> {
        if self.options.auth == MirrorAuth::Own && self.options.own_scheme == OwnScheme::Bearer {
            return self.bearer.endpoint(ctx, parts, body).await;
        }
        None
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        match (self.options.auth, self.options.own_scheme) {
            (MirrorAuth::PassThrough, _) => {
                // The upstream decides, in `prepare`.
                ctx.auth.verdict = Some("pass-through".into());
                Ok(())
            }
            (MirrorAuth::Own, OwnScheme::Bearer) => self.bearer.authorize(ctx, parts, scope).await,
            (MirrorAuth::Own, OwnScheme::Basic) => self.authorize_basic(ctx, &presented, scope),
        }
    }

    async fn prepare(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        registry: &Registry,
    ) -> Result<(), Response> {
        let Some(route) = route::parse(parts.uri.path()) else {
            return Ok(());
        };
        let client_auth = parts.headers.get(header::AUTHORIZATION).cloned();
        let read = parts.method == Method::GET || parts.method == Method::HEAD;
        if matches!(route, Route::Base) {
            if !self.pass_through() {
                return Ok(());
            }
            // The ping is relayed to the (first) upstream: its challenge is what the client
            // must answer.
            let up = &self.options.upstreams[0];
            let ping = Scope::repository("", &[]);
            return match self
                .upstream(
                    ctx,
                    up,
                    Call {
                        method: Method::GET,
                        path: "/v2/",
                        accept: None,
                        client_auth: client_auth.as_ref(),
                        scope: &ping,
                    },
                )
                .await
            {
                Ok(r) => {
                    Self::relay_refusal(ctx, up, &r);
                    Err(relay(r).await)
                }
                Err(e) => Err(e.into_response()),
            };
        }
        let Some(name) = route_name(&route).map(str::to_owned) else {
            return Ok(());
        };
        if !read || matches!(route, Route::UploadStart { .. } | Route::Upload { .. }) {
            ctx.notes.push("mirror: write refused (pull-only)".into());
            return Err(RegistryError::new(ErrorCode::Unsupported)
                .detail("pushing to a registry configured as a pull-through cache is unsupported")
                .into_response());
        }
        let at = self
            .locate(&name, parts)
            .map_err(IntoResponse::into_response)?;
        if at.local != name {
            let path = parts.uri.path().replacen(
                &format!("/v2/{name}/"),
                &format!("/v2/{}/", at.local),
                1,
            );
            let uri = match parts.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(uri) = uri.parse() {
                parts.uri = uri;
            }
        }
        ctx.notes.push(format!(
            "mirror: {} → upstream {} repository {}",
            name, at.upstream.key, at.remote
        ));
        match &route {
            Route::Manifest { reference, .. } => {
                self.fill_manifest(ctx, parts, registry, &at, reference, client_auth.as_ref())
                    .await
            }
            Route::Blob { digest, .. } => {
                self.fill_blob(ctx, registry, &at, digest, client_auth.as_ref())
                    .await
            }
            Route::Tags { .. } => Err(self.proxy_tags(ctx, parts, &at, client_auth.as_ref()).await),
            _ => Ok(()),
        }
    }
}

/// Whether `url`'s authority is `host` (`https://registry-1.docker.io` and
/// `registry-1.docker.io`), compared case-insensitively.
fn url_host_is(url: &str, host: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn parses_bearer_challenges() {
        let p = parse_challenge(
            r#"Bearer realm="https://private.test/token",service="private.test",scope="repository:team/app:pull""#,
        );
        assert_eq!(p["realm"], "https://private.test/token");
        assert_eq!(p["service"], "private.test");
        assert_eq!(p["scope"], "repository:team/app:pull");
        let p = parse_challenge(r#"Bearer realm="a,b",error=insufficient_scope"#);
        assert_eq!(p["realm"], "a,b");
        assert_eq!(p["error"], "insufficient_scope");
    }

    #[rstest]
    #[case("http://127.0.0.1:5000", true)]
    #[case("http://[::1]:5000", true)]
    #[case("https://private.test", true)]
    #[case("http://localhost:8080", true)]
    #[case("https://registry-1.docker.io", false)]
    #[case("http://10.0.0.5:30345", false)]
    #[case("ftp://127.0.0.1/", false)]
    fn only_loopback_or_mapped_hosts(#[case] url: &str, #[case] want: bool) {
        let allowed = Allowed(HashSet::from(["private.test".to_owned()]), false);
        let url = reqwest::Url::parse(url).expect("url");
        assert_eq!(allowed.permits(&url), want);
    }

    #[test]
    fn documentation_addresses_only_in_a_private_network() {
        let url = reqwest::Url::parse("https://198.51.100.7/v2/").expect("url");
        assert!(!Allowed(HashSet::new(), false).permits(&url));
        assert!(Allowed(HashSet::new(), true).permits(&url));
        let outside = reqwest::Url::parse("https://93.184.216.34/v2/").expect("url");
        assert!(!Allowed(HashSet::new(), true).permits(&outside));
    }

    #[test]
    fn refuses_non_loopback_configuration() {
        let clock = crate::auth::Clock::system();
        let issuer = Arc::new(TokenIssuer::generate("m", clock).expect("key"));
        let mut options = MirrorOptions {
            upstreams: vec![UpstreamOptions {
                key: "docker.io".into(),
                url: "https://registry-1.docker.io".into(),
                username: None,
                password: None,
            }],
            ..MirrorOptions::default()
        };
        let err = Mirror::new(
            options.clone(),
            Directory::default(),
            issuer.clone(),
            Arc::default(),
        )
        .err()
        .expect("refused");
        assert!(matches!(err, MirrorError::UpstreamUrl(_)), "{err}");
        options.resolve.insert(
            "registry-1.docker.io".into(),
            SocketAddr::from(([192, 0, 2, 1], 443)),
        );
        let err = Mirror::new(options, Directory::default(), issuer, Arc::default())
            .err()
            .expect("refused");
        assert!(matches!(err, MirrorError::NotLoopback { .. }), "{err}");
    }
}
