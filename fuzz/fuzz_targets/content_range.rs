//! An upload chunk's `Content-Range` and `Content-Length` (PATCH/PUT on an upload session).
#![no_main]

use fake_registry::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `Content-Range` value, then optionally `\n` and a `Content-Length` value.
    let (range, length) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let range = (!range.is_empty()).then_some(range);
    let Some(result) = fuzzing::chunk_bounds(range, length) else {
        return;
    };
    match result {
        Ok(fuzzing::ChunkBounds { offset, len }) => {
            if let Some(offset) = offset {
                let len = len.expect("a range always has a length");
                assert!(len >= 1);
                assert!(offset.checked_add(len - 1).is_some(), "end overflows");
            }
            if let (Some(l), Some(declared)) = (len, length) {
                let declared = std::str::from_utf8(declared).expect("parsed as a number");
                assert_eq!(declared.trim().parse::<u64>().ok(), Some(l));
            }
        }
        Err(e) => {
            assert!(e.status.is_client_error(), "{e}");
            let _ = e.body();
        }
    }
});
