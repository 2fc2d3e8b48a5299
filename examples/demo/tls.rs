//! A self-signed certificate for `localhost`, for serving ltigate over HTTPS
//! in the demo (`--tls-self-signed DIR`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::PublicKeyData as _;

/// A certificate and key on disk.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether they were written just now (or reused from an earlier run).
    pub created: bool,
    /// base64 SHA-256 of the key's SubjectPublicKeyInfo, the value Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
}

/// Reuses `DIR/cert.pem` and `DIR/key.pem` when both exist (so a browser that
/// was told to trust them keeps doing so), or writes a new pair for
/// `localhost`, `127.0.0.1` and `::1`.
pub fn self_signed(dir: &Path) -> anyhow::Result<CertFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let created = !(cert.is_file() && key.is_file());
    if created {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .context("generating a self-signed certificate")?;
        write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert, generated.cert.pem())
            .with_context(|| format!("writing {}", cert.display()))?;
    }
    let key_pem =
        std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
    let pair = rcgen::KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a private key rcgen can read", key.display()))?;
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pair.subject_public_key_info());
    Ok(CertFiles {
        cert,
        key,
        created,
        spki_sha256: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
