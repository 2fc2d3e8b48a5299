//! The HTTP layer: the only part of ltigate that knows HTTP requests and
//! responses (the proxy aside, whose job is forwarding them).
//!
//! [`app`] routes the public listener and holds the state (the services);
//! [`score_api`] routes the internal listener; both turn every error into a
//! response through [`reject`], the one table of reason codes. [`form`]
//! reads forms, [`pages`] and [`picker_pages`] render HTML, and [`server`]
//! runs the listeners.

pub mod app;
pub mod form;
pub mod pages;
pub mod picker_pages;
pub mod reject;
pub mod score_api;
pub mod server;

use http::{HeaderValue, Response};
use rand::RngCore as _;

/// A request's id: 64 random bits as 16 hex digits, returned to the client,
/// sent upstream and logged.
pub struct RequestId([u8; 16]);

impl RequestId {
    pub fn new() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bits = rand::rng().next_u64();
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((bits >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(digits)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Returns the id to the client in `X-Request-Id`.
    pub fn stamp<B>(&self, response: &mut Response<B>) {
        if let Ok(v) = HeaderValue::from_str(self.as_str()) {
            response
                .headers_mut()
                .insert(crate::proxy::REQUEST_ID_HEADER, v);
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}
