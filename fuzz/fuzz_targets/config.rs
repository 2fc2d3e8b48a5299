//! The config loader (`RawConfig::parse`, then `Config::from_raw`) on any
//! UTF-8 text. Checks: it never panics; a file that does not parse is
//! refused with a message; a file that parses but does not validate is
//! refused with an error that names the key at fault; every error names the
//! file. Relative paths resolve under a directory that does not exist, and
//! texts naming `/dev`, `/proc` or `/sys` are skipped (a key file there
//! could block the read).
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ltigate::{Config, RawConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return;
    }
    let path = Path::new("/nonexistent-ltigate-fuzz/gateway.toml");
    let secrets: HashMap<String, String> = HashMap::new();
    match RawConfig::parse(text, path) {
        Err(e) => {
            assert_eq!(e.file, path);
            assert!(!e.message.is_empty());
        }
        Ok(raw) => {
            if let Err(e) = Config::from_raw(raw, path, &secrets) {
                assert_eq!(e.file, path);
                assert!(!e.key.is_empty(), "an error that names no key: {e}");
                assert!(!e.message.is_empty());
            }
        }
    }
});
