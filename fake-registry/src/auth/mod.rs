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
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
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
            other => Presented::Other(other.to_owned()),
        }
    }
}
