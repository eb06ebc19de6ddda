//! Scenario files (`scenarios/*.toml`): parsed and validated from text, errors located; and
//! the journal globs and counts they hold.
#![no_main]

use harness::scenario::{Count, Scenario, glob, placeholders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse(text, "fuzz.toml") {
        Ok(s) => {
            let _ = format!("{s:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = Count::parse(text);
    let _ = placeholders(text);
    if let Some((pattern, subject)) = text.split_once('\n') {
        let m = glob(pattern, subject);
        if !pattern.contains('*') {
            assert_eq!(m, pattern == subject);
        }
        if pattern == "*" {
            assert!(m);
        }
    }
});
