//! GitLab's container registry (profile `gitlab/1`): the registry challenges with
//! `realm="https://<gitlab>/jwt/auth",service="container_registry"`; `/jwt/auth` is GET only
//! (POST → 404 with an empty body, or an HTML 404 page in the `html-404` variant), requires
//! `service=container_registry` (404 otherwise), resolves images to projects by GitLab's path
//! rules, answers 403 `DENIED access forbidden` (with `http_status`) to anonymous requests for
//! private projects, 401 with GitLab's "HTTP Basic: Access denied" text to bad credentials,
//! and 200 with an empty `access` to users without rights (the registry then says
//! `insufficient_scope`). Tokens: `aud` = service, `nbf = iat - 5`, 5-minute expiry, `access`
//! items with `meta`, `auth_type`, and a nested `user` JWT.
//!
//! The realm is on the registry's own host by default (what go-containerregistry's realm
//! check needs on loopback, behaviours.md §5.1) or on a separate GitLab host
//! (`realm_host`, like `registry.gitlab.com` → `gitlab.com/jwt/auth`).
//!
//! Sources (docs/profiles/gitlab.md): gitlabhq `jwt_controller.rb`,
//! `container_registry_authentication_service.rb`, `config/routes.rb`,
//! `lib/container_registry/path.rb`; docker_registry2#14 and deckschrubber#26 (captures);
//! containerd#12822 (HTML 404 on POST); manifest-tool#53, ggcr#220 (last-scope-only GitLab).

use super::bearer::{challenge, challenge_scopes, describe, json_body};
use super::{Ctx, Profile, parse_urlencoded};
use crate::auth::{Directory, Presented, Principal, PrincipalKind, Scope, TokenIssuer};
use async_trait::async_trait;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub const SERVICE: &str = "container_registry";
/// `Namespace::NUMBER_OF_ANCESTORS_ALLOWED`: a registry path has fewer segments than this.
const MAX_PATH_SEGMENTS: usize = 20;

/// How `POST /jwt/auth` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostVariant {
    /// `post 'jwt/auth', to: proc { [404, {}, ['']] }`
    #[default]
    EmptyNotFound,
    /// An HTML 404 page (what broke containerd 2.2, containerd#12822).
    Html404,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// `group/subgroup/project`
    pub path: String,
    #[serde(default)]
    pub public: bool,
    /// Per-project container registry switch (`container_registry_enabled?`).
    #[serde(default = "yes")]
    pub registry_enabled: bool,
}

fn yes() -> bool {
    true
}

