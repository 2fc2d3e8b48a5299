//! Pins every rule of [`Config::from_raw`] with inline TOML.
//!
//! Each test writes its key files into its own temp dir and names a config
//! path inside it, so relative paths resolve there. Secrets come from a map,
//! never from the process environment. Every refusal is checked to name the
//! config file and the offending key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::*;

/// One RSA key for every test: generation is slow.
fn pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| crate::keys::generate("k").expect("generate").private_pem)
}

/// The public JWK of [`pem`], as a platform would publish it.
fn platform_jwk() -> serde_json::Value {
    ToolKey::from_pem("p1", None, pem().as_bytes())
        .expect("load")
        .public_jwk()
        .clone()
}

/// A TOML literal string holding `doc` as JSON (for `key_set`).
fn inline_json(doc: &serde_json::Value) -> String {
    format!("'''{doc}'''")
}

type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];

/// Renders one table: `defaults`, then `overrides` (a `None` removes the field).
/// Values are TOML literals.
fn table(header: &str, defaults: &[(&str, &str)], overrides: Overrides<'_>) -> String {
    let mut fields: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in overrides {
        fields.retain(|(f, _)| f != k);
        if let Some(v) = v {
            fields.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    let mut out = format!("{header}\n");
    for (k, v) in fields {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out.push('\n');
    out
}

fn server(overrides: Overrides<'_>) -> String {
    table(
        "[server]",
        &[("public_url", "\"https://lti.example.com\"")],
        overrides,
    )
}

fn key(overrides: Overrides<'_>) -> String {
    table(
        "[[keys]]",
        &[("kid", "\"k\""), ("private_key_file", "\"k.pem\"")],
        overrides,
    )
}

fn platform(overrides: Overrides<'_>) -> String {
    table(
        "[[platforms]]",
        &[
            ("issuer", "\"https://canvas.example.com\""),
            ("client_id", "\"c1\""),
            ("auth_login_url", "\"https://canvas.example.com/auth\""),
            ("auth_token_url", "\"https://canvas.example.com/token\""),
            ("key_set_url", "\"https://canvas.example.com/jwks\""),
            ("key", "\"k\""),
            ("deployment_ids", "[\"d1\"]"),
        ],
        overrides,
    )
}

/// A platform with a `[platforms.gate]` table holding `gate`.
fn gated(gate: &str) -> String {
    format!("{}[platforms.gate]\n{gate}\n", platform(&[]))
}

/// The minimal valid config: a server URL and one key file.
fn minimal() -> String {
    with_server(&[])
}

/// The minimal config with `[server]` overrides.
fn with_server(overrides: Overrides<'_>) -> String {
    format!("{}{}", server(overrides), key(&[]))
}

/// The minimal config with `[[keys]]` overrides.
fn with_key(overrides: Overrides<'_>) -> String {
    format!("{}{}", server(&[]), key(overrides))
}

/// The minimal config plus `rest` (more tables).
fn with(rest: &str) -> String {
    format!("{}{rest}", minimal())
}

/// A temp dir with `k.pem` in it and a config path `gateway.toml` beside it.
struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    secrets: HashMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("k.pem"), pem()).expect("write key");
        let path = dir.path().join("gateway.toml");
        Self {
            dir,
            path,
            secrets: HashMap::new(),
        }
    }

    fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_owned(), value.to_owned());
        self
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &self.path, &self.secrets)
    }

    #[track_caller]
    fn ok(&self, text: &str) -> Config {
        match self.parse(text) {
            Ok(c) => c,
            Err(e) => panic!("config refused: {e}\n--- config ---\n{text}"),
        }
    }

    /// Asserts a validation refusal at exactly `key`, named in the message with the file.
    #[track_caller]
    fn refused(&self, text: &str, key: &str) -> ConfigError {
        let err = match self.parse(text) {
            Ok(_) => panic!("config accepted, expected a refusal at `{key}`:\n{text}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.key, key, "wrong key in: {shown}");
        assert_eq!(err.file, self.path, "wrong file in: {shown}");
        assert!(
            shown.contains(&self.path.display().to_string()),
            "the message does not name the file: {shown}"
        );
        assert!(
            shown.contains(&format!("`{key}`")),
            "the message does not name `{key}`: {shown}"
        );
        err
    }

    /// Asserts a parse refusal of an unknown field, named in the message with the file.
    #[track_caller]
    fn unknown(&self, text: &str, field: &str) {
        let err = match self.parse(text) {
            Ok(_) => panic!("config with unknown field `{field}` accepted:\n{text}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert!(
            shown.contains(&self.path.display().to_string()),
            "the message does not name the file: {shown}"
        );
        assert!(
            shown.contains(&format!("unknown field `{field}`")),
            "the message does not name `{field}`: {shown}"
        );
    }
}

// ---------------------------------------------------------------------------
// The minimal config and its defaults

#[test]
fn minimal_config_and_its_defaults() {
    let f = Fixture::new();
    let c = f.ok(&minimal());
    assert_eq!(c.source, f.path);

    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.public_url.as_str(), "https://lti.example.com/");
    assert_eq!(c.server.public_origin(), "https://lti.example.com");
    assert!(c.server.is_https());
    assert!(!c.server.allow_http);
    assert!(c.server.tls.is_none());
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(20));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(20));
    assert_eq!(c.server.body_min_bytes_per_sec, 32 * 1024);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.server.http2_keep_alive_interval, Duration::from_secs(20));
    assert_eq!(c.server.http2_max_concurrent_streams, 100);
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.max_connections_per_ip, 256);

    match &c.store {
        StoreConfig::Embedded { path } => {
            assert_eq!(path, &f.dir().join("data/ltigate.redb"));
        }
        other => panic!("expected the embedded store, got {other:?}"),
    }

    assert_eq!(c.session.cookie_name, "ltigate_session");
    assert_eq!(c.session.lifetime_sec, 8 * 3600);
    assert_eq!(c.session.access_length_sec, None);
    assert_eq!(c.session.login_state_ttl_sec, 600);
    assert_eq!(c.session.leeway_sec, 60);
    assert!(c.session.partitioned_cookies);
    assert_eq!(c.session.max_grants, 64);

    assert_eq!(c.jwks.cache_ttl, Duration::from_secs(300));
    assert_eq!(c.jwks.min_refetch_interval, Duration::from_secs(2));
    assert_eq!(c.jwks.fetch_timeout, Duration::from_secs(5));

    assert_eq!(c.keys.len(), 1);
    assert_eq!(c.keys[0].kid(), "k");
    assert_eq!(c.keys[0].org(), None);
    assert_eq!(c.keys[0].public_jwk()["alg"], "RS256");
    assert!(c.platforms.is_empty());
}

