//! The secret files of a server: the data directory (restricted to its owner), the master key
//! (inline, from a file, or generated into the data directory) and the additional keys of the
//! keyring, and the bootstrap API key written for an empty store. Every file this writes is
//! created new with mode 0600; nothing here logs key material.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use tracing::{info, warn};

use crate::config::{Config, MasterKeySource};
use crate::domain::{Bootstrap, Core, Keyring, MasterKey};

/// The file in the data directory holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master-key";
/// The file in the data directory holding a generated bootstrap API key.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";

/// Creates the data directory if needed and takes group and other permissions away from it.
pub(crate) fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))?;
    let mut permissions = fs::metadata(dir)?.permissions();
    if permissions.mode() & 0o077 != 0 {
        permissions.set_mode(0o700);
        fs::set_permissions(dir, permissions)
            .with_context(|| format!("failed to restrict data directory {}", dir.display()))?;
    }
    Ok(())
}

/// Loads the primary master key and the additional ones.
pub(crate) fn load_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let primary = load_master_key(config)?;
    let others = config
        .additional_master_keys
        .iter()
        .map(|path| read_master_key_file(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keyring = Keyring::new(primary, others)
        .context("an additional master key is the primary key or listed twice")?;
    info!(keyring = ?keyring, "master keys loaded (ids only)");
    Ok(keyring)
}

/// Reads a master key file (base64 of 32 bytes).
pub fn read_master_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("failed to read master key file {}", path.display()))?,
    );
    MasterKey::from_base64(&text)
        .with_context(|| format!("invalid master key in {}", path.display()))
}

/// Makes sure the store has an ORG_OWNER API key: the configured one, or one generated into
/// [`BOOTSTRAP_KEY_FILE`] for an empty store.
pub(crate) async fn bootstrap(core: &Core, config: &Config) -> anyhow::Result<()> {
    let configured = config
        .bootstrap_api_key
        .as_ref()
        .map(|(public, private)| (public.as_str(), private.as_str()));
    match core
        .bootstrap(configured)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))?
    {
        Bootstrap::ConfiguredKey => {
            info!("bootstrap api key from DBCERT_BOOTSTRAP_API_KEY is an ORG_OWNER key")
        }
        Bootstrap::Existing => {}
        Bootstrap::Generated(key) => {
            let path = config.data_dir.join(BOOTSTRAP_KEY_FILE);
            let line = zeroize::Zeroizing::new(format!(
                "{}:{}\n",
                key.record.public_key,
                key.private_key.as_str()
            ));
            write_secret_file(&path, line.as_bytes())?;
            warn!(
                path = %path.display(),
                public_key = %key.record.public_key,
                "created an ORG_OWNER api key for the empty store; its private key is in the file (mode 0600)"
            );
        }
    }
    Ok(())
}

/// The configured master key, or the data directory's (generated on first start).
fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        MasterKeySource::Inline(text) => {
            MasterKey::from_base64(text).context("invalid DBCERT_MASTER_KEY")
        }
        MasterKeySource::File(path) => read_master_key_file(path),
        MasterKeySource::DataDir => {
            let path = config.data_dir.join(MASTER_KEY_FILE);
            if path.exists() {
                let text = zeroize::Zeroizing::new(fs::read_to_string(&path)?);
                return MasterKey::from_base64(&text)
                    .with_context(|| format!("invalid master key in {}", path.display()));
            }
            let key = MasterKey::generate();
            write_secret_file(&path, key.to_base64().as_bytes())?;
            warn!(
                path = %path.display(),
                "no master key configured: generated one; back it up, or the CA keys sealed under it are lost \
                 (set --master-key-file or DBCERT_MASTER_KEY in production)"
            );
            Ok(key)
        }
    }
}

/// Writes a new file readable by the owner only.
fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}
