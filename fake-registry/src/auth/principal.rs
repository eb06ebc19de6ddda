//! Who may do what: principals declared in configuration, with per-repository grants.
//!
//! A principal is referred to everywhere (journal, reports) by its `name`, never by its
//! secret. Vendor profiles decide how a principal authenticates (Basic on the token endpoint,
//! Basic on `/v2/`, a refresh token…); this module only answers "who is this" and "may they".

use super::clock::Clock;
use super::scope::Scope;
use serde::Deserialize;

/// The kind of identity, as vendors name them. It changes how profiles treat the principal
/// (e.g. ACR admin users, GitLab job tokens) and how journals describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    User,
    ServicePrincipal,
    AdminUser,
    DeployToken,
    JobToken,
    AccessToken,
    /// A pre-minted refresh token (ACR identity token): the secret is the token itself.
    RefreshToken,
}

/// Repository patterns: `*` matches within one path segment, `**` across segments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Grant {
    pub repositories: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn matches(&self, repository: &str) -> bool {
        glob(self.repositories.as_bytes(), repository.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => (0..=s.len()).any(|i| glob(&p[2..], &s[i..])),
        Some(b'*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(&p[1..], &s[i..])),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Principal {
    /// How journals and reports refer to it.
    pub name: String,
    pub kind: PrincipalKind,
    /// The username presented (ACR SP: the app id; ECR: `AWS`; GitLab: the user or
    /// `gitlab-ci-token`). Refresh-token principals have none.
    #[serde(default)]
    pub username: Option<String>,
    /// The password, token or refresh token. Never logged.
    pub secret: String,
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Unix time before which the grants do not apply (ACR's permission propagation).
    #[serde(default)]
    pub effective_from: Option<i64>,
    /// Unix time after which the credential is refused (ECR's 12-hour tokens).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl Principal {
    /// The actions of `scope` this principal holds now.
    pub fn allowed(&self, scope: &Scope, clock: &Clock) -> Vec<String> {
        if self.effective_from.is_some_and(|t| clock.now() < t) {
            return Vec::new();
        }
        allowed_by(&self.grants, scope)
    }

    pub fn expired(&self, clock: &Clock) -> bool {
        self.expires_at.is_some_and(|t| clock.now() >= t)
    }
}

/// The union of the actions `grants` allow on `scope`.
pub fn allowed_by(grants: &[Grant], scope: &Scope) -> Vec<String> {
    if scope.kind != "repository" {
        // registry:catalog:* needs an explicit grant on the pseudo-repository "catalog".
        let wanted = Scope {
            kind: "repository".into(),
            name: format!("{}:{}", scope.kind, scope.name),
            actions: scope.actions.clone(),
        };
        return allowed_by(grants, &wanted);
    }
    let mut out: Vec<String> = Vec::new();
    for g in grants.iter().filter(|g| g.matches(&scope.name)) {
        for a in scope.intersect(&g.actions) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    // keep the requested order
    scope
        .actions
        .iter()
        .filter(|a| out.contains(a))
        .cloned()
        .collect()
}

/// The principals of one registry, plus what anonymous clients may do.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub principals: Vec<Principal>,
    pub anonymous: Vec<Grant>,
}

impl Directory {
    /// The principal whose username and secret these are. Constant-time comparison is not
    /// needed in a test fake, but a wrong password never matches a different principal.
    pub fn basic(&self, username: &str, password: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|p| p.username.as_deref() == Some(username) && p.secret == password)
    }

    /// The refresh-token principal holding `token`.
    pub fn refresh_token(&self, token: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|p| p.kind == PrincipalKind::RefreshToken && p.secret == token)
    }

    pub fn by_name(&self, name: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.name == name)
    }

    pub fn anonymous_allowed(&self, scope: &Scope) -> Vec<String> {
        allowed_by(&self.anonymous, scope)
    }

    /// Whether the host grants anything without a credential.
    pub fn has_anonymous(&self) -> bool {
        !self.anonymous.is_empty()
    }

    /// Whether any principal uses this username (to tell "unknown user" from "bad password").
    pub fn knows_username(&self, username: &str) -> bool {
        self.principals
            .iter()
            .any(|p| p.username.as_deref() == Some(username))
    }

    /// Every secret, for redaction.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.principals
            .iter()
            .map(|p| (p.name.as_str(), p.secret.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("team/*", "team/app", true)]
    #[case("team/*", "team/app/sub", false)]
    #[case("team/**", "team/app/sub", true)]
    #[case("**", "anything/at/all", true)]
    #[case("app", "app", true)]
    #[case("app", "apps", false)]
    #[case("*/app", "x/app", true)]
    fn patterns(#[case] pattern: &str, #[case] repo: &str, #[case] want: bool) {
        let g = Grant {
            repositories: pattern.into(),
            actions: vec!["pull".into()],
        };
        assert_eq!(g.matches(repo), want);
    }

    fn principal(grants: Vec<Grant>) -> Principal {
        Principal {
            name: "sp".into(),
            kind: PrincipalKind::ServicePrincipal,
            username: Some("app-id".into()),
            secret: "s3cret".into(),
            grants,
            effective_from: None,
            expires_at: None,
        }
    }

    #[test]
    fn grants_union_and_reduced_scope() {
        let p = principal(vec![
            Grant {
                repositories: "team/*".into(),
                actions: vec!["pull".into()],
            },
            Grant {
                repositories: "team/app".into(),
                actions: vec!["push".into()],
            },
        ]);
        let clock = Clock::system();
        assert_eq!(
            p.allowed(&Scope::repository("team/app", &["pull", "push"]), &clock),
            ["pull", "push"]
        );
        assert_eq!(
            p.allowed(&Scope::repository("team/other", &["pull", "push"]), &clock),
            ["pull"]
        );
        assert!(
            p.allowed(&Scope::repository("elsewhere", &["pull"]), &clock)
                .is_empty()
        );
    }

    #[test]
    fn propagation_delay_and_expiry_follow_the_clock() {
        let clock = Clock::manual(1_000);
        let mut p = principal(vec![Grant {
            repositories: "**".into(),
            actions: vec!["*".into()],
        }]);
        p.effective_from = Some(1_010);
        p.expires_at = Some(2_000);
        let scope = Scope::repository("a", &["pull"]);
        assert!(p.allowed(&scope, &clock).is_empty());
        clock.advance(10);
        assert_eq!(p.allowed(&scope, &clock), ["pull"]);
        assert!(!p.expired(&clock));
        clock.advance(990);
        assert!(p.expired(&clock));
    }

    #[test]
    fn directory_lookups() {
        let d = Directory {
            principals: vec![principal(vec![])],
            anonymous: vec![Grant {
                repositories: "public/**".into(),
                actions: vec!["pull".into()],
            }],
        };
        assert_eq!(
            d.basic("app-id", "s3cret").map(|p| p.name.as_str()),
            Some("sp")
        );
        assert!(d.basic("app-id", "wrong").is_none());
        assert!(d.knows_username("app-id"));
        assert_eq!(
            d.anonymous_allowed(&Scope::repository("public/x", &["pull", "push"])),
            ["pull"]
        );
    }
}