#[test]
fn every_field_set_explicitly() {
    let f = Fixture::new();
    let text = format!(
        "{}{}{}{}{}",
        server(&[
            ("listen", Some("\"0.0.0.0:9443\"")),
            ("public_url", Some("\"https://lti.example.com:9443/\"")),
            ("allow_http", Some("false")),
            ("header_read_timeout_sec", Some("3")),
            ("tls_handshake_timeout_sec", Some("4")),
            ("shutdown_grace_sec", Some("0")),
            ("body_read_timeout_sec", Some("5")),
            ("body_min_bytes_per_sec", Some("0")),
            ("idle_timeout_sec", Some("6")),
            ("http2_keep_alive_interval_sec", Some("7")),
            ("http2_max_concurrent_streams", Some("8")),
            ("max_connections", Some("9")),
            ("max_connections_per_ip", Some("9")),
        ]),
        table(
            "[store]",
            &[
                ("kind", "\"redis\""),
                ("url", "\"redis://127.0.0.1:6379/\""),
                ("key_prefix", "\"gw1:\""),
            ],
            &[],
        ),
        table(
            "[session]",
            &[
                ("cookie_name", "\"gw-session\""),
                ("lifetime_sec", "100"),
                ("access_length_sec", "50"),
                ("login_state_ttl_sec", "30"),
                ("leeway_sec", "0"),
                ("partitioned_cookies", "false"),
                ("max_grants", "2"),
            ],
            &[],
        ),
        table(
            "[jwks]",
            &[
                ("cache_ttl_sec", "7"),
                ("min_refetch_interval_sec", "1"),
                ("fetch_timeout_sec", "2"),
            ],
            &[],
        ),
        key(&[("org", Some("\"OrgX\""))]),
    );
    let c = f.ok(&text);
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9443");
    assert_eq!(c.server.public_origin(), "https://lti.example.com:9443");
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(3));
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(4));
    assert_eq!(c.server.shutdown_grace, Duration::ZERO);
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(5));
    assert_eq!(c.server.body_min_bytes_per_sec, 0);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(6));
    assert_eq!(c.server.http2_keep_alive_interval, Duration::from_secs(7));
    assert_eq!(c.server.http2_max_concurrent_streams, 8);
    assert_eq!(c.server.max_connections, 9);
    assert_eq!(c.server.max_connections_per_ip, 9);
    match &c.store {
        StoreConfig::Redis {
            url, key_prefix, ..
        } => {
            assert_eq!(url, "redis://127.0.0.1:6379/");
            assert_eq!(key_prefix, "gw1:");
        }
        other => panic!("expected redis, got {other:?}"),
    }
    assert_eq!(c.session.cookie_name, "gw-session");
    assert_eq!(c.session.lifetime_sec, 100);
    assert_eq!(c.session.access_length_sec, Some(50));
    assert_eq!(c.session.login_state_ttl_sec, 30);
    assert_eq!(c.session.leeway_sec, 0);
    assert!(!c.session.partitioned_cookies);
    assert_eq!(c.session.max_grants, 2);
    assert_eq!(c.jwks.cache_ttl, Duration::from_secs(7));
    assert_eq!(c.jwks.min_refetch_interval, Duration::from_secs(1));
    assert_eq!(c.jwks.fetch_timeout, Duration::from_secs(2));
    assert_eq!(c.keys[0].org(), Some("OrgX"));
}

#[test]
fn platform_defaults() {
    let f = Fixture::new();
    let c = f.ok(&with(&platform(&[])));
    let p = &c.platforms[0];
    assert_eq!(p.title, "https://canvas.example.com");
    assert!(p.active);
    assert_eq!(p.issuer, "https://canvas.example.com");
    assert_eq!(p.client_id, "c1");
    assert_eq!(p.auth_login_url.as_str(), "https://canvas.example.com/auth");
    assert_eq!(
        p.auth_token_url.as_str(),
        "https://canvas.example.com/token"
    );
    assert_eq!(p.auth_audience, None);
    assert!(
        matches!(&p.key_set, KeySetSource::Url(u) if u.as_str() == "https://canvas.example.com/jwks")
    );
    assert_eq!(p.key, "k");
    assert_eq!(p.deployment_ids.iter().collect::<Vec<_>>(), ["d1"]);
    assert_eq!(p.org, None);
    assert!(p.gate.is_none());

    let c = f.ok(&with(&platform(&[
        ("title", Some("\"Canvas\"")),
        ("active", Some("false")),
        (
            "auth_audience",
            Some("\"https://canvas.example.com/token\""),
        ),
        ("deployment_ids", Some("[\"d2\", \"d1\", \"d2\"]")),
    ])));
    let p = &c.platforms[0];
    assert_eq!(p.title, "Canvas");
    assert!(!p.active);
    assert_eq!(
        p.auth_audience.as_deref(),
        Some("https://canvas.example.com/token")
    );
    assert_eq!(p.deployment_ids.iter().collect::<Vec<_>>(), ["d1", "d2"]);
}

// ---------------------------------------------------------------------------
// Unknown and missing keys: refused while parsing

#[test]
fn unknown_top_level_key_refused() {
    let f = Fixture::new();
    f.unknown(&format!("colour = \"blue\"\n{}", minimal()), "colour");
    f.unknown(&with("[proxy]\nupstream = \"x\"\n"), "proxy");
}

#[test]
fn unknown_server_key_refused() {
    let f = Fixture::new();
    f.unknown(&with_server(&[("listne", Some("\"x\""))]), "listne");
}

#[test]
fn unknown_store_key_refused() {
    let f = Fixture::new();
    f.unknown(
        &with("[store]\nkind = \"embedded\"\nfile = \"x\"\n"),
        "file",
    );
}

#[test]
fn unknown_session_key_refused() {
    let f = Fixture::new();
    f.unknown(&with("[session]\nlifetime = 3600\n"), "lifetime");
}

#[test]
fn unknown_jwks_key_refused() {
    let f = Fixture::new();
    f.unknown(&with("[jwks]\nttl = 3\n"), "ttl");
}

#[test]
fn unknown_keys_entry_key_refused() {
    let f = Fixture::new();
    f.unknown(&with_key(&[("private_key", Some("\"x\""))]), "private_key");
}

