//! `ltigate check`: what an operator gives each platform, from a valid config.

use std::fmt::Write as _;

use crate::config::{Config, KeySetSource, StoreConfig};
use crate::content::{DEEP_LINKING_LAUNCH_PATH, JWKS_PATH, LAUNCH_PATH, LOGIN_PATH};

/// Renders the report printed by `ltigate check`.
pub fn report(config: &Config) -> String {
    let origin = config.server.public_origin();
    let mut out = String::new();
    let _ = writeln!(out, "Configuration OK: {}", config.source.display());
    let _ = writeln!(out, "  listen:      {}", config.server.listen);
    let _ = writeln!(out, "  public URL:  {origin}");
    let _ = writeln!(
        out,
        "  TLS:         {}",
        if config.server.tls.is_some() {
            "terminated by ltigate"
        } else {
            "off (plain HTTP)"
        }
    );
    let _ = match &config.store {
        StoreConfig::Embedded { path } => {
            writeln!(out, "  store:       embedded ({})", path.display())
        }
        StoreConfig::Redis { key_prefix, .. } => {
            writeln!(out, "  store:       redis (key prefix {key_prefix:?})")
        }
    };
    match &config.upstream {
        Some(u) => {
            let _ = writeln!(
                out,
                "  upstream:    {} (display path {})",
                u.origin(),
                u.display_path
            );
            let _ = writeln!(out, "  rules:       {} gating rules", config.rules.len());
            if config.rules.is_empty() {
                let _ = writeln!(
                    out,
                    "               (none: only the display path is forwarded)"
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  upstream:    none (the display path only confirms a grant)"
            );
        }
    }
    let _ = writeln!(out, "\nGive each platform these values:");
    let _ = writeln!(out, "  OIDC login initiation URL: {origin}{LOGIN_PATH}");
    let _ = writeln!(out, "  Redirect URI:              {origin}{LAUNCH_PATH}");
    let _ = writeln!(
        out,
        "  Target link URI pattern:   {origin}{LAUNCH_PATH}<course_key>/<usage_key>"
    );
    let _ = writeln!(
        out,
        "  Deep linking URL:          {origin}{DEEP_LINKING_LAUNCH_PATH} (once deep linking is enabled)"
    );
    let _ = writeln!(out, "  Public JWK set URL:        {origin}{JWKS_PATH}");
    let mut orgs: Vec<&str> = config.keys.iter().filter_map(|k| k.org()).collect();
    orgs.sort_unstable();
    orgs.dedup();
    for org in orgs {
        let _ = writeln!(
            out,
            "  JWK set URL for org {org}:  {origin}/lti/1p3/pub/orgs/{org}/jwks/"
        );
    }
    let _ = writeln!(out, "\nTool keys: {}", config.keys.len());
    for k in &config.keys {
        let _ = writeln!(
            out,
            "  - kid {:?}{}",
            k.kid(),
            k.org().map(|o| format!(" (org {o})")).unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\nPlatforms: {}", config.platforms.len());
    for p in &config.platforms {
        let _ = writeln!(
            out,
            "  - {:?}{}: issuer {:?}, client_id {:?}",
            p.title,
            if p.active { "" } else { " (inactive)" },
            p.issuer,
            p.client_id
        );
        let _ = writeln!(
            out,
            "    deployments: {}",
            p.deployment_ids
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            out,
            "    key set: {}",
            match &p.key_set {
                KeySetSource::Url(u) => u.to_string(),
                KeySetSource::Inline(_) => "inline".to_owned(),
            }
        );
        let _ = writeln!(
            out,
            "    launch gate: {}",
            match &p.gate {
                None => "none (any content may be launched)".to_owned(),
                Some(g) if g.is_empty() => "empty (nothing may be launched)".to_owned(),
                Some(g) => format!(
                    "{} keys, {} courses, {} orgs",
                    g.allowed_keys.len(),
                    g.allowed_courses.len(),
                    g.allowed_orgs.len()
                ),
            }
        );
    }
    if config.platforms.is_empty() {
        let _ = writeln!(
            out,
            "  (none yet: add a [[platforms]] entry to launch content)"
        );
    }
    out
}
