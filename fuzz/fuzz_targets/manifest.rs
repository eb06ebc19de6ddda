//! A pushed manifest or index as the manifest `PUT` handler validates it (JSON, media type
//! against `Content-Type`, schema version, `oci-spec` schema, referenced digests).
#![no_main]

use fake_registry::fuzzing;
use fake_registry::media::{self, ManifestKind};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some(media::OCI_MANIFEST),
    Some(media::OCI_INDEX),
    Some(media::DOCKER_MANIFEST),
    Some(media::DOCKER_MANIFEST_LIST),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
];

fuzz_target!(|data: &[u8]| {
    // First byte: which Content-Type the request carries and whether the registry allows
    // sparse indexes; the rest is the body.
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector & 7) % CONTENT_TYPES.len()];
    let sparse = selector & 0x80 != 0;
    match fuzzing::manifest(content_type, body, sparse) {
        Ok(shape) => {
            let kind = media::manifest_kind(&shape.media_type);
            assert_eq!(kind, Some(shape.kind));
            assert_ne!(shape.kind, ManifestKind::Schema1);
            if let Some(ct) = content_type {
                assert_eq!(ct, shape.media_type);
            }
            if sparse {
                assert!(shape.blobs.is_empty() && shape.children.is_empty());
            }
            match shape.kind {
                ManifestKind::Image => assert!(shape.children.is_empty()),
                _ => assert!(shape.blobs.is_empty()),
            }
        }
        Err(e) => {
            assert!(e.status.is_client_error(), "{e}");
            let _ = e.body();
        }
    }
});
