//! Checks of `deploy/` against the real `ltigate` binary: the Tutor plugin's
//! templates (rendered by `deploy/tutor/render_check.py` with Jinja2), the
//! docker compose config, the config in the Kubernetes ConfigMap, and the
//! systemd unit.
//!
//! Python 3 is required (Jinja2 and PyYAML are used from it when importable,
//! otherwise installed into a venv under the target dir). `kubectl` and
//! `systemd-analyze` are optional: without them their part prints a note and
//! the rest still runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Secrets the deploy configs read from the environment (`*_env` keys).
const SECRETS: &[(&str, &str)] = &[
    (
        "LTIGATE_SCORE_API_TOKEN",
        "deploy-test-score-api-token-0123",
    ),
    ("LTIGATE_USERNAME_KEY", "deploy-test-username-key-0123456"),
    ("LTIGATE_OAUTH2_SECRET", "deploy-test-oauth2-secret-012345"),
    (
        "LTIGATE_LMS_CLIENT_SECRET",
        "deploy-test-lms-client-secret-01",
    ),
];

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to completion; panics with its output unless it succeeds.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The binary, with a clean environment for the variables it reads.
fn ltigate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ltigate"));
    cmd.env_remove("LTIGATE_CONFIG")
        .env_remove("LTIGATE_LOG_FORMAT")
        .env("LTIGATE_LOG", "warn");
    for (name, _) in SECRETS {
        cmd.env_remove(name);
    }
    cmd
}

/// Writes `<dir>/<kid>.pem` with `ltigate keygen`.
fn keygen(dir: &Path, kid: &str) {
    run_ok(ltigate().args(["keygen", "--kid", kid, "--out"]).arg(dir));
}

/// `ltigate check` on `config` with the secrets set; returns its report.
fn check(config: &Path) -> String {
    let mut cmd = ltigate();
    cmd.arg("check").arg("--config").arg(config);
    for (name, value) in SECRETS {
        cmd.env(name, value);
    }
    text(&run_ok(&mut cmd).stdout)
}

fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: missing {needle:?} in:\n{haystack}"
    );
}

fn parse_toml(text: &str, what: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_else(|e| panic!("{what} is not TOML: {e}"))
}

/// `table.a.b...` as a string.
fn str_at<'a>(table: &'a toml::Table, path: &[&str], what: &str) -> &'a str {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut t = table;
    for key in parents {
        t = t
            .get(*key)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("{what}: no [{key}] table"));
    }
    t.get(*last)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no string {}", path.join(".")))
}

/// The deploy configs must ship the same gating rules as the repository's
/// gateway.toml.
fn assert_shipped_rules(config: &toml::Table, what: &str) {
    let shipped = parse_toml(&read(&repo("gateway.toml")), "gateway.toml");
    let expected = shipped.get("rules").expect("gateway.toml has [[rules]]");
    assert_eq!(
        config.get("rules"),
        Some(expected),
        "{what}: [[rules]] differ from the repository's gateway.toml"
    );
}

/// Every `LTIGATE_*` setting the Tutor plugin gives the LMS is one that the
/// LMS-side app documents.
fn assert_lms_settings_documented(settings: &str) {
    let readme = read(&repo("deploy/openedx/README.md"));
    let names: Vec<&str> = settings
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(name, _)| name.trim())
        .filter(|name| name.starts_with("LTIGATE_"))
        .collect();
    assert!(names.len() >= 5, "too few LMS settings: {names:?}");
    for name in names {
        assert_contains(
            &readme,
            &format!("`{name}`"),
            "deploy/openedx/README.md (the LMS settings the Tutor plugin sets)",
        );
    }
}

// ---------------------------------------------------------------------------
// Python with Jinja2 and PyYAML, for render_check.py

const PY_IMPORTS: &str = "import jinja2, yaml";

