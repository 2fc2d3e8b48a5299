//! ltigate: an LTI 1.3 gateway in front of Open edX.
//!
//! Platforms (Canvas, Moodle, Brightspace, Blackboard) launch through
//! ltigate's LTI endpoints; ltigate verifies each launch, records what the
//! learner may see in a session (on an embedded store or on Redis), and then
//! forwards only the requests those grants allow to the LMS, with a signed
//! identity. Scores flow back to the platform through LTI AGS.
//!
//! Where things live: [`config`] reads `gateway.toml`; [`lti`] holds login and
//! launch; [`content`] the Open edX key grammar; [`gate`] launch gates;
//! [`session`] sessions and grants; [`store`] the two store backends; [`keys`]
//! and [`jwks`] the tool's and the platforms' keys; [`path`], [`rules`],
//! [`assertion`] and [`proxy`] the gated reverse proxy; [`grades`] grade
//! passback; [`deep_linking`] the content picker; [`app`] routing; [`reject`]
//! every error response; [`server`] the listeners; [`logging`] log output.

pub mod app;
pub mod assertion;
pub mod check;
pub mod client;
pub mod clock;
pub mod config;
pub mod content;
pub mod cookies;
pub mod deep_linking;
pub mod form;
pub mod gate;
pub mod grades;
pub mod jwks;
pub mod keygen;
pub mod keys;
pub mod logging;
pub mod lti;
pub mod pages;
pub mod path;
pub mod proxy;
pub mod registry;
pub mod reject;
pub mod rules;
pub mod server;
pub mod session;
pub mod store;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

pub use app::{AppState, handle};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError};
pub use server::{Running, start, start_on};

/// A boxed error, for bodies and the outbound client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Makes aws-lc-rs the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
