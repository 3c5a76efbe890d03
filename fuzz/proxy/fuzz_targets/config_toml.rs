//! `pgrw.toml` text: parsed and checked as the proxy does at start. Fails on
//! a panic; anything wrong must be a `ConfigError`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrw_proxy::ProxyConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ProxyConfig::from_toml("fuzz.toml", text);
    }
});
