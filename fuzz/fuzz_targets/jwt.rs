//! The launch's id_token: the JWT header and the claims, through the real
//! launch after a real login state is stored. Input, first byte:
//! - `r`: the rest is the id_token as posted (split, base64url, header JSON,
//!   `alg`, `kid`, signature). It is never accepted (no key signed it), and
//!   anything that is not three dot-separated parts is `MalformedToken`.
//! - otherwise: the rest is `header NUL claims` (or claims alone, under a
//!   well-formed header), any bytes, base64url-encoded and signed with the
//!   platform's key, so that the fuzzer reaches every claim check. A launch
//!   that is accepted must have passed each of them: checked here again on
//!   the same JSON.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ltigate::fuzzing::{self as f, Launcher};
use serde_json::Value;

static LAUNCHER: LazyLock<Launcher> = LazyLock::new(Launcher::new);

const LTI: &str = "https://purl.imsglobal.org/spec/lti/claim/";

fn accepted_claims_are_valid(header: &[u8], claims: &[u8]) {
    let header: Value = serde_json::from_slice(header).expect("accepted: header JSON");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], f::PLATFORM_KID);
    let c: serde_json::Map<String, Value> =
        serde_json::from_slice(claims).expect("accepted: claims JSON");
    assert_eq!(c["iss"], f::ISSUER);
    let audiences: Vec<&str> = match &c["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        other => panic!("accepted an aud of {other}"),
    };
    assert!(audiences.contains(&f::CLIENT_ID));
    match c.get("azp") {
        Some(azp) => assert_eq!(azp, f::CLIENT_ID),
        None => assert!(audiences.len() <= 1),
    }
    let time = |name: &str| c.get(name).and_then(Value::as_f64);
    let exp = time("exp").expect("accepted: exp");
    let iat = time("iat").expect("accepted: iat");
    let leeway = f::LEEWAY_SEC as f64;
    assert!(exp + leeway >= f::NOW as f64 - 1.0, "exp {exp}");
    assert!(iat <= (f::NOW + f::LEEWAY_SEC) as f64 + 1.0, "iat {iat}");
    if let Some(nbf) = c.get("nbf") {
        assert!(nbf.as_f64().expect("numeric nbf") <= (f::NOW + f::LEEWAY_SEC) as f64 + 1.0);
    }
    assert_eq!(c["nonce"], f::NONCE);
    assert_eq!(c[&format!("{LTI}deployment_id")], f::DEPLOYMENT_ID);
    assert_eq!(c[&format!("{LTI}version")], "1.3.0");
    assert_eq!(c[&format!("{LTI}message_type")], "LtiResourceLinkRequest");
    assert!(c["sub"].as_str().is_some_and(|s| !s.is_empty()));
    let roles = c[&format!("{LTI}roles")]
        .as_array()
        .expect("accepted: roles");
    assert!(roles.iter().all(Value::is_string));
    let link = &c[&format!("{LTI}resource_link")]["id"];
    assert!(link.as_str().is_some_and(|s| !s.is_empty()));
    assert!(c[&format!("{LTI}target_link_uri")].is_string());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == b'r' {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let refusal = LAUNCHER
            .launch_token(token)
            .expect_err("a token no key signed is refused");
        if token.split('.').count() != 3 {
            assert_eq!(refusal, "MalformedToken", "{token:?}");
        }
        return;
    }
    let well_formed = Launcher::header_json(f::PLATFORM_KID);
    let (header, claims) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (well_formed.as_bytes(), rest),
    };
    let token = LAUNCHER.sign(header, claims);
    if LAUNCHER.launch_token(&token).is_ok() {
        accepted_claims_are_valid(header, claims);
    }
});
