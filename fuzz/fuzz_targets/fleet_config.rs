//! The fleet's TOML file (`fake-registry serve --config`), parsed, validated and turned into
//! host specs; every error located.
#![no_main]

use fake_registry::config::FleetConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match FleetConfig::parse(text, "fuzz.toml") {
        Ok(config) => {
            let _ = config.into_hosts(1_700_000_000);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
