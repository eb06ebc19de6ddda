//! Amazon ECR (profile `ecr/1`): Basic only — `Basic realm="https://<host>/",service=
//! "ecr.amazonaws.com"` with a `text/plain` `Not Authorized\n` body; user `AWS` with a
//! password that expires (12 h by default) and then gets 403 `DENIED` "Your authorization
//! token has expired…"; the realm is not a token service (404); repositories must exist
//! before a push (`NAME_UNKNOWN` naming the registry id); list pages capped at 1000.
//!
//! Sources (docs/profiles/ecr.md): mdlavin/copy-docker-image#5, keel#211, kube-image-keeper#172
//! (`Not Authorized\n`); renovate's ECR comment (challenge form); NVIDIA/enroot#59 (realm 404);
//! amazon-ecr-credential-helper#679 and soci-snapshotter#1148 (403 on expiry); cue-labs/oci
//! `ociserver` (1000-item pages).

use super::bearer::describe;
use super::{Ctx, Profile};
use crate::api::Registry;
use crate::auth::{Clock, Directory, Presented, Scope};
use crate::error::{ErrorCode, RegistryError};
use crate::journal::Redactor;
use crate::redirect::{BlobRedirect, StorageVendor};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;

/// ECR's message for an expired authorization token.
pub const EXPIRED: &str = "Your authorization token has expired. Reauthenticate and try again.";
/// `GetAuthorizationToken`'s validity: 12 hours (behaviours.md §4.4).
pub const TOKEN_LIFETIME: i64 = 12 * 3600;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EcrOptions {
    /// `123456789012.dkr.ecr.us-east-2.amazonaws.com`
    pub host: String,
    /// Repositories that exist besides those holding content (seeded or pushed): ECR refuses
    /// pushes to any other with 404 `NAME_UNKNOWN`.
    pub repositories: Vec<String>,
    /// Departure from ECR: every repository exists (a push creates it), as registries with
    /// create-on-push do. Off by default.
    pub any_repository: bool,
    /// Seconds a credential stays valid after the registry starts when its principal sets
    /// no `expires_at` (ECR's authorization tokens: 12 hours). `None`: such credentials never
    /// expire (a departure).
    pub token_lifetime: Option<i64>,
    /// Blob GETs answer 307 to an S3 presigned URL on the storage host (on by default, as on
    /// ECR; served only by a fleet, which serves the storage host).
    pub storage_redirect: bool,
    /// The storage host; empty: `prod-<region>-starport-layer-bucket.s3.<region>.amazonaws.com`
    /// with the region of `host` (`us-east-1` when it names none).
    pub storage_host: String,
}

impl Default for EcrOptions {
    /// The host is filled from the fleet host's name when a config leaves it empty.
    fn default() -> Self {
        Self::new("")
    }
}

impl EcrOptions {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_ascii_lowercase(),
            repositories: Vec::new(),
            any_repository: false,
            token_lifetime: Some(TOKEN_LIFETIME),
            storage_redirect: true,
            storage_host: String::new(),
        }
    }

    /// The region in `<account>.dkr.ecr.<region>.amazonaws.com`, `us-east-1` otherwise.
    pub fn region(&self) -> &str {
        let labels: Vec<&str> = self.host.split('.').collect();
        match labels.as_slice() {
            [_, "dkr", "ecr", region, ..] if !region.is_empty() => region,
            _ => "us-east-1",
        }
    }

    /// The storage host blob downloads are redirected to.
    pub fn storage_hostname(&self) -> String {
        if !self.storage_host.is_empty() {
            return self.storage_host.to_ascii_lowercase();
        }
        let region = self.region();
        format!("prod-{region}-starport-layer-bucket.s3.{region}.amazonaws.com")
    }

    /// The 12-digit account id at the front of the host.
    pub fn registry_id(&self) -> &str {
        self.host.split('.').next().unwrap_or("")
    }
}

pub struct Ecr {
    options: EcrOptions,
    directory: Directory,
    clock: Clock,
    redirect: Option<Arc<BlobRedirect>>,
}

