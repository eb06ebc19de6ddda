//! The distribution token protocol, as CNCF distribution plus a token server (docker_auth,
//! Harbor) speak it: a Bearer challenge naming a realm, a token endpoint that accepts GET with
//! Basic or anonymous and OAuth2 POST (`password` and `refresh_token` grants), JWTs verified on
//! every request, `insufficient_scope` when a token lacks an action.
//!
//! Sources: distribution `docs/spec/auth/token.md`, `oauth.md`, `scope.md`; distribution
//! `registry/auth/token/accesscontroller.go` (challenge and error format).
//! Vendor profiles reuse [`challenge`] and [`describe`].

use super::{Ctx, Profile, parse_urlencoded, read_form};
use crate::auth::{Directory, Presented, Principal, Scope, TokenError, TokenIssuer};
use crate::journal::{AuthRecord, Redactor};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerOptions {
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// The realm URL; `None` = `<base_url><token_path>` on this host.
    pub realm: Option<String>,
    /// The token endpoint's path on this host.
    pub token_path: String,
    /// Token lifetime in seconds (distribution's default token server: 300).
    pub lifetime: i64,
    /// Serve OAuth2 POST grants (`password`, `refresh_token`).
    pub allow_post: bool,
}

impl Default for BearerOptions {
    fn default() -> Self {
        Self::new("registry")
    }
}

impl BearerOptions {
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            realm: None,
            token_path: "/token".into(),
            lifetime: 300,
            allow_post: true,
        }
    }
}

pub struct Bearer {
    options: BearerOptions,
    directory: Directory,
    issuer: Arc<TokenIssuer>,
    /// Refresh tokens this service issued (`access_type=offline`) → principal name.
    refresh_tokens: Mutex<HashMap<String, String>>,
}

impl Bearer {
    pub fn new(
        options: BearerOptions,
        directory: Directory,
        issuer: Arc<TokenIssuer>,
        redactor: Arc<Redactor>,
    ) -> Self {
        for (name, secret) in directory.secrets() {
            redactor.add(secret, &format!("secret of {name}"));
        }
        Self {
            options,
            directory,
            issuer,
            refresh_tokens: Mutex::new(HashMap::new()),
        }
    }

    fn realm(&self, ctx: &Ctx) -> String {
        self.options
            .realm
            .clone()
            .unwrap_or_else(|| format!("{}{}", ctx.base_url, self.options.token_path))
    }

    /// The access a principal (or anonymous) gets for the requested scopes: each scope
    /// reduced to the actions granted, scopes with none left dropped.
    fn grant(&self, principal: Option<&Principal>, scopes: &[Scope]) -> Vec<Scope> {
        let clock = self.issuer.clock();
        scopes
            .iter()
            .filter_map(|s| {
                let actions = match principal {
                    Some(p) => p.allowed(s, clock),
                    None => self.directory.anonymous_allowed(s),
                };
                (!actions.is_empty()).then(|| Scope {
                    kind: s.kind.clone(),
                    name: s.name.clone(),
                    actions,
                })
            })
            .collect()
    }

