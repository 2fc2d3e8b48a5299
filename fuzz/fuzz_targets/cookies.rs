//! The cookie reader (`ltigate::cookie` and the pairs it reads) on any
//! `Cookie` headers. Input: the first line is the name looked up, each
//! further line one `Cookie` header (lines that are no header value are
//! dropped, as hyper would). Checks: at most 256 pairs; every pair has a
//! non-empty, trimmed name without `=` or `;` and a trimmed value without
//! `;`, in visible ASCII; `cookie(name)` is the first pair of that name, and
//! is found only when some `;`-piece of a header spells `name=value`.
#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Some(Ok(name)) = lines.next().map(std::str::from_utf8) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut raw: Vec<&[u8]> = Vec::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
            raw.push(line);
        }
    }

    let pairs = ltigate::fuzzing::cookie_pairs(&headers);
    assert!(pairs.len() <= 256);
    let visible = |s: &str| {
        s.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    };
    for (n, v) in &pairs {
        assert!(!n.is_empty());
        assert!(!n.contains('=') && !n.contains(';') && !v.contains(';'));
        assert!(visible(n) && visible(v));
        assert_eq!(n.trim(), n);
        assert_eq!(v.trim(), v);
    }

    let got = ltigate::cookie(&headers, name);
    let first = pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone());
    assert_eq!(got, first);
    if let Some(value) = got {
        let present = raw.iter().any(|line| {
            line.split(|&b| b == b';').any(|piece| {
                std::str::from_utf8(piece)
                    .ok()
                    .and_then(|p| p.split_once('='))
                    .is_some_and(|(n, v)| n.trim() == name && v.trim() == value)
            })
        });
        assert!(present, "{name:?} read as {value:?} but not sent");
    }
});
