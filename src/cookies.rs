//! Reading the browser's cookies and writing ours.
//!
//! ltigate's cookies must work inside a platform's iframe, so on HTTPS they are
//! `Secure; HttpOnly; SameSite=None` and, when `session.partitioned_cookies` is
//! on, `Partitioned` (CHIPS). Over plain HTTP (local development only) browsers
//! refuse `SameSite=None`, so they fall back to `SameSite=Lax`. Cookie values
//! are never logged.
//!
//! On HTTPS every cookie ltigate sets is named with the [`HOST_PREFIX`]
//! (the session, a login's state, a picker's binding; the LMS's cookies get
//! `__Host-lms.` in the proxy), so that no other host can set one in its
//! name. Every one has `Path=/`, which that prefix requires.

use cookie::time::Duration;
use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

/// At most this many cookies are read from one request (the LMS's own
/// cookies and a login's state cookies share the header with ours).
const MAX_COOKIES: usize = 256;

/// The value of the first cookie named `name`, in any of the request's
/// `Cookie` headers (HTTP/2 splits them), without collecting the others.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    pairs(headers)
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The first [`MAX_COOKIES`] `name=value` pairs of every `Cookie` header,
/// trimmed: the one reader of the header, for ltigate's own cookies and for
/// those the proxy forwards. Pairs without `=`, without a name, or with
/// bytes outside visible ASCII are skipped one by one, so that one odd
/// cookie (a sibling host can set `x=é` on the parent domain) cannot hide
/// the others. Values are returned as sent (ltigate's own are base64url
/// tokens, checked by their readers).
///
/// Kept beside the `cookie` crate, measured with `cargo bench --bench
/// hot_paths -- cookie_lookup` (three runs on a busy 2-core machine):
/// `Cookie::split_parse` took 544-760 ns where this takes 207-326 ns on a
/// three-cookie header, and 1.5-2.2 us against 0.63-0.86 us on a browser's
/// seven, 2.2-3.4 times as long. `split_parse` also takes the whole
/// header as UTF-8 and trims Unicode spaces, so it would read `s=1\u{a0}` as
/// `s=1` where the rule above skips that pair.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter(|pair| {
            pair.iter()
                .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        })
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name, value.trim()))
        })
        .take(MAX_COOKIES)
}

/// The name prefix of ltigate's cookies on HTTPS (RFC 6265bis §4.1.3.2): a
/// browser keeps a `__Host-` cookie only if this very host set it, over
/// HTTPS, with `Secure`, `Path=/` and no `Domain`. A sibling or parent domain
/// (`evil.example.edu` beside `lti.example.edu`) can set a plain-named cookie
/// for the parent domain that the browser sends to ltigate too ("cookie
/// tossing": fixing a victim into the attacker's session, or forging a
/// login's state binding); it cannot set a `__Host-` one. Browsers refuse
/// the prefix without `Secure`, so plain HTTP (development) keeps the plain
/// names.
pub const HOST_PREFIX: &str = "__Host-";

/// How ltigate's own cookies are named and written.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub https: bool,
    pub partitioned: bool,
}

impl CookiePolicy {
    /// The browser-side name of ltigate's cookie `base`: `__Host-<base>` on
    /// HTTPS, `base` over plain HTTP.
    pub fn name(&self, base: &str) -> String {
        if self.https {
            format!("{HOST_PREFIX}{base}")
        } else {
            base.to_owned()
        }
    }

    /// The value the browser sent for ltigate's cookie `base` (under
    /// [`Self::name`]; never under another name).
    pub fn read(&self, headers: &HeaderMap, base: &str) -> Option<String> {
        cookie(headers, &self.name(base))
    }

    /// A `Set-Cookie` value for ltigate's cookie `base`, named by [`Self::name`].
    pub fn set(&self, base: &str, value: &str, max_age_sec: u64) -> HeaderValue {
        let age = Duration::seconds(i64::try_from(max_age_sec).unwrap_or(i64::MAX));
        self.render(Cookie::build((self.name(base), value.to_owned())), age)
    }

    /// A `Set-Cookie` value that deletes ltigate's cookie `base`.
    pub fn clear(&self, base: &str) -> HeaderValue {
        self.clear_exact(&self.name(base))
    }

    /// A `Set-Cookie` value that deletes the host-only, `Path=/` cookie
    /// named exactly `name` (a cookie of an earlier version's name, or an
    /// LMS cookie the proxy renamed).
    pub fn clear_exact(&self, name: &str) -> HeaderValue {
        self.render(
            Cookie::build((name.to_owned(), String::new())),
            Duration::ZERO,
        )
    }