    fn token_response(
        &self,
        principal: Option<&Principal>,
        scopes: &[Scope],
        refresh: bool,
    ) -> Response {
        let access = self.grant(principal, scopes);
        let sub = principal.map(|p| p.name.as_str());
        match self.issuer.issue(
            &self.options.service,
            sub,
            access,
            self.options.lifetime,
            0,
            Default::default(),
        ) {
            Ok((token, claims)) => {
                let issued_at = humantime_rfc3339(claims.iat);
                let mut body = json!({
                    "token": token,
                    "access_token": token,
                    "expires_in": self.options.lifetime,
                    "issued_at": issued_at,
                });
                if let (true, Some(p)) = (refresh, principal) {
                    let rt = format!("rt-{}", uuid::Uuid::new_v4());
                    // The redactor recognises `rt-<uuid>` by shape: nothing stored per token.
                    self.refresh_tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(rt.clone(), p.name.clone());
                    body["refresh_token"] = json!(rt);
                }
                json_body(StatusCode::OK, &body)
            }
            Err(e) => json_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": e.to_string()}),
            ),
        }
    }

    async fn token_endpoint(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Response {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let params = if parts.method == Method::POST {
            if !self.options.allow_post {
                ctx.notes
                    .push("POST token request refused: this service serves GET only".into());
                return json_body(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "method not allowed"}),
                );
            }
            match read_form(body).await {
                Ok(p) => p,
                Err(e) => {
                    return json_body(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "invalid_request", "error_description": e}),
                    );
                }
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
        if let Some(service) = get("service")
            && service != self.options.service
        {
            ctx.auth.verdict = Some("unknown-service".into());
            return json_body(
                StatusCode::BAD_REQUEST,
                &json!({"errors": [{"code": "UNSUPPORTED", "message": format!("unknown service {service:?}")}]}),
            );
        }

        if parts.method == Method::POST {
            let offline = get("access_type") == Some("offline");
            return match get("grant_type") {
                Some("password") => {
                    let (u, p) = (get("username").unwrap_or(""), get("password").unwrap_or(""));
                    ctx.auth.username = Some(u.to_owned());
                    match self.directory.basic(u, p) {
                        Some(pr) if !pr.expired(self.issuer.clock()) => {
                            ctx.auth.principal = Some(pr.name.clone());
                            ctx.auth.verdict = Some("ok".into());
                            self.token_response(Some(pr), &scopes, offline)
                        }
                        _ => {
                            ctx.auth.verdict = Some("bad-credentials".into());
                            invalid_grant()
                        }
                    }
                }
                Some("refresh_token") => {
                    let rt = get("refresh_token").unwrap_or("");
                    let holder = self
                        .refresh_tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(rt)
                        .cloned();
                    let principal = holder
                        .as_deref()
                        .and_then(|n| self.directory.by_name(n))
                        .or_else(|| self.directory.refresh_token(rt));
                    match principal {
                        Some(pr) => {
                            ctx.auth.principal = Some(pr.name.clone());
                            ctx.auth.verdict = Some("ok".into());
                            ctx.notes.push("refresh_token grant".into());
                            self.token_response(Some(pr), &scopes, true)
                        }
                        None => {
                            ctx.auth.verdict = Some("bad-refresh-token".into());
                            invalid_grant()
                        }
                    }
                }
                other => {
                    ctx.auth.verdict = Some("unsupported-grant".into());
                    json_body(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "unsupported_grant_type", "error_description": format!("grant_type {other:?}")}),
                    )
                }
            };
        }

        // GET: Basic or anonymous.
        match presented {
            Presented::Basic { username, password } => {
                match self.directory.basic(&username, &password) {
                    Some(pr) if !pr.expired(self.issuer.clock()) => {
                        ctx.auth.principal = Some(pr.name.clone());
                        ctx.auth.verdict = Some("ok".into());
                        let offline = get("offline_token") == Some("true");
                        self.token_response(Some(pr), &scopes, offline)
                    }
                    _ => {
                        ctx.auth.verdict = Some("bad-credentials".into());
                        let mut r = json_body(
                            StatusCode::UNAUTHORIZED,
                            &json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]}),
                        );
                        if let Ok(v) =
                            HeaderValue::from_str(&format!("Basic realm=\"{}\"", self.realm(ctx)))
                        {
                            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                        }
                        r
                    }
                }
            }
            _ => {
                ctx.auth.verdict = Some("anonymous".into());
                self.token_response(None, &scopes, false)
            }
        }
    }
}

#[async_trait]
impl Profile for Bearer {
    fn name(&self) -> &str {
        "bearer/1"
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, body: Body) -> Option<Response> {
        (parts.uri.path() == self.options.token_path).then_some(())?;
        Some(self.token_endpoint(ctx, parts, body).await)
    }

    /// distribution's token access controller: pull on `from` is one of the mount's access
    /// records; a token without it is answered 401 `insufficient_scope`.
    fn refuse_mount(&self, ctx: &mut Ctx, target: &Scope, from: &Scope) -> Option<Response> {
        ctx.auth.verdict = Some("insufficient-scope".into());
        Some(challenge_scopes(
            &self.realm(ctx),
            &self.options.service,
            &[target.clone(), from.clone()],
            Some("insufficient_scope"),
        ))
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        scope: Option<&Scope>,
    ) -> Result<(), Response> {
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let realm = self.realm(ctx);
        let Presented::Bearer(token) = presented else {
            ctx.auth.verdict = Some("challenged".into());
            return Err(challenge(&realm, &self.options.service, scope, None));
        };
        let claims = match self.issuer.verify(&token, &self.options.service) {
            Ok(c) => c,
            Err(e) => {
                ctx.auth.verdict = Some(token_verdict(&e).into());
                ctx.notes.push(format!("token refused: {e}"));
                return Err(challenge(
                    &realm,
                    &self.options.service,
                    scope,
                    Some("invalid_token"),
                ));
            }
        };
        ctx.auth.principal = claims.sub.clone();
        ctx.auth.token = Some(format!(
            "{} jti={}",
            claims.iss,
            &claims.jti[..8.min(claims.jti.len())]
        ));
        if let Some(scope) = scope
            && claims.granted(scope).len() < scope.actions.len()
        {
            ctx.auth.verdict = Some("insufficient-scope".into());
            return Err(challenge(
                &realm,
                &self.options.service,
                Some(scope),
                Some("insufficient_scope"),
            ));
        }
        ctx.auth.verdict = Some("ok".into());
        Ok(())
    }
}

