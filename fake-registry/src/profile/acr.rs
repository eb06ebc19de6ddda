//! Azure Container Registry (profile `acr/1`): Bearer with a realm on the login server,
//! `/oauth2/token` (GET with Basic; POST `refresh_token`; 400 on POST `password`),
//! `/oauth2/exchange` (AAD token → ACR refresh token), the null-GUID username convention for
//! identity tokens, Basic accepted directly on `/v2/*`, and ACR's exact 401 bodies.
//!
//! Sources (see docs/profiles/acr.md for each behaviour and its test):
//! Azure/acr `docs/AAD-OAuth.md` and `docs/Token-BasicAuth.md`; captures in renovate#14708 and
//! jib#2784 (challenge headers, 149- and 198-byte bodies); containerd `authorizer.go` (400 on
//! the password grant); Azure/acr#651 (`Basic realm="Azure Container Registry"`);
//! fabric8io/docker-maven-plugin#1348 (identity token used as a password).

use super::bearer::describe;
use super::{Ctx, Profile, parse_urlencoded, read_form};
use crate::auth::{Claims, Directory, Presented, Principal, PrincipalKind, Scope, TokenIssuer};
use crate::journal::Redactor;
use crate::redirect::{BlobRedirect, StorageVendor};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, json};
use std::sync::Arc;

/// The username `az acr login` and `docker login` use to say "the password is an ACR
/// refresh token".
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// ACR's message on every 401 of the challenge.
pub const AUTH_REQUIRED: &str =
    "authentication required, visit https://aka.ms/acr/authorization for more information.";
/// What ACR says when an identity token is sent as an SP password (fabric8io#1348).
pub const SP_TOKEN_AS_PASSWORD: &str = "aad access token with sp failed unknown error";
/// What ACR says for a service-principal app id AAD does not know (Azure/acr#366).
pub const APP_NOT_REGISTERED: &str = "Application not registered with AAD.";

/// `8-4-4-4-12` hexadecimal digits: the shape of an AAD application (client) id.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcrOptions {
    /// `myregistry.azurecr.io`: the realm host, the `service`, the tokens' `aud`.
    pub login_server: String,
    /// 75 minutes, from the `exp - nbf` of AAD-OAuth.md's example access token.
    pub access_token_lifetime: i64,
    /// 3 hours: "Microsoft Entra token must be renewed every 3 hours".
    pub refresh_token_lifetime: i64,
    /// Registry-level anonymous pull (off by default, as on ACR).
    pub anonymous_pull: bool,
    /// Blob GETs answer 307 to a SAS URL on the storage host (on by default, as on ACR;
    /// served only by a fleet, which serves the storage host).
    pub storage_redirect: bool,
    /// The storage host; empty: `<first label of the login server>.blob.core.windows.net`.
    pub storage_host: String,
}

impl Default for AcrOptions {
    /// The login server is filled from the host's name when a fleet config leaves it empty.
    fn default() -> Self {
        Self::new("")
    }
}

impl AcrOptions {
    pub fn new(login_server: &str) -> Self {
        Self {
            login_server: login_server.to_ascii_lowercase(),
            access_token_lifetime: 4500,
            refresh_token_lifetime: 3 * 3600,
            anonymous_pull: false,
            storage_redirect: true,
            storage_host: String::new(),
        }
    }

    /// The storage host blob downloads are redirected to.
    pub fn storage_hostname(&self) -> String {
        if !self.storage_host.is_empty() {
            return self.storage_host.to_ascii_lowercase();
        }
        let account = self.login_server.split('.').next().unwrap_or("registry");
        format!("{account}.blob.core.windows.net")
    }
}

pub struct Acr {
    options: AcrOptions,
    directory: Directory,
    issuer: Arc<TokenIssuer>,
    redirect: Option<Arc<BlobRedirect>>,
}

impl Acr {
    pub fn new(
        options: AcrOptions,
        directory: Directory,
        issuer: Arc<TokenIssuer>,
        redactor: Arc<Redactor>,
    ) -> Self {
        for (name, secret) in directory.secrets() {
            redactor.add(secret, &format!("secret of {name}"));
        }
        let redirect = options.storage_redirect.then(|| {
            Arc::new(BlobRedirect::new(
                StorageVendor::AzureBlob,
                &options.storage_hostname(),
                // The container of ACR's storage account is not public [unverified].
                "registry",
                issuer.clock().clone(),
                redactor.clone(),
            ))
        });
        Self {
            options,
            directory,
            issuer,
            redirect,
        }
    }

