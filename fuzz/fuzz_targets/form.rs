//! The form reader and the launch form, then the launch itself. Input: the
//! first line is the `Content-Type`, the rest the body. Checks: a body is read
//! exactly when the type is a urlencoded form; the pairs round-trip through
//! the urlencoded serializer; each launch field is the first non-empty value
//! of its name; and the launch of that form (its state cookie carrying its
//! own `state`, no login stored) is refused as a platform error, a missing
//! field or an unknown state, never accepted.
#![no_main]

use std::sync::LazyLock;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use ltigate::fuzzing::{self, Launcher};

static LAUNCHER: LazyLock<Launcher> = LazyLock::new(Launcher::new);

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let is_form = HeaderValue::from_bytes(content_type)
        .ok()
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .and_then(|v| v.split(';').next().map(str::to_owned))
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let read = fuzzing::form_pairs(content_type, body);
    assert_eq!(read.is_ok(), is_form, "{read:?}");
    let Ok(pairs) = read else {
        return;
    };

    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let again = fuzzing::form_pairs(content_type, encoded.as_bytes()).expect("a form");
    assert_eq!(again, pairs, "round trip through {encoded:?}");

    let fields = fuzzing::launch_form(pairs.clone());
    for (slot, name) in fields
        .iter()
        .zip(["id_token", "state", "error", "error_description"])
    {
        let first = pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone());
        assert_eq!(slot, &first, "{name}");
    }

    let [id_token, state, error, _] = fields;
    let outcome = LAUNCHER.launch_form(pairs);
    let refusal = outcome.expect_err("a launch without a login is refused");
    let expected = if error.is_some() {
        "PlatformError"
    } else if state.is_none() {
        "MissingField(\"state\")"
    } else if id_token.is_none() {
        "MissingField(\"id_token\")"
    } else if !state.as_deref().is_some_and(fuzzing::is_token) {
        "StateUnknown"
    } else {
        // A well-formed state that no login stored.
        "StateUnknown"
    };
    assert!(
        refusal.starts_with(expected),
        "{refusal} where {expected} was due"
    );
});