#[test]
fn unknown_platform_key_refused() {
    let f = Fixture::new();
    f.unknown(
        &with(&platform(&[("deployment_id", Some("\"d1\""))])),
        "deployment_id",
    );
}

#[test]
fn unknown_gate_key_refused() {
    let f = Fixture::new();
    f.unknown(
        &with(&gated("allowed_course = [\"course-v1:OrgX+CS101+2026\"]")),
        "allowed_course",
    );
}

#[test]
fn required_fields_refused_when_missing() {
    let f = Fixture::new();
    let file = f.path.display().to_string();
    let err = f.parse(&key(&[])).expect_err("no [server]");
    assert!(err.to_string().contains("server"), "{err}");
    let err = f
        .parse(&format!("[server]\nlisten = \"127.0.0.1:1\"\n{}", key(&[])))
        .expect_err("no public_url");
    assert!(err.to_string().contains("public_url"), "{err}");
    let err = f
        .parse(&with(&platform(&[("client_id", None)])))
        .expect_err("no client_id");
    assert!(err.to_string().contains("client_id"), "{err}");
    assert!(err.to_string().contains(&file), "{err}");
}

// ---------------------------------------------------------------------------
// [server]

#[test]
fn bad_listen_address_refused() {
    let f = Fixture::new();
    for bad in ["localhost", "127.0.0.1", ":8080", "127.0.0.1:99999"] {
        f.refused(
            &with_server(&[("listen", Some(&format!("{bad:?}")))]),
            "server.listen",
        );
    }
}

#[test]
fn http_public_url_needs_allow_http() {
    let f = Fixture::new();
    let http = Some("\"http://localhost:8080\"");
    let err = f.refused(&with_server(&[("public_url", http)]), "server.public_url");
    assert!(err.message.contains("allow_http"), "{err}");

    let c = f.ok(&with_server(&[
        ("public_url", http),
        ("allow_http", Some("true")),
    ]));
    assert!(c.server.allow_http);
    assert!(!c.server.is_https());
    assert_eq!(c.server.public_origin(), "http://localhost:8080");

    // allow_http does not make https URLs less acceptable.
    let c = f.ok(&with_server(&[("allow_http", Some("true"))]));
    assert!(c.server.is_https());
}

#[test]
fn public_url_must_be_scheme_and_host_only() {
    let f = Fixture::new();
    for bad in [
        "https://lti.example.com/lti",
        "https://lti.example.com/lti/",
        "https://lti.example.com/?tenant=1",
        "https://lti.example.com/#top",
        "https://user:pw@lti.example.com",
        "ftp://lti.example.com",
        "not a url",
        "",
    ] {
        f.refused(
            &with_server(&[("public_url", Some(&format!("{bad:?}")))]),
            "server.public_url",
        );
    }
    // A trailing slash is the same origin.
    let c = f.ok(&with_server(&[(
        "public_url",
        Some("\"https://lti.example.com/\""),
    )]));
    assert_eq!(c.server.public_origin(), "https://lti.example.com");
}

#[test]
fn tls_cert_and_key_come_together() {
    let f = Fixture::new();
    std::fs::write(f.dir().join("cert.pem"), "cert").expect("write");
    std::fs::write(f.dir().join("key.pem"), "key").expect("write");
    let cert = ("tls_cert", Some("\"cert.pem\""));
    let key = ("tls_key", Some("\"key.pem\""));

    f.refused(&with_server(&[cert]), "server.tls_key");
    f.refused(&with_server(&[key]), "server.tls_cert");

    let tls = f.ok(&with_server(&[cert, key])).server.tls.expect("tls");
    assert_eq!(tls.cert, f.dir().join("cert.pem"));
    assert_eq!(tls.key, f.dir().join("key.pem"));
}

#[test]
fn missing_tls_files_refused() {
    let f = Fixture::new();
    std::fs::write(f.dir().join("cert.pem"), "cert").expect("write");
    std::fs::write(f.dir().join("key.pem"), "key").expect("write");
    let cert = ("tls_cert", Some("\"cert.pem\""));
    let key = ("tls_key", Some("\"key.pem\""));

    let no_cert = ("tls_cert", Some("\"nocert.pem\""));
    let err = f.refused(&with_server(&[no_cert, key]), "server.tls_cert");
    assert!(err.message.contains("nocert.pem"), "{err}");

    let no_key = ("tls_key", Some("\"nokey.pem\""));
    let err = f.refused(&with_server(&[cert, no_key]), "server.tls_key");
    assert!(err.message.contains("nokey.pem"), "{err}");

    // A directory is not a file.
    let dir = ("tls_cert", Some("\".\""));
    f.refused(&with_server(&[dir, key]), "server.tls_cert");
}

#[test]
fn zero_server_timeouts_refused() {
    let f = Fixture::new();
    for field in [
        "header_read_timeout_sec",
        "tls_handshake_timeout_sec",
        "body_read_timeout_sec",
        "idle_timeout_sec",
        "http2_keep_alive_interval_sec",
        "http2_max_concurrent_streams",
        "max_connections",
        "max_connections_per_ip",
    ] {
        let err = f.refused(
            &with_server(&[(field, Some("0"))]),
            &format!("server.{field}"),
        );
        assert!(
            err.message.contains("greater than 0") || err.message.contains("between 1 and"),
            "{err}"
        );
    }
}

#[test]
fn connection_bounds_are_checked_together() {
    let f = Fixture::new();
    // A per-client bound above the global one is a mistake.
    let err = f.refused(
        &with_server(&[
            ("max_connections", Some("10")),
            ("max_connections_per_ip", Some("11")),
        ]),
        "server.max_connections_per_ip",
    );
    assert!(err.message.contains("server.max_connections (10)"), "{err}");
    // A small global bound lowers the default per-client one with it.
    let c = f.ok(&with_server(&[("max_connections", Some("100"))]));
    assert_eq!(c.server.max_connections_per_ip, 100);
}

// ---------------------------------------------------------------------------
// [store]

#[test]
fn store_embedded_path_resolves_against_the_config_dir() {
    let f = Fixture::new();
    let c = f.ok(&with(
        "[store]\nkind = \"embedded\"\npath = \"st/gw.redb\"\n",
    ));
    assert!(
        matches!(&c.store, StoreConfig::Embedded { path } if path == &f.dir().join("st/gw.redb"))
    );
    let c = f.ok(&with("[store]\npath = \"/var/lib/ltigate/gw.redb\"\n"));
    assert!(
        matches!(&c.store, StoreConfig::Embedded { path } if path == Path::new("/var/lib/ltigate/gw.redb"))
    );
}

