//! The secret files of a server: the data directory (created 0700; a start is refused while it,
//! a master key file or the SQLite file is open to group or others, unless
//! `--allow-insecure-permissions`), the master key (from the environment, from a file, or
//! generated into the data directory) and the additional keys of the keyring, and the bootstrap
//! API key written for an empty store. Every file this writes is created new with mode 0600;
//! nothing here logs key material.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use tracing::{info, warn};

use crate::config::{Config, MasterKeySource};
use crate::domain::{Bootstrap, Core, Keyring, MasterKey};

/// The file in the data directory holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master-key";
/// The file in the data directory holding a generated bootstrap API key.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";

/// What to run to make a file or directory private to its owner.
const FIX_FILE: &str = "chmod 600";
/// What to run to make the data directory private to its owner.
const FIX_DIR: &str = "chmod 700";

/// Creates the data directory (mode 0700) if needed, then refuses to start when the data
/// directory, a master key file or the SQLite database file is open to group or others, naming
/// the file and the fix; with `--allow-insecure-permissions` it warns instead.
pub(crate) fn prepare_files(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))?;
    let mut checks = vec![("data directory", dir.clone(), FIX_DIR)];
    if let MasterKeySource::File(path) = &config.master_key {
        checks.push(("master key file", path.clone(), FIX_FILE));
    }
    for path in &config.additional_master_keys {
        checks.push(("additional master key file", path.clone(), FIX_FILE));
    }
    if let Some(path) = crate::storage::SqliteStore::file_of(&config.database_url) {
        checks.push(("SQLite database file", path, FIX_FILE));
    }
    for (what, path, fix) in checks {
        let mode = match fs::metadata(&path) {
            Ok(metadata) => metadata.permissions().mode(),
            // A missing database file is created 0600; a missing key file fails when read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("failed to inspect {}", path.display()));
            }
        };
        let Some(problem) = insecure(mode) else {
            continue;
        };
        if config.allow_insecure_permissions {
            warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o7777),
                "INSECURE: the {what} is {problem}, and --allow-insecure-permissions lets the \
                 server start anyway; other local users may read secrets ({fix} it)"
            );
        } else {
            anyhow::bail!(
                "the {what} {path} is {problem} (mode {mode:o}): run `{fix} {path}`, or start with \
                 --allow-insecure-permissions (DBCERT_ALLOW_INSECURE_PERMISSIONS=true) to accept it",
                path = path.display(),
                mode = mode & 0o7777,
            );
        }
    }
    Ok(())
}

/// What is wrong with a file or directory of mode `mode`: `None` when neither group nor others
/// have any access to it.
fn insecure(mode: u32) -> Option<&'static str> {
    match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (false, false) => None,
        (true, false) => Some("open to its group"),
        (false, true) => Some("open to other users"),
        (true, true) => Some("open to its group and to other users"),
    }
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

#[cfg(test)]
mod tests {
    use super::insecure;

    #[test]
    fn only_owner_only_modes_are_secure() {
        assert_eq!(insecure(0o600), None);
        assert_eq!(insecure(0o40700), None);
        assert_eq!(insecure(0o100400), None);
        assert_eq!(insecure(0o640), Some("open to its group"));
        assert_eq!(insecure(0o604), Some("open to other users"));
        assert_eq!(
            insecure(0o755),
            Some("open to its group and to other users")
        );
        assert_eq!(insecure(0o620), Some("open to its group"));
    }
}