    /// `https://<login server>/oauth2/token`, with the registry's port when the login server
    /// is the registry's own hostname on another port than 443.
    fn realm(&self, ctx: &Ctx) -> String {
        format!(
            "{}/oauth2/token",
            super::realm_base(ctx, &self.options.login_server)
        )
    }

    /// Mints an ACR refresh token (a JWT, as ACR's are) for `principal`.
    pub fn mint_refresh_token(&self, principal: &Principal) -> Result<String, String> {
        let mut extra = Map::new();
        extra.insert("version".into(), json!("1.0"));
        extra.insert("grant_type".into(), json!("refresh_token"));
        extra.insert(
            "tenant".into(),
            json!("00000000-0000-0000-0000-00000000a2e0"),
        );
        extra.insert(
            "permissions".into(),
            json!({"actions": ["*"], "notActions": []}),
        );
        extra.insert("roles".into(), json!([]));
        let (token, _) = self
            .issuer
            .issue(
                &self.options.login_server,
                Some(&principal.name),
                Vec::new(),
                self.options.refresh_token_lifetime,
                0,
                extra,
            )
            .map_err(|e| e.to_string())?;
        // Not registered with the redactor: it recognises our JWTs by shape and `kid`, so
        // minting any number of tokens stores nothing.
        Ok(token)
    }

    /// The principal an ACR refresh token stands for: one we minted, or a pre-minted one.
    fn refresh_principal(&self, token: &str) -> Option<&Principal> {
        if let Some(p) = self.directory.refresh_token(token) {
            // A pre-minted identity token with `expires_at` stops working then, like the
            // ones this registry mints (their `exp`).
            return (!p.expired(self.issuer.clock())).then_some(p);
        }
        let claims = self.issuer.verify(token, &self.options.login_server).ok()?;
        (claims.extra.get("grant_type") == Some(&json!("refresh_token")))
            .then(|| {
                claims
                    .sub
                    .as_deref()
                    .and_then(|s| self.directory.by_name(s))
            })
            .flatten()
    }

    /// A username shaped like an application (client) id that no principal of this registry
    /// has: AAD does not know the app (Azure/acr#366).
    fn unknown_application(&self, username: &str) -> bool {
        username != NULL_GUID
            && is_guid(username)
            && !self
                .directory
                .principals
                .iter()
                .any(|p| p.username.as_deref() == Some(username))
    }

    /// Basic credentials: an admin user, an SP, a repository-scoped token — or the null-GUID
    /// user with a refresh token as the password.
    fn basic_principal(&self, username: &str, password: &str) -> Option<&Principal> {
        if username == NULL_GUID {
            return self.refresh_principal(password);
        }
        self.directory
            .basic(username, password)
            .filter(|p| !p.expired(self.issuer.clock()))
    }

    fn access_token(
        &self,
        principal: Option<&Principal>,
        scopes: &[Scope],
    ) -> Result<String, String> {
        let clock = self.issuer.clock();
        let access: Vec<Scope> = scopes
            .iter()
            .filter_map(|s| {
                let actions = match principal {
                    Some(p) => p.allowed(s, clock),
                    None if self.options.anonymous_pull => s.intersect(&["pull".into()]),
                    None => Vec::new(),
                };
                (!actions.is_empty()).then(|| Scope {
                    kind: s.kind.clone(),
                    name: s.name.clone(),
                    actions,
                })
            })
            .collect();
        let mut extra = Map::new();
        extra.insert("version".into(), json!("1.0"));
        extra.insert("grant_type".into(), json!("access_token"));
        extra.insert("roles".into(), json!([]));
        let (token, _) = self
            .issuer
            .issue(
                &self.options.login_server,
                principal.map(|p| p.name.as_str()),
                access,
                self.options.access_token_lifetime,
                0,
                extra,
            )
            .map_err(|e| e.to_string())?;
        Ok(token)
    }