#[test]
fn store_redis_defaults() {
    let f = Fixture::new();
    let c = f.ok(&with(
        "[store]\nkind = \"redis\"\nurl = \"redis://r:6379/2\"\n",
    ));
    match &c.store {
        StoreConfig::Redis {
            url,
            key_prefix,
            ca_pem,
        } => {
            assert_eq!(url, "redis://r:6379/2");
            assert_eq!(key_prefix, DEFAULT_KEY_PREFIX);
            assert_eq!(ca_pem, &None);
        }
        other => panic!("expected redis, got {other:?}"),
    }
}

#[test]
fn store_redis_ca_file_resolves_against_the_config_dir_and_is_loaded() {
    let f = Fixture::new();
    let pem = rcgen::generate_simple_self_signed(vec!["redis.internal".to_owned()])
        .expect("certificate")
        .cert
        .pem();
    std::fs::create_dir(f.dir().join("tls")).expect("mkdir");
    std::fs::write(f.dir().join("tls/ca.pem"), &pem).expect("write");
    let c = f.ok(&with(
        "[store]\nkind = \"redis\"\nurl = \"rediss://redis.internal/\"\nca_file = \"tls/ca.pem\"\n",
    ));
    match &c.store {
        StoreConfig::Redis { ca_pem, .. } => assert_eq!(ca_pem.as_deref(), Some(pem.as_bytes())),
        other => panic!("expected redis, got {other:?}"),
    }
}

#[test]
fn store_redis_ca_file_without_tls_refused() {
    let f = Fixture::new();
    let err = f.refused(
        &with("[store]\nkind = \"redis\"\nurl = \"redis://r/\"\nca_file = \"ca.pem\"\n"),
        "store.ca_file",
    );
    assert!(err.message.contains("rediss://"), "{err}");
}

#[test]
fn store_redis_ca_file_unreadable_or_not_a_certificate_refused() {
    let f = Fixture::new();
    let config = "[store]\nkind = \"redis\"\nurl = \"rediss://r/\"\nca_file = \"ca.pem\"\n";
    let err = f.refused(&with(config), "store.ca_file");
    assert!(err.message.contains("cannot read"), "{err}");
    // A private key is PEM, but not a certificate.
    std::fs::copy(f.dir().join("k.pem"), f.dir().join("ca.pem")).expect("copy");
    let err = f.refused(&with(config), "store.ca_file");
    assert!(err.message.contains("no readable PEM certificate"), "{err}");
}

#[test]
fn store_redis_insecure_tls_refused() {
    // redis-rs would skip the certificate check for `#insecure`.
    let f = Fixture::new();
    let err = f.refused(
        &with("[store]\nkind = \"redis\"\nurl = \"rediss://r/#insecure\"\n"),
        "store.url",
    );
    assert!(err.message.contains("store.ca_file"), "{err}");
}

#[test]
fn store_embedded_with_ca_file_refused() {
    let f = Fixture::new();
    f.refused(&with("[store]\nca_file = \"ca.pem\"\n"), "store.ca_file");
}

#[test]
fn store_redis_without_url_refused() {
    let f = Fixture::new();
    f.refused(&with("[store]\nkind = \"redis\"\n"), "store.url");
}

#[test]
fn store_redis_with_a_bad_url_refused() {
    let f = Fixture::new();
    f.refused(
        &with("[store]\nkind = \"redis\"\nurl = \"http://r:6379/\"\n"),
        "store.url",
    );
}

#[test]
fn store_redis_with_path_refused() {
    let f = Fixture::new();
    f.refused(
        &with("[store]\nkind = \"redis\"\nurl = \"redis://r/\"\npath = \"x.redb\"\n"),
        "store.path",
    );
}

#[test]
fn store_unknown_kind_refused() {
    let f = Fixture::new();
    let err = f.refused(&with("[store]\nkind = \"memcached\"\n"), "store.kind");
    assert!(err.message.contains("memcached"), "{err}");
}

#[test]
fn store_embedded_with_url_refused() {
    let f = Fixture::new();
    f.refused(&with("[store]\nurl = \"redis://r/\"\n"), "store.url");
}

#[test]
fn store_embedded_with_key_prefix_refused_naming_key_prefix() {
    // The refusal must name the field that is actually set.
    let f = Fixture::new();
    f.refused(
        &with("[store]\nkind = \"embedded\"\nkey_prefix = \"gw:\"\n"),
        "store.key_prefix",
    );
}

// ---------------------------------------------------------------------------
// [session] and [jwks]

#[test]
fn zero_session_values_refused() {
    let f = Fixture::new();
    for field in [
        "lifetime_sec",
        "access_length_sec",
        "login_state_ttl_sec",
        "max_grants",
    ] {
        let err = f.refused(
            &with(&format!("[session]\n{field} = 0\n")),
            &format!("session.{field}"),
        );
        assert!(err.message.contains("greater than 0"), "{err}");
    }
}

#[test]
fn zero_jwks_values_refused() {
    let f = Fixture::new();
    for field in [
        "cache_ttl_sec",
        "min_refetch_interval_sec",
        "fetch_timeout_sec",
    ] {
        f.refused(
            &with(&format!("[jwks]\n{field} = 0\n")),
            &format!("jwks.{field}"),
        );
    }
}

#[test]
fn bad_cookie_names_refused() {
    let f = Fixture::new();
    for bad in [
        "",
        "my session",
        "sess;ion",
        "ltigate_state",
        "ltigate_state_x",
        "ltigate_dl_x",
        "__Host-s",
        "__host-s",
        "__Secure-s",
    ] {
        f.refused(
            &with(&format!("[session]\ncookie_name = {bad:?}\n")),
            "session.cookie_name",
        );
    }
    let c = f.ok(&with("[session]\ncookie_name = \"Gw_sess-1\"\n"));
    assert_eq!(c.session.cookie_name, "Gw_sess-1");
}

