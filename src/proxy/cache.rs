//! The `Cache-Control` of forwarded responses: always private to the
//! browser. It must never let a shared cache store a gated response, and
//! it runs on every forwarded response, so the common case (no header)
//! inserts a static value and allocates nothing.

use http::header;
use http::{HeaderMap, HeaderValue};

/// Makes a forwarded response private to the browser (RFC 9111 §5.2.2.7):
/// every such response was gated on a session, and a shared cache in front
/// of ltigate (a CDN, a campus proxy) that stored one would hand it to
/// requests that never passed the gate.
///
/// - No `Cache-Control`: `private`. This is the common case and allocates
///   nothing.
/// - An unqualified `private` or `no-store` already says it: kept as sent.
/// - Anything else: `private`, then those of the LMS's directives that
///   mean something to a browser's own cache (`max-age=N`, bare
///   `no-cache`, `no-store`, `must-revalidate`, `no-transform`,
///   `immutable`, `stale-while-revalidate=N`, `stale-if-error=N`).
///   `public`, `s-maxage`, `proxy-revalidate`, a qualified
///   `private="..."` (which leaves the rest shareable) and extensions are
///   dropped. Several `Cache-Control` fields become one.
///
/// No crate in the build parses `Cache-Control`. The directives are split
/// at commas, which can cut a quoted string apart; a value holding a quote
/// therefore never takes the keep-as-sent branch, and a fragment can only
/// survive by matching the allow-list exactly, so a bad split can drop a
/// directive but never keep a wrong one.
pub fn make_private(headers: &mut HeaderMap) {
    let fields = headers.get_all(header::CACHE_CONTROL);
    let directives = || {
        fields
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
    };
    if fields.iter().next().is_none() {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        return;
    }
    let quoted = fields.iter().any(|v| v.as_bytes().contains(&b'"'));
    if !quoted
        && directives()
            .any(|d| d.eq_ignore_ascii_case(b"private") || d.eq_ignore_ascii_case(b"no-store"))
    {
        return;
    }
    let mut private = String::from("private");
    for d in directives().filter(|d| browser_cache_directive(d)) {
        if let Ok(d) = std::str::from_utf8(d) {
            private.push_str(", ");
            private.push_str(d);
        }
    }
    let value =
        HeaderValue::from_str(&private).unwrap_or_else(|_| HeaderValue::from_static("private"));
    headers.insert(header::CACHE_CONTROL, value);
}

/// Whether a `Cache-Control` directive, as sent, is one a browser's own
/// cache uses and that is safe to keep beside `private`.
fn browser_cache_directive(d: &[u8]) -> bool {
    const BARE: [&[u8]; 5] = [
        b"no-cache",
        b"no-store",
        b"must-revalidate",
        b"no-transform",
        b"immutable",
    ];
    const SECONDS: [&[u8]; 3] = [b"max-age=", b"stale-while-revalidate=", b"stale-if-error="];
    BARE.iter().any(|b| d.eq_ignore_ascii_case(b))
        || SECONDS.iter().any(|name| {
            d.len() > name.len()
                && d[..name.len()].eq_ignore_ascii_case(name)
                && d[name.len()..].iter().all(u8::is_ascii_digit)
        })
}
