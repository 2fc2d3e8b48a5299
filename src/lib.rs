//! ltigate: an LTI 1.3 gateway in front of Open edX.
//!
//! Platforms (Canvas, Moodle, Brightspace, Blackboard) launch through
//! ltigate's LTI endpoints; ltigate verifies each launch, records what the
//! learner may see in a session (on an embedded store or on Redis), and then
//! forwards only the requests those grants allow to the LMS, with a signed
//! identity. Scores flow back to the platform through LTI AGS.
//!
//! Where things live, from the floor up (a module imports modules below it
//! or beside it on its floor, never above; `tests/architecture.rs` checks
//! that there is no circle):
//! - leaves: `token`, `claims`, `clock`, `path`, `content` (the Open edX
//!   key grammar, on `path`'s percent-decoding), `keys` (the tool's keys), `client` (the one outbound
//!   HTTPS client), `cookies`, `logging`, and `backoff` (on `clock`);
//! - `gate` (launch gates), `store` (the two backends), `jwks` (platforms'
//!   keys);
//! - `session` (sessions, grants, the one access check), `rules`,
//!   `registry` (platforms), `assertion` (the identity the LMS trusts);
//! - the flows, each a service built from its own config: `proxy`,
//!   `grades`, `deep_linking`, and `lti` (login and launch) above them;
//! - `http`: the only layer that knows HTTP (routing, the one error table,
//!   pages, the listeners);
//! - `config` (the file format and its validation, building the owners'
//!   config types), `gateway` (builds the services from a config) and
//!   `cli` (the subcommands);
//! - `fuzzing` (behind the `fuzzing` feature): the fuzz targets' entry
//!   points, on top of everything (see docs/tests.md, "Fuzzing").

mod assertion;
mod backoff;
mod claims;
pub mod cli;
mod client;
mod clock;
mod config;
mod content;
mod cookies;
mod course_tree;
mod deep_linking;
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod gateway;
mod grades;
mod http;
mod jwks;
mod keys;
mod lms_api;
pub mod logging;
mod lti;
mod path;
mod proxy;
mod registry;
mod rules;
mod session;
mod store;
#[cfg(test)]
mod testing;
mod token;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use config::{Config, ConfigError, ProcessEnv, RawConfig, SecretSource};
pub use content::{ContentPath, CourseKey, JWKS_PATH, UsageKey};
pub use cookies::cookie;
pub use http::app::Gateway;
pub use http::server::{Running, ServeError, start, start_on};
pub use jwks::PlatformKey;
pub use keys::{GeneratedKey, KeyError, ToolKey, generate as generate_key};
pub use lti::launch::verify_signature;
pub use path::{NormalPath, normalize as normalize_path};
pub use rules::{Decision, Rule, decide};
pub use session::{
    Grant, LaunchContext, SHARED_CACHE_FOR, Session, Sessions, StoreSharing, UserRef,
};
pub use store::embedded::EmbeddedStore;
pub use store::redis::RedisStore;
pub use store::{Namespace, Store, StoreError, UpdateFn};

/// A boxed error, for bodies and the outbound client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The error a request body fails with when it does not arrive in time
/// (the server's body read deadline). Here, beside [`Body`], because both
/// the HTTP layer (LTI forms, the score API) and the proxy (a forwarded
/// upload) answer it with 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout")]
pub struct BodyTimedOut;

/// A body holding `bytes`.
pub fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Makes aws-lc-rs the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
