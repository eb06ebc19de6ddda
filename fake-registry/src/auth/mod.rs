//! Authentication and authorization: principals and grants ([`principal`]), scopes
//! ([`scope`]), JWT bearer tokens ([`token`]) and a controllable [`clock`]. Vendor profiles
//! build their wire behaviour from these pieces.

pub mod clock;
pub mod principal;
pub mod scope;
pub mod token;

pub use clock::Clock;
pub use principal::{Directory, Grant, Principal, PrincipalKind};
pub use scope::Scope;
pub use token::{Claims, TokenError, TokenIssuer};

use base64::Engine as _;

/// Authorization schemes (IANA's registry, plus AWS SigV4 and GitHub's `token`) whose name
/// the journal may show.
const KNOWN_SCHEMES: &[&str] = &[
    "aws4-hmac-sha256",
    "concealed",
    "digest",
    "dpop",
    "gnap",
    "hoba",
    "mutual",
    "negotiate",
    "ntlm",
    "oauth",
    "privatetoken",
    "scram-sha-1",
    "scram-sha-256",
    "token",
    "vapid",
];

/// Credentials presented in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
    /// A header we could not parse (kept for the journal, value redacted).
    Other(String),
}

impl Presented {
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let Some(value) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Presented::None;
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            // No scheme: the whole value may be a secret, so none of it is kept.
            return match value.trim().to_ascii_lowercase().as_str() {
                s @ ("basic" | "bearer") => Presented::Other(format!("{s} (no credentials)")),
                _ => Presented::Other("(no scheme)".into()),
            };
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded.as_deref().and_then(|d| d.split_once(':')) {
                    Some((u, p)) => Presented::Basic {
                        username: u.to_owned(),
                        password: p.to_owned(),
                    },
                    None => Presented::Other("Basic (undecodable)".into()),
                }
            }
            "bearer" => Presented::Bearer(rest.trim().to_owned()),
            // Only registered scheme names are kept: anything else may be a secret.
            other if KNOWN_SCHEMES.contains(&other) => Presented::Other(other.to_owned()),
            _ => Presented::Other("(unknown scheme)".into()),
        }
    }
}
