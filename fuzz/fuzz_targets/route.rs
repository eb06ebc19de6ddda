//! `/v2/…` request paths, parsed from the end (repository names contain slashes), and the
//! scope each route needs for every method.
#![no_main]

use fake_registry::api::route::{self, Route};
use fake_registry::auth::scope::required_scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(r) = route::parse(path) else {
        return;
    };
    assert!(path.starts_with("/v2"), "{path:?} routed without /v2");
    match &r {
        Route::Base | Route::Catalog => {}
        Route::Tags { name }
        | Route::UploadStart { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => assert!(!name.is_empty(), "{path:?}: empty name"),
    }
    for m in ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"] {
        let method = http::Method::from_bytes(m.as_bytes()).expect("method");
        let _ = required_scope(&method, &r);
    }
});