    fn render(&self, builder: cookie::CookieBuilder<'static>, age: Duration) -> HeaderValue {
        let builder = builder.path("/").http_only(true).max_age(age);
        let builder = if self.https {
            builder
                .secure(true)
                .same_site(SameSite::None)
                .partitioned(self.partitioned)
        } else {
            builder.same_site(SameSite::Lax)
        };
        // Names and values are base64url or config-validated tokens.
        HeaderValue::from_str(&builder.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("ltigate_invalid=; Max-Age=0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_cookies_work_in_iframes() {
        let p = CookiePolicy {
            https: true,
            partitioned: true,
        };
        let v = p.set("s", "v", 60);
        let v = v.to_str().expect("ascii");
        assert!(v.starts_with("__Host-s=v;"), "{v}");
        for attr in [
            "Secure",
            "HttpOnly",
            "SameSite=None",
            "Partitioned",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(v.contains(attr), "{v} lacks {attr}");
        }
        let unpartitioned = CookiePolicy {
            partitioned: false,
            ..p
        };
        assert!(
            !unpartitioned
                .set("s", "v", 1)
                .to_str()
                .expect("ascii")
                .contains("Partitioned")
        );
    }

    #[test]
    fn http_cookies_fall_back_to_lax() {
        let p = CookiePolicy {
            https: false,
            partitioned: true,
        };
        let v = p.clear("s");
        let v = v.to_str().expect("ascii");
        assert!(v.starts_with("s=;"), "plain HTTP keeps the plain name: {v}");
        assert!(v.contains("SameSite=Lax") && v.contains("Max-Age=0") && !v.contains("Secure"));
        assert!(v.contains("Path=/"), "{v}");
    }

    #[test]
    fn https_names_carry_the_host_prefix_and_read_only_that_name() {
        let p = CookiePolicy {
            https: true,
            partitioned: false,
        };
        assert_eq!(p.name("ltigate_session"), "__Host-ltigate_session");
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("ltigate_session=tossed; __Host-ltigate_session=mine"),
        );
        assert_eq!(p.read(&h, "ltigate_session").as_deref(), Some("mine"));
        let cleared = p.clear_exact("ltigate_session");
        let cleared = cleared.to_str().expect("ascii");
        assert!(
            cleared.starts_with("ltigate_session=;")
                && cleared.contains("Max-Age=0")
                && cleared.contains("Secure"),
            "{cleared}"
        );
    }

    #[test]
    fn reads_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        let c = |name| cookie(&h, name);
        assert_eq!(
            (c("a"), c("c"), c("d")),
            (Some("1".into()), Some("3".into()), None)
        );
    }

    #[test]
    fn malformed_pairs_are_skipped_and_the_first_copy_wins() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static(";junk; =orphan;  s = one ;s=two; e=; q=\"x\""),
        );
        assert_eq!(cookie(&h, "s").as_deref(), Some("one"));
        assert_eq!(cookie(&h, "junk"), None);
        assert_eq!(cookie(&h, ""), None);
        let c = |name| cookie(&h, name);
        assert_eq!(
            (c("e"), c("q")),
            (Some(String::new()), Some("\"x\"".into()))
        );
    }

    #[test]
    fn a_pair_outside_ascii_hides_no_other() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes("x=\u{e9}t\u{e9}; s=one".as_bytes()).expect("header"),
        );
        assert_eq!(cookie(&h, "s").as_deref(), Some("one"));
        assert_eq!(cookie(&h, "x"), None);
        assert_eq!(pairs(&h).count(), 1);
    }

    #[test]
    fn a_pair_edged_with_a_unicode_space_is_skipped() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes("s=one\u{a0}; t=two".as_bytes()).expect("header"),
        );
        assert_eq!(cookie(&h, "s"), None);
        assert_eq!(cookie(&h, "t").as_deref(), Some("two"));
    }

    #[test]
    fn at_most_max_cookies_are_read() {
        let mut h = HeaderMap::new();
        let many: Vec<String> = (0..=MAX_COOKIES).map(|i| format!("c{i}=v")).collect();
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&many.join("; ")).expect("header"),
        );
        let last = format!("c{MAX_COOKIES}");
        assert_eq!(cookie(&h, "c0").as_deref(), Some("v"));
        assert_eq!(cookie(&h, &last), None);
    }
}