#[test]
fn lms_logout_path_defaults_to_the_lms_app_and_can_be_turned_off() {
    let f = Fixture::new();
    let c = f.ok(&minimal());
    assert_eq!(
        c.session.lms_logout_path.as_deref(),
        Some("/ltigate/logout")
    );
    let c = f.ok(&with("[session]\nlms_logout_path = \"\"\n"));
    assert_eq!(c.session.lms_logout_path, None);
    let c = f.ok(&with(
        "[session]\nlms_logout_path = \"/lms/ltigate/logout\"\n",
    ));
    assert_eq!(
        c.session.lms_logout_path.as_deref(),
        Some("/lms/ltigate/logout")
    );
    for bad in [
        "ltigate/logout",
        "/logout?next=/",
        "/a b",
        "https://lms/logout",
    ] {
        f.refused(
            &with(&format!("[session]\nlms_logout_path = {bad:?}\n")),
            "session.lms_logout_path",
        );
    }
}

// ---------------------------------------------------------------------------
// [[keys]]

#[test]
fn no_keys_refused() {
    let f = Fixture::new();
    let err = f.refused(&server(&[]), "keys");
    assert!(err.message.contains("ltigate keygen"), "{err}");
}

#[test]
fn missing_key_file_refused() {
    let f = Fixture::new();
    let text = with_key(&[("private_key_file", Some("\"absent.pem\""))]);
    let err = f.refused(&text, "keys[0].private_key_file");
    let absent = f.dir().join("absent.pem");
    assert!(err.message.contains(&absent.display().to_string()), "{err}");
    assert!(!absent.exists());
}

#[test]
fn key_file_that_is_not_a_key_refused() {
    let f = Fixture::new();
    std::fs::write(f.dir().join("junk.pem"), "not a key").expect("write");
    f.refused(
        &with_key(&[("private_key_file", Some("\"junk.pem\""))]),
        "keys[0].private_key_file",
    );
}

#[test]
fn second_key_is_named_by_index() {
    let f = Fixture::new();
    let second = key(&[
        ("kid", Some("\"k2\"")),
        ("private_key_file", Some("\"absent.pem\"")),
    ]);
    f.refused(&with(&second), "keys[1].private_key_file");
}

#[test]
fn generate_if_missing_creates_the_key_then_reuses_it() {
    let f = Fixture::new();
    let text = with_key(&[
        ("kid", Some("\"gen\"")),
        ("private_key_file", Some("\"data/keys/gen.pem\"")),
        ("generate_if_missing", Some("true")),
    ]);
    let file = f.dir().join("data/keys/gen.pem");
    assert!(!file.exists());
    // Validation only reads key files: it refuses, and writes nothing.
    f.refused(&text, "keys[0].private_key_file");
    assert!(!file.exists(), "validation wrote {}", file.display());

    let raw = RawConfig::parse(&text, &f.path).expect("parse");
    assert_eq!(missing_generated_keys(&raw, &f.path).len(), 1);
    crate::cli::keygen::generate_missing(&raw, &f.path).expect("generate");
    let first = f.ok(&text);
    assert!(file.is_file(), "no key written to {}", file.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let written = std::fs::read(&file).expect("read");
    let loaded = ToolKey::from_pem("gen", None, &written).expect("the written key loads");
    assert_eq!(loaded.public_jwk(), first.keys[0].public_jwk());

    let raw = RawConfig::parse(&text, &f.path).expect("parse");
    assert!(missing_generated_keys(&raw, &f.path).is_empty());
    crate::cli::keygen::generate_missing(&raw, &f.path).expect("generate");
    let second = f.ok(&text);
    let reread = std::fs::read(&file).expect("read");
    assert_eq!(reread, written, "the key was regenerated");
    assert_eq!(second.keys[0].public_jwk(), first.keys[0].public_jwk());
}

#[test]
fn generate_if_missing_false_does_not_create() {
    let f = Fixture::new();
    let text = with_key(&[
        ("private_key_file", Some("\"absent.pem\"")),
        ("generate_if_missing", Some("false")),
    ]);
    f.refused(&text, "keys[0].private_key_file");
    assert!(!f.dir().join("absent.pem").exists());
}

const FROM_ENV: Overrides<'static> = &[
    ("private_key_file", None),
    ("private_key_env", Some("\"LTIGATE_TEST_KEY\"")),
];

#[test]
fn private_key_env_comes_from_the_secret_source() {
    let f = Fixture::new().with_secret("LTIGATE_TEST_KEY", pem());
    let c = f.ok(&with_key(FROM_ENV));
    let from_file = ToolKey::from_pem("k", None, pem().as_bytes()).expect("load");
    assert_eq!(c.keys[0].public_jwk(), from_file.public_jwk());
}

#[test]
fn unset_private_key_env_refused() {
    let f = Fixture::new().with_secret("LTIGATE_OTHER_KEY", pem());
    let err = f.refused(&with_key(FROM_ENV), "keys[0].private_key_env");
    assert!(err.message.contains("LTIGATE_TEST_KEY"), "{err}");
}

#[test]
fn private_key_env_that_is_not_a_key_refused_naming_private_key_env() {
    // The key came from the environment, so that is the field to name.
    let f = Fixture::new().with_secret("LTIGATE_TEST_KEY", "not a key");
    f.refused(&with_key(FROM_ENV), "keys[0].private_key_env");
}

#[test]
fn both_or_neither_key_source_refused() {
    let f = Fixture::new().with_secret("LTIGATE_TEST_KEY", pem());
    let both = with_key(&[("private_key_env", Some("\"LTIGATE_TEST_KEY\""))]);
    let err = f.refused(&both, "keys[0].private_key_file");
    assert!(err.message.contains("exactly one"), "{err}");

    let neither = with_key(&[("private_key_file", None)]);
    f.refused(&neither, "keys[0].private_key_file");
}

#[test]
fn duplicate_or_empty_kid_refused() {
    let f = Fixture::new();
    f.refused(&with(&key(&[])), "keys[1].kid");
    f.refused(&with_key(&[("kid", Some("\"\""))]), "keys[0].kid");
    // The same file under two kids is fine.
    let c = f.ok(&with(&key(&[("kid", Some("\"k2\""))])));
    assert_eq!(c.keys.len(), 2);
}

#[test]
fn bad_key_org_refused() {
    let f = Fixture::new();
    for bad in ["", "Org X", "Org/X", "Org+X"] {
        f.refused(
            &with_key(&[("org", Some(&format!("{bad:?}")))]),
            "keys[0].org",
        );
    }
    let c = f.ok(&with_key(&[("org", Some("\"Org_X-1.a~b\""))]));
    assert_eq!(c.keys[0].org(), Some("Org_X-1.a~b"));
}