impl Ecr {
    pub fn new(
        options: EcrOptions,
        mut directory: Directory,
        clock: Clock,
        redactor: Arc<Redactor>,
    ) -> Self {
        if let Some(lifetime) = options.token_lifetime {
            let expiry = clock.now() + lifetime;
            for p in &mut directory.principals {
                p.expires_at.get_or_insert(expiry);
            }
        }
        for (name, secret) in directory.secrets() {
            redactor.add(secret, &format!("secret of {name}"));
        }
        let redirect = options.storage_redirect.then(|| {
            Arc::new(BlobRedirect::new(
                StorageVendor::S3,
                &options.storage_hostname(),
                options.registry_id(),
                clock.clone(),
                redactor.clone(),
            ))
        });
        Self {
            options,
            directory,
            clock,
            redirect,
        }
    }

    /// The realm names `https://<host>/`, with the registry's port when `host` is the
    /// registry's own hostname on another port than 443.
    fn not_authorized(&self, ctx: &Ctx) -> Response {
        let mut r = (StatusCode::UNAUTHORIZED, "Not Authorized\n").into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Basic realm=\"{}/\",service=\"ecr.amazonaws.com\"",
            super::realm_base(ctx, &self.options.host)
        )) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

#[async_trait]
impl Profile for Ecr {
    fn name(&self) -> &str {
        "ecr/1"
    }

    fn extra_hosts(&self) -> Vec<String> {
        self.redirect.iter().map(|r| r.authority.clone()).collect()
    }

    fn blob_redirect(&self) -> Option<Arc<BlobRedirect>> {
        self.redirect.clone()
    }

    async fn endpoint(&self, ctx: &mut Ctx, _parts: &Parts, _body: Body) -> Option<Response> {
        // The realm (`https://<host>/`) is not a token service.
        ctx.notes.push("ECR's realm is not a token service".into());
        Some((StatusCode::NOT_FOUND, "404 page not found\n").into_response())
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let Presented::Basic { username, password } = presented else {
            ctx.auth.verdict = Some("challenged".into());
            return Err(self.not_authorized(ctx));
        };
        let Some(p) = self.directory.basic(&username, &password) else {
            ctx.auth.verdict = Some("bad-credentials".into());
            return Err(self.not_authorized(ctx));
        };
        ctx.auth.principal = Some(p.name.clone());
        if p.expired(&self.clock) {
            ctx.auth.verdict = Some("expired".into());
            return Err(RegistryError::new(ErrorCode::Denied)
                .with_message(EXPIRED)
                .into_response());
        }
        if let Some(scope) = scope
            && p.allowed(scope, &self.clock).len() < scope.actions.len()
        {
            ctx.auth.verdict = Some("denied".into());
            return Err(RegistryError::new(ErrorCode::Denied)
                .with_message(format!(
                    "User: {} is not authorized to perform: {} on resource: {}",
                    p.name,
                    scope.actions.join(","),
                    scope.name
                ))
                .into_response());
        }
        ctx.auth.verdict = Some("ok".into());
        Ok(())
    }

    /// ECR does not create repositories on push: a write to a repository that was neither
    /// configured nor holds content is 404 `NAME_UNKNOWN`.
    async fn prepare(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        registry: &Registry,
    ) -> Result<(), Response> {
        if self.options.any_repository {
            return Ok(());
        }
        let Some(route) = crate::api::route::parse(parts.uri.path()) else {
            return Ok(());
        };
        let Some(scope) = crate::auth::scope::required_scope(&parts.method, &route) else {
            return Ok(());
        };
        if scope.kind != "repository" || !scope.actions.iter().any(|a| a == "push") {
            return Ok(());
        }
        if self.options.repositories.iter().any(|r| r == &scope.name) {
            return Ok(());
        }
        let holds_content = match registry.storage().repositories().await {
            Ok(names) => names.iter().any(|r| r == &scope.name),
            Err(e) => return Err(RegistryError::from(e).into_response()),
        };
        if holds_content {
            return Ok(());
        }
        ctx.notes
            .push("push to a repository that does not exist".into());
        Err(RegistryError::new(ErrorCode::NameUnknown)
            .with_message(format!(
                "The repository with name '{}' does not exist in the registry with id '{}'",
                scope.name,
                self.options.registry_id()
            ))
            .into_response())
    }
}
