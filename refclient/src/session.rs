//! The HTTP side: one blocking client (the run's CA bundle, getaddrinfo, no automatic
//! redirects), per-host authorization (Basic or a Bearer token from the challenge's realm),
//! re-authentication when a token is refused, redirects followed without `Authorization`
//! to other hosts. Every request has a timeout; retries are bounded.

use crate::challenge::{self, Challenge};
use crate::credentials::{Credential, Keychain};
use crate::mutant::Mutant;
use crate::{Error, Result};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests per call before giving up (the first, and re-authenticated retries).
const MAX_ATTEMPTS: usize = 3;
/// Redirect hops followed.
const MAX_REDIRECTS: usize = 5;
/// The longest `Retry-After` waited for; a longer one is reported as the error it is.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// A request not answered (headers and body) in this time is abandoned: a hung registry or
/// token endpoint is a clean failure, not a hang (docs/verdicts.md `fault-tolerance`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The `impatient` mutant's request timeout: shorter than a slow but working registry takes.
const IMPATIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a repository is served: a registry, or a mirror standing in for one.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The authority connected to (`host[:port]`).
    pub host: String,
    /// A path prefix inside `/v2/` (`"gitlab/"` for a path mirror), else `""`.
    pub prefix: String,
    /// `ns=<upstream>` for a path-less mirror (containerd's convention).
    pub query: Option<String>,
    /// The registry the image reference names (for the mutants that misuse its credential).
    pub image_registry: String,
    pub is_mirror: bool,
}

impl Endpoint {
    pub fn registry(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            prefix: String::new(),
            query: None,
            image_registry: host.to_owned(),
            is_mirror: false,
        }
    }

    /// `https://host/v2/<prefix><name>/<rest>[?ns=…]`.
    pub fn url(&self, name: &str, rest: &str) -> String {
        let mut u = format!("https://{}/v2/{}{name}/{rest}", self.host, self.prefix);
        if let Some(q) = &self.query {
            u.push(if u.contains('?') { '&' } else { '?' });
            u.push_str(q);
        }
        u
    }
}

#[derive(Debug, Clone)]
enum HostAuth {
    Basic(String),
    Bearer(String),
}

impl HostAuth {
    fn header(&self) -> String {
        match self {
            Self::Basic(h) => h.clone(),
            Self::Bearer(t) => format!("Bearer {t}"),
        }
    }
}

pub struct Session {
    pub http: Client,
    pub mutant: Mutant,
    pub keychain: Keychain,
    auth: BTreeMap<String, HostAuth>,
}

/// How a request is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Normal,
    /// No `Authorization`, no token dance (the digest-blobs-anonymous mutant).
    None,
}

pub fn build_http(mutant: Mutant) -> Result<Client> {
    let timeout = if mutant == Mutant::Impatient {
        IMPATIENT_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    let mut b = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("regcompat-refclient/", env!("CARGO_PKG_VERSION")));
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        let pem = std::fs::read(&file)
            .map_err(|e| Error::Usage(format!("SSL_CERT_FILE {}: {e}", file.to_string_lossy())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Usage(format!("SSL_CERT_FILE: {e}")))?;
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if mutant == Mutant::Tls13Only {
        b = b.min_tls_version(reqwest::tls::Version::TLS_1_3);
    }
    if mutant == Mutant::InsecureTls {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| Error::Http(e.to_string()))
}

/// The first `error`/`message` a registry or token service put in its body, else the
/// body's first line.
pub fn body_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(e) = v["errors"].get(0) {
            let code = e["code"].as_str().unwrap_or_default();
            let msg = e["message"].as_str().unwrap_or_default();
            return format!("{code} {msg}").trim().to_owned();
        }
        for k in ["error_description", "error", "message", "details"] {
            if let Some(s) = v[k].as_str() {
                return s.to_owned();
            }
        }
    }
    let line = body.trim().lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

pub fn status_error(what: &str, resp: Response) -> Error {
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    Error::Registry(format!("{what}: {status}: {}", body_message(&body)))
}

