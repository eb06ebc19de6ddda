//! Bearer tokens: real JWTs, signed by a key generated per registry, verified on every
//! request against the registry's own clock.
//!
//! Expiry and not-before are checked here against [`Clock`] (not the system time that
//! `jsonwebtoken` would use), so tests can expire tokens without waiting.

use super::clock::Clock;
use super::scope::Scope;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The claims of an access token as the distribution token spec defines them; vendor
/// profiles add their own (`grant_type`, `version`, GitLab's `auth_type`…) through `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Scope>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The actions this token grants on `scope`'s resource.
    pub fn granted(&self, scope: &Scope) -> Vec<String> {
        let held: Vec<String> = self
            .access
            .iter()
            .filter(|a| a.kind == scope.kind && a.name == scope.name)
            .flat_map(|a| a.actions.iter().cloned())
            .collect();
        scope.intersect(&held)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("signed with {0}, expected {1}")]
    WrongAlgorithm(String, String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("audience {0:?}, expected {1:?}")]
    WrongAudience(String, String),
    #[error("issuer {0:?}, expected {1:?}")]
    WrongIssuer(String, String),
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// How many signature-verified tokens an issuer remembers. A client re-presents the same
/// token on every request of a pull, so a few thousand cover every live client of a fleet;
/// past the bound the memory is dropped and rebuilt (bounded memory, at worst one more
/// signature check per token).
const VERIFIED_CAPACITY: usize = 4096;

/// Issues and verifies one registry's tokens.
pub struct TokenIssuer {
    issuer: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    clock: Clock,
    /// Tokens whose signature this issuer's key has verified, with their claims: checking
    /// the same ES256/RS256 signature again on every request was most of an authenticated
    /// request's CPU (issue 17). Only the signature is remembered; issuer, audience and
    /// validity times are checked on every request against the clock.
    verified: std::sync::Mutex<std::collections::HashMap<String, Claims>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A fresh ES256 key (ECDSA P-256), generated in memory; never written anywhere.
    pub fn generate(issuer: &str, clock: Clock) -> Result<Self, TokenError> {
        let key = rcgen::KeyPair::generate().map_err(|e| TokenError::Signing(e.to_string()))?;
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes())
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            algorithm: Algorithm::ES256,
            encoding,
            decoding,
            kid: libtrust_kid(&rcgen::PublicKeyData::subject_public_key_info(&key)),
            clock,
            verified: Default::default(),
        })
    }

    /// A fresh RS256 key (RSA 2048), generated in memory; never written anywhere. GitLab
    /// signs registry tokens this way (`JSONWebToken::RSAToken`), with a libtrust `kid`.
    pub fn generate_rs256(issuer: &str, clock: Clock) -> Result<Self, TokenError> {
        use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
        use rsa::pkcs8::EncodePublicKey;
        let signing = |e: &dyn std::fmt::Display| TokenError::Signing(e.to_string());
        let key =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| signing(&e))?;
        let public = key.to_public_key();
        let private_der = key.to_pkcs1_der().map_err(|e| signing(&e))?;
        let public_der = public.to_pkcs1_der().map_err(|e| signing(&e))?;
        let spki = public.to_public_key_der().map_err(|e| signing(&e))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(private_der.as_bytes()),
            decoding: DecodingKey::from_rsa_der(public_der.as_bytes()),
            kid: libtrust_kid(spki.as_bytes()),
            clock,
            verified: Default::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The libtrust-format key id every token's header carries (the leak detector maps it
    /// back to the registry).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs arbitrary claims with this issuer's key (GitLab nests a `user` JWT in its tokens).
    pub fn sign_json(&self, claims: &serde_json::Value) -> Result<String, TokenError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Signs a token for `aud` carrying `access`, valid from `nbf_skew` seconds ago for
    /// `lifetime` seconds. Returns the compact JWT and its claims.
    pub fn issue(
        &self,
        aud: &str,
        sub: Option<&str>,
        access: Vec<Scope>,
        lifetime: i64,
        nbf_skew: i64,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, Claims), TokenError> {
        let now = self.clock.now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.map(str::to_owned),
            aud: aud.to_owned(),
            exp: now + lifetime,
            nbf: now - nbf_skew,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            extra,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, issuer, audience, `nbf` and `exp`.
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, TokenError> {
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                self.remember(token, &claims);
                claims
            }
        };
        self.check_claims(claims, aud)
    }

    /// The claims of `token` if its signature was verified before.
    fn remembered(&self, token: &str) -> Option<Claims> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.get(token).cloned()
    }

    fn remember(&self, token: &str, claims: &Claims) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
    }

    /// The header's algorithm and the signature, by this issuer's key.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != self.algorithm {
            return Err(TokenError::WrongAlgorithm(
                format!("{:?}", header.alg),
                format!("{:?}", self.algorithm),
            ));
        }
        let mut validation = Validation::new(self.algorithm);
        // Time and audience are checked in `check_claims`, against our clock and with
        // clear errors.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            },
        )?;
        Ok(data.claims)
    }

    /// Issuer, audience, `nbf` and `exp` of verified claims, against the registry's clock.
    fn check_claims(&self, claims: Claims, aud: &str) -> Result<Claims, TokenError> {
        let now = self.clock.now();
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss, self.issuer.clone()));
        }
        if claims.aud != aud {
            return Err(TokenError::WrongAudience(claims.aud, aud.to_owned()));
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid {
                nbf: claims.nbf,
                now,
            });
        }
        if now >= claims.exp {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        Ok(claims)
    }
}

