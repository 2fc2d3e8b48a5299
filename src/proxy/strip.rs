//! Request headers that never cross from a browser to the LMS because
//! something between ltigate and Django, or Django itself, could take them
//! for a fact about the request: who the user is, which path or method was
//! really asked for, where the client is.
//!
//! ltigate removes three kinds of client header before it forwards
//! (see `Proxy::strip_request_headers`): hop-by-hop fields; those it sets
//! itself (the assertion, `X-Ltigate-*`, `X-Forwarded-*`, `X-Request-Id`);
//! and the *foreign* ones listed here, which ltigate does not set and no
//! page needs, but which some auth proxy, WSGI server or middleware trusts.
//! Operators add their own with `[upstream] strip_request_headers`; the
//! built-in list cannot be shortened. Every name is matched in any case and
//! with `_` for `-`: WSGI servers map both to the same `HTTP_*` key
//! (CVE-2025-64484).
//!
//! This runs for every header of every request, so it never allocates: the
//! lists are static, grouped by first byte, so a header like `accept` or
//! `cookie` costs one `match` and a few length comparisons.

/// Whether `name` (lower-case, as hyper gives it) is `entry`, or starts
/// with it when `entry` ends in `*`. A `_` in `name` counts as `-`; `entry`
/// is lower-case with `-` only.
pub fn matches(name: &str, entry: &str) -> bool {
    let (entry, prefix) = match entry.strip_suffix('*') {
        Some(head) => (head.as_bytes(), true),
        None => (entry.as_bytes(), false),
    };
    let name = name.as_bytes();
    let fits = if prefix {
        name.len() >= entry.len()
    } else {
        name.len() == entry.len()
    };
    fits && name
        .iter()
        .zip(entry)
        .all(|(&x, &y)| x == y || (x == b'_' && y == b'-'))
}

/// Whether `name` is on the built-in list of foreign identity and routing
/// headers.
pub fn is_foreign(name: &str) -> bool {
    let list: &[&str] = match name.as_bytes().first() {
        Some(b'x') => X,
        Some(b'c') => C,
        Some(b'f') => F,
        Some(b'p') => P,
        Some(b'r') => R,
        Some(b's') => S,
        Some(b't') => T,
        _ => return false,
    };
    list.iter().any(|entry| matches(name, entry))
}

// Each list holds the entries starting with its letter (a test checks).
// A trailing `*` matches any name with that prefix.

const X: &[&str] = &[
    // Identity set by auth proxies: Apache/Kubernetes (`X-Remote-User`,
    // `-Group`, `-Extra-*`), Kong (`X-Authenticated-Userid`), oauth2-proxy
    // (`X-Auth-Request-*`), Grafana's auth proxy (`X-WebAuth-User`), IAP,
    // Azure App Service, AWS ALB, Pomerium; and the generic spellings.
    "x-remote-*",
    "x-authenticated-*",
    "x-auth-request-*",
    "x-auth-user",
    "x-webauth-*",
    "x-user",
    "x-username",
    "x-email",
    "x-lti-*",
    "x-goog-authenticated-user-*",
    "x-ms-client-principal*",
    "x-amzn-oidc-*",
    "x-pomerium-*",
    // The path, host or method "really" asked for: IIS and Symfony read
    // `X-Original-URL`/`X-Rewrite-URL`, frameworks honour method overrides.
    "x-original-*",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-host",
    "x-script-name",
    // The client's address or scheme, as other proxies report them: Open
    // edX finds the client's IP through a header that the operator names
    // in `CLOSEST_CLIENT_IP_FROM_HEADERS` (edx-django-utils
    // edx_django_utils/ip/__init__.py), and CDN set-ups name these.
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-url-scheme",
];

const C: &[&str] = &[
    "client-ip",
    // Cloudflare: the client address and Access's identity.
    "cf-connecting-ip*",
    "cf-access-*",
];

const F: &[&str] = &[
    // RFC 7239: ltigate sends X-Forwarded-* instead.
    "forwarded",
    "fastly-client-ip",
    "front-end-https",
];

const P: &[&str] = &[
    // gunicorn takes `PATH_INFO` and `SCRIPT_NAME` from a trusted front
    // end's headers (its default `forwarder_headers`, gunicorn/config.py
    // `ForwarderHeaders`) and routes by them: `SCRIPT_NAME` is cut off the
    // path before Django sees it (gunicorn/http/wsgi.py `create`).
    "path-info",
];

const R: &[&str] = &[
    // Django's RemoteUserMiddleware reads `REMOTE_USER`; a subclass set to
    // `HTTP_REMOTE_USER` reads this header (django/contrib/auth/middleware.py).
    "remote-user",
    "remote-email",
    "remote-groups",
];

const S: &[&str] = &["script-name"];

const T: &[&str] = &["true-client-ip"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_list_holds_its_letter_and_valid_lower_case_names() {
        for (letter, list) in [
            (b'x', X),
            (b'c', C),
            (b'f', F),
            (b'p', P),
            (b'r', R),
            (b's', S),
            (b't', T),
        ] {
            for entry in list {
                assert_eq!(entry.as_bytes()[0], letter, "{entry}");
                let name = entry.strip_suffix('*').unwrap_or(entry);
                assert!(!name.contains('*') && !name.contains('_'), "{entry}");
                let parsed = http::HeaderName::from_bytes(name.as_bytes()).expect(entry);
                assert_eq!(parsed.as_str(), name, "{entry} is not lower-case");
            }
        }
    }

    #[test]
    fn matches_in_any_spelling_and_by_prefix() {
        for name in [
            "remote-user",
            "remote_user",
            "x-remote-user",
            "x_remote_group",
            "x-auth-request-preferred-username",
            "x-original-url",
            "x-original-method",
            "script_name",
            "path_info",
            "cf-connecting-ipv6",
            "x-ms-client-principal-name",
        ] {
            assert!(is_foreign(name), "{name}");
        }
        for name in [
            "accept",
            "cookie",
            "x-requested-with",
            "x-csrftoken",
            "x-ltigate-user",
            "x-users",
            "remote-users",
            "x-remote",
            "",
        ] {
            assert!(!is_foreign(name), "{name}");
        }
        assert!(matches("x_campus_user", "x-campus-user"));
        assert!(!matches("x-campus-user", "x_campus_user"));
        assert!(matches("x-corp-anything", "x-corp-*"));
        assert!(!matches("x-corp", "x-corp-*"));
    }
}
