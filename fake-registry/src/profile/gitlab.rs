//! GitLab's container registry (profile `gitlab/1`): the registry challenges with
//! `realm="https://<gitlab>/jwt/auth",service="container_registry"`; `/jwt/auth` is GET only
//! (POST → 404 with an empty body, or an HTML 404 page in the `html-404` variant), requires
//! `service=container_registry` (404 otherwise), resolves images to projects by GitLab's path
//! rules, answers 403 `DENIED access forbidden` (with `http_status`) to anonymous requests for
//! private projects, 401 with GitLab's "HTTP Basic: Access denied" text to bad credentials,
//! and 200 with an empty `access` to users without rights (the registry then says
//! `insufficient_scope`). Tokens: `aud` = service, `nbf = iat - 5`, 5-minute expiry.
//!
//! Sources (docs/profiles/gitlab.md): gitlabhq `jwt_controller.rb`,
//! `container_registry_authentication_service.rb`, `config/routes.rb`,
//! `lib/container_registry/path.rb`; docker_registry2#14 and deckschrubber#26 (captures);
//! containerd#12822 (HTML 404 on POST); manifest-tool#53, ggcr#220 (last-scope-only GitLab).

use super::bearer::{challenge, describe, json_body};
use super::{Ctx, Profile, parse_urlencoded};
use crate::auth::{Directory, Presented, Principal, Scope, TokenIssuer};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, json};
use std::sync::Arc;

pub const SERVICE: &str = "container_registry";

/// How `POST /jwt/auth` answers (config: `"empty-not-found"`, `"html-not-found"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostVariant {
    #[default]
    /// `post 'jwt/auth', to: proc { [404, {}, ['']] }`
    EmptyNotFound,
    /// An HTML 404 page (what broke containerd 2.2, containerd#12822).
    HtmlNotFound,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// `group/subgroup/project`
    pub path: String,
    #[serde(default)]
    pub public: bool,
}

/// In a fleet config (`[host.profile] kind = "gitlab"`) every field is optional;
/// `token_lifetime` is whole seconds; projects are `{ path = "group/project", public = true }`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabOptions {
    /// `https://gitlab.example.com` — where `/jwt/auth` lives; `None` = the registry's own host.
    pub realm_base: Option<String>,
    pub projects: Vec<Project>,
    /// `container_registry_token_expire_delay`: 5 minutes by default (15 on GitLab.com).
    pub token_lifetime: i64,
    pub post_variant: PostVariant,
    /// Older GitLab honoured only the last `scope` parameter.
    pub last_scope_only: bool,
}

impl Default for GitlabOptions {
    fn default() -> Self {
        Self {
            realm_base: None,
            projects: Vec::new(),
            token_lifetime: 300,
            post_variant: PostVariant::EmptyNotFound,
            last_scope_only: false,
        }
    }
}

impl GitlabOptions {
    pub fn new(projects: Vec<Project>) -> Self {
        Self {
            projects,
            ..Self::default()
        }
    }
}

pub struct Gitlab {
    options: GitlabOptions,
    directory: Directory,
    issuer: Arc<TokenIssuer>,
}

/// GitLab's text for bad Basic credentials (recent versions).
pub fn access_denied_message(gitlab: &str) -> String {
    format!(
        "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped. See {gitlab}/help/user/profile/account/two_factor_authentication_troubleshooting.md#error-http-basic-access-denied-if-a-password-was-provided-for-git-authentication-"
    )
}

impl Gitlab {
    pub fn new(
        options: GitlabOptions,
        directory: Directory,
        issuer: Arc<TokenIssuer>,
        redactor: &crate::journal::Redactor,
    ) -> Self {
        for (name, secret) in directory.secrets() {
            redactor.add(secret, &format!("secret of {name}"));
        }
        Self {
            options,
            directory,
            issuer,
        }
    }

    fn realm(&self, ctx: &Ctx) -> String {
        format!(
            "{}/jwt/auth",
            self.options.realm_base.as_deref().unwrap_or(&ctx.base_url)
        )
    }

    /// `ContainerRegistry::Path`: at least two segments; the project is the longest of the
    /// first three prefixes that names a project.
    fn project_of(&self, image: &str) -> Option<&Project> {
        let parts: Vec<&str> = image.split('/').collect();
        if parts.len() < 2 {
            return None;
        }
        (2..=parts.len().min(3))
            .rev()
            .map(|n| parts[..n].join("/"))
            .find_map(|prefix| self.options.projects.iter().find(|p| p.path == prefix))
    }

    /// The actions granted on one scope: anonymous get `pull` on public projects only.
    fn allowed(&self, principal: Option<&Principal>, scope: &Scope) -> Vec<String> {
        if scope.kind != "repository" {
            return principal
                .map(|p| p.allowed(scope, self.issuer.clock()))
                .unwrap_or_default();
        }
        let Some(project) = self.project_of(&scope.name) else {
            return Vec::new();
        };
        match principal {
            Some(p) => {
                let mut a = p.allowed(scope, self.issuer.clock());
                if project.public
                    && scope.actions.iter().any(|x| x == "pull")
                    && !a.iter().any(|x| x == "pull")
                {
                    a.insert(0, "pull".into());
                }
                a
            }
            None if project.public => scope.intersect(&["pull".into()]),
            None => Vec::new(),
        }
    }

