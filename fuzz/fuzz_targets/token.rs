//! Bearer tokens as the verifier sees them on every request: arbitrary strings must never
//! panic and never be accepted; edits of a genuine token are refused or leave its claims
//! exactly as issued.
#![no_main]

use fake_registry::auth::clock::Clock;
use fake_registry::auth::scope::Scope;
use fake_registry::auth::token::{Claims, TokenIssuer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const AUD: &str = "registry.test";

struct Fixture {
    issuers: Vec<TokenIssuer>,
    genuine: Vec<(String, Claims)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let clock = Clock::manual(1_700_000_000);
        let issuers = vec![
            TokenIssuer::generate("fuzz-issuer", clock.clone()).expect("es256 key"),
            TokenIssuer::generate_rs256("fuzz-issuer", clock).expect("rs256 key"),
        ];
        let genuine = issuers
            .iter()
            .map(|i| {
                i.issue(
                    AUD,
                    Some("alice"),
                    vec![Scope::repository("team/app", &["pull"])],
                    300,
                    0,
                    serde_json::Map::new(),
                )
                .expect("issue")
            })
            .collect();
        Fixture { issuers, genuine }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // The input itself as a bearer token.
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        for issuer in &f.issuers {
            assert!(
                issuer.verify(token, AUD).is_err(),
                "accepted a token it never issued: {token:?}"
            );
        }
        return;
    }
    // Edits of a genuine token: (position, byte) pairs.
    let which = usize::from(mode >> 1) % f.genuine.len();
    let (token, claims) = &f.genuine[which];
    let mut bytes = token.clone().into_bytes();
    for edit in rest.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % (bytes.len() + 1);
        match edit[2] {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            b => bytes.insert(at.min(bytes.len()), b),
        }
    }
    let Ok(edited) = String::from_utf8(bytes) else {
        return;
    };
    for issuer in &f.issuers {
        if let Ok(got) = issuer.verify(&edited, AUD) {
            assert_eq!(
                &got, claims,
                "an edited token verified with other claims: {edited:?}"
            );
        }
    }
});
