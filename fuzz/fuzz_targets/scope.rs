//! `scope=` values of a token request (`repository:team/app:pull,push`, several per value).
#![no_main]

use fake_registry::auth::scope::Scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(s) = Scope::parse(text) {
        assert!(!s.kind.is_empty() && !s.name.is_empty());
        assert!(s.actions.iter().all(|a| !a.is_empty() && !a.contains(',')));
        // What a token's `access` entry prints parses back to itself.
        assert_eq!(Scope::parse(&s.to_string()).as_ref(), Some(&s), "{text:?}");
        let all = s.intersect(&["*".to_owned()]);
        assert_eq!(all, s.actions);
        let some = s.intersect(&s.actions[..s.actions.len() / 2]);
        assert!(some.iter().all(|a| s.actions.contains(a)));
    }
    for s in Scope::parse_all(text.split('&')) {
        assert!(!s.kind.is_empty() && !s.name.is_empty());
    }
});
