//! Builders that several modules' unit tests share. They make real
//! components (a real embedded store in a temporary directory, real RSA
//! keys), never stand-ins. Test code only.

use std::sync::Arc;

use crate::clock::Clock;
use crate::keys::{ToolKey, generate};
use crate::session::{LaunchContext, SessionConfig};
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;

/// A fresh embedded store on `clock`; it lives as long as the directory.
pub fn embedded_store(clock: Arc<dyn Clock>) -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("store.redb"), clock).expect("store");
    (Arc::new(store), dir)
}

/// A freshly generated RSA key, loaded the way the config loads one.
pub fn rsa_key(kid: &str) -> ToolKey {
    let generated = generate(kid).expect("generate");
    ToolKey::from_pem(kid, None, generated.private_pem.as_bytes()).expect("load")
}

/// The context of a plain resource-link launch from deployment `d`, with no
/// optional claims.
pub fn launch_context() -> LaunchContext {
    LaunchContext {
        deployment_id: "d".into(),
        message_type: "LtiResourceLinkRequest".into(),
        name: None,
        given_name: None,
        family_name: None,
        email: None,
        locale: None,
        roles: vec![],
        context: None,
        resource_link: None,
        ags_endpoint: None,
    }
}

/// Session settings for tests: an hour's session, grants as long as it.
pub fn session_config() -> SessionConfig {
    SessionConfig {
        cookie_name: "ltigate_session".into(),
        lifetime_sec: 3600,
        access_length_sec: None,
        login_state_ttl_sec: 600,
        leeway_sec: 60,
        partitioned_cookies: false,
        max_grants: 10,
        lms_logout_path: None,
    }
}
