//! Vendor profiles: how a virtual registry authenticates and what its auth exchanges look
//! like on the wire. A profile sees every request of its host before the core API does
//! ([`Profile::authorize`]) and serves the host's non-`/v2/` endpoints, such as token
//! services ([`Profile::endpoint`]). What it decides is written into the [`Ctx`], which
//! becomes the journal entry's auth record.
//!
//! One module per profile. `open` (no auth) and `bearer` (the distribution token protocol)
//! are the generic ones the vendor profiles build on.

pub mod acr;
pub mod bearer;
pub mod dockerhub;
pub mod ecr;
pub mod gitlab;
pub mod mirror;
pub mod open;

use crate::api::Registry;
use crate::auth::Scope;
use crate::journal::AuthRecord;
use crate::redirect::BlobRedirect;
use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a profile learns about one request, for the journal.
#[derive(Debug, Default)]
pub struct Ctx {
    /// `https://host[:port]` as clients address this registry (realms are built from it).
    pub base_url: String,
    pub auth: AuthRecord,
    pub form: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

#[async_trait]
pub trait Profile: Send + Sync + 'static {
    /// The profile's name and version, e.g. `bearer/1`.
    fn name(&self) -> &str;

    /// Hostnames besides the registry's own whose requests go to this profile's `endpoint`
    /// (a token realm on a separate host such as `gitlab.example.com` or `auth.docker.io`).
    fn extra_hosts(&self) -> Vec<String> {
        Vec::new()
    }

    /// The storage host blob downloads are redirected to (ACR's Azure Blob Storage, ECR's
    /// S3), when the profile redirects. Its hostname is one of [`Profile::extra_hosts`]; the
    /// fleet serves it with [`crate::redirect::BlobRedirect::serve_storage`].
    fn blob_redirect(&self) -> Option<Arc<BlobRedirect>> {
        None
    }

    /// Whether anyone may pull every repository (no authentication at all). Then a mount
    /// by automatic content discovery may link any blob the registry holds: nothing it
    /// reveals was unreadable.
    fn everything_is_public(&self) -> bool {
        false
    }

    /// Serves a path outside `/v2/` (a token endpoint…); `None` means "not mine" (404).
    async fn endpoint(&self, _ctx: &mut Ctx, _parts: &Parts, _body: Body) -> Option<Response> {
        None
    }

    /// Lets a `/v2/` request through, or answers it (a challenge, a denial). `scope` is what
    /// the request needs (`None` for the `/v2/` ping, which only needs authentication).
    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response>;

    /// Runs after [`Profile::authorize`] let a `/v2/` request through and before the core API
    /// serves it. A profile may rewrite the request (Docker Hub's `library/` defaulting, a
    /// mirror's namespace), fill the registry's storage (a pull-through cache fetching on a
    /// miss), or answer the request itself (`Err`). Default: nothing.
    async fn prepare(
        &self,
        _ctx: &mut Ctx,
        _parts: &mut Parts,
        _registry: &Registry,
    ) -> Result<(), Response> {
        Ok(())
    }
}

/// Reads a form-encoded body (token requests), bounded: token forms are small.
pub async fn read_form(body: Body) -> Result<Vec<(String, String)>, String> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
    Ok(parse_urlencoded(text))
}

/// `a=1&b=2` into pairs, `+` as space, percent-decoded, repeats kept.
pub fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}