/// How long to wait before retrying a throttled (429) or unavailable (503) answer that says
/// when to come back (`Retry-After` in seconds, RFC 9110 §10.2.3); `None` = do not retry.
fn retry_after(resp: &Response) -> Option<Duration> {
    if !matches!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let seconds: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds)).filter(|d| *d <= MAX_RETRY_AFTER)
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

impl Session {
    pub fn new(mutant: Mutant) -> Result<Self> {
        Ok(Self {
            http: build_http(mutant)?,
            mutant,
            keychain: Keychain::load(mutant)?,
            auth: BTreeMap::new(),
        })
    }

    /// The credential presented to `ep`: the mirror's own for a mirror (the image
    /// registry's for the mutants that hand one credential to every host).
    fn credential_for(&mut self, ep: &Endpoint) -> Result<Option<Credential>> {
        let host = if ep.is_mirror
            && matches!(
                self.mutant,
                Mutant::CredsToEveryHost | Mutant::BasicEverywhere
            ) {
            &ep.image_registry
        } else {
            &ep.host
        };
        Ok(self.keychain.get(host)?)
    }

    /// The Authorization `basic-everywhere` adds to requests that would carry none.
    fn preemptive(&mut self, ep: &Endpoint) -> Result<Option<String>> {
        if self.mutant != Mutant::BasicEverywhere {
            return Ok(None);
        }
        Ok(self
            .keychain
            .get(&ep.image_registry)?
            .map(|c| c.basic_header()))
    }

    /// Sends a request to `ep` with its authorization, answering challenges (bounded) and
    /// following redirects. `make` builds the request afresh for each attempt.
    pub fn send(
        &mut self,
        ep: &Endpoint,
        default_scope: Option<&str>,
        mode: AuthMode,
        make: &dyn Fn(&Client) -> RequestBuilder,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let presented = match mode {
                AuthMode::None => None,
                AuthMode::Normal => match self.auth.get(&ep.host) {
                    Some(a) => Some(a.header()),
                    None => self.preemptive(ep)?,
                },
            };
            let mut req = make(&self.http);
            if let Some(h) = &presented {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .map_err(|e| Error::Http(format!("{}: {e}", ep.host)))?;
            let resp = self.follow_redirects(ep, resp, presented.as_deref())?;
            if attempt < MAX_ATTEMPTS
                && let Some(wait) = retry_after(&resp)
            {
                self.wait_to_retry(wait);
                continue;
            }
            if resp.status() != StatusCode::UNAUTHORIZED
                || mode == AuthMode::None
                || attempt >= MAX_ATTEMPTS
            {
                return Ok(resp);
            }
            let held_token = self.auth.contains_key(&ep.host);
            if held_token && self.mutant == Mutant::NoReauth {
                return Ok(resp);
            }
            let Some(ch) = challenge_of(resp.headers()) else {
                return Ok(resp);
            };
            if !self.authenticate(ep, &ch, default_scope)? {
                return Ok(resp);
            }
        }
    }

    /// Answers one challenge: stores Basic or fetches a token. `false` = nothing to answer
    /// with (the caller reports the registry's 401).
    fn authenticate(
        &mut self,
        ep: &Endpoint,
        ch: &Challenge,
        default_scope: Option<&str>,
    ) -> Result<bool> {
        let credential = self.credential_for(ep)?;
        if ch.is_basic() {
            let Some(c) = credential else {
                return Ok(false);
            };
            let header = c.basic_header();
            if matches!(self.auth.get(&ep.host), Some(HostAuth::Basic(h)) if *h == header) {
                // The same credential was already refused.
                return Ok(false);
            }
            self.auth.insert(ep.host.clone(), HostAuth::Basic(header));
            return Ok(true);
        }
        if !ch.is_bearer() {
            return Ok(false);
        }
        let realm = ch
            .param("realm")
            .ok_or_else(|| Error::Registry(format!("{}: Bearer challenge without realm", ep.host)))?
            .to_owned();
        let scope = match (self.mutant, ch.param("scope"), default_scope) {
            (Mutant::IgnoreChallengeScope, _, Some(s)) => Some(pull_only(s)),
            (Mutant::IgnoreChallengeScope, Some(s), None) => Some(pull_only(s)),
            (_, Some(s), _) => Some(s.to_owned()),
            (_, None, s) => s.map(str::to_owned),
        };
        let token = self.fetch_token(
            ep,
            &realm,
            ch.param("service"),
            scope.as_deref(),
            credential,
        )?;
        self.auth.insert(ep.host.clone(), HostAuth::Bearer(token));
        Ok(true)
    }