    async fn token(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Response {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let params = if parts.method == Method::POST {
            match read_form(body).await {
                Ok(p) => p,
                Err(e) => return acr_error(StatusCode::BAD_REQUEST, "UNSUPPORTED", &e),
            }
        } else {
            parse_urlencoded(parts.uri.query().unwrap_or(""))
        };
        for (k, v) in &params {
            ctx.form.insert(k.clone(), v.clone());
        }
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let scopes = Scope::parse_all(
            params
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str()),
        );
        if get("service").is_some_and(|s| s != self.options.login_server) {
            ctx.notes.push(format!(
                "service {:?} is not this login server",
                get("service").unwrap_or("")
            ));
        }

        let principal: Option<&Principal> = if parts.method == Method::POST {
            match get("grant_type") {
                Some("refresh_token") => {
                    ctx.notes.push("refresh_token grant".into());
                    match self.refresh_principal(get("refresh_token").unwrap_or("")) {
                        Some(p) => Some(p),
                        None => {
                            ctx.auth.verdict = Some("bad-refresh-token".into());
                            return acr_error(
                                StatusCode::UNAUTHORIZED,
                                "UNAUTHORIZED",
                                AUTH_REQUIRED,
                            );
                        }
                    }
                }
                Some("password") => {
                    // containerd: "As of January 2022, ACR is known to return 400".
                    ctx.auth.verdict = Some("password-grant-refused".into());
                    return acr_error(
                        StatusCode::BAD_REQUEST,
                        "UNSUPPORTED",
                        "grant_type password is not supported",
                    );
                }
                other => {
                    ctx.auth.verdict = Some("unsupported-grant".into());
                    return acr_error(
                        StatusCode::BAD_REQUEST,
                        "UNSUPPORTED",
                        &format!("unsupported grant_type {:?}", other.unwrap_or("")),
                    );
                }
            }
        } else {
            match &presented {
                Presented::Basic { username, password } => {
                    ctx.auth.username = Some(username.clone());
                    match self.basic_principal(username, password) {
                        Some(p) => Some(p),
                        None if self.refresh_principal(password).is_some() => {
                            ctx.auth.verdict = Some("identity-token-as-password".into());
                            return acr_error(
                                StatusCode::UNAUTHORIZED,
                                "UNAUTHORIZED",
                                SP_TOKEN_AS_PASSWORD,
                            );
                        }
                        None if self.unknown_application(username) => {
                            ctx.auth.verdict = Some("unknown-application".into());
                            return acr_error(
                                StatusCode::UNAUTHORIZED,
                                "UNAUTHORIZED",
                                APP_NOT_REGISTERED,
                            );
                        }
                        None => {
                            ctx.auth.verdict = Some("bad-credentials".into());
                            return acr_error(
                                StatusCode::UNAUTHORIZED,
                                "UNAUTHORIZED",
                                AUTH_REQUIRED,
                            );
                        }
                    }
                }
                _ if self.options.anonymous_pull => None,
                _ => {
                    ctx.auth.verdict = Some("anonymous-refused".into());
                    return acr_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", AUTH_REQUIRED);
                }
            }
        };
        ctx.auth.principal = principal.map(|p| p.name.clone());
        ctx.auth.verdict = Some(
            if principal.is_some() {
                "ok"
            } else {
                "anonymous"
            }
            .into(),
        );
        let token = match self.access_token(principal, &scopes) {
            Ok(t) => t,
            Err(e) => return acr_error(StatusCode::INTERNAL_SERVER_ERROR, "UNSUPPORTED", &e),
        };
        let mut body = json!({ "access_token": token });
        // docker login sends offline_token=true; the refresh token it gets back is what it
        // stores as `identitytoken` (inferred: config.json evidence, no capture of the reply).
        if parts.method == Method::GET
            && get("offline_token") == Some("true")
            && let Some(p) = principal
        {
            match self.mint_refresh_token(p) {
                Ok(rt) => body["refresh_token"] = json!(rt),
                Err(e) => return acr_error(StatusCode::INTERNAL_SERVER_ERROR, "UNSUPPORTED", &e),
            }
        }
        token_json(&body)
    }

    /// `az acr login`'s step: an AAD access token for this registry's refresh token.
    async fn exchange(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Response {
        if parts.method != Method::POST {
            return acr_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "use POST");
        }
        let params = match read_form(body).await {
            Ok(p) => p,
            Err(e) => return acr_error(StatusCode::BAD_REQUEST, "UNSUPPORTED", &e),
        };
        for (k, v) in &params {
            ctx.form.insert(k.clone(), v.clone());
        }
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let aad = get("access_token").unwrap_or("");
        let principal = self.directory.principals.iter().find(|p| {
            matches!(
                p.kind,
                PrincipalKind::User | PrincipalKind::ServicePrincipal
            ) && p.secret == aad
        });
        ctx.auth.scheme = "aad-token".into();
        let Some(p) = principal else {
            ctx.auth.verdict = Some("bad-aad-token".into());
            return acr_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", AUTH_REQUIRED);
        };
        ctx.auth.principal = Some(p.name.clone());
        ctx.auth.verdict = Some("ok".into());
        match self.mint_refresh_token(p) {
            Ok(rt) => token_json(&json!({ "refresh_token": rt })),
            Err(e) => acr_error(StatusCode::INTERNAL_SERVER_ERROR, "UNSUPPORTED", &e),
        }
    }

