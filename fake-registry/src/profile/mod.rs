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

    /// How a cross-repository mount (`?mount=&from=`) is answered when the caller may not
    /// pull `from`; `target` is the scope the request itself needs. `None` (the default): the
    /// distribution spec's fallback, an ordinary upload session (202). Profiles modelled on
    /// CNCF distribution's token access controller answer like it: pull on `from` is one of
    /// the request's access records (`registry/handlers/app.go`, `authorized`), so a token
    /// without it gets 401 `insufficient_scope` naming both scopes.
    fn refuse_mount(&self, _ctx: &mut Ctx, _target: &Scope, _from: &Scope) -> Option<Response> {
        None
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

    /// Every `/v2/` answer passes through here last (a challenge, a denial, the core API's
    /// answer), before `Docker-Distribution-Api-Version` is set: a profile adds the headers
    /// its vendor sends on every response or reshapes the core's error bodies into the
    /// vendor's (ACR, from its recorded exchanges). Default: unchanged.
    async fn finish(&self, _ctx: &mut Ctx, response: Response) -> Response {
        response
    }

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

/// `scheme://authority` of where `realm_host` is served: the registry's own base URL (with its
/// port) when the realm is the registry's own hostname — a fleet serves it on the registry's
/// listener — else `https://<realm_host>`, its own listener on port 443. So a GitLab registry
/// on `:5050` whose realm is its own hostname names `https://host:5050/jwt/auth`, not a
/// `:443` that nothing serves.
pub fn realm_base(ctx: &Ctx, realm_host: &str) -> String {
    let base = ctx.base_url.trim_end_matches('/');
    if host_of_url(base).eq_ignore_ascii_case(realm_host) {
        base.to_owned()
    } else {
        format!("https://{realm_host}")
    }
}

/// The hostname of `scheme://host[:port][/…]` (IPv6 literals keep their brackets).
fn host_of_url(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(base: &str) -> Ctx {
        Ctx {
            base_url: base.into(),
            ..Ctx::default()
        }
    }

    #[test]
    fn a_realm_on_the_registry_host_keeps_the_registry_port() {
        let c = ctx("https://gitlab.example.com:5050");
        assert_eq!(
            realm_base(&c, "gitlab.example.com"),
            "https://gitlab.example.com:5050"
        );
        assert_eq!(
            realm_base(&c, "GitLab.example.com"),
            "https://gitlab.example.com:5050"
        );
        // Another host: its own listener on 443.
        assert_eq!(
            realm_base(&c, "auth.example.com"),
            "https://auth.example.com"
        );
        // On 443 the registry's base URL has no port.
        let c = ctx("https://registry.example.com");
        assert_eq!(
            realm_base(&c, "registry.example.com"),
            "https://registry.example.com"
        );
        assert_eq!(host_of_url("http://[::1]:5000/x"), "[::1]");
    }
}