    /// The token request, per the docker token spec: GET with Basic or anonymous; POST
    /// `grant_type=refresh_token` for an identity token.
    pub fn fetch_token(
        &mut self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        credential: Option<Credential>,
    ) -> Result<String> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s.to_owned()));
        }
        if let Some(s) = scope {
            query.push(("scope", s.to_owned()));
        }
        let preemptive = self.preemptive(ep)?;
        let req = match (&credential, self.mutant) {
            (None, Mutant::NoAnonymousToken) => {
                return Err(Error::Registry(format!(
                    "{}: authentication required and no credentials are configured",
                    ep.host
                )));
            }
            (Some(Credential::IdentityToken(t)), m) if m != Mutant::IdentityTokenAsPassword => {
                let mut form = query.clone();
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", t.clone()));
                form.push(("client_id", "regcompat-refclient".into()));
                self.http.post(realm).form(&form)
            }
            (Some(Credential::Basic { username, password }), Mutant::PasswordGrantOnly) => {
                let mut form = query.clone();
                form.push(("grant_type", "password".into()));
                form.push(("username", username.clone()));
                form.push(("password", password.clone()));
                form.push(("client_id", "regcompat-refclient".into()));
                self.http.post(realm).form(&form)
            }
            (Some(c), _) => self
                .http
                .get(realm)
                .query(&query)
                .header(AUTHORIZATION, c.basic_header()),
            (None, _) => self.http.get(realm).query(&query),
        };
        let req = match (preemptive, &credential) {
            // Preemptive Basic on the realm too (only where the request has none).
            (Some(h), Some(Credential::IdentityToken(_))) => req.header(AUTHORIZATION, h),
            _ => req,
        };
        let send = |req: RequestBuilder| {
            req.send()
                .map_err(|e| Error::Http(format!("token request to {realm}: {e}")))
        };
        let retry = req.try_clone();
        let mut resp = send(req)?;
        if let (Some(wait), Some(retry)) = (retry_after(&resp), retry) {
            self.wait_to_retry(wait);
            resp = send(retry)?;
        }
        if !resp.status().is_success() {
            return Err(status_error(&format!("token request to {realm}"), resp));
        }
        let body: serde_json::Value = resp
            .json()
            .map_err(|e| Error::Registry(format!("token response from {realm}: {e}")))?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::Registry(format!("token response from {realm} has no token")))
    }

    /// Waits as a `Retry-After` asked before the retry (`ignore-retry-after`: not at all).
    fn wait_to_retry(&self, wait: Duration) {
        if self.mutant != Mutant::IgnoreRetryAfter {
            std::thread::sleep(wait);
        }
    }

    /// Follows 301/302/303/307/308 (bounded). To another host the request goes without
    /// `Authorization` (storage hosts take a signed URL), unless a mutant says otherwise.
    fn follow_redirects(
        &mut self,
        ep: &Endpoint,
        mut resp: Response,
        presented: Option<&str>,
    ) -> Result<Response> {
        let mut hops = 0;
        let mut current = resp.url().to_string();
        while resp.status().is_redirection() {
            let Some(location) = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned)
            else {
                return Ok(resp);
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(Error::Http(format!("{}: too many redirects", ep.host)));
            }
            let next = resp
                .url()
                .join(&location)
                .map_err(|e| Error::Http(format!("bad redirect {location:?}: {e}")))?;
            let same_host = host_of(next.as_str()) == host_of(&current);
            let auth = if same_host {
                presented.map(str::to_owned)
            } else {
                match self.mutant {
                    Mutant::NoRedirectAuthStrip => presented.map(str::to_owned),
                    Mutant::CredsToEveryHost | Mutant::BasicEverywhere => self
                        .keychain
                        .get(&ep.image_registry)?
                        .map(|c| c.basic_header()),
                    _ => None,
                }
            };
            let mut req = self.http.get(next.clone());
            if let Some(h) = auth {
                req = req.header(AUTHORIZATION, h);
            }
            current = next.to_string();
            resp = req
                .send()
                .map_err(|e| Error::Http(format!("{}: {e}", host_of(&current))))?;
        }
        Ok(resp)
    }

    /// `GET /v2/` answered with the given credential, as `docker login` checks one.
    pub fn check_login(&mut self, host: &str, credential: Option<Credential>) -> Result<()> {
        let ep = Endpoint::registry(host);
        let url = format!("https://{host}/v2/");
        let resp = self
            .http
            .get(&url)
            .send()
            .map_err(|e| Error::Http(format!("{host}: {e}")))?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Err(status_error(&format!("GET {url}"), resp));
        }
        let Some(ch) = challenge_of(resp.headers()) else {
            return Err(status_error(&format!("GET {url}"), resp));
        };
        let header = if ch.is_bearer() {
            let realm = ch
                .param("realm")
                .ok_or_else(|| Error::Registry(format!("{host}: Bearer challenge without realm")))?
                .to_owned();
            let token = self.fetch_token(
                &ep,
                &realm,
                ch.param("service"),
                ch.param("scope"),
                credential,
            )?;
            format!("Bearer {token}")
        } else if let Some(c) = credential {
            c.basic_header()
        } else {
            return Err(status_error(&format!("GET {url}"), resp));
        };
        let resp = self
            .http
            .get(&url)
            .header(AUTHORIZATION, header)
            .send()
            .map_err(|e| Error::Http(format!("{host}: {e}")))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(&format!("login to {host}"), resp))
        }
    }
}