#[test]
fn relative_key_paths_resolve_against_the_config_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("etc/ltigate");
    std::fs::create_dir_all(sub.join("keys")).expect("mkdir");
    std::fs::write(sub.join("keys/k.pem"), pem()).expect("write");
    let path = sub.join("gateway.toml");
    let relative = with_key(&[("private_key_file", Some("\"keys/k.pem\""))]);
    // The process's working directory has no keys/k.pem; only the config's has.
    assert!(!Path::new("keys/k.pem").exists());
    let c = Config::parse(&relative, &path, &HashMap::new()).expect("relative key path");
    assert_eq!(c.keys[0].kid(), "k");

    // An absolute path is taken as is.
    let abs = format!("{:?}", sub.join("keys/k.pem").display().to_string());
    let absolute = with_key(&[("private_key_file", Some(&abs))]);
    let elsewhere = dir.path().join("other/gateway.toml");
    Config::parse(&absolute, &elsewhere, &HashMap::new()).expect("absolute key path");

    // And the relative path is not found from another config dir.
    let err = Config::parse(&relative, &elsewhere, &HashMap::new()).expect_err("wrong dir");
    assert_eq!(err.key, "keys[0].private_key_file");
}

// ---------------------------------------------------------------------------
// [[platforms]]

#[test]
fn platform_naming_an_unknown_key_refused() {
    let f = Fixture::new();
    let err = f.refused(
        &with(&platform(&[("key", Some("\"nope\""))])),
        "platforms[0].key",
    );
    assert!(err.message.contains("nope"), "{err}");
}

#[test]
fn empty_issuer_or_client_id_refused() {
    let f = Fixture::new();
    f.refused(
        &with(&platform(&[("issuer", Some("\"\""))])),
        "platforms[0].issuer",
    );
    f.refused(
        &with(&platform(&[("client_id", Some("\"\""))])),
        "platforms[0].client_id",
    );
}

#[test]
fn duplicate_issuer_and_client_id_refused() {
    let f = Fixture::new();
    let again = platform(&[("title", Some("\"again\""))]);
    let text = with(&format!("{}{again}", platform(&[])));
    f.refused(&text, "platforms[1].client_id");
}

#[test]
fn same_issuer_with_different_client_ids_is_fine() {
    let f = Fixture::new();
    let text = with(&format!(
        "{}{}{}",
        platform(&[]),
        platform(&[("client_id", Some("\"c2\""))]),
        platform(&[("issuer", Some("\"https://moodle.example.com\""))]),
    ));
    let c = f.ok(&text);
    assert_eq!(c.platforms.len(), 3);
    assert_eq!(c.platforms[1].client_id, "c2");
    assert_eq!(c.platforms[2].client_id, "c1");
}

#[test]
fn later_platform_errors_name_their_index() {
    let f = Fixture::new();
    let bad = platform(&[("client_id", Some("\"c2\"")), ("key", Some("\"nope\""))]);
    let text = with(&format!("{}{bad}", platform(&[])));
    f.refused(&text, "platforms[1].key");
}

#[test]
fn non_https_platform_urls_refused_unless_allow_http() {
    let f = Fixture::new();
    let allow_http = with_server(&[("allow_http", Some("true"))]);
    for field in ["auth_login_url", "auth_token_url", "key_set_url"] {
        let at = format!("platforms[0].{field}");
        let plain = platform(&[(field, Some("\"http://canvas.example.com/x\""))]);
        let err = f.refused(&with(&plain), &at);
        assert!(err.message.contains("allow_http"), "{err}");
        f.ok(&format!("{allow_http}{plain}"));

        // Other schemes are refused even with allow_http.
        let ftp = platform(&[(field, Some("\"ftp://canvas.example.com/x\""))]);
        f.refused(&format!("{allow_http}{ftp}"), &at);

        let junk = platform(&[(field, Some("\"canvas\""))]);
        f.refused(&with(&junk), &at);
    }
}

#[test]
fn key_set_url_and_key_set_both_or_neither_refused() {
    let f = Fixture::new();
    let doc = inline_json(&serde_json::json!({ "keys": [platform_jwk()] }));
    let both = platform(&[("key_set", Some(&doc))]);
    f.refused(&with(&both), "platforms[0].key_set_url");
    let neither = platform(&[("key_set_url", None)]);
    f.refused(&with(&neither), "platforms[0].key_set_url");
}

#[test]
fn inline_key_set_accepted() {
    let f = Fixture::new();
    let doc = inline_json(&serde_json::json!({ "keys": [platform_jwk()] }));
    let inline = platform(&[("key_set_url", None), ("key_set", Some(&doc))]);
    let c = f.ok(&with(&inline));
    match &c.platforms[0].key_set {
        KeySetSource::Inline(doc) => assert_eq!(doc["keys"][0]["kid"], "p1"),
        other => panic!("expected an inline key set, got {other:?}"),
    }
}

#[test]
fn inline_key_set_that_is_not_json_refused() {
    let f = Fixture::new();
    let inline = platform(&[
        ("key_set_url", None),
        ("key_set", Some("'''{\"keys\": [}'''")),
    ]);
    let err = f.refused(&with(&inline), "platforms[0].key_set");
    assert!(err.message.contains("JSON"), "{err}");
}

#[test]
fn inline_key_set_without_a_usable_key_refused() {
    let f = Fixture::new();
    let jwk = platform_jwk();
    let mut no_kid = jwk.clone();
    no_kid.as_object_mut().expect("object").remove("kid");
    let mut enc = jwk.clone();
    enc["use"] = "enc".into();
    let mut hs = jwk.clone();
    hs["alg"] = "HS256".into();
    let ec = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": "e1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    });
    for doc in [
        serde_json::json!({}),
        serde_json::json!({ "keys": [] }),
        serde_json::json!([jwk]),
        serde_json::json!({ "keys": [no_kid] }),
        serde_json::json!({ "keys": [enc] }),
        serde_json::json!({ "keys": [hs] }),
        serde_json::json!({ "keys": [ec] }),
    ] {
        let doc = inline_json(&doc);
        let inline = platform(&[("key_set_url", None), ("key_set", Some(&doc))]);
        f.refused(&with(&inline), "platforms[0].key_set");
    }
}

#[test]
fn empty_deployment_ids_refused() {
    let f = Fixture::new();
    for ids in [Some("[]"), Some("[\"\"]"), Some("[\"d1\", \"\"]"), None] {
        f.refused(
            &with(&platform(&[("deployment_ids", ids)])),
            "platforms[0].deployment_ids",
        );
    }
}