impl Project {
    pub fn new(path: &str, public: bool) -> Self {
        Self {
            path: path.to_owned(),
            public,
            registry_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabOptions {
    /// The GitLab host serving `/jwt/auth` when it is not the registry's own host
    /// (`gitlab.example.com`); the realm is then `https://<realm_host>/jwt/auth`.
    pub realm_host: Option<String>,
    /// The realm's scheme and authority override, for tests on plain HTTP
    /// (`http://127.0.0.1:PORT`); wins over `realm_host` when building the realm URL.
    pub realm_base: Option<String>,
    pub projects: Vec<Project>,
    /// `container_registry_token_expire_delay`: 5 minutes by default (15 on GitLab.com).
    pub token_lifetime: i64,
    pub post_variant: PostVariant,
    /// Older GitLab honoured only the last `scope` parameter (manifest-tool#53, ggcr#220).
    pub last_scope_only: bool,
    /// The registry `issuer` setting (`gitlab-issuer`, `omnibus-gitlab-issuer`).
    pub issuer: String,
    /// `registry.enabled`; off → 404 `UNAVAILABLE registry not enabled`.
    pub registry_enabled: bool,
    /// Container repository protection rules: repository path patterns (`*` within a
    /// segment, `**` across) where pushing is forbidden. A token request asking `push` on a
    /// matching path, by a principal otherwise allowed to push, gets 403 `DENIED` "Pushing to
    /// protected repository path forbidden". Empty by default (no rules, as on GitLab).
    pub protected_paths: Vec<String>,
}

/// GitLab's message for a push to a protected repository path.
pub const PROTECTED_PATH: &str = "Pushing to protected repository path forbidden";

impl Default for GitlabOptions {
    fn default() -> Self {
        Self {
            realm_host: None,
            realm_base: None,
            projects: Vec::new(),
            token_lifetime: 300,
            post_variant: PostVariant::EmptyNotFound,
            last_scope_only: false,
            issuer: "gitlab-issuer".into(),
            registry_enabled: true,
            protected_paths: Vec::new(),
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

    /// `ContainerRegistry::Path#repository_project`: the candidates are the three longest
    /// prefixes of at least two segments (`components.first(3)`), so an image sits at most
    /// two levels below its project. The longest matching project wins.
    pub fn project_of(&self, image: &str) -> Option<(usize, &Project)> {
        let nodes: Vec<&str> = image.split('/').collect();
        if nodes.len() < 2 || nodes.len() >= MAX_PATH_SEGMENTS {
            return None;
        }
        (2..=nodes.len()).rev().take(3).find_map(|n| {
            let prefix = nodes[..n].join("/");
            self.projects
                .iter()
                .enumerate()
                .find(|(_, p)| p.path == prefix)
        })
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

    /// `https://<gitlab>`: where `/jwt/auth` lives.
    fn gitlab_base(&self, ctx: &Ctx) -> String {
        if let Some(base) = &self.options.realm_base {
            return base.trim_end_matches('/').to_owned();
        }
        match &self.options.realm_host {
            Some(host) => super::realm_base(ctx, host),
            None => ctx.base_url.clone(),
        }
    }

    fn realm(&self, ctx: &Ctx) -> String {
        format!("{}/jwt/auth", self.gitlab_base(ctx))
    }

    /// `ContainerRegistry::Path#repository_project`: the candidates are the three longest
    /// prefixes of at least two segments (`components.first(3)`), so an image sits at most
    /// two levels below its project. The longest matching project wins.
    fn project_of(&self, image: &str) -> Option<(usize, &Project)> {
        self.options.project_of(image)
    }

    /// The actions of one scope a principal (or anonymous) may have (`can_access?`).
    fn allowed(&self, principal: Option<&Principal>, scope: &Scope) -> Vec<String> {
        if scope.kind == "registry" {
            // `process_registry_access`: admins only, `catalog` only, exactly `*`.
            let admin = principal.is_some_and(|p| p.kind == PrincipalKind::AdminUser);
            return if admin && scope.name == "catalog" && scope.actions == ["*"] {
                scope.actions.clone()
            } else {
                Vec::new()
            };
        }
        if scope.kind != "repository" {
            return Vec::new();
        }
        let Some((_, project)) = self.project_of(&scope.name) else {
            return Vec::new();
        };
        if !project.registry_enabled {
            return Vec::new();
        }
        let mut actions = principal
            .map(|p| p.allowed(scope, self.issuer.clock()))
            .unwrap_or_default();
        // Anyone who can see a public project may pull its images.
        if project.public
            && scope.actions.iter().any(|a| a == "pull")
            && !actions.iter().any(|a| a == "pull")
        {
            actions.insert(0, "pull".into());
        }
        actions
    }

    /// The `access` item GitLab writes for a granted scope (with `meta` for repositories).
    fn access_item(&self, scope: &Scope, actions: Vec<String>) -> Value {
        let mut item = json!({"type": scope.kind, "name": scope.name, "actions": actions});
        if let Some((index, project)) = self.project_of(&scope.name) {
            let root = project.path.split('/').next().unwrap_or("");
            let root_id = self
                .options
                .projects
                .iter()
                .position(|p| p.path.split('/').next() == Some(root))
                .unwrap_or(index);
            item["meta"] = json!({
                "project_path": project.path.to_ascii_lowercase(),
                "project_id": 100 + index,
                "root_namespace_id": 10 + root_id,
            });
        }
        item
    }

    /// `auth_type` as `Gitlab::Auth::Result#type` names the way the client authenticated.
    fn auth_type(principal: Option<&Principal>) -> Value {
        match principal.map(|p| p.kind) {
            None => Value::Null,
            Some(PrincipalKind::AccessToken) => json!("personal_access_token"),
            Some(PrincipalKind::DeployToken) => json!("deploy_token"),
            Some(PrincipalKind::JobToken) => json!("build"),
            Some(_) => json!("gitlab_or_ldap"),
        }
    }

    /// The nested `user` JWT: `{"user_info": {...}}`, `null` info for anonymous.
    fn user_token(&self, principal: Option<&Principal>) -> Result<String, String> {
        let index = |p: &Principal| {
            self.directory
                .principals
                .iter()
                .position(|q| q.name == p.name)
                .unwrap_or(0)
                + 1
        };
        let info = match principal {
            None => Value::Null,
            Some(p) if p.kind == PrincipalKind::DeployToken => json!({
                "token_type": Self::auth_type(Some(p)),
                "username": p.username,
                "deploy_token_id": index(p),
            }),
            Some(p) => json!({
                "token_type": Self::auth_type(Some(p)),
                "username": p.username,
                "user_id": index(p),
            }),
        };
        self.issuer
            .sign_json(&json!({ "user_info": info }))
            .map_err(|e| e.to_string())
    }

    fn token(&self, principal: Option<&Principal>, access: Vec<Value>) -> Result<String, String> {
        let now = self.issuer.clock().now();
        let mut claims = json!({
            "iss": self.options.issuer,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.options.token_lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
            "auth_type": Self::auth_type(principal),
            "access": access,
            "user": self.user_token(principal)?,
        });
        // `token.subject = current_user.try(:username)`: deploy tokens have no user.
        if let Some(p) = principal.filter(|p| p.kind != PrincipalKind::DeployToken) {
            claims["sub"] = json!(p.username);
        }
        self.issuer.sign_json(&claims).map_err(|e| e.to_string())
    }

    fn auth(&self, ctx: &mut Ctx, parts: &Parts) -> Response {
        if parts.method == Method::POST {
            ctx.notes
                .push("POST /jwt/auth: GitLab serves GET only".into());
            ctx.auth.verdict = Some("post-not-found".into());
            return match self.options.post_variant {
                PostVariant::EmptyNotFound => empty_not_found(),
                PostVariant::Html404 => {
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
            return empty_not_found();
        }
        let params = parse_urlencoded(parts.uri.query().unwrap_or(""));
        for (k, v) in &params {
            ctx.form.insert(k.clone(), v.clone());
        }
        // `SERVICES[params[:service]]` or `head :not_found`.
        if !params.iter().any(|(k, v)| k == "service" && v == SERVICE) {
            ctx.auth.verdict = Some("unknown-service".into());
            return empty_not_found();
        }
        let presented = Presented::from_headers(&parts.headers);
        ctx.auth = describe(&presented);
        let principal = match &presented {
            Presented::Basic { username, password } => {
                match self.directory.basic(username, password) {
                    Some(p) if !p.expired(self.issuer.clock()) => Some(p),
                    _ => {
                        ctx.auth.verdict = Some("bad-credentials".into());
                        let gitlab = self.gitlab_base(ctx);
                        return json_body(
                            StatusCode::UNAUTHORIZED,
                            &json!({"errors": [{"code": "UNAUTHORIZED", "message": access_denied_message(&gitlab)}]}),
                        );
                    }
                }
            }
            _ => None,
        };
        ctx.auth.principal = principal.map(|p| p.name.clone());
        if !self.options.registry_enabled {
            ctx.auth.verdict = Some("registry-disabled".into());
            return json_body(
                StatusCode::NOT_FOUND,
                &json!({"errors": [{"code": "UNAVAILABLE", "message": "registry not enabled"}], "http_status": 404}),
            );
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
        // `scopes` keeps only the scopes with at least one authorized action.
        let access: Vec<Value> = scopes
            .iter()
            .filter_map(|s| {
                let actions = self.allowed(principal, s);
                (!actions.is_empty()).then(|| self.access_item(s, actions))
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
        // Container repository protection: a push on a protected path → 403.
        let protected = scopes.iter().find(|s| {
            s.kind == "repository"
                && s.actions.iter().any(|a| a == "push")
                && self.allowed(principal, s).iter().any(|a| a == "push")
                && self.options.protected_paths.iter().any(|p| {
                    crate::auth::Grant {
                        repositories: p.clone(),
                        actions: Vec::new(),
                    }
                    .matches(&s.name)
                })
        });
        if let Some(s) = protected {
            ctx.auth.verdict = Some("protected-path".into());
            ctx.notes
                .push(format!("push to protected repository path {}", s.name));
            return json_body(
                StatusCode::FORBIDDEN,
                &json!({"errors": [{"code": "DENIED", "message": PROTECTED_PATH}], "http_status": 403}),
            );
        }
        let verdict = match (principal.is_some(), access.is_empty()) {
            (true, true) => "empty-access",
            (false, _) => "anonymous",
            (true, false) => "ok",
        };
        match self.token(principal, access) {
            Ok(token) => {
                ctx.auth.verdict = Some(verdict.into());
                json_body(StatusCode::OK, &json!({ "token": token }))
            }
            Err(e) => json_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": e.to_string()}),
            ),
        }
    }

    /// Whether `/jwt/auth` is served for a request with this `Host`: on the registry's own
    /// host by default, only on the GitLab host when the realm is separate.
    fn serves_realm(&self, parts: &Parts) -> bool {
        let Some(realm_host) = &self.options.realm_host else {
            return true;
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        host.eq_ignore_ascii_case(realm_host)
    }
}

fn empty_not_found() -> Response {
    let mut r = (StatusCode::NOT_FOUND, "").into_response();
    r.headers_mut().remove(header::CONTENT_TYPE);
    r
}

#[async_trait]
impl Profile for Gitlab {
    fn name(&self) -> &str {
        "gitlab/1"
    }

    fn extra_hosts(&self) -> Vec<String> {
        self.options.realm_host.iter().cloned().collect()
    }

    /// GitLab's container registry is a fork of CNCF distribution with the same access
    /// records: pull on `from` is required of a mount, a token without it gets 401
    /// `insufficient_scope` (gitlab-org/container-registry `registry/handlers/app.go`).
    fn refuse_mount(&self, ctx: &mut Ctx, target: &Scope, from: &Scope) -> Option<Response> {
        ctx.auth.verdict = Some("insufficient-scope".into());
        Some(challenge_scopes(
            &self.realm(ctx),
            SERVICE,
            &[target.clone(), from.clone()],
            Some("insufficient_scope"),
        ))
    }

    async fn endpoint(&self, ctx: &mut Ctx, parts: &Parts, _body: Body) -> Option<Response> {
        // Rails routes `jwt/auth` with or without a trailing slash (a python-requests client
        // asking `/jwt/auth/?…` got 200: n0madic/gitlab-registry-images-cleaner#13, capture
        // `tests/captures/gitlab/gitlab-registry-images-cleaner-13-star-scope.toml`).
        let path = parts.uri.path();
        ((path == "/jwt/auth" || path == "/jwt/auth/") && self.serves_realm(parts)).then_some(())?;
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
        ctx.auth.token = Some(format!(
            "{} jti={}",
            claims.iss,
            &claims.jti[..8.min(claims.jti.len())]
        ));
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
