//! Unguessable tokens: login states, nonces, picker tokens, CSRF values.
//!
//! Owns how a token is made and what a well-formed one looks like. Every
//! token that reaches the gateway from outside is checked with [`is_token`]
//! before it is used as a store key; nothing here touches the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// A fresh unguessable token: 256 bits from the OS-seeded CSPRNG, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True if `s` has the shape of a token from [`random_token`] or a session
/// id (`session::new_session_id`). Anything else is dropped
/// before it reaches the store.
pub fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = random_token();
        assert!(is_token(&a));
        assert_ne!(a, random_token());
        assert!(!is_token("short"));
        assert!(!is_token(&format!("{}=", &a[..42])));
    }
}
