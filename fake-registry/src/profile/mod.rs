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
pub mod ecr;
pub mod gitlab;
pub mod open;

use crate::auth::Scope;
use crate::journal::AuthRecord;
use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use std::collections::BTreeMap;

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

    /// Hostnames besides the registry's own whose requests go to this profile's `endpoint`
    /// (a token realm on a separate host such as `gitlab.example.com` or `auth.docker.io`).
    fn extra_hosts(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The `host[:port]` of an `https://host[:port][/path]` URL (`None` for anything else), as
/// [`Profile::extra_hosts`] wants it.
pub fn url_authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
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