#[test]
fn platform_org_must_be_well_formed_and_match_its_key() {
    let f = Fixture::new();
    f.refused(
        &with(&platform(&[("org", Some("\"Org X\""))])),
        "platforms[0].org",
    );

    let org_key = key(&[("kid", Some("\"ka\"")), ("org", Some("\"OrgA\""))]);
    let for_org = |org: &str| {
        let org = format!("{org:?}");
        with(&format!(
            "{org_key}{}",
            platform(&[("key", Some("\"ka\"")), ("org", Some(&org))])
        ))
    };
    let err = f.refused(&for_org("OrgB"), "platforms[0].key");
    assert!(err.message.contains("org"), "{err}");

    let c = f.ok(&for_org("OrgA"));
    assert_eq!(c.platforms[0].org.as_deref(), Some("OrgA"));

    // A key without an org may serve a platform of any org.
    let c = f.ok(&with(&platform(&[("org", Some("\"OrgB\""))])));
    assert_eq!(c.platforms[0].org.as_deref(), Some("OrgB"));
}

// ---------------------------------------------------------------------------
// [platforms.gate]

#[test]
fn gate_accepts_well_formed_lists() {
    let f = Fixture::new();
    let c = f.ok(&with(&gated(
        r#"allowed_keys = ["block-v1:OrgX+CS101+2026+type@problem+block@p1"]
allowed_courses = ["course-v1:OrgX+CS101+2026"]
allowed_orgs = ["OrgY"]
block_filter = ["problem", "html"]
course_block_filter = { "course-v1:OrgX+CS101+2026" = ["video"] }
org_block_filter = { OrgY = ["html"] }
"#,
    )));
    let gate = c.platforms[0].gate.as_ref().expect("gate");
    assert_eq!(gate.allowed_keys.len(), 1);
    assert_eq!(gate.allowed_courses.len(), 1);
    assert!(gate.allowed_orgs.contains("OrgY"));
    assert!(gate.block_filter.is_some());
    assert_eq!(gate.course_block_filter.len(), 1);
    assert_eq!(gate.org_block_filter.len(), 1);
}

#[test]
fn empty_gate_is_kept_and_allows_nothing() {
    let f = Fixture::new();
    let c = f.ok(&with(&gated("")));
    let gate = c.platforms[0]
        .gate
        .as_ref()
        .expect("an empty gate is a gate");
    assert!(gate.is_empty());
}

#[test]
fn gate_with_a_malformed_usage_key_refused() {
    let f = Fixture::new();
    for bad in [
        "block-v1:OrgX+CS101+2026+type@problem",
        "course-v1:OrgX+CS101+2026",
        "block-v1:OrgX+CS101+2026+type@problem+block@p/1",
        "i4x://OrgX/CS101/problem/p1",
    ] {
        let err = f.refused(
            &with(&gated(&format!("allowed_keys = [{bad:?}]"))),
            "platforms[0].gate.allowed_keys",
        );
        assert!(err.message.contains(bad), "{err}");
    }
}

#[test]
fn gate_with_a_malformed_course_key_refused() {
    let f = Fixture::new();
    for bad in [
        "course-v1:OrgX+CS101",
        "OrgX/CS101/2026",
        "course-v1:OrgX+CS 101+2026",
        "block-v1:OrgX+CS101+2026+type@problem+block@p1",
    ] {
        f.refused(
            &with(&gated(&format!("allowed_courses = [{bad:?}]"))),
            "platforms[0].gate.allowed_courses",
        );
    }
}

#[test]
fn gate_with_a_malformed_org_refused() {
    let f = Fixture::new();
    for bad in ["", "Org X", "Org+X", "Org/X"] {
        f.refused(
            &with(&gated(&format!("allowed_orgs = [{bad:?}]"))),
            "platforms[0].gate.allowed_orgs",
        );
    }
}

#[test]
fn gate_block_filter_with_bad_type_names_refused() {
    let f = Fixture::new();
    for bad in ["", "type@problem", "problem+html", "x/y"] {
        f.refused(
            &with(&gated(&format!("block_filter = [\"html\", {bad:?}]"))),
            "platforms[0].gate.block_filter",
        );
    }
}

#[test]
fn gate_block_filter_with_characters_outside_the_key_grammar_refused() {
    // A block type can only ever match if it is a usage-key component
    // (letters, digits, '_', '-', '~', '.', ':'); anything else is a typo
    // that silently filters out every block.
    let f = Fixture::new();
    for bad in ["problem html", "problem,", "vidéo", "html\n"] {
        f.refused(
            &with(&gated(&format!("block_filter = [{bad:?}]"))),
            "platforms[0].gate.block_filter",
        );
    }
}

#[test]
fn gate_course_block_filter_refuses_bad_courses_and_types() {
    let f = Fixture::new();
    f.refused(
        &with(&gated("course_block_filter = { \"CS101\" = [\"html\"] }")),
        "platforms[0].gate.course_block_filter.CS101",
    );
    f.refused(
        &with(&gated(
            "course_block_filter = { \"course-v1:OrgX+CS101+2026\" = [\"type@html\"] }",
        )),
        "platforms[0].gate.course_block_filter.course-v1:OrgX+CS101+2026",
    );
}

#[test]
fn gate_org_block_filter_refuses_bad_orgs_and_types() {
    let f = Fixture::new();
    f.refused(
        &with(&gated("org_block_filter = { \"Org X\" = [\"html\"] }")),
        "platforms[0].gate.org_block_filter.Org X",
    );
    f.refused(
        &with(&gated("org_block_filter = { OrgX = [\"\"] }")),
        "platforms[0].gate.org_block_filter.OrgX",
    );
}

// ---------------------------------------------------------------------------
// [upstream]

/// The end of an `[upstream]` table (course-wide block access, which needs
/// no `[lms_api]`), then an `[assertion]`.
const UPSTREAM_KEY: &str =
    "block_access = \"course\"\n[assertion]\nusername_key = \"0123456789abcdef0123\"\n";

#[test]
fn upstream_display_path_defaults_to_the_lms_apps_view() {
    let f = Fixture::new();
    let c = f.ok(&with(&format!(
        "[upstream]\nurl = \"http://lms:8000\"\n{UPSTREAM_KEY}"
    )));
    let u = c.upstream.expect("upstream");
    // The LMS app's view renders for learners who are not enrolled; the
    // stock /xblock/ (render_xblock with check_if_enrolled) 404s for them.
    assert_eq!(u.display_path, "/ltigate/xblock/{usage_key}");
    assert_eq!(u.cookie_domain, None, "no host, no cookie domain");
}