/// A Python interpreter that imports jinja2 and yaml: `python3` itself when it
/// can, otherwise a venv under the target dir with both installed by pip.
fn python() -> PathBuf {
    let system = PathBuf::from("python3");
    let probe = Command::new(&system)
        .args(["-c", PY_IMPORTS])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the Tutor template check ({e}): install Python 3")
        });
    if probe.success() {
        return system;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-venv");
    let venv_python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", PY_IMPORTS])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&venv_python) {
        return venv_python;
    }
    // Build it beside, then rename into place: concurrent test runs sharing the
    // target dir never see a half-built venv.
    let building = venv.with_file_name(format!("deploy-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    run_ok(Command::new(&system).args(["-m", "venv"]).arg(&building));
    run_ok(
        Command::new(building.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--timeout", "60"])
            .args(["jinja2>=3", "pyyaml>=6"]),
    );
    if std::fs::rename(&building, &venv).is_err() {
        // Another run won the race (or a broken venv is in the way).
        let _ = std::fs::remove_dir_all(&building);
        if !ready(&venv_python) {
            panic!(
                "{} exists but cannot import jinja2 and yaml: remove it",
                venv.display()
            );
        }
    }
    venv_python
}

// ---------------------------------------------------------------------------
// Tutor plugin

#[test]
fn tutor_plugin_renders_configs_that_ltigate_accepts() {
    let out = tempfile::tempdir().expect("tempdir");
    run_ok(
        Command::new(python())
            .arg(repo("deploy/tutor/render_check.py"))
            .arg(out.path()),
    );

    let cases = ["defaults", "redis-https", "replicas-platforms"];
    for case in cases {
        let dir = out.path().join(case);
        let rendered = read(&dir.join("gateway.toml"));
        // In the container, /var/lib/ltigate is the persistent volume.
        let data = dir.join("data");
        keygen(&data.join("keys"), "ltigate-1");
        let local = rendered.replace("/var/lib/ltigate/", &format!("{}/", data.display()));
        let config_path = dir.join("gateway.local.toml");
        write(&config_path, &local);
        let report = check(&config_path);

        let what = format!("the Tutor gateway.toml ({case})");
        let config = parse_toml(&rendered, &what);
        assert_shipped_rules(&config, &what);
        assert_eq!(
            str_at(&config, &["server", "listen"], &what),
            "0.0.0.0:8080"
        );
        assert_eq!(
            str_at(&config, &["upstream", "url"], &what),
            "http://lms:8000"
        );
        assert_eq!(
            str_at(&config, &["upstream", "host"], &what),
            "local.openedx.io"
        );
        assert_eq!(
            str_at(&config, &["grades", "listen"], &what),
            "0.0.0.0:8081"
        );
        assert_eq!(
            str_at(&config, &["grades", "token_env"], &what),
            "LTIGATE_SCORE_API_TOKEN"
        );
        assert_eq!(
            str_at(&config, &["assertion", "username_key_env"], &what),
            "LTIGATE_USERNAME_KEY"
        );

        let patches = dir.join("patches");
        let settings = read(&patches.join("openedx-lms-common-settings"));
        for line in [
            r#"LTIGATE_JWKS_URL = "http://ltigate:8080/lti/1p3/pub/jwks/""#,
            r#"LTIGATE_SCORE_API_URL = "http://ltigate:8081/scores""#,
            r#"LTIGATE_AUDIENCE = "openedx""#,
        ] {
            assert_contains(&settings, line, &what);
        }
        assert_lms_settings_documented(&settings);
        let public_url = str_at(&config, &["server", "public_url"], &what);
        assert_contains(
            &settings,
            &format!("LTIGATE_ISSUER = \"{public_url}\""),
            &what,
        );
        let caddy = read(&patches.join("caddyfile"));
        let host = public_url.split("://").nth(1).expect("scheme");
        assert_contains(&caddy, &format!("{host}{{$default_site_port}}"), &what);
        assert_contains(&caddy, "ltigate:8080", &what);

        match case {
            "defaults" => {
                assert_contains(&report, "store:       embedded (", &what);
                assert_contains(&report, "public URL:  http://lti-local.openedx.io", &what);
                assert_contains(&report, "Platforms: 0", &what);
                let compose = read(&patches.join("local-docker-compose-services"));
                assert!(
                    !compose.contains("redis"),
                    "{what}: no Redis dependency without Redis:\n{compose}"
                );
            }
            "redis-https" => {
                assert_contains(&report, "store:       redis", &what);
                assert_contains(
                    &report,
                    "public URL:  https://lti.courses.example.edu",
                    &what,
                );
                assert_eq!(
                    str_at(&config, &["store", "url"], &what),
                    "redis://ltigate:s3cr3t%2Bpw@redis:6379/0"
                );
                let compose = read(&patches.join("local-docker-compose-services"));
                assert_contains(&compose, r#"depends_on: ["permissions", "redis"]"#, &what);
            }
            "replicas-platforms" => {
                // Two replicas use Redis even though LTIGATE_STORE is embedded.
                assert_contains(&report, "store:       redis", &what);
                assert_contains(&report, "Platforms: 2", &what);
                assert_contains(&report, "launch gate: 0 keys, 1 courses, 1 orgs", &what);
                let session = config["session"].as_table().expect("[session]");
                assert_eq!(
                    session.get("access_length_sec"),
                    Some(&toml::Value::Integer(3600))
                );
                assert_eq!(
                    str_at(&config, &["lms_api", "client_secret_env"], &what),
                    "LTIGATE_OAUTH2_SECRET"
                );
                let deployments = read(&patches.join("k8s-deployments"));
                assert_contains(&deployments, "replicas: 2", &what);
                let dockerfile = read(&patches.join("openedx-dockerfile-post-python-requirements"));
                assert_contains(&dockerfile, "install 'ltigate-openedx==0.1.0'", &what);
                let lms_task = read(&dir.join("tasks/lms.sh"));
                assert_contains(&lms_task, "create_dot_application", &what);
            }
            other => unreachable!("case {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// docker compose

#[test]
fn compose_config_passes_check() {
    let compose = read(&repo("deploy/docker-compose.yml"));
    // The compose file mounts the config checked here and the secrets dir as keys/.
    assert_contains(
        &compose,
        "./compose/gateway.toml:/etc/ltigate/gateway.toml:ro",
        "docker-compose.yml",
    );
    assert_contains(
        &compose,
        "./compose/secrets:/etc/ltigate/keys:ro",
        "docker-compose.yml",
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config_text = read(&repo("deploy/compose/gateway.toml"));
    let config_path = dir.path().join("gateway.toml");
    write(&config_path, &config_text);
    keygen(&dir.path().join("keys"), "ltigate-1");
    let report = check(&config_path);
    assert_contains(&report, "store:       redis", "deploy/compose/gateway.toml");

    let config = parse_toml(&config_text, "deploy/compose/gateway.toml");
    assert_shipped_rules(&config, "deploy/compose/gateway.toml");
    assert_eq!(
        str_at(&config, &["store", "url"], "compose"),
        "redis://redis:6379/0",
        "the store is the compose file's redis service"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

/// The literal block scalar `key: |` of a YAML file, dedented.
fn block_scalar(yaml: &str, key: &str) -> String {
    let header = format!("{key}: |");
    let mut lines = yaml.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no `{header}` block in the YAML"));
    let mut indent = None;
    let mut out = String::new();
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let this = line.len() - line.trim_start().len();
        let block = *indent.get_or_insert(this);
        if this < block {
            break;
        }
        out.push_str(&line[block..]);
        out.push('\n');
    }
    out
}

#[test]
fn k8s_configmap_config_passes_check() {
    let configmap = read(&repo("deploy/k8s/configmap.yaml"));
    let config_text = block_scalar(&configmap, "gateway.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("gateway.toml");
    write(&config_path, &config_text);
    keygen(&dir.path().join("keys"), "ltigate-1");
    let report = check(&config_path);
    assert_contains(&report, "store:       redis", "the k8s ConfigMap");

    let what = "the gateway.toml of deploy/k8s/configmap.yaml";
    let config = parse_toml(&config_text, what);
    assert_shipped_rules(&config, what);
    // The Deployment provides what the config expects where it expects it.
    let deployment = read(&repo("deploy/k8s/deployment.yaml"));
    for needed in [
        "mountPath: /etc/ltigate/gateway.toml",
        "mountPath: /etc/ltigate/keys",
        "path: /readyz",
        "path: /healthz",
        "replicas: 2",
        str_at(&config, &["grades", "token_env"], what),
        str_at(&config, &["assertion", "username_key_env"], what),
        str_at(&config, &["lms_api", "client_secret_env"], what),
    ] {
        assert_contains(&deployment, needed, "deploy/k8s/deployment.yaml");
    }
    assert_eq!(
        str_at(&config, &["store", "url"], what),
        "redis://ltigate-redis:6379/0"
    );
    assert_contains(
        &read(&repo("deploy/k8s/redis.yaml")),
        "name: ltigate-redis",
        "deploy/k8s/redis.yaml",
    );

    kustomize_builds(&config_text);
}

/// `kubectl kustomize` builds deploy/k8s once its secrets exist.
fn kustomize_builds(config_text: &str) {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: kubectl is not installed; skipping `kubectl kustomize deploy/k8s`");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let k8s = dir.path().join("k8s");
    std::fs::create_dir_all(k8s.join("secrets")).expect("mkdir");
    for entry in std::fs::read_dir(repo("deploy/k8s")).expect("read deploy/k8s") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, k8s.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    keygen(&k8s.join("secrets"), "ltigate-1");
    let env: String = SECRETS
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    write(&k8s.join("secrets/ltigate.env"), &env);
    let out = run_ok(Command::new("kubectl").arg("kustomize").arg(&k8s));
    let built = text(&out.stdout);
    for expected in [
        "kind: Deployment",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "name: ltigate-keys-",
        "name: ltigate-secrets-",
    ] {
        assert_contains(&built, expected, "kubectl kustomize deploy/k8s");
    }
    assert_contains(
        &built,
        config_text.lines().nth(1).expect("a config line"),
        "kubectl kustomize deploy/k8s",
    );
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "note: systemd-analyze is not installed; skipping `systemd-analyze verify deploy/ltigate.service`"
        );
        return;
    }
    let unit = read(&repo("deploy/ltigate.service"));
    let exec = "ExecStart=/usr/local/bin/ltigate ";
    assert_contains(&unit, exec, "deploy/ltigate.service");
    // The installed path does not exist here: point a copy at the built binary.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("ltigate.service");
    write(
        &copy,
        &unit.replace(
            exec,
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_ltigate")),
        ),
    );
    let out = run_ok(Command::new("systemd-analyze").arg("verify").arg(&copy));
    // Warnings (unknown keys, bad values) exit 0 but name the unit file.
    let complaints: Vec<String> = text(&out.stderr)
        .lines()
        .chain(text(&out.stdout).lines())
        .filter(|l| l.contains("ltigate.service"))
        .map(str::to_owned)
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify complains:\n{}",
        complaints.join("\n")
    );
}
