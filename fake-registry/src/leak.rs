//! The leak detector: flags a request that presents a credential or a token belonging to a
//! *different* registry than the one receiving it — the upstream's password sent to a mirror,
//! a Docker Hub token replayed at GitLab. "Never forward upstream credentials or tokens to a
//! mirror" is the consensus rule (behaviours.md §2.5; distribution#2481, moby#42022).
//!
//! Ownership is run-wide: every registry sharing a journal registers its principals' secrets
//! and its token signing key with the journal's [`Redactor`] ([`register`]). Detection only
//! ever names principals and registries by label; the secret is never copied anywhere.

use crate::auth::{Directory, Presented, TokenIssuer};
use crate::journal::Redactor;
use base64::Engine as _;
use std::collections::BTreeMap;

/// Registers `registry`'s credentials and (when it signs tokens) its issuer's key id, so
/// requests elsewhere that present them are flagged. Call once per registry at start.
pub fn register(
    redactor: &Redactor,
    registry: &str,
    directory: &Directory,
    issuer: Option<&TokenIssuer>,
) {
    for p in &directory.principals {
        redactor.claim(&p.secret, registry, &p.name);
    }
    if let Some(issuer) = issuer {
        redactor.claim_issuer(issuer.kid(), registry);
    }
}

/// Form fields of token requests that carry secrets (OAuth2 password and refresh grants).
const SECRET_FORM_FIELDS: &[&str] = &["password", "refresh_token", "access_token"];

/// The leak note for a request received by `receiver`, if it presented another registry's
/// credential (in `Authorization` or a token form) or token.
pub fn detect(
    redactor: &Redactor,
    headers: &http::HeaderMap,
    form: &BTreeMap<String, String>,
    receiver: &str,
) -> Option<String> {
    let mut candidates: Vec<String> = Vec::new();
    match Presented::from_headers(headers) {
        Presented::Basic { password, .. } => candidates.push(password),
        Presented::Bearer(token) => candidates.push(token),
        Presented::None | Presented::Other(_) => {}
    }
    for key in SECRET_FORM_FIELDS {
        if let Some(v) = form.get(*key) {
            candidates.push(v.clone());
        }
    }
    candidates
        .iter()
        .find_map(|c| foreign_owner(redactor, c, receiver))
}

fn foreign_owner(redactor: &Redactor, secret: &str, receiver: &str) -> Option<String> {
    if let Some((registry, principal)) = redactor.owner_of_secret(secret) {
        return (registry != receiver).then(|| {
            format!(
                "credential of principal {principal} of registry {registry} presented to {receiver}"
            )
        });
    }
    // A JWT (an access or refresh token, possibly used as a Basic password): its header
    // names the signing key, which names the registry.
    let kid = jsonwebtoken::decode_header(secret).ok()?.kid?;
    let registry = redactor.owner_of_kid(&kid)?;
    (registry != receiver).then(|| {
        let sub = token_subject(secret)
            .map(|s| format!(" (sub {s})"))
            .unwrap_or_default();
        format!("token issued by registry {registry}{sub} presented to {receiver}")
    })
}

/// The unverified `sub` claim of a JWT, for the note (subjects are names, not secrets).
fn token_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Clock, Principal, PrincipalKind, Scope};
    use http::HeaderValue;

    fn directory(secret: &str) -> Directory {
        Directory {
            principals: vec![Principal {
                name: "builder".into(),
                kind: PrincipalKind::User,
                username: Some("u".into()),
                secret: secret.into(),
                grants: vec![],
                effective_from: None,
                expires_at: None,
            }],
            anonymous: vec![],
        }
    }

    fn headers(auth: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(auth).expect("header"),
        );
        h
    }

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn flags_foreign_credentials_and_tokens_only() {
        let r = Redactor::default();
        let clock = Clock::manual(1_700_000_000);
        let upstream_issuer = TokenIssuer::generate("up", clock).expect("key");
        register(
            &r,
            "upstream",
            &directory("upstream-pass"),
            Some(&upstream_issuer),
        );
        register(&r, "mirror", &directory("mirror-pass"), None);
        let none = BTreeMap::new();

        let leak = detect(&r, &headers(&basic("u", "upstream-pass")), &none, "mirror");
        assert_eq!(
            leak.as_deref(),
            Some("credential of principal builder of registry upstream presented to mirror")
        );
        assert_eq!(
            detect(&r, &headers(&basic("u", "mirror-pass")), &none, "mirror"),
            None
        );
        assert_eq!(
            detect(
                &r,
                &headers(&basic("u", "upstream-pass")),
                &none,
                "upstream"
            ),
            None
        );
        assert_eq!(detect(&r, &http::HeaderMap::new(), &none, "mirror"), None);
        assert_eq!(
            detect(&r, &headers(&basic("u", "unknown-pass")), &none, "mirror"),
            None
        );

        let (token, _) = upstream_issuer
            .issue(
                "svc",
                Some("builder"),
                vec![Scope::repository("a", &["pull"])],
                300,
                0,
                Default::default(),
            )
            .expect("token");
        let leak = detect(&r, &headers(&format!("Bearer {token}")), &none, "mirror");
        assert_eq!(
            leak.as_deref(),
            Some("token issued by registry upstream (sub builder) presented to mirror")
        );
        assert!(!leak.unwrap_or_default().contains(&token));

        let form = BTreeMap::from([("password".to_owned(), "upstream-pass".to_owned())]);
        assert!(detect(&r, &http::HeaderMap::new(), &form, "mirror").is_some());
    }
}
