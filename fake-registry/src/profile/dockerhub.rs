//! Docker Hub (profile `dockerhub/1`): the registry (`registry-1.docker.io`) challenges with
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`; the token
//! service lives on a separate host (`auth.docker.io`) and speaks the distribution token
//! protocol (GET with Basic or anonymous, OAuth2 POST), bad credentials get 401
//! `{"details":"incorrect username or password"}`; one-segment repository names are
//! `library/` images on the registry (`/v2/alpine/…` is `library/alpine`) while the token
//! service grants nothing for an unprefixed scope; manifest GETs are counted against a pull
//! rate limit reported in `ratelimit-limit` / `ratelimit-remaining` (`N;w=SECONDS`) and
//! refused with 429 `TOOMANYREQUESTS` past it.
//!
//! Sources (docs/profiles/dockerhub.md): distribution `docs/spec/auth/token.md` (the
//! challenge example names auth.docker.io / registry.docker.io) and `oauth.md`;
//! distribution#2624 (157-byte 401 capture); distribution `registry/client/errors.go`
//! (`details` body of 401s); lucacome/docker-image-update-checker#31 and StackOverflow
//! 39641186 (unprefixed scope gets empty access; `/v2/alpine/tags/list` works); docker/docs
//! pulls.md and #11648 (rate-limit headers, 429 text, HEAD not counted); hub-feedback#2464
//! (`ratelimit-limit: 100;w=21600` capture); ScribeMD/docker-cache#829 (429 message).

use super::bearer::{Bearer, BearerOptions, json_body};
use super::{Ctx, Profile};
use crate::api::Registry;
use crate::api::route::{self, Route};
use crate::auth::{Directory, Scope, TokenIssuer};
use crate::journal::Redactor;
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerhubOptions {
    /// The token service's host (`auth.docker.io`), served by this profile as an extra host.
    pub auth_host: String,
    /// Scheme and authority of the token service when it is not `https://<auth_host>`
    /// (plain-HTTP tests: `http://localhost:PORT`). Requests whose `Host` is this authority's
    /// host are the token service's.
    pub auth_base: Option<String>,
    /// The challenge's `service` and the tokens' `aud`.
    pub service: String,
    /// Token lifetime (the distribution token spec's example and Hub tokens: 300 s).
    pub token_lifetime: i64,
    /// The pull rate limit; `None` switches it off.
    pub rate_limit: Option<RateLimit>,
}