    fn allowed(&self, claims_or_principal: Either<'_>, scope: Option<&Scope>) -> bool {
        let Some(scope) = scope else { return true };
        let granted = match claims_or_principal {
            Either::Claims(c) => c.granted(scope),
            Either::Principal(p) => p.allowed(scope, self.issuer.clock()),
        };
        granted.len() == scope.actions.len()
    }
}

enum Either<'a> {
    Claims(&'a Claims),
    Principal(&'a Principal),
}

#[async_trait]
impl Profile for Acr {
    fn name(&self) -> &str {
        "acr/1"
    }

    fn extra_hosts(&self) -> Vec<String> {
        self.redirect.iter().map(|r| r.authority.clone()).collect()
    }

    fn blob_redirect(&self) -> Option<Arc<BlobRedirect>> {
        self.redirect.clone()
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Option<Response> {
        match parts.uri.path() {
            "/oauth2/token" => Some(self.token(ctx, parts, body).await),
            "/oauth2/exchange" => Some(self.exchange(ctx, parts, body).await),
            _ => None,
        }
    }

    /// ACR's headers on every `/v2/` answer and its shape of the core's error bodies
    /// (`tests/captures/acr/*`: the Azure SDK for JS recordings show the four
    /// `Access-Control-Expose-Headers` and `X-Ms-Correlation-Request-Id` on 202 and 404
    /// answers too, and a 404 `BLOB_UNKNOWN` of 74 bytes: no `detail`, `charset=utf-8`,
    /// Go's trailing newline).
    async fn finish(&self, _ctx: &mut Ctx, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        let core_error = parts.status.as_u16() >= 400
            && parts.headers.get(header::CONTENT_TYPE)
                == Some(&HeaderValue::from_static("application/json"));
        let body = if core_error {
            match http_body_util::BodyExt::collect(body).await {
                Ok(collected) => {
                    parts.headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json; charset=utf-8"),
                    );
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Body::from(acr_error_body(&collected.to_bytes()))
                }
                Err(_) => Body::empty(),
            }
        } else {
            body
        };
        add_acr_headers(&mut parts.headers);
        Response::from_parts(parts, body)
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        match presented {
            Presented::Bearer(token) => {
                let claims = match self.issuer.verify(&token, &self.options.login_server) {
                    Ok(c) if c.extra.get("grant_type") == Some(&json!("access_token")) => c,
                    Ok(_) => {
                        ctx.auth.verdict = Some("refresh-token-as-bearer".into());
                        return Err(self.challenge(ctx, scope, Some("invalid_token")));
                    }
                    Err(e) => {
                        ctx.auth.verdict = Some("invalid-token".into());
                        ctx.notes.push(format!("token refused: {e}"));
                        return Err(self.challenge(ctx, scope, Some("invalid_token")));
                    }
                };
                ctx.auth.principal = claims.sub.clone();
                if !self.allowed(Either::Claims(&claims), scope) {
                    ctx.auth.verdict = Some("insufficient-scope".into());
                    return Err(self.challenge(ctx, scope, Some("insufficient_scope")));
                }
            }
            Presented::Basic { username, password } => {
                // ACR's data plane takes Basic directly (AAD-OAuth.md, catalog with Basic).
                let Some(p) = self.basic_principal(&username, &password) else {
                    ctx.auth.verdict = Some("bad-credentials".into());
                    let mut r = unauthorized(scope);
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"Azure Container Registry\""),
                    );
                    return Err(r);
                };
                ctx.auth.principal = Some(p.name.clone());
                if !self.allowed(Either::Principal(p), scope) {
                    ctx.auth.verdict = Some("insufficient-scope".into());
                    return Err(self.challenge(ctx, scope, Some("insufficient_scope")));
                }
            }
            _ => {
                ctx.auth.verdict = Some("challenged".into());
                return Err(self.challenge(ctx, scope, None));
            }
        }
        ctx.auth.verdict = Some("ok".into());
        Ok(())
    }
}