#[test]
fn upstream_cookie_domain_defaults_to_the_host_and_matches_subdomains() {
    let f = Fixture::new();
    let c = f.ok(&with(&format!(
        "[upstream]\nurl = \"http://lms:8000\"\nhost = \"LMS.example.com:443\"\n{UPSTREAM_KEY}"
    )));
    let u = c.upstream.expect("upstream");
    assert_eq!(u.cookie_domain.as_deref(), Some("lms.example.com"));
    assert!(u.shares_cookies_with("lti.lms.example.com"));
    assert!(u.shares_cookies_with("LMS.example.com"));
    assert!(!u.shares_cookies_with("lti.example.com"));
    assert!(
        !u.shares_cookies_with("xlms.example.com"),
        "a label boundary"
    );

    let c = f.ok(&with(&format!(
        "[upstream]\nurl = \"http://lms:8000\"\nhost = \"lms.example.com\"\n\
         cookie_domain = \".example.com\"\n{UPSTREAM_KEY}"
    )));
    let u = c.upstream.expect("upstream");
    assert_eq!(u.cookie_domain.as_deref(), Some("example.com"));
    assert!(u.shares_cookies_with("lti.example.com"));

    for bad in ["", "lms.example.com:443", "a b", "http://x"] {
        f.refused(
            &with(&format!(
                "[upstream]\nurl = \"http://lms:8000\"\ncookie_domain = \"{bad}\"\n{UPSTREAM_KEY}"
            )),
            "upstream.cookie_domain",
        );
    }
}

// ---------------------------------------------------------------------------
// [grades]

fn grades(more: &str) -> String {
    with(&format!(
        "[upstream]\nurl = \"http://lms:8000\"\n{UPSTREAM_KEY}\n\
         [grades]\ntoken = \"score-api-token-0123\"\n{more}\n"
    ))
}

#[test]
fn grades_concurrency_defaults_and_bounds() {
    let f = Fixture::new();
    let g = f.ok(&grades("")).grades.expect("grades");
    assert_eq!((g.concurrent_per_platform, g.concurrent_total), (4, 32));
    let g = f
        .ok(&grades("concurrent_per_platform = 1\nconcurrent_total = 1"))
        .grades
        .expect("grades");
    assert_eq!((g.concurrent_per_platform, g.concurrent_total), (1, 1));
    f.refused(
        &grades("concurrent_per_platform = 0"),
        "grades.concurrent_per_platform",
    );
    f.refused(&grades("concurrent_total = 0"), "grades.concurrent_total");
    let err = f.refused(
        &grades("concurrent_per_platform = 8\nconcurrent_total = 4"),
        "grades.concurrent_per_platform",
    );
    assert!(
        err.to_string().contains("grades.concurrent_total (4)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// [lms_api] and [upstream] block_access

fn upstream_with(block_access: &str, rest: &str) -> String {
    with(&format!(
        "[upstream]\nurl = \"http://lms:8000\"\n{block_access}\n\
         [assertion]\nusername_key = \"0123456789abcdef0123\"\n{rest}"
    ))
}

#[test]
fn subtree_block_access_is_the_default_and_needs_an_lms_api() {
    let f = Fixture::new();
    let err = f.refused(&upstream_with("", ""), "upstream.block_access");
    let shown = err.to_string();
    assert!(
        shown.contains("[lms_api]") && shown.contains("block_access = \"course\""),
        "{shown}"
    );
    let c = f.ok(&upstream_with(
        "",
        "[lms_api]\nclient_id = \"ltigate\"\nclient_secret = \"s3cret\"\n",
    ));
    assert_eq!(
        c.block_access,
        BlockAccess::Subtree {
            cache_ttl: std::time::Duration::from_secs(300)
        }
    );
    let lms = c.lms_api.expect("lms_api");
    assert_eq!(
        lms.url.as_str(),
        "http://lms:8000/",
        "defaults to the upstream"
    );
    assert_eq!(lms.client_secret, "s3cret");
    let c = f.ok(&upstream_with("block_access = \"course\"", ""));
    assert_eq!(c.block_access, BlockAccess::Course);
    assert!(c.lms_api.is_none());
    f.refused(
        &upstream_with("block_access = \"org\"", ""),
        "upstream.block_access",
    );
    f.refused(
        &upstream_with(
            "",
            "[lms_api]\nclient_id = \"ltigate\"\nclient_secret = \"s\"\ntree_cache_ttl_sec = 0\n",
        ),
        "lms_api.tree_cache_ttl_sec",
    );
}

#[test]
fn the_lms_api_client_is_validated_where_it_is_written() {
    let f = Fixture::new().with_secret("LMS_SECRET", "from-env");
    let course = "block_access = \"course\"";
    f.refused(
        &upstream_with(course, "[lms_api]\nclient_secret = \"s\"\n"),
        "lms_api.client_id",
    );
    f.refused(
        &upstream_with(
            course,
            "[lms_api]\nclient_id = \"c\"\nclient_secret_env = \"UNSET\"\n",
        ),
        "lms_api.client_secret_env",
    );
    let c = f.ok(&upstream_with(
        course,
        "[lms_api]\nurl = \"https://lms.example.edu\"\nclient_id = \"c\"\nclient_secret_env = \"LMS_SECRET\"\n",
    ));
    let lms = c.lms_api.expect("lms_api");
    assert_eq!(
        (lms.url.as_str(), lms.client_secret.as_str()),
        ("https://lms.example.edu/", "from-env")
    );
    // [deep_linking] without a client anywhere names what is missing, in
    // the keys it has always had; with its lms_* keys, they are the client.
    f.refused(
        &upstream_with(course, "[deep_linking]\nlms_client_id = \"c\"\n"),
        "deep_linking.lms_client_secret",
    );
    let c = f.ok(&upstream_with(
        "",
        "[deep_linking]\nlms_client_id = \"c\"\nlms_client_secret = \"s\"\n",
    ));
    assert_eq!(c.lms_api.expect("from [deep_linking]").client_id, "c");
    assert!(c.deep_linking.is_some());
    f.refused(
        &upstream_with(
            "",
            "[lms_api]\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             [deep_linking]\nlms_client_id = \"c\"\nlms_client_secret = \"s\"\n",
        ),
        "deep_linking.lms_client_id",
    );
}