impl Default for DockerhubOptions {
    fn default() -> Self {
        Self {
            auth_host: "auth.docker.io".into(),
            auth_base: None,
            service: "registry.docker.io".into(),
            token_lifetime: 300,
            rate_limit: Some(RateLimit::default()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Manifest GETs per window for anonymous clients (per source address on Hub; one
    /// bucket here: every client of the fake is on loopback).
    pub anonymous: u32,
    /// Manifest GETs per window per authenticated principal.
    pub authenticated: u32,
    /// The window in seconds (`w=21600`, six hours, in the headers).
    pub window: i64,
    /// `Retry-After` seconds on a 429. Hub's pull-limit 429 is not documented to carry it,
    /// so it is off unless configured (a scenario knob for clients' retry behaviour).
    pub retry_after: Option<u64>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            anonymous: 100,
            authenticated: 200,
            window: 21_600,
            retry_after: None,
        }
    }
}

/// Hub's 429 texts (2024–2025 captures).
pub const PULL_LIMIT: &str = "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit";
pub const ANONYMOUS_PULL_LIMIT: &str = "You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit";

pub struct Dockerhub {
    options: DockerhubOptions,
    /// The distribution token protocol, served on the auth host.
    tokens: Bearer,
    /// bucket (principal name or `anonymous`) → (window start, manifest GETs counted)
    counters: Mutex<HashMap<String, (i64, u32)>>,
    clock: crate::auth::Clock,
}

impl Dockerhub {
    pub fn new(
        options: DockerhubOptions,
        directory: Directory,
        issuer: Arc<TokenIssuer>,
        redactor: Arc<Redactor>,
    ) -> Self {
        let clock = issuer.clock().clone();
        let bearer = BearerOptions {
            service: options.service.clone(),
            realm: Some(format!("{}/token", auth_base(&options))),
            token_path: "/token".into(),
            lifetime: options.token_lifetime,
            allow_post: true,
        };
        Self {
            tokens: Bearer::new(bearer, directory, issuer, redactor),
            options,
            counters: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Whether a request is addressed to the token service's host.
    fn is_auth_host(&self, parts: &Parts) -> bool {
        let base = auth_base(&self.options);
        let authority = base.split_once("://").map_or(base.as_str(), |(_, a)| a);
        hostname(authority).eq_ignore_ascii_case(hostname(&request_host(parts)))
    }

    /// Counts a manifest GET against the bucket; `Err(limit)` once it is over.
    fn count(&self, bucket: &str, limit: u32, window: i64, counted: bool) -> Result<u32, u32> {
        let now = self.clock.now();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counters.entry(bucket.to_owned()).or_insert((now, 0));
        if now >= entry.0 + window {
            *entry = (now, 0);
        }
        if counted {
            if entry.1 >= limit {
                return Err(limit);
            }
            entry.1 += 1;
        }
        Ok(limit.saturating_sub(entry.1))
    }

    /// Serves a manifest read itself so the rate-limit headers can be added to the answer.
    async fn rate_limited_manifest(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        registry: &Registry,
        limits: &RateLimit,
    ) -> Response {
        let (bucket, limit) = match &ctx.auth.principal {
            Some(p) => (p.clone(), limits.authenticated),
            None => ("anonymous".to_owned(), limits.anonymous),
        };
        // HEAD requests are not counted (docker/docs pulls.md).
        let counted = parts.method == Method::GET;
        let window = limits.window;
        match self.count(&bucket, limit, window, counted) {
            Ok(remaining) => {
                let mut req = Request::builder()
                    .method(parts.method.clone())
                    .uri(parts.uri.clone());
                for (k, v) in &parts.headers {
                    req = req.header(k, v);
                }
                let mut r = match req.body(Body::empty()) {
                    Ok(req) => registry.handle(req).await,
                    Err(e) => json_body(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({"error": e.to_string()}),
                    ),
                };
                if r.status().is_success() {
                    rate_headers(&mut r, limit, remaining, window, &bucket);
                }
                r
            }
            Err(limit) => {
                ctx.auth.verdict = Some("rate-limited".into());
                ctx.notes
                    .push(format!("pull rate limit of {limit} reached for {bucket}"));
                let message = if ctx.auth.principal.is_some() {
                    PULL_LIMIT
                } else {
                    ANONYMOUS_PULL_LIMIT
                };
                let mut r = json_body(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}),
                );
                rate_headers(&mut r, limit, 0, window, &bucket);
                if let Some(secs) = limits.retry_after {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                r
            }
        }
    }
}

fn auth_base(options: &DockerhubOptions) -> String {
    options
        .auth_base
        .clone()
        .map(|b| b.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://{}", options.auth_host))
}

fn request_host(parts: &Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
fn hostname(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn rate_headers(r: &mut Response, limit: u32, remaining: u32, window: i64, source: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{limit};w={window}")) {
        h.insert("ratelimit-limit", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{remaining};w={window}")) {
        h.insert("ratelimit-remaining", v);
    }
    if let Ok(v) = HeaderValue::from_str(source) {
        h.insert("docker-ratelimit-source", v);
    }
}

/// Docker Hub's implicit namespace: a one-segment repository is an official image.
pub fn normalize(name: &str) -> String {
    if name.contains('/') {
        name.to_owned()
    } else {
        format!("library/{name}")
    }
}

/// The route's repository name, for rewriting the path.
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
impl Profile for Dockerhub {
    fn name(&self) -> &str {
        "dockerhub/1"
    }

    fn extra_hosts(&self) -> Vec<String> {
        vec![self.options.auth_host.clone()]
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Option<Response> {
        if !self.is_auth_host(parts) {
            return None;
        }
        let response = self.tokens.endpoint(ctx, parts, body).await?;
        if ctx.auth.verdict.as_deref() == Some("bad-credentials") && parts.method == Method::GET {
            // Hub's token service answers bad Basic credentials with a `details` body, which
            // distribution's client (registry/client/errors.go) turns into
            // "unauthorized: incorrect username or password".
            return Some(json_body(
                StatusCode::UNAUTHORIZED,
                &json!({"details": "incorrect username or password"}),
            ));
        }
        Some(response)
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let normalized = scope.map(|s| Scope {
            kind: s.kind.clone(),
            name: if s.kind == "repository" {
                normalize(&s.name)
            } else {
                s.name.clone()
            },
            actions: s.actions.clone(),
        });
        self.tokens.authorize(ctx, parts, normalized.as_ref()).await
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
        if let Some(name) = route_name(&route)
            && !name.contains('/')
        {
            let path = parts.uri.path();
            let rewritten =
                path.replacen(&format!("/v2/{name}/"), &format!("/v2/library/{name}/"), 1);
            let uri = match parts.uri.query() {
                Some(q) => format!("{rewritten}?{q}"),
                None => rewritten,
            };
            if let Ok(uri) = uri.parse() {
                ctx.notes
                    .push(format!("library/ defaulting: {name} → library/{name}"));
                parts.uri = uri;
            }
        }
        if let (Route::Manifest { .. }, Some(limits)) = (&route, &self.options.rate_limit)
            && (parts.method == Method::GET || parts.method == Method::HEAD)
        {
            return Err(self
                .rate_limited_manifest(ctx, parts, registry, limits)
                .await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("alpine", "library/alpine")]
    #[case("library/alpine", "library/alpine")]
    #[case("grafana/grafana", "grafana/grafana")]
    fn library_defaulting(#[case] name: &str, #[case] want: &str) {
        assert_eq!(normalize(name), want);
    }

    #[rstest]
    #[case("auth.docker.io", "auth.docker.io")]
    #[case("localhost:5000", "localhost")]
    #[case("[::1]:443", "[::1]")]
    fn hostnames(#[case] authority: &str, #[case] want: &str) {
        assert_eq!(hostname(authority), want);
    }
}
