//! `ltigate check`: what an operator gives each platform, from a valid config.

use std::fmt::Write as _;

use crate::config::Config;
use crate::content::{DEEP_LINKING_LAUNCH_PATH, JWKS_PATH, LAUNCH_PATH, LOGIN_PATH};
use crate::jwks::KeySetSource;
use crate::store::StoreConfig;

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
    for warning in warnings(config) {
        let _ = writeln!(out, "\nWarning: {warning}");
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

/// What is valid but will hurt in production.
fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = &config.upstream
        && u.display_path.starts_with("/xblock/")
    {
        out.push(format!(
            "display_path is {}, Open edX's stock render_xblock, which answers 404 to a learner \
             who is not enrolled in the course. Keep the LMS app's enrollment on \
             (LTIGATE_ENROLLMENT_MODE, default audit), or use its view, /ltigate/xblock/{{usage_key}} \
             (the default), which renders either way.",
            u.display_path
        ));
    }
    let public_host = config.server.public_url.host_str().unwrap_or_default();
    if let Some(u) = &config.upstream
        && u.shares_cookies_with(public_host)
    {
        out.push(format!(
            "the public host {public_host} is under the LMS's session cookie domain {} \
             ([upstream] cookie_domain, or host). Browsers logged into the LMS send it their \
             LMS session (ltigate never forwards it), and an LMS csrftoken set on that domain \
             (CSRF_COOKIE_DOMAIN) would shadow the one ltigate gives the page. Move ltigate to \
             a host outside it, for example lti-lms.example.edu or lti.example.edu beside \
             lms.example.edu.",
            u.cookie_domain.as_deref().unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(public_url: &str, upstream: &str) -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = crate::keys::generate("k").expect("key");
        let key_path = dir.path().join("k.pem");
        std::fs::write(&key_path, &key.private_pem).expect("write key");
        let text = format!(
            "[server]\npublic_url = \"{public_url}\"\n\n\
             [[keys]]\nkid = \"k\"\nprivate_key_file = \"{}\"\n\n\
             [upstream]\nurl = \"http://lms:8000\"\nblock_access = \"course\"\n{upstream}\n\n\
             [assertion]\nusername_key = \"0123456789abcdef0123\"\n",
            key_path.display()
        );
        Config::parse(
            &text,
            &dir.path().join("gateway.toml"),
            &HashMap::<String, String>::new(),
        )
        .expect("config")
    }

    #[test]
    fn warns_when_the_public_host_is_under_the_lms_cookie_domain() {
        let under = report(&config(
            "https://lti.lms.example.edu",
            "host = \"lms.example.edu\"",
        ));
        assert!(
            under.contains("Warning: the public host lti.lms.example.edu is under the LMS's session cookie domain lms.example.edu"),
            "{under}"
        );
        let beside = report(&config(
            "https://lti.example.edu",
            "host = \"lms.example.edu\"",
        ));
        assert!(!beside.contains("Warning"), "{beside}");
        let set = report(&config(
            "https://lti.example.edu",
            "host = \"lms.example.edu\"\ncookie_domain = \"example.edu\"",
        ));
        assert!(set.contains("cookie domain example.edu"), "{set}");
    }

    #[test]
    fn warns_about_the_stock_display_path_only() {
        let stock = report(&config(
            "https://lti.example.edu",
            "display_path = \"/xblock/{usage_key}\"",
        ));
        assert!(
            stock.contains(
                "Warning: display_path is /xblock/{usage_key}, Open edX's stock render_xblock"
            ),
            "{stock}"
        );
        let default = report(&config("https://lti.example.edu", ""));
        assert!(!default.contains("Warning"), "{default}");
    }
}