impl Acr {
    fn challenge(&self, ctx: &Ctx, scope: Option<&Scope>, error: Option<&str>) -> Response {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(ctx),
            self.options.login_server
        );
        if let Some(s) = scope {
            value.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            value.push_str(&format!(",error=\"{e}\""));
        }
        let mut r = unauthorized(scope);
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// ACR's 401: the exact body (149 bytes with `detail:null`), and the headers of the captures.
pub fn unauthorized(scope: Option<&Scope>) -> Response {
    // Struct field order is the wire order: `Type`, `Name`, `Action` (jib#2784's 198 bytes,
    // AAD-OAuth.md). A `serde_json::Map` would sort the keys.
    let detail: Option<Vec<DetailItem<'_>>> = scope.map(|s| {
        s.actions
            .iter()
            .map(|a| DetailItem {
                kind: &s.kind,
                name: &s.name,
                action: a,
            })
            .collect()
    });
    let body = ErrorsBody {
        errors: [ErrorItem {
            code: "UNAUTHORIZED",
            message: AUTH_REQUIRED,
            detail: Some(detail),
        }],
    };
    acr_response(StatusCode::UNAUTHORIZED, to_body(&body))
}

/// One item of a 401's `detail`, in ACR's key order.
#[derive(serde::Serialize)]
struct DetailItem<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
}

#[derive(serde::Serialize)]
struct ErrorItem<'a> {
    code: &'a str,
    message: &'a str,
    /// `None`: no `detail` key; `Some(None)`: `"detail":null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Option<Vec<DetailItem<'a>>>>,
}

#[derive(serde::Serialize)]
struct ErrorsBody<'a> {
    errors: [ErrorItem<'a>; 1],
}

/// The JSON text plus the newline Go's encoder ends it with.
fn to_body(body: &ErrorsBody<'_>) -> String {
    serde_json::to_string(body).unwrap_or_default() + "\n"
}

/// The token endpoints' errors: `{"errors":[{"code":…,"message":…}]}` — code then message,
/// no `detail` (behaviours.md §1.4 step 2).
fn acr_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorsBody {
        errors: [ErrorItem {
            code,
            message,
            detail: None,
        }],
    };
    acr_response(status, to_body(&body))
}

fn acr_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    add_acr_headers(h);
    r
}

/// What ACR (openresty in front of the registry) sends on every `/v2/` answer: `Server`, the
/// four `Access-Control-Expose-Headers`, HSTS, `nosniff` and a fresh
/// `X-Ms-Correlation-Request-Id`. Headers already set are kept.
fn add_acr_headers(h: &mut http::HeaderMap) {
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, HeaderValue::from_static("openresty"));
    }
    if !h.contains_key("Access-Control-Expose-Headers") {
        for exposed in [
            "Docker-Content-Digest",
            "WWW-Authenticate",
            "Link",
            "X-Ms-Correlation-Request-Id",
        ] {
            h.append(
                "Access-Control-Expose-Headers",
                HeaderValue::from_static(exposed),
            );
        }
    }
    if !h.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !h.contains_key(header::X_CONTENT_TYPE_OPTIONS) {
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    if !h.contains_key("X-Ms-Correlation-Request-Id")
        && let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        h.insert("X-Ms-Correlation-Request-Id", v);
    }
}

/// A core error body as ACR writes it: `BLOB_UNKNOWN` without `detail` (the recorded 404 is
/// `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}` + `\n`, 74
/// bytes); every other body kept, ended by the newline Go's encoder writes.
fn acr_error_body(core: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(core).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .filter(|e| e.len() == 1)
        .and_then(|e| e.first());
    if let Some(e) = first
        && e.get("code").and_then(|c| c.as_str()) == Some("BLOB_UNKNOWN")
    {
        let message = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        return to_body(&ErrorsBody {
            errors: [ErrorItem {
                code: "BLOB_UNKNOWN",
                message,
                detail: None,
            }],
        });
    }
    let mut text = String::from_utf8_lossy(core).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The token endpoints' 200 answers: JSON with `charset=utf-8`, `Server: openresty`, HSTS and
/// a correlation id, no `Access-Control-Expose-Headers` (the Azure SDK for JS recordings of
/// `/oauth2/exchange` and `/oauth2/token`, `tests/captures/acr/`).
fn token_json(value: &serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(value.to_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::SERVER, HeaderValue::from_static("openresty"));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("X-Ms-Correlation-Request-Id", v);
    }
    r
}
