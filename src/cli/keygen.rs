//! `ltigate keygen`: writes a new tool key pair and says how to use it.
//!
//! The private key is written as PKCS#8 PEM with mode 0600 and is never
//! printed. Existing files are never overwritten.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, RawConfig};
use crate::keys;

/// Creates the key files that `generate_if_missing` asks for and that do
/// not exist yet (see [`config::missing_generated_keys`]), before the
/// config is validated: validation itself only reads them.
pub fn generate_missing(raw: &RawConfig, path: &Path) -> Result<(), ConfigError> {
    for (kid, file) in config::missing_generated_keys(raw, path) {
        let fail = |message: String| ConfigError {
            file: path.to_owned(),
            key: "keys.private_key_file".into(),
            message,
        };
        let generated = keys::generate(&kid).map_err(|e| fail(e.to_string()))?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        write_private(&file, generated.private_pem.as_bytes())
            .map_err(|e| fail(format!("cannot write {}: {e}", file.display())))?;
        tracing::warn!(path = %file.display(), kid, "generated a new tool key because generate_if_missing is set");
    }
    Ok(())
}

/// What keygen wrote.
#[derive(Debug)]
pub struct KeygenOutput {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// Text for the operator: the `[[keys]]` snippet and the public JWK.
    pub instructions: String,
}

/// Creates `path` with `contents`, readable only by the owner. Fails if it exists.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Generates an RSA-2048 key pair `<kid>.pem` / `<kid>.pub.pem` in `out`.
pub fn run(out: &Path, kid: &str) -> Result<KeygenOutput, String> {
    if kid.is_empty()
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("the kid must be letters, digits, '-', '_' or '.'".to_owned());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // Absolute, so the printed snippet works from a config in any directory.
    let out = &out
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", out.display()))?;
    let generated = keys::generate(kid).map_err(|e| e.to_string())?;
    let private_key = out.join(format!("{kid}.pem"));
    let public_key = out.join(format!("{kid}.pub.pem"));
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(format!(
                "{} already exists; refusing to overwrite it",
                p.display()
            ));
        }
    }
    write_private(&private_key, generated.private_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", private_key.display()))?;
    std::fs::write(&public_key, generated.public_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", public_key.display()))?;

    let mut instructions = String::new();
    let _ = writeln!(
        instructions,
        "Wrote {} (private, mode 0600)",
        private_key.display()
    );
    let _ = writeln!(instructions, "Wrote {}", public_key.display());
    let _ = writeln!(instructions, "\nAdd this to gateway.toml:\n");
    let _ = writeln!(instructions, "[[keys]]");
    let _ = writeln!(instructions, "kid = {}", toml_string(kid));
    let _ = writeln!(
        instructions,
        "private_key_file = {}",
        toml_string(&private_key.display().to_string())
    );
    let _ = writeln!(
        instructions,
        "\nPublic JWK (also served at /lti/1p3/pub/jwks/):\n"
    );
    let _ = writeln!(
        instructions,
        "{}",
        serde_json::to_string_pretty(&generated.public_jwk).unwrap_or_default()
    );
    Ok(KeygenOutput {
        private_key,
        public_key,
        instructions,
    })
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_loadable_pair_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(dir.path(), "k1").expect("keygen");
        let pem = std::fs::read(&out.private_key).expect("read");
        let key = keys::ToolKey::from_pem("k1", None, &pem).expect("load");
        assert!(
            out.instructions
                .contains(&key.public_jwk()["n"].as_str().expect("n")[..20])
        );
        assert!(out.instructions.contains("[[keys]]"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out.private_key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(run(dir.path(), "k1").is_err());
        assert!(run(dir.path(), "../evil").is_err());
    }
}