/// `repository:x:pull,push` → `repository:x:pull` (every scope of a space-separated list).
fn pull_only(scope: &str) -> String {
    scope
        .split(' ')
        .map(|s| match s.rsplit_once(':') {
            Some((head, _)) => format!("{head}:pull"),
            None => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first challenge of a response (Bearer preferred when several are offered).
pub fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(challenge::parse)
        .collect();
    all.iter()
        .find(|c| c.is_bearer())
        .or_else(|| all.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_only_scopes_and_hosts() {
        assert_eq!(pull_only("repository:a/b:pull,push"), "repository:a/b:pull");
        assert_eq!(
            pull_only("repository:a:push repository:b:*"),
            "repository:a:pull repository:b:pull"
        );
        assert_eq!(host_of("https://Blob.Example:443/x?y"), "blob.example:443");
    }

    #[test]
    fn endpoint_urls_for_registries_and_mirrors() {
        let ep = Endpoint::registry("reg.example.com");
        assert_eq!(
            ep.url("team/app", "manifests/1"),
            "https://reg.example.com/v2/team/app/manifests/1"
        );
        let ns = Endpoint {
            host: "mirror.example.com:5443".into(),
            prefix: String::new(),
            query: Some("ns=registry.gitlab.example.com".into()),
            image_registry: "registry.gitlab.example.com".into(),
            is_mirror: true,
        };
        assert_eq!(
            ns.url("team/app", "blobs/sha256:ab"),
            "https://mirror.example.com:5443/v2/team/app/blobs/sha256:ab?ns=registry.gitlab.example.com"
        );
        let prefix = Endpoint {
            prefix: "gitlab/".into(),
            query: None,
            ..ns
        };
        assert_eq!(
            prefix.url("team/app", "manifests/1"),
            "https://mirror.example.com:5443/v2/gitlab/team/app/manifests/1"
        );
    }

    #[test]
    fn body_messages() {
        assert_eq!(
            body_message(r#"{"errors":[{"code":"DENIED","message":"expired"}]}"#),
            "DENIED expired"
        );
        assert_eq!(
            body_message(r#"{"error":"invalid_grant"}"#),
            "invalid_grant"
        );
        assert_eq!(body_message("Not Authorized\n"), "Not Authorized");
    }
}
