//! The deliberate misbehaviours. Each is one small deviation from the `correct` code path,
//! named after what it gets wrong (and, where it is one, the real client that does it).

use std::fmt;
use std::str::FromStr;

macro_rules! mutants {
    ($($variant:ident = $name:literal : $doc:literal,)*) => {
        /// A client behaviour: `Correct` or one deliberate deviation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Mutant {
            $(#[doc = $doc] $variant,)*
        }

        impl Mutant {
            /// Every behaviour, `Correct` first.
            pub fn all() -> &'static [Mutant] {
                &[$(Mutant::$variant,)*]
            }

            /// The name `--mutant` takes.
            pub fn as_str(self) -> &'static str {
                match self { $(Mutant::$variant => $name,)* }
            }

            /// What the deviation is, in one line.
            pub fn describe(self) -> &'static str {
                match self { $(Mutant::$variant => $doc,)* }
            }
        }
    };
}

mutants! {
    Correct = "correct": "the project's one verdict rule: distribution spec + docker token auth + docker config.json semantics",
    Anonymous = "anonymous": "never presents a credential",
    BasicEverywhere = "basic-everywhere": "preemptive Basic of the image registry's credential on every request to every host (realm, mirror, storage)",
    IdentityTokenAsPassword = "identity-token-as-password": "sends an identitytoken as a Basic password instead of the refresh_token grant",
    PasswordGrantOnly = "password-grant-only": "POSTs grant_type=password to the realm and never falls back to GET",
    ExactKeyLookup = "exact-key-lookup": "config.json keys compared verbatim (case- and port-sensitive)",
    CaseSensitiveLookup = "case-sensitive-lookup": "config.json keys compared case-sensitively (ports and schemes normalised)",
    IgnoreChallengeScope = "ignore-challenge-scope": "asks the token service for pull scope whatever the challenge names",
    CredsToEveryHost = "creds-to-every-host": "presents the image registry's credential to mirrors and storage hosts (ctr --user)",
    NoRedirectAuthStrip = "no-redirect-auth-strip": "keeps Authorization across a redirect to another host",
    NoReauth = "no-reauth": "never re-authenticates after a 401 once it holds a token",
    IgnoreCredsStore = "ignore-creds-store": "skips config.json credsStore (containers/image)",
    IgnoreCredHelpers = "ignore-cred-helpers": "skips config.json credHelpers",
    NoInferredHelper = "no-inferred-helper": "never infers docker-credential-ecr-login for *.amazonaws.com",
    NoMirror = "no-mirror": "ignores configured mirrors",
    NoMirrorFallback = "no-mirror-fallback": "gives up when a configured mirror fails instead of trying the next host and then the upstream",
    ExitZero = "exit-zero": "reports success whatever happened",
    NoVerify = "no-verify": "does not verify digests or lengths",
    DigestBlobsAnonymous = "digest-blobs-anonymous": "for a @sha256: reference, fetches blobs without auth (jib 3.2.0)",
    IgnoreIdentityToken = "ignore-identity-token": "uses the auth field's null-GUID Basic instead of the identitytoken",
    NoAnonymousToken = "no-anonymous-token": "without a credential, gives up on a Bearer challenge instead of asking for an anonymous token",
    AcceptDockerOnly = "accept-docker-only": "manifest Accept lists Docker schema 2 types only (no OCI)",
    NoIndexAccept = "no-index-accept": "manifest Accept lists image manifests only (no index / manifest list)",
    ManifestBeforeBlobs = "manifest-before-blobs": "PUTs the manifest before uploading its blobs",
    AnyCredential = "any-credential": "when no config.json key names the registry, presents a credential stored for another host",
    IgnoreRetryAfter = "ignore-retry-after": "retries a 429 or 503 at once, whatever its Retry-After says",
    Impatient = "impatient": "abandons a request not answered within 1 s (a slow registry is not a hung one)",
    Tls13Only = "tls13-only": "speaks TLS 1.3 only (refuses a TLS 1.2-only registry such as Azure Stack Hub's)",
    InsecureTls = "insecure-tls": "does not verify the registry's certificate (an insecure registry; what dockerd does for every 127.0.0.0/8 registry)",
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown mutant {0:?} (known: {known})", known = Mutant::all().iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownMutant(pub String);

impl FromStr for Mutant {
    type Err = UnknownMutant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `no-retry` is the same deviation under the name the brief also uses.
        let s = if s == "no-retry" { "no-reauth" } else { s };
        Mutant::all()
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMutant(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for m in Mutant::all() {
            assert_eq!(m.as_str().parse::<Mutant>().unwrap(), *m);
            assert!(seen.insert(m.as_str()));
        }
        assert_eq!(Mutant::all()[0], Mutant::Correct);
        assert_eq!("no-retry".parse::<Mutant>().unwrap(), Mutant::NoReauth);
        assert!("nope".parse::<Mutant>().is_err());
    }
}
