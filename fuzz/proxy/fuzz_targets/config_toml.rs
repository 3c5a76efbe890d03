//! `pgrw.toml` text: parsed and checked as the proxy does at start. Fails on
//! a panic; anything wrong must be a `ConfigError`. Files are not read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrw_proxy::ProxyConfig;

fuzz_target!(|data: &[u8]| {
    // password_file names a file to read: the fuzzer could name a FIFO or a
    // terminal and wait on it forever, a hang of the harness, not of the parser.
    if let Ok(text) = std::str::from_utf8(data)
        && !text.contains("password_file")
    {
        let _ = ProxyConfig::from_toml("fuzz.toml", text);
    }
});