    fn auth(&self, ctx: &mut Ctx, parts: &Parts) -> Response {
        if parts.method == Method::POST {
            ctx.notes
                .push("POST /jwt/auth: GitLab serves GET only".into());
            ctx.auth.verdict = Some("post-not-found".into());
            return match self.options.post_variant {
                PostVariant::EmptyNotFound => {
                    let mut r = (StatusCode::NOT_FOUND, "").into_response();
                    r.headers_mut().remove(header::CONTENT_TYPE);
                    r
                }
                PostVariant::HtmlNotFound => {
                    let mut r = (
                        StatusCode::NOT_FOUND,
                        "<!DOCTYPE html>\n<html>\n<head><title>The page you're looking for could not be found (404)</title></head>\n<body><h1>404</h1><p>The page could not be found or you don't have permission to view it.</p></body>\n</html>\n",
                    )
                        .into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    r
                }
            };
        }
        if parts.method != Method::GET {
            return (StatusCode::NOT_FOUND, "").into_response();
        }
        let params = parse_urlencoded(parts.uri.query().unwrap_or(""));
        for (k, v) in &params {
            ctx.form.insert(k.clone(), v.clone());
        }
        if !params.iter().any(|(k, v)| k == "service" && v == SERVICE) {
            ctx.auth.verdict = Some("unknown-service".into());
            return (StatusCode::NOT_FOUND, "").into_response();
        }
        let mut scopes = Scope::parse_all(
            params
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str()),
        );
        if self.options.last_scope_only && scopes.len() > 1 {
            ctx.notes.push(format!(
                "last-scope-only: ignored {} earlier scope(s)",
                scopes.len() - 1
            ));
            scopes = scopes.split_off(scopes.len() - 1);
        }
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let principal = match &presented {
            Presented::Basic { username, password } => {
                match self.directory.basic(username, password) {
                    Some(p) if !p.expired(self.issuer.clock()) => Some(p),
                    _ => {
                        ctx.auth.verdict = Some("bad-credentials".into());
                        let gitlab = self.realm(ctx).trim_end_matches("/jwt/auth").to_owned();
                        return json_body(
                            StatusCode::UNAUTHORIZED,
                            &json!({"errors": [{"code": "UNAUTHORIZED", "message": access_denied_message(&gitlab)}]}),
                        );
                    }
                }
            }
            _ => None,
        };
        let access: Vec<Scope> = scopes
            .iter()
            .filter_map(|s| {
                let actions = self.allowed(principal, s);
                (!actions.is_empty()).then(|| Scope {
                    kind: s.kind.clone(),
                    name: s.name.clone(),
                    actions,
                })
            })
            .collect();
        // `unless scopes.any? || current_user || deploy_token || project` → 403.
        if access.is_empty() && principal.is_none() {
            ctx.auth.verdict = Some("denied".into());
            return json_body(
                StatusCode::FORBIDDEN,
                &json!({"errors": [{"code": "DENIED", "message": "access forbidden"}], "http_status": 403}),
            );
        }
        ctx.auth.principal = principal.map(|p| p.name.clone());
        let mut extra = Map::new();
        extra.insert(
            "auth_type".into(),
            json!(if principal.is_some() {
                "gitlab_or_ldap"
            } else {
                "none"
            }),
        );
        if let Some(p) = principal {
            extra.insert(
                "user".into(),
                json!({"user_info": {"token_type": "personal_access_token", "username": p.username, "user_id": 1}}),
            );
        }
        match self.issuer.issue(
            SERVICE,
            principal.and_then(|p| p.username.as_deref()),
            access.clone(),
            self.options.token_lifetime,
            5,
            extra,
        ) {
            Ok((token, _)) => {
                ctx.auth.verdict = Some(
                    if access.is_empty() {
                        "empty-access"
                    } else {
                        "ok"
                    }
                    .into(),
                );
                json_body(StatusCode::OK, &json!({ "token": token }))
            }
            Err(e) => json_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": e.to_string()}),
            ),
        }
    }
}

#[async_trait]
impl Profile for Gitlab {
    fn name(&self) -> &str {
        "gitlab/1"
    }

    /// GitLab's `/jwt/auth` lives on the GitLab host (`gitlab.example.com`), not the registry's.
    fn extra_hosts(&self) -> Vec<String> {
        self.options
            .realm_base
            .as_deref()
            .and_then(super::url_authority)
            .into_iter()
            .collect()
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, _body: Body) -> Option<Response> {
        (parts.uri.path() == "/jwt/auth").then_some(())?;
        Some(self.auth(ctx, parts))
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
            return Err(challenge(&realm, SERVICE, scope, None));
        };
        let claims = match self.issuer.verify(&token, SERVICE) {
            Ok(c) => c,
            Err(e) => {
                ctx.auth.verdict = Some("invalid-token".into());
                ctx.notes.push(format!("token refused: {e}"));
                return Err(challenge(&realm, SERVICE, scope, Some("invalid_token")));
            }
        };
        ctx.auth.principal = claims.sub.clone();
        if let Some(s) = scope
            && claims.granted(s).len() < s.actions.len()
        {
            ctx.auth.verdict = Some("insufficient-scope".into());
            return Err(challenge(
                &realm,
                SERVICE,
                Some(s),
                Some("insufficient_scope"),
            ));
        }
        ctx.auth.verdict = Some("ok".into());
        Ok(())
    }
}