/// The key id format of docker/libtrust that distribution and GitLab use: base32 of the
/// first 30 bytes of SHA-256 over the DER public key, in colon-separated groups of four.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = sha2::Sha256::digest(spki_der);
    let bytes = &hash[..30];
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    let chars: Vec<char> = out.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn issuer(clock: &Clock) -> TokenIssuer {
        TokenIssuer::generate("test-issuer", clock.clone()).expect("key")
    }

    fn token(i: &TokenIssuer) -> String {
        i.issue(
            "registry.test",
            Some("alice"),
            vec![Scope::repository("team/app", &["pull"])],
            300,
            5,
            Default::default(),
        )
        .expect("issue")
        .0
    }

    #[test]
    fn issues_and_verifies() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        let claims = i.verify(&token(&i), "registry.test").expect("valid");
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(claims.iat - claims.nbf, 5);
        assert_eq!(
            claims.granted(&Scope::repository("team/app", &["pull", "push"])),
            ["pull"]
        );
        assert!(
            claims
                .granted(&Scope::repository("team/other", &["pull"]))
                .is_empty()
        );
    }

    #[test]
    fn kid_is_libtrust_shaped() {
        let kid = libtrust_kid(b"any key bytes");
        assert_eq!(kid.len(), 48 + 11);
        assert!(kid.split(':').all(|g| g.len() == 4));
    }

    #[test]
    fn refuses_alg_none() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        let real = token(&i);
        let payload = real.split('.').nth(1).expect("payload");
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{header}.{payload}.");
        assert!(i.verify(&forged, "registry.test").is_err());
    }

    #[test]
    fn refuses_another_key() {
        let clock = Clock::manual(1_700_000_000);
        let mine = issuer(&clock);
        let theirs = TokenIssuer::generate("test-issuer", clock.clone()).expect("key");
        assert_eq!(
            mine.verify(&token(&theirs), "registry.test"),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_expired_and_not_yet_valid() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        let t = token(&i);
        clock.advance(300);
        assert!(matches!(
            i.verify(&t, "registry.test"),
            Err(TokenError::Expired { .. })
        ));
        clock.advance(-400);
        assert!(matches!(
            i.verify(&t, "registry.test"),
            Err(TokenError::NotYetValid { .. })
        ));
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_time_and_audience() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        let t = token(&i);
        assert!(i.verify(&t, "registry.test").is_ok());
        assert!(
            i.remembered(&t).is_some(),
            "the verified signature is remembered"
        );
        assert!(matches!(
            i.verify(&t, "another.registry"),
            Err(TokenError::WrongAudience(..))
        ));
        clock.advance(300);
        assert!(matches!(
            i.verify(&t, "registry.test"),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn only_verified_signatures_are_remembered_and_the_memory_is_bounded() {
        let clock = Clock::manual(1_700_000_000);
        let mine = issuer(&clock);
        let theirs = TokenIssuer::generate("test-issuer", clock.clone()).expect("key");
        let foreign = token(&theirs);
        for _ in 0..2 {
            assert_eq!(
                mine.verify(&foreign, "registry.test"),
                Err(TokenError::BadSignature)
            );
        }
        assert!(mine.remembered(&foreign).is_none());
        // A token with a byte of its signature changed is another string: verified afresh.
        let real = token(&mine);
        assert!(mine.verify(&real, "registry.test").is_ok());
        let mut tampered = real.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(mine.verify(&tampered, "registry.test").is_err());
        for _ in 0..VERIFIED_CAPACITY + 10 {
            mine.remember(
                &uuid::Uuid::new_v4().to_string(),
                &mine.verify(&real, "registry.test").expect("valid"),
            );
        }
        let held = mine.verified.lock().expect("lock").len();
        assert!(held <= VERIFIED_CAPACITY, "{held} remembered");
    }

    #[test]
    fn refuses_wrong_audience() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        assert!(matches!(
            i.verify(&token(&i), "other.test"),
            Err(TokenError::WrongAudience(..))
        ));
    }

    #[test]
    fn refuses_scope_escalation_by_payload_edit() {
        let clock = Clock::manual(1_700_000_000);
        let i = issuer(&clock);
        let real = token(&i);
        let parts: Vec<&str> = real.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let edited = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
        let forged = format!("{}.{}.{}", parts[0], edited, parts[2]);
        assert_eq!(
            i.verify(&forged, "registry.test"),
            Err(TokenError::BadSignature)
        );
    }
}