fn token_verdict(e: &TokenError) -> &'static str {
    match e {
        TokenError::Expired { .. } => "expired-token",
        TokenError::NotYetValid { .. } => "token-not-yet-valid",
        TokenError::BadSignature | TokenError::WrongIssuer(..) => "foreign-token",
        TokenError::WrongAudience(..) => "wrong-audience",
        _ => "invalid-token",
    }
}

/// Describes presented credentials for the journal, without the secret.
pub fn describe(p: &Presented) -> AuthRecord {
    match p {
        Presented::None => AuthRecord {
            scheme: "none".into(),
            ..Default::default()
        },
        Presented::Basic { username, .. } => AuthRecord {
            scheme: "basic".into(),
            username: Some(username.clone()),
            ..Default::default()
        },
        Presented::Bearer(_) => AuthRecord {
            scheme: "bearer".into(),
            ..Default::default()
        },
        Presented::Other(s) => AuthRecord {
            scheme: s.clone(),
            ..Default::default()
        },
    }
}

/// distribution's 401: `WWW-Authenticate: Bearer realm=…,service=…[,scope=…][,error=…]` and an
/// `UNAUTHORIZED` body whose detail lists the missing access.
pub fn challenge(
    realm: &str,
    service: &str,
    scope: Option<&Scope>,
    error: Option<&str>,
) -> Response {
    let scopes: Vec<Scope> = scope.into_iter().cloned().collect();
    challenge_scopes(realm, service, &scopes, error)
}

/// [`challenge`] for a request needing several scopes (a mount needs push on the target and
/// pull on `from`): `scope="a b"` (space-separated, RFC 6750 §3) and one detail item per
/// action.
pub fn challenge_scopes(
    realm: &str,
    service: &str,
    scopes: &[Scope],
    error: Option<&str>,
) -> Response {
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
    if !scopes.is_empty() {
        let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        value.push_str(&format!(",scope=\"{}\"", joined.join(" ")));
    }
    if let Some(e) = error {
        value.push_str(&format!(",error=\"{e}\""));
    }
    let mut r = Response::new(Body::from(unauthorized_body_scopes(scopes)));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The exact bytes distribution's registry sends with a 401: Go's `json.Encoder` output of
/// `errcode.Errors` — fields in struct order (`code`, `message`, `detail`; the access items
/// `Type`, `Class`, `Name`, `Action`) and a trailing newline. Captures: 157 bytes for
/// `library/ubuntu` pull (distribution#2624, Docker Hub), 145 for the catalog (deckschrubber#26,
/// GitLab). serde_json would sort the keys, so the body is written by hand.
pub fn unauthorized_body(scope: Option<&Scope>) -> String {
    let scopes: Vec<Scope> = scope.into_iter().cloned().collect();
    unauthorized_body_scopes(&scopes)
}

/// [`unauthorized_body`] with the access items of several scopes, in order.
pub fn unauthorized_body_scopes(scopes: &[Scope]) -> String {
    let detail = if scopes.is_empty() {
        "null".to_owned()
    } else {
        let items: Vec<String> = scopes
            .iter()
            .flat_map(|s| {
                s.actions.iter().map(move |a| {
                    format!(
                        "{{\"Type\":{},\"Class\":\"\",\"Name\":{},\"Action\":{}}}",
                        json!(s.kind),
                        json!(s.name),
                        json!(a)
                    )
                })
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    format!(
        "{{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":{detail}}}]}}\n"
    )
}

fn invalid_grant() -> Response {
    json_body(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_grant", "error_description": "invalid credentials"}),
    )
}

pub(crate) fn json_body(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (civil-from-days; no date crate needed).
pub fn humantime_rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_body_is_byte_exact() {
        use crate::auth::Scope;
        assert_eq!(
            super::unauthorized_body(Some(&Scope::repository("library/ubuntu", &["pull"]))).len(),
            157
        );
        let catalog = Scope {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        };
        assert_eq!(
            super::unauthorized_body(Some(&catalog)),
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{\"Type\":\"registry\",\"Class\":\"\",\"Name\":\"catalog\",\"Action\":\"*\"}]}]}\n"
        );
        assert_eq!(super::unauthorized_body(Some(&catalog)).len(), 145);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(humantime_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(humantime_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(humantime_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
