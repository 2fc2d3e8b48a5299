//! Assembly: from a validated [`Config`] to a serving gateway.
//!
//! The top of the crate, in the shape of linkerd2-proxy's `app/src/lib.rs`:
//! each subsystem owns its config type and is built from it here, and the
//! HTTP layer's state is the set of services this builds. Nothing below
//! this module knows the whole config.

use std::sync::Arc;
use std::time::Duration;

use crate::assertion::Asserter;
use crate::client::HttpClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::cookies::CookiePolicy;
use crate::course_tree::{BlockAccess, CourseTrees};
use crate::deep_linking::{Catalog, DeepLinking};
use crate::grades::{Grades, Lms};
use crate::http::app::{BlockGate, Gated, Gateway};
use crate::keys::ToolKeys;
use crate::lms_api::LmsApi;
use crate::lti::Lti;
use crate::proxy::{Proxy, PublicSide};
use crate::registry::Registry;
use crate::session::{Sessions, StoreSharing};
use crate::store::{self, StoreConfig, StoreError};

/// The outbound client's connect timeout when there is no `[upstream]` to take it from.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Gateway {
    /// Builds every service from a validated config. Must run inside a
    /// tokio runtime (the store starts its background tasks).
    pub fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StoreError> {
        let Config {
            source: _,
            server,
            store: store_config,
            session,
            jwks,
            keys,
            platforms,
            upstream,
            assertion,
            rules,
            grades,
            deep_linking,
            lms_api,
            block_access,
        } = config;
        let store = store::open(&store_config, clock.clone())?;
        let tool_keys = ToolKeys::new(keys);
        let registry = Arc::new(Registry::new(&platforms, &tool_keys, &jwks));
        let sharing = match store_config {
            StoreConfig::Embedded { .. } => StoreSharing::Private,
            StoreConfig::Redis { .. } => StoreSharing::Shared,
        };
        let cookies = CookiePolicy {
            https: server.is_https(),
            partitioned: session.partitioned_cookies,
        };
        let public_origin = server.public_origin();
        let connect_timeout = upstream
            .as_ref()
            .map_or(DEFAULT_CONNECT_TIMEOUT, |u| u.connect_timeout);
        let client = HttpClient::new(connect_timeout);
        // One LMS API client (one token) for the picker and the block trees.
        let lms_api = lms_api.map(|c| Arc::new(LmsApi::new(c)));
        // The proxy and its asserter exist together: validation requires
        // `[assertion]` (and its key) with `[upstream]`.
        let gated = match (upstream, assertion) {
            (Some(upstream), Some(assertion)) => tool_keys.get(&assertion.key).map(|key| {
                let proxy = Proxy::new(
                    upstream,
                    &assertion,
                    PublicSide {
                        origin: public_origin.clone(),
                        url: &server.public_url,
                        session_cookie: &session.cookie_name,
                        partitioned: session.partitioned_cookies,
                    },
                );
                let asserter = Arc::new(Asserter::new(
                    assertion,
                    key.clone(),
                    public_origin.clone(),
                    clock.clone(),
                ));
                Gated {
                    proxy,
                    asserter,
                    rules,
                    blocks: match (block_access, &lms_api) {
                        (BlockAccess::Course, _) => BlockGate::Course,
                        (BlockAccess::Subtree { cache_ttl }, Some(api)) => BlockGate::Subtree(
                            Arc::new(CourseTrees::new(api.clone(), client.clone(), cache_ttl)),
                        ),
                        // Validation requires [lms_api] for the subtree; without
                        // one, nothing is opened by a block rule (fail closed).
                        (BlockAccess::Subtree { .. }, None) => BlockGate::Unreadable,
                    },
                }
            }),
            _ => None,
        };
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            clock.clone(),
            session,
            sharing,
        ));
        let grades = match (grades, &gated) {
            (Some(config), Some(gated)) => {
                let upstream = gated.proxy.config();
                Some(Arc::new(Grades::new(
                    config,
                    store.clone(),
                    clock.clone(),
                    // A pool of its own: the shared client's connections are
                    // driven by the runtime that opened them, often a serving
                    // thread's (a launch's JWKS fetch from the same platform),
                    // and die with it at shutdown, failing a delivery in
                    // flight on the main runtime before its grace ends.
                    HttpClient::new(connect_timeout),
                    registry.clone(),
                    Lms {
                        asserter: gated.asserter.clone(),
                        origin: upstream.origin(),
                        url: upstream.url.clone(),
                        host: upstream.host.clone(),
                    },
                )))
            }
            _ => None,
        };
        // Validation requires an LMS API client with [deep_linking].
        let deep_linking = deep_linking.zip(lms_api).map(|(config, api)| {
            let catalog = Catalog::new(api, client.clone(), config.cache_ttl);
            Arc::new(DeepLinking::new(
                config,
                store.clone(),
                clock.clone(),
                catalog,
                registry.clone(),
                public_origin.clone(),
                server.allow_http,
            ))
        });
        let lti = Lti::new(
            registry,
            store.clone(),
            clock.clone(),
            client,
            sessions.clone(),
            server.public_url.clone(),
            deep_linking.clone(),
            grades.clone(),
        );
        Ok(Arc::new(Self {
            server,
            lti,
            sessions,
            deep_linking,
            grades,
            gated,
            tool_keys,
            store,
            clock,
            cookies,
        }))
    }
}
