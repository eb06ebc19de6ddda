//! The spec's grammars: digests, repository names, tags, and a manifest route's reference
//! (a tag or a digest).
#![no_main]

use fake_registry::digest::Digest;
use fake_registry::fuzzing::{self, Reference};
use fake_registry::names::{MAX_NAME_LEN, is_valid_tag, validate_repository};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = text.parse::<Digest>() {
        // A parsed digest prints as what was parsed, and survives JSON.
        assert_eq!(d.to_string(), text);
        let json = serde_json::to_string(&d).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Digest>(&json).expect("deserialize"),
            d
        );
    }
    if validate_repository(text).is_ok() {
        assert!(!text.is_empty() && text.len() <= MAX_NAME_LEN);
        assert!(!text.starts_with('/') && !text.ends_with('/') && !text.contains("//"));
        assert!(text.bytes().all(|b| b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || matches!(b, b'/' | b'.' | b'_' | b'-')));
    }
    let tag = is_valid_tag(text);
    if tag {
        assert!(!text.is_empty() && text.len() <= 128 && !text.contains(':'));
    }
    match fuzzing::reference(text) {
        Ok(Reference::Tag(t)) => assert!(tag && t == text),
        Ok(Reference::Digest(d)) => assert_eq!(d.to_string(), text),
        Err(e) => {
            assert!(!tag, "{text:?} is a valid tag but was refused");
            assert!(e.status.is_client_error());
            let _ = e.body();
        }
    }
});
